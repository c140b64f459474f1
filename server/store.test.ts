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
  const m = store.appendMessage('x', { role: 'user', content: 'hi' });
  t.equal(m.turn, 0);
  clock = 6000;
  store.appendMessage('x', { role: 'assistant', content: 'hello' });
  store.appendMessage('x', { role: 'user', content: 'again', turn: 1 });
  const s = store.getSession('x')!;
  t.equal(s.createdAt, 5000);
  t.equal(s.updatedAt, 6000);
  t.same(store.history('x', 10).map((h) => h.turn), [0, 0, 1]);
  t.equal(store.appendTurn('x', [{ role: 'user', content: 'next' }]), 2, 'appendTurn takes the next index');
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
  t.throws(() => openStore(path), { code: 'internal', message: /schema version 6, newer than this EVA knows \(1\)/ });
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
