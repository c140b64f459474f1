// A serving process's view of the server it is part of (EVA_WORKERS; the supervisor is server/cluster.ts): whether
// it is draining, and the whole server's /metrics and /health, which a worker gets by asking the supervisor over
// the IPC channel (the supervisor asks every worker and answers with all of them). A process of its own
// (EVA_WORKERS=1) has the same view of itself alone.
import type { Logger } from './log.js';
import { aggregateMetrics, type Metrics, type MetricsJson } from './metrics.js';

export type WorkerState = 'starting' | 'up' | 'draining' | 'restarting' | 'stopped' | 'unresponsive';

/** One worker, as /health lists it. `null`: not known (the worker is not running or did not answer). */
export interface WorkerStatus {
  worker: number;
  pid: number | null;
  state: WorkerState;
  calls: number | null;
  /** Event-loop delay since the previous /health, p99 and max. */
  loop_lag_ms: number | null;
  loop_lag_max_ms: number | null;
  /** Times the supervisor started this worker again after it exited. */
  restarts: number;
}

/** The IPC messages between the supervisor and a worker (JSON over child_process.fork's channel). */
export type ToSupervisor =
  | { eva: 'ready'; port: number; chosen: { stt: string; llm: string; tts: string }; data: string }
  | { eva: 'ask'; id: number; what: 'metrics' | 'health' }
  | { eva: 'reply'; id: number; body: unknown };
export type ToWorker =
  | { eva: 'answer'; id: number; body: unknown }
  | { eva: 'query'; id: number; what: 'metrics' | 'status' }
  | { eva: 'drain'; drainS: number };

/** A worker waits this long for the supervisor's answer, then serves its own figures alone (and says so in the log). */
export const ASK_TIMEOUT_MS = 3000;

/** What the routes see (AppDeps.worker). */
export interface WorkerView {
  /** This process's worker index (0 for a process of its own). */
  readonly index: number;
  /** True once this process stopped taking new calls and sockets (SIGTERM, or the supervisor's drain). */
  readonly draining: boolean;
  /** The whole server's Prometheus exposition: every worker's registry, aggregated. */
  metricsText(): Promise<string>;
  /** Every worker's status. */
  workers(): Promise<WorkerStatus[]>;
}

export interface WorkerLinkOptions {
  index: number;
  metrics: Metrics;
  /** Calls open in this process now. */
  calls(): number;
  log: Logger;
  /** The supervisor's channel (`process`, when forked with IPC); absent for a process of its own. */
  channel?: NodeJS.Process;
  /** The supervisor said drain (or went away). */
  onDrain?(drainS: number | null): void;
}

export class WorkerLink implements WorkerView {
  readonly index: number;
  private isDraining = false;
  private nextId = 1;
  private readonly pending = new Map<number, (body: unknown) => void>();

  constructor(private readonly opts: WorkerLinkOptions) {
    this.index = opts.index;
    opts.channel?.on('message', (m: ToWorker) => this.onMessage(m));
  }

  get draining(): boolean {
    return this.isDraining;
  }

  startDrain(): void {
    this.isDraining = true;
  }

  /** Tell the supervisor this worker is listening. */
  ready(msg: Omit<Extract<ToSupervisor, { eva: 'ready' }>, 'eva'>): void {
    this.send({ eva: 'ready', ...msg });
  }

  status(): WorkerStatus {
    const lag = this.opts.metrics.loopLag();
    return {
      worker: this.index,
      pid: process.pid,
      state: this.isDraining ? 'draining' : 'up',
      calls: this.opts.calls(),
      loop_lag_ms: round(lag.p99Ms),
      loop_lag_max_ms: round(lag.maxMs),
      restarts: 0,
    };
  }

  async metricsText(): Promise<string> {
    if (!this.opts.channel) return this.opts.metrics.text();
    const all = (await this.ask('metrics')) as MetricsJson[] | null;
    if (!all) return this.opts.metrics.text();
    return aggregateMetrics(all);
  }

  async workers(): Promise<WorkerStatus[]> {
    if (!this.opts.channel) return [this.status()];
    return ((await this.ask('health')) as WorkerStatus[] | null) ?? [this.status()];
  }

  private ask(what: 'metrics' | 'health'): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.opts.log.warn(`the supervisor did not answer a ${what} request within ${ASK_TIMEOUT_MS} ms: this worker's figures only`);
        resolve(null);
      }, ASK_TIMEOUT_MS);
      this.pending.set(id, (body) => {
        clearTimeout(timer);
        resolve(body);
      });
      if (!this.send({ eva: 'ask', id, what })) {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(null);
      }
    });
  }

  private onMessage(m: ToWorker): void {
    if (typeof m !== 'object' || m === null) return;
    switch (m.eva) {
      case 'answer':
        this.pending.get(m.id)?.(m.body);
        this.pending.delete(m.id);
        return;
      case 'query':
        (m.what === 'metrics' ? this.opts.metrics.json() : Promise.resolve(this.status()))
          .then((body) => this.send({ eva: 'reply', id: m.id, body }))
          .catch((err: unknown) => {
            this.opts.log.warn('could not answer the supervisor', { what: m.what, err });
            this.send({ eva: 'reply', id: m.id, body: null });
          });
        return;
      case 'drain':
        this.opts.onDrain?.(m.drainS);
        return;
      default:
        return;
    }
  }

  /** False when there is no channel (any more): the supervisor is gone. */
  private send(msg: ToSupervisor): boolean {
    const ch = this.opts.channel;
    if (!ch?.send || !ch.connected) return false;
    ch.send(msg, undefined, undefined, (err: Error | null) => {
      if (err) this.opts.log.debug('IPC send failed', { err });
    });
    return true;
  }
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
