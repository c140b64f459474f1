// The store's write queue (store.ts): writes wait here and are committed together, in one transaction, FLUSH_MS
// after the first one, so a turn's rows cost one commit and no commit runs inside the callback that produced
// them. The policy for failures lives here too: a locked file keeps the writes and retries with a backoff; any
// other failure retries each write alone (one bad row loses only itself) and then drops what failed. Nothing
// here throws at a caller; every failure goes to `onError`.

/** Queued writes are committed this long after the first one: 20 ms audio frames see no commit, a turn's rows go in one. */
export const FLUSH_MS = 50;
/** More queued writes than this (a database stuck for minutes) drop the oldest. */
export const MAX_QUEUED_WRITES = 10_000;
/** A locked file is retried after this, doubling up to BUSY_BACKOFF_MAX_MS, for up to BUSY_GIVE_UP_MS. */
const BUSY_BACKOFF_MS = 50;
const BUSY_BACKOFF_MAX_MS = 1000;
const BUSY_GIVE_UP_MS = 60_000;

export interface Write {
  what: string;
  run(): void;
}

const isBusy = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(code);
};

export interface WriteQueueOptions {
  /** Runs the writes in one transaction; throws if it rolled back. */
  commit(batch: readonly Write[]): void;
  onError(what: string, err: unknown): void;
  flushMs?: number;
  /** Monotonic ms. Default performance.now. */
  now?: () => number;
}

export class WriteQueue {
  private queue: Write[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** While the file is locked by another connection: since when, and the current backoff. */
  private busySince: number | null = null;
  private backoffMs = 0;
  private dropped = 0;
  private closed = false;
  /** The last flush lost every write it had (not a lock): the database is failing. */
  failing = false;

  constructor(private readonly opts: WriteQueueOptions) {}

  get pending(): number {
    return this.queue.length;
  }

  /** True while writes wait out another connection's lock (reads then do not flush). */
  get locked(): boolean {
    return this.busySince !== null;
  }

  push(what: string, run: () => void): void {
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

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    try {
      this.opts.commit(batch);
      this.busySince = null;
      this.failing = false;
      return;
    } catch (err) {
      const at = this.opts.now ? this.opts.now() : performance.now();
      if (isBusy(err) && (this.busySince === null || at - this.busySince < BUSY_GIVE_UP_MS)) {
        // Locked by another connection: keep the writes, in order, and try again later.
        if (this.busySince === null) {
          this.busySince = at;
          this.backoffMs = BUSY_BACKOFF_MS;
          this.report(`the database is locked; ${batch.length} writes wait (retried with a backoff for up to ${BUSY_GIVE_UP_MS / 1000} s)`, err);
        } else {
          this.backoffMs = Math.min(BUSY_BACKOFF_MAX_MS, this.backoffMs * 2);
        }
        this.queue = batch.concat(this.queue);
        this.schedule();
        return;
      }
      this.busySince = null;
    }
    // The batch failed as a whole: each write alone, so one bad row does not lose the others.
    let failed = 0;
    let first: { what: string; err: unknown } | undefined;
    for (const w of batch) {
      try {
        this.opts.commit([w]);
      } catch (err) {
        failed++;
        first ??= { what: w.what, err };
      }
    }
    this.failing = failed === batch.length;
    if (first) this.report(`could not ${first.what}${failed > 1 ? ` (and ${failed - 1} more of ${batch.length} writes)` : ''}; dropped`, first.err);
  }

  /** Commits what it can; what is still locked is reported as lost. A second call does nothing. */
  close(): void {
    if (this.closed) return;
    this.flush();
    if (this.queue.length) this.report(`closing with ${this.queue.length} writes not committed (the database is locked)`, new Error('SQLITE_BUSY'));
    this.closed = true;
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
        this.flush();
      },
      this.busySince === null ? (this.opts.flushMs ?? FLUSH_MS) : this.backoffMs,
    );
    this.timer.unref();
  }
}
