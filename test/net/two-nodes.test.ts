// Two EVA nodes behind one load balancer, sharing one PostgreSQL, each in its own network namespace with its own
// address; the caller in a third. A session begun on node 1 over POST /chat goes on in a call on node 2 (the model
// is sent the earlier turn); then node 1 stops and new calls through the load balancer land on node 2 and work.
//
//   caller 10.77.2.2 ── 10.77.2.1  router (forwards)  10.77.1.1 ── 10.77.1.2 node 1
//                       haproxy :8080 → both nodes      10.77.3.1 ── 10.77.3.2 node 2
//                       PostgreSQL 10.77.1.1, the LLM stand-in 10.77.1.1:18900
import t from 'tap';
import { NetLab, requireLab } from '../helpers/netns.js';
import { startPostgres } from '../helpers/postgres.js';
import { haproxyConfig, ROOT, requireBuilt, runCaller, startEvaIn, startHaproxy } from './services.js';

const N1 = '10.77.1.2';
const N2 = '10.77.3.2';
const R1 = '10.77.1.1';
const R2 = '10.77.3.1';
const RC = '10.77.2.1';
const CALLER = '10.77.2.2';
const LLM_PORT = 18900;

if (requireLab(t, ['haproxy', 'initdb'])) {
  requireBuilt();
  const lab = NetLab.create(t);
  const [router, node1, node2, caller] = [await lab.namespace('router'), await lab.namespace('node1'), await lab.namespace('node2'), await lab.namespace('caller')];
  await lab.link(node1, `${N1}/24`, router, `${R1}/24`);
  await lab.link(node2, `${N2}/24`, router, `${R2}/24`);
  await lab.link(caller, `${CALLER}/24`, router, `${RC}/24`);
  for (const [ns, via] of [[node1, R1], [node2, R2], [caller, RC]] as const) await lab.exec(ns, 'ip', ['route', 'add', 'default', 'via', via]);
  // A plain router here: media goes straight from the caller to a node.
  await lab.exec(router, 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);

  const pg = await startPostgres({ listen: R1, netns: router });
  t.teardown(() => pg.stop());
  const llm = lab.spawn(router, 'llm-standin', process.execPath, [`${ROOT}dist/bench/net-standin.js`, '--host', R1, '--port', String(LLM_PORT)], { cwd: ROOT });
  const groqUrl = JSON.parse((await llm.waitFor(/^\{"groq":.*\}$/m, 20_000))[0]) as { groq: string };
  const env = { EVA_DATABASE_URL: pg.url, EVA_LLM: 'groq', EVA_STT: 'groq', GROQ_API_KEY: 'gsk_standin', GROQ_BASE_URL: groqUrl.groq, EVA_TRUST_PROXY: '1' };
  const [n1] = await Promise.all([startEvaIn(t, lab, node1, 'node1', N1, env), startEvaIn(t, lab, node2, 'node2', N2, env)]);
  const lb = await startHaproxy(t, lab, router, haproxyConfig(`${RC}:8080`, [{ name: 'n1', address: N1, port: 8080 }, { name: 'n2', address: N2, port: 8080 }]));
  const ws = `ws://${RC}:8080/ws`;

  let session = '';
  t.test('a session begun with POST /chat on node 1 goes on in a call on node 2', async (t) => {
    const chat = await runCaller(lab, caller, ['chat', '--url', `http://${N1}:8080`, '--message', 'My name is Ada.']);
    t.equal(chat.status, 200, `POST /chat on node 1 answered${chat.error ? `: ${chat.error}` : ''}`);
    session = String(chat.body?.session_id ?? '');
    t.ok(session, 'with a session id');
    t.equal(chat.body?.response, 'Turns: My name is Ada.');

    const r = await runCaller(lab, caller, ['call', '--ws', `${ws}?node=n2`, '--session', session, '--text', 'What is my name?', '--timeout-ms', '20000']);
    t.ok(r.ok, `the call worked${r.error ? `: ${r.error}` : ''}`);
    t.equal(r.session, session, "the call's session is the one begun on node 1");
    t.equal(r.pair?.remote.address, N2, 'its media went to node 2');
    t.equal(r.reply, 'Turns: My name is Ada | What is my name.', 'node 2 sent the model the turn node 1 stored');
    t.match(lb.process.output(), /eva_nodes\/n2 .* 101 .*"GET \/ws\?node=n2 HTTP\/1\.1"/, 'through the load balancer, pinned to node 2');
  });

  t.test('with node 1 stopped, new calls through the load balancer go to node 2 and work', async (t) => {
    await n1.process.stop();
    t.notOk(n1.process.running, 'node 1 is down');
    for (const turn of ['First after the stop.', 'Second after the stop.']) {
      const r = await runCaller(lab, caller, ['call', '--ws', ws, '--session', session, '--text', turn, '--timeout-ms', '20000']);
      t.ok(r.ok, `a call through the load balancer worked${r.error ? `: ${r.error}` : ''}`);
      t.equal(r.pair?.remote.address, N2, 'on node 2');
      t.match(r.reply, /^Turns: My name is Ada \| What is my name \| /, 'with the whole session history');
      t.ok(r.reply?.endsWith(`${turn.replace(/\.$/, '')}.`), 'and this turn answered');
    }
  });
}
