// Provider faults on the text API: a Groq stand-in that hangs before its first token or stalls after it. POST /chat
// answers 504 provider_timeout, /ws/chat ends the turn with an error frame, both within the deadlines; the next
// turn works.
import t from 'tap';
import WebSocket from 'ws';
import { start as startGroq } from '../../bench/standins/groq.js';
import { startEva } from '../helpers/eva.js';

const FIRST_MS = 400;
const IDLE_MS = 400;

t.test('POST /chat answers 504 provider_timeout for a hung or stalled model, and /ws/chat an error frame', async (t) => {
  const groq = await startGroq({ reply: () => 'One two three four five six seven eight.' });
  t.teardown(() => groq.close());
  const eva = await startEva(t, {
    runtime: true,
    env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq', EVA_LLM_DEADLINE_MS: String(FIRST_MS), EVA_STREAM_IDLE_MS: String(IDLE_MS) },
  });
  const chat = async (message: string) => {
    const t0 = performance.now();
    const res = await fetch(`${eva.httpUrl}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message }) });
    return { status: res.status, json: (await res.json()) as { response?: string; error?: { code: string; message: string } }, ms: performance.now() - t0 };
  };

  for (const mode of ['hang', 'stall'] as const) {
    groq.setFail({ mode, count: 1, match: 'chat' });
    const r = await chat('Count for me');
    t.equal(r.status, 504, `${mode}: 504 Gateway Timeout`);
    t.match(r.json, { error: { code: 'provider_timeout', message: /groq/ } }, `${mode}: the code names the timeout`);
    t.ok(r.ms < 3000, `${mode}: answered after ${r.ms.toFixed(0)} ms (deadline ${mode === 'hang' ? FIRST_MS : IDLE_MS} ms)`);
    const next = await chat('Count for me');
    t.equal(next.status, 200, `${mode}: the next request is answered`);
    t.equal(next.json.response, 'One two three four five six seven eight.');
  }

  const ws = new WebSocket(`${eva.httpUrl.replace('http:', 'ws:')}/ws/chat`);
  t.teardown(() => ws.close());
  const frames: { type: string; code?: string; content?: string; response?: string }[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d)) as (typeof frames)[number]));
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  const turn = async () => {
    const from = frames.length;
    ws.send(JSON.stringify({ type: 'message', content: 'Count for me' }));
    for (let i = 0; i < 300; i++) {
      const f = frames.slice(from).find((x) => x.type === 'end' || x.type === 'error');
      if (f) return { last: f, frames: frames.slice(from) };
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('no end or error frame within 6 s');
  };
  groq.setFail({ mode: 'stall', count: 1, match: 'chat' });
  const stalled = await turn();
  t.ok(stalled.frames.some((f) => f.type === 'token'), 'tokens came before the stall');
  t.match(stalled.last, { type: 'error', code: 'provider_timeout' }, '/ws/chat ends the stalled turn with an error frame');
  const next = await turn();
  t.match(next.last, { type: 'end', response: 'One two three four five six seven eight.' }, 'the next turn on the socket works');
});
