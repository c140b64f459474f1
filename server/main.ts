// EVA's entry point: `node dist/server/main.js [--port 8080] [--eva-llm groq,ollama] …` (flags = env names).
// With EVA_WORKERS > 1 this process is the supervisor (server/cluster.ts) and forks the same entry point once per
// worker; a worker knows itself by EVA_WORKER_INDEX and its IPC channel. EVA_WORKERS=1 serves from this process.
import { fileURLToPath } from 'node:url';
import { startServer, type EvaServer } from './app.js';
import { runSupervisor } from './cluster.js';
import { WorkerLink } from './cluster-worker.js';
import { loadConfig, type EvaConfig } from './config.js';
import { EvaError } from './errors.js';
import { onStdinClose } from './lifeline.js';
import { createLogger, type Logger } from './log.js';
import { rtpSlice } from './peer-options.js';
import { guardFatal, guardProcess } from './process-guard.js';
import { loadSecret } from './http/tokens.js';
import { createRuntime, type Runtime } from './runtime.js';
import { VadEngine } from '../media/vad.js';

/** After the drain, calls are ended (`bye {reason:"shutdown"}`) and get this long to reach the sockets before they close. */
const BYE_FLUSH_MS = 100;
/** A close that takes longer than this (a hung provider socket) ends with exit code 1 instead. */
const CLOSE_TIMEOUT_MS = 5000;
const DRAIN_POLL_MS = 100;

/** This process's worker index when a supervisor forked it, else undefined. */
function workerIndex(): number | undefined {
  const raw = process.env.EVA_WORKER_INDEX;
  if (!process.send || raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

const index = workerIndex();
const log = createLogger(index === undefined ? 'eva' : `eva.worker${index}`);

// A rejection nobody handled is logged and counted (eva_unhandled_rejections_total), never fatal.
let countRejection = (): void => {};
guardProcess({ log, onRejection: () => countRejection() });

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let config: EvaConfig;
  try {
    config = loadConfig(process.env, argv);
  } catch (err) {
    if (err instanceof EvaError) {
      process.stderr.write(`eva: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (index === undefined && config.workers > 1) {
    for (const w of config.warnings) log.warn(w);
    await runSupervisor({ config, argv, entry: fileURLToPath(import.meta.url), log });
    return;
  }
  await serve(config, index, log);
}

/** One serving process: a worker (index given) or EVA on its own. */
async function serve(base: EvaConfig, worker: number | undefined, log: Logger): Promise<void> {
  const supervised = worker !== undefined;
  const config: EvaConfig = !supervised
    ? base
    : {
        ...base,
        // Each worker binds only its own UDP ports, and only worker 0 prunes old sessions (one writer, no lock fights).
        rtpPorts: base.rtpPorts && rtpSlice(base.rtpPorts, worker, base.workers),
        retentionDays: worker === 0 ? base.retentionDays : 0,
      };
  let runtime: Runtime;
  try {
    runtime = await createRuntime(config, { log, worker });
  } catch (err) {
    if (err instanceof EvaError) {
      process.stderr.write(`eva: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (!supervised) for (const w of config.warnings) log.warn(w);
  if (worker === undefined || worker === 0) {
    if ((config.host === '0.0.0.0' || config.host === '::') && !config.access.apiKey) {
      log.warn('EVA listens on every interface with no EVA_API_KEY: anyone who can reach the port can use it (docs/security.md)');
    }
  }
  countRejection = () => runtime.metrics.unhandledRejection();
  const vad = await VadEngine.create(undefined, { batchWaitMs: config.vadBatchWaitMs, threadNice: config.threadNice });
  vad.onReset((e) => {
    log.warn('VAD worker replaced: every call\'s VAD state was reset', { reason: e.cause.message });
    runtime.metrics.workerRestart('vad');
  });
  let server: EvaServer | null = null;
  const link = new WorkerLink({
    index: worker ?? 0,
    metrics: runtime.metrics,
    calls: () => server?.calls.size ?? 0,
    log,
    channel: supervised ? process : undefined,
    onDrain: (s) => drain('supervisor', s ?? config.drainS),
  });
  server = await startServer({
    config,
    vad,
    agent: runtime.agent,
    log,
    clientDir: fileURLToPath(new URL('../client/', import.meta.url)),
    text: runtime.text,
    tts: runtime.tts,
    metrics: runtime.metrics,
    limiter: runtime.limiter,
    health: () => runtime.health(),
    // Made by the supervisor before the workers start, so every worker reads the same one.
    secret: loadSecret(config.dataDir),
    worker: link,
  });
  const url = `http://${config.host}:${server.port}`;
  if (supervised) {
    link.ready({ port: server.port, chosen: runtime.chosen, data: runtime.store.path });
  } else {
    process.stdout.write(`EVA listening on ${url}  (stt: ${runtime.chosen.stt}, llm: ${runtime.chosen.llm}, tts: ${runtime.chosen.tts}; data: ${runtime.store.path})\n`);
    if (runtime.chosen.stt === 'none') {
      process.stdout.write('  no speech-to-text configured: voice turns are echoed back; set GROQ_API_KEY or EVA_STT_URL for conversations\n');
    }
  }
  log.info('ready', { url, ...runtime.chosen, ...(supervised && { worker, pid: process.pid }) });

  const srv = server;
  // From here a bug that throws past every handler ends this process as before, but tells its calls first.
  guardFatal({ log, endCalls: () => srv.calls.closeAll('error'), flushMs: BYE_FLUSH_MS });
  // Test-only: SIGUSR2 throws an exception nobody catches, on the event loop (its default would kill the process).
  if (process.env.EVA_TEST_FAULTS === '1') {
    process.on('SIGUSR2', () =>
      setImmediate(() => {
        throw new Error('test fault: uncaught exception (SIGUSR2 with EVA_TEST_FAULTS=1)');
      }),
    );
  }

  // Draining: no new sockets or offers (503 / `shutting_down`), /health says `draining`; calls in progress go on
  // for up to EVA_DRAIN_S, then end with `bye {reason:"shutdown"}`, and the process exits.
  let deadline = Infinity;
  let draining = false;
  function drain(why: string, seconds: number): void {
    deadline = Math.min(deadline, performance.now() + seconds * 1000);
    if (draining) return;
    draining = true;
    link.startDrain();
    log.info('draining', { why, calls: srv.calls.size, drainS: seconds });
    void (async () => {
      while (srv.calls.size > 0 && performance.now() < deadline) await sleep(DRAIN_POLL_MS);
      if (srv.calls.size > 0) {
        log.info('drain time is up: ending the calls left', { calls: srv.calls.size });
        srv.calls.closeAll('shutdown');
        await sleep(BYE_FLUSH_MS);
      }
      setTimeout(() => process.exit(1), CLOSE_TIMEOUT_MS).unref();
      await srv.close();
      await runtime.close();
      await vad.close();
      process.exit(0);
    })();
  }
  // A second signal ends the calls now. Ctrl-C reaches the workers too (one process group): the same drain.
  let signals = 0;
  const onSignal = (signal: string): void => drain(signal, signals++ === 0 ? config.drainS : 0);
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // The supervisor went away (killed): nothing would restart or stop this worker, so it drains and exits.
  if (supervised) process.on('disconnect', () => drain('the supervisor is gone', config.drainS));
  // The process that started EVA went away (EVA_EXIT_ON_STDIN_CLOSE=1): the same drain.
  else if (config.exitOnStdinClose) onStdinClose(process.stdin, (why) => drain(why, config.drainS));
}

main().catch((err: unknown) => {
  process.stderr.write(`eva: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
