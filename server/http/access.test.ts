import t from 'tap';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AccessConfig, LimitsConfig } from '../config.js';
import { loadConfig } from '../config.js';
import { redactSecrets } from '../log.js';
import { createMetrics } from '../metrics.js';
import { Access, authorizationSecret, clientAddress, cookieValue, hostAllowed, hostName, hostPolicy, originMatch, splitProtocols, type RequestInfo } from './access.js';
import { Limits } from './limits.js';
import { publicMessage } from './respond.js';
import { loadSecret, safeEqual, Signer } from './tokens.js';

const SECRET = Buffer.alloc(32, 7);

function info(over: Partial<RequestInfo> = {}): RequestInfo {
  return { method: 'GET', path: '/x', host: '127.0.0.1:8080', origin: '', authorization: '', cookie: '', protocol: '', peer: '127.0.0.1', forwardedFor: '', forwardedProto: '', ...over };
}

function access(over: Partial<AccessConfig> = {}, now?: () => number): Access {
  const cfg: AccessConfig = { allowedOrigins: [], allowedHosts: [], trustProxy: 0, tokenTtlS: 600, ...over };
  return new Access({ access: cfg, host: '127.0.0.1', iceHosts: ['eva.lan'], secret: SECRET, now });
}

t.test('X-Forwarded-For is read only behind trusted proxies, from the right', async (t) => {
  t.equal(clientAddress('10.0.0.1', '6.6.6.6', 0), '10.0.0.1', 'off by default: the header is ignored');
  t.equal(clientAddress('127.0.0.1', '6.6.6.6, 1.2.3.4', 1), '1.2.3.4', 'one proxy: the entry it appended (right-most)');
  t.equal(clientAddress('127.0.0.1', '6.6.6.6, 1.2.3.4, 10.0.0.2', 2), '1.2.3.4', 'two proxies: the second from the right');
  t.equal(clientAddress('127.0.0.1', '1.2.3.4', 3), '1.2.3.4', 'fewer entries than proxies: the left-most');
  t.equal(clientAddress('::ffff:127.0.0.1', '', 1), '127.0.0.1', 'no header: the peer, IPv4-mapped addresses unmapped');
  t.equal(clientAddress('127.0.0.1', 'not-an-ip', 1), '127.0.0.1', 'garbage in the header: the peer');
});

t.test('Host names: loopback, IP literals, HOST, EVA_ICE_HOSTS and EVA_ALLOWED_HOSTS pass; other names do not', async (t) => {
  t.equal(hostName('LocalHost:8080'), 'localhost');
  t.equal(hostName('[::1]:8080'), '::1');
  t.equal(hostName('bad host'), null);
  const p = hostPolicy('127.0.0.1', ['.example.com', 'eva.home'], ['203.0.113.9']);
  for (const h of ['127.0.0.1:8080', 'localhost:8080', '[::1]:8080', '10.1.2.3:8080', 'eva.home', 'a.example.com', 'app.localhost:80', '']) t.ok(hostAllowed(p, h), `${h || '(none)'} passes`);
  for (const h of ['attacker.com:8080', 'example.com.evil.net', 'localhost.evil.net', 'bad host']) t.notOk(hostAllowed(p, h), `${h} is refused`);
  t.ok(hostAllowed(hostPolicy('0.0.0.0', [], []), 'anything.example:8080'), 'bound to every interface with no list: any name');
  t.notOk(hostAllowed(hostPolicy('0.0.0.0', ['eva.home'], []), 'anything.example:8080'), 'with a list, only its names');
});

t.test("Origin: EVA's own (scheme, host and port of the request) or a listed one", async (t) => {
  const allowed = new Set(['https://app.example.com']);
  t.equal(originMatch('http://127.0.0.1:8080', '127.0.0.1:8080', 'http', allowed), 'own');
  t.equal(originMatch('http://localhost', 'localhost:80', 'http', allowed), 'own', 'default ports compare equal');
  t.equal(originMatch('http://127.0.0.1:9999', '127.0.0.1:8080', 'http', allowed), false, 'another port is another origin');
  t.equal(originMatch('https://127.0.0.1:8080', '127.0.0.1:8080', 'http', allowed), false, 'another scheme is another origin');
  t.equal(originMatch('https://app.example.com', '127.0.0.1:8080', 'http', allowed), 'allowed');
  t.equal(originMatch('null', '127.0.0.1:8080', 'http', allowed), false, 'an opaque origin is foreign');
  t.equal(originMatch('https://evil.example', '127.0.0.1:8080', 'http', allowed), false);
});

t.test('credentials: Bearer, Basic password, cookie, subprotocol token', async (t) => {
  t.equal(authorizationSecret('Bearer abc'), 'abc');
  t.equal(authorizationSecret(`Basic ${Buffer.from('any:the:key').toString('base64')}`), 'the:key');
  t.equal(authorizationSecret('Digest x'), '');
  t.equal(cookieValue('a=1; eva_8080=tok; b=2', 'eva_8080'), 'tok');
  t.same(splitProtocols('eva-token.abc'), { token: 'abc', key: '', answer: 'eva-token.abc' });
  t.same(splitProtocols('chat, eva-token.abc'), { token: 'abc', key: '', answer: 'chat' }, 'another protocol is answered instead of the token');
  t.same(
    splitProtocols('realtime, openai-insecure-api-key.sk-1, openai-beta.realtime-v1'),
    { token: '', key: 'sk-1', answer: 'realtime' },
    "the OpenAI browser form: the key is read, `realtime` is answered, the key is never echoed",
  );
  t.ok(safeEqual('same', 'same'));
  t.notOk(safeEqual('same', 'Same'));
  t.notOk(safeEqual('short', 'a much longer string'));
});

t.test('tokens verify until they expire, and only with the secret and API key they were made with', async (t) => {
  const s = new Signer(SECRET, 'key-1');
  const { token, expiresAt } = s.mintToken(60_000, 1_000_000);
  t.match(token, /^[A-Za-z0-9._-]+$/, 'subprotocol-safe characters');
  t.equal(expiresAt, 1_060_000);
  t.ok(s.verifyToken(token, 1_059_000), 'valid before expiry');
  t.notOk(s.verifyToken(token, 1_060_000), 'void at expiry');
  t.notOk(new Signer(SECRET, 'key-2').verifyToken(token, 1_000_000), 'a new API key voids old tokens');
  t.notOk(new Signer(Buffer.alloc(32, 8), 'key-1').verifyToken(token, 1_000_000), 'another secret voids them');
  const forged = token.replace(/^v1\.[0-9a-z]+/, 'v1.zzzzzz');
  t.notOk(s.verifyToken(forged, 1_000_000), 'a longer expiry breaks the MAC');
});

t.test('session ids: only ids made with this secret verify', async (t) => {
  const s = new Signer(SECRET);
  const id = s.mintSessionId();
  t.match(id, /^[A-Za-z0-9_-]{38}$/, 'fits SESSION_ID_RE');
  t.ok(s.isSessionId(id));
  t.not(s.mintSessionId(), id, 'each id is new');
  t.notOk(s.isSessionId(id.slice(0, -1) + (id.endsWith('A') ? 'B' : 'A')), 'a changed MAC is refused');
  t.notOk(s.isSessionId('client-chosen'), 'a made-up id is refused');
  t.notOk(new Signer(Buffer.alloc(32, 9)).isSessionId(id), 'another secret does not know it');
  const a = access();
  t.equal(a.session(id, false), id, 'a server-made id continues');
  t.not(a.session('made-up', false), 'made-up', 'a made-up id is replaced for a browser');
  t.ok(a.signer.isSessionId(a.session('made-up', false)), 'by a server-made one');
  t.equal(a.session('made-up', true), 'made-up', 'an owner names any id');
});

t.test('the secret file is made once, 0600, and read back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'eva-secret-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = loadSecret(join(dir, 'data'));
  t.equal(a.length, 32);
  t.same(loadSecret(join(dir, 'data')), a, 'the same secret on the next start');
  t.equal((await stat(join(dir, 'data', 'secret.key'))).mode & 0o777, 0o600);
});

t.test('the access decision: host, then origin, then credentials; owner rights', async (t) => {
  const open = access();
  t.match(open.check(info({ host: 'rebind.evil:8080' }), 'auth'), { ok: false, status: 403, code: 'forbidden_host' });
  t.match(open.check(info({ origin: 'https://evil.example' }), 'auth'), { ok: false, status: 403, code: 'forbidden_origin' });
  t.match(open.check(info({ origin: 'https://evil.example' }), 'open'), { ok: true }, 'the page and its assets ignore Origin');
  t.match(open.check(info(), 'auth'), { ok: true, owner: true, credential: 'none' }, 'no key set, no Origin: served with owner rights');
  t.match(open.check(info({ origin: 'http://127.0.0.1:8080' }), 'auth'), { ok: true, owner: false }, 'the own page: served, no owner rights');
  t.match(access({ allowedOrigins: ['https://app.example.com'] }).check(info({ origin: 'https://app.example.com' }), 'auth'), {
    ok: true,
    headers: { 'Access-Control-Allow-Origin': 'https://app.example.com' },
  });

  let now = 1_000_000;
  const keyed = access({ apiKey: 'sekrit', tokenTtlS: 60 }, () => now);
  t.match(keyed.check(info(), 'auth'), { ok: false, status: 401, code: 'unauthorized', challenge: false });
  t.match(keyed.check(info(), 'page'), { ok: false, status: 401, challenge: true }, 'the page asks for the key');
  t.match(keyed.check(info(), 'open'), { ok: true }, 'assets need nothing');
  t.match(keyed.check(info({ authorization: 'Bearer sekrit' }), 'auth'), { ok: true, credential: 'key', owner: true });
  t.match(keyed.check(info({ authorization: 'Bearer wrong' }), 'open'), { ok: false, status: 401 }, 'a wrong key is refused, not ignored');
  const { token } = keyed.mintToken();
  t.match(keyed.check(info({ authorization: `Bearer ${token}` }), 'auth'), { ok: true, credential: 'token', owner: false });
  t.match(keyed.check(info({ protocol: `eva-token.${token}` }), 'auth'), { ok: true, credential: 'token', protocol: `eva-token.${token}` });
  t.match(keyed.check(info({ authorization: `Bearer ${token}` }), 'key'), { ok: false, status: 401 }, 'a token cannot mint tokens');
  t.match(keyed.check(info({ protocol: 'realtime, openai-insecure-api-key.sekrit' }), 'auth'), { ok: true, credential: 'key', owner: true, protocol: 'realtime' }, 'the OpenAI subprotocol key');
  t.match(keyed.check(info({ protocol: 'realtime, openai-insecure-api-key.wrong' }), 'auth'), { ok: false, status: 401 }, 'a wrong subprotocol key is refused');
  const cookie = keyed.cookieHeader(false);
  t.match(cookie, /HttpOnly; SameSite=Strict/);
  t.match(keyed.check(info({ cookie: cookie.split(';')[0]! }), 'auth'), { ok: true, credential: 'cookie', owner: false });
  now += 61_000;
  t.match(keyed.check(info({ protocol: `eva-token.${token}` }), 'auth'), { ok: false, status: 401 }, 'an expired token is refused');
});

const LIMITS: LimitsConfig = loadConfig({}).limits;

t.test('limits: sockets and calls per client and globally, offers per minute, each hit counted', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  t.teardown(() => metrics.close());
  let now = 0;
  const l = new Limits({ ...LIMITS, maxSockets: 3, clientSockets: 2, clientCalls: 1, offersPerMin: 2, exempt: ['127.0.0.1'] }, metrics, () => now);
  l.socketOpened('1.1.1.1');
  l.socketOpened('1.1.1.1');
  t.match(l.canOpenSocket('1.1.1.1'), { code: 'rate_limited', retryAfterMs: Number }, 'the third socket of a client is refused');
  t.equal(l.canOpenSocket('127.0.0.1'), null, 'an exempt address is not counted per client');
  l.socketOpened('2.2.2.2');
  t.match(l.canOpenSocket('127.0.0.1'), { code: 'rate_limited' }, 'the global cap holds for everyone');
  l.socketClosed('2.2.2.2');
  t.equal(l.offer('1.1.1.1'), null);
  l.callStarted('1.1.1.1');
  t.match(l.offer('1.1.1.1'), { code: 'rate_limited', message: /calls/ }, 'a second call while one is held');
  l.callEnded('1.1.1.1');
  t.match(l.offer('1.1.1.1'), { code: 'rate_limited', message: /offers a minute/ }, 'the third offer in a minute');
  now += 31_000;
  t.equal(l.offer('1.1.1.1'), null, 'one more after half a minute');
  t.match(l.ttsText(LIMITS.ttsMaxChars + 1), { code: 'too_large', status: 413 });
  const text = await metrics.text();
  for (const [limit, n] of [['client_sockets', 1], ['max_sockets', 1], ['client_calls', 1], ['client_offers', 1], ['tts_chars', 1]] as const) {
    t.match(text, new RegExp(`eva_limit_hits_total\\{limit="${limit}"\\} ${n}\\n`), `${limit} counted`);
  }
});

t.test('upstream text never reaches a client; keys never reach the log', async (t) => {
  t.equal(publicMessage('provider_error', 'groq: 401 {"error":{"message":"Invalid API Key gsk_live_abc"}}'), 'groq: the provider failed; try again');
  t.equal(publicMessage('provider_unavailable', 'groq,ollama: every llm provider failed: groq: ECONNREFUSED'), 'groq,ollama: unavailable (every provider tried failed); try again later');
  t.equal(publicMessage('bad_request', '"message" must be a string'), '"message" must be a string', "EVA's own messages pass");
  const line = redactSecrets('upstream said gsk_abcdefghijklmnop and Authorization: Bearer sk-proj-abcdefghijkl, api_key=hunter22 eva-token.v1.abc');
  t.notMatch(line, /abcdefghijklmnop|sk-proj|hunter22|v1\.abc/);
  t.match(line, /\[redacted\]/);
});

t.test('a key given as a command-line flag is warned about at start; one from the environment is not', async (t) => {
  t.match(loadConfig({}, ['--eva-api-key', 'k']).warnings, [/EVA_API_KEY was given as a command-line flag/]);
  t.match(loadConfig({}, ['--groq-api-key=k', '--port', '0']).warnings, [/GROQ_API_KEY/]);
  t.same(loadConfig({ EVA_API_KEY: 'k' }).warnings, []);
  t.throws(() => loadConfig({ EVA_ALLOWED_ORIGINS: 'https://app.example.com/path' }), /EVA_ALLOWED_ORIGINS/, 'an origin with a path is a start-up error');
});
