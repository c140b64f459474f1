// The Store (store.ts) on PostgreSQL, for EVA_DATABASE_URL: one database that many EVA nodes share. Same tables,
// columns and indexes as the SQLite file, same rules for callers:
// - writes are queued and committed together, one transaction per flush, FLUSH_MS after the first one
//   (store-writes.ts, shared with SQLite); a read flushes first, so it sees every earlier write of this process;
// - the turn index of `appendTurn` is taken inside that transaction, after the upsert of the session row, which
//   locks the row until the commit: a second node appending to the same session waits for it there, then reads
//   the new maximum (READ COMMITTED takes a fresh snapshot per statement), so two nodes never share an index;
// - a pg.Pool of POOL_MAX connections, with connect and statement timeouts: a database that hangs costs a read
//   or a flush STATEMENT_TIMEOUT_MS at most, off the event loop (pg is asynchronous; audio never waits on it);
// - a failing database never throws into a caller: reads resolve with nothing, writes are dropped, the error
//   goes to `onError` with the password taken out, and `ping()` is false until a write goes through again
//   (ping itself tries a rolled-back write while the store is failing, so a quiet node recovers too);
// - migrations are tracked in eva_schema_migrations and applied in one transaction under an advisory lock, so
//   nodes starting together apply each one once; old sessions and calls are pruned in batches (SKIP LOCKED: two
//   nodes pruning at once do not wait on each other).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { EvaError } from './errors.js';
import { PRUNE_BATCH, startRetention, type Store, type StoreOptions } from './store.js';
import { FLUSH_MS, WriteQueue } from './store-writes.js';
import type { ChatRole } from './providers/types.js';

/**
 * Connections per node. A flush holds one for a few ms and reads take one each; 4 covers a node's bursts (a
 * flush, a prune batch, reads of calls starting together) while 50 nodes stay within PostgreSQL's default
 * max_connections (100) twice over.
 */
export const POOL_MAX = 4;
/** A database that does not accept a connection within this is reported as down (the read or flush gives up). */
export const CONNECT_TIMEOUT_MS = 2000;
/** Longest one statement may run on the server (SET statement_timeout); a read then resolves empty. */
export const STATEMENT_TIMEOUT_MS = 2000;
/** Migrations may wait for another node's (under the advisory lock) and build indexes: longer than a statement. */
const MIGRATION_TIMEOUT_MS = 60_000;
/** pg_advisory_xact_lock key that serialises migrations between nodes ("EVA" and a version of this scheme). */
const MIGRATION_LOCK = 0x455641_01;

/**
 * The PostgreSQL twins of store.ts MIGRATIONS, in the same order (append, never edit one that has shipped).
 * Epoch ms are BIGINT; the JSON columns are JSONB; the boolean is a BOOLEAN.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sessions (
     id            TEXT PRIMARY KEY,
     created_at    BIGINT NOT NULL,
     updated_at    BIGINT NOT NULL,
     system_prompt TEXT
   );
   CREATE TABLE messages (
     id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
     turn       INTEGER NOT NULL,
     role       TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
     content    TEXT NOT NULL,
     created_at BIGINT NOT NULL
   );
   CREATE INDEX messages_by_session ON messages(session_id, id);
   CREATE TABLE calls (
     id         TEXT PRIMARY KEY,
     session_id TEXT REFERENCES sessions(id) ON DELETE SET NULL,
     started_at BIGINT NOT NULL,
     ended_at   BIGINT,
     end_reason TEXT,
     providers  JSONB NOT NULL DEFAULT '{}'
   );
   CREATE TABLE call_transcript (
     id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
     turn        INTEGER NOT NULL,
     role        TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
     text        TEXT NOT NULL,
     interrupted BOOLEAN NOT NULL DEFAULT false,
     at          BIGINT NOT NULL
   );
   CREATE INDEX call_transcript_by_call ON call_transcript(call_id, id);
   CREATE TABLE turn_metrics (
     call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
     turn    INTEGER NOT NULL,
     stages  JSONB NOT NULL,
     at      BIGINT NOT NULL,
     PRIMARY KEY (call_id, turn)
   );`,
  `CREATE INDEX sessions_by_updated ON sessions(updated_at);
   CREATE INDEX calls_by_started ON calls(started_at);
   CREATE INDEX calls_by_session ON calls(session_id);`,
];

export interface PgStoreOptions extends StoreOptions {
  /** Pool size; default POOL_MAX. */
  poolMax?: number;
}

/** The URL without its password (in the userinfo or a `password=` parameter): what logs and /health show. */
export function redactDatabaseUrl(raw: string): string {
  try {
    const u = new URL(raw);
    u.password = '';
    u.searchParams.delete('password');
    return u.toString();
  } catch {
    return 'postgres://(unparseable URL)';
  }
}

/** The password as it may appear in a message: decoded and as written in the URL. */
function secretsOf(raw: string): string[] {
  const out = new Set<string>();
  try {
    const u = new URL(raw);
    for (const p of [u.password, u.searchParams.get('password') ?? '']) {
      if (!p) continue;
      out.add(p);
      try {
        out.add(decodeURIComponent(p));
      } catch {
        // Not percent-encoded: the raw form is enough.
      }
    }
  } catch {
    // config.ts has checked the URL; nothing to take out of an unparseable one.
  }
  out.add(raw);
  return [...out].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

/** Does the error say the connection (not one statement) failed? Then every other write would fail the same way. */
export function isConnectionError(err: unknown): boolean {
  // The server's errors carry a SQLSTATE; connection exceptions (08), insufficient resources (53) and operator
  // intervention (57: shutdown, statement timeout) are the database's state, not the row's. Anything else
  // (ECONNREFUSED, "timeout exceeded when trying to connect", "Connection terminated") is the socket.
  return !(err instanceof pg.DatabaseError) || /^(08|53|57)/.test(err.code ?? '');
}

interface SessionRow { id: string; created_at: string; updated_at: string; system_prompt: string | null }
interface MessageRow { role: ChatRole; content: string; turn: number; created_at: string }
interface CallRow { id: string; session_id: string | null; started_at: string; ended_at: string | null; end_reason: string | null; providers: Record<string, string> | null }
interface TranscriptRow { turn: number; role: 'user' | 'assistant'; text: string; interrupted: boolean; at: string }
interface MetricsRow { turn: number; stages: Record<string, number> | null; at: string }

/** PostgreSQL refuses NUL in TEXT and JSONB; SQLite keeps it. Dropped here so that such a message is still stored. */
const txt = (s: string): string => (s.includes('\0') ? s.replaceAll('\0', '') : s);
const json = (v: unknown): string => txt(JSON.stringify(v ?? {}));

const TOUCH_SESSION =
  'INSERT INTO sessions (id, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT (id) DO UPDATE SET updated_at = EXCLUDED.updated_at';

/**
 * Connects, migrates and returns the store. Throws an EvaError naming the database (without its password) when
 * it cannot connect or migrate: EVA does not start on a database it cannot prepare.
 */
export async function openPgStore(url: string, opts: PgStoreOptions = {}): Promise<Store> {
  const now = opts.now ?? Date.now;
  const retentionDays = opts.retentionDays ?? 30;
  const where = redactDatabaseUrl(url);
  const secrets = secretsOf(url);
  /** The error's message with the password (and the raw URL) taken out; its SQLSTATE kept. */
  const clean = (err: unknown): Error => {
    let message = (err as Error)?.message ?? String(err);
    for (const s of secrets) message = message.split(s).join(s === url ? where : '***');
    const out = new Error(message);
    const code = (err as { code?: unknown } | null)?.code;
    if (code !== undefined) Object.assign(out, { code });
    return out;
  };
  const sink = opts.onError ?? ((what: string, err: unknown) => process.stderr.write(`eva: database: ${what}: ${(err as Error).message}\n`));
  const onError = (what: string, err: unknown): void => sink(what, clean(err));

  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolMax ?? POOL_MAX,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    // The client gives up a little after the server would have, for a server that no longer answers at all.
    query_timeout: STATEMENT_TIMEOUT_MS + 1000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'eva',
  });
  // An idle connection that the server drops (a restart, a failover) is reported; the pool replaces it.
  pool.on('error', (err) => onError('an idle connection was lost', err));

  /** One transaction on one pooled connection; a connection that fails mid-way is destroyed, not reused. */
  async function inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    // A checked-out client has no error listener of the pool's: without one, a socket error between two
    // statements would be an uncaught exception. The statement in flight rejects with it anyway.
    let lost: unknown = null;
    const onLost = (err: unknown): void => void (lost = err);
    client.on('error', onLost);
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      if (lost === null) {
        try {
          await client.query('ROLLBACK');
        } catch (e) {
          lost = e;
        }
      }
      throw err;
    } finally {
      client.off('error', onLost);
      client.release(lost === null ? undefined : (lost as Error));
    }
  }

  async function migrate(): Promise<number> {
    return inTransaction(async (c) => {
      await c.query(`SET LOCAL statement_timeout = ${MIGRATION_TIMEOUT_MS}`);
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query('CREATE TABLE IF NOT EXISTS eva_schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      const r = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM eva_schema_migrations');
      const current = r.rows[0]?.v ?? 0;
      if (current > MIGRATIONS.length) {
        throw new EvaError(
          'internal',
          `database ${where} has schema version ${current}, newer than this EVA knows (${MIGRATIONS.length}); use a newer EVA or another database`,
          { status: 500 },
        );
      }
      for (let v = current; v < MIGRATIONS.length; v++) {
        await c.query(MIGRATIONS[v]!);
        await c.query('INSERT INTO eva_schema_migrations (version, applied_at) VALUES ($1, $2)', [v + 1, Date.now()]);
      }
      return MIGRATIONS.length;
    });
  }

  let schemaVersion: number;
  try {
    schemaVersion = await migrate();
  } catch (err) {
    await pool.end().catch((e: unknown) => onError('close the pool', e));
    if (err instanceof EvaError) throw err;
    throw new EvaError('internal', `cannot prepare the PostgreSQL database ${where}: ${clean(err).message}`, { status: 500, cause: clean(err) });
  }

  const writes = new WriteQueue<pg.PoolClient>({
    commit: (batch) =>
      inTransaction(async (c) => {
        for (const w of batch) await w.run(c);
      }),
    onError,
    retryEach: (err) => !isConnectionError(err),
    flushMs: opts.flushMs ?? FLUSH_MS,
  });
  const enqueue = (what: string, run: (c: pg.PoolClient) => Promise<unknown>): void => writes.push(what, run);
  let closed = false;

  /** Reads see every earlier write of this process; a failing read resolves with `fallback`. */
  async function read<R extends pg.QueryResultRow, T>(what: string, fallback: T, sql: string, params: unknown[], map: (rows: R[]) => T): Promise<T> {
    await writes.flush();
    try {
      return map((await pool.query<R>(sql, params)).rows);
    } catch (err) {
      onError(`could not ${what}`, err);
      return fallback;
    }
  }

  // --- retention ---------------------------------------------------------------------------------------------
  const retention = startRetention({
    days: retentionDays,
    now,
    before: () => writes.flush(),
    stopped: () => closed,
    batch: (cutoff) =>
      inTransaction(async (c) => ({
        calls: (await c.query('DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE started_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)', [cutoff, PRUNE_BATCH])).rowCount ?? 0,
        sessions: (await c.query('DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)', [cutoff, PRUNE_BATCH])).rowCount ?? 0,
      })),
    onError,
  });

  const touch = (c: pg.PoolClient, sessionId: string, at: number) => c.query(TOUCH_SESSION, [txt(sessionId), at]);

  return {
    kind: 'postgres',
    path: where,
    schemaVersion,
    get pending() {
      return writes.pending;
    },
    createSession(o = {}) {
      const at = now();
      const id = o.id ?? randomUUID();
      const prompt = o.systemPrompt == null ? null : txt(o.systemPrompt);
      enqueue('create a session', (c) =>
        c.query('INSERT INTO sessions (id, created_at, updated_at, system_prompt) VALUES ($1, $2, $2, $3) ON CONFLICT (id) DO NOTHING', [txt(id), at, prompt]),
      );
      return id;
    },
    getSession(id) {
      return read<SessionRow, Awaited<ReturnType<Store['getSession']>>>(
        'read a session',
        undefined,
        'SELECT id, created_at, updated_at, system_prompt FROM sessions WHERE id = $1',
        [txt(id)],
        ([r]) => r && { id: r.id, createdAt: Number(r.created_at), updatedAt: Number(r.updated_at), systemPrompt: r.system_prompt },
      );
    },
    appendMessage(sessionId, msg) {
      const at = now();
      const m = { turn: msg.turn ?? null, role: msg.role, content: txt(msg.content) };
      enqueue('store a message', async (c) => {
        await touch(c, sessionId, at);
        await c.query(
          'INSERT INTO messages (session_id, turn, role, content, created_at) SELECT $1, COALESCE($2::integer, (SELECT MAX(turn) FROM messages WHERE session_id = $1), 0), $3, $4, $5',
          [txt(sessionId), m.turn, m.role, m.content, at],
        );
      });
    },
    appendTurn(sessionId, msgs) {
      const at = now();
      const copy = msgs.map((m) => ({ role: m.role, content: txt(m.content) }));
      enqueue('store a turn', async (c) => {
        // The upsert locks the session row until the commit: the turn index below is ours alone.
        await touch(c, sessionId, at);
        if (copy.length === 0) return;
        const r = await c.query<{ turn: number }>('SELECT COALESCE(MAX(turn) + 1, 0) AS turn FROM messages WHERE session_id = $1', [txt(sessionId)]);
        const turn = r.rows[0]!.turn;
        const values = copy.map((_, i) => `($1, $2, $${3 + 2 * i}, $${4 + 2 * i}, $${3 + 2 * copy.length})`).join(', ');
        await c.query(`INSERT INTO messages (session_id, turn, role, content, created_at) VALUES ${values}`, [
          txt(sessionId),
          turn,
          ...copy.flatMap((m) => [m.role, m.content]),
          at,
        ]);
      });
    },
    history(sessionId, limit) {
      if (!(limit > 0)) return Promise.resolve([]);
      return read<MessageRow, Awaited<ReturnType<Store['history']>>>(
        'read the history',
        [],
        'SELECT role, content, turn, created_at FROM (SELECT id, role, content, turn, created_at FROM messages WHERE session_id = $1 ORDER BY id DESC LIMIT $2) m ORDER BY id',
        [txt(sessionId), Math.floor(limit)],
        (rows) => rows.map((r) => ({ role: r.role, content: r.content, turn: r.turn, createdAt: Number(r.created_at) })),
      );
    },
    startCall(call) {
      const at = now();
      const providers = json(call.providers);
      enqueue('record a call', async (c) => {
        if (call.sessionId) await touch(c, call.sessionId, at);
        await c.query('INSERT INTO calls (id, session_id, started_at, providers) VALUES ($1, $2, $3, $4::jsonb)', [txt(call.id), call.sessionId ? txt(call.sessionId) : null, at, providers]);
      });
    },
    endCall(id, reason) {
      const at = now();
      enqueue('record the end of a call', (c) => c.query('UPDATE calls SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL', [at, txt(reason), txt(id)]));
    },
    getCall(id) {
      return read<CallRow, Awaited<ReturnType<Store['getCall']>>>(
        'read a call',
        undefined,
        'SELECT id, session_id, started_at, ended_at, end_reason, providers FROM calls WHERE id = $1',
        [txt(id)],
        ([r]) =>
          r && {
            id: r.id,
            sessionId: r.session_id,
            startedAt: Number(r.started_at),
            endedAt: r.ended_at === null ? null : Number(r.ended_at),
            endReason: r.end_reason,
            providers: r.providers ?? {},
          },
      );
    },
    appendTranscript(callId, e) {
      const at = now();
      const row = [txt(callId), e.turn, e.role, txt(e.text), e.interrupted === true, at];
      enqueue('store a transcript line', (c) => c.query('INSERT INTO call_transcript (call_id, turn, role, text, interrupted, at) VALUES ($1, $2, $3, $4, $5, $6)', row));
    },
    transcript(callId) {
      return read<TranscriptRow, Awaited<ReturnType<Store['transcript']>>>(
        'read a transcript',
        [],
        'SELECT turn, role, text, interrupted, at FROM call_transcript WHERE call_id = $1 ORDER BY id',
        [txt(callId)],
        (rows) => rows.map((r) => ({ turn: r.turn, role: r.role, text: r.text, interrupted: r.interrupted, at: Number(r.at) })),
      );
    },
    recordTurnMetrics(callId, turn, stages) {
      const at = now();
      const row = [txt(callId), turn, json(stages), at];
      enqueue('store turn metrics', (c) =>
        c.query(
          'INSERT INTO turn_metrics (call_id, turn, stages, at) VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (call_id, turn) DO UPDATE SET stages = EXCLUDED.stages, at = EXCLUDED.at',
          row,
        ),
      );
    },
    turnMetrics(callId) {
      return read<MetricsRow, Awaited<ReturnType<Store['turnMetrics']>>>(
        'read turn metrics',
        [],
        'SELECT turn, stages, at FROM turn_metrics WHERE call_id = $1 ORDER BY turn',
        [txt(callId)],
        (rows) => rows.map((r) => ({ turn: r.turn, stages: r.stages ?? {}, at: Number(r.at) })),
      );
    },
    flush: () => writes.flush(),
    prune: retention.prune,
    async ping() {
      if (closed) return false;
      try {
        if (!writes.failing) return (await pool.query<{ ok: number }>('SELECT 1 AS ok')).rows[0]?.ok === 1;
        // Failing since the last flush: writes to every table, rolled back, say whether writes go through now.
        await inTransaction(async (c) => {
          await c.query(PROBE);
          throw ROLLBACK;
        }).catch((err: unknown) => {
          if (err !== ROLLBACK) throw err;
        });
        writes.failing = false;
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      if (closed) return;
      await writes.close();
      closed = true;
      await retention.stop();
      try {
        await pool.end();
      } catch (err) {
        onError('close the pool', err);
      }
    },
  };
}

/** Thrown inside ping's probe transaction to roll it back. */
const ROLLBACK = new Error('rollback');
/** One row in each table, for ping's rolled-back probe (one round trip: no parameters, several statements). */
const PROBE = `INSERT INTO sessions (id, created_at, updated_at) VALUES ('eva-ping-' || pg_backend_pid(), 0, 0);
  INSERT INTO messages (session_id, turn, role, content, created_at) VALUES ('eva-ping-' || pg_backend_pid(), 0, 'user', '', 0);
  INSERT INTO calls (id, started_at) VALUES ('eva-ping-' || pg_backend_pid(), 0);
  INSERT INTO call_transcript (call_id, turn, role, text, at) VALUES ('eva-ping-' || pg_backend_pid(), 0, 'user', '', 0);
  INSERT INTO turn_metrics (call_id, turn, stages, at) VALUES ('eva-ping-' || pg_backend_pid(), 0, '{}', 0)`;
