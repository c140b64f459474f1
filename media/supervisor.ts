// The one place that keeps a worker thread alive for EVA (the VAD worker, the eSpeak worker): it starts the worker
// and waits for its "ready", sends it jobs from a bounded queue, gives each job a progress deadline, and replaces
// a worker that crashed, exited or hung, with backoff. Owners speak their own message protocol; the supervisor
// only needs to know which message says "ready" and which job a message belongs to.
//
// Failure policy:
// - A job that sees no message from the worker within its timeout has hung the worker: it fails with `timeout`,
//   the worker is terminated (worker.terminate() stops JS even in a busy loop) and replaced.
// - A worker that exits or throws fails its jobs in flight with `crashed`; queued jobs wait for the replacement.
// - A worker that dies before it is ready fails the queue too (`start_failed`): a broken install will not do
//   better a moment later. The next job starts it again, no sooner than the backoff allows.
// - Replacement waits 100 ms after the first failure, doubling to 5 s while failures keep coming; a worker that
//   stayed up for a minute starts the sequence again at 100 ms.
import type { Worker } from 'node:worker_threads';

export type WorkerFault = 'busy' | 'timeout' | 'crashed' | 'start_failed' | 'closed';

export class WorkerError extends Error {
  constructor(
    readonly worker: string,
    readonly fault: WorkerFault,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super(`${worker} worker: ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'WorkerError';
  }
}

export interface BackoffOptions {
  /** First replacement delay, ms. Default 100. */
  initialMs?: number;
  /** Longest replacement delay, ms. Default 5000. */
  maxMs?: number;
  /** A worker up this long resets the delay to initialMs, ms. Default 60 000. */
  resetAfterMs?: number;
}

export interface SupervisorOptions<Out> {
  /** Name in errors ('vad', 'espeak'). */
  name: string;
  /** Creates one worker; called again for each replacement (fresh workerData, e.g. a new SharedArrayBuffer). */
  spawn: () => Worker;
  /** The worker's "loaded and warm" message. */
  isReady: (msg: Out) => boolean;
  /** The job a message belongs to (the `id` the supervisor gave it), or undefined for other messages. */
  jobId: (msg: Out) => number | undefined;
  /** Messages that are neither "ready" nor a job's (e.g. a 'fatal' notice before the worker exits). */
  onMessage?: (msg: Out) => void;
  /** Default per-job progress deadline: the longest wait for the next message of a job in flight, ms. */
  jobTimeoutMs: number;
  /** From spawn to "ready", ms. Default 30 000. */
  readyTimeoutMs?: number;
  /** Jobs that may wait for the worker; one more is refused with `busy`. Default 64. */
  maxQueue?: number;
  /** Jobs in the worker at once. Default 1. */
  concurrency?: number;
  backoff?: BackoffOptions;
  /** Let the process exit while no job waits on the worker (the worker and the supervisor's timers are unref'd). */
  unrefWhenIdle?: boolean;
  /** Sent on close() before the worker is terminated (2 s later at most), for a clean shutdown. */
  closeMessage?: unknown;
  now?: () => number;
}

export interface JobSpec<Out, R> {
  /** Post the job to the worker, tagged with `id`. */
  post(worker: Worker, id: number): void;
  /** Each message of this job: return `{ result }` when it is the last, undefined when more follow; a throw fails the job. */
  onMessage(msg: Out): { result: R } | undefined;
  /** This job's progress deadline, ms (default: the supervisor's jobTimeoutMs). */
  timeoutMs?: number;
  /** Aborting drops a queued job (rejects with the reason); a job in flight is left to the owner (see onAbort). */
  signal?: AbortSignal;
  /** Called when `signal` fires while the job is in the worker (e.g. to raise a shared "stop" flag). */
  onAbort?(): void;
}

export interface SupervisorEvents {
  /** The worker failed (crash, exit, hang, or a failed start); `ready` says whether it had been serving. */
  down: { cause: WorkerError; ready: boolean };
  /** A replacement worker is ready. `restarts` counts replacements so far, `downMs` the time without a worker. */
  restarted: { restarts: number; cause: WorkerError; delayMs: number; downMs: number };
}

interface Job {
  id: number;
  spec: JobSpec<unknown, unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer?: NodeJS.Timeout;
  offAbort?: () => void;
}

interface Live {
  worker: Worker;
  ready: boolean;
  readyTimer?: NodeJS.Timeout;
  /** Set on 'error' and used by the 'exit' that follows. */
  error: Error | null;
}

export class WorkerSupervisor<Out = unknown> {
  /** Replacements so far. */
  restarts = 0;
  private live: Live | null = null;
  private readonly queue: Job[] = [];
  private readonly inflight = new Map<number, Job>();
  private readyWaiters: { resolve(): void; reject(e: unknown): void }[] = [];
  private nextId = 1;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readyAt = 0;
  private delayMs: number;
  /** Earliest time of the next spawn (backoff), and the pending eager restart, if any. */
  private notBefore = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  /** The failure that the next ready worker replaces (for the 'restarted' event). */
  private lastDown: { cause: WorkerError; at: number; delayMs: number } | null = null;
  private readonly listeners: { [K in keyof SupervisorEvents]: ((e: SupervisorEvents[K]) => void)[] } = { down: [], restarted: [] };
  private readonly now: () => number;
  private readonly backoff: Required<BackoffOptions>;

  constructor(private readonly opts: SupervisorOptions<Out>) {
    this.now = opts.now ?? (() => performance.now());
    this.backoff = { initialMs: 100, maxMs: 5000, resetAfterMs: 60_000, ...opts.backoff };
    this.delayMs = this.backoff.initialMs;
  }

  /** The worker now serving (or starting), for test hooks and diagnostics. */
  get worker(): Worker | null {
    return this.live?.worker ?? null;
  }

  get isReady(): boolean {
    return this.live?.ready === true;
  }

  /** Jobs waiting for the worker, and in it. */
  get load(): { queued: number; inflight: number } {
    return { queued: this.queue.length, inflight: this.inflight.size };
  }

  on<K extends keyof SupervisorEvents>(event: K, fn: (e: SupervisorEvents[K]) => void): () => void {
    const list = this.listeners[event] as ((e: SupervisorEvents[K]) => void)[];
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Start the worker (if it is not up) and wait until it is ready. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new WorkerError(this.opts.name, 'closed', 'closed'));
    if (this.live?.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.readyWaiters.push({ resolve, reject });
      this.ensureStarted();
      this.refresh();
    });
  }

  /** Run one job: queued (bounded), then posted when the worker is ready and has room. */
  submit<R>(spec: JobSpec<Out, R>): Promise<R> {
    const { name } = this.opts;
    if (this.closed) return Promise.reject(new WorkerError(name, 'closed', 'closed'));
    if (spec.signal?.aborted) return Promise.reject(spec.signal.reason);
    const max = this.opts.maxQueue ?? 64;
    if (this.queue.length >= max) return Promise.reject(new WorkerError(name, 'busy', `queue full (${max} jobs waiting)`));
    return new Promise<R>((resolve, reject) => {
      const job: Job = { id: this.nextId++, spec: spec as JobSpec<unknown, unknown>, resolve: resolve as (v: unknown) => void, reject };
      if (spec.signal) {
        const signal = spec.signal;
        const onAbort = (): void => {
          const i = this.queue.indexOf(job);
          if (i >= 0) {
            this.queue.splice(i, 1);
            this.finish(job, signal.reason, true);
          } else if (this.inflight.has(job.id)) {
            spec.onAbort?.();
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        job.offAbort = () => signal.removeEventListener('abort', onAbort);
      }
      this.queue.push(job);
      this.ensureStarted();
      this.dispatch();
      this.refresh();
    });
  }

  /** Post a message to the worker now serving (test hooks); false when there is none. */
  post(msg: unknown): boolean {
    if (!this.live?.ready) return false;
    this.live.worker.postMessage(msg);
    return true;
  }

  /** Stop: queued and in-flight jobs fail with `closed`; the worker gets closeMessage, then is terminated. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.restartTimer) clearTimeout(this.restartTimer);
      this.restartTimer = null;
      const err = new WorkerError(this.opts.name, 'closed', 'closed');
      for (const job of this.queue.splice(0)) this.finish(job, err, true);
      for (const job of [...this.inflight.values()]) this.finish(job, err, true);
      for (const w of this.readyWaiters.splice(0)) w.reject(err);
      const live = this.live;
      this.live = null;
      if (!live) return;
      clearTimeout(live.readyTimer);
      const exited = new Promise<void>((r) => live.worker.once('exit', () => r()));
      if (this.opts.closeMessage !== undefined && live.ready) {
        live.worker.postMessage(this.opts.closeMessage);
        const timer = setTimeout(() => void live.worker.terminate(), 2000);
        await exited;
        clearTimeout(timer);
      } else {
        await live.worker.terminate();
      }
    })();
    return this.closing;
  }

  private emit<K extends keyof SupervisorEvents>(event: K, e: SupervisorEvents[K]): void {
    for (const fn of [...this.listeners[event]] as ((e: SupervisorEvents[K]) => void)[]) {
      try {
        fn(e);
      } catch (err) {
        // A listener's failure is its own; the supervisor goes on.
        process.emitWarning(`${this.opts.name} supervisor: '${event}' listener threw: ${(err as Error).message}`);
      }
    }
  }

  /** Spawn now, or when the backoff allows. */
  private ensureStarted(): void {
    if (this.closed || this.live || this.restartTimer) return;
    const wait = this.notBefore - this.now();
    if (wait > 0) {
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.spawn();
      }, wait);
      if (this.opts.unrefWhenIdle && this.idle()) this.restartTimer.unref();
      return;
    }
    this.spawn();
  }

  private spawn(): void {
    if (this.closed || this.live) return;
    let worker: Worker;
    try {
      worker = this.opts.spawn();
    } catch (err) {
      this.down(null, new WorkerError(this.opts.name, 'start_failed', `could not start: ${(err as Error).message}`, { cause: err }));
      return;
    }
    const live: Live = { worker, ready: false, error: null };
    this.live = live;
    const ms = this.opts.readyTimeoutMs ?? 30_000;
    live.readyTimer = setTimeout(() => this.down(live, new WorkerError(this.opts.name, 'start_failed', `not ready after ${ms} ms`)), ms);
    if (this.opts.unrefWhenIdle) live.readyTimer.unref();
    worker.on('message', (msg: Out) => this.onMessage(live, msg));
    worker.on('error', (err) => {
      live.error ??= err;
    });
    worker.on('exit', (code) => {
      if (this.live !== live) return; // terminated by us (hang, close) and already handled
      const why = live.error ? `failed: ${live.error.message}` : `exited with code ${code}`;
      this.down(live, new WorkerError(this.opts.name, live.ready ? 'crashed' : 'start_failed', why, { cause: live.error ?? undefined }));
    });
    this.refresh();
  }

  private onMessage(live: Live, msg: Out): void {
    if (this.live !== live) return;
    if (!live.ready && this.opts.isReady(msg)) {
      live.ready = true;
      clearTimeout(live.readyTimer);
      this.readyAt = this.now();
      const last = this.lastDown;
      this.lastDown = null;
      if (last) {
        this.restarts++;
        this.emit('restarted', { restarts: this.restarts, cause: last.cause, delayMs: last.delayMs, downMs: this.now() - last.at });
      }
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      this.dispatch();
      this.refresh();
      return;
    }
    const id = this.opts.jobId(msg);
    const job = id === undefined ? undefined : this.inflight.get(id);
    if (!job) {
      this.opts.onMessage?.(msg);
      return;
    }
    let out: { result: unknown } | undefined;
    try {
      out = job.spec.onMessage(msg);
    } catch (err) {
      this.finish(job, err, true);
      this.dispatch();
      return;
    }
    if (out) {
      this.finish(job, out.result, false);
      this.dispatch();
    } else {
      this.arm(job); // progress: a new deadline for the next message
    }
  }

  private dispatch(): void {
    const live = this.live;
    if (!live?.ready || this.closed) return;
    const room = this.opts.concurrency ?? 1;
    while (this.inflight.size < room && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.inflight.set(job.id, job);
      this.arm(job);
      try {
        job.spec.post(live.worker, job.id);
      } catch (err) {
        this.finish(job, err, true); // e.g. a buffer that cannot be transferred: this job's fault, not the worker's
      }
    }
    this.refresh();
  }

  private arm(job: Job): void {
    clearTimeout(job.timer);
    const ms = job.spec.timeoutMs ?? this.opts.jobTimeoutMs;
    job.timer = setTimeout(() => {
      const live = this.live;
      if (!live || !this.inflight.has(job.id)) return;
      this.finish(job, new WorkerError(this.opts.name, 'timeout', `job ${job.id} made no progress within ${ms} ms: worker hung, replaced`), true);
      this.down(live, new WorkerError(this.opts.name, 'timeout', `hung (no progress within ${ms} ms)`));
    }, ms);
    if (this.opts.unrefWhenIdle) job.timer.unref();
  }

  private finish(job: Job, value: unknown, failed: boolean): void {
    clearTimeout(job.timer);
    job.offAbort?.();
    this.inflight.delete(job.id);
    if (failed) job.reject(value);
    else job.resolve(value);
    this.refresh();
  }

  /** The worker `live` failed (or could not be spawned, live = null): fail what depended on it, replace it. */
  private down(live: Live | null, cause: WorkerError): void {
    if (live && this.live !== live) return;
    const wasReady = live?.ready ?? false;
    this.live = null;
    if (live) {
      clearTimeout(live.readyTimer);
      live.worker.removeAllListeners('message');
      void live.worker.terminate(); // a hung worker must not keep a core or the process
    }
    const now = this.now();
    if (wasReady && now - this.readyAt >= this.backoff.resetAfterMs) this.delayMs = this.backoff.initialMs;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.backoff.maxMs, this.delayMs * 2);
    this.notBefore = now + delay;
    this.lastDown ??= { cause, at: now, delayMs: delay };
    this.lastDown.delayMs = delay;
    const lost = wasReady ? new WorkerError(this.opts.name, 'crashed', 'the worker failed with this job in flight: replaced', { cause }) : cause;
    for (const job of [...this.inflight.values()]) this.finish(job, lost, true);
    if (!wasReady) {
      for (const job of this.queue.splice(0)) this.finish(job, cause, true);
      for (const w of this.readyWaiters.splice(0)) w.reject(cause);
    }
    this.emit('down', { cause, ready: wasReady });
    if (this.closed) return;
    // A worker that was serving is replaced at once (after the backoff), so it is ready before the next job;
    // one that never got ready is retried by the next job.
    if (wasReady || this.queue.length > 0 || this.readyWaiters.length > 0) this.ensureStarted();
  }

  private idle(): boolean {
    return this.queue.length === 0 && this.inflight.size === 0 && this.readyWaiters.length === 0;
  }

  /** With unrefWhenIdle: hold the process open only while something waits on the worker. */
  private refresh(): void {
    if (!this.opts.unrefWhenIdle) return;
    const idle = this.idle();
    if (this.live) {
      if (idle) this.live.worker.unref();
      else this.live.worker.ref();
    }
    if (this.restartTimer) {
      if (idle) this.restartTimer.unref();
      else this.restartTimer.ref();
    }
  }
}
