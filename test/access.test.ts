// Access and limits against the real server on 127.0.0.1 (docs/security.md): one test per rule, with real HTTP
// (node:http, so that Origin and Host can be set as a browser or an attacker would) and WebSocket (`ws`) clients.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { ProbeCall } from '../bench/probe-client.js';
import { start as startGroq } from '../bench/standins/groq.js';
import { Peer } from '../media/peer.js';
import { sleep, startEva, type TestEva } from './helpers/eva.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** The whole body of a response, as text, once it has ended. */
function readBody(res: http.IncomingMessage, done: (text: string) => void): void {
  let text = '';
  res.setEncoding('utf8').on('data', (d: string) => (text += d));
  res.on('end', () => done(text));
}

function parseOr(text: string, fallback: unknown): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return fallback;
  }
}

/** One HTTP request with exactly the headers given (Host included, when set). */
function request(eva: TestEva, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: eva.server.port, method, path, headers, agent: false }, (res) => {
      readBody(res, (text) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseOr(text, undefined) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const postJson = (eva: TestEva, path: string, body: unknown, headers: Record<string, string> = {}) =>
  request(eva, 'POST', path, { 'content-type': 'application/json', ...headers }, JSON.stringify(body));

/** 101 with the open socket, or the refusal's status, JSON body and headers. */
interface Upgrade {
  status: number;
  ws?: WebSocket;
  json?: any;
  headers?: http.IncomingHttpHeaders;
}

/** A WebSocket upgrade: the open socket, or the HTTP refusal with its JSON body. */
function upgrade(eva: TestEva, path: string, opts: { origin?: string; headers?: Record<string, string>; protocols?: string[]; localAddress?: string } = {}): Promise<Upgrade> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${eva.server.port}${path}`, opts.protocols ?? [], {
      ...(opts.origin && { origin: opts.origin }),
      headers: opts.headers ?? {},
      ...(opts.localAddress && { localAddress: opts.localAddress }),
    });
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => {
      readBody(res, (text) => {
        resolve({ status: res.statusCode ?? 0, json: parseOr(text, text), headers: res.headers });
      });
    });
    ws.once('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

/** The next JSON frame on a socket that satisfies `pred`. */
function frame(ws: WebSocket, pred: (m: any) => boolean = () => true, timeoutMs = 10_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (ws.off('message', on), reject(new Error('no matching frame in time'))), timeoutMs);
    const on = (d: WebSocket.RawData): void => {
      const m = JSON.parse(String(d)) as unknown;
      if (!pred(m)) return;
      clearTimeout(timer);
      ws.off('message', on);
      resolve(m);
    };
    ws.on('message', on);
  });
}

async function limitHits(eva: TestEva, headers: Record<string, string> = {}): Promise<Record<string, number>> {
  const r = await request(eva, 'GET', '/metrics', headers);
  const out: Record<string, number> = {};
  for (const m of r.text.matchAll(/^eva_limit_hits_total\{limit="(\w+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

const closeAll = (...sockets: Upgrade[]) => () => {
  for (const s of sockets) s.ws?.terminate();
};

const FOREIGN = 'https://evil.example';

t.test('Origin: a foreign page is refused with 403 forbidden_origin everywhere it could do harm', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo' } });
  const own = `http://127.0.0.1:${eva.server.port}`;

  for (const path of ['/ws', '/ws/chat']) {
    const r = await upgrade(eva, path, { origin: FOREIGN });
    t.equal(r.status, 403, `${path} upgrade from a foreign origin`);
    t.match(r.json, { error: { code: 'forbidden_origin', message: String } });
  }
  const plain = await request(eva, 'POST', '/chat', { origin: FOREIGN, 'content-type': 'text/plain;charset=UTF-8' }, '{"message":"spend the quota"}');
  t.equal(plain.status, 403, 'POST /chat as text/plain (no preflight) from a foreign origin');
  t.match(plain.json, { error: { code: 'forbidden_origin' } });
  const v1 = await request(eva, 'POST', '/v1/realtime/calls', { origin: FOREIGN, 'content-type': 'application/sdp' }, 'v=0');
  t.match(v1, { status: 403, json: { error: { code: 'forbidden_origin' } } }, '/v1/* from a foreign origin');
  const tts = await postJson(eva, '/tts', { text: 'hi' }, { origin: 'null' });
  t.equal(tts.status, 403, 'an opaque origin (sandboxed frame, file://) is foreign too');

  // EVA's own page and clients that send no Origin are served.
  const same = await upgrade(eva, '/ws/chat', { origin: own });
  t.teardown(closeAll(same));
  t.equal(same.status, 101, 'the own origin opens /ws/chat');
  const none = await upgrade(eva, '/ws');
  t.teardown(closeAll(none));
  t.equal(none.status, 101, 'no Origin opens /ws');
  t.equal((await postJson(eva, '/chat', { message: 'hi' }, { origin: own })).status, 200, 'POST /chat from the own origin');
  t.equal((await postJson(eva, '/chat', { message: 'hi' })).status, 200, 'POST /chat with no Origin');
  t.equal((await request(eva, 'GET', '/health', { origin: FOREIGN })).status, 200, '/health answers anyone (only the verdict with a key set)');
});

t.test('EVA_ALLOWED_ORIGINS: a listed origin is served, with CORS headers and a preflight', async (t) => {
  const app = 'https://app.example.com';
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_ALLOWED_ORIGINS: `${app}, http://other.test:3000` } });
  const ws = await upgrade(eva, '/ws/chat', { origin: app });
  t.teardown(closeAll(ws));
  t.equal(ws.status, 101, 'the listed origin opens /ws/chat');
  const r = await postJson(eva, '/chat', { message: 'hello' }, { origin: app });
  t.equal(r.status, 200);
  t.equal(r.headers['access-control-allow-origin'], app, 'the reply is readable by that page');
  const pre = await request(eva, 'OPTIONS', '/chat', { origin: app, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' });
  t.equal(pre.status, 204, 'the preflight passes');
  t.match(pre.headers['access-control-allow-headers'], /content-type/);
  t.equal((await request(eva, 'OPTIONS', '/chat', { origin: FOREIGN })).status, 403, 'a foreign preflight does not');
  t.equal((await postJson(eva, '/chat', { message: 'x' }, { origin: 'https://app.example.com:8443' })).status, 403, 'another port of a listed host is not listed');
});

t.test('Host: a DNS-rebinding name is refused with 403 forbidden_host; loopback names and IPs pass', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_ALLOWED_HOSTS: 'eva.home' } });
  const port = eva.server.port;
  for (const path of ['/', '/health', '/chat']) {
    const r = await request(eva, path === '/chat' ? 'POST' : 'GET', path, { host: `rebind.attacker.example:${port}`, origin: `http://rebind.attacker.example:${port}` }, path === '/chat' ? '{"message":"x"}' : undefined);
    t.equal(r.status, 403, `${path} under a foreign Host`);
    t.match(r.json, { error: { code: 'forbidden_host' } });
  }
  const ws = await upgrade(eva, '/ws', { headers: { host: `rebind.attacker.example:${port}` }, origin: `http://rebind.attacker.example:${port}` });
  t.equal(ws.status, 403, 'a /ws upgrade under a foreign Host');
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `eva.home:${port}`]) {
    t.equal((await request(eva, 'GET', '/health', { host })).status, 200, `Host ${host} is served`);
  }
});

t.test('EVA_API_KEY: Bearer for HTTP and upgrades; 401 without; /health says only its status; /metrics needs it', async (t) => {
  const KEY = 'test-key-0123456789';
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_API_KEY: KEY } });
  const auth = { authorization: `Bearer ${KEY}` };

  for (const [method, path] of [['POST', '/chat'], ['POST', '/tts'], ['GET', '/voices'], ['GET', '/metrics'], ['POST', '/v1/realtime/calls'], ['GET', '/nope']] as const) {
    const r = await request(eva, method, path, { 'content-type': 'application/json' }, method === 'POST' ? '{"message":"x","text":"x"}' : undefined);
    t.equal(r.status, 401, `${method} ${path} without the key`);
    t.match(r.json, { error: { code: 'unauthorized', message: String } });
  }
  t.equal((await request(eva, 'GET', '/metrics', { authorization: 'Bearer wrong-key' })).status, 401, 'a wrong key');
  for (const path of ['/ws', '/ws/chat']) {
    const r = await upgrade(eva, path);
    t.equal(r.status, 401, `${path} upgrade without the key`);
  }
  const h = await request(eva, 'GET', '/health');
  t.equal(h.status, 200);
  t.same(Object.keys(h.json), ['status'], `/health without the key answers only its status (${h.text})`);
  const full = await request(eva, 'GET', '/health', auth);
  t.match(full.json, { status: 'ok', llm: true, providers: Object }, 'with the key, the details');

  const chat = await postJson(eva, '/chat', { message: 'with the key' }, auth);
  t.equal(chat.status, 200, 'POST /chat with Bearer');
  t.equal((await request(eva, 'GET', '/metrics', auth)).status, 200, '/metrics with Bearer');
  const ws = await upgrade(eva, '/ws/chat', { headers: auth });
  t.teardown(closeAll(ws));
  t.equal(ws.status, 101, 'a non-browser upgrade with Bearer');
  t.match((await request(eva, 'GET', '/main.js')).status, /^(200|404)$/, 'the page assets need no key');
});

t.test('POST /session-token: a short-lived token works as a WebSocket subprotocol, then expires', async (t) => {
  const KEY = 'test-key-token';
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_API_KEY: KEY, EVA_TOKEN_TTL_S: '1' } });
  const own = `http://127.0.0.1:${eva.server.port}`;
  t.equal((await request(eva, 'POST', '/session-token')).status, 401, 'minting needs the key');
  const r = await request(eva, 'POST', '/session-token', { authorization: `Bearer ${KEY}` });
  t.equal(r.status, 200);
  t.match(r.json, { token: String, expires_at: String });
  t.ok(Date.parse(r.json.expires_at) > Date.now(), 'expires_at is in the future');
  const token: string = r.json.token;
  t.notOk(token.includes(KEY), 'the token is not the key');
  t.equal((await request(eva, 'POST', '/session-token', { authorization: `Bearer ${token}` })).status, 401, 'a token cannot mint more tokens');

  const ws = await upgrade(eva, '/ws/chat', { origin: own, protocols: [`eva-token.${token}`] });
  t.teardown(closeAll(ws));
  t.equal(ws.status, 101, 'a browser-style upgrade with the token as a subprotocol');
  if (ws.ws) {
    t.equal(ws.ws.protocol, `eva-token.${token}`, 'the server answers with the offered subprotocol');
    ws.ws.send(JSON.stringify({ type: 'message', content: 'token turn' }));
    t.match(await frame(ws.ws, (m) => m.type === 'end' || m.type === 'error'), { type: 'end' }, 'and the socket serves');
  }
  t.equal((await postJson(eva, '/chat', { message: 'x' }, { authorization: `Bearer ${token}` })).status, 200, 'the token as Bearer');

  await sleep(2200);
  const late = await upgrade(eva, '/ws/chat', { origin: own, protocols: [`eva-token.${token}`] });
  t.teardown(closeAll(late));
  t.equal(late.status, 401, 'after its lifetime the token is refused');
});

t.test("the page's cookie: the page asks for the key once, then its requests and sockets need nothing more", async (t) => {
  const KEY = 'test-key-cookie';
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_API_KEY: KEY } });
  const own = `http://127.0.0.1:${eva.server.port}`;
  const bare = await request(eva, 'GET', '/');
  t.equal(bare.status, 401, 'the page without the key');
  t.match(bare.headers['www-authenticate'], /^Basic /, "asks for it with the browser's own prompt");
  const page = await request(eva, 'GET', '/', { authorization: `Basic ${Buffer.from(`me:${KEY}`).toString('base64')}` });
  t.match(String(page.status), /^(200|404)$/, 'the page with the key (404 when the client is not built)');
  if (page.status === 404) return void t.comment('the client page is not built (npm run build): no cookie to check');
  const setCookie = String(page.headers['set-cookie'] ?? '');
  t.match(setCookie, new RegExp(`^eva_${eva.server.port}=`), 'a cookie named for this port');
  t.match(setCookie, /HttpOnly/);
  t.match(setCookie, /SameSite=Strict/);
  const cookie = setCookie.split(';')[0]!;
  t.notOk(cookie.includes(KEY), 'the cookie is not the key');

  const ws = await upgrade(eva, '/ws/chat', { origin: own, headers: { cookie } });
  t.teardown(closeAll(ws));
  t.equal(ws.status, 101, "the page's socket with the cookie");
  const chat = await request(eva, 'POST', '/chat', { origin: own, cookie, 'content-type': 'text/plain;charset=UTF-8' }, '{"message":"from the page"}');
  t.equal(chat.status, 200, "the page's POST /chat with the cookie");
  const foreign = await request(eva, 'POST', '/chat', { origin: FOREIGN, cookie }, '{"message":"x"}');
  t.equal(foreign.status, 403, 'the cookie does not help a foreign origin');
  const again = await request(eva, 'GET', '/', { cookie });
  t.equal(again.status, 200, 'the page again with the cookie alone');
});

t.test('sessions: a made-up id is replaced with a fresh one; a server-given id continues; the key names any', async (t) => {
  const KEY = 'test-key-session';
  const groq = await startGroq({ profile: 'instant', reply: (msgs) => `turns so far: ${msgs.filter((m) => m.role === 'user').length}` });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq', EVA_API_KEY: KEY } });
  const owner = { authorization: `Bearer ${KEY}` };
  const token = (await request(eva, 'POST', '/session-token', owner)).json.token as string;
  const browser = { authorization: `Bearer ${token}` };

  // The owner keeps a conversation under a name of its choosing.
  const mine = await postJson(eva, '/chat', { message: 'secret plans', session_id: 'owner-diary' }, owner);
  t.equal(mine.json.session_id, 'owner-diary', 'the key holder names its own session id');

  const guess = await postJson(eva, '/chat', { message: 'what did they say?', session_id: 'owner-diary' }, browser);
  t.equal(guess.status, 200, 'a made-up id is not an error ...');
  t.not(guess.json.session_id, 'owner-diary', '... but it is replaced by a fresh one');
  t.equal(guess.json.response, 'turns so far: 1', 'which has no history: nothing of the other session is read');

  const next = await postJson(eva, '/chat', { message: 'and again', session_id: guess.json.session_id }, browser);
  t.equal(next.json.session_id, guess.json.session_id, 'the server-given id continues');
  t.equal(next.json.response, 'turns so far: 2', 'with its history');

  const ws = await upgrade(eva, '/ws/chat', { headers: browser });
  t.teardown(closeAll(ws));
  if (!ws.ws) return t.fail('upgrade refused');
  ws.ws.send(JSON.stringify({ type: 'message', content: 'over the socket', session_id: guess.json.session_id }));
  t.match(await frame(ws.ws, (m) => m.type === 'end'), { session_id: guess.json.session_id, response: 'turns so far: 3' }, '/ws/chat continues it too');
  ws.ws.send(JSON.stringify({ type: 'message', content: 'peek', session_id: 'owner-diary' }));
  const peek = await frame(ws.ws, (m) => m.type === 'end');
  t.not(peek.session_id, 'owner-diary', '/ws/chat replaces a made-up id the same way');

});

t.test("an offer's config.session from a browser follows the same rule; a client with no Origin names any", async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo' } });
  const own = `http://127.0.0.1:${eva.server.port}`;
  const ready = async (origin: string | undefined, session: string): Promise<string> => {
    const s = await upgrade(eva, '/ws', { origin });
    t.teardown(closeAll(s));
    if (!s.ws) throw new Error('upgrade refused');
    const peer = new Peer({ onAudio: () => undefined }, { onlyHosts: ['127.0.0.1'], additionalHosts: ['127.0.0.1'] });
    t.teardown(() => peer.close());
    s.ws.send(JSON.stringify({ type: 'offer', sdp: await peer.offer(), config: { session } }));
    const m = await frame(s.ws, (f) => f.type === 'ready' || f.type === 'error');
    s.ws.send(JSON.stringify({ type: 'hangup' }));
    if (m.type !== 'ready') throw new Error(`offer refused: ${m.code} ${m.message}`);
    return m.session as string;
  };
  const given = await ready(own, 'someone-elses-session');
  t.not(given, 'someone-elses-session', "EVA's own page cannot name a session it was not given");
  t.match(given, /^[A-Za-z0-9_-]{38}$/, 'it gets a server-made id');
  t.equal(await ready(own, given), given, 'and continues that one');
  t.equal(await ready(undefined, 'cli-session'), 'cli-session', 'with no key set, a non-browser client names its own');
});

t.test('an upstream error body (with a key in it) reaches neither the client nor the log unredacted', async (t) => {
  const LEAK = 'gsk_LEAKEDKEY0123456789abcdef';
  const upstream = http.createServer((_req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `Invalid API Key ${LEAK} for org at /srv/internal/path`, type: 'invalid_request_error' } }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, EVA_LLM: 'groq' } });

  const logged: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    logged.push(String(chunk));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  t.teardown(() => void (process.stderr.write = write));

  const r = await postJson(eva, '/chat', { message: 'hello' });
  t.match(String(r.status), /^5\d\d$/, 'a 5xx');
  t.match(r.json, { error: { code: /^provider_/, message: String } }, 'with a stable code');
  t.notMatch(r.text, /gsk_|Invalid API Key|internal\/path/, `no upstream text in the body (${r.text})`);
  const ws = await upgrade(eva, '/ws/chat');
  t.teardown(closeAll(ws));
  if (!ws.ws) return t.fail('upgrade refused');
  ws.ws.send(JSON.stringify({ type: 'message', content: 'hello' }));
  const err = await frame(ws.ws, (m) => m.type === 'error');
  t.match(err, { code: /^provider_/ });
  t.notMatch(JSON.stringify(err), /gsk_|Invalid API Key/, 'nor in the /ws/chat error frame');
  t.notMatch(logged.join(''), /LEAKEDKEY/, 'the key-shaped text is redacted in the log');
});

t.test('per-client socket limits and the global socket cap: 429 at the upgrade, counted', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_CLIENT_SOCKETS: '2', EVA_MAX_SOCKETS: '3', EVA_LIMIT_EXEMPT: '' } });
  const a = await upgrade(eva, '/ws');
  const b = await upgrade(eva, '/ws/chat');
  const c = await upgrade(eva, '/ws');
  t.teardown(closeAll(a, b, c));
  t.same([a.status, b.status], [101, 101], 'two sockets from one address');
  t.equal(c.status, 429, 'the third from the same address is refused');
  t.match(c, { json: { error: { code: 'rate_limited' } }, headers: { 'retry-after': /^\d+$/ } });
  const d = await upgrade(eva, '/ws', { localAddress: '127.0.0.2' });
  const e = await upgrade(eva, '/ws', { localAddress: '127.0.0.3' });
  t.teardown(closeAll(d, e));
  t.equal(d.status, 101, 'another address still gets one');
  t.equal(e.status, 429, 'until the server-wide cap');
  a.ws?.close();
  await sleep(200);
  const f = await upgrade(eva, '/ws');
  t.teardown(closeAll(f));
  t.equal(f.status, 101, 'a closed socket frees its place');
  const hits = await limitHits(eva);
  t.ok(hits.client_sockets! >= 1 && hits.max_sockets! >= 1, `counted: ${JSON.stringify(hits)}`);
});

t.test('a socket that does not offer in time is closed with a reason', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_OFFER_TIMEOUT_S: '1' } });
  const s = await upgrade(eva, '/ws');
  const sock = s.ws;
  if (!sock) return t.fail('upgrade refused');
  const closed = await new Promise<{ code: number; reason: string }>((r) => sock.once('close', (code, reason) => r({ code, reason: String(reason) })));
  t.equal(closed.code, 1008, 'policy-violation close');
  t.match(closed.reason, /^offer_timeout/);
  t.equal((await limitHits(eva)).offer_timeout, 1, 'counted');
});

t.test('offers per minute and calls per client', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_CLIENT_OFFERS_PER_MIN: '3', EVA_CLIENT_CALLS: '1', EVA_LIMIT_EXEMPT: '' } });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  const s = await upgrade(eva, '/ws');
  t.teardown(closeAll(s));
  if (!s.ws) return t.fail('upgrade refused');
  for (let i = 2; i <= 3; i++) {
    s.ws.send(JSON.stringify({ type: 'offer', sdp: 'v=0\r\n' }));
    t.match(await frame(s.ws), { type: 'error', code: 'rate_limited', message: /calls/ }, `offer ${i}: refused, the address holds its one call`);
  }
  s.ws.send(JSON.stringify({ type: 'offer', sdp: 'v=0\r\n' }));
  t.match(await frame(s.ws), { type: 'error', code: 'rate_limited', message: /offers a minute/ }, 'offer 4 within a minute: refused by the rate');
  const hits = await limitHits(eva);
  t.ok(hits.client_calls! >= 1 && hits.client_offers! >= 1, `counted: ${JSON.stringify(hits)}`);
  t.equal(eva.server.calls.size, 1, 'no call was made for a refused offer');
});

t.test('/ws text turns per second', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_WS_TEXT_PER_SEC: '1', EVA_LIMIT_EXEMPT: '' } });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  call.send({ type: 'text', text: 'one' });
  call.send({ type: 'text', text: 'two' });
  const err = await call.waitFor((m) => m.type === 'error');
  t.match(err, { type: 'error', code: 'rate_limited' }, 'the second typed turn within a second');
  t.equal((await limitHits(eva)).ws_text, 1, 'counted');
});

t.test('/tts requests per second and characters per request', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_LLM: 'echo', EVA_TTS: 'espeak', EVA_TTS_PER_SEC: '1', EVA_TTS_MAX_CHARS: '40', EVA_LIMIT_EXEMPT: '' } });
  const [a, b] = await Promise.all([postJson(eva, '/tts', { text: 'hello' }), postJson(eva, '/tts', { text: 'hello' })]);
  t.same([a!.status, b!.status].sort(), [200, 429], 'of two at once, one is refused');
  const refused = a!.status === 429 ? a! : b!;
  t.match(refused, { json: { error: { code: 'rate_limited' } }, headers: { 'retry-after': /^\d+$/ } });
  await sleep(1100); // a token back (1/s)
  const long = await postJson(eva, '/tts', { text: 'x'.repeat(41) });
  t.match(long, { status: 413, json: { error: { code: 'too_large' } } }, 'longer than EVA_TTS_MAX_CHARS');
  const hits = await limitHits(eva);
  t.ok(hits.tts_rate! >= 1 && hits.tts_chars === 1, `counted: ${JSON.stringify(hits)}`);
});

t.test('/ws/chat streams one reply at a time per socket; beyond the queue, rate_limited', async (t) => {
  const groq = await startGroq({ profile: 'groq' });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq', EVA_WS_CHAT_QUEUE: '1' } });
  const s = await upgrade(eva, '/ws/chat');
  t.teardown(closeAll(s));
  if (!s.ws) return t.fail('upgrade refused');
  const frames: any[] = [];
  s.ws.on('message', (d) => frames.push(JSON.parse(String(d))));
  for (const content of ['first', 'second', 'third']) s.ws.send(JSON.stringify({ type: 'message', content }));
  const deadline = Date.now() + 15_000;
  while (frames.filter((f) => f.type === 'end' || f.type === 'error').length < 3 && Date.now() < deadline) await sleep(50);
  const ends = frames.filter((f) => f.type === 'end');
  const errors = frames.filter((f) => f.type === 'error');
  t.equal(ends.length, 2, 'the streaming message and the one queued behind it are answered');
  t.match(errors, [{ code: 'rate_limited' }], 'the one beyond the queue is refused');
  const firstEnd = frames.findIndex((f) => f.type === 'end');
  const tokensAfter = frames.slice(firstEnd + 1).filter((f) => f.type === 'token').length;
  const tokensBefore = frames.slice(0, firstEnd).filter((f) => f.type === 'token').map((f) => f.content).join('');
  t.equal(tokensBefore, ends[0].response, 'the first reply streamed whole before the second began');
  t.ok(tokensAfter > 0, 'then the second streamed');
  t.equal((await limitHits(eva)).ws_chat_stream, 1, 'counted');
});
