// A failing database over the real server: its tables dropped (or its file locked) under a running EVA. Text
// turns over POST /chat and /ws/chat and a call's typed turn are still answered; /health says the database is down.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ProbeCall } from '../../bench/probe-client.js';
import { startEva } from '../helpers/eva.js';

const Database = createRequire(import.meta.url)('better-sqlite3') as new (p: string, o?: { timeout?: number }) => { exec(sql: string): unknown; close(): void };

async function evaWithFileDb(t: { teardown(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'eva-dbfault-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dbPath = join(dir, 'eva.db');
  const eva = await startEva(t, { runtime: true, dbPath, env: { EVA_LLM: 'echo', EVA_TTS: 'espeak', EVA_LOG_LEVEL: 'silent' } });
  return { eva, dbPath };
}

async function chat(url: string, body: unknown) {
  const r = await fetch(`${url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as { response?: string; session_id?: string; error?: { code: string } } };
}

function wsChat(url: string, content: string): Promise<{ type: string; response?: string; code?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace('http', 'ws') + '/ws/chat');
    const timer = setTimeout(() => (ws.close(), reject(new Error('no end frame'))), 10_000);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'message', content })));
    ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as { type: string };
      if (m.type === 'end' || m.type === 'error') {
        clearTimeout(timer);
        ws.close();
        resolve(m);
      }
    });
    ws.on('error', reject);
  });
}

t.test('with its tables dropped under it, EVA still answers POST /chat, /ws/chat and a call, and /health says database down', async (t) => {
  const { eva, dbPath } = await evaWithFileDb(t);
  const before = await chat(eva.httpUrl, { message: 'hello before' });
  t.equal(before.status, 200, 'a healthy turn first');
  t.equal((await eva.runtime!.store.history(before.body.session_id!, 10)).length, 2, 'and it was stored');

  const raw = new Database(dbPath);
  raw.exec('PRAGMA foreign_keys = OFF; DROP TABLE turn_metrics; DROP TABLE call_transcript; DROP TABLE messages; DROP TABLE calls; DROP TABLE sessions;');
  raw.close();

  const after = await chat(eva.httpUrl, { message: 'hello after', session_id: before.body.session_id });
  t.equal(after.status, 200, 'POST /chat answers');
  t.match(after.body.response, /hello after/, 'with the reply');
  const fresh = await chat(eva.httpUrl, { message: 'a new session' });
  t.equal(fresh.status, 200, 'a new session is answered too');
  const streamed = await wsChat(eva.httpUrl, 'over the socket');
  t.equal(streamed.type, 'end', '/ws/chat ends with "end", not an error');
  t.match(streamed.response, /over the socket/);

  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  await call.waitFor((m) => m.type === 'ready');
  call.send({ type: 'text', text: 'are you there' });
  const reply = await call.waitFor((m) => m.type === 'reply_end' || m.type === 'error', 10_000);
  t.equal(reply.type, 'reply_end', 'a call\'s typed turn is answered');
  t.equal(eva.server.calls.size, 1, 'the call goes on');

  await eva.runtime!.store.flush();
  const health = await fetch(`${eva.httpUrl}/health`);
  const h = (await health.json()) as { status: string; database: boolean };
  t.equal(h.database, false, '/health reports the database');
  t.equal(h.status, 'degraded');
});

t.test('with the file locked by another process, a text turn is answered at once and stored once the lock goes', async (t) => {
  const { eva, dbPath } = await evaWithFileDb(t);
  const locker = new Database(dbPath, { timeout: 0 });
  t.teardown(() => locker.close());
  locker.exec('BEGIN IMMEDIATE');
  const t0 = performance.now();
  const r = await chat(eva.httpUrl, { message: 'while locked' });
  const ms = performance.now() - t0;
  t.equal(r.status, 200, 'answered');
  locker.exec('COMMIT');
  const store = eva.runtime!.store;
  const deadline = performance.now() + 5000;
  while (store.pending > 0 && performance.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  t.equal((await store.history(r.body.session_id!, 10)).length, 2, 'the turn was stored after the lock went');
  t.comment(`POST /chat with the database locked: ${ms.toFixed(0)} ms`);
});
