// EVA_WORKERS > 1: the supervisor. It prepares what the workers share — the data directory's secret (tokens and
// session ids minted by one worker verify in every other), the SQLite schema (migrated once here, so workers never
// race on it), the port when PORT=0 — then forks one worker per slot, starts again a worker that exits, and on
// SIGINT/SIGTERM tells every worker to drain. It serves nothing itself: every worker listens on the same port
// (uWebSockets.js sets SO_REUSEPORT, so the kernel spreads new connections over them) and answers /metrics and
// /health for the whole server by asking here; the supervisor asks each worker (server/cluster-worker.ts).
//
// child_process.fork, not node:cluster: in a node:cluster worker dgram.bind() goes through the primary, and the
// workers' n-th binds of port 0 share one UDP socket (checked on Node 20: two workers' first ephemeral sockets had
// the same port), so werift's per-call sockets would take each other's packets. A forked worker is a plain process
// with its own sockets; what cluster adds for TCP (handle sharing) uWS does not use.
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { EvaConfig } from './config.js';
import type { ToSupervisor, ToWorker, WorkerState, WorkerStatus } from './cluster-worker.js';
import { loadSecret } from './http/tokens.js';
import { onStdinClose } from './lifeline.js';
import type { Logger } from './log.js';
import { createSupervisorMetrics, type MetricsJson } from './metrics.js';
import { openStore } from './store.js';

/** A worker that exits is started again after this, doubling while exits repeat, up to RESTART_MAX_MS. */
export const RESTART_MIN_MS = 100;
export const RESTART_MAX_MS = 5000;
/** A worker that served this long before it exited starts again after RESTART_MIN_MS: the backoff is reset. */
export const HEALTHY_MS = 60_000;
/** A worker that exits this many times in a row before it is listening is not started again: EVA stops. */
export const MAX_START_FAILURES = 5;
/** A worker not listening within this is killed (a start failure): VAD model load and JIT take ~1 s. */
export const START_TIMEOUT_MS = 60_000;
/** How long the supervisor waits for each worker's figures (/metrics, /health). */
export const QUERY_TIMEOUT_MS = 1500;
/** After EVA_DRAIN_S, workers get this long to end their calls and exit before they are killed. */
export const EXIT_GRACE_MS = 10_000;
/** Exit code of a worker (and of EVA) stopped by a configuration error. */
const CONFIG_ERROR = 2;

export interface SupervisorOptions {
  config: EvaConfig;
  /** The command-line flags EVA was given; each worker gets them too (plus the port chosen here). */
  argv: readonly string[];
  /** The entry point the workers run (dist/server/main.js). */
  entry: string;
  log: Logger;
}

interface Slot {
  index: number;
  child: ChildProcess | null;
  state: WorkerState;
  /** Listening, in this life of the worker. */
  ready: boolean;
  readyAt: number;
  restarts: number;
  startFailures: number;
  backoffMs: number;
  timer?: NodeJS.Timeout;
}

/** A free TCP port on `host`, for PORT=0: every worker must be given the same one. */
export async function freePort(host: string): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, host, () => resolve());
  });
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** What every worker shares, made once before any is forked: the secret and the migrated database. */
export async function prepareShared(config: EvaConfig): Promise<void> {
  loadSecret(config.dataDir);
  if (config.databaseUrl) return;
  // Opening migrates (PostgreSQL migrates under its own lock); no retention here (worker 0 prunes), and closing
  // stops its checkpoint thread.
  const store = openStore(join(config.dataDir, 'eva.db'), { retentionDays: 0 });
  await store.close();
}

/** Runs until every worker has exited after a drain (exit 0), or a worker cannot start (exit 1 or 2). */
export async function runSupervisor(opts: SupervisorOptions): Promise<void> {
  const { config, log } = opts;
  const n = config.workers;
  if (config.rtpPorts && config.rtpPorts[1] - config.rtpPorts[0] + 1 < n) {
    process.stderr.write(`eva: configuration error: EVA_RTP_PORTS ${config.rtpPorts.join('-')} has fewer ports than EVA_WORKERS=${n}: each worker binds its own slice of the range\n`);
    process.exit(CONFIG_ERROR);
  }
  try {
    await prepareShared(config);
  } catch (err) {
    process.stderr.write(`eva: failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const port = config.port === 0 ? await freePort(config.host) : config.port;
  const metrics = createSupervisorMetrics(n);
  const slots: Slot[] = Array.from({ length: n }, (_, index) => ({ index, child: null, state: 'starting', ready: false, readyAt: 0, restarts: 0, startFailures: 0, backoffMs: RESTART_MIN_MS }));
  let announced = false;
  let stopping = false;
  let exitCode = 0;
  let nextQuery = 1;
  const queries = new Map<number, (body: unknown) => void>();

  const send = (slot: Slot, msg: ToWorker): boolean => {
    const child = slot.child;
    if (!child?.connected) return false;
    child.send(msg, (err) => {
      if (err) log.debug('IPC send failed', { worker: slot.index, err });
    });
    return true;
  };

  /** One worker's answer to a query, or null when it is not running or does not answer in time. */
  const query = (slot: Slot, what: 'metrics' | 'status'): Promise<unknown> =>
    new Promise((resolve) => {
      const id = nextQuery++;
      const timer = setTimeout(() => {
        queries.delete(id);
        resolve(null);
      }, QUERY_TIMEOUT_MS);
      queries.set(id, (body) => {
        clearTimeout(timer);
        resolve(body);
      });
      if (!send(slot, { eva: 'query', id, what })) {
        clearTimeout(timer);
        queries.delete(id);
        resolve(null);
      }
    });

  const upCount = (): number => slots.filter((s) => s.child && s.ready).length;

  async function healthOfAll(): Promise<WorkerStatus[]> {
    return Promise.all(
      slots.map(async (slot): Promise<WorkerStatus> => {
        const known = { worker: slot.index, pid: slot.child?.pid ?? null, restarts: slot.restarts };
        const live = slot.child && slot.ready ? ((await query(slot, 'status')) as WorkerStatus | null) : null;
        if (live) return { ...live, ...known };
        const state: WorkerState = slot.child && slot.ready ? 'unresponsive' : slot.state;
        return { ...known, state, calls: null, loop_lag_ms: null, loop_lag_max_ms: null };
      }),
    );
  }

  async function metricsOfAll(): Promise<MetricsJson[]> {
    metrics.setUp(upCount());
    const parts = await Promise.all(slots.map((slot) => (slot.child && slot.ready ? (query(slot, 'metrics') as Promise<MetricsJson | null>) : Promise.resolve(null))));
    return [await metrics.json(), ...parts.filter((p): p is MetricsJson => Array.isArray(p))];
  }

  function onMessage(slot: Slot, m: ToSupervisor): void {
    if (typeof m !== 'object' || m === null) return;
    switch (m.eva) {
      case 'ready': {
        slot.ready = true;
        slot.readyAt = performance.now();
        slot.startFailures = 0;
        slot.state = stopping ? 'draining' : 'up';
        log.info('worker listening', { worker: slot.index, pid: slot.child?.pid, port: m.port });
        if (!announced && slots.every((s) => s.ready)) {
          announced = true;
          process.stdout.write(`EVA listening on http://${config.host}:${port}  (${n} workers; stt: ${m.chosen.stt}, llm: ${m.chosen.llm}, tts: ${m.chosen.tts}; data: ${m.data})\n`);
          if (m.chosen.stt === 'none') {
            process.stdout.write('  no speech-to-text configured: voice turns are echoed back; set GROQ_API_KEY or EVA_STT_URL for conversations\n');
          }
        }
        return;
      }
      case 'reply':
        queries.get(m.id)?.(m.body);
        queries.delete(m.id);
        return;
      case 'ask':
        (m.what === 'health' ? healthOfAll() : metricsOfAll())
          .then((body) => send(slot, { eva: 'answer', id: m.id, body }))
          .catch((err: unknown) => {
            log.warn('could not gather the workers\' figures', { what: m.what, err });
            send(slot, { eva: 'answer', id: m.id, body: null });
          });
        return;
      default:
        return;
    }
  }

  function start(slot: Slot): void {
    slot.ready = false;
    slot.state = 'starting';
    // Flags win over the environment in loadConfig, so the chosen port goes last on the command line.
    const child = fork(opts.entry, [...opts.argv, '--port', String(port)], {
      env: { ...process.env, EVA_WORKER_INDEX: String(slot.index) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    slot.child = child;
    metrics.workerStarted(slot.index);
    const startTimer = setTimeout(() => {
      if (slot.child !== child || slot.ready) return;
      log.error(`worker ${slot.index} (pid ${child.pid}) is not listening after ${START_TIMEOUT_MS / 1000} s; killing it`);
      child.kill('SIGKILL');
    }, START_TIMEOUT_MS);
    startTimer.unref();
    child.on('message', (m: ToSupervisor) => onMessage(slot, m));
    child.on('error', (err) => log.error('worker process error', { worker: slot.index, err }));
    child.once('exit', (code, signal) => {
      clearTimeout(startTimer);
      onExit(slot, child, code, signal);
    });
  }

  function onExit(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = null;
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    if (stopping) {
      slot.state = 'stopped';
      // A worker stopped by the signal before it listened (Ctrl-C reaches the whole process group) had no calls.
      const interrupted = !slot.ready && (signal === 'SIGTERM' || signal === 'SIGINT');
      if (code !== 0 && !interrupted) exitCode ||= 1;
      log.info('worker stopped', { worker: slot.index, pid: child.pid, how });
      finishIfDone();
      return;
    }
    const wasReady = slot.ready;
    slot.ready = false;
    slot.state = 'restarting';
    if (!wasReady) {
      slot.startFailures++;
      if (code === CONFIG_ERROR) return giveUp(CONFIG_ERROR, `worker ${slot.index} stopped at start with a configuration error (above); EVA stops`);
      if (slot.startFailures >= MAX_START_FAILURES) {
        return giveUp(1, `worker ${slot.index} failed to start ${slot.startFailures} times in a row (last: ${how}); giving up`);
      }
    } else if (performance.now() - slot.readyAt > HEALTHY_MS) {
      slot.backoffMs = RESTART_MIN_MS;
    }
    const delay = slot.backoffMs;
    slot.backoffMs = Math.min(RESTART_MAX_MS, slot.backoffMs * 2);
    log.warn(`worker ${slot.index} (pid ${child.pid}) ${wasReady ? 'exited' : 'failed to start'} (${how})${wasReady ? ' and its calls with it' : ''}; starting it again in ${delay} ms`);
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (stopping) return;
      slot.restarts++;
      metrics.workerRestarted(slot.index);
      start(slot);
    }, delay);
  }

  function finishIfDone(): void {
    if (!stopping || slots.some((s) => s.child)) return;
    log.info('every worker stopped', { exitCode });
    process.exit(exitCode);
  }

  function stopAll(drainS: number): void {
    for (const slot of slots) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
      if (slot.child) {
        slot.state = 'draining';
        // A worker still starting has no calls (and may not listen for the message yet); one without a channel
        // is told the plain way. A serving worker drains on SIGTERM too.
        if (!slot.ready || !send(slot, { eva: 'drain', drainS })) slot.child.kill('SIGTERM');
      } else slot.state = 'stopped';
    }
  }

  function giveUp(code: number, why: string): void {
    process.stderr.write(`eva: ${why}\n`);
    exitCode = code;
    if (!stopping) {
      stopping = true;
      stopAll(0);
      setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
    }
    finishIfDone();
  }

  const onSignal = (signal: string): void => {
    if (stopping) {
      // A second signal: end the calls now rather than after EVA_DRAIN_S.
      log.info('second signal: ending every call now', { signal });
      stopAll(0);
      return;
    }
    stopping = true;
    log.info('draining', { signal, workers: upCount(), drainS: config.drainS });
    stopAll(config.drainS);
    setTimeout(() => {
      for (const slot of slots) slot.child?.kill('SIGKILL');
      process.stderr.write(`eva: workers still running ${EXIT_GRACE_MS / 1000} s after EVA_DRAIN_S were killed\n`);
      process.exit(1);
    }, config.drainS * 1000 + EXIT_GRACE_MS).unref();
    finishIfDone();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // EVA_EXIT_ON_STDIN_CLOSE=1: the process that started EVA is gone, taken as a first signal (the workers drain).
  if (config.exitOnStdinClose) onStdinClose(process.stdin, (why) => onSignal(why));

  log.info('starting workers', { workers: n, port, rtpPorts: config.rtpPorts?.join('-') });
  for (const slot of slots) start(slot);
}
