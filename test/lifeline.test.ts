// EVA_EXIT_ON_STDIN_CLOSE=1 for real: a parent process starts the built server with a pipe on its stdin, the test
// kills the parent with SIGKILL (no handler of it runs), and EVA, supervisor and workers alike, must drain and
// exit by itself. Without the variable the same EVA serves on as an orphan, which the test also shows (and then
// ends itself), so the check can fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { sleep } from './helpers/eva.js';

const MAIN = fileURLToPath(new URL('../dist/server/main.js', import.meta.url));
const CLOSED = 'http://127.0.0.1:9';
/** No STT, echo LLM, TTS at a closed port: nothing to warm but the VAD. */
const BASE_ENV = { PORT: '0', HOST: '127.0.0.1', EVA_LLM: 'echo', EVA_TTS: 'openai', EVA_TTS_URL: `${CLOSED}/v1`, OLLAMA_HOST: CLOSED, EVA_LOG_LEVEL: 'info', EVA_DRAIN_S: '0' };
const START_MS = 90_000;
const EXIT_MS = 30_000;

// The parent: starts EVA with its stdin a pipe and its output in a file (so EVA's logging never fails on a closed
// pipe, which would end it for another reason), says EVA's pid, then idles. It ends itself after a bound.
const PARENT = `
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
const [main, logPath, env] = process.argv.slice(2);
const fd = openSync(logPath, 'a');
const eva = spawn(process.execPath, [main], { env: JSON.parse(env), stdio: ['pipe', fd, fd] });
process.stdout.write('eva ' + eva.pid + '\\n');
setTimeout(() => process.exit(0), 150000);
`;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!pred() && performance.now() < end) await sleep(100);
  return pred();
}

interface Started {
  parent: ChildProcess;
  evaPid: number;
  workerPids: number[];
  log(): string;
}

async function startUnderParent(t: Test, env: Record<string, string>): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'eva-lifeline-'));
  const script = join(dir, 'parent.mjs');
  const logPath = join(dir, 'eva.log');
  writeFileSync(script, PARENT);
  writeFileSync(logPath, '');
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(EVA_|GROQ_|OLLAMA_|PORT$|HOST$)/.test(k)));
  const parent = spawn(process.execPath, [script, MAIN, logPath, JSON.stringify({ ...clean, ...BASE_ENV, EVA_DATA_DIR: join(dir, 'data'), ...env })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  parent.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const pids: number[] = [];
  t.teardown(() => {
    parent.kill('SIGKILL');
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const log = (): string => readFileSync(logPath, 'utf8');
  if (!(await until(() => /eva \d+/.test(out), 10_000))) throw new Error('the parent did not start EVA');
  const evaPid = Number(/eva (\d+)/.exec(out)![1]);
  pids.push(evaPid);
  if (!(await until(() => /EVA listening on (http:\S+)/.test(log()) || !alive(evaPid), START_MS))) throw new Error(`EVA did not start:\n${log()}`);
  const url = /EVA listening on (http:\S+)/.exec(log())?.[1];
  if (!url) throw new Error(`EVA exited at start:\n${log()}`);
  let workerPids: number[] = [];
  if (env.EVA_WORKERS !== '1') {
    const health = (await (await fetch(`${url}/health`)).json()) as { workers?: { pid: number | null }[] };
    workerPids = (health.workers ?? []).map((w) => w.pid).filter((p): p is number => typeof p === 'number');
    pids.push(...workerPids);
  }
  return { parent, evaPid, workerPids, log };
}

function killParent(parent: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    parent.once('exit', () => resolve());
    parent.kill('SIGKILL');
  });
}

t.test('one process: its parent killed with SIGKILL, EVA drains and exits', async (t) => {
  const s = await startUnderParent(t, { EVA_WORKERS: '1', EVA_EXIT_ON_STDIN_CLOSE: '1' });
  await sleep(500);
  t.ok(alive(s.evaPid), 'EVA keeps serving while its parent lives');
  await killParent(s.parent);
  t.ok(await until(() => !alive(s.evaPid), EXIT_MS), 'EVA exited after its parent');
  t.match(s.log(), /draining .*stdin closed: the process that started EVA is gone/, 'and said why');
});

t.test('a supervisor with two workers: all three exit after the parent', async (t) => {
  const s = await startUnderParent(t, { EVA_WORKERS: '2', EVA_EXIT_ON_STDIN_CLOSE: '1' });
  t.equal(s.workerPids.length, 2, '/health names two worker pids');
  await killParent(s.parent);
  t.ok(await until(() => !alive(s.evaPid), EXIT_MS), 'the supervisor exited');
  t.ok(await until(() => s.workerPids.every((p) => !alive(p)), EXIT_MS), 'and both workers');
  t.match(s.log(), /draining .*stdin closed/, 'the supervisor said why');
});

t.test('without EVA_EXIT_ON_STDIN_CLOSE the same EVA is left serving as an orphan', async (t) => {
  const s = await startUnderParent(t, { EVA_WORKERS: '1' });
  await killParent(s.parent);
  await sleep(3000);
  t.ok(alive(s.evaPid), 'still running 3 s after its parent died (the teardown ends it)');
});
