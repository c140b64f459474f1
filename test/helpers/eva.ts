// Starts EVA in-process for a test, on a free loopback port, and stops it in teardown.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { startServer, type EvaServer } from '../../server/app.js';
import { loadConfig, type EvaConfig } from '../../server/config.js';
import type { AgentFactory } from '../../server/agent.js';
import { createEchoAgent } from '../../server/agent-echo.js';
import { createLogger } from '../../server/log.js';
import { createRuntime, type Runtime } from '../../server/runtime.js';
import { VadEngine } from '../../media/vad.js';
import { reportLeaksAtExit, unrefWeriftRetransmits } from './handles.js';
import { keepDnsOffline } from './offline.js';
export { fixture16k, rms } from './fixtures.js';

unrefWeriftRetransmits();
keepDnsOffline();
// Once every test of the file has run: close the process's shared VAD engine (its worker's MessagePort held the
// process open until tap's timeout), and name anything else still open.
t.teardown(async () => {
  const engine = shared;
  shared = null;
  if (engine) await (await engine).close();
  reportLeaksAtExit();
});

let shared: Promise<VadEngine> | null = null;
/** One VAD engine per test process, as in the server. */
export function vadEngine(): Promise<VadEngine> {
  shared ??= VadEngine.create();
  return shared;
}

export interface TestEva {
  server: EvaServer;
  config: EvaConfig;
  /** Absent when the test chose its own agent (media-only tests). */
  runtime?: Runtime;
  wsUrl: string;
  httpUrl: string;
}

export async function startEva(
  t: { teardown(fn: () => unknown): void },
  opts: {
    env?: Record<string, string>;
    /**
     * The full runtime (providers chosen from `env`, database, text API), as `npm start` builds it. Without it
     * the call gets `agent` (default: the bare audio echo) and no text API: the media tests need no more.
     */
    runtime?: boolean;
    /** The voice agent; with `runtime` it replaces the runtime's (e.g. the echo agent beside a real text API). */
    agent?: AgentFactory;
    /** With the runtime: its database file (default: a private in-memory one). */
    dbPath?: string;
  } = {},
): Promise<TestEva> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', EVA_LOG_LEVEL: 'warn', OLLAMA_HOST: 'http://127.0.0.1:9', ...opts.env });
  const log = createLogger('test-eva');
  const runtime = !opts.runtime ? undefined : await createRuntime(config, { log, dbPath: opts.dbPath ?? ':memory:', defaultMetrics: false });
  const server = await startServer({
    config,
    vad: await vadEngine(),
    agent: opts.agent ?? runtime?.agent ?? createEchoAgent,
    log,
    clientDir: fileURLToPath(new URL('../../dist/client/', import.meta.url)),
    ...(runtime && {
      text: runtime.text,
      tts: runtime.tts,
      metrics: runtime.metrics,
      limiter: runtime.limiter,
      health: () => runtime.health(),
    }),
  });
  t.teardown(async () => {
    await server.close();
    await runtime?.close();
  });
  return { server, config, runtime, wsUrl: `ws://127.0.0.1:${server.port}/ws`, httpUrl: `http://127.0.0.1:${server.port}` };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll until `fn` is true or the time is up; returns the last value. */
export async function until(fn: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (fn()) return true;
    await sleep(stepMs);
  }
  return fn();
}
