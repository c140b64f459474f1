// Signaling fuzz: thousands of mutated and random frames over many sockets to `/ws` and `/ws/chat` — truncated
// JSON, binary, huge strings near and over the size limits, prototype keys, wrong types, deep nesting, unicode
// junk, real offers cut and flipped. Every frame must be answered with an error or ignored (never a crash, never
// a hang), and afterwards the server must still serve a real call. Seeded, bounded, loopback only.
//
// How "answered or ignored" is checked on `/ws`, which has no request ids: after every fuzz frame the socket sends
// a sentinel (`{"type":"s:<n>"}`, an unknown type the server always refuses, naming it). The sentinel's reply
// proves the socket was still served after the frame; any frame the protocol parser refuses must have had its
// error before that reply (parse errors are answered synchronously, in order). On `/ws/chat` every message gets
// exactly one terminal frame (`end` or `error`), so the count must match.
import t from 'tap';
import WebSocket from 'ws';
import { Peer } from '../../media/peer.js';
import { createEchoAgent } from '../../server/agent-echo.js';
import { MAX_FRAME_BYTES, parseClientMessage } from '../../server/signaling.js';
import { fixture16k, startEva, until } from '../helpers/eva.js';
import { checkStillServes } from '../helpers/probe.js';

const SEED = 0x5eed_0009;
const WS_SOCKETS = 60;
const FRAMES_PER_SOCKET = 85; // 5,100 frames on /ws
const CHAT_SOCKETS = 6;
const CHAT_FRAMES_PER_SOCKET = 50; // 300 on /ws/chat
/** One sentinel or chat reply; generous for a loaded 2-core machine (a real offer is answered in ~50 ms). */
const REPLY_TIMEOUT_MS = 15_000;

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]! };
}
type Rng = ReturnType<typeof prng>;

const JUNK_CHARS = ['\u0000', '\ufeff', '\ud800', '\udfff', '\u202e', '\u0301', '\uffff', '😀', '\u2028', '\\', '"', '\u00e9', '\u4e2d', '\r\n', '\t'];
function junk(r: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += r.next() < 0.5 ? r.pick(JUNK_CHARS) : String.fromCharCode(r.int(0x3000));
  return s;
}

/** Byte-level damage: flips, deletions, insertions, a cut. */
function mutate(r: Rng, s: string): string {
  const b = Buffer.from(s);
  const ops = 1 + r.int(5);
  let out: Buffer = b;
  for (let i = 0; i < ops && out.length > 0; i++) {
    const at = r.int(out.length);
    switch (r.int(4)) {
      case 0:
        out[at] = r.int(256);
        break;
      case 1:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + r.int(8))]);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), Buffer.from(r.pick(['{', '}', '"', ',', ':', '[', 'null', '\\u0000', '"__proto__"'])), out.subarray(at)]);
        break;
      default:
        out = out.subarray(0, at);
    }
  }
  return out.toString('utf8');
}

function deep(r: Rng): string {
  const depth = 1000 + r.int(60_000);
  switch (r.int(3)) {
    case 0:
      return '['.repeat(depth) + ']'.repeat(depth);
    case 1:
      return '{"type":"offer","sdp":"v=0","config":' + '{"a":'.repeat(depth) + '1' + '}'.repeat(depth) + '}';
    default:
      return '{"type":"text","text":' + '['.repeat(depth) + '"x"' + ']'.repeat(depth) + '}';
  }
}

const PROTO_FRAMES = [
  '{"__proto__":{"type":"hangup"}}',
  '{"type":"offer","__proto__":{"sdp":"v=0"}}',
  '{"type":"__proto__"}',
  '{"type":"constructor"}',
  '{"type":"toString"}',
  '{"type":"hasOwnProperty"}',
  '{"type":"offer","sdp":"v=0\\r\\nm=audio 9 RTP/AVP 111\\r\\na=rtpmap:111 opus/48000/2","config":{"__proto__":{"session":"stolen"}}}',
  '{"type":"offer","sdp":"v=0","config":{"constructor":{"prototype":{"polluted":true}}}}',
  '{"constructor":{"prototype":{"polluted":true}},"type":"hangup"}',
  '{"type":"candidate","candidate":{"__proto__":{"candidate":"x"}}}',
  '{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","__proto__":{"polluted":true}}}',
  '{"type":"text","text":"hi","__proto__":{"polluted":true}}',
  '{"__proto__":null}',
  '{"__proto__":[]}',
  '{"type":"text","text":{"toString":"x"}}',
];

const WRONG_TYPES: unknown[] = [
  1, null, true, [], {}, 'OFFER', 'offer ', '', '\u0000offer', 'Offer', ['offer'], { type: 'offer' },
];
function wrongTypes(r: Rng): string {
  switch (r.int(6)) {
    case 0:
      return JSON.stringify({ type: r.pick(WRONG_TYPES) });
    case 1:
      return JSON.stringify({ type: 'offer', sdp: r.pick([5, null, [], {}, '', 'v=0', true, ['v=0']]) });
    case 2:
      return JSON.stringify({
        type: 'offer',
        sdp: 'v=0\r\n',
        config: r.pick(['x', 1, [], null, { voice: 5 }, { session: '../../etc/passwd' }, { session: 'a'.repeat(65) }, { system: 'x'.repeat(5000) }, { language: {} }, { session: '' }]),
      });
    case 3:
      return JSON.stringify({ type: 'candidate', candidate: r.pick(['x', 1, null, [], {}, { candidate: 5 }, { candidate: null }, { candidate: '', sdpMid: 5 }, { candidate: 'junk', sdpMLineIndex: 'a' }]) });
    case 4:
      return JSON.stringify({ type: 'text', text: r.pick([1, [], {}, '', '   ', null, 'x'.repeat(4001), true]) });
    default:
      return r.pick(['null', 'true', '1', '"offer"', '[]', '[{"type":"hangup"}]', '{}', '""', '1e999', '-0']);
  }
}

/** Valid messages: the base for truncation and mutation, and a few that go through (order errors). */
function validFrames(offerSdp: string): string[] {
  return [
    JSON.stringify({ type: 'offer', sdp: offerSdp, config: { voice: 'en', language: 'en', system: 'be brief' } }),
    JSON.stringify({ type: 'offer', sdp: offerSdp }),
    JSON.stringify({ type: 'candidate', candidate: { candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 } }),
    JSON.stringify({ type: 'candidate', candidate: { candidate: '' } }),
    JSON.stringify({ type: 'text', text: 'hello there' }),
    JSON.stringify({ type: 'hangup' }),
  ];
}

type Frame = { data: string | Buffer; binary: boolean; kind: string };

function wsFrame(r: Rng, valid: string[], offerSdp: string): Frame {
  const text = (data: string, kind: string): Frame => ({ data, binary: false, kind });
  const roll = r.int(100);
  if (roll < 18) {
    const v = r.pick(valid);
    return text(v.slice(0, 1 + r.int(v.length - 1)), 'truncated');
  }
  if (roll < 36) return text(mutate(r, r.pick(valid)), 'mutated');
  if (roll < 44) {
    const bytes = r.next() < 0.5 ? Buffer.from(r.pick(valid)) : Buffer.from(Array.from({ length: r.int(2048) }, () => r.int(256)));
    return { data: bytes, binary: true, kind: 'binary' };
  }
  if (roll < 54) return text(wrongTypes(r), 'wrong_type');
  if (roll < 62) return text(r.pick(PROTO_FRAMES), 'prototype');
  if (roll < 66) return text(deep(r), 'deep');
  if (roll < 76) {
    const j = junk(r, 1 + r.int(200));
    return text(r.pick([j, JSON.stringify({ type: j }), JSON.stringify({ type: 'text', text: j }), `{"type":"${j}"}`, JSON.stringify({ type: 'offer', sdp: `v=0${j}` })]), 'unicode');
  }
  if (roll < 79) {
    // Near and over the 128 KiB protocol limit (uWS's own 1 MiB limit is on the closing sockets below).
    const size = r.pick([MAX_FRAME_BYTES - 64, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES + 4096, 512 * 1024]);
    const body = JSON.stringify({ type: 'text', text: '' });
    return text(body.slice(0, -2) + 'x'.repeat(Math.max(0, size - body.length)) + '"}', 'huge');
  }
  if (roll < 82) {
    // Real offers with a few extra m-lines (thousands: the test below), or cut at a line.
    const extra = offerSdp + 'm=audio 9 RTP/AVP 0\r\n'.repeat(1 + r.int(20));
    return text(JSON.stringify({ type: 'offer', sdp: r.next() < 0.5 ? extra : offerSdp.slice(0, offerSdp.indexOf('\r\n', r.int(offerSdp.length))) }), 'sdp');
  }
  if (roll < 92) return text(r.pick(valid), 'valid');
  // Random soup: JSON-ish tokens.
  const tokens = ['{', '}', '[', ']', '"type"', ':', ',', '"offer"', '"sdp"', 'null', '1', '"', '\\', 'true', ' ', '"v=0"'];
  return text(Array.from({ length: 1 + r.int(40) }, () => r.pick(tokens)).join(''), 'random');
}

function chatFrame(r: Rng): string {
  const base = JSON.stringify({ type: 'message', content: 'hello', session_id: 'fuzz-chat' });
  switch (r.int(8)) {
    case 0:
      return base.slice(0, 1 + r.int(base.length - 1));
    case 1:
      return mutate(r, base);
    case 2:
      return JSON.stringify({ type: 'message', content: r.pick([1, null, [], {}, '', 'x'.repeat(70_000)]) });
    case 3:
      return r.pick(PROTO_FRAMES).replace('"type":"text"', '"type":"message"');
    case 4:
      return JSON.stringify({ type: 'message', content: junk(r, 50), session_id: r.pick(['../x', '', 5, null, '__proto__', 'a'.repeat(100)]) });
    case 5:
      return deep(r).slice(0, 60_000);
    case 6:
      return JSON.stringify({ type: r.pick(WRONG_TYPES), content: 'x' });
    default:
      return base;
  }
}

interface Reply {
  type: string;
  code?: string;
  message?: string;
}

/** A raw client socket with an inbox; `closed` resolves with the close code. */
async function open(url: string): Promise<{ ws: WebSocket; inbox: Reply[]; bad: string[]; closed: Promise<number>; wake: () => Promise<void> }> {
  const ws = new WebSocket(url, { maxPayload: 16 * 1024 * 1024 });
  const inbox: Reply[] = [];
  const bad: string[] = [];
  let waiters: (() => void)[] = [];
  ws.on('message', (d) => {
    try {
      inbox.push(JSON.parse(String(d)) as Reply);
    } catch {
      bad.push(String(d).slice(0, 100));
    }
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => undefined); // a close follows; its code is what the test reads
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, inbox, bad, closed, wake: () => new Promise<void>((r) => waiters.push(r)) };
}

async function waitFor<T>(sock: { inbox: Reply[]; wake: () => Promise<void> }, pred: () => T | undefined, ms: number): Promise<T | undefined> {
  const end = performance.now() + ms;
  for (;;) {
    const v = pred();
    if (v !== undefined) return v;
    const left = end - performance.now();
    if (left <= 0) return undefined;
    await Promise.race([sock.wake(), new Promise((r) => setTimeout(r, Math.min(left, 200)))]);
  }
}

function wellFormed(m: Reply): boolean {
  if (typeof m.type !== 'string') return false;
  if (m.type === 'error') return typeof m.code === 'string' && /^[a-z_]+$/.test(m.code) && typeof m.message === 'string' && m.message.length > 0;
  return true;
}

t.test('thousands of fuzzed frames over many sockets are each refused or ignored, and the server goes on serving', async (t) => {
  const eva = await startEva(t, { runtime: true, agent: createEchoAgent, env: { EVA_LLM: 'echo', EVA_LOG_LEVEL: 'error' } });
  // A real werift offer to cut and flip; its peer is closed at once, so calls made from it never connect.
  const client = new Peer({ onAudio: () => undefined }, { onlyHosts: ['127.0.0.1'] });
  const offerSdp = await client.offer();
  await client.close();
  const valid = validFrames(offerSdp);
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();
  const speech = fixture16k('hello.wav');
  const before = await checkStillServes(t, eva, speech);
  const t0 = performance.now();

  const kinds = new Map<string, number>();
  const codes = new Map<string, number>();
  const problems: string[] = [];
  let frames = 0;
  let mustError = 0;
  let errored = 0;
  let slowest = 0;

  async function fuzzSocket(i: number): Promise<void> {
    const r = prng(SEED + i);
    const s = await open(eva.wsUrl);
    let seen = 0;
    for (let n = 0; n < FRAMES_PER_SOCKET; n++) {
      const f = wsFrame(r, valid, offerSdp);
      kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
      let refused = false;
      try {
        parseClientMessage(typeof f.data === 'string' ? f.data : new Uint8Array(f.data).buffer, f.binary);
      } catch {
        refused = true;
      }
      const sent = performance.now();
      s.ws.send(f.data, { binary: f.binary });
      s.ws.send(JSON.stringify({ type: `s:${n}` }));
      frames++;
      const tag = `"s:${n}"`;
      const at = await waitFor(s, () => {
        const k = s.inbox.findIndex((m, j) => j >= seen && m.type === 'error' && m.code === 'unknown_type' && m.message?.includes(tag));
        return k < 0 ? undefined : k;
      }, REPLY_TIMEOUT_MS);
      if (at === undefined) {
        problems.push(`socket ${i} frame ${n} (${f.kind}): no reply to the sentinel within ${REPLY_TIMEOUT_MS} ms (socket ${s.ws.readyState === WebSocket.OPEN ? 'open' : 'closed'})`);
        break;
      }
      slowest = Math.max(slowest, performance.now() - sent);
      const before = s.inbox.slice(seen, at);
      if (refused) {
        mustError++;
        if (!before.some((m) => m.type === 'error')) problems.push(`socket ${i} frame ${n} (${f.kind}): refused by the parser but no error came before the sentinel's reply`);
      }
      seen = at + 1;
    }
    // Let answers to offers still in werift arrive, then look at everything this socket got.
    await new Promise((r) => setTimeout(r, 100));
    for (const m of s.inbox) {
      if (!wellFormed(m)) problems.push(`socket ${i}: malformed reply ${JSON.stringify(m).slice(0, 120)}`);
      if (m.type === 'error' && !(m.code === 'unknown_type' && m.message?.includes('"s:'))) {
        errored++;
        codes.set(m.code!, (codes.get(m.code!) ?? 0) + 1);
      }
    }
    if (s.bad.length) problems.push(`socket ${i}: ${s.bad.length} replies were not JSON, e.g. ${s.bad[0]}`);
    s.ws.close();
    await s.closed;
  }

  async function fuzzChat(i: number): Promise<{ sent: number; terminal: number }> {
    const r = prng(SEED + 1000 + i);
    const s = await open(eva.wsUrl.replace(/\/ws$/, '/ws/chat'));
    let terminal = 0;
    for (let n = 0; n < CHAT_FRAMES_PER_SOCKET; n++) {
      s.ws.send(chatFrame(r));
      frames++;
      const want = n + 1;
      const got = await waitFor(s, () => {
        terminal = s.inbox.filter((m) => m.type === 'end' || m.type === 'error').length;
        return terminal >= want ? terminal : undefined;
      }, REPLY_TIMEOUT_MS);
      if (got === undefined) {
        problems.push(`/ws/chat socket ${i} message ${n}: no end or error within ${REPLY_TIMEOUT_MS} ms`);
        break;
      }
    }
    for (const m of s.inbox) if (!wellFormed(m)) problems.push(`/ws/chat socket ${i}: malformed reply ${JSON.stringify(m).slice(0, 120)}`);
    s.ws.close();
    await s.closed;
    return { sent: CHAT_FRAMES_PER_SOCKET, terminal };
  }

  // Frames the transport itself refuses by closing: over uWS's 1 MiB payload limit, and text frames that are not
  // UTF-8. A close (with a code) is the answer; the server goes on.
  async function closer(i: number): Promise<number> {
    const s = await open(eva.wsUrl);
    const r = prng(SEED + 2000 + i);
    const frame = i % 2 === 0 ? Buffer.alloc(1024 * 1024 + 1 + r.int(1024), 0x61) : Buffer.from([0x7b, 0xff, 0xfe, 0xc0, 0x80, 0x7d]);
    s.ws.send(frame, { binary: false });
    frames++;
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([s.closed, new Promise<number>((r) => (timer = setTimeout(() => r(-1), REPLY_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (code === -1) s.ws.terminate();
    return code;
  }

  const [, chat, closes] = await Promise.all([
    Promise.all(Array.from({ length: WS_SOCKETS }, (_, i) => fuzzSocket(i))),
    Promise.all(Array.from({ length: CHAT_SOCKETS }, (_, i) => fuzzChat(i))),
    Promise.all(Array.from({ length: 10 }, (_, i) => closer(i))),
  ]);
  const fuzzMs = performance.now() - t0;

  t.same(problems.slice(0, 20), [], 'every frame was answered with an error or ignored, and every sentinel was answered');
  t.ok(frames >= 5000, `${frames} frames sent over ${WS_SOCKETS + CHAT_SOCKETS + 10} sockets`);
  t.ok(errored >= mustError, `${errored} errors for ${mustError} frames the parser refuses`);
  t.equal(codes.get('internal') ?? 0, 0, 'no frame reached an unexpected exception (code internal)');
  t.same(chat.map((c) => c.terminal), chat.map((c) => c.sent), '/ws/chat: one end or error per message');
  t.ok(closes.every((c) => c >= 1000), `frames over 1 MiB and invalid UTF-8 text close their socket (codes ${[...new Set(closes)].join(', ')})`);
  t.same(Object.getOwnPropertyNames(Object.prototype).sort(), protoBefore, 'Object.prototype is untouched');
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing polluted');
  t.ok(await until(() => eva.server.calls.size === 0, 10_000), `no call left open once the fuzz sockets closed (${eva.server.calls.size})`);

  const after = await checkStillServes(t, eva, speech);
  t.comment(`fuzz: ${frames} frames in ${(fuzzMs / 1000).toFixed(1)} s; kinds ${JSON.stringify(Object.fromEntries(kinds))}`);
  t.comment(`errors by code ${JSON.stringify(Object.fromEntries(codes))}; slowest sentinel round trip ${slowest.toFixed(0)} ms`);
  t.comment(`before: /health ${before.healthMs.toFixed(0)} ms, a call connected in ${before.connectMs.toFixed(0)} ms; after: /health ${after.healthMs.toFixed(0)} ms, a new call connected in ${after.connectMs.toFixed(0)} ms and heard ${after.echoMs} ms of echo`);
});

t.test('an offer with thousands of m-lines is refused with bad_sdp at once, and /health answers meanwhile', async (t) => {
  const eva = await startEva(t, { env: { EVA_LOG_LEVEL: 'error' } });
  const client = new Peer({ onAudio: () => undefined }, { onlyHosts: ['127.0.0.1'] });
  const offerSdp = await client.offer();
  await client.close();
  // A real offer, then 2,000 bare audio sections: 43 KiB, inside the 64 KiB SDP bound. werift's answer to such an
  // offer costs time superlinear in the m-lines and blocks the event loop (measured before the one-audio-m-line
  // rule: 800 → 1.1 s, 1,600 → 11 s, 2,000 → 28.5 s with /health unanswered all that time), so it must be
  // refused before werift sees it.
  const LINES = 2000;
  const bomb = offerSdp + 'm=audio 9 RTP/AVP 0\r\n'.repeat(LINES);
  const s = await open(eva.wsUrl);
  t.teardown(() => s.ws.close());
  const t0 = performance.now();
  s.ws.send(JSON.stringify({ type: 'offer', sdp: bomb }));
  const health: number[] = [];
  let reply: Reply | undefined;
  // Wait for the answer (bounded: on a server without the rule it takes ~20-60 s); /health is polled meanwhile.
  while (!reply && performance.now() - t0 < 120_000) {
    const h0 = performance.now();
    // A frozen event loop answers late, not never: a long timeout, and a timeout is recorded, not thrown.
    await fetch(`${eva.httpUrl}/health`, { signal: AbortSignal.timeout(60_000) }).then((r) => r.arrayBuffer(), () => undefined);
    health.push(performance.now() - h0);
    reply = await waitFor(s, () => s.inbox.find((m) => m.type === 'error' || m.type === 'answer'), 250);
  }
  const tookMs = performance.now() - t0;
  t.match(reply, { type: 'error', code: 'bad_sdp' }, `refused as bad_sdp (got ${JSON.stringify(reply)?.slice(0, 160)})`);
  t.ok(tookMs < 5000, `refused within 5 s (took ${tookMs.toFixed(0)} ms)`);
  t.ok(Math.max(...health) < 2000, `/health answered meanwhile (max ${Math.max(...health).toFixed(0)} ms over ${health.length} requests)`);
  t.equal(eva.server.calls.size, 0, 'no call left open');
  t.comment(`${LINES} m-lines (${(bomb.length / 1024).toFixed(0)} KiB): reply after ${tookMs.toFixed(0)} ms; /health max ${Math.max(...health).toFixed(0)} ms`);
});
