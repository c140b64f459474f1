import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { EvaError } from './errors.js';
import { openStore, SCHEMA_VERSION } from './store.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'eva-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('history returns the last N messages of a session, oldest first', async (t) => {
  let clock = 1000;
  const store = openStore(':memory:', { now: () => clock++ });
  t.teardown(() => store.close());
  for (let i = 0; i < 5; i++) {
    store.appendTurn('s1', [
      { role: 'user', content: `q${i}` },
      { role: 'assistant', content: `a${i}` },
    ]);
  }
  store.appendTurn('other', [{ role: 'user', content: 'not mine' }]);
  const last3 = store.history('s1', 3);
  t.same(
    last3.map((m) => [m.role, m.content, m.turn]),
    [
      ['assistant', 'a3', 3],
      ['user', 'q4', 4],
      ['assistant', 'a4', 4],
    ],
  );
  t.equal(store.history('s1', 100).length, 10, 'a limit above the count returns everything');
  t.same(store.history('s1', 0), [], 'a zero limit returns nothing');
  t.same(store.history('nobody', 5), [], 'an unknown session has no history');
  t.ok(last3[0]!.createdAt < last3[2]!.createdAt, 'timestamps come from the injected clock');
});

t.test('appendMessage creates the session, keeps the latest turn, and touches updated_at', async (t) => {
  let clock = 5000;
  const store = openStore(':memory:', { now: () => clock });
  t.teardown(() => store.close());
  t.equal(store.getSession('x'), undefined);
  store.appendMessage('x', { role: 'user', content: 'hi' });
  t.equal(store.history('x', 1)[0]!.turn, 0);
  clock = 6000;
  store.appendMessage('x', { role: 'assistant', content: 'hello' });
  store.appendMessage('x', { role: 'user', content: 'again', turn: 1 });
  const s = store.getSession('x')!;
  t.equal(s.createdAt, 5000);
  t.equal(s.updatedAt, 6000);
  t.same(store.history('x', 10).map((h) => h.turn), [0, 0, 1]);
  store.appendTurn('x', [{ role: 'user', content: 'next' }]);
  t.equal(store.history('x', 1)[0]!.turn, 2, 'appendTurn takes the next index');
});

t.test('createSession stores the system prompt and refuses a duplicate id', async (t) => {
  const store = openStore(':memory:');
  t.teardown(() => store.close());
  const a = store.createSession({ systemPrompt: 'be brief' });
  t.match(a.id, /^[0-9a-f-]{36}$/, 'a random UUID by default');
  t.equal(store.getSession(a.id)!.systemPrompt, 'be brief');
  store.createSession({ id: 'fixed' });
  t.equal(store.getSession('fixed')!.systemPrompt, null);
  t.throws(() => store.createSession({ id: 'fixed' }));
});

t.test('a session survives closing and reopening the same file', async (t) => {
  const path = join(tempDir(t), 'nested', 'dir', 'eva.db');
  const first = openStore(path);
  first.createSession({ id: 'keep', systemPrompt: 'p' });
  first.appendTurn('keep', [
    { role: 'user', content: 'remember me' },
    { role: 'assistant', content: 'I will' },
  ]);
  first.close();

  const second = openStore(path);
  t.teardown(() => second.close());
  t.equal(second.getSession('keep')!.systemPrompt, 'p');
  t.same(
    second.history('keep', 10).map((m) => m.content),
    ['remember me', 'I will'],
  );
});

t.test('migrations are idempotent: reopening keeps the schema version and the data', async (t) => {
  const path = join(tempDir(t), 'eva.db');
  for (let i = 0; i < 3; i++) {
    const s = openStore(path);
    t.equal(s.schemaVersion, SCHEMA_VERSION);
    s.appendMessage('s', { role: 'user', content: `open ${i}` });
    s.close();
  }
  const s = openStore(path);
  t.teardown(() => s.close());
  t.equal(s.history('s', 10).length, 3);

  const Database = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => {
    pragma(src: string, o?: { simple?: boolean }): unknown;
    close(): void;
  };
  const raw = new Database(path);
  t.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION, 'user_version records the migrations');
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal', 'the file is in WAL mode');
  raw.close();
});

t.test('a database from a newer EVA is refused with a clear error', async (t) => {
  const path = join(tempDir(t), 'future.db');
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => {
    pragma(src: string): unknown;
    close(): void;
  };
  const raw = new Database(path);
  raw.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
  raw.close();
  let caught: unknown;
  try {
    openStore(path);
  } catch (err) {
    caught = err;
  }
  t.type(caught, EvaError);
  t.throws(() => openStore(path), { code: 'internal', message: new RegExp(`schema version ${SCHEMA_VERSION + 5}, newer than this EVA knows \\(${SCHEMA_VERSION}\\)`) });
});

t.test('calls, transcripts and turn metrics round-trip', async (t) => {
  let clock = 100;
  const store = openStore(':memory:', { now: () => clock });
  t.teardown(() => store.close());
  store.startCall({ id: 'c1', sessionId: 'sess', providers: { stt: 'groq', llm: 'ollama', tts: 'espeak' } });
  t.ok(store.getSession('sess'), 'the call creates its session');
  store.appendTranscript('c1', { turn: 0, role: 'user', text: 'hello' });
  store.appendTranscript('c1', { turn: 0, role: 'assistant', text: 'hi th', interrupted: true });
  store.recordTurnMetrics('c1', 0, { eou_ms: 210, first_audio_ms: 480 });
  store.recordTurnMetrics('c1', 0, { eou_ms: 200, first_audio_ms: 450 });
  clock = 900;
  store.endCall('c1', 'hangup');
  clock = 950;
  store.endCall('c1', 'socket_closed');

  t.same(store.getCall('c1'), {
    id: 'c1',
    sessionId: 'sess',
    startedAt: 100,
    endedAt: 900,
    endReason: 'hangup',
    providers: { stt: 'groq', llm: 'ollama', tts: 'espeak' },
  }, 'only the first end counts');
  t.same(store.transcript('c1').map((e) => [e.role, e.text, e.interrupted]), [
    ['user', 'hello', false],
    ['assistant', 'hi th', true],
  ]);
  t.same(store.turnMetrics('c1'), [{ turn: 0, stages: { eou_ms: 200, first_audio_ms: 450 }, at: 100 }], 'a turn is recorded once, the last write wins');
  t.equal(store.getCall('nope'), undefined);
  store.startCall({ id: 'c2' });
  t.equal(store.getCall('c2')!.sessionId, null, 'a call without a session');
});

t.test('ping answers while open; close() twice is harmless and ping then says false', async (t) => {
  const store = openStore(join(tempDir(t), 'eva.db'));
  t.equal(store.ping(), true);
  store.close();
  t.doesNotThrow(() => store.close());
  t.equal(store.ping(), false);
});

type RawDb = {
  exec(sql: string): unknown;
  prepare(sql: string): { run(...p: unknown[]): unknown; get(...p: unknown[]): unknown };
  pragma(src: string, o?: { simple?: boolean }): unknown;
  close(): void;
};
const RawDatabase = createRequire(import.meta.url)('better-sqlite3') as new (p: string, o?: { timeout?: number }) => RawDb;

function collectErrors(): { errors: string[]; onError: (what: string, err: unknown) => void } {
  const errors: string[] = [];
  return { errors, onError: (what, err) => errors.push(`${what}: ${(err as Error).message}`) };
}

t.test('writes are queued and committed together; a read sees them first; close commits the rest', async (t) => {
  const path = join(tempDir(t), 'eva.db');
  const store = openStore(path, { flushMs: 30 });
  store.startCall({ id: 'c1', sessionId: 's1' });
  store.appendTurn('s1', [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }]);
  store.appendTranscript('c1', { turn: 0, role: 'user', text: 'hi' });
  store.recordTurnMetrics('c1', 0, { eou_ms: 200 });
  t.equal(store.pending, 4, 'nothing committed on the caller\'s stack');
  const raw = new RawDatabase(path);
  t.teardown(() => raw.close());
  const count = () => (raw.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n;
  t.equal(count(), 0, 'another connection sees nothing yet');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(store.pending, 0, 'the timer flushed');
  t.equal(count(), 2, 'committed');
  store.appendTurn('s1', [{ role: 'user', content: 'again' }]);
  t.same(store.history('s1', 10).map((m) => [m.turn, m.content]), [[0, 'hi'], [0, 'hello'], [1, 'again']], 'a read flushes first');
  store.endCall('c1', 'hangup');
  store.close();
  t.equal((raw.prepare('SELECT end_reason AS r FROM calls').get() as { r: string }).r, 'hangup', 'close() committed the last write');
  t.equal(raw.pragma('wal_autocheckpoint', { simple: true }), 1000, 'other connections keep the default');
});

t.test('a locked database (SQLITE_BUSY) throws at no caller; the writes wait and land when the lock goes', async (t) => {
  const path = join(tempDir(t), 'eva.db');
  const { errors, onError } = collectErrors();
  const store = openStore(path, { flushMs: 20, onError });
  t.teardown(() => store.close());
  const locker = new RawDatabase(path, { timeout: 0 });
  t.teardown(() => locker.close());
  locker.exec('BEGIN IMMEDIATE');
  locker.prepare("INSERT INTO sessions (id, created_at, updated_at) VALUES ('other', 1, 1)").run();
  const t0 = performance.now();
  t.doesNotThrow(() => store.appendTurn('busy', [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }]));
  t.doesNotThrow(() => store.flush(), 'flush does not throw');
  const blocked = performance.now() - t0;
  const r0 = performance.now();
  t.same(store.history('busy', 10), [], 'reads go on (WAL readers are not blocked), without the waiting write');
  const readMs = performance.now() - r0;
  t.ok(store.pending > 0, 'the write is kept');
  t.match(errors[0], /locked/, 'the lock is reported once');
  t.ok(store.ping() === true, 'a lock is not a failure yet');
  locker.exec('COMMIT');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(store.pending, 0, 'the retry committed it');
  t.same(store.history('busy', 10).map((m) => m.content), ['q', 'a'], 'the write landed after the lock went');
  t.comment(`a flush against a locked file held the loop ${blocked.toFixed(1)} ms (busy timeout 20 ms); the read after it ${readMs.toFixed(1)} ms`);
});

t.test('a broken database (its tables dropped under it) throws at no caller: reads are empty, writes dropped and reported', async (t) => {
  const path = join(tempDir(t), 'eva.db');
  const { errors, onError } = collectErrors();
  const store = openStore(path, { onError });
  t.teardown(() => store.close());
  store.appendTurn('s', [{ role: 'user', content: 'before' }]);
  store.flush();
  const raw = new RawDatabase(path);
  raw.exec('PRAGMA foreign_keys = OFF; DROP TABLE turn_metrics; DROP TABLE call_transcript; DROP TABLE messages; DROP TABLE calls; DROP TABLE sessions;');
  raw.close();
  t.doesNotThrow(() => {
    store.startCall({ id: 'c', sessionId: 's' });
    store.appendTurn('s', [{ role: 'user', content: 'after' }]);
    store.appendTranscript('c', { turn: 0, role: 'user', text: 'x' });
    store.recordTurnMetrics('c', 0, { eou_ms: 1 });
    store.endCall('c', 'hangup');
    store.flush();
  }, 'no write throws');
  t.same(store.history('s', 10), [], 'history is empty');
  t.equal(store.getSession('s'), undefined);
  t.equal(store.getCall('c'), undefined);
  t.same(store.transcript('c'), []);
  t.same(store.turnMetrics('c'), []);
  t.equal(store.ping(), false, '/health sees the failure');
  t.ok(errors.some((e) => /could not record a call \(and 4 more of 5 writes\); dropped/.test(e)), errors.join(' | '));
  t.ok(errors.some((e) => /could not read the history/.test(e)));
  t.equal(store.pending, 0, 'failed writes do not pile up');
});

t.test('retention prunes sessions and calls older than the limit, with their rows, and keeps newer ones', async (t) => {
  const DAY = 86_400_000;
  let clock = 1_000 * DAY;
  const store = openStore(join(tempDir(t), 'eva.db'), { now: () => clock, retentionDays: 30 });
  t.teardown(() => store.close());
  // 450 old sessions (more than two batches), each with a call, a turn, a transcript line and metrics.
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
  clock = 1_000 * DAY;
  const t0 = performance.now();
  const r = await store.prune();
  t.comment(`pruned ${r.sessions} sessions and ${r.calls} calls (each with 2 messages, a transcript line, metrics) in ${r.batches} batches, ${(performance.now() - t0).toFixed(1)} ms in all, the longest batch ${r.maxBatchMs.toFixed(1)} ms`);
  t.same([r.sessions, r.calls], [450, 451]);
  t.ok(r.batches >= 5, 'in bounded batches');
  t.equal(store.getSession('old-7'), undefined);
  t.same(store.history('old-7', 10), []);
  t.equal(store.getCall('old-call-7'), undefined);
  t.same(store.transcript('old-call-7'), [], 'the transcript went with its call');
  t.same(store.turnMetrics('old-call-7'), []);
  t.ok(store.getSession('revived'), 'a session active within the limit stays');
  t.same(store.history('new', 10).map((m) => m.content), ['fresh']);
  t.same(store.transcript('new-call').map((e) => e.text), ['fresh']);
  t.match(await store.prune(), { sessions: 0, calls: 0, batches: 1 }, 'a second pass finds nothing');
});

t.test('EVA_RETENTION_DAYS=0 keeps everything', async (t) => {
  let clock = 0;
  const store = openStore(':memory:', { now: () => clock, retentionDays: 0 });
  t.teardown(() => store.close());
  store.appendTurn('ancient', [{ role: 'user', content: 'q' }]);
  clock = 10_000 * 86_400_000;
  t.match(await store.prune(), { sessions: 0, calls: 0, batches: 0 });
  t.equal(store.history('ancient', 10).length, 1);
});

t.test('the write path holds the event loop for microseconds, the commit of a turn for well under a ms (figures)', async (t) => {
  const store = openStore(join(tempDir(t), 'eva.db'));
  t.teardown(() => store.close());
  const enqueue: number[] = [];
  const flush: number[] = [];
  const text = 'The quick brown fox jumps over the lazy dog. '.repeat(4);
  for (let i = 0; i < 400; i++) {
    let t0 = performance.now();
    store.startCall({ id: `c${i}`, sessionId: `s${i % 20}` });
    store.appendTurn(`s${i % 20}`, [{ role: 'user', content: text }, { role: 'assistant', content: text }]);
    store.appendTranscript(`c${i}`, { turn: 0, role: 'user', text });
    store.appendTranscript(`c${i}`, { turn: 0, role: 'assistant', text });
    store.recordTurnMetrics(`c${i}`, 0, { eou_ms: 200, first_audio_ms: 500 });
    store.endCall(`c${i}`, 'hangup');
    enqueue.push(performance.now() - t0);
    t0 = performance.now();
    store.flush();
    flush.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 5));
  }
  const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!.toFixed(3);
  t.comment(`queueing a turn's 6 writes: p50 ${q(enqueue, 0.5)} ms, max ${q(enqueue, 1)} ms; committing them: p50 ${q(flush, 0.5)} ms, p99 ${q(flush, 0.99)} ms, max ${q(flush, 1)} ms`);
  t.equal(store.history('s0', 100).length, 40);
});

t.test('the WAL is checkpointed by the worker thread, not by the connection that writes', async (t) => {
  const path = join(tempDir(t), 'eva.db');
  const store = openStore(path);
  t.teardown(() => store.close());
  const { statSync } = await import('node:fs');
  const text = 'x'.repeat(2000);
  for (let i = 0; i < 300; i++) store.appendTurn(`s${i}`, [{ role: 'user', content: text }]);
  store.flush();
  const dbBefore = statSync(path).size;
  const wal = statSync(`${path}-wal`).size;
  t.ok(wal > 500_000, `the writes went to the WAL (${(wal / 1024).toFixed(0)} KiB)`);
  // CHECKPOINT_MS is 1 s; the worker folds the WAL into the database file in the meantime.
  const grew = await (async () => {
    for (let i = 0; i < 40; i++) {
      if (statSync(path).size > dbBefore + 400_000) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  })();
  t.ok(grew, `the database file grew from ${(dbBefore / 1024).toFixed(0)} KiB to ${(statSync(path).size / 1024).toFixed(0)} KiB without a write on this thread`);
  t.equal(store.history('s299', 1)[0]!.content, text);
});
