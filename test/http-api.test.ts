// Integration: the seeds' HTTP and WebSocket API (docs/protocol.md "HTTP API") against the real server app and runtime
// (providers chosen from the environment, SQLite store, metrics, rate limiter), with groq-sdk and the ollama
// client talking to stand-in servers on 127.0.0.1 that speak Groq's and Ollama's wire protocols.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { start as startGroq, type GroqStandin } from '../bench/standins/groq.js';
import { start as startOllama } from '../bench/standins/ollama.js';
import { decodeWav } from '../media/wav.js';
import { TEXT_API_LIMIT } from '../server/ratelimit.js';
import { rms, sleep, startEva, type TestEva } from './helpers/eva.js';

interface ChatMsg {
  role: string;
  content: string;
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
}

/** A stack frame, a source path or a file URL: none of these may reach a client. */
const INTERNALS_RE = /\n\s*at |\bat [\w.$<>]+ \(|node_modules|file:\/\/|\.[cm]?[jt]s:\d+|\b(TypeError|ReferenceError|ProviderError|EvaError)\b/;

async function request(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** POST a JSON value (or raw text, when `body` is a string) as application/json unless told otherwise. */
function post(eva: TestEva, path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Reply> {
  return request(`${eva.httpUrl}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** The `messages` of every chat request the Groq stand-in received, oldest first. */
function groqChats(groq: GroqStandin): ChatMsg[][] {
  return groq.requests.filter((r) => r.path.endsWith('/chat/completions')).map((r) => (r.body as { messages: ChatMsg[] }).messages);
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** An error reply as docs/protocol.md describes it: the status, JSON `{error:{code,message}}`, and no internals. */
function isErrorReply(t: Test, r: Reply, status: number | RegExp, code: string | RegExp, what: string): void {
  if (typeof status === 'number') t.equal(r.status, status, `${what}: status ${status}`);
  else t.match(String(r.status), status, `${what}: status ${status} (got ${r.status})`);
  t.match(r.headers.get('content-type'), /application\/json/, `${what}: JSON body`);
  t.match(r.json, { error: { code, message: String } }, `${what}: {error:{code,message}} (got ${r.text.slice(0, 200)})`);
  t.ok(typeof r.json?.error?.message === 'string' && r.json.error.message.length > 0, `${what}: a message`);
  t.notMatch(r.text, INTERNALS_RE, `${what}: no stack trace or source paths in the body`);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ---- /ws/chat client -------------------------------------------------------------------------------------------

interface WsFrame {
  type: string;
  content?: string;
  response?: string;
  latency_ms?: number;
  ttft_ms?: number | null;
  session_id?: string;
  provider?: string;
  code?: string;
  message?: string;
}

async function chatSocket(eva: TestEva) {
  const ws = new WebSocket(`${eva.httpUrl.replace('http:', 'ws:')}/ws/chat`);
  const inbox: WsFrame[] = [];
  let wake: (() => void) | null = null;
  ws.on('message', (data, isBinary) => {
    inbox.push(JSON.parse(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data)) as WsFrame);
    wake?.();
  });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  const next = async (timeoutMs = 5000): Promise<WsFrame> => {
    const end = performance.now() + timeoutMs;
    while (inbox.length === 0) {
      if (ws.readyState !== WebSocket.OPEN) throw new Error('socket closed while waiting for a frame');
      const left = end - performance.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.min(left, 100));
        wake = () => (clearTimeout(timer), r());
      });
      wake = null;
    }
    return inbox.shift()!;
  };
  return {
    ws,
    inbox,
    next,
    send(v: unknown) {
      ws.send(typeof v === 'string' ? v : JSON.stringify(v));
    },
    /** Frames up to and including the first `end` or `error`. */
    async turn(timeoutMs = 5000): Promise<WsFrame[]> {
      const frames: WsFrame[] = [];
      for (;;) {
        const f = await next(timeoutMs);
        frames.push(f);
        if (f.type === 'end' || f.type === 'error') return frames;
      }
    },
    close() {
      ws.close();
    },
  };
}

// ---- Prometheus text format ------------------------------------------------------------------------------------

interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseProm(text: string): { types: Map<string, string>; samples: PromSample[]; bad: string[] } {
  const types = new Map<string, string>();
  const samples: PromSample[] = [];
  const bad: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      else if (!line.startsWith('# HELP ')) bad.push(line);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    if (!m) {
      bad.push(line);
      continue;
    }
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let consumed = 0;
    for (let l = re.exec(body); l; l = re.exec(body)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      consumed += l[0].length;
    }
    if (consumed !== body.length) bad.push(line);
    const raw = m[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') bad.push(line);
    samples.push({ name: m[1]!, labels, value });
  }
  return { types, samples, bad };
}

function promValue(samples: PromSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels);
  return samples.find((s) => s.name === name && want.every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === want.length)?.value;
}

// ---- POST /chat ------------------------------------------------------------------------------------------------

t.test('POST /chat: one text turn through Groq, with the session history sent back to the model', async (t) => {
  const groq = await startGroq({ profile: 'instant', reply: (msgs) => `Reply number ${msgs.filter((m) => m.role === 'user').length}: noted "${msgs.at(-1)?.content}".` });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' } });

  const first = await post(eva, '/chat', { message: 'Hello EVA' });
  t.equal(first.status, 200, 'the turn succeeds');
  t.match(first.headers.get('content-type'), /application\/json/);
  t.match(first.json, { response: String, session_id: String, latency_ms: Number, provider: String }, 'the reply has the seeds\' shape');
  t.equal(first.json.response, 'Reply number 1: noted "Hello EVA".', 'the reply text is what the LLM stand-in streamed');
  t.equal(first.json.provider, 'groq', 'provider names the adapter that answered');
  t.ok(first.json.latency_ms >= 0 && first.json.latency_ms < 5000, `latency_ms is a plausible duration (${first.json.latency_ms})`);
  t.match(first.json.session_id, /^[A-Za-z0-9_-]{1,64}$/, 'a new session id was made');
  const chats1 = groqChats(groq);
  t.equal(chats1.length, 1, 'one chat request reached Groq');
  t.equal(chats1[0]![0]!.role, 'system', 'the system prompt leads');
  t.same(chats1[0]!.slice(1), [{ role: 'user', content: 'Hello EVA' }], 'a new session sends only the user message after the system prompt');

  const second = await post(eva, '/chat', { message: 'And again', session_id: first.json.session_id });
  t.equal(second.status, 200);
  t.equal(second.json.session_id, first.json.session_id, 'the session id is kept');
  t.equal(second.json.response, 'Reply number 2: noted "And again".');
  t.same(
    groqChats(groq).at(-1)!.slice(1),
    [
      { role: 'user', content: 'Hello EVA' },
      { role: 'assistant', content: 'Reply number 1: noted "Hello EVA".' },
      { role: 'user', content: 'And again' },
    ],
    'the second turn sends the first turn (user and assistant) before the new message',
  );

  // A client-chosen id is taken as given; `session_id: null` counts as absent (seed clients send it).
  const chosen = await post(eva, '/chat', { message: 'Mine', session_id: 'client-chosen_01' });
  t.equal(chosen.status, 200);
  t.equal(chosen.json.session_id, 'client-chosen_01', 'a new client-chosen session id is used as given');
  const nulled = await post(eva, '/chat', { message: 'Fresh', session_id: null });
  t.equal(nulled.status, 200, 'session_id null is accepted');
  t.not(nulled.json.session_id, first.json.session_id, 'and starts a new session');
  t.same(groqChats(groq).at(-1)!.slice(1), [{ role: 'user', content: 'Fresh' }], 'with no history');

  // Seed clients post JSON as text/plain (fetch's default for a string body).
  const plain = await post(eva, '/chat', JSON.stringify({ message: 'Plain text body' }), { 'content-type': 'text/plain;charset=UTF-8' });
  t.equal(plain.status, 200, 'a JSON body sent as text/plain is accepted');
  t.equal(plain.json?.response, 'Reply number 1: noted "Plain text body".');
  const noType = await request(`${eva.httpUrl}/chat`, { method: 'POST', body: new Blob([JSON.stringify({ message: 'No type' })]) });
  t.equal(noType.status, 200, 'a JSON body with no Content-Type is accepted');
});

t.test('POST /chat: Groq failing with HTTP 500 falls back to Ollama, and provider says so', async (t) => {
  const groq = await startGroq({ profile: 'instant', fail: { mode: 'http500', match: 'chat' } });
  const ollama = await startOllama({ profile: 'instant', reply: () => 'Ollama answers.' });
  t.teardown(() => Promise.all([groq.close(), ollama.close()]));
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq,ollama', OLLAMA_HOST: ollama.url, EVA_LLM_DEADLINE_MS: '1000' } });

  const r = await post(eva, '/chat', { message: 'Who answers?' });
  t.equal(r.status, 200, 'the turn succeeds through the fallback');
  t.equal(r.json.response, 'Ollama answers.', 'the reply came from the Ollama stand-in');
  t.equal(r.json.provider, 'ollama', 'provider names the adapter that answered, not the chain');
  const groqTry = groq.requests.find((q) => q.path.endsWith('/chat/completions'));
  t.match(groqTry, { failed: 'http500', status: 500 }, 'Groq was asked first and failed with HTTP 500');
  const ollamaChat = ollama.requests.filter((q) => q.path === '/api/chat').at(-1)?.body as { messages: ChatMsg[] } | undefined;
  t.match(ollamaChat?.messages.at(-1), { role: 'user', content: 'Who answers?' }, 'Ollama got the same turn');

  // Groq recovered: the next turn is Groq's again.
  groq.setFail(null);
  const back = await post(eva, '/chat', { message: 'And now?', session_id: r.json.session_id });
  t.equal(back.status, 200);
  t.equal(back.json.provider, 'groq', 'a recovered Groq answers again');
  t.match(groqChats(groq).at(-1)!.slice(1), [{ role: 'user', content: 'Who answers?' }, { role: 'assistant', content: 'Ollama answers.' }, { role: 'user', content: 'And now?' }]);

  const scrape = parseProm(await (await fetch(`${eva.httpUrl}/metrics`)).text());
  t.equal(promValue(scrape.samples, 'eva_fallbacks_total', { from: 'groq', to: 'ollama' }), 1, '/metrics counts the fallback');
});

t.test('POST /chat: bad requests are 4xx JSON errors and never reach the model', async (t) => {
  const groq = await startGroq({ profile: 'instant' });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' } });
  const limiter = eva.runtime!.limiter;

  const cases: [string, string, number, string][] = [
    ['invalid JSON', '{"message": "hi"', 400, 'bad_request'],
    ['empty body', '', 400, 'bad_request'],
    ['a JSON array', '["hi"]', 400, 'bad_request'],
    ['JSON null', 'null', 400, 'bad_request'],
    ['a JSON string', '"hi"', 400, 'bad_request'],
    ['no message', '{}', 400, 'bad_request'],
    ['an empty message', '{"message":""}', 400, 'bad_request'],
    ['a blank message', '{"message":"   \\n "}', 400, 'bad_request'],
    ['a numeric message', '{"message":42}', 400, 'bad_request'],
    ['a message object', '{"message":{"text":"hi"}}', 400, 'bad_request'],
    ['a message over 4000 characters', JSON.stringify({ message: 'x'.repeat(4001) }), 400, 'bad_request'],
    ['a session_id with spaces', '{"message":"hi","session_id":"not ok"}', 400, 'bad_request'],
    ['a session_id over 64 characters', JSON.stringify({ message: 'hi', session_id: 'a'.repeat(65) }), 400, 'bad_request'],
    ['an empty session_id', '{"message":"hi","session_id":""}', 400, 'bad_request'],
    ['a numeric session_id', '{"message":"hi","session_id":123}', 400, 'bad_request'],
    ['a path-like session_id', '{"message":"hi","session_id":"../etc/passwd"}', 400, 'bad_request'],
  ];
  for (const [what, body, status, code] of cases) {
    limiter.clear(); // these requests are about validation, not the rate limit
    isErrorReply(t, await post(eva, '/chat', body), status, code, what);
  }
  const missing = await post(eva, '/chat', '{}');
  t.match(missing.json?.error?.message, /message/, 'the error names the missing field');
  const badSession = await post(eva, '/chat', '{"message":"hi","session_id":"not ok"}');
  t.match(badSession.json?.error?.message, /session_id/, 'the error names session_id');

  // Bodies over 64 KiB: refused from the declared length, and when streamed without one.
  limiter.clear();
  const big = JSON.stringify({ message: 'x'.repeat(70 * 1024) });
  isErrorReply(t, await post(eva, '/chat', big), 413, 'too_large', 'a 70 KiB body with Content-Length');
  const chunked = await request(`${eva.httpUrl}/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({
      start(c) {
        const bytes = new TextEncoder().encode(big);
        for (let o = 0; o < bytes.length; o += 8192) c.enqueue(bytes.subarray(o, o + 8192));
        c.close();
      },
    }),
    duplex: 'half',
  } as RequestInit & { duplex: 'half' });
  isErrorReply(t, chunked, 413, 'too_large', 'a 70 KiB chunked body');
  limiter.clear();
  const justUnder = await post(eva, '/chat', JSON.stringify({ message: 'ok', pad: 'y'.repeat(60 * 1024) }));
  t.equal(justUnder.status, 200, 'a 60 KiB body (under the limit) is read whole and accepted');

  // Content types that cannot be one JSON document.
  limiter.clear();
  const form = new FormData();
  form.set('message', 'hi');
  const multipart = await request(`${eva.httpUrl}/chat`, { method: 'POST', body: form });
  isErrorReply(t, multipart, 415, 'bad_request', 'a multipart body');
  isErrorReply(t, await post(eva, '/chat', '{"message":"hi"}', { 'content-type': 'application/octet-stream' }), 415, 'bad_request', 'an octet-stream body');

  // Wrong methods and unknown paths: the app answers 404 JSON for any method and path it has no route for.
  for (const [method, path] of [
    ['GET', '/chat'],
    ['PUT', '/chat'],
    ['DELETE', '/chat'],
    ['GET', '/tts'],
    ['POST', '/health'],
    ['GET', '/no/such/route'],
    ['POST', '/chat/extra'],
  ] as const) {
    const r = await request(`${eva.httpUrl}${path}`, { method, ...(method !== 'GET' && method !== 'DELETE' ? { body: '{}' } : {}) });
    isErrorReply(t, r, 404, 'not_found', `${method} ${path}`); // the app has one catch-all: 404, no 405
  }
  t.equal(groqChats(groq).length, 1, 'only the one valid request reached the model');
});

t.test('POST /chat: a dead provider is a 5xx JSON error with no internals, and a recovery is served', async (t) => {
  t.test('the Groq stand-in failing with HTTP 500', async (t) => {
    const groq = await startGroq({ profile: 'instant', fail: { mode: 'http500', match: 'chat' } });
    t.teardown(() => groq.close());
    const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' } });
    const r = await post(eva, '/chat', { message: 'Anyone there?', session_id: 'dead-provider' });
    isErrorReply(t, r, /^5\d\d$/, /^provider_/, 'HTTP 500 from Groq');
    t.equal((await eva.runtime!.store.history('dead-provider', 10)).length, 0, 'a failed turn stores nothing');

    groq.setFail(null);
    const ok = await post(eva, '/chat', { message: 'Now?', session_id: 'dead-provider' });
    t.equal(ok.status, 200, 'the next turn after Groq recovers succeeds');
    t.same(groqChats(groq).at(-1)!.slice(1), [{ role: 'user', content: 'Now?' }], 'the failed turn left no history behind');
  });

  t.test('Groq pointed at a closed port', async (t) => {
    const port = await closedPort();
    const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: `http://127.0.0.1:${port}`, EVA_LLM: 'groq' } });
    const r = await post(eva, '/chat', { message: 'Anyone there?' });
    isErrorReply(t, r, /^5\d\d$/, /^provider_/, 'connection refused');
    t.notMatch(r.text, /ECONNREFUSED/, 'the body does not expose the raw socket error code');

    const s = await chatSocket(eva);
    t.teardown(() => s.close());
    s.send({ type: 'message', content: 'Anyone there?' });
    const frames = await s.turn();
    t.match(frames.at(-1), { type: 'error', code: /^provider_/, message: String }, '/ws/chat reports the dead provider as an error frame');
    t.notMatch(JSON.stringify(frames), INTERNALS_RE, 'with no internals');
  });
});

t.test('POST /chat and /ws/chat: a burst beyond the rate limit gets 429', async (t) => {
  const groq = await startGroq({ profile: 'instant' });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' } });
  const n = TEXT_API_LIMIT.burst + 15;
  const replies = await Promise.all(Array.from({ length: n }, (_, i) => post(eva, '/chat', { message: `burst ${i}` })));
  const ok = replies.filter((r) => r.status === 200).length;
  const limited = replies.filter((r) => r.status === 429);
  t.equal(ok + limited.length, n, `every reply is 200 or 429 (got ${replies.map((r) => r.status).join(',')})`);
  t.ok(ok >= TEXT_API_LIMIT.burst && ok <= TEXT_API_LIMIT.burst + 3, `about the burst (${TEXT_API_LIMIT.burst}) succeeded: ${ok}`);
  t.ok(limited.length >= 10, `the rest were refused: ${limited.length}`);
  isErrorReply(t, limited[0]!, 429, 'rate_limited', 'a refused request');
  t.match(limited[0]!.headers.get('retry-after'), /^[1-9]\d*$/, 'a 429 tells when to retry (Retry-After)');

  // The same per-client bucket guards /ws/chat: a fresh bucket, then a burst of frames on one socket.
  const s = await chatSocket(eva);
  t.teardown(() => s.close());
  eva.runtime!.limiter.clear();
  const frames = n;
  for (let i = 0; i < frames; i++) s.send({ type: 'message', content: `socket burst ${i}` });
  let ends = 0;
  let refused = 0;
  const other: WsFrame[] = [];
  while (ends + refused + other.length < frames) {
    const f = await s.next();
    if (f.type === 'end') ends++;
    else if (f.type === 'error' && f.code === 'rate_limited') refused++;
    else if (f.type !== 'token') other.push(f);
  }
  t.same(other, [], 'every /ws/chat frame was answered by an end or a rate_limited error');
  t.ok(ends >= TEXT_API_LIMIT.burst && ends <= TEXT_API_LIMIT.burst + 3, `about the burst of /ws/chat messages was served: ${ends}`);
  t.ok(refused >= 10, `the rest got rate_limited error frames: ${refused}`);
  t.equal(s.ws.readyState, WebSocket.OPEN, 'a rate-limited socket stays open');
  eva.runtime!.limiter.clear();
  s.send({ type: 'message', content: 'after the refill' });
  t.match((await s.turn()).at(-1), { type: 'end' }, 'the socket serves again once tokens are back');
});

// ---- /ws/chat ---------------------------------------------------------------------------------------------------

t.test('/ws/chat: tokens stream in order, then an end frame with the timings', async (t) => {
  const REPLY = 'Sure. The capital of France is Paris, a city on the river Seine.';
  const groq = await startGroq({ profile: 'groq', reply: (msgs) => (msgs.some((m) => m.role === 'assistant') ? 'Second answer, with history.' : REPLY) });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' } });
  const s = await chatSocket(eva);
  t.teardown(() => s.close());

  s.send({ type: 'message', content: 'What is the capital of France?', session_id: 'ws-session-1' });
  const frames = await s.turn();
  const end = frames.at(-1)!;
  const tokens = frames.slice(0, -1);
  t.equal(end.type, 'end', `the turn ends with an end frame (got ${JSON.stringify(end)})`);
  t.ok(tokens.length >= 2, `the reply streamed in ${tokens.length} token frames`);
  t.ok(tokens.every((f) => f.type === 'token' && typeof f.content === 'string'), 'every frame before end is a token with content');
  t.equal(tokens.map((f) => f.content).join(''), end.response, 'the tokens, in order, make up end.response');
  t.equal(end.response, REPLY, 'end.response is what the LLM stand-in streamed');
  t.equal(end.session_id, 'ws-session-1', 'end names the session');
  t.type(end.latency_ms, 'number');
  t.type(end.ttft_ms, 'number');
  t.ok(end.ttft_ms! <= end.latency_ms!, `ttft_ms (${end.ttft_ms}) <= latency_ms (${end.latency_ms})`);
  t.ok(end.ttft_ms! >= 140, `ttft_ms (${end.ttft_ms}) includes the Groq profile's ~150 ms to first token`);
  t.comment(`/ws/chat on the groq profile: ttft ${end.ttft_ms} ms, latency ${end.latency_ms} ms, ${tokens.length} tokens`);

  // Malformed messages get an error naming the expected shape; the socket keeps serving.
  const bad: [string, unknown][] = [
    ['type chat', { type: 'chat', content: 'hi' }],
    ['not JSON', 'hello there'],
    ['no content', { type: 'message' }],
    ['empty content', { type: 'message', content: '' }],
    ['a JSON array', [1, 2]],
    ['a bad session id', { type: 'message', content: 'hi', session_id: 'no spaces allowed' }],
  ];
  for (const [what, msg] of bad) {
    s.send(msg);
    const err = await s.next();
    t.match(err, { type: 'error', code: String, message: String }, `${what}: an error frame`);
    t.match(err.message, /\{"type":"message","content":string/, `${what}: the message names the expected shape`);
  }
  const binary = Buffer.from(JSON.stringify({ type: 'chat' }));
  s.ws.send(binary, { binary: true });
  t.match(await s.next(), { type: 'error', code: 'bad_message' }, 'a binary frame of the wrong shape gets the same error');

  t.equal(s.ws.readyState, WebSocket.OPEN, 'the socket stays open after bad messages');
  s.send({ type: 'message', content: 'And once more?', session_id: 'ws-session-1' });
  const again = await s.turn();
  t.match(again.at(-1), { type: 'end', response: 'Second answer, with history.', session_id: 'ws-session-1' }, 'a following valid message is served');
  t.same(
    groqChats(groq).at(-1)!.slice(1),
    [
      { role: 'user', content: 'What is the capital of France?' },
      { role: 'assistant', content: REPLY },
      { role: 'user', content: 'And once more?' },
    ],
    'the WebSocket turn used the session history',
  );

  // A new session when the id is left out; /chat sees the same sessions.
  s.send({ type: 'message', content: 'New one' });
  const fresh = (await s.turn()).at(-1)!;
  t.match(fresh, { type: 'end', session_id: /^[A-Za-z0-9_-]{1,64}$/ });
  t.not(fresh.session_id, 'ws-session-1', 'no session_id starts a new session');
  const viaHttp = await post(eva, '/chat', { message: 'Over HTTP now', session_id: 'ws-session-1' });
  t.equal(viaHttp.status, 200);
  t.equal(groqChats(groq).at(-1)!.length, 1 + 5, 'POST /chat continues the session made over /ws/chat (2 turns + the new message)');
});

// ---- /tts and /voices --------------------------------------------------------------------------------------------

t.test('POST /tts speaks WAV; GET /voices lists voices', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_TTS: 'espeak' } });
  const res = await fetch(`${eva.httpUrl}/tts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'Hello, this is EVA speaking. How are you today?' }) });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^audio\/wav/, 'audio/wav');
  const body = Buffer.from(await res.arrayBuffer());
  t.equal(body.toString('ascii', 0, 4), 'RIFF', 'starts with RIFF');
  t.equal(body.toString('ascii', 8, 12), 'WAVE', 'is a WAVE file');
  const wav = decodeWav(body);
  t.equal(wav.channels, 1, 'mono');
  t.ok(wav.sampleRate >= 8000 && wav.sampleRate <= 48000, `a speech sample rate (${wav.sampleRate})`);
  const seconds = wav.samples.length / wav.sampleRate;
  t.ok(seconds > 0.3, `holds ${seconds.toFixed(2)} s of audio`);
  t.equal(body.readUInt32LE(40), wav.samples.length * 2, 'the data chunk size matches the samples sent');
  const level = rms(wav.samples);
  let loud = 0;
  for (let i = 0; i < wav.samples.length; i++) if (Math.abs(wav.samples[i]!) > 500) loud++;
  t.ok(level > 200, `the audio is not silent (rms ${level.toFixed(0)})`);
  t.ok(loud / wav.sampleRate > 0.3, `over 0.3 s of samples above the noise floor (${(loud / wav.sampleRate).toFixed(2)} s)`);

  for (const [what, body, status, code] of [
    ['empty text', { text: '' }, 400, 'bad_request'],
    ['blank text', { text: '  ' }, 400, 'bad_request'],
    ['no text', {}, 400, 'bad_request'],
    ['numeric text', { text: 5 }, 400, 'bad_request'],
    ['a numeric voice', { text: 'hi', voice: 3 }, 400, 'bad_request'],
    ['text over 2000 characters', { text: 'word '.repeat(500) }, 413, 'too_large'],
  ] as const) {
    isErrorReply(t, await post(eva, '/tts', body), status, code, `/tts with ${what}`);
  }
  isErrorReply(t, await post(eva, '/tts', '{"text": '), 400, 'bad_request', '/tts with invalid JSON');

  const voices = await request(`${eva.httpUrl}/voices`);
  t.equal(voices.status, 200);
  t.match(voices.json, { provider: 'espeak', voices: Array }, 'the voices of the TTS in use');
  t.ok(voices.json.voices.length > 0, `a non-empty list (${voices.json.voices.length} voices)`);
  t.match(voices.json.voices[0], { id: String, name: String }, 'each voice has an id and a name');
});

// ---- /health -----------------------------------------------------------------------------------------------------

t.test('GET /health: true/false per part, 503 when the LLM is unreachable', async (t) => {
  t.test('all parts up', async (t) => {
    const groq = await startGroq({ profile: 'instant' });
    t.teardown(() => groq.close());
    const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' } });
    const r = await request(`${eva.httpUrl}/health`);
    t.equal(r.status, 200, `200 (got ${r.text.slice(0, 300)})`);
    t.match(r.json, { status: 'ok', stt: true, llm: true, tts: true, database: true }, 'every part is up');
    for (const k of ['stt', 'llm', 'tts', 'database']) t.type(r.json[k], 'boolean', `${k} is a boolean`);
    t.match(r.json.providers, { stt: { ok: true }, llm: { ok: true }, tts: { ok: true }, database: { ok: true } }, 'providers details each part');
    t.ok(groq.requests.some((q) => q.path.endsWith('/models')), 'the LLM check asked the Groq stand-in');
  });

  t.test('the LLM on a closed port', async (t) => {
    const port = await closedPort();
    const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: `http://127.0.0.1:${port}`, EVA_LLM: 'groq', EVA_STT: 'groq' } });
    const r = await request(`${eva.httpUrl}/health`);
    t.equal(r.status, 503, '503 when a required part is down');
    t.not(r.json?.status, 'ok', `status is not ok (${r.json?.status})`);
    t.equal(r.json?.llm, false, 'llm is false');
    t.equal(r.json?.tts, true, 'tts is still true');
    t.equal(r.json?.database, true, 'database is still true');
    t.match(r.json?.providers?.llm, { ok: false, detail: String }, 'providers.llm gives the reason');
    t.match(r.json?.providers?.llm?.detail, /groq/i, `the reason names the provider (${r.json?.providers?.llm?.detail})`);
    t.match(r.json?.providers?.llm?.detail, /refused|connect|unavailable|network/i, 'and says it cannot connect');
    t.notMatch(r.text, INTERNALS_RE, 'no internals in the body');
  });
});

// ---- /metrics ----------------------------------------------------------------------------------------------------

t.test('GET /metrics: Prometheus text with the text turns, stage latencies and calls', async (t) => {
  const groq = await startGroq({ profile: 'instant' });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' } });

  const before = parseProm(await (await fetch(`${eva.httpUrl}/metrics`)).text());
  t.equal(promValue(before.samples, 'eva_turns_total', { source: 'text' }), 0, 'no text turns at the start');
  const TURNS = 4;
  let session: string | undefined;
  for (let i = 0; i < TURNS; i++) {
    const r = await post(eva, '/chat', { message: `metrics turn ${i}`, ...(session && { session_id: session }) });
    t.equal(r.status, 200);
    session = r.json.session_id;
  }
  await post(eva, '/chat', { message: '' }); // a bad request is not a turn

  const res = await fetch(`${eva.httpUrl}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain/, 'Prometheus text content type');
  const text = await res.text();
  const { types, samples, bad } = parseProm(text);
  t.same(bad, [], 'every line parses as exposition format');
  t.equal(types.get('eva_turns_total'), 'counter');
  t.equal(promValue(samples, 'eva_turns_total', { source: 'text' }), TURNS, `eva_turns_total{source="text"} counts the ${TURNS} /chat turns`);
  t.equal(promValue(samples, 'eva_turns_total', { source: 'voice' }), 0, 'and no voice turns');

  t.equal(types.get('eva_stage_latency_seconds'), 'histogram', 'stage latencies are a histogram');
  const count = promValue(samples, 'eva_stage_latency_seconds_count', { stage: 'text_turn' });
  const sum = promValue(samples, 'eva_stage_latency_seconds_sum', { stage: 'text_turn' });
  t.equal(count, TURNS, 'the text_turn histogram counts each turn');
  t.ok(sum !== undefined && sum > 0 && sum < TURNS * 5, `its sum is the turns' seconds (${sum})`);
  const buckets = samples
    .filter((s) => s.name === 'eva_stage_latency_seconds_bucket' && s.labels.stage === 'text_turn')
    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), value: s.value }));
  t.ok(buckets.length > 5, `${buckets.length} buckets`);
  t.ok(buckets.every((b, i) => i === 0 || (b.le > buckets[i - 1]!.le && b.value >= buckets[i - 1]!.value)), 'buckets are cumulative in order of le');
  t.equal(buckets.at(-1)?.le, Infinity, 'the last bucket is +Inf');
  t.equal(buckets.at(-1)?.value, TURNS, 'the +Inf bucket equals the count');
  for (const stage of ['stt', 'llm_ttft', 'first_audio']) {
    t.equal(promValue(samples, 'eva_stage_latency_seconds_count', { stage }), 0, `${stage} has a zero series before any call`);
  }

  t.equal(types.get('eva_calls_total'), 'counter', 'eva_calls_total is declared a counter');
  t.equal(promValue(samples, 'eva_calls_total'), 0, 'eva_calls_total exists (no calls yet)');
  t.equal(promValue(samples, 'eva_calls_open'), 0, 'eva_calls_open exists');
  t.ok(types.has('eva_barge_ins_total'), 'barge-ins are exported');
  t.ok(types.has('eva_provider_errors_total'), 'provider errors are exported');

  // A provider failure shows up by provider and code.
  groq.setFail({ mode: 'http500', match: 'chat' });
  const failed = await post(eva, '/chat', { message: 'this one fails' });
  t.ok(failed.status >= 500);
  const after = parseProm(await (await fetch(`${eva.httpUrl}/metrics`)).text());
  const errors = after.samples.filter((s) => s.name === 'eva_provider_errors_total' && s.value > 0);
  t.ok(errors.length >= 1, `the failure is counted (${errors.map((e) => JSON.stringify(e.labels)).join(' ')})`);
  t.equal(promValue(after.samples, 'eva_stage_latency_seconds_count', { stage: 'text_turn' }), TURNS, 'a failed turn adds no text_turn latency');
});

// ---- persistence across a restart --------------------------------------------------------------------------------

t.test('a session survives a restart on the same database file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'eva-http-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dbPath = join(dir, 'eva.db');
  const groq = await startGroq({ profile: 'instant', reply: (msgs) => `Noted: ${msgs.at(-1)?.content}` });
  t.teardown(() => groq.close());
  const env = { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' };

  let sessionId = '';
  let firstEva: TestEva | undefined;
  let firstSocket: Awaited<ReturnType<typeof chatSocket>> | undefined;
  await t.test('first EVA', async (t) => {
    firstEva = await startEva(t, { runtime: true, env, dbPath });
    const r = await post(firstEva, '/chat', { message: 'My name is Ada.' });
    t.equal(r.status, 200);
    t.equal(r.json.response, 'Noted: My name is Ada.');
    sessionId = r.json.session_id;
    firstSocket = await chatSocket(firstEva);
  });
  // Its teardown ran (server.close() + runtime.close()): it takes no new connections ...
  const port = firstEva!.server.port;
  const refused = await new Promise<boolean>((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => (c.destroy(), resolve(false)));
    c.once('error', () => resolve(true));
  });
  t.ok(refused, 'the first EVA no longer accepts connections');
  // ... and serves nothing more on the connections it had.
  await sleep(100);
  t.not(firstSocket!.ws.readyState, WebSocket.OPEN, 'its open /ws/chat socket was closed');
  firstSocket!.ws.terminate();
  const kept = await fetch(`${firstEva!.httpUrl}/health`).then(
    (res) => `answered ${res.status}`,
    () => 'refused',
  );
  t.match(kept, /^(refused|answered 503)$/, 'a kept-alive HTTP connection is refused or told 503 after close');

  await t.test('second EVA on the same file', async (t) => {
    const eva = await startEva(t, { runtime: true, env, dbPath });
    const r = await post(eva, '/chat', { message: 'What is my name?', session_id: sessionId });
    t.equal(r.status, 200);
    t.equal(r.json.session_id, sessionId);
    t.same(
      groqChats(groq).at(-1)!.slice(1),
      [
        { role: 'user', content: 'My name is Ada.' },
        { role: 'assistant', content: 'Noted: My name is Ada.' },
        { role: 'user', content: 'What is my name?' },
      ],
      'the LLM request after the restart carries the first turn',
    );
    t.equal((await eva.runtime!.store.history(sessionId, 10)).length, 4, 'the database holds both turns');
  });
});

// ---- EVA's own overhead on the text path (reported, not asserted) -----------------------------------------------

t.test('text path overhead on the instant profile (reported)', async (t) => {
  const groq = await startGroq({ profile: 'instant' });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq' } });
  await post(eva, '/chat', { message: 'warm-up' });

  eva.runtime!.limiter.clear();
  const latencies: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    const r = await post(eva, '/chat', { message: `unique message number ${i}: ${Math.random().toString(36).slice(2)}` });
    wall.push(performance.now() - t0);
    t.equal(r.status, 200);
    latencies.push(r.json.latency_ms);
  }

  eva.runtime!.limiter.clear();
  const s = await chatSocket(eva);
  t.teardown(() => s.close());
  const ttfts: number[] = [];
  const wsLatencies: number[] = [];
  for (let i = 0; i < 10; i++) {
    s.send({ type: 'message', content: `unique socket message ${i}: ${Math.random().toString(36).slice(2)}` });
    const end = (await s.turn()).at(-1)!;
    t.equal(end.type, 'end');
    ttfts.push(end.ttft_ms!);
    wsLatencies.push(end.latency_ms!);
  }
  t.comment(
    `instant profile, 10 turns each: POST /chat latency_ms median ${median(latencies).toFixed(1)} ms (client wall ${median(wall).toFixed(1)} ms); ` +
      `/ws/chat ttft_ms median ${median(ttfts).toFixed(1)} ms, latency_ms median ${median(wsLatencies).toFixed(1)} ms`,
  );
});
