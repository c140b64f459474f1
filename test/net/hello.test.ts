// The `hello` message on a real /ws socket (no namespaces needed): what the page builds its peer connection with.
import t from 'tap';
import WebSocket from 'ws';
import type { ServerMessage } from '../../server/signaling.js';
import { mintTurnCredential } from '../../server/turn-credentials.js';
import { startEva } from '../helpers/eva.js';

async function hello(wsUrl: string): Promise<ServerMessage[]> {
  const ws = new WebSocket(wsUrl);
  const got: ServerMessage[] = [];
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no hello within 5 s; got ${JSON.stringify(got)}`)), 5000);
    ws.on('message', (d) => {
      got.push(JSON.parse(String(d)) as ServerMessage);
      if (got.length === 2) (clearTimeout(timer), resolve());
    });
  });
  ws.send(JSON.stringify({ type: 'hello' }));
  ws.send(JSON.stringify({ type: 'hello' }));
  await done;
  ws.close();
  return got;
}

t.test('hello answers with the ICE servers, each TURN entry with a credential minted for the request', async (t) => {
  const eva = await startEva(t, {
    env: { EVA_ICE_SERVERS: 'stun:192.0.2.10:3478,turn:192.0.2.10:3478?transport=udp', EVA_TURN_SECRET: 'hello-test-secret' },
  });
  const [a, b] = await hello(eva.wsUrl);
  if (a?.type !== 'hello' || b?.type !== 'hello') throw new Error(`expected two hellos, got ${JSON.stringify([a, b])}`);
  t.same(a.ice_servers[0], { urls: ['stun:192.0.2.10:3478'] }, 'STUN as configured');
  const turn = a.ice_servers[1]!;
  t.same(turn.urls, ['turn:192.0.2.10:3478?transport=udp']);
  const [expiry, id] = turn.username!.split(':');
  t.ok(Number(expiry) > Date.now() / 1000 + 3600, 'valid for hours, not for ever');
  t.equal(turn.credential, mintTurnCredential('hello-test-secret', id!, { nowMs: (Number(expiry) - 86400) * 1000 }).credential, 'HMAC-SHA1 of the username under the secret');
  t.not(b.ice_servers[1]!.username, turn.username, 'another request, another credential');
});

t.test('without EVA_ICE_SERVERS hello gives an empty list', async (t) => {
  const eva = await startEva(t);
  const [a] = await hello(eva.wsUrl);
  t.same(a, { type: 'hello', ice_servers: [] });
});

t.test('a TURN server with no credential and no EVA_TURN_SECRET is not handed out', async (t) => {
  const eva = await startEva(t, { env: { EVA_ICE_SERVERS: 'turn:192.0.2.10:3478' } });
  const [a] = await hello(eva.wsUrl);
  t.same(a, { type: 'hello', ice_servers: [] }, 'a browser would throw on it');
});
