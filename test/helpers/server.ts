// Runs the built server (dist/server/main.js) as a child process on a free loopback port, the way a user starts
// it, with its own data directory; stops it and removes the directory in teardown. The provider settings of the
// environment the tests run in (a developer's GROQ_API_KEY, EVA_LLM …) are not passed on: a test sets its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/server/main.js');
/** VAD model load + JIT on a busy 2-core machine; a healthy start takes ~1 s. */
const START_TIMEOUT_MS = 20000;
const KEEP_OUTPUT = 64 * 1024;
/** Inherited variables that would change which providers EVA picks or how it behaves; EVA_LOG_LEVEL stays. */
const INHERITED_CONFIG = /^(EVA_(?!LOG_LEVEL$)|GROQ_|OLLAMA_|PORT$|HOST$)/;

export interface SpawnedEva {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>` as the server printed it. */
  url: string;
  wsUrl: string;
  port: number;
  dataDir: string;
  /** Resolves when the process has exited, with its code and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
}

export async function spawnEva(
  t: { teardown(fn: () => unknown): void },
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<SpawnedEva> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: run \`npm run build\` first`);
  const dataDir = await mkdtemp(join(tmpdir(), 'eva-data-'));
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !INHERITED_CONFIG.test(k)));
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    // One process unless the test asks for workers (EVA_WORKERS defaults to the number of cores), and calls end
    // at once on SIGTERM (teardown) unless the test sets EVA_DRAIN_S. Its stdin is a pipe this process holds, so
    // that EVA exits by itself if the test is killed (a tap timeout) before its teardown runs.
    env: { ...inherited, PORT: '0', HOST: '127.0.0.1', EVA_DATA_DIR: dataDir, EVA_WORKERS: '1', EVA_DRAIN_S: '0', EVA_EXIT_ON_STDIN_CLOSE: '1', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-KEEP_OUTPUT)));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-KEEP_OUTPUT)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  const timeoutMs = opts.timeoutMs ?? START_TIMEOUT_MS;
  const url = await new Promise<string>((resolve, reject) => {
    const fail = (why: string): void => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`EVA did not start: ${why}\n--- stderr ---\n${err.trim() || '(empty)'}\n--- stdout ---\n${out.trim() || '(empty)'}`));
    };
    const onData = (): void => {
      const m = /EVA listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) {
        cleanup();
        resolve(m[1]!);
      }
    };
    const onExit = (code: number | null, signal: string | null): void => fail(`it exited (code ${code}, signal ${signal})`);
    const onError = (e: Error): void => fail(`spawn failed: ${e.message}`);
    const timer = setTimeout(() => fail(`no "EVA listening on" line within ${timeoutMs / 1000} s`), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
  const port = Number(new URL(url).port);
  return { child, url, wsUrl: `ws://127.0.0.1:${port}/ws`, port, dataDir, exited, stdout: () => out, stderr: () => err };
}
