// Floods: 2,000 idle sockets and 200 offers that never connect, from other loopback addresses (127.0.0.2 …; Linux
// routes all of 127/8 to lo), while a real call from 127.0.0.1 runs. The per-client and global limits (README
// "Configuration": EVA_CLIENT_SOCKETS, EVA_MAX_SOCKETS, EVA_CLIENT_OFFERS_PER_MIN, EVA_CLIENT_CALLS, EVA_MAX_CALLS)
// may refuse part of it: that is expected, and each refusal must be clean (HTTP 429/503, or a close), never a
// crash. The real call must keep its audio (RTP arriving without gaps beyond what the machine's load explains) and
// /health must answer. Figures are reported; the bounds are generous for a loaded 2-core machine.
import { readFileSync } from 'node:fs';
import t from 'tap';
import WebSocket from 'ws';
import { ProbeCall } from '../../bench/probe-client.js';
import { Peer } from '../../media/peer.js';
import { fixture16k, sleep, startEva, until } from '../helpers/eva.js';
import { checkStillServes } from '../helpers/probe.js';

const IDLE_SOCKETS = 2000;
/** 100 addresses × 20 sockets: under the default 32 sockets per address, so the flood itself gets in. */
const IDLE_ADDRESSES = 100;
const OFFERS = 200;
/** 40 addresses × 5 offers: under the default 30 offers a minute and 8 calls per address. */
const OFFER_ADDRESSES = 40;
const OPEN_CONCURRENCY = 100;
/** Generous bounds for a loaded 2-core machine (idle: /health ~5 ms, RTP every 20 ms ± a few). */
const HEALTH_BOUND_MS = 2000;
const GAP_BOUND_MS = 1000;

const speech = fixture16k('hello.wav');

/** The soft limit on open files of this process (Node raises it to the hard limit at start-up). */
function fdLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

type Outcome = 'open' | `status ${number}` | `error ${string}` | 'closed';

/** Open one socket from `localAddress`; resolves with how it went (never rejects). */
function openFrom(url: string, localAddress: string): Promise<{ ws: WebSocket; outcome: Outcome }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress, handshakeTimeout: 30_000 });
    let done = false;
    const finish = (outcome: Outcome): void => {
      if (done) return;
      done = true;
      resolve({ ws, outcome });
    };
    ws.once('open', () => finish('open'));
    ws.once('unexpected-response', (_req, res) => {
      finish(`status ${res.statusCode ?? 0}`);
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err: NodeJS.ErrnoException) => finish(`error ${err.code ?? err.message}`));
    ws.once('close', () => finish('closed'));
  });
}

async function inBatches<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

function tally(xs: string[]): Record<string, number> {
  const m: Record<string, number> = {};
  for (const x of xs) m[x] = (m[x] ?? 0) + 1;
  return m;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

/** RTP arrival gaps (ms) of the frames heard in [from, to). */
function gaps(call: ProbeCall, from: number, to: number): { frames: number; maxGap: number; over100: number; expected: number } {
  const at = call.heard.filter((f) => f.at >= from && f.at < to).map((f) => f.at);
  let maxGap = 0;
  let over100 = 0;
  for (let i = 1; i < at.length; i++) {
    const g = at[i]! - at[i - 1]!;
    maxGap = Math.max(maxGap, g);
    if (g > 100) over100++;
  }
  if (at.length) maxGap = Math.max(maxGap, at[0]! - from, to - at.at(-1)!);
  return { frames: at.length, maxGap, over100, expected: Math.floor((to - from) / 20) };
}

const limit = fdLimit();
// Both ends of every socket live in this process, plus werift's UDP sockets per pending call, and slack.
const need = 2 * (IDLE_SOCKETS + OFFERS) + 2 * OFFERS + 500;
const skip = limit < need ? `needs ~${need} open files in one process and the limit is ${limit}: raise the hard limit (ulimit -Hn ${need})` : false;

t.test('2,000 idle sockets and 200 offers that never connect, from other addresses, leave a running call and /health alone', { skip }, async (t) => {
  // EVA's 20 ms silence frames are this test's heartbeat of its event loop: DTX (one every 400 ms) would hide stalls.
  const eva = await startEva(t, { env: { EVA_LOG_LEVEL: 'error', EVA_OPUS_DTX: '0' } });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  await call.waitFor((m) => m.type === 'ready');

  // /health from 127.0.0.1 every 100 ms, for the whole test.
  const health: { at: number; ms: number; status: number }[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const h0 = performance.now();
      const status = await fetch(`${eva.httpUrl}/health`, { signal: AbortSignal.timeout(30_000) }).then(
        async (r) => (await r.arrayBuffer(), r.status),
        () => 0,
      );
      health.push({ at: h0, ms: performance.now() - h0, status });
      await sleep(100);
    }
  })();

  // Baseline: the call alone for 3 s, with one utterance echoed.
  const b0 = performance.now();
  await call.play(speech);
  await sleep(3000 - (performance.now() - b0));
  const b1 = performance.now();

  // An offer that can never connect: a real werift offer whose peer is closed at once (its port is dead).
  const dead = new Peer({ onAudio: () => undefined }, { onlyHosts: ['127.0.0.1'] });
  const deadOffer = await dead.offer();
  await dead.close();

  const f0 = performance.now();
  const sockets: WebSocket[] = [];
  t.teardown(() => sockets.forEach((ws) => ws.terminate()));
  const idleFlood = inBatches(IDLE_SOCKETS, OPEN_CONCURRENCY, async (i) => {
    const r = await openFrom(eva.wsUrl, `127.0.0.${2 + (i % IDLE_ADDRESSES)}`);
    sockets.push(r.ws);
    return r.outcome;
  });
  const offerFlood = inBatches(OFFERS, 20, async (i) => {
    const r = await openFrom(eva.wsUrl, `127.0.1.${1 + (i % OFFER_ADDRESSES)}`);
    sockets.push(r.ws);
    if (r.outcome !== 'open') return `socket ${r.outcome}`;
    const reply = new Promise<string>((resolve) => {
      r.ws.on('message', (d) => {
        const m = JSON.parse(String(d)) as { type: string; code?: string };
        if (m.type === 'answer') resolve('answered');
        else if (m.type === 'error') resolve(`error ${m.code}`);
      });
      r.ws.once('close', () => resolve('closed'));
      setTimeout(() => resolve('no reply in 30 s'), 30_000).unref();
    });
    r.ws.send(JSON.stringify({ type: 'offer', sdp: deadOffer }));
    return reply;
  });
  // The person talks during the flood: the echo must come back.
  const spoken = call.play(speech);
  const [idle, offers] = await Promise.all([idleFlood, offerFlood]);
  const sent = await spoken;
  await until(() => call.audibleMs(sent.lastVoicedAt) >= 200, 10_000);
  const echoDuringFlood = call.audibleMs(sent.lastVoicedAt);
  const pendingCalls = eva.server.calls.size - 1;
  // Hold the flood a while longer (idle sockets are closed by the server only after EVA_OFFER_TIMEOUT_S, 30 s).
  await sleep(3000);
  const f1 = performance.now();

  const base = gaps(call, b0 + 200, b1);
  const flood = gaps(call, f0, f1);
  const idleTally = tally(idle);
  const offerTally = tally(offers);
  const hb = health.filter((h) => h.at < f0).map((h) => h.ms);
  const hf = health.filter((h) => h.at >= f0 && h.at < f1);

  t.notOk(call.events.some((e) => e.msg.type === 'bye'), 'the real call was not ended');
  t.ok(
    idle.every((o) => o === 'open' || o === 'status 429' || o === 'status 503' || o === 'closed' || o.startsWith('error ')),
    `every idle socket was accepted or refused cleanly: ${JSON.stringify(idleTally)}`,
  );
  t.notOk(idle.some((o) => o.startsWith('status ') && o !== 'status 429' && o !== 'status 503'), 'no refusal other than 429/503');
  t.ok((idleTally.open ?? 0) >= IDLE_SOCKETS * 0.9, `most of the idle flood got in under the default limits (${idleTally.open ?? 0})`);
  t.ok(offers.every((o) => o === 'answered' || o === 'error rate_limited' || o === 'closed' || o.startsWith('socket ')), `every offer was answered or refused as rate_limited: ${JSON.stringify(offerTally)}`);
  t.ok(echoDuringFlood >= 200, `the call heard its echo during the flood (${echoDuringFlood} ms audible)`);
  t.ok(flood.maxGap < GAP_BOUND_MS, `RTP kept arriving: longest gap ${flood.maxGap.toFixed(0)} ms during the flood (baseline ${base.maxGap.toFixed(0)} ms)`);
  t.ok(flood.frames >= flood.expected * 0.6, `${flood.frames} of ${flood.expected} frames arrived during the flood`);
  t.ok(hf.length > 0 && hf.every((h) => h.status === 200), `/health answered 200 throughout (${hf.length} requests)`);
  const hfMax = Math.max(...hf.map((h) => h.ms));
  t.ok(hfMax < HEALTH_BOUND_MS, `/health under flood: p50 ${pct(hf.map((h) => h.ms), 50).toFixed(0)} ms, max ${hfMax.toFixed(0)} ms`);

  t.comment(`flood of ${IDLE_SOCKETS} idle sockets from ${IDLE_ADDRESSES} addresses + ${OFFERS} dead offers from ${OFFER_ADDRESSES}, ${((f1 - f0) / 1000).toFixed(1)} s; fd limit ${limit}`);
  t.comment(`idle sockets: ${JSON.stringify(idleTally)}; offers: ${JSON.stringify(offerTally)}; pending calls held ${pendingCalls} (EVA_MAX_CALLS ${eva.config.maxCalls})`);
  t.comment(`RTP: baseline ${base.frames}/${base.expected} frames, max gap ${base.maxGap.toFixed(0)} ms, ${base.over100} gaps > 100 ms; flood ${flood.frames}/${flood.expected}, max gap ${flood.maxGap.toFixed(0)} ms, ${flood.over100} gaps > 100 ms`);
  t.comment(`/health: baseline p50 ${pct(hb, 50).toFixed(0)} ms max ${Math.max(...hb).toFixed(0)} ms; flood p50 ${pct(hf.map((h) => h.ms), 50).toFixed(0)} ms p95 ${pct(hf.map((h) => h.ms), 95).toFixed(0)} ms max ${hfMax.toFixed(0)} ms`);

  // Flood gone: the server lets go of it, and serves as before.
  for (const ws of sockets) ws.terminate();
  polling = false;
  await poller;
  t.ok(await until(() => eva.server.calls.size === 1, 20_000), `the flood's pending calls are released when their sockets go (${eva.server.calls.size - 1} left)`);
  const after = await checkStillServes(t, eva, speech);
  t.comment(`after the flood: /health ${after.healthMs.toFixed(0)} ms, a new call connected in ${after.connectMs.toFixed(0)} ms`);
  call.hangup();
});
