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
