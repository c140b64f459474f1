// The one contract every Store (server/store.ts) keeps, run against each implementation: SQLite from
// server/store.test.ts, PostgreSQL from test/store-pg.test.ts. A factory gives each test a fresh, empty database
// and the means to open stores on it (two of them are two nodes sharing it), to break it under them and to
// repair it. What only one implementation does (SQLite's WAL and locks, PostgreSQL's advisory lock) is tested
// beside it, not here.
import type { Test } from 'tap';
import { SCHEMA_VERSION, type Store, type StoreOptions } from '../server/store.js';

export interface ContractDatabase {
  /** A store on this database (another connection or pool each time); the suite closes what it opens. */
  open(opts?: StoreOptions): Promise<Store>;
  /** Makes the database fail under the stores open on it (its tables dropped, its server stopped). */
  fail(): Promise<void>;
  /** Undoes `fail()`: the same stores work again. */
  recover(): Promise<void>;
}

const DAY = 86_400_000;

function collectErrors(): { errors: string[]; onError: (what: string, err: unknown) => void } {
  const errors: string[] = [];
  return { errors, onError: (what, err) => errors.push(`${what}: ${(err as Error).message}`) };
}

export function storeContract(t: Test, fresh: (t: Test) => Promise<ContractDatabase>): void {
  /** A store on a fresh database, closed in teardown. */
  async function openFresh(t: Test, opts: StoreOptions = {}): Promise<{ db: ContractDatabase; store: Store; open: (o?: StoreOptions) => Promise<Store> }> {
    const db = await fresh(t);
    const open = async (o: StoreOptions = {}): Promise<Store> => {
      const s = await db.open({ retentionDays: 0, ...o });
      t.teardown(() => s.close());
      return s;
    };
    return { db, store: await open(opts), open };
  }

  t.test('history returns the last N messages of a session, oldest first', async (t) => {
    let clock = 1000;
    const { store } = await openFresh(t, { now: () => clock++ });
    for (let i = 0; i < 5; i++) {
      store.appendTurn('s1', [
        { role: 'user', content: `q${i}` },
        { role: 'assistant', content: `a${i}` },
      ]);
    }
    store.appendTurn('other', [{ role: 'user', content: 'not mine' }]);
    const last3 = await store.history('s1', 3);
    t.same(
      last3.map((m) => [m.role, m.content, m.turn]),
      [
        ['assistant', 'a3', 3],
        ['user', 'q4', 4],
        ['assistant', 'a4', 4],
      ],
    );
    t.equal((await store.history('s1', 100)).length, 10, 'a limit above the count returns everything');
    t.same(await store.history('s1', 0), [], 'a zero limit returns nothing');
    t.same(await store.history('s1', -3), [], 'a negative limit returns nothing');
    t.same(await store.history('nobody', 5), [], 'an unknown session has no history');
    t.ok(last3[0]!.createdAt < last3[2]!.createdAt, 'timestamps come from the injected clock');
  });

  t.test('appendMessage creates the session, keeps the latest turn, and touches updated_at', async (t) => {
    let clock = 5000;
    const { store } = await openFresh(t, { now: () => clock });
    t.equal(await store.getSession('x'), undefined);
    store.appendMessage('x', { role: 'user', content: 'hi' });
    t.equal((await store.history('x', 1))[0]!.turn, 0);
    clock = 6000;
    store.appendMessage('x', { role: 'assistant', content: 'hello' });
    store.appendMessage('x', { role: 'user', content: 'again', turn: 1 });
    const s = (await store.getSession('x'))!;
    t.equal(s.createdAt, 5000);
    t.equal(s.updatedAt, 6000);
    t.same((await store.history('x', 10)).map((h) => h.turn), [0, 0, 1]);
    store.appendTurn('x', [{ role: 'user', content: 'next' }]);
    t.equal((await store.history('x', 1))[0]!.turn, 2, 'appendTurn takes the next index');
  });

  t.test('createSession stores the system prompt; a second create of the same id keeps the first', async (t) => {
    const { store } = await openFresh(t);
    const a = store.createSession({ systemPrompt: 'be brief' });
    t.match(a, /^[0-9a-f-]{36}$/, 'a random UUID by default');
    t.equal((await store.getSession(a))!.systemPrompt, 'be brief');
    t.equal(store.createSession({ id: 'fixed' }), 'fixed');
    t.equal((await store.getSession('fixed'))!.systemPrompt, null);
    t.doesNotThrow(() => store.createSession({ id: 'fixed', systemPrompt: 'other' }), 'no throw into the caller');
    t.equal((await store.getSession('fixed'))!.systemPrompt, null, 'the existing session is kept as it was');
  });

  t.test('text with quotes, accents, emoji and a NUL round-trips (PostgreSQL drops the NUL)', async (t) => {
    const { store } = await openFresh(t);
    const text = `it's "quoted" — naïve café 🎉 ${"'); DROP TABLE messages; --"}\0end`;
    store.appendTurn('odd', [{ role: 'user', content: text }]);
    store.startCall({ id: 'odd-call', sessionId: 'odd', providers: { llm: 'é"\'' } });
    store.appendTranscript('odd-call', { turn: 0, role: 'user', text });
    const [m] = await store.history('odd', 1);
    t.equal(m!.content.replace('\0', ''), text.replace('\0', ''));
    t.equal((await store.transcript('odd-call'))[0]!.text.replace('\0', ''), text.replace('\0', ''));
    t.same((await store.getCall('odd-call'))!.providers, { llm: 'é"\'' });
  });

  t.test('a session survives closing and reopening; reopening keeps the schema version', async (t) => {
    const { store, open } = await openFresh(t);
    t.equal(store.schemaVersion, SCHEMA_VERSION);
    store.createSession({ id: 'keep', systemPrompt: 'p' });
    store.appendTurn('keep', [
      { role: 'user', content: 'remember me' },
      { role: 'assistant', content: 'I will' },
    ]);
    await store.close();
    for (let i = 0; i < 2; i++) {
      const again = await open();
      t.equal(again.schemaVersion, SCHEMA_VERSION, 'migrations are idempotent');
      again.appendMessage('keep', { role: 'user', content: `open ${i}` });
      await again.close();
    }
    const last = await open();
    t.equal((await last.getSession('keep'))!.systemPrompt, 'p');
    t.same((await last.history('keep', 10)).map((m) => m.content), ['remember me', 'I will', 'open 0', 'open 1']);
  });

  t.test('calls, transcripts and turn metrics round-trip, in order', async (t) => {
    let clock = 100;
    const { store } = await openFresh(t, { now: () => clock });
    store.startCall({ id: 'c1', sessionId: 'sess', providers: { stt: 'groq', llm: 'ollama', tts: 'espeak' } });
    t.ok(await store.getSession('sess'), 'the call creates its session');
    store.appendTranscript('c1', { turn: 1, role: 'user', text: 'hello' });
    store.appendTranscript('c1', { turn: 1, role: 'assistant', text: 'hi th', interrupted: true });
    store.appendTranscript('c1', { turn: 0, role: 'user', text: 'late line of an earlier turn' });
    store.recordTurnMetrics('c1', 1, { eou_ms: 210, first_audio_ms: 480 });
    store.recordTurnMetrics('c1', 1, { eou_ms: 200, first_audio_ms: 450 });
    store.recordTurnMetrics('c1', 0, { eou_ms: 90 });
    clock = 900;
    store.endCall('c1', 'hangup');
    clock = 950;
    store.endCall('c1', 'socket_closed');
    t.same(
      await store.getCall('c1'),
      { id: 'c1', sessionId: 'sess', startedAt: 100, endedAt: 900, endReason: 'hangup', providers: { stt: 'groq', llm: 'ollama', tts: 'espeak' } },
      'only the first end counts',
    );
    t.same(
      (await store.transcript('c1')).map((e) => [e.turn, e.role, e.text, e.interrupted]),
      [
        [1, 'user', 'hello', false],
        [1, 'assistant', 'hi th', true],
        [0, 'user', 'late line of an earlier turn', false],
      ],
      'the transcript in the order it was written',
    );
    t.same(
      await store.turnMetrics('c1'),
      [
        { turn: 0, stages: { eou_ms: 90 }, at: 100 },
        { turn: 1, stages: { eou_ms: 200, first_audio_ms: 450 }, at: 100 },
      ],
      'by turn; a turn is recorded once, the last write wins',
    );
    t.equal(await store.getCall('nope'), undefined);
    t.same(await store.transcript('nope'), []);
    t.same(await store.turnMetrics('nope'), []);
    store.startCall({ id: 'c2' });
    t.equal((await store.getCall('c2'))!.sessionId, null, 'a call without a session');
    t.equal((await store.getCall('c2'))!.endedAt, null);
  });

  t.test('a duplicate call id or a transcript for an unknown call is reported and drops only itself', async (t) => {
    const { errors, onError } = collectErrors();
    const { store } = await openFresh(t, { onError });
    store.startCall({ id: 'dup', sessionId: 's' });
    await store.flush();
    store.startCall({ id: 'dup', sessionId: 's' });
    store.appendTranscript('no-such-call', { turn: 0, role: 'user', text: 'orphan' });
    store.appendTurn('s', [{ role: 'user', content: 'kept' }]);
    t.doesNotThrow(() => store.endCall('dup', 'hangup'));
    await store.flush();
    t.same((await store.history('s', 10)).map((m) => m.content), ['kept'], 'the good writes of the batch landed');
    t.match(await store.getCall('dup'), { endReason: 'hangup' });
    t.same(await store.transcript('no-such-call'), []);
    t.ok(errors.some((e) => /could not record a call \(and 1 more of 4 writes\); dropped/.test(e)), errors.join(' | '));
    t.equal(await store.ping(), true, 'a bad row is not a failing database');
  });

  t.test('writes are queued, fire-and-forget; flush() commits them for every other connection', async (t) => {
    const { store, open } = await openFresh(t, { flushMs: 30 });
    const other = await open();
    store.startCall({ id: 'c1', sessionId: 's1' });
    store.appendTurn('s1', [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }]);
    store.appendTranscript('c1', { turn: 0, role: 'user', text: 'hi' });
    store.recordTurnMetrics('c1', 0, { eou_ms: 200 });
    t.equal(store.pending, 4, "nothing committed on the caller's stack");
    t.same(await other.history('s1', 10), [], 'another connection sees nothing yet');
    await store.flush();
    t.equal(store.pending, 0);
    t.equal((await other.history('s1', 10)).length, 2, 'committed');
    store.appendTurn('s1', [{ role: 'user', content: 'again' }]);
    t.same((await store.history('s1', 10)).map((m) => [m.turn, m.content]), [[0, 'hi'], [0, 'hello'], [1, 'again']], 'a read flushes first');
    store.appendTurn('s1', [{ role: 'user', content: 'by the timer' }]);
    for (let i = 0; i < 100 && store.pending > 0; i++) await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 100 && (await other.history('s1', 1))[0]?.content !== 'by the timer'; i++) await new Promise((r) => setTimeout(r, 20));
    t.equal((await other.history('s1', 1))[0]?.content, 'by the timer', 'the timer flushed');
    store.endCall('c1', 'hangup');
    await store.close();
    t.match(await other.getCall('c1'), { endReason: 'hangup' }, 'close() committed the last write');
  });

  t.test('two stores on one database (two nodes) appending to one session at once never share a turn index', async (t) => {
    const { store: a, open } = await openFresh(t, { flushMs: 5 });
    const b = await open({ flushMs: 5 });
    const TURNS = 25;
    for (let i = 0; i < TURNS; i++) {
      for (const [node, s] of [['a', a], ['b', b]] as const) {
        s.appendTurn('shared', [
          { role: 'user', content: `${node}${i} q` },
          { role: 'assistant', content: `${node}${i} a` },
        ]);
      }
      // Flushes overlap: each node commits while the other may hold the session row.
      if (i % 5 === 4) await Promise.all([a.flush(), b.flush()]);
      else await new Promise((r) => setImmediate(r));
    }
    await Promise.all([a.flush(), b.flush()]);
    const all = await a.history('shared', 1000);
    t.equal(all.length, 4 * TURNS, 'every message landed');
    const byTurn = new Map<number, string[]>();
    for (const m of all) byTurn.set(m.turn, [...(byTurn.get(m.turn) ?? []), m.content]);
    t.same([...byTurn.keys()].sort((x, y) => x - y), Array.from({ length: 2 * TURNS }, (_, i) => i), 'turns 0..N-1, none skipped, none shared');
    const paired = [...byTurn.values()].every((msgs) => msgs.length === 2 && msgs[0]!.endsWith(' q') && msgs[1] === msgs[0]!.replace(/ q$/, ' a'));
    t.ok(paired, "each turn holds one node's question and its answer, in order");
    t.same(await b.history('shared', 4), all.slice(-4), 'both nodes read the same history');
    // The first turn of a new session from both nodes at once: both create it.
    a.appendTurn('new-on-both', [{ role: 'user', content: 'from a' }]);
    b.appendTurn('new-on-both', [{ role: 'user', content: 'from b' }]);
    await Promise.all([a.flush(), b.flush()]);
    t.same((await a.history('new-on-both', 10)).map((m) => m.turn).sort(), [0, 1]);
  });

  t.test('retention prunes sessions and calls older than the limit, with their rows, in batches, and keeps newer ones', async (t) => {
    let clock = 1_000 * DAY;
    const { store } = await openFresh(t, { now: () => clock, retentionDays: 30 });
    // 450 old sessions (more than four batches), each with a call, a turn, a transcript line and metrics.
    clock = 900 * DAY;
    for (let i = 0; i < 450; i++) {
      store.startCall({ id: `old-call-${i}`, sessionId: `old-${i}` });
      store.appendTurn(`old-${i}`, [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }]);
      store.appendTranscript(`old-call-${i}`, { turn: 0, role: 'user', text: 'q' });
      store.recordTurnMetrics(`old-call-${i}`, 0, { eou_ms: 1 });
    }
    store.startCall({ id: 'old-call-anon' });
    // An old session used again yesterday is kept.
    store.createSession({ id: 'revived' });
    clock = 999 * DAY;
    store.appendTurn('revived', [{ role: 'user', content: 'still here' }]);
    store.startCall({ id: 'new-call', sessionId: 'new' });
    store.appendTurn('new', [{ role: 'user', content: 'fresh' }]);
    store.appendTranscript('new-call', { turn: 0, role: 'user', text: 'fresh' });
    await store.flush();
    clock = 1_000 * DAY;
    const t0 = performance.now();
    const r = await store.prune();
    t.comment(`pruned ${r.sessions} sessions and ${r.calls} calls (each with 2 messages, a transcript line, metrics) in ${r.batches} batches, ${(performance.now() - t0).toFixed(1)} ms in all, the longest batch ${r.maxBatchMs.toFixed(1)} ms`);
    t.same([r.sessions, r.calls], [450, 451]);
    t.ok(r.batches >= 5, 'in bounded batches');
    t.equal(await store.getSession('old-7'), undefined);
    t.same(await store.history('old-7', 10), []);
    t.equal(await store.getCall('old-call-7'), undefined);
    t.same(await store.transcript('old-call-7'), [], 'the transcript went with its call');
    t.same(await store.turnMetrics('old-call-7'), []);
    t.ok(await store.getSession('revived'), 'a session active within the limit stays');
    t.same((await store.history('new', 10)).map((m) => m.content), ['fresh']);
    t.same((await store.transcript('new-call')).map((e) => e.text), ['fresh']);
    t.match(await store.prune(), { sessions: 0, calls: 0, batches: 1 }, 'a second pass finds nothing');
  });

  t.test('EVA_RETENTION_DAYS=0 keeps everything', async (t) => {
    let clock = 0;
    const { store } = await openFresh(t, { now: () => clock, retentionDays: 0 });
    store.appendTurn('ancient', [{ role: 'user', content: 'q' }]);
    clock = 10_000 * DAY;
    t.match(await store.prune(), { sessions: 0, calls: 0, batches: 0 });
    t.equal((await store.history('ancient', 10)).length, 1);
  });

  t.test('a failing database throws at no caller: writes dropped and reported, reads empty, ping false; then it recovers', async (t) => {
    const { errors, onError } = collectErrors();
    const { db, store } = await openFresh(t, { onError });
    store.startCall({ id: 'before-call', sessionId: 's' });
    store.appendTurn('s', [{ role: 'user', content: 'before' }]);
    await store.flush();
    t.equal(await store.ping(), true);
    await db.fail();
    t.doesNotThrow(() => {
      store.startCall({ id: 'c', sessionId: 's' });
      store.appendTurn('s', [{ role: 'user', content: 'lost' }]);
      store.appendTranscript('c', { turn: 0, role: 'user', text: 'x' });
      store.recordTurnMetrics('c', 0, { eou_ms: 1 });
      store.endCall('c', 'hangup');
    }, 'no write throws');
    await store.flush();
    t.equal(store.pending, 0, 'failed writes do not pile up');
    t.same(await store.history('s', 10), [], 'history is empty');
    t.equal(await store.getSession('s'), undefined);
    t.equal(await store.getCall('before-call'), undefined);
    t.same(await store.transcript('c'), []);
    t.same(await store.turnMetrics('c'), []);
    t.equal(await store.ping(), false, '/health sees the failure');
    t.ok(errors.some((e) => /could not record a call .*dropped/.test(e)), `the dropped writes are reported: ${errors.join(' | ')}`);
    t.ok(errors.some((e) => /could not read the history/.test(e)), 'a failed read is reported');

    await db.recover();
    store.appendTurn('s', [{ role: 'user', content: 'after' }]);
    await store.flush();
    t.equal(await store.ping(), true, 'ping is true once writes go through again');
    t.same((await store.history('s', 10)).map((m) => m.content).slice(-1), ['after'], 'writes land again');
  });

  t.test('ping answers while open; close() twice is harmless; after it ping is false and writes are reported', async (t) => {
    const { errors, onError } = collectErrors();
    const db = await fresh(t);
    const store = await db.open({ onError, retentionDays: 0 });
    t.equal(await store.ping(), true);
    store.appendTurn('s', [{ role: 'user', content: 'last' }]);
    await store.close();
    await t.resolves(store.close(), 'a second close does nothing');
    t.equal(await store.ping(), false);
    t.doesNotThrow(() => store.appendTurn('s', [{ role: 'user', content: 'too late' }]));
    t.match(errors.at(-1), /store a turn after close/);
    const again = await db.open({ retentionDays: 0 });
    t.teardown(() => again.close());
    t.same((await again.history('s', 10)).map((m) => m.content), ['last'], 'close() flushed first');
  });
}
