// The stores' write queue (store.ts, store-pg.ts): writes wait here and are committed together, in one
// transaction, FLUSH_MS after the first one, so a turn's rows cost one commit and no commit runs inside the
// callback that produced them. The policy for failures lives here too: a locked file keeps the writes and retries
// with a backoff; any other failure retries each write alone (one bad row loses only itself) and then drops what
// failed, except a lost connection, which drops the batch at once (retrying each write would wait out a connect
// timeout per write). Nothing here throws at a caller; every failure goes to `onError`.
//
// A commit may be synchronous (better-sqlite3: everything, the retries included, happens inside `flush()`, as
// before) or return a Promise (pg): then one batch is in flight at a time and later flushes queue behind it, so
// writes land in the order they were made and `await flush()` means "everything queued so far is committed".

/** Queued writes are committed this long after the first one: 20 ms audio frames see no commit, a turn's rows go in one. */
export const FLUSH_MS = 50;
/** More queued writes than this (a database stuck for minutes) drop the oldest. */
export const MAX_QUEUED_WRITES = 10_000;
/** A locked file is retried after this, doubling up to BUSY_BACKOFF_MAX_MS, for up to BUSY_GIVE_UP_MS. */
const BUSY_BACKOFF_MS = 50;
const BUSY_BACKOFF_MAX_MS = 1000;
const BUSY_GIVE_UP_MS = 60_000;
/**
 * A lock is reported once it has lasted this long: EVA's workers share the SQLite file and a write of one can
 * briefly find the other's lock (seen at 60 calls on 2 workers), which the retries absorb and is no fault.
 */
export const BUSY_REPORT_MS = 1000;

/** One queued write; `C` is what the store's commit hands it (nothing for SQLite, a pg client for PostgreSQL). */
export interface Write<C = void> {
  what: string;
  run(ctx: C): unknown;
}

type Maybe = void | Promise<void>;
const DONE: Promise<void> = Promise.resolve();

const isBusy = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(code);
};

export interface WriteQueueOptions<C = void> {
  /** Runs the writes in one transaction; throws (or rejects) if it rolled back. */
  commit(batch: readonly Write<C>[]): Maybe;
  onError(what: string, err: unknown): void;
  /** False for a failure that every write alone would hit too (a lost connection): the batch is dropped at once. */
  retryEach?(err: unknown): boolean;
  flushMs?: number;
  /** Monotonic ms. Default performance.now. */
  now?: () => number;
}

export class WriteQueue<C = void> {
  private queue: Write<C>[] = [];
  /** The asynchronous commit in flight (and its retries), if any. */
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** While the file is locked by another connection: since when, and the current backoff. */
  private busySince: number | null = null;
  private busyReported = false;
  private backoffMs = 0;
  private dropped = 0;
  private closed = false;
  /** The last flush lost every write it had (not a lock): the database is failing. */
  failing = false;

  constructor(private readonly opts: WriteQueueOptions<C>) {}

  get pending(): number {
    return this.queue.length;
  }

  /** True while writes wait out another connection's lock (reads then do not flush). */
  get locked(): boolean {
    return this.busySince !== null;
  }

  push(what: string, run: (ctx: C) => unknown): void {
    if (this.closed) {
      this.report(`${what} after close`, new Error('the store is closed'));
      return;
    }
    this.queue.push({ what, run });
    if (this.queue.length > MAX_QUEUED_WRITES) {
      const over = this.queue.splice(0, this.queue.length - MAX_QUEUED_WRITES);
      this.dropped += over.length;
      if (this.dropped === over.length || this.dropped % 1000 < over.length) {
        this.report(`dropped ${this.dropped} queued writes (queue full)`, new Error('the database does not take writes'));
      }
    }
    this.schedule();
  }

  /** Commits what is queued. Resolves once it is committed or reported; never rejects. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    // One asynchronous batch at a time: what was queued meanwhile goes after it, in order.
    if (this.running) return this.running.then(() => this.flush());
    if (this.queue.length === 0) return DONE;
    const batch = this.queue;
    this.queue = [];
    const result = attempt(
      () => this.opts.commit(batch),
      () => {
        this.busySince = null;
        this.failing = false;
      },
      (err) => this.failed(batch, err),
    );
    if (!(result instanceof Promise)) return DONE;
    const running = result.finally(() => {
      this.running = null;
      if (this.queue.length) this.schedule();
    });
    this.running = running;
    return running;
  }

  private failed(batch: Write<C>[], err: unknown): Maybe {
    const at = this.opts.now ? this.opts.now() : performance.now();
    if (isBusy(err) && (this.busySince === null || at - this.busySince < BUSY_GIVE_UP_MS)) {
      // Locked by another connection: keep the writes, in order, and try again later.
      if (this.busySince === null) {
        this.busySince = at;
        this.busyReported = false;
        this.backoffMs = BUSY_BACKOFF_MS;
      } else {
        this.backoffMs = Math.min(BUSY_BACKOFF_MAX_MS, this.backoffMs * 2);
        if (!this.busyReported && at - this.busySince >= BUSY_REPORT_MS) {
          this.busyReported = true;
          this.report(
            `the database has been locked for ${((at - this.busySince) / 1000).toFixed(1)} s; ${batch.length} writes wait (retried with a backoff for up to ${BUSY_GIVE_UP_MS / 1000} s)`,
            err,
          );
        }
      }
      this.queue = batch.concat(this.queue);
      this.schedule();
      return;
    }
    this.busySince = null;
    if (batch.length === 1 || this.opts.retryEach?.(err) === false) return this.drop(batch, batch.length, { what: batch[0]!.what, err });
    // The batch failed as a whole: each write alone, so one bad row does not lose the others.
    return this.each(batch, 0, 0, undefined);
  }

  /** Commits `batch[i..]` one write per transaction (synchronously while the commits are synchronous). */
  private each(batch: Write<C>[], i: number, failed: number, first: { what: string; err: unknown } | undefined): Maybe {
    for (; i < batch.length; i++) {
      const w = batch[i]!;
      let r: Maybe;
      try {
        r = this.opts.commit([w]);
      } catch (err) {
        failed++;
        first ??= { what: w.what, err };
        continue;
      }
      if (r instanceof Promise) {
        const next = i + 1;
        return r.then(
          () => this.each(batch, next, failed, first),
          (err: unknown) => this.each(batch, next, failed + 1, first ?? { what: w.what, err }),
        );
      }
    }
    return this.drop(batch, failed, first);
  }

  private drop(batch: Write<C>[], failed: number, first: { what: string; err: unknown } | undefined): void {
    this.failing = failed === batch.length;
    if (first) this.report(`could not ${first.what}${failed > 1 ? ` (and ${failed - 1} more of ${batch.length} writes)` : ''}; dropped`, first.err);
  }

  /** Commits what it can; what is still locked is reported as lost. A second call does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    const done = this.flush();
    // Closed from here on: later pushes are reported, not queued (they would outlive the connection).
    this.closed = true;
    await done;
    if (this.queue.length) this.report(`closing with ${this.queue.length} writes not committed (the database is locked)`, new Error('SQLITE_BUSY'));
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
  }

  /** A throwing error sink must not turn a failed write into an uncaught exception (flush runs on a timer). */
  private report(what: string, err: unknown): void {
    try {
      this.opts.onError(what, err);
    } catch {
      // Nothing left to tell.
    }
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.flush();
      },
      this.busySince === null ? (this.opts.flushMs ?? FLUSH_MS) : this.backoffMs,
    );
    this.timer.unref();
  }
}

/** `fn()` then `ok()`, or `bad(err)` if it threw or rejected; synchronous while `fn` is. */
function attempt(fn: () => Maybe, ok: () => void, bad: (err: unknown) => Maybe): Maybe {
  let r: Maybe;
  try {
    r = fn();
  } catch (err) {
    return bad(err);
  }
  return r instanceof Promise ? r.then(ok, bad) : ok();
}
