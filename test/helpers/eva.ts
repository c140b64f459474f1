// Starts EVA in-process for a test, on a free loopback port, and stops it in teardown.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { startServer, type EvaServer } from '../../server/app.js';
import { loadConfig, type EvaConfig } from '../../server/config.js';
import type { AgentFactory } from '../../server/agent.js';
import { createEchoAgent } from '../../server/agent-echo.js';
import { createLogger } from '../../server/log.js';
import { VadEngine } from '../../media/vad.js';
export { fixture16k, rms } from './fixtures.js';

// werift leaves its DTLS handshake retransmission timer (Flight5.transmit, a timers/promises setTimeout with
// back-off) running after a peer connection closes; it keeps a finished test process alive for ~30 s. Once
// every test of the file has run, exit instead of waiting for it (the delay lets tap's output flush).
t.teardown(() => {
  setTimeout(() => process.exit(process.exitCode ?? 0), 300).unref();
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
  wsUrl: string;
  httpUrl: string;
}

export async function startEva(
  t: { teardown(fn: () => unknown): void },
  opts: { env?: Record<string, string>; agent?: AgentFactory } = {},
): Promise<TestEva> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', EVA_LOG_LEVEL: 'warn', ...opts.env });
  const server = await startServer({
    config,
    vad: await vadEngine(),
    agent: opts.agent ?? createEchoAgent,
    log: createLogger('test-eva'),
    clientDir: fileURLToPath(new URL('../../dist/client/', import.meta.url)),
  });
  t.teardown(() => server.close());
  return { server, config, wsUrl: `ws://127.0.0.1:${server.port}/ws`, httpUrl: `http://127.0.0.1:${server.port}` };
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
