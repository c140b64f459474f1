// NAT traversal with real parts in network namespaces: EVA in one, the caller (a real werift client, its own
// process) in another, and between them a router namespace that does not forward, so the caller has no route to
// EVA's media address. In the router: coturn (TURN, REST API secret) and HAProxy (the load balancer signaling
// goes through). The caller gets its TURN credential from EVA's `hello`, as the page does.
//
//   caller ns  10.77.2.2 ── 10.77.2.1  router ns (ip_forward=0)  10.77.1.1 ── 10.77.1.2  EVA ns
//                           haproxy :8080 :8081 → EVA            coturn :3478, relays from 10.77.1.1
import t from 'tap';
import { NetLab, requireLab } from '../helpers/netns.js';
import { haproxyConfig, requireBuilt, runCaller, startCoturn, startEvaIn, startHaproxy, tcpProbe } from './services.js';

const EVA = '10.77.1.2';
const ROUTER_EVA_SIDE = '10.77.1.1';
const ROUTER_CALLER_SIDE = '10.77.2.1';
const CALLER = '10.77.2.2';
const SECRET = 'turn-test-shared-secret';
const CLIP = 'test/fixtures/hello.wav';

if (requireLab(t, ['turnserver', 'haproxy'])) {
  requireBuilt();
  const lab = NetLab.create(t);
  const eva = await lab.namespace('eva');
  const caller = await lab.namespace('caller');
  const router = await lab.namespace('router');
  await lab.link(eva, `${EVA}/24`, router, `${ROUTER_EVA_SIDE}/24`);
  await lab.link(caller, `${CALLER}/24`, router, `${ROUTER_CALLER_SIDE}/24`);
  await lab.exec(eva, 'ip', ['route', 'add', 'default', 'via', ROUTER_EVA_SIDE]);
  await lab.exec(caller, 'ip', ['route', 'add', 'default', 'via', ROUTER_CALLER_SIDE]);
  // Written to /proc directly: a bare Debian has no sysctl (procps).
  await lab.exec(router, 'sh', ['-c', 'echo 0 > /proc/sys/net/ipv4/ip_forward']);

  const turn = await startCoturn(t, lab, router, { listen: ROUTER_EVA_SIDE, relayIp: ROUTER_EVA_SIDE, secret: SECRET, minPort: 49160, maxPort: 49200 });
  // Two EVA processes in the same namespace: one with TURN (:8080), one without (:8081), for the failure case.
  await Promise.all([
    startEvaIn(t, lab, eva, 'eva-turn', EVA, { EVA_ICE_SERVERS: turn.url, EVA_TURN_SECRET: SECRET, EVA_TRUST_PROXY: '1' }, 8080),
    startEvaIn(t, lab, eva, 'eva-plain', EVA, { EVA_TRUST_PROXY: '1' }, 8081),
  ]);
  const lb = await startHaproxy(t, lab, router, haproxyConfig(`${ROUTER_CALLER_SIDE}:8080`, [{ name: 'n1', address: EVA, port: 8080 }], `
frontend eva_plain
    bind ${ROUTER_CALLER_SIDE}:8081
    default_backend eva_plain_nodes

backend eva_plain_nodes
    server plain ${EVA}:8081
`));
  const wsTurn = `ws://${ROUTER_CALLER_SIDE}:8080/ws`;
  const wsPlain = `ws://${ROUTER_CALLER_SIDE}:8081/ws`;

  t.test('the router does not forward: the caller has no route to EVA but reaches the router', async (t) => {
    t.equal((await lab.exec(router, 'cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), '0', 'ip_forward=0 in the router');
    await t.rejects(tcpProbe(lab, caller, EVA, 8080), /timeout|EHOSTUNREACH|ENETUNREACH/, "the caller cannot open a connection to EVA's address");
    t.equal(await tcpProbe(lab, caller, ROUTER_EVA_SIDE, 3478), 'open', "it reaches the TURN server's address");
  });

  t.test('a relay-only caller gets a TURN credential from hello and its call goes through the relay both ways', async (t) => {
    const r = await runCaller(lab, caller, ['call', '--ws', wsTurn, '--relay', '--clip', CLIP, '--timeout-ms', '20000']);
    t.ok(r.ok, `the call worked${r.error ? `: ${r.error}` : ''}`);
    if (!r.ok) t.comment(`haproxy:\n${lb.process.output().slice(-3000)}`);
    const ice = r.iceServers?.[0];
    t.equal(ice?.urls[0], turn.url, 'hello gives the TURN server');
    t.match(ice?.username, /^\d{10}:ws-[0-9a-f]{12}$/, 'with a minted username <expiry>:<id>');
    t.ok(Number(ice?.username?.split(':')[0]) > Date.now() / 1000, 'that has not expired');
    t.equal(r.pair?.local.type, 'relay', "the caller's side of the selected pair is its TURN relay");
    t.equal(r.pair?.local.address, ROUTER_EVA_SIDE, 'allocated on the router');
    t.ok((r.echoMs ?? 0) >= 200, `the caller heard its turn played back (${r.echoMs} ms audible)`);
    t.ok(r.events?.includes('ready'), 'EVA said ready');
    t.match(lb.process.output(), /eva eva_nodes\/n1 .* 101 .*"GET \/ws HTTP\/1\.1"/, 'signaling went through HAProxy (a 101 upgrade to the node)');
    // coturn accepted the minted credential (it checks the HMAC itself) and relayed for it.
    // (Its first ALLOCATE gets the usual 401 with a nonce; the authenticated retry must succeed.)
    const log = turn.process.output();
    const session = new RegExp(`session (\\d+): new, realm=<eva\\.test>, username=<${ice?.username}>`).exec(log)?.[1];
    t.ok(session, 'coturn opened an allocation for that username');
    t.ok(log.includes(`user <${ice?.username}>: incoming packet ALLOCATE processed, success`), 'with the minted credential');
    t.match(log, new RegExp(`session ${session}: peer ${EVA.replace(/\./g, '\\.')}:\\d+ lifetime updated`), "and relayed to EVA's address");
  });

  t.test("a caller without TURN still connects: EVA's own peer offers a relay candidate from the same servers", async (t) => {
    const r = await runCaller(lab, caller, ['call', '--ws', wsTurn, '--ice', 'none', '--clip', CLIP, '--timeout-ms', '20000']);
    t.ok(r.ok, `the call worked${r.error ? `: ${r.error}` : ''}`);
    if (!r.ok) t.comment(`haproxy:\n${lb.process.output().slice(-3000)}`);
    t.same(r.iceServers, [], 'the caller used no ICE servers');
    t.equal(r.pair?.local.type, 'host', 'the caller sends from its own address');
    t.equal(r.pair?.remote.type, 'relay', "to EVA's relay candidate");
    t.ok((r.echoMs ?? 0) >= 200, `and heard its turn played back (${r.echoMs} ms audible)`);
  });

  t.test('without TURN on either side the same caller cannot connect, and says so', async (t) => {
    const r = await runCaller(lab, caller, ['call', '--ws', wsPlain, '--clip', CLIP, '--timeout-ms', '8000']);
    t.equal(r.ok, false, 'the call did not connect');
    t.same(r.iceServers ?? [], [], 'EVA without EVA_ICE_SERVERS gives none');
    t.match(r.error, /WebRTC did not connect in time/, 'a clear error');
  });
}
