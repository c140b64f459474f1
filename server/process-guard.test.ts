import t from 'tap';
import { spawnSync } from 'node:child_process';

t.test('an unhandled rejection is logged and counted, and the process lives on', async (t) => {
  const guard = new URL('./process-guard.ts', import.meta.url).href;
  const log = new URL('./log.ts', import.meta.url).href;
  // A real process (tap fails a test on an unhandled rejection in its own), under the same TS loader.
  const code = `
    import { guardProcess } from ${JSON.stringify(guard)};
    import { createLogger } from ${JSON.stringify(log)};
    let count = 0;
    guardProcess({ log: createLogger('guard-test'), onRejection: () => count++ });
    Promise.reject(new Error('boom in one call'));
    void Promise.reject('a bare string');
    setTimeout(() => console.log('alive after', count), 50);
  `;
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, EVA_LOG_LEVEL: 'error' } });
  t.equal(r.status, 0, `exit code 0 (stderr: ${r.stderr.slice(-300)})`);
  t.match(r.stdout, /alive after 2/, 'both counted, the process went on');
  t.match(r.stderr, /unhandled promise rejection.*boom in one call/);
  t.match(r.stderr, /a bare string/);
});

/** Runs `body` after guardFatal is installed, in a child process (tap handles uncaught exceptions in its own). */
function fatalChild(body: string, flushMs: number): ReturnType<typeof spawnSync> & { stdout: string; stderr: string } {
  const guard = new URL('./process-guard.ts', import.meta.url).href;
  const log = new URL('./log.ts', import.meta.url).href;
  const code = `
    import { guardFatal } from ${JSON.stringify(guard)};
    import { createLogger } from ${JSON.stringify(log)};
    let endCalls = () => console.log('calls ended');
    guardFatal({ log: createLogger('fatal-test'), endCalls: () => endCalls(), flushMs: ${flushMs} });
    ${body}
  `;
  return spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, EVA_LOG_LEVEL: 'error' } });
}

t.test('an uncaught exception ends every call, is logged, and the process exits 1 after the flush', async (t) => {
  const r = fatalChild(
    `setTimeout(() => { throw new Error('boom outside any call'); }, 10);
     setTimeout(() => console.log('still running'), 20);
     setTimeout(() => console.log('outlived the flush'), 25_000);`,
    300,
  );
  t.equal(r.status, 1, `exit code 1 (stderr: ${r.stderr.slice(-300)})`);
  t.equal(r.stdout.match(/calls ended/g)?.length, 1, 'the calls were ended once');
  t.match(r.stdout, /still running/, 'the byes get their flush time: the loop goes on meanwhile');
  t.notMatch(r.stdout, /outlived the flush/, 'then the process exits');
  t.match(r.stderr, /uncaught exception: ending every call and exiting.*boom outside any call/);
});

t.test('ending the calls may fail: still logged, still exit 1', async (t) => {
  const r = fatalChild(`endCalls = () => { throw new Error('a close threw'); }; setTimeout(() => { throw new Error('first fault'); }, 10);`, 50);
  t.equal(r.status, 1, `exit code 1 (stderr: ${r.stderr.slice(-300)})`);
  t.match(r.stderr, /first fault/);
  t.match(r.stderr, /ending the calls failed.*a close threw/);
});

t.test('a second uncaught exception during the flush exits at once', async (t) => {
  // With a 60 s flush, only the second exception can end the process before spawnSync's 30 s timeout.
  const r = fatalChild(`endCalls = () => setImmediate(() => { throw new Error('second fault'); }); setTimeout(() => { throw new Error('first fault'); }, 10);`, 60_000);
  t.equal(r.status, 1, `exit code 1, not killed by the timeout (signal ${r.signal}; stderr: ${r.stderr.slice(-300)})`);
  t.match(r.stderr, /another uncaught exception while ending the calls: exiting now.*second fault/);
});
