import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { EvaError } from './errors.js';
import { MIGRATIONS, openStore, SCHEMA_VERSION } from './store.js';
import { BUSY_REPORT_MS } from './store-writes.js';
import { storeContract } from '../test/store-contract.js';

// No retries on removal: store.close() resolves once its checkpoint worker has closed the file too (before, the
// worker's connection could still make the -shm file while the directory went: ENOTEMPTY).
function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'eva-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type RawDb = {
  exec(sql: string): unknown;
  prepare(sql: string): { run(...p: unknown[]): unknown; get(...p: unknown[]): unknown };
  pragma(src: string, o?: { simple?: boolean }): unknown;
  close(): void;
};
const RawDatabase = createRequire(import.meta.url)('better-sqlite3') as new (p: string, o?: { timeout?: number }) => RawDb;

const DROP_ALL = 'PRAGMA foreign_keys = OFF; DROP TABLE turn_metrics; DROP TABLE call_transcript; DROP TABLE messages; DROP TABLE calls; DROP TABLE sessions;';

// Every store's contract, on a file per test; two stores on it are two connections to one file (two nodes).
t.test('the store contract, on SQLite', async (t) => {
  storeContract(t, async (t) => {
    const path = join(tempDir(t), 'nested', 'eva.db');
    return {
      open: async (opts) => openStore(path, opts),
      async fail() {
        const raw = new RawDatabase(path);
        raw.exec(DROP_ALL);
        raw.close();
      },
      async recover() {
        // The same schema again (user_version still says it is there); prepared statements re-prepare.
        const raw = new RawDatabase(path);
        raw.exec(MIGRATIONS.join(';\n'));
        raw.close();
      },
    };
  });
});

t.test('migrations are idempotent: reopening keeps the schema version and the data', async (t) => {
  const path = join(tempDir(t), 'eva.db');
  for (let i = 0; i < 3; i++) {
    const s = openStore(path);
    t.equal(s.schemaVersion, SCHEMA_VERSION);
    s.appendMessage('s', { role: 'user', content: `open ${i}` });
    await s.close();
  }
  const s = openStore(path);
  t.teardown(() => s.close());
  t.equal((await s.history('s', 10)).length, 3);

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
  t.same((await store.history('s1', 10)).map((m) => [m.turn, m.content]), [[0, 'hi'], [0, 'hello'], [1, 'again']], 'a read flushes first');
  store.endCall('c1', 'hangup');
  await store.close();
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
  t.doesNotThrow(() => void store.flush(), 'flush does not throw');
  const blocked = performance.now() - t0;
  const r0 = performance.now();
  t.same(await store.history('busy', 10), [], 'reads go on (WAL readers are not blocked), without the waiting write');
  const readMs = performance.now() - r0;
  t.ok(store.pending > 0, 'the write is kept');
  const lockReports = (): string[] => errors.filter((e) => /has been locked/.test(e));
  t.same(lockReports(), [], 'a short lock is not reported (the retries absorb it)');
  const deadline = performance.now() + BUSY_REPORT_MS + 5000;
  while (lockReports().length === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  // When in the backoff the report comes depends on the machine's timers: only its lower bound is behaviour.
  const lockedFor = Number(/locked for (\d+\.\d) s; 1 writes wait/.exec(lockReports()[0] ?? '')?.[1]);
  t.ok(lockedFor >= BUSY_REPORT_MS / 1000, `a lock that lasts ${BUSY_REPORT_MS / 1000} s is reported (${lockReports()[0]})`);
  t.ok((await store.ping()) === true, 'a lock is not a failure yet');
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(lockReports().length, 1, 'once');
  locker.exec('COMMIT');
  const landBy = performance.now() + 5000;
  while (store.pending > 0 && performance.now() < landBy) await new Promise((r) => setTimeout(r, 50));
  t.equal(store.pending, 0, 'the retry committed it');
  t.same((await store.history('busy', 10)).map((m) => m.content), ['q', 'a'], 'the write landed after the lock went');
  t.comment(`a flush against a locked file held the loop ${blocked.toFixed(1)} ms (busy timeout 20 ms); the read after it ${readMs.toFixed(1)} ms`);
});

t.test('a broken database (its tables dropped under it) throws at no caller: reads are empty, writes dropped and reported', async (t) => {
  const path = join(tempDir(t), 'eva.db');
  const { errors, onError } = collectErrors();
  const store = openStore(path, { onError });
  t.teardown(() => store.close());
  store.appendTurn('s', [{ role: 'user', content: 'before' }]);
  await store.flush();
  const raw = new RawDatabase(path);
  raw.exec(DROP_ALL);
  raw.close();
  t.doesNotThrow(() => {
    store.startCall({ id: 'c', sessionId: 's' });
    store.appendTurn('s', [{ role: 'user', content: 'after' }]);
    store.appendTranscript('c', { turn: 0, role: 'user', text: 'x' });
    store.recordTurnMetrics('c', 0, { eou_ms: 1 });
    store.endCall('c', 'hangup');
    void store.flush();
  }, 'no write throws');
  t.same(await store.history('s', 10), [], 'history is empty');
  t.equal(await store.getSession('s'), undefined);
  t.equal(await store.getCall('c'), undefined);
  t.same(await store.transcript('c'), []);
  t.same(await store.turnMetrics('c'), []);
  t.equal(await store.ping(), false, '/health sees the failure');
  t.ok(errors.some((e) => /could not record a call \(and 4 more of 5 writes\); dropped/.test(e)), errors.join(' | '));
  t.ok(errors.some((e) => /could not read the history/.test(e)));
  t.equal(store.pending, 0, 'failed writes do not pile up');
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
    // The SQLite commit is synchronous: it is done when flush() returns.
    void store.flush();
    flush.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 5));
  }
  const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!.toFixed(3);
  t.comment(`queueing a turn's 6 writes: p50 ${q(enqueue, 0.5)} ms, max ${q(enqueue, 1)} ms; committing them: p50 ${q(flush, 0.5)} ms, p99 ${q(flush, 0.99)} ms, max ${q(flush, 1)} ms`);
  t.equal((await store.history('s0', 100)).length, 40);
});

t.test('the WAL is checkpointed by the worker thread, not by the connection that writes', async (t) => {
  const path = join(tempDir(t), 'eva.db');
  const store = openStore(path);
  t.teardown(() => store.close());
  const { statSync } = await import('node:fs');
  const text = 'x'.repeat(2000);
  for (let i = 0; i < 300; i++) store.appendTurn(`s${i}`, [{ role: 'user', content: text }]);
  await store.flush();
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
  t.equal((await store.history('s299', 1))[0]!.content, text);
});
