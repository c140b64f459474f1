// EVA_WORKERS=2: the built server as a user starts it, with a supervisor and two worker processes on one port.
// No TTS is needed (no STT: a spoken turn is echoed back as audio; the echo LLM answers text), so the TTS is
// pointed at a closed port rather than warming eSpeak NG in every worker: /health says `degraded` for it.
import { createRequire } from 'node:module';
import http from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import WebSocket from 'ws';
import { ProbeCall } from '../bench/probe-client.js';
import { rtpSlice } from '../server/peer-options.js';
import { fixture16k, sleep } from './helpers/eva.js';
import { spawnEva, type SpawnedEva } from './helpers/server.js';

const speech = fixture16k('hello.wav');
const CLOSED = 'http://127.0.0.1:9';
const ENV = { EVA_WORKERS: '2', EVA_LLM: 'echo', EVA_TTS: 'openai', EVA_TTS_URL: `${CLOSED}/v1`, OLLAMA_HOST: CLOSED, EVA_LOG_LEVEL: 'warn' };
/** Two workers each load the VAD model on a shared 2-core machine. */
const START_MS = 90_000;

interface Health {
  status: string;
  calls: number;
  worker?: number;
  workers?: { worker: number; pid: number | null; state: string; calls: number | null; loop_lag_ms: number | null; restarts: number }[];
}

/** One request on a fresh TCP connection (no keep-alive), so the kernel picks a worker each time. */
function get(port: number, path: string, opts: { agent?: http.Agent; headers?: Record<string, string>; method?: string; body?: string } = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: opts.agent ?? false, headers: { ...(opts.body && { 'Content-Type': 'application/json' }), ...opts.headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

const health = async (port: number, agent?: http.Agent): Promise<Health> => JSON.parse((await get(port, '/health', { agent })).text) as Health;

/** Poll /health until `pred` holds (the supervisor restarts, calls open and close); returns the last answer. */
async function healthUntil(port: number, pred: (h: Health) => boolean, timeoutMs: number): Promise<Health> {
  const end = performance.now() + timeoutMs;
  let h = await health(port);
  while (!pred(h) && performance.now() < end) {
    await sleep(200);
    h = await health(port);
  }
  return h;
}

/** The worker hosting exactly one more call than before (the one just connected). */
async function workerOfNewCall(port: number, before: Health): Promise<number> {
  const count = (h: Health, w: number) => h.workers!.find((x) => x.worker === w)?.calls ?? 0;
  const h = await healthUntil(port, (h) => h.calls === before.calls + 1, 5000);
  const w = h.workers!.find((x) => count(h, x.worker) > count(before, x.worker));
  if (!w) throw new Error(`no worker took the new call: ${JSON.stringify(h.workers)}`);
  return w.worker;
}

/**
 * The call hears its own speech echoed (≥ 200 ms audible) after saying it. EVA sends nothing else audible here
 * (no TTS), so audio from the start of the clip on is the echo. play() is not awaited: it resolves when the clip's
 * last frame has left, and a stall of this loaded test process over 60 ms makes the pacer skip due frames, which
 * can be that one.
 */
async function hearsEcho(call: ProbeCall): Promise<number> {
  const t0 = performance.now();
  const playing = call.play(speech).catch((err: Error) => err);
  const end = t0 + (speech.length / 16) + 15_000;
  while (performance.now() < end && call.audibleMs(t0) < 200) await sleep(50);
  await Promise.race([playing, sleep(1000)]);
  return call.audibleMs(t0);
}

/** The UDP ports of EVA's host candidates in its answer. */
function answerPorts(call: ProbeCall): number[] {
  const answer = call.events.find((e) => e.msg.type === 'answer')?.msg as { sdp: string } | undefined;
  return [...(answer?.sdp ?? '').matchAll(/^a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host/gim)].map((m) => Number(m[1]));
}

const wsOf = (call: ProbeCall): WebSocket => (call as unknown as { ws: WebSocket }).ws;

/**
 * Connects calls until one lives in each worker (the kernel picks by a hash of the connection; 12 tries), hanging
 * up the extra ones. Returns the calls by worker and how many were connected in all.
 */
async function callInEachWorker(eva: SpawnedEva, into: Map<number, ProbeCall>): Promise<number> {
  let connected = 0;
  for (let i = 0; i < 12 && into.size < 2; i++) {
    const before = await health(eva.port);
    const call = await ProbeCall.connect(eva.wsUrl, { timeoutMs: 20_000 });
    connected++;
    const w = await workerOfNewCall(eva.port, before);
    if (into.has(w)) {
      call.hangup();
      await call.close();
      await healthUntil(eva.port, (h) => h.calls === before.calls, 5000);
    } else into.set(w, call);
  }
  return connected;
}

t.test('EVA_RTP_PORTS is cut into disjoint slices, one per worker', async (t) => {
  t.same([0, 1].map((i) => rtpSlice([40000, 40009], i, 2)), [[40000, 40004], [40005, 40009]]);
  t.same([0, 1, 2].map((i) => rtpSlice([40000, 40009], i, 3)), [[40000, 40002], [40003, 40005], [40006, 40009]], 'as even as the range allows');
  t.same(rtpSlice([40000, 40009], 0, 1), [40000, 40009], 'one worker: the whole range');
  t.same([0, 1].map((i) => rtpSlice([40000, 40001], i, 2)), [[40000, 40000], [40001, 40001]], 'a port each');
  t.throws(() => rtpSlice([40000, 40000], 0, 2), RangeError, 'fewer ports than workers');
  const err = await spawnEva(t, { env: { ...ENV, EVA_WORKERS: '3', EVA_RTP_PORTS: '40000-40001' } }).then(
    () => 'started',
    (e: Error) => e.message,
  );
  t.match(err, /it exited \(code 2/, 'EVA refuses such a range at start');
  t.match(err, /EVA_RTP_PORTS 40000-40001 has fewer ports than EVA_WORKERS=3/, 'naming both settings');
});

/** A free-looking 40-port range for this run, so parallel test files do not share one. */
const RTP_LO = 41000 + Math.floor(Math.random() * 500) * 40;
const RTP: [number, number] = [RTP_LO, RTP_LO + 39];

t.test('two workers on one port: connections spread, calls work, a killed or failed worker is restarted, /metrics and sessions are shared', async (t) => {
  const eva = await spawnEva(t, { env: { ...ENV, EVA_DRAIN_S: '1', EVA_TEST_FAULTS: '1', EVA_RTP_PORTS: RTP.join('-') }, timeoutMs: START_MS });
  t.match(eva.stdout(), /EVA listening on http:\/\/127\.0\.0\.1:\d+ {2}\(2 workers;/, 'the supervisor announces the port once every worker listens');

  await t.test('both workers answer on the one port (SO_REUSEPORT)', async (t) => {
    const seen = new Map<number, number>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const h = await health(eva.port);
      seen.set(h.worker!, (seen.get(h.worker!) ?? 0) + 1);
    }
    t.same([...seen.keys()].sort(), [0, 1], `fresh connections reached both workers (${JSON.stringify([...seen])})`);
    const h = await health(eva.port);
    t.equal(h.workers?.length, 2, '/health lists every worker');
    for (const w of h.workers!) {
      t.ok(Number.isInteger(w.pid) && w.pid! > 0, `worker ${w.worker} has a pid`);
      t.equal(w.state, 'up');
      t.equal(w.calls, 0);
      t.type(w.loop_lag_ms, 'number', 'and a loop lag');
    }
    t.not(h.workers![0]!.pid, h.workers![1]!.pid, 'two processes');
  });

  const calls = new Map<number, ProbeCall>();
  t.teardown(async () => {
    for (const c of calls.values()) await c.close();
  });

  await t.test('real calls work in both workers, and /metrics aggregates them with a worker label', async (t) => {
    const connected = await callInEachWorker(eva, calls);
    t.equal(calls.size, 2, `a call in each worker (${connected} connected)`);
    for (const [w, call] of calls) t.ok((await hearsEcho(call)) >= 200, `the call in worker ${w} hears its echo`);
    for (const [w, call] of calls) {
      const [lo, hi] = rtpSlice(RTP, w, 2);
      const ports = answerPorts(call);
      t.ok(ports.length > 0 && ports.every((p) => p >= lo && p <= hi), `worker ${w}'s call binds only its slice ${lo}-${hi} (${ports.join(', ')})`);
    }

    const text = (await get(eva.port, '/metrics')).text;
    t.match(text, /^eva_calls_open\{worker="0"\} 1$/m, 'open calls per worker: worker 0');
    t.match(text, /^eva_calls_open\{worker="1"\} 1$/m, 'open calls per worker: worker 1');
    t.match(text, new RegExp(`^eva_calls_total ${connected}$`, 'm'), `eva_calls_total is the sum over the workers (${connected})`);
    for (const w of ['0', '1']) t.match(text, new RegExp(`^eva_event_loop_lag_seconds\\{quantile="0.99",worker="${w}"\\} `, 'm'), `loop lag of worker ${w}`);
    t.match(text, /^eva_workers_up 2$/m, 'the supervisor counts its workers');
    t.equal((text.match(/^# TYPE eva_calls_total /gm) ?? []).length, 1, 'one family per metric, not one per worker');
  });

  await t.test('a text session started through one worker goes on through the other (shared SQLite and secret)', async (t) => {
    // A keep-alive connection stays with the worker that took it; find one per worker.
    const agents = new Map<number, http.Agent>();
    for (let i = 0; i < 20 && agents.size < 2; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const w = (await health(eva.port, agent)).worker!;
      if (agents.has(w)) agent.destroy();
      else agents.set(w, agent);
    }
    t.teardown(() => agents.forEach((a) => a.destroy()));
    t.equal(agents.size, 2, 'a connection to each worker');
    // A page's own Origin has no owner rights: a session id is kept only when this server's secret signed it.
    const headers = { Origin: `http://127.0.0.1:${eva.port}` };
    const chat = async (w: number, body: object) => {
      const r = await get(eva.port, '/chat', { agent: agents.get(w), method: 'POST', headers, body: JSON.stringify(body) });
      t.equal(r.status, 200, `worker ${w} answers /chat (${r.text.slice(0, 120)})`);
      return JSON.parse(r.text) as { response: string; session_id: string };
    };
    const first = await chat(0, { message: 'first through worker zero' });
    t.equal((await health(eva.port, agents.get(0))).worker, 0, 'that was worker 0');
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (p: string, o: object) => { prepare(s: string): { all(...a: unknown[]): { turn: number; role: string; content: string }[] }; close(): void };
    const db = new Database(join(eva.dataDir, 'eva.db'), { readonly: true, fileMustExist: true });
    t.teardown(() => db.close());
    const rows = () => db.prepare('SELECT turn, role, content FROM messages WHERE session_id = ? ORDER BY id').all(first.session_id);
    for (let i = 0; i < 50 && rows().length < 2; i++) await sleep(100);
    const second = await chat(1, { message: 'then through worker one', session_id: first.session_id });
    t.equal((await health(eva.port, agents.get(1))).worker, 1, 'that was worker 1');
    t.equal(second.session_id, first.session_id, 'worker 1 accepts the session id worker 0 signed');
    t.equal(second.response, 'You said: then through worker one');
    for (let i = 0; i < 50 && rows().length < 4; i++) await sleep(100);
    t.same(
      rows().map((r) => [r.turn, r.role, r.content]),
      [
        [0, 'user', 'first through worker zero'],
        [0, 'assistant', 'You said: first through worker zero'],
        [1, 'user', 'then through worker one'],
        [1, 'assistant', 'You said: then through worker one'],
      ],
      'one session, turn 1 written by worker 1 after worker 0 wrote turn 0',
    );
  });

  await t.test('killing a worker: its call\'s socket closes, the other call goes on, the worker is restarted, new calls work', async (t) => {
    const h = await health(eva.port);
    const victim = h.workers!.find((w) => w.worker === 1)!;
    const doomed = calls.get(1)!;
    const survivor = calls.get(0)!;
    const closed = new Promise<number>((resolve) => wsOf(doomed).once('close', (code) => resolve(code)));
    process.kill(victim.pid!, 'SIGKILL');
    t.ok((await Promise.race([closed, sleep(10_000).then(() => -1)])) !== -1, 'the killed worker\'s call sees its socket close');
    t.ok((await hearsEcho(survivor)) >= 200, 'the call in the other worker goes on with audio');
    t.notOk(survivor.events.some((e) => e.msg.type === 'bye'), 'and was not ended');

    const after = await healthUntil(eva.port, (h) => h.workers!.every((w) => w.state === 'up') && h.workers![1]!.pid !== victim.pid, 60_000);
    const w1 = after.workers![1]!;
    t.equal(w1.state, 'up', 'the supervisor started worker 1 again');
    t.not(w1.pid, victim.pid, 'as a new process');
    t.equal(w1.restarts, 1, 'and counts the restart');
    t.match((await get(eva.port, '/metrics')).text, /^eva_worker_process_restarts_total\{worker="1"\} 1$/m, '/metrics counts it too');

    survivor.hangup();
    await survivor.close();
    await doomed.close();
    calls.clear();
    // New calls reach both workers again.
    const fresh: ProbeCall[] = [];
    t.teardown(async () => {
      for (const c of fresh) await c.close();
    });
    for (let i = 0; i < 2; i++) {
      const call = await ProbeCall.connect(eva.wsUrl, { timeoutMs: 20_000 });
      fresh.push(call);
      t.ok((await hearsEcho(call)) >= 200, `new call ${i + 1} hears its echo`);
    }
  });

  await t.test('a worker that throws an exception nobody catches ends its call with bye error and exits; the other goes on', async (t) => {
    const connected = await callInEachWorker(eva, calls);
    t.equal(calls.size, 2, `a call in each worker again (${connected} connected)`);
    const h = await health(eva.port);
    const victim = h.workers!.find((w) => w.worker === 0)!;
    const doomed = calls.get(0)!;
    const survivor = calls.get(1)!;
    // Test-only (EVA_TEST_FAULTS=1): the worker throws on its event loop, as a bug in a callback would.
    process.kill(victim.pid!, 'SIGUSR2');
    t.same(await doomed.waitFor((m) => m.type === 'bye', 20_000), { type: 'bye', reason: 'error' }, 'its call is told: bye error');
    t.ok((await hearsEcho(survivor)) >= 200, 'the call in the other worker goes on with audio');
    t.notOk(survivor.events.some((e) => e.msg.type === 'bye'), 'and was not ended');
    const after = await healthUntil(eva.port, (h) => h.workers!.every((w) => w.state === 'up') && h.workers![0]!.pid !== victim.pid, 60_000);
    t.equal(after.workers![0]!.state, 'up', 'the supervisor started worker 0 again');
    t.equal(after.workers![0]!.restarts, 1, 'and counts the restart');
    t.match(eva.stderr(), /uncaught exception: ending every call and exiting.*test fault/, 'the worker logged the exception before it exited');
    t.match(eva.stderr(), /worker 0 \(pid \d+\) exited \(exit code 1\) and its calls with it/, 'the supervisor logged the exit');
    survivor.hangup();
    await survivor.close();
    await doomed.close();
    calls.clear();
  });
});

t.test('SIGTERM drains: no new sockets or offers, /health says draining, calls end with bye shutdown, exit 0', async (t) => {
  const eva: SpawnedEva = await spawnEva(t, { env: { ...ENV, EVA_DRAIN_S: '4' }, timeoutMs: START_MS });
  // A call in each worker: a worker with no call left exits at once (closing its sockets), so both drain.
  const calls = new Map<number, ProbeCall>();
  t.teardown(async () => {
    for (const c of calls.values()) await c.close();
  });
  await callInEachWorker(eva, calls);
  t.equal(calls.size, 2, 'a call in each worker');
  // A socket opened before the drain, with no call yet, on whichever worker.
  const idle = new WebSocket(eva.wsUrl);
  t.teardown(() => idle.terminate());
  await new Promise((resolve, reject) => idle.once('open', resolve).once('error', reject));
  const idleReply = new Promise<{ type: string; code?: string }>((resolve) => {
    idle.once('message', (d) => resolve(JSON.parse(String(d)) as { type: string; code?: string }));
    idle.once('close', (code) => resolve({ type: `closed ${code}` }));
  });

  const t0 = performance.now();
  eva.child.kill('SIGTERM');
  // Each worker reports its own state to the supervisor: the one answering may say draining a moment before the
  // list shows the other one so (seen once in a full run), so wait for both, within the same bound.
  const h = await healthUntil(eva.port, (h) => h.status === 'draining' && (h.workers ?? []).every((w) => w.state === 'draining'), 3000);
  t.equal(h.status, 'draining', '/health says draining');
  t.ok(h.workers!.every((w) => w.state === 'draining'), 'for every worker');
  t.equal((await get(eva.port, '/health')).status, 503, 'with 503, so a load balancer sends no one new');
  const upgrade = await new Promise<number>((resolve) => {
    const ws = new WebSocket(eva.wsUrl);
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => (ws.close(), resolve(101)));
    ws.once('error', () => resolve(-1));
  });
  t.equal(upgrade, 503, 'a new WebSocket is refused');
  idle.send(JSON.stringify({ type: 'offer', sdp: 'v=0\r\n', config: {} }));
  t.match(await idleReply, { type: 'error', code: 'shutting_down' }, 'an offer on an open socket is refused with shutting_down');
  for (const [w, call] of calls) t.notOk(call.events.some((e) => e.msg.type === 'bye'), `the call in worker ${w} goes on`);

  const byes = await Promise.all([...calls.values()].map(async (call) => ({ bye: await call.waitFor((m) => m.type === 'bye', 20_000), s: (performance.now() - t0) / 1000 })));
  for (const { bye, s } of byes) {
    t.same(bye, { type: 'bye', reason: 'shutdown' }, 'then each call ends with bye shutdown');
    t.ok(s >= 3, `not before EVA_DRAIN_S (${s.toFixed(1)} s after SIGTERM)`);
  }
  const byeS = Math.max(...byes.map((b) => b.s));
  const exit = await eva.exited;
  t.same(exit, { code: 0, signal: null }, 'the supervisor exits 0 once every worker has');
  t.comment(`bye ${byeS.toFixed(1)} s after SIGTERM, with EVA_DRAIN_S=4`);
});

t.test('EVA_WORKERS=1 is one process with no supervisor, and drains the same way', async (t) => {
  const eva = await spawnEva(t, { env: { ...ENV, EVA_WORKERS: '1', EVA_DRAIN_S: '2' }, timeoutMs: START_MS });
  t.notMatch(eva.stdout(), /workers;/, 'no supervisor');
  const h0 = await health(eva.port);
  t.same(h0.workers?.map((w) => [w.worker, w.pid]), [[0, eva.child.pid]], '/health lists the one process');
  const call = await ProbeCall.connect(eva.wsUrl, { timeoutMs: 20_000 });
  t.teardown(() => call.close());
  t.ok((await hearsEcho(call)) >= 200, 'a call works');
  t.notMatch((await get(eva.port, '/metrics')).text, /worker="\d+"/, '/metrics has no worker label');
  const t0 = performance.now();
  eva.child.kill('SIGTERM');
  t.equal((await healthUntil(eva.port, (h) => h.status === 'draining', 3000)).status, 'draining', '/health says draining');
  t.same(await call.waitFor((m) => m.type === 'bye', 20_000), { type: 'bye', reason: 'shutdown' }, 'the call ends with bye shutdown');
  const s = (performance.now() - t0) / 1000;
  t.ok(s >= 1.5, `after EVA_DRAIN_S (${s.toFixed(1)} s)`);
  t.same(await eva.exited, { code: 0, signal: null }, 'exit 0');
});

t.test('a worker that cannot start is tried a bounded number of times, then EVA stops with a clear message', async (t) => {
  // The port is held without SO_REUSEPORT, so no worker can listen on it.
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const port = (holder.address() as { port: number }).port;
  const err = await spawnEva(t, { env: { ...ENV, PORT: String(port) }, timeoutMs: 150_000 }).then(
    () => 'started',
    (e: Error) => e.message,
  );
  t.match(err, /it exited \(code 1/, 'EVA exits 1');
  t.match(err, /failed to start 5 times in a row \(last: exit code 1\); giving up/, 'saying which worker, how often and why');
  t.match(err, /cannot listen on 127\.0\.0\.1:\d+/, 'the worker\'s own error is in the output');
});

t.test('a configuration error found in a worker stops EVA at once with exit code 2', async (t) => {
  const err = await spawnEva(t, { env: { ...ENV, EVA_STT: 'groq' }, timeoutMs: 60_000 }).then(
    () => 'started',
    (e: Error) => e.message,
  );
  t.match(err, /it exited \(code 2/, 'exit code 2');
  t.match(err, /EVA_STT=groq needs GROQ_API_KEY/, 'the worker names the setting');
  t.match(err, /configuration error \(above\); EVA stops/, 'the supervisor does not retry it');
});
