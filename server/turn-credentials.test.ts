import t from 'tap';
import { parseIceServers } from './config.js';
import { parseClientMessage } from './signaling.js';
import { iceServersFor, mintTurnCredential, TURN_CREDENTIAL_TTL_S, unusableTurnServers } from './turn-credentials.js';

t.test('a minted credential is the coturn REST API pair: <expiry>:<id> and base64(HMAC-SHA1(secret, username))', async (t) => {
  const c = mintTurnCredential('north-wind', 'alice', { nowMs: 1_700_000_000_000, ttlS: 86400 });
  t.equal(c.username, '1700086400:alice');
  t.equal(c.expiresAt, 1_700_086_400);
  // From `echo -n 1700086400:alice | openssl dgst -sha1 -hmac north-wind -binary | base64`, not from node:crypto.
  t.equal(c.credential, '2cdv8ItP/4kX53j3SEoTDhjFpeM=');
  t.equal(mintTurnCredential('north-wind', 'alice', { nowMs: 1_700_000_000_000 }).expiresAt, 1_700_000_000 + TURN_CREDENTIAL_TTL_S, 'a day by default');
  t.throws(() => mintTurnCredential('', 'alice'), /secret is empty/);
  t.throws(() => mintTurnCredential('s', 'a:b'), /may not contain ":"/);
});

t.test('each connection gets TURN credentials of its own; STUN and TURN entries with a password pass unchanged', async (t) => {
  const servers = parseIceServers('stun:10.0.0.1:3478, turn:10.0.0.1:3478?transport=udp, turn:bob:pw@10.0.0.2:3478');
  const a = iceServersFor(servers, 'north-wind', 'ws-a', 1_700_000_000_000);
  const b = iceServersFor(servers, 'north-wind', 'ws-b', 1_700_000_000_000);
  t.same(a[0], { urls: ['stun:10.0.0.1:3478'] });
  t.match(a[1], { urls: ['turn:10.0.0.1:3478?transport=udp'], username: `${1_700_000_000 + TURN_CREDENTIAL_TTL_S}:ws-a` });
  t.equal(a[1]!.credential, mintTurnCredential('north-wind', 'ws-a', { nowMs: 1_700_000_000_000 }).credential);
  t.not(a[1]!.credential, b[1]!.credential, 'another connection, another credential');
  t.same(a[2], { urls: ['turn:10.0.0.2:3478'], username: 'bob', credential: 'pw' }, 'a configured password is kept');
  t.equal(servers[1]!.credential, undefined, 'the configuration itself is not changed');
});

t.test('an entry with a username but no password uses it as the id', async (t) => {
  const [s] = iceServersFor([{ urls: ['turns:turn.example:5349'], username: 'eva:node1' }], 'k', 'ignored', 0);
  t.equal(s!.username, `${TURN_CREDENTIAL_TTL_S}:eva_node1`, 'its ":" replaced, as coturn splits at the first one');
});

t.test('without a secret, TURN entries that have no password are left out (a browser would refuse them)', async (t) => {
  const servers = [{ urls: ['stun:s.example', 'turn:t.example'] }, { urls: ['turn:u.example'] }, { urls: ['turn:v.example'], username: 'u', credential: 'p' }];
  t.same(iceServersFor(servers, undefined, 'x'), [{ urls: ['stun:s.example'] }, { urls: ['turn:v.example'], username: 'u', credential: 'p' }]);
  t.same(unusableTurnServers(servers, undefined), ['turn:t.example', 'turn:u.example']);
  t.same(unusableTurnServers(servers, 'k'), []);
  t.same(iceServersFor([], 'k', 'x'), [], 'no servers, none given');
});

t.test('the page asks with {type:"hello"}', async (t) => {
  t.same(parseClientMessage('{"type":"hello"}'), { type: 'hello' });
  t.same(parseClientMessage('{"type":"hello","extra":1}'), { type: 'hello' }, 'extra fields are ignored');
  t.throws(() => parseClientMessage('{"type":"helo"}'), /expected offer, candidate, text or hangup \(or hello\)/);
});
