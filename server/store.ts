// Sessions, message history, call records, call transcripts and per-turn metrics, in one SQLite file.
//
// Why synchronous is fine: better-sqlite3 runs every statement on the calling thread. With WAL and
// synchronous=NORMAL a commit appends to the WAL without an fsync, so the writes EVA makes (a handful of rows
// per turn, prepared once) take ~10-50 µs on this machine, well under the 10 ms server-overhead budget and far
// cheaper than the promise hops of an async driver. Where it is not fine: anything that scans (a long
// history, an export, VACUUM), opening and migrating a file (done once at start-up), and a slow or network disk,
// where a WAL checkpoint can stall for milliseconds. So: call the store per turn or per call, never per audio
// packet, keep history reads bounded by `limit`, and keep the data directory on a local disk.
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { EvaError } from './errors.js';
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
 * Schema migrations, in order; `PRAGMA user_version` holds how many have been applied. Append, never edit one
 * that has shipped. Times are Unix epoch milliseconds; JSON columns hold objects.
 */
const MIGRATIONS: readonly string[] = [
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
}

export interface Store {
  readonly path: string;
  readonly schemaVersion: number;
  /** Creates a session; `id` defaults to a random UUID. Throws if the id exists. */
  createSession(opts?: { id?: string; systemPrompt?: string | null }): Session;
  getSession(id: string): Session | undefined;
  /**
   * Appends one message. Creates the session when it does not exist yet and marks it updated. Without `turn`,
   * the message belongs to the session's latest turn (0 for the first).
   */
  appendMessage(sessionId: string, msg: ChatMessage & { turn?: number }): StoredMessage;
  /** Appends the messages of one new turn atomically, under the next turn index, which it returns. */
  appendTurn(sessionId: string, msgs: readonly ChatMessage[]): number;
  /** The last `limit` messages of a session, oldest first. */
  history(sessionId: string, limit: number): StoredMessage[];
  /** Records a call's start; a `sessionId` that does not exist yet is created. Throws if the call id exists. */
  startCall(call: { id: string; sessionId?: string | null; providers?: Record<string, string> }): void;
  /** Records a call's end; only the first end counts. */
  endCall(id: string, reason: string): void;
  getCall(id: string): CallRecord | undefined;
  appendTranscript(callId: string, entry: { turn: number; role: 'user' | 'assistant'; text: string; interrupted?: boolean }): void;
  transcript(callId: string): TranscriptEntry[];
  /** Records (or replaces) one turn's stage timings. */
  recordTurnMetrics(callId: string, turn: number, stages: Record<string, number>): void;
  turnMetrics(callId: string): TurnMetricsRecord[];
  /** True when the database answers a trivial query; for /health. */
  ping(): boolean;
  /** Closes the file; a second call does nothing. */
  close(): void;
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
  if (path !== ':memory:' && !path.startsWith('file:')) mkdirSync(dirname(path), { recursive: true });
  let db: Database;
  try {
    // timeout: how long a write waits for another process's lock. It blocks the event loop, so keep it short;
    // EVA is the only writer in normal use.
    db = new Sqlite(path, { timeout: 250 });
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
    insertSession: db.prepare('INSERT INTO sessions (id, created_at, updated_at, system_prompt) VALUES (?, ?, ?, ?)'),
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
    ping: db.prepare('SELECT 1 AS ok'),
  };

  const lastTurn = (sessionId: string): number | null => (q.lastTurn.get(sessionId) as { turn: number | null }).turn;

  const appendMessage = db.transaction((sessionId: string, msg: ChatMessage & { turn?: number }): StoredMessage => {
    const at = now();
    q.touchSession.run(sessionId, at, at);
    const turn = msg.turn ?? lastTurn(sessionId) ?? 0;
    q.insertMessage.run(sessionId, turn, msg.role, msg.content, at);
    return { role: msg.role, content: msg.content, turn, createdAt: at };
  });

  const appendTurn = db.transaction((sessionId: string, msgs: readonly ChatMessage[]): number => {
    const at = now();
    q.touchSession.run(sessionId, at, at);
    const prev = lastTurn(sessionId);
    const turn = prev === null ? 0 : prev + 1;
    for (const m of msgs) q.insertMessage.run(sessionId, turn, m.role, m.content, at);
    return turn;
  });

  const startCall = db.transaction((c: { id: string; sessionId?: string | null; providers?: Record<string, string> }): void => {
    const at = now();
    if (c.sessionId) q.touchSession.run(c.sessionId, at, at);
    q.insertCall.run(c.id, c.sessionId ?? null, at, JSON.stringify(c.providers ?? {}));
  });

  return {
    path,
    schemaVersion,
    createSession(o = {}) {
      const at = now();
      const s: Session = { id: o.id ?? randomUUID(), createdAt: at, updatedAt: at, systemPrompt: o.systemPrompt ?? null };
      q.insertSession.run(s.id, at, at, s.systemPrompt);
      return s;
    },
    getSession(id) {
      const r = q.getSession.get(id) as SessionRow | undefined;
      return r && { id: r.id, createdAt: r.created_at, updatedAt: r.updated_at, systemPrompt: r.system_prompt };
    },
    appendMessage: (sessionId, msg) => appendMessage(sessionId, msg),
    appendTurn: (sessionId, msgs) => appendTurn(sessionId, msgs),
    history(sessionId, limit) {
      if (!(limit > 0)) return [];
      return (q.history.all(sessionId, Math.floor(limit)) as MessageRow[]).map((r) => ({
        role: r.role,
        content: r.content,
        turn: r.turn,
        createdAt: r.created_at,
      }));
    },
    startCall: (c) => startCall(c),
    endCall(id, reason) {
      q.endCall.run(now(), reason, id);
    },
    getCall(id) {
      const r = q.getCall.get(id) as CallRow | undefined;
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
      q.insertTranscript.run(callId, e.turn, e.role, e.text, e.interrupted ? 1 : 0, now());
    },
    transcript(callId) {
      return (q.transcript.all(callId) as TranscriptRow[]).map((r) => ({
        turn: r.turn,
        role: r.role,
        text: r.text,
        interrupted: r.interrupted !== 0,
        at: r.at,
      }));
    },
    recordTurnMetrics(callId, turn, stages) {
      q.upsertMetrics.run(callId, turn, JSON.stringify(stages), now());
    },
    turnMetrics(callId) {
      return (q.turnMetrics.all(callId) as MetricsRow[]).map((r) => ({
        turn: r.turn,
        stages: parseJson<Record<string, number>>(r.stages, {}),
        at: r.at,
      }));
    },
    ping() {
      if (!db.open) return false;
      try {
        return (q.ping.get() as { ok: number }).ok === 1;
      } catch {
        return false;
      }
    },
    close() {
      if (!db.open) return;
      try {
        db.pragma('optimize');
      } finally {
        db.close();
      }
    },
  };
}
