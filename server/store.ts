// Sessions, message history, call records, call transcripts and per-turn metrics: the `Store` interface, which
// the rest of EVA uses, and its zero-config implementation, one SQLite file. (store-pg.ts is the other, for
// EVA_DATABASE_URL: a PostgreSQL database that many nodes share.) Reads return Promises so that one interface
// fits both; here they run synchronously and resolve at once.
//
// better-sqlite3 runs every statement on the calling thread, so the rule is: nothing here may hold the event
// loop (and with it every call's audio) for more than a few ms. Measured on this machine (2 cores, local disk,
// WAL, synchronous=NORMAL): a write commits in 15-50 µs at the median, but about one in 300 took 10-16 ms
// (max 16 ms), every one of them a WAL auto-checkpoint, which fsyncs the WAL and the database on the committing
// thread. Hence:
// - writes are queued and committed together, in one transaction, FLUSH_MS after the first one (never inside
//   the audio callbacks that produced them); a read flushes the queue first, so it sees every earlier write
//   (store-writes.ts, which also holds the policy for a locked or failing file);
// - the main connection never checkpoints (wal_autocheckpoint=0): a worker thread with its own connection runs a
//   PASSIVE checkpoint every second, so the fsync happens off the event loop (store-checkpoint.ts);
// - the busy timeout is BUSY_TIMEOUT_MS, the longest a locked database may block the loop;
// - a failing database never throws into a caller: reads return nothing, writes are dropped, the error goes to
//   `onError` (the log), and `ping()` turns false until a write succeeds again (/health says "degraded");
// - old sessions and calls are pruned (EVA_RETENTION_DAYS) in bounded batches, at start and every hour.
// Reads are bounded (history by `limit`, through an index). Opening and migrating the file is done once at
// start-up.
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { EvaError } from './errors.js';
import { startCheckpointer, type Checkpointer } from './store-checkpoint.js';
import { FLUSH_MS, WriteQueue, type Write } from './store-writes.js';
import type { ChatMessage, ChatRole } from './providers/types.js';

// better-sqlite3 ships no TypeScript types and @types/better-sqlite3 is not installed: the slice EVA uses is
// typed here, and the module is loaded with require (it is CommonJS).
interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}
interface Statement {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
interface Database {
  readonly open: boolean;
  prepare(sql: string): Statement;
  exec(sql: string): Database;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  close(): Database;
}
type DatabaseCtor = new (path: string, options?: { timeout?: number }) => Database;
const Sqlite = createRequire(import.meta.url)('better-sqlite3') as DatabaseCtor;

/**
 * How long a statement waits for another connection's lock, blocking the event loop meanwhile: 20 ms is one audio
 * frame, which the page's jitter buffer (35-40 ms) absorbs, and longer than a short write by another process
 * (the sqlite3 shell, a backup) takes. A write that still finds the file locked waits in the queue and is retried
 * with a backoff (store-writes.ts: 50 ms doubling to 1 s, so a lock held for minutes costs the loop at most 20 ms
 * a second); reads meanwhile read what is committed without waiting. EVA is the only writer in normal use: the
 * checkpoint worker's PASSIVE checkpoints never take the write lock.
 */
export const BUSY_TIMEOUT_MS = 20;
/** Rows (sessions or calls) deleted per retention batch; each batch is one short transaction, a macrotask apart. */
export const PRUNE_BATCH = 100;
export const PRUNE_EVERY_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Schema migrations, in order; `PRAGMA user_version` holds how many have been applied. Append, never edit one
 * that has shipped, and append its PostgreSQL twin to store-pg.ts (the same tables, columns and indexes). Times
 * are Unix epoch milliseconds; JSON columns hold objects. Exported for tests that break and repair a database.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sessions (
     id            TEXT PRIMARY KEY,
     created_at    INTEGER NOT NULL,
     updated_at    INTEGER NOT NULL,
     system_prompt TEXT
   );
   CREATE TABLE messages (
     id         INTEGER PRIMARY KEY AUTOINCREMENT,
     session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
     turn       INTEGER NOT NULL,
     role       TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
     content    TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX messages_by_session ON messages(session_id, id);
   CREATE TABLE calls (
     id         TEXT PRIMARY KEY,
     session_id TEXT REFERENCES sessions(id) ON DELETE SET NULL,
     started_at INTEGER NOT NULL,
     ended_at   INTEGER,
     end_reason TEXT,
     providers  TEXT NOT NULL DEFAULT '{}'
   );
   CREATE TABLE call_transcript (
     id          INTEGER PRIMARY KEY AUTOINCREMENT,
     call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
     turn        INTEGER NOT NULL,
     role        TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
     text        TEXT NOT NULL,
     interrupted INTEGER NOT NULL DEFAULT 0,
     at          INTEGER NOT NULL
   );
   CREATE INDEX call_transcript_by_call ON call_transcript(call_id, id);
   CREATE TABLE turn_metrics (
     call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
     turn    INTEGER NOT NULL,
     stages  TEXT NOT NULL,
     at      INTEGER NOT NULL,
     PRIMARY KEY (call_id, turn)
   );`,
  // Retention deletes by age; deleting a session sets its calls' session_id to NULL, which needs the last index.
  `CREATE INDEX sessions_by_updated ON sessions(updated_at);
   CREATE INDEX calls_by_started ON calls(started_at);
   CREATE INDEX calls_by_session ON calls(session_id);`,
];

/** The schema version this code writes: the number of migrations. */
export const SCHEMA_VERSION = MIGRATIONS.length;

export interface Session {
  id: string;
  createdAt: number;
  updatedAt: number;
  systemPrompt: string | null;
}

export interface StoredMessage extends ChatMessage {
  turn: number;
  createdAt: number;
}

export interface CallRecord {
  id: string;
  sessionId: string | null;
  startedAt: number;
  endedAt: number | null;
  endReason: string | null;
  providers: Record<string, string>;
}

export interface TranscriptEntry {
  turn: number;
  role: 'user' | 'assistant';
  text: string;
  /** The assistant was cut off by a barge-in; `text` is what was heard. */
  interrupted: boolean;
  at: number;
}

export interface TurnMetricsRecord {
  turn: number;
  /** Stage durations in ms, keyed as in the `metrics` event (`eou_ms`, `stt_ms`, …). */
  stages: Record<string, number>;
  at: number;
}

export interface StoreOptions {
  /** Clock for timestamps (epoch ms); tests inject one. */
  now?: () => number;
  /** Sessions and calls older than this many days are pruned (EVA_RETENTION_DAYS); 0 keeps everything. Default 30. */
  retentionDays?: number;
  /** Told about every storage failure (the store never throws them at its callers). Default: stderr. */
  onError?: (what: string, err: unknown) => void;
  /** Delay before queued writes are committed, ms. Default FLUSH_MS. */
  flushMs?: number;
}

/** Which implementation: SQLite (the default) or PostgreSQL (EVA_DATABASE_URL). */
export type StoreKind = 'sqlite' | 'postgres';

export interface PruneResult {
  sessions: number;
  calls: number;
  batches: number;
  /** The longest one batch held the event loop, ms. */
  maxBatchMs: number;
}

/** One retention batch: deletes at most PRUNE_BATCH calls and PRUNE_BATCH sessions older than `cutoff`. */
export type PruneBatch = (cutoff: number) => { calls: number; sessions: number } | Promise<{ calls: number; sessions: number }>;

/**
 * The retention both stores run (store.ts, store-pg.ts): batches, a macrotask apart so audio and requests run
 * between them, until both come back short; one prune at a time; at start and every PRUNE_EVERY_MS while `days`
 * > 0. A failing batch ends that prune and goes to `onError`. `stop()` resolves when a prune in flight has ended.
 */
export function startRetention(opts: {
  days: number;
  now: () => number;
  /** Before the first batch (commit the queued writes). */
  before(): void | Promise<void>;
  stopped(): boolean;
  batch: PruneBatch;
  onError(what: string, err: unknown): void;
}): { prune(): Promise<PruneResult>; stop(): Promise<void> } {
  let pruning: Promise<PruneResult> | null = null;
  async function pruneAll(): Promise<PruneResult> {
    const out: PruneResult = { sessions: 0, calls: 0, batches: 0, maxBatchMs: 0 };
    if (!(opts.days > 0)) return out;
    const cutoff = opts.now() - opts.days * DAY_MS;
    await opts.before();
    for (;;) {
      if (opts.stopped()) return out;
      const t0 = performance.now();
      let done: { calls: number; sessions: number };
      try {
        done = await opts.batch(cutoff);
      } catch (err) {
        opts.onError('prune old sessions', err);
        return out;
      }
      out.calls += done.calls;
      out.sessions += done.sessions;
      out.batches++;
      out.maxBatchMs = Math.max(out.maxBatchMs, performance.now() - t0);
      if (done.calls < PRUNE_BATCH && done.sessions < PRUNE_BATCH) return out;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  const prune = (): Promise<PruneResult> => (pruning ??= pruneAll().finally(() => (pruning = null)));
  let timer: NodeJS.Timeout | null = null;
  if (opts.days > 0) {
    setImmediate(() => void prune());
    timer = setInterval(() => void prune(), PRUNE_EVERY_MS);
    timer.unref();
  }
  return {
    prune,
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      await pruning;
    },
  };
}

/**
 * Writes are queued (committed within FLUSH_MS, or by the next read), fire-and-forget, and never throw; reads
 * flush the queue first, so they see every earlier write of this process, and resolve with nothing when the
 * database fails (they never reject). Failures go to `onError`.
 */
export interface Store {
  readonly kind: StoreKind;
  /** Where the data lives, fit to print: the SQLite file, or the PostgreSQL URL without its password. */
  readonly path: string;
  readonly schemaVersion: number;
  /** Writes waiting for the next flush. */
  readonly pending: number;
  /**
   * Creates a session; `id` defaults to a random UUID. Returns the id. A session that exists already stays as it
   * is (its prompt too): two nodes may both create the one a caller named.
   */
  createSession(opts?: { id?: string; systemPrompt?: string | null }): string;
  getSession(id: string): Promise<Session | undefined>;
  /**
   * Appends one message. Creates the session when it does not exist yet and marks it updated. Without `turn`,
   * the message belongs to the session's latest turn (0 for the first).
   */
  appendMessage(sessionId: string, msg: ChatMessage & { turn?: number }): void;
  /**
   * Appends the messages of one new turn atomically, under the next turn index (taken by the database when it is
   * committed, so two nodes appending to one session never share an index). Creates the session when needed.
   */
  appendTurn(sessionId: string, msgs: readonly ChatMessage[]): void;
  /** The last `limit` messages of a session, oldest first. */
  history(sessionId: string, limit: number): Promise<StoredMessage[]>;
  /** Records a call's start; a `sessionId` that does not exist yet is created. A duplicate call id is reported, not thrown. */
  startCall(call: { id: string; sessionId?: string | null; providers?: Record<string, string> }): void;
  /** Records a call's end; only the first end counts. */
  endCall(id: string, reason: string): void;
  getCall(id: string): Promise<CallRecord | undefined>;
  appendTranscript(callId: string, entry: { turn: number; role: 'user' | 'assistant'; text: string; interrupted?: boolean }): void;
  transcript(callId: string): Promise<TranscriptEntry[]>;
  /** Records (or replaces) one turn's stage timings. */
  recordTurnMetrics(callId: string, turn: number, stages: Record<string, number>): void;
  turnMetrics(callId: string): Promise<TurnMetricsRecord[]>;
  /** Commits the queued writes now (close and every read do it too); resolves when they are in. Never rejects. */
  flush(): Promise<void>;
  /** Deletes sessions and calls older than the retention, in batches; resolves with what went. */
  prune(): Promise<PruneResult>;
  /** True when the database answers and the last write did not fail; for /health. */
  ping(): Promise<boolean>;
  /** Commits what is queued and closes the file (or the pool); a second call does nothing. */
  close(): Promise<void>;
}

interface SessionRow { id: string; created_at: number; updated_at: number; system_prompt: string | null }
interface MessageRow { role: ChatRole; content: string; turn: number; created_at: number }
interface CallRow { id: string; session_id: string | null; started_at: number; ended_at: number | null; end_reason: string | null; providers: string }
interface TranscriptRow { turn: number; role: 'user' | 'assistant'; text: string; interrupted: number; at: number }
interface MetricsRow { turn: number; stages: string; at: number }

function migrate(db: Database, path: string): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new EvaError(
      'internal',
      `database ${path} has schema version ${current}, newer than this EVA knows (${MIGRATIONS.length}); use a newer EVA or another EVA_DATA_DIR`,
      { status: 500 },
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    // Each step and its version bump commit together, so a crash mid-migration leaves the previous version.
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return MIGRATIONS.length;
}

function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** Opens (creating the directory and file when needed) and migrates the database; `':memory:'` for a private one. */
export function openStore(path: string, opts: StoreOptions = {}): Store {
  const now = opts.now ?? Date.now;
  const flushMs = opts.flushMs ?? FLUSH_MS;
  const retentionDays = opts.retentionDays ?? 30;
  const onError = opts.onError ?? ((what: string, err: unknown) => process.stderr.write(`eva: database: ${what}: ${(err as Error)?.message ?? String(err)}\n`));
  const inMemory = path === ':memory:' || path.includes('mode=memory');
  if (path !== ':memory:' && !path.startsWith('file:')) mkdirSync(dirname(path), { recursive: true });
  let db: Database;
  try {
    db = new Sqlite(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new EvaError('internal', `cannot open database ${path}: ${(err as Error).message}`, { status: 500, cause: err });
  }
  let schemaVersion: number;
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    schemaVersion = migrate(db, path);
  } catch (err) {
    db.close();
    if (err instanceof EvaError) throw err;
    throw new EvaError('internal', `cannot prepare database ${path}: ${(err as Error).message}`, { status: 500, cause: err });
  }

  const q = {
    insertSession: db.prepare('INSERT INTO sessions (id, created_at, updated_at, system_prompt) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING'),
    touchSession: db.prepare(
      'INSERT INTO sessions (id, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at',
    ),
    getSession: db.prepare('SELECT id, created_at, updated_at, system_prompt FROM sessions WHERE id = ?'),
    lastTurn: db.prepare('SELECT MAX(turn) AS turn FROM messages WHERE session_id = ?'),
    insertMessage: db.prepare('INSERT INTO messages (session_id, turn, role, content, created_at) VALUES (?, ?, ?, ?, ?)'),
    history: db.prepare(
      'SELECT role, content, turn, created_at FROM (SELECT id, role, content, turn, created_at FROM messages WHERE session_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id',
    ),
    insertCall: db.prepare('INSERT INTO calls (id, session_id, started_at, providers) VALUES (?, ?, ?, ?)'),
    endCall: db.prepare('UPDATE calls SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL'),
    getCall: db.prepare('SELECT id, session_id, started_at, ended_at, end_reason, providers FROM calls WHERE id = ?'),
    insertTranscript: db.prepare('INSERT INTO call_transcript (call_id, turn, role, text, interrupted, at) VALUES (?, ?, ?, ?, ?, ?)'),
    transcript: db.prepare('SELECT turn, role, text, interrupted, at FROM call_transcript WHERE call_id = ? ORDER BY id'),
    upsertMetrics: db.prepare(
      'INSERT INTO turn_metrics (call_id, turn, stages, at) VALUES (?, ?, ?, ?) ON CONFLICT(call_id, turn) DO UPDATE SET stages = excluded.stages, at = excluded.at',
    ),
    turnMetrics: db.prepare('SELECT turn, stages, at FROM turn_metrics WHERE call_id = ? ORDER BY turn'),
    pruneCalls: db.prepare('DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE started_at < ? LIMIT ?)'),
    pruneSessions: db.prepare('DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE updated_at < ? LIMIT ?)'),
    ping: db.prepare('SELECT 1 AS ok'),
  };

  const lastTurn = (sessionId: string): number | null => (q.lastTurn.get(sessionId) as { turn: number | null }).turn;

  const commit = db.transaction((batch: readonly Write[]) => {
    for (const w of batch) w.run();
  });
  // The commit is synchronous, so `writes.flush()` has committed (or reported) everything when it returns.
  const writes = new WriteQueue({ commit: (batch) => (db.open ? commit(batch) : undefined), onError, flushMs });
  const enqueue = (what: string, run: () => void): void => writes.push(what, run);
  const flush = (): void => void writes.flush();
  let closed = false;

  /** Reads see every earlier write (but do not wait out a lock), and a failing read returns `fallback`. */
  function read<T>(what: string, fallback: T, fn: () => T): T {
    if (!writes.locked) flush();
    try {
      return fn();
    } catch (err) {
      onError(`could not ${what}`, err);
      return fallback;
    }
  }

  const checkpointer: Checkpointer | null = inMemory
    ? null
    : startCheckpointer(
        path,
        (on) => {
          try {
            if (db.open) db.pragma(`wal_autocheckpoint = ${on ? 1000 : 0}`);
          } catch (err) {
            onError('set wal_autocheckpoint', err);
          }
        },
        onError,
      );

  // --- retention ---------------------------------------------------------------------------------------------
  const retention = startRetention({
    days: retentionDays,
    now,
    before: flush,
    stopped: () => closed || !db.open,
    batch: (cutoff) => {
      let calls = 0;
      let sessions = 0;
      db.transaction(() => {
        calls = q.pruneCalls.run(cutoff, PRUNE_BATCH).changes;
        sessions = q.pruneSessions.run(cutoff, PRUNE_BATCH).changes;
      })();
      return { calls, sessions };
    },
    onError,
  });

  return {
    kind: 'sqlite',
    path,
    schemaVersion,
    get pending() {
      return writes.pending;
    },
    createSession(o = {}) {
      const at = now();
      const id = o.id ?? randomUUID();
      const prompt = o.systemPrompt ?? null;
      enqueue('create a session', () => q.insertSession.run(id, at, at, prompt));
      return id;
    },
    async getSession(id) {
      const r = read('read a session', undefined, () => q.getSession.get(id) as SessionRow | undefined);
      return r && { id: r.id, createdAt: r.created_at, updatedAt: r.updated_at, systemPrompt: r.system_prompt };
    },
    appendMessage(sessionId, msg) {
      const at = now();
      enqueue('store a message', () => {
        q.touchSession.run(sessionId, at, at);
        const turn = msg.turn ?? lastTurn(sessionId) ?? 0;
        q.insertMessage.run(sessionId, turn, msg.role, msg.content, at);
      });
    },
    appendTurn(sessionId, msgs) {
      const at = now();
      const copy = msgs.map((m) => ({ role: m.role, content: m.content }));
      enqueue('store a turn', () => {
        q.touchSession.run(sessionId, at, at);
        const prev = lastTurn(sessionId);
        const turn = prev === null ? 0 : prev + 1;
        for (const m of copy) q.insertMessage.run(sessionId, turn, m.role, m.content, at);
      });
    },
    async history(sessionId, limit) {
      if (!(limit > 0)) return [];
      return read('read the history', [] as MessageRow[], () => q.history.all(sessionId, Math.floor(limit)) as MessageRow[]).map((r) => ({
        role: r.role,
        content: r.content,
        turn: r.turn,
        createdAt: r.created_at,
      }));
    },
    startCall(c) {
      const at = now();
      const providers = JSON.stringify(c.providers ?? {});
      enqueue('record a call', () => {
        if (c.sessionId) q.touchSession.run(c.sessionId, at, at);
        q.insertCall.run(c.id, c.sessionId ?? null, at, providers);
      });
    },
    endCall(id, reason) {
      const at = now();
      enqueue('record the end of a call', () => q.endCall.run(at, reason, id));
    },
    async getCall(id) {
      const r = read('read a call', undefined, () => q.getCall.get(id) as CallRow | undefined);
      return (
        r && {
          id: r.id,
          sessionId: r.session_id,
          startedAt: r.started_at,
          endedAt: r.ended_at,
          endReason: r.end_reason,
          providers: parseJson<Record<string, string>>(r.providers, {}),
        }
      );
    },
    appendTranscript(callId, e) {
      const at = now();
      enqueue('store a transcript line', () => q.insertTranscript.run(callId, e.turn, e.role, e.text, e.interrupted ? 1 : 0, at));
    },
    async transcript(callId) {
      return read('read a transcript', [] as TranscriptRow[], () => q.transcript.all(callId) as TranscriptRow[]).map((r) => ({
        turn: r.turn,
        role: r.role,
        text: r.text,
        interrupted: r.interrupted !== 0,
        at: r.at,
      }));
    },
    recordTurnMetrics(callId, turn, stages) {
      const at = now();
      const json = JSON.stringify(stages);
      enqueue('store turn metrics', () => q.upsertMetrics.run(callId, turn, json, at));
    },
    async turnMetrics(callId) {
      return read('read turn metrics', [] as MetricsRow[], () => q.turnMetrics.all(callId) as MetricsRow[]).map((r) => ({
        turn: r.turn,
        stages: parseJson<Record<string, number>>(r.stages, {}),
        at: r.at,
      }));
    },
    flush: () => writes.flush(),
    prune: retention.prune,
    async ping() {
      if (!db.open || writes.failing) return false;
      try {
        return (q.ping.get() as { ok: number }).ok === 1;
      } catch {
        return false;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await writes.close();
      void retention.stop();
      await checkpointer?.close();
      if (!db.open) return;
      try {
        db.pragma('optimize');
      } catch (err) {
        onError('optimize on close', err);
      } finally {
        db.close();
      }
    },
  };
}
