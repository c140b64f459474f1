// The PostgreSQL store (server/store-pg.ts) on a private cluster from Debian's binaries (test/helpers/postgres.ts):
// the store contract every implementation keeps, then what only PostgreSQL does (nodes migrating together, the
// bounded pool, statement timeouts, the password kept out of every message), then EVA itself started with
// EVA_DATABASE_URL serving text turns from the database.
import t from 'tap';
import pg from 'pg';
import { ProbeCall } from '../bench/probe-client.js';
import { start as startGroq } from '../bench/standins/groq.js';
import { EvaError } from '../server/errors.js';
import { SCHEMA_VERSION } from '../server/store.js';
import { isConnectionError, openPgStore, POOL_MAX, redactDatabaseUrl, STATEMENT_TIMEOUT_MS } from '../server/store-pg.js';
import { havePostgres, startPostgres } from './helpers/postgres.js';
import { spawnEva } from './helpers/server.js';
import { storeContract } from './store-contract.js';

function collectErrors(): { errors: string[]; onError: (what: string, err: unknown) => void } {
  const errors: string[] = [];
  return { errors, onError: (what, err) => errors.push(`${what}: ${(err as Error).message}`) };
}

async function sql<R extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

t.test('the URL shown in logs and /health has no password', async (t) => {
  t.equal(redactDatabaseUrl('postgres://eva:s3cr%40t@db.example:5432/eva'), 'postgres://eva@db.example:5432/eva');
  t.equal(redactDatabaseUrl('postgresql://eva@db/eva?password=s3cret&sslmode=require'), 'postgresql://eva@db/eva?sslmode=require');
  t.equal(redactDatabaseUrl('not a url'), 'postgres://(unparseable URL)');
  t.equal(isConnectionError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), true, 'a socket error is the connection');
});

if (havePostgres(t)) {
  const cluster = await startPostgres();
  t.teardown(() => cluster.stop());

  t.test('the store contract, on PostgreSQL', async (t) => {
    storeContract(t, async () => {
      const url = await cluster.createDatabase();
      return {
        open: (opts) => openPgStore(url, opts),
        // The server going away under the running stores, and coming back on the same port.
        fail: () => cluster.halt(),
        recover: () => cluster.resume(),
      };
    });
  });

  t.test('two nodes starting together on an empty database apply each migration once', async (t) => {
    const url = await cluster.createDatabase();
    const stores = await Promise.all([openPgStore(url, { retentionDays: 0 }), openPgStore(url, { retentionDays: 0 }), openPgStore(url, { retentionDays: 0 })]);
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    t.same(stores.map((s) => s.schemaVersion), [SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]);
    const versions = await sql<{ version: number }>(url, 'SELECT version FROM eva_schema_migrations ORDER BY version');
    t.same(versions.map((r) => r.version), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1), 'one row per migration');
    const tables = await sql<{ tablename: string }>(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
    t.same(tables.map((r) => r.tablename), ['call_transcript', 'calls', 'eva_schema_migrations', 'messages', 'sessions', 'turn_metrics']);
    const indexes = await sql<{ indexname: string }>(url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' ORDER BY indexname");
    t.same(indexes.map((r) => r.indexname), ['call_transcript_by_call', 'calls_by_session', 'calls_by_started', 'messages_by_session', 'sessions_by_updated'], 'the indexes SQLite has');
  });

  t.test('a database from a newer EVA is refused with a clear error', async (t) => {
    const url = await cluster.createDatabase();
    await (await openPgStore(url, { retentionDays: 0 })).close();
    await sql(url, 'INSERT INTO eva_schema_migrations (version, applied_at) VALUES ($1, 0)', [SCHEMA_VERSION + 5]);
    await t.rejects(openPgStore(url), { code: 'internal', message: new RegExp(`schema version ${SCHEMA_VERSION + 5}, newer than this EVA knows \\(${SCHEMA_VERSION}\\)`) });
  });

  t.test('a database that cannot be reached or refuses the password stops the start, naming it without the password', async (t) => {
    const wrongPassword = cluster.url.replace(cluster.password, 'not-the-password-123');
    for (const [what, url, pattern] of [
      ['nothing listening', `postgres://eva:hunter2-secret@127.0.0.1:1/eva`, /cannot prepare the PostgreSQL database postgres:\/\/eva@127\.0\.0\.1:1\/eva: .*ECONNREFUSED/],
      ['a wrong password', wrongPassword, /cannot prepare the PostgreSQL database postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres: password authentication failed/],
    ] as const) {
      const err = await openPgStore(url).then(
        () => null,
        (e: unknown) => e,
      );
      t.type(err, EvaError, what);
      t.match((err as Error).message, pattern, what);
      const password = new URL(url).password;
      t.notOk((err as Error).message.includes(password), `${what}: the password is not in the message`);
      t.notOk(String((err as EvaError).cause).includes(password), `${what}: nor in its cause`);
    }
  });

  t.test('a quiet node recovers: ping probes with a rolled-back write while failing', async (t) => {
    const url = await cluster.createDatabase();
    const { errors, onError } = collectErrors();
    const store = await openPgStore(url, { onError, retentionDays: 0 });
    t.teardown(() => store.close());
    await cluster.halt();
    store.appendTurn('s', [{ role: 'user', content: 'lost' }]);
    await store.flush();
    t.equal(await store.ping(), false, 'down');
    await cluster.resume();
    t.equal(await store.ping(), true, 'up again with no write of its own');
    t.same(await store.history('s', 5), [], 'the probe left nothing behind');
    t.same(await sql(url, "SELECT id FROM sessions WHERE id LIKE 'eva-ping%'"), [], 'no probe rows');
    t.ok(errors.length > 0, 'the failure was reported');
    t.notOk(errors.some((e) => e.includes(cluster.password)), 'no message holds the password');
  });

  t.test('a statement blocked by a lock gives up after the statement timeout: the read resolves empty, the write is reported', async (t) => {
    const url = await cluster.createDatabase();
    const { errors, onError } = collectErrors();
    const store = await openPgStore(url, { onError, retentionDays: 0 });
    t.teardown(() => store.close());
    store.appendTurn('s', [{ role: 'user', content: 'kept' }]);
    await store.flush();
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    t.teardown(() => locker.end());
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
    const t0 = performance.now();
    const read = await store.history('s', 10);
    const readMs = performance.now() - t0;
    store.appendTurn('s', [{ role: 'user', content: 'blocked' }]);
    await store.flush();
    await locker.query('ROLLBACK');
    t.same(read, [], 'the read resolved with nothing');
    t.ok(readMs >= STATEMENT_TIMEOUT_MS - 100, `it waited out the statement timeout (${readMs.toFixed(0)} ms)`);
    t.ok(errors.some((e) => /could not read the history: canceling statement due to statement timeout/.test(e)), errors.join(' | '));
    t.ok(errors.some((e) => /could not store a turn; dropped: canceling statement/.test(e)), 'the blocked write is dropped and reported');
    t.same((await store.history('s', 10)).map((m) => m.content), ['kept'], 'reads work once the lock goes');
    t.comment(`a read behind a lock resolved after ${readMs.toFixed(0)} ms (statement timeout ${STATEMENT_TIMEOUT_MS} ms)`);
  });

  t.test(`a burst of reads and writes uses at most POOL_MAX (${POOL_MAX}) connections`, async (t) => {
    const url = await cluster.createDatabase();
    const store = await openPgStore(url, { retentionDays: 0 });
    t.teardown(() => store.close());
    const seen: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [row] = await sql<{ n: string }>(url, "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'eva'");
        seen.push(Number(row!.n));
      }
    })();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        store.appendTurn(`s${i % 10}`, [{ role: 'user', content: `q${i}` }, { role: 'assistant', content: `a${i}` }]);
        return store.history(`s${i % 10}`, 4);
      }),
    );
    const ms = performance.now() - t0;
    sampling = false;
    await sampler;
    const [{ n }] = (await sql<{ n: string }>(url, 'SELECT count(*) AS n FROM messages')) as [{ n: string }];
    t.equal(Number(n), 400, 'every write landed');
    t.ok(seen.length > 0 && Math.max(...seen) <= POOL_MAX, `connections seen: max ${Math.max(...seen)} over ${seen.length} samples`);
    t.comment(`200 interleaved turn writes + history reads on one node: ${ms.toFixed(0)} ms`);
  });

  t.test('EVA started with EVA_DATABASE_URL serves text turns and calls from the database, names it in /health, and outlives it going away', async (t) => {
    const url = await cluster.createDatabase();
    const systems: string[] = [];
    const groq = await startGroq({
      reply: (msgs) => {
        systems.push(msgs.find((m) => m.role === 'system')?.content ?? '');
        return `I have seen ${msgs.filter((m) => m.role === 'user').length} user messages.`;
      },
    });
    t.teardown(() => groq.close());
    const eva = await spawnEva(t, {
      env: { EVA_DATABASE_URL: url, EVA_WORKERS: '1', GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq', EVA_TTS: 'espeak', EVA_STT: 'groq', EVA_LOG_LEVEL: 'info' },
    });
    const chat = async (body: unknown) => {
      const r = await fetch(`${eva.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, json: (await r.json()) as { response: string; session_id: string } };
    };
    const first = await chat({ message: 'My name is Ada.' });
    t.equal(first.status, 200);
    t.equal(first.json.response, 'I have seen 1 user messages.');
    const second = await chat({ message: 'What is my name?', session_id: first.json.session_id });
    t.equal(second.json.response, 'I have seen 2 user messages.', 'the second turn was sent the first from the database');
    // Another connection sees a turn once EVA's write queue has committed it (FLUSH_MS after the reply).
    const stored = () => sql<{ turn: number; role: string; content: string }>(url, 'SELECT turn, role, content FROM messages WHERE session_id = $1 ORDER BY id', [first.json.session_id]);
    let rows = await stored();
    for (let i = 0; i < 100 && rows.length < 4; i++) rows = await new Promise((r) => setTimeout(r, 50)).then(stored);
    t.same(
      rows.map((r) => [r.turn, r.role, r.content]),
      [
        [0, 'user', 'My name is Ada.'],
        [0, 'assistant', 'I have seen 1 user messages.'],
        [1, 'user', 'What is my name?'],
        [1, 'assistant', 'I have seen 2 user messages.'],
      ],
      'both turns are in PostgreSQL',
    );
    const health = (await (await fetch(`${eva.url}/health`)).json()) as { status: string; database: boolean; providers: { database: { ok: boolean; detail: string } } };
    t.equal(health.database, true);
    t.match(health.providers.database.detail, /^postgres postgres:\/\/postgres@127\.0\.0\.1:\d+\/t\w+$/, '/health names the store and where, without the password');
    t.match(eva.stdout(), /data: postgres:\/\/postgres@127\.0\.0\.1:\d+\/t\w+\)/, 'the start-up line names it');

    // A call continuing the session reads its history from the database (at call start, asynchronously).
    const call = await ProbeCall.connect(eva.wsUrl, { config: { session: first.json.session_id } });
    t.teardown(() => call.close());
    await call.waitFor((m) => m.type === 'ready');
    call.send({ type: 'text', text: 'And now, on a call?' });
    const end = await call.waitFor((m) => m.type === 'reply_end' || m.type === 'error', 15_000);
    t.match(end, { type: 'reply_end', text: 'I have seen 3 user messages.' }, "the call's typed turn was sent the session's two text turns");
    // Played out, the turn is stored in the session too.
    await call.waitFor((m) => m.type === 'state' && m.state === 'listening', 15_000, call.events.find((e) => e.msg === end)!.at);
    call.hangup();

    // A call's own system prompt is stored with its new session, and a later text turn in it uses that prompt.
    const pirate = await ProbeCall.connect(eva.wsUrl, { config: { session: 'pg-pirate', system: 'Talk like a pirate.' } });
    t.teardown(() => pirate.close());
    await pirate.waitFor((m) => m.type === 'ready');
    pirate.hangup();
    for (let i = 0; i < 100 && (await sql(url, "SELECT 1 FROM calls WHERE session_id = 'pg-pirate' AND ended_at IS NOT NULL")).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const later = await chat({ message: 'Who are you?', session_id: 'pg-pirate' });
    t.equal(later.status, 200);
    t.equal(systems.at(-1), 'Talk like a pirate.', 'the stored prompt of the session');
    t.match(await sql(url, "SELECT end_reason FROM calls WHERE session_id = 'pg-pirate'"), [{ end_reason: 'hangup' }], 'the call record has its end');

    // The database going away under the running EVA: text turns are still answered, /health says degraded; when
    // it is back, /health recovers by itself and turns are stored again.
    // The pirate turn is committed first, so that the only write the outage can catch is the one made in it.
    for (let i = 0; i < 100 && (await sql(url, "SELECT 1 FROM messages WHERE session_id = 'pg-pirate'")).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const drops = () => `${eva.stdout()}${eva.stderr()}`.split('database: could not store a turn').length - 1;
    const dropsBefore = drops();
    await cluster.halt();
    const down = await chat({ message: 'Still there?', session_id: first.json.session_id });
    t.equal(down.status, 200, 'POST /chat answers with the database down');
    t.equal(down.json.response, 'I have seen 1 user messages.', 'without the history it could not read');
    const degraded = await fetch(`${eva.url}/health`);
    t.equal(degraded.status, 503);
    t.match(await degraded.json(), { status: 'degraded', database: false });
    // The turn is written FLUSH_MS after the reply. Resuming before that write has failed would race it: on a
    // slow machine the database could be back in time and the write would land. So wait for the drop first.
    for (let i = 0; i < 100 && drops() === dropsBefore; i++) await new Promise((r) => setTimeout(r, 50));
    t.equal(drops(), dropsBefore + 1, 'the turn made while it was down is dropped, and the log says so');
    await cluster.resume();
    let back: { status: string } = { status: '' };
    for (let i = 0; i < 50 && back.status !== 'ok'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      back = (await (await fetch(`${eva.url}/health`)).json()) as { status: string };
    }
    t.equal(back.status, 'ok', '/health is ok again once the database is back');
    const again = await chat({ message: 'And now?', session_id: first.json.session_id });
    t.equal(again.json.response, 'I have seen 4 user messages.', 'the history is read again: the text turns, the call\'s, not the one made while it was down');

    t.notOk(`${eva.stdout()}${eva.stderr()}${JSON.stringify(health)}`.includes(cluster.password), 'the password is printed nowhere');
  });
}
