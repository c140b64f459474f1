// `node dist/bench/stages.js [--calls 10,20] [--window MS] [--micro-only | --profile-only] [--compare FILE]`
// (after `npm run build`): where EVA's CPU and memory go, stage by stage.
//   (a) micro-benchmarks of each stage with the real components on this machine: Opus decode of real packets,
//       Opus encode at the pacer's rate, resampling, Silero windows through the VAD worker, the pacer's
//       per-frame work, level and echo-gate work per window, and werift's receive and send paths through a real
//       peer pair on loopback;
//   (b) CPU profiles of a running EVA under the load ramp (load.ts): EVA is started with `--inspect` on
//       loopback, and over the inspector this bench samples its main thread and its worker threads (the VAD's,
//       eSpeak's) during a steady window, forces a GC before reading RSS, and maps every sample to a stage
//       (STAGE_RULES) — self time divided by packets, frames and windows gives µs per unit and % of a core per
//       call.
// It writes bench/results/<time>-stages.json and .txt (report.ts `stagesReport`); `--compare` adds a before/after
// table against an earlier -stages.json. See bench/README.md "Stages".
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { EchoGate } from '../media/echo-gate.js';
import { rmsOf } from '../media/level.js';
import { OpusDecoder, OpusEncoder, REPLY_ENCODER, enableFec } from '../media/opus.js';
import { DTX_KEEPALIVE_FRAMES, Pacer, PacerScheduler } from '../media/pacer.js';
import { PcmRing } from '../media/pcm-ring.js';
import { Peer } from '../media/peer.js';
import { createResampler } from '../media/resample.js';
import { PacketRateCap, RtpReceiveTracker, RtpSequencer } from '../media/rtp.js';
import { DEFAULT_TURN_CONFIG, TurnDetector } from '../media/turns.js';
import { VAD_WINDOW, VAD_WINDOW_MS, VadEngine } from '../media/vad.js';
import { decodeWav } from '../media/wav.js';
import { runLoad, type LoadStep } from './load.js';
import { evaEnv, parseBenchProfile } from './profiles.js';
import { stagesReport, stamp, type MachineInfo } from './report.js';
import { REPLIES, loadUtterances, machineInfo } from './run.js';
import { start as startGroq } from './standins/groq.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// ---------------------------------------------------------------------------------------------------------------
// Pure: the result's shape, and a CPU profile mapped to stages (tested).

/** What a stage's cost is counted per. */
export type StageUnit = 'packet' | 'frame' | 'speech frame' | 'window' | 'call·s';

export interface MicroResult {
  stage: string;
  unit: StageUnit;
  /** Median over the rounds of the mean µs per unit in each round. */
  us: number;
  rounds: number;
  perRound: number;
  note?: string;
}

export interface StageRow {
  stage: string;
  unit: StageUnit;
  /** Self time over the profile, ms. */
  selfMs: number;
  /** Units processed over the profile (calls × duration × the unit's rate). */
  units: number;
  usPerUnit: number;
  /** % of one core per call. */
  pctPerCall: number;
}

export interface ThreadProfile {
  /** 'main', or the worker's script name (vad-worker, tts-espeak-worker …). */
  thread: string;
  durationMs: number;
  /** Non-idle sampled time, ms (wall time: includes waits for a core on a busy machine). */
  busyMs: number;
  /** The thread's CPU over the profile, ms (/proc schedstat); the rows are scaled to it. */
  cpuMs?: number;
  rows: StageRow[];
}

export interface ProfileStep {
  calls: number;
  /** The load step measured over the same calls (lag, underruns, EVA CPU% from /proc, RSS). */
  load?: LoadStep;
  /** Packets received and frames sent per call per second over the profile (EVA's eva_rtp_packets_total). */
  rates?: MeasuredRates;
  threads: ThreadProfile[];
  /** Sum over the threads per stage (a stage may run on several). */
  rows: StageRow[];
  /** % of a core per call: EVA's CPU over the profile (all threads, /proc) per call. */
  sampledPctPerCall: number;
  /** After a forced GC, with the calls up: (RSS − RSS before any call) / calls, and the JS heap's share. */
  memory?: { rssMb: number; rssPerCallMb: number; heapUsedPerCallMb: number; externalPerCallMb: number; arrayBuffersPerCallMb: number };
  /** After the calls closed and a forced GC: RSS − the baseline (what a closed call leaves behind, in all). */
  rssAfterCloseMb?: number;
  /**
   * The same calls over as long a window right after, with no profiler running: EVA's CPU (all threads, /proc)
   * per call, and the threads nobody profiles. The difference to the profiled window is the profiler's own cost.
   */
  unprofiled?: { pctPerCall: number; otherThreadsPct: number };
}

export interface StagesResult {
  version: 1;
  startedAt: string;
  durationS: number;
  machine: MachineInfo;
  /** What this run measured and how (sampling interval, unit rates). */
  config: { samplingUs: number; windowMs: number; calls: number[]; loadProfile: string; rates: Record<StageUnit, string> };
  micro: MicroResult[];
  profiles: ProfileStep[];
  baseline?: { rssMb: number; heapUsedMb: number };
  notes: string[];
  /** An earlier result (--compare): the before of a before/after table. */
  before?: { startedAt: string; gitCommit: string; micro: MicroResult[]; profiles: ProfileStep[] };
}

/** The V8 CPU profile format (the inspector's Profiler.stop, `node --cpu-prof`). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber?: number; columnNumber?: number }; children?: number[]; hitCount?: number }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface StageRule {
  stage: string;
  unit: StageUnit;
  /** Matches a frame's script URL (a substring) … */
  url?: string;
  /** … and/or its function name (a regular expression). */
  fn?: RegExp;
  /** Only when no other rule matches any frame of the stack (catch-alls: werift's timers, Node's event loop). */
  fallback?: boolean;
}

export const IDLE = '(idle)';

const RECEIVE = 'werift receive (UDP, SRTP, RTP)';
const SEND = 'werift send (RTP, SRTP, UDP)';
const EVA_RX = 'EVA receive (rx tracker, cap, ring)';
const VAD_MAIN = 'VAD (main thread: windows, batches, messages)';
const SERVER = 'signaling, HTTP, metrics, store';
const LOOP = 'event loop, timers (Node)';

/**
 * Frame → stage. A sample belongs to the stage of the innermost frame of its stack that a rule matches (the leaf
 * first, then its callers): a WASM frame under OpusDecoder.decode is decode, werift's SRTP under Peer.sendAudio is
 * the send path, and everything under a UDP datagram (`onMessage` in node:dgram) that EVA's own frames do not
 * claim is werift's receive path. Rules marked `fallback` apply only to stacks no other rule matches (werift's
 * timers: RTCP reports, ICE consent; Node's event loop). Within one frame the first rule that matches wins.
 */
export const STAGE_RULES: StageRule[] = [
  { stage: 'GC', unit: 'call·s', fn: /^\(garbage collector\)$/ },
  { stage: 'opus decode', unit: 'packet', url: '/media/opus.js', fn: /decode/i },
  { stage: 'opus encode', unit: 'speech frame', url: '/media/opus.js', fn: /encode/i },
  { stage: 'resample (TTS → 24 kHz)', unit: 'speech frame', url: '/media/resample.js' },
  { stage: VAD_MAIN, unit: 'window', url: '/media/vad.js' },
  { stage: 'level / echo gate', unit: 'window', url: '/media/level.js' },
  { stage: 'level / echo gate', unit: 'window', url: '/media/echo-gate.js' },
  { stage: 'turn detector', unit: 'window', url: '/media/turns.js' },
  { stage: 'turn detector', unit: 'window', url: '/server/session-core.js', fn: /^(onVad|runTurnEvents|onTurnEvent|wallOf)$/ },
  { stage: EVA_RX, unit: 'packet', url: '/media/rtp.js', fn: /^(accept|take|seqDiff)$/ },
  { stage: EVA_RX, unit: 'packet', url: '/media/pcm-ring.js', fn: /^write$/ },
  { stage: EVA_RX, unit: 'packet', url: '/server/', fn: /^(onRtp|pushAudio)$/ },
  { stage: SEND, unit: 'frame', url: '/media/peer.js', fn: /^sendAudio$/ },
  { stage: 'pacer', unit: 'frame', url: '/media/pacer.js' },
  { stage: 'pacer', unit: 'frame', url: '/media/pacer-core.js' },
  { stage: 'pacer', unit: 'frame', url: '/media/rtp.js' },
  { stage: RECEIVE, unit: 'packet', url: '/media/peer.js' },
  // werift sends with an address string: node:dgram looks it up and sends on the next tick, off sendAudio's stack.
  { stage: SEND, unit: 'frame', url: 'node:dgram', fn: /^(doSend|afterDns|send)$/ },
  { stage: RECEIVE, unit: 'packet', url: 'node:dgram', fn: /^onMessage$/ },
  { stage: 'workers: supervisor, messages', unit: 'call·s', url: '/media/supervisor.js' },
  { stage: 'workers: supervisor, messages', unit: 'call·s', url: 'node:internal/worker' },
  { stage: 'prosody (pitch)', unit: 'call·s', url: '/media/prosody.js' },
  { stage: 'prosody (pitch)', unit: 'call·s', url: 'pitchfinder' },
  { stage: 'agent, pipeline, providers', unit: 'call·s', url: '/server/pipeline/' },
  { stage: 'agent, pipeline, providers', unit: 'call·s', url: '/server/providers/' },
  { stage: 'agent, pipeline, providers', unit: 'call·s', url: '/server/agent' },
  { stage: 'agent, pipeline, providers', unit: 'call·s', url: 'groq-sdk' },
  { stage: SERVER, unit: 'call·s', url: 'uWebSockets' },
  { stage: SERVER, unit: 'call·s', url: 'prom-client' },
  { stage: SERVER, unit: 'call·s', url: 'better-sqlite3' },
  { stage: SERVER, unit: 'call·s', url: '/server/', fallback: true },
  { stage: 'werift other (ICE, DTLS, RTCP, timers)', unit: 'call·s', url: '/werift', fallback: true },
  { stage: LOOP, unit: 'call·s', url: 'node:internal/timers', fallback: true },
  { stage: LOOP, unit: 'call·s', fn: /^(processTicksAndRejections|runMicrotasks|processImmediate|\(program\))$/, fallback: true },
];
export const OTHER = { stage: 'other', unit: 'call·s' as StageUnit };

/**
 * Units per call per second: every call sends 50 packets/s (silence included); EVA sends 50 frames/s while it
 * talks and, quiet, 50/s too or, with Opus DTX (EVA_OPUS_DTX, the default), one frame in DTX_KEEPALIVE_FRAMES.
 */
export function unitRates(talkingFraction: number, dtx = true, measured: MeasuredRates = {}): Record<StageUnit, number> {
  const quietFrames = 50 * (1 - talkingFraction);
  const frame = measured.frame ?? 50 * talkingFraction + (dtx ? quietFrames / DTX_KEEPALIVE_FRAMES : quietFrames);
  return { packet: measured.packet ?? 50, frame, 'speech frame': 50 * talkingFraction, window: 16000 / VAD_WINDOW, 'call·s': 1 };
}

/** Packets received and frames sent per call per second, counted by EVA (eva_rtp_packets_total) when it has them. */
export interface MeasuredRates {
  packet?: number;
  frame?: number;
  /** VAD windows through the model per call per second (of 31.25; the rest skipped as settled near-silence). */
  modelWindows?: number;
  /** Model windows per model run (media/vad.ts batching). */
  windowsPerBatch?: number;
}

/** eva_vad_windows_total{path="model"} and eva_vad_batches_total in a /metrics text (undefined: an EVA without them). */
export function parseVadCounters(text: string): { model: number; batches: number } | undefined {
  const model = /^eva_vad_windows_total\{[^}]*path="model"[^}]*\}\s+(\S+)/m.exec(text);
  const batches = /^eva_vad_batches_total(?:\{[^}]*\})?\s+(\S+)/m.exec(text);
  return model && batches ? { model: Number(model[1]), batches: Number(batches[1]) } : undefined;
}

/** eva_rtp_packets_total by direction in a /metrics text (undefined: an EVA without the counter). */
export function parseRtpPackets(text: string): { received: number; sent: number } | undefined {
  const get = (dir: string): number | undefined => {
    const m = new RegExp(`^eva_rtp_packets_total\\{[^}]*direction="${dir}"[^}]*\\}\\s+(\\S+)`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const received = get('received');
  const sent = get('sent');
  return received === undefined || sent === undefined ? undefined : { received, sent };
}

function ruleFor(frame: CpuProfile['nodes'][number]['callFrame'], rules: readonly StageRule[]): StageRule | undefined {
  for (const r of rules) {
    if (r.url !== undefined && !frame.url.includes(r.url)) continue;
    if (r.fn !== undefined && !r.fn.test(frame.functionName)) continue;
    if (r.url === undefined && r.fn === undefined) continue;
    return r;
  }
  return undefined;
}

/** Self time (ms) per stage, and idle time, from a CPU profile: each sample goes to its innermost matched frame. */
export function stageTimes(profile: CpuProfile, rules: readonly StageRule[] = STAGE_RULES): { byStage: Map<string, { unit: StageUnit; ms: number }>; idleMs: number; durationMs: number; top: { fn: string; url: string; stage: string; ms: number }[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stageOf = new Map<number, { stage: string; unit: StageUnit } | 'idle'>();
  const resolve = (id: number): { stage: string; unit: StageUnit } | 'idle' => {
    const known = stageOf.get(id);
    if (known) return known;
    // The innermost frame a specific rule matches; failing that, the innermost a fallback rule matches.
    let fallback: StageRule | undefined;
    let found: { stage: string; unit: StageUnit } | 'idle' | undefined;
    for (let cur: number | undefined = id; cur !== undefined && !found; cur = parent.get(cur)) {
      const node = byId.get(cur)!;
      if (node.callFrame.functionName === IDLE) found = 'idle';
      else {
        const r = ruleFor(node.callFrame, rules);
        if (r && !r.fallback) found = { stage: r.stage, unit: r.unit };
        else if (r) fallback ??= r;
      }
    }
    found ??= fallback ? { stage: fallback.stage, unit: fallback.unit } : OTHER;
    stageOf.set(id, found);
    return found;
  };
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const total = profile.endTime - profile.startTime;
  const mean = samples.length ? total / samples.length : 0;
  // timeDeltas[i] is the time before sample i: sample i stands for the interval up to the next one.
  for (let i = 0; i < samples.length; i++) selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + (deltas[i + 1] ?? mean));
  if (!samples.length) {
    for (const n of profile.nodes) if (n.hitCount) selfUs.set(n.id, n.hitCount * 1000);
  }
  const byStage = new Map<string, { unit: StageUnit; ms: number }>();
  const top: { fn: string; url: string; stage: string; ms: number }[] = [];
  let idleMs = 0;
  for (const [id, us] of selfUs) {
    const s = resolve(id);
    const node = byId.get(id)!;
    if (s === 'idle') {
      idleMs += us / 1000;
      continue;
    }
    const cur = byStage.get(s.stage) ?? { unit: s.unit, ms: 0 };
    cur.ms += us / 1000;
    byStage.set(s.stage, cur);
    top.push({ fn: node.callFrame.functionName || '(anonymous)', url: node.callFrame.url.replace(/^.*\/(node_modules|dist)\//, ''), stage: s.stage, ms: us / 1000 });
  }
  top.sort((a, b) => b.ms - a.ms);
  return { byStage, idleMs, durationMs: total / 1000, top: top.slice(0, 40) };
}

/** Stage rows for one thread's profile with `calls` calls up: µs per unit and % of a core per call. */
export function stageRows(
  byStage: Map<string, { unit: StageUnit; ms: number }>,
  durationMs: number,
  calls: number,
  talkingFraction: number,
  measured: MeasuredRates = {},
): StageRow[] {
  const rates = unitRates(talkingFraction, true, measured);
  const rows: StageRow[] = [];
  for (const [stage, { unit, ms }] of byStage) {
    const units = calls * (durationMs / 1000) * rates[unit];
    rows.push({ stage, unit, selfMs: ms, units, usPerUnit: units > 0 ? (ms * 1000) / units : 0, pctPerCall: durationMs > 0 && calls > 0 ? (ms / durationMs / calls) * 100 : 0 });
  }
  return rows.sort((a, b) => b.pctPerCall - a.pctPerCall);
}

/** The same stage on several threads, added up (rates recomputed from the sums). */
export function mergeRows(lists: readonly StageRow[][], durationMs: number, calls: number): StageRow[] {
  const by = new Map<string, StageRow>();
  for (const rows of lists) {
    for (const r of rows) {
      const cur = by.get(r.stage);
      if (!cur) by.set(r.stage, { ...r });
      else {
        cur.selfMs += r.selfMs;
        cur.usPerUnit = cur.units > 0 ? (cur.selfMs * 1000) / cur.units : 0;
        cur.pctPerCall = durationMs > 0 && calls > 0 ? (cur.selfMs / durationMs / calls) * 100 : 0;
      }
    }
  }
  return [...by.values()].sort((a, b) => b.pctPerCall - a.pctPerCall);
}

export function median(values: readonly number[]): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.ceil(s.length / 2) - 1]!;
}

// ---------------------------------------------------------------------------------------------------------------
// (a) Micro-benchmarks.

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (line: string): void => void process.stdout.write(line + '\n');

/** Median over `rounds` of the mean µs per call of `fn` in a round of `perRound` calls (after one warm-up round). */
function time(stage: string, unit: StageUnit, perRound: number, fn: (i: number) => void, note?: string, rounds = 15): MicroResult {
  for (let i = 0; i < perRound; i++) fn(i);
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < perRound; i++) fn(i);
    per.push(((performance.now() - t0) * 1000) / perRound);
  }
  return { stage, unit, us: median(per), rounds, perRound, note };
}

function frames(pcm: Int16Array, n: number): Int16Array[] {
  const out: Int16Array[] = [];
  for (let o = 0; o + n <= pcm.length; o += n) out.push(pcm.slice(o, o + n));
  return out;
}

async function speech(): Promise<{ pcm16: Int16Array; pcm22: Int16Array; pcm24: Int16Array; pcm48: Int16Array }> {
  const clips = loadUtterances().filter((u) => u.kind !== 'backchannel');
  const parts = clips.map((u) => decodeWav(readFileSync(u.path)).samples);
  const pcm16 = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (pcm16.set(p, o), (o += p.length));
  const up = async (rate: number): Promise<Int16Array> => {
    const rs = await createResampler(16000, rate);
    const out = rs.process(pcm16);
    rs.destroy();
    return out;
  };
  return { pcm16, pcm22: await up(22050), pcm24: await up(24000), pcm48: await up(48000) };
}

async function microBenchmarks(): Promise<MicroResult[]> {
  const out: MicroResult[] = [];
  const { pcm16, pcm22, pcm24, pcm48 } = await speech();
  log(`   speech: ${(pcm16.length / 16000).toFixed(1)} s of the bench's clips`);

  // Opus decode: the load clients' packets (16 kHz VOIP, FEC) and a browser-like stream (48 kHz full band, FEC).
  const packets = (rate: 16000 | 48000, pcm: Int16Array): Buffer[] => {
    const enc = new OpusEncoder({ sampleRate: rate, application: 'voip', bitrate: 32000 });
    enableFec(enc);
    const p = frames(pcm, rate / 50).map((f) => enc.encode(f));
    enc.close();
    return p;
  };
  for (const [rate, pcm, what] of [[16000, pcm16, 'the load clients\' packets (16 kHz VOIP, FEC)'], [48000, pcm48, 'browser-like packets (48 kHz, 32 kbit/s, FEC)']] as const) {
    const p = packets(rate, pcm);
    const dec = new OpusDecoder(16000);
    out.push(time('opus decode', 'packet', p.length, (i) => void dec.decode(p[i]!), `${what} → 16 kHz`));
    dec.close();
  }

  // Opus encode at the pacer's rate and settings (media/opus.ts REPLY_ENCODER).
  {
    const f = frames(pcm24, 480);
    const enc = new OpusEncoder(REPLY_ENCODER);
    out.push(time('opus encode', 'speech frame', f.length, (i) => void enc.encode(f[i]!), `speech at 24 kHz, ${REPLY_ENCODER.application === 'lowdelay' ? 'RESTRICTED_LOWDELAY' : REPLY_ENCODER.application}, complexity ${REPLY_ENCODER.complexity}`));
    enc.close();
  }

  // Resampling eSpeak's 22.05 kHz to the pacer's 24 kHz, in eSpeak's ~100 ms chunks; per 20 ms of output.
  {
    const chunks = frames(pcm22, 2205);
    const rs = await createResampler(22050, 24000);
    const r = time('resample (TTS → 24 kHz)', 'speech frame', chunks.length, (i) => void rs.process(chunks[i]!), '22.05 → 24 kHz in 100 ms chunks, per 20 ms');
    r.us /= 5;
    out.push(r);
    rs.destroy();
  }

  // The pacer's own per-frame work, encoder aside: a silence frame (the cached packet) and a speech frame.
  {
    const enc = new OpusEncoder(REPLY_ENCODER);
    let sent = 0;
    const scheduler = new PacerScheduler(() => 0);
    const pacer = new Pacer({ encoder: enc, send: () => void sent++, scheduler, events: { level: () => undefined, played: () => undefined } });
    pacer.start();
    scheduler.remove(pacer); // ticked by hand below: no timer
    let now = 0;
    out.push(time('pacer', 'frame', 1000, () => pacer.tick((now += 20)), 'a silence frame: slot arithmetic, RTP numbering, the cached packet'));
    const f = frames(pcm24, 480);
    const speechFrame = time('pacer', 'speech frame', f.length, (i) => {
      pacer.enqueue(f[i]!, 1);
      pacer.tick((now += 20));
    }, 'a speech frame: enqueue, tag, level, encode');
    const encodeUs = out.find((m) => m.stage === 'opus encode')!.us;
    out.push({ ...speechFrame, us: Math.max(0, speechFrame.us - encodeUs), note: `a speech frame, the encode (${encodeUs.toFixed(0)} µs) taken off: enqueue, tag, RMS for the echo gate` });
    pacer.close();
    enc.close();
  }

  // EVA's receive bookkeeping per packet: sequence tracking, the rate cap, the 20 s ring, the VAD's float copy.
  {
    const f = frames(pcm16, 320);
    const rx = new RtpReceiveTracker();
    const cap = new PacketRateCap(200);
    const ring = new PcmRing(16000 * 20);
    let seq = 0;
    out.push(time('EVA receive (rx tracker, cap, ring, VAD push)', 'packet', f.length, (i) => {
      rx.accept(seq++);
      cap.take(seq * 20);
      ring.write(f[i]!);
    }, 'rx tracker + rate cap + ring write (the VAD push is in the VAD rows)'));
  }

  // Level and echo gate per VAD window while EVA speaks: ring slice + RMS + the gate's 300 ms scan; per frame sent: RMS.
  {
    const ring = new PcmRing(16000 * 20);
    ring.write(pcm16.subarray(0, 16000 * 20));
    const gate = new EchoGate();
    for (let i = 0; i < 64; i++) gate.output(3000, i * 20);
    let end = VAD_WINDOW;
    out.push(time('level / echo gate', 'window', 2000, () => {
      end = end + VAD_WINDOW > ring.written ? VAD_WINDOW : end + VAD_WINDOW;
      gate.isEcho(rmsOf(ring.slice(end - VAD_WINDOW, end)), 1200);
    }, 'while EVA speaks: ring slice + RMS + the gate\'s scan'));
  }

  // Turn detector per window on a real probability sequence (computed below by the VAD run).
  const probs: number[] = [];

  // Silero through the real engine and its worker: windows for 1 and for 20 streams at once (a batch), CPU of the
  // whole process (the worker's inference included) per window.
  {
    const engine = await VadEngine.create();
    const silence = new Int16Array(VAD_WINDOW);
    for (const [streams, what] of [[1, 'speech'], [20, 'speech'], [1, 'silence'], [20, 'silence']] as const) {
      // Results are awaited, not polled: a spinning main thread would count as VAD CPU.
      let got = 0;
      let wanted = 0;
      let wake: (() => void) | null = null;
      const list = Array.from({ length: streams }, (_, s) =>
        engine.createStream((p) => {
          if (s === 0 && streams === 1 && what === 'speech') probs.push(p);
          if (++got >= wanted && wake) (wake(), (wake = null));
        }),
      );
      const until = (n: number): Promise<void> => (got >= n ? Promise.resolve() : new Promise((res) => ((wanted = n), (wake = res))));
      const windows = frames(pcm16, VAD_WINDOW);
      const per: number[] = [];
      const wall: number[] = [];
      let w = 0;
      const roundWindows = streams === 1 ? 100 : 10;
      for (let r = 0; r < 16; r++) {
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        for (let k = 0; k < roundWindows; k++) {
          const win = what === 'speech' ? windows[w++ % windows.length]! : silence;
          // The target is taken before the push: settled near-silence is answered inside push(), synchronously.
          const target = got + streams;
          for (const s of list) s.push(win);
          await until(target);
        }
        const cpu = process.cpuUsage(cpu0);
        if (r === 0) continue; // warm-up
        per.push((cpu.user + cpu.system) / (roundWindows * streams));
        wall.push(((performance.now() - t0) * 1000) / roundWindows);
      }
      for (const s of list) s.close();
      out.push({ stage: 'VAD (Silero, worker; all threads)', unit: 'window', us: median(per), rounds: per.length, perRound: roundWindows * streams, note: `${what === 'speech' ? 'speech' : 'digital silence'}, ${streams} stream${streams > 1 ? 's' : ''} per batch; process CPU` });
      log(`   VAD ${what}, ${streams} per batch: ${median(wall).toFixed(0)} µs from push to results`);
    }
    await engine.close();
  }
  {
    const turns = new TurnDetector(DEFAULT_TURN_CONFIG);
    let at = 0;
    out.push(time('turn detector', 'window', probs.length, (i) => void turns.step({ prob: probs[i]!, atMs: (at += VAD_WINDOW_MS), windowMs: VAD_WINDOW_MS, evaSpeaking: i % 3 === 0 }), `${probs.length} real Silero probabilities`));
  }

  // werift's paths through a real peer pair on loopback (both in this process): the send loop is timed; the rest
  // of the process CPU until every packet arrived is the receive path.
  out.push(...(await weriftPaths(packets(16000, pcm16))));
  return out;
}

async function weriftPaths(payloads: Buffer[]): Promise<MicroResult[]> {
  // Arrivals are awaited, not polled: a spinning loop would count as receive CPU.
  let received = 0;
  let wanted = Infinity;
  let wake: (() => void) | null = null;
  const rx = new Peer({ onAudio: () => void (++received >= wanted && wake && (wake(), (wake = null))) }, { onlyHosts: ['127.0.0.1'], additionalHosts: ['127.0.0.1'] });
  const tx = new Peer({ onAudio: () => undefined }, { onlyHosts: ['127.0.0.1'], additionalHosts: ['127.0.0.1'] });
  try {
    const answer = await rx.answer(await tx.offer());
    await tx.accept(answer);
    await Promise.race([Promise.all([rx.whenConnected, tx.whenConnected]), sleep(15_000).then(() => Promise.reject(new Error('the werift pair did not connect in 15 s')))]);
    await sleep(500);
    const seq = new RtpSequencer();
    const send: number[] = [];
    const recv: number[] = [];
    const BURST = 50;
    let p = 0;
    for (let r = 0; r < 41; r++) {
      const target = received + BURST;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let k = 0; k < BURST; k++) tx.sendAudio(payloads[p++ % payloads.length]!, seq.next(true));
      const sendUs = (performance.now() - t0) * 1000;
      if (received < target) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((res) => ((wanted = target), (wake = res), (timer = setTimeout(res, 5000))));
        clearTimeout(timer);
      }
      const cpu = process.cpuUsage(cpu0);
      if (received < target) throw new Error(`werift pair: ${target - received} of ${BURST} packets did not arrive`);
      if (r === 0) continue;
      send.push(sendUs / BURST);
      recv.push((cpu.user + cpu.system - sendUs) / BURST);
      await sleep(20);
    }
    return [
      { stage: 'werift send (RTP, SRTP, UDP)', unit: 'frame', us: median(send), rounds: send.length, perRound: BURST, note: 'Peer.sendAudio: RTP header + extensions, SRTP, UDP send' },
      { stage: 'werift receive (UDP, SRTP, RTP)', unit: 'packet', us: median(recv), rounds: recv.length, perRound: BURST, note: 'UDP → ICE → SRTP → RTP parse → track → onAudio (process CPU less the send loop)' },
    ];
  } finally {
    await tx.close();
    await rx.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// (b) EVA under load, profiled over the inspector.

class Inspector {
  private id = 0;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly listeners = new Map<string, ((params: Record<string, unknown>) => void)[]>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => this.dispatch(JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: Record<string, unknown> }));
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('inspector connection closed'));
      this.pending.clear();
    });
  }

  static async connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 512 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => (ws.once('open', () => resolve()), ws.once('error', reject)));
    return new Inspector(ws);
  }

  dispatch(m: { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: Record<string, unknown> }): void {
    if (m.id !== undefined) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error.message));
      else p?.resolve(m.result);
    } else if (m.method) {
      for (const fn of this.listeners.get(m.method) ?? []) fn(m.params ?? {});
    }
  }

  /** One command; rejects after `timeoutMs` (a worker replaced meanwhile never answers on its old session). */
  send<T>(method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 15_000): Promise<T> {
    const id = ++this.id;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`inspector: no answer to ${method} in ${timeoutMs} ms`));
      }, timeoutMs);
      const done = <A extends unknown[]>(fn: (...a: A) => void) => (...a: A) => (clearTimeout(timer), fn(...a));
      this.pending.set(id, { resolve: done(resolve as (v: unknown) => void), reject: done(reject) });
      const msg = JSON.stringify({ id, method, params });
      // A worker's session is reached through the main one (NodeWorker domain); its replies come back the same way.
      if (sessionId) this.ws.send(JSON.stringify({ id: -id, method: 'NodeWorker.sendMessageToWorker', params: { sessionId, message: msg } }));
      else this.ws.send(msg);
    });
  }

  on(method: string, fn: (params: Record<string, unknown>) => void): void {
    this.listeners.set(method, [...(this.listeners.get(method) ?? []), fn]);
  }

  close(): void {
    this.ws.close();
  }
}

interface EvaProcess {
  child: ChildProcess;
  httpUrl: string;
  inspector: Inspector;
  workers: Map<string, string>;
  stop(): Promise<void>;
}

async function startEva(entry: string, env: Record<string, string>): Promise<EvaProcess> {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'eva-stages-'));
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(EVA_|GROQ_|OLLAMA_|OPENAI_|PORT$|HOST$|NODE_OPTIONS$)/.test(k)) clean[k] = v;
  const child = spawn(process.execPath, ['--inspect=127.0.0.1:0', entry], {
    // stdin: a pipe this process holds, so that EVA exits with the bench however the bench ends.
    env: { ...clean, PORT: '0', HOST: '127.0.0.1', EVA_DATA_DIR: dataDir, EVA_LOG_LEVEL: 'warn', EVA_EXIT_ON_STDIN_CLOSE: '1', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(5000)]);
      if (!exited) child.kill('SIGKILL');
      await Promise.race([exit, sleep(2000)]);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    let errTail = '';
    const inspectorUrl = new Promise<string>((resolve) => {
      child.stderr!.on('data', (d: Buffer) => {
        errTail = (errTail + d.toString()).slice(-4000);
        const m = /Debugger listening on (ws:\/\/\S+)/.exec(errTail);
        if (m) resolve(m[1]!);
      });
    });
    const httpUrl = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`EVA did not start in 60 s: ${errTail}`)), 60_000);
      child.stdout!.on('data', (d: Buffer) => {
        out = (out + d.toString()).slice(-4000);
        const m = /EVA listening on (http:\/\/\S+)/.exec(out);
        if (m) (clearTimeout(timer), resolve(m[1]!));
      });
      child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`EVA exited with ${code}: ${errTail}`))));
    });
    const inspector = await Inspector.connect(await inspectorUrl);
    const workers = new Map<string, string>();
    inspector.on('NodeWorker.attachedToWorker', (p) => {
      const info = p.workerInfo as { url: string; title: string };
      const name = /([\w-]+)\.js$/.exec(info.url)?.[1] ?? info.title;
      workers.set(name, p.sessionId as string);
    });
    inspector.on('NodeWorker.detachedFromWorker', (p) => {
      for (const [name, sid] of workers) if (sid === p.sessionId) workers.delete(name);
    });
    inspector.on('NodeWorker.receivedMessageFromWorker', (p) => inspector.dispatch(JSON.parse(p.message as string) as never));
    await inspector.send('NodeWorker.enable', { waitForDebuggerOnStart: false });
    return { child, httpUrl, inspector, workers, stop: async () => (inspector.close(), await stop()) };
  } catch (err) {
    await stop();
    throw err;
  }
}

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** RSS and the JS heap after a full GC (the inspector's HeapProfiler.collectGarbage, twice: weak refs, finalizers). */
async function memoryAfterGc(eva: EvaProcess): Promise<{ rssMb: number; heapUsedMb: number; externalMb: number; arrayBuffersMb: number }> {
  await eva.inspector.send('HeapProfiler.collectGarbage');
  await sleep(200);
  await eva.inspector.send('HeapProfiler.collectGarbage');
  const r = await eva.inspector.send<{ result: { value: string } }>('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
  const mu = JSON.parse(r.result.value) as { heapUsed: number; external: number; arrayBuffers: number };
  return { rssMb: rssMb(eva.child.pid!), heapUsedMb: mu.heapUsed / 2 ** 20, externalMb: mu.external / 2 ** 20, arrayBuffersMb: mu.arrayBuffers / 2 ** 20 };
}

async function rtpPackets(httpUrl: string): Promise<{ received: number; sent: number; vad?: { model: number; batches: number } } | undefined> {
  try {
    const text = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    const rtp = parseRtpPackets(text);
    return rtp && { ...rtp, vad: parseVadCounters(text) };
  } catch {
    return undefined;
  }
}

async function openCalls(httpUrl: string): Promise<number> {
  try {
    const text = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    return Number(/^eva_calls_open\s+(\S+)/m.exec(text)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** CPU time of one thread (ns, from the scheduler's own accounting), or of the whole process with no tid. */
function cpuNs(pid: number, tid?: number): number {
  if (tid === undefined) {
    let sum = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) sum += cpuNs(pid, Number(t));
    return sum;
  }
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return 0; // the thread ended
  }
}

interface ThreadCapture {
  thread: string;
  profile: CpuProfile;
  /** The thread's CPU over the profile (ms), from /proc; undefined when its OS thread id was not found. */
  cpuMs?: number;
}

/**
 * Profiles EVA's main thread and every worker thread for `ms`, and reads each thread's CPU over the same time from
 * /proc (a worker tells its OS thread id through the inspector): the sampler's time is wall time, which on a busy
 * machine includes time the thread waited for a core, so stage times are scaled to the thread's real CPU.
 */
async function profileThreads(
  eva: EvaProcess,
  ms: number,
  samplingUs: number,
): Promise<{ threads: ThreadCapture[]; processCpuMs: number; wallMs: number; quiet: { wallMs: number; processCpuMs: number; otherThreadsMs: number } }> {
  const pid = eva.child.pid!;
  const targets: { thread: string; sid?: string; tid?: number }[] = [{ thread: 'main', tid: pid }, ...[...eva.workers].map(([thread, sid]) => ({ thread, sid }))];
  for (const t of targets) {
    await eva.inspector.send('Profiler.enable', {}, t.sid, 5000);
    await eva.inspector.send('Profiler.setSamplingInterval', { interval: samplingUs }, t.sid, 5000);
    if (t.sid) {
      const r = await eva.inspector
        .send<{ result: { value?: string } }>('Runtime.evaluate', { expression: "require('fs').readlinkSync('/proc/thread-self')", includeCommandLineAPI: true, returnByValue: true }, t.sid)
        .catch(() => undefined);
      const tid = Number(/task\/(\d+)/.exec(r?.result.value ?? '')?.[1]);
      if (Number.isInteger(tid)) t.tid = tid;
    }
  }
  const before = targets.map((t) => (t.tid !== undefined ? cpuNs(pid, t.tid) : NaN));
  const proc0 = cpuNs(pid);
  const t0 = performance.now();
  for (const t of targets) await eva.inspector.send('Profiler.start', {}, t.sid, 5000);
  await sleep(ms);
  const stopped = await Promise.all(targets.map((t) => eva.inspector.send<{ profile: CpuProfile }>('Profiler.stop', {}, t.sid, 10_000).catch((err: unknown) => err as Error)));
  const wallMs = performance.now() - t0;
  const processCpuMs = (cpuNs(pid) - proc0) / 1e6;
  const threads: ThreadCapture[] = [];
  targets.forEach((t, i) => {
    const r = stopped[i]!;
    // A worker replaced during the window (its supervisor found it hung) has no profile: its CPU is then in "other threads".
    if (r instanceof Error) return void log(`   ! no profile of ${t.thread}: ${r.message}`);
    threads.push({ thread: t.thread, profile: r.profile, cpuMs: t.tid !== undefined ? (cpuNs(pid, t.tid) - before[i]!) / 1e6 : undefined });
  });
  // The same threads as long again, the profiler off.
  const quiet0 = targets.map((t) => (t.tid !== undefined ? cpuNs(pid, t.tid) : NaN));
  const qp0 = cpuNs(pid);
  const q0 = performance.now();
  await sleep(ms);
  const quietWallMs = performance.now() - q0;
  const quietProcessMs = (cpuNs(pid) - qp0) / 1e6;
  const quietKnownMs = targets.reduce((sum, t, i) => sum + (t.tid !== undefined ? (cpuNs(pid, t.tid) - quiet0[i]!) / 1e6 : 0), 0);
  return { threads, processCpuMs, wallMs, quiet: { wallMs: quietWallMs, processCpuMs: quietProcessMs, otherThreadsMs: quietProcessMs - quietKnownMs } };
}

interface StagesArgs {
  calls: number[];
  windowMs: number;
  samplingUs: number;
  micro: boolean;
  profile: boolean;
  outDir: string;
  compare?: string;
  report?: string;
  keepProfiles: boolean;
  /** The EVA entry point to profile (another build's, for a before/after run). */
  evaEntry: string;
}

const USAGE = `usage: node dist/bench/stages.js [options]   (after npm run build)
  --calls 10,20        concurrent calls to profile EVA at (default 10,20; at most 40 on a shared 2-core box)
  --window MS          measuring window per step (default 16000): the profile runs for the first half less a
                       second, then as long again without the profiler
  --sampling US        the profiler's sampling interval (default 250)
  --micro-only         only the micro-benchmarks
  --profile-only       only EVA under load
  --compare FILE       an earlier *-stages.json: print a before/after table
  --report FILE        measure nothing: print the report of an earlier *-stages.json (with --compare, against another)
  --keep-profiles      also write each step's .cpuprofile files (open them in Chrome DevTools)
  --out DIR            where results go (default bench/results)
  --eva-entry FILE     the EVA entry point to profile (default dist/server/main.js), e.g. an older build's for a
                       before/after pair; an EVA without eva_rtp_packets_total is taken to send and receive 50 a second`;

export function parseStagesArgs(argv: readonly string[]): StagesArgs {
  const a: StagesArgs = { calls: [10, 20], windowMs: 16_000, samplingUs: 250, micro: true, profile: true, outDir: join(ROOT, 'bench', 'results'), keepProfiles: false, evaEntry: join(ROOT, 'dist', 'server', 'main.js') };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    const int = (v: string, min: number): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`${flag}: expected an integer ≥ ${min}, got "${v}"`);
      return n;
    };
    switch (flag) {
      case '--calls': a.calls = value().split(',').map((v) => int(v, 1)); break;
      case '--window': a.windowMs = int(value(), 1000); break;
      case '--sampling': a.samplingUs = int(value(), 50); break;
      case '--micro-only': a.profile = false; break;
      case '--profile-only': a.micro = false; break;
      case '--compare': a.compare = value(); break;
      case '--report': a.report = value(); break;
      case '--keep-profiles': a.keepProfiles = true; break;
      case '--out': a.outDir = value(); break;
      case '--eva-entry': a.evaEntry = value(); break;
      case '--help': case '-h': throw new Error(USAGE);
      default: throw new Error(`unknown option ${flag}\n${USAGE}`);
    }
  }
  if (!a.micro && !a.profile) throw new Error('--micro-only and --profile-only exclude each other');
  return a;
}

async function profileUnderLoad(args: StagesArgs, result: StagesResult, write: (name: string, body: string) => void): Promise<void> {
  const p = parseBenchProfile('groq');
  const groq = await startGroq({ profile: p.latency, transcript: 'Yes.', reply: () => REPLIES.short });
  let eva: EvaProcess | undefined;
  try {
    eva = await startEva(args.evaEntry, { ...evaEnv(p, { groq: groq.url, openai: groq.openaiUrl, ollama: '' }), EVA_MAX_CALLS: '200', EVA_WORKERS: '1' });
    // One process (EVA_WORKERS=1): per-call costs are the same in each worker of a cluster, and one process is one
    // inspector, one /proc entry.
    log(`   EVA up at ${eva.httpUrl} (pid ${eva.child.pid}, inspector attached; workers: ${[...eva.workers.keys()].join(', ') || 'none yet'})`);
    await sleep(1000);
    const base = await memoryAfterGc(eva);
    result.baseline = { rssMb: base.rssMb, heapUsedMb: base.heapUsedMb };
    const clips = loadUtterances().filter((u) => u.kind === 'short').map((u) => u.path);
    for (const calls of args.calls) {
      const settleMs = 4000;
      let captured: Awaited<ReturnType<typeof profileThreads>> | undefined;
      let memory: Awaited<ReturnType<typeof memoryAfterGc>> | undefined;
      let rates: MeasuredRates = {};
      const e = eva;
      // The profile runs inside the load step's measuring window: once the calls are up, after the GC and the
      // RSS reading (during the settle), for the window less a second at each end.
      const watcher = (async () => {
        const deadline = performance.now() + 30_000 + calls * 1000;
        while ((await openCalls(e.httpUrl)) < calls && performance.now() < deadline) await sleep(200);
        await sleep(1000);
        memory = await memoryAfterGc(e);
        await sleep(settleMs);
        const before = await rtpPackets(e.httpUrl);
        const t0 = performance.now();
        captured = await profileThreads(e, (args.windowMs - 2000) / 2, args.samplingUs);
        const after = await rtpPackets(e.httpUrl);
        const s = (performance.now() - t0) / 1000;
        if (before && after) rates = { packet: (after.received - before.received) / calls / s, frame: (after.sent - before.sent) / calls / s };
        if (before?.vad && after?.vad && after.vad.batches > before.vad.batches) {
          const model = after.vad.model - before.vad.model;
          rates = { ...rates, modelWindows: model / calls / s, windowsPerBatch: model / (after.vad.batches - before.vad.batches) };
        }
      })();
      const load = await runLoad({ httpUrl: eva.httpUrl, evaPid: eva.child.pid, levels: [calls], clips, settleMs: settleMs + 1500, windowMs: args.windowMs, log: (l) => log(`   ${l}`) });
      await watcher.catch((err: unknown) => log(`   ! profile at ${calls} calls: ${(err as Error).message}`));
      const step = load.steps[0];
      const talking = step?.talkingFraction ?? 0.4;
      const threads: ThreadProfile[] = [];
      for (const { thread, profile, cpuMs } of captured?.threads ?? []) {
        if (args.keepProfiles) write(`${calls}-${thread.replace(/[^\w-]/g, '_')}.cpuprofile`, JSON.stringify(profile));
        const t = stageTimes(profile, thread === 'main' ? STAGE_RULES : workerRules(thread));
        const busy = [...t.byStage.values()].reduce((sum, v) => sum + v.ms, 0);
        threads.push(threadProfile(thread, t, busy, cpuMs, calls, talking, rates));
        if (thread === 'main') for (const f of t.top.slice(0, 12)) log(`     ${f.ms.toFixed(1).padStart(8)} ms sampled  ${f.stage.padEnd(44)} ${f.fn}  ${f.url}`);
      }
      if (captured) {
        // CPU of the threads nobody profiled: V8's GC helpers, libuv's pool, the inspector's own.
        const rest = captured.processCpuMs - threads.reduce((sum, t) => sum + (t.cpuMs ?? 0), 0);
        const d = captured.wallMs;
        threads.push({ thread: 'other threads', durationMs: d, busyMs: rest, cpuMs: rest, rows: stageRows(new Map([['other threads (GC helpers, libuv, inspector)', { unit: 'call·s', ms: rest }]]), d, calls, talking, rates) });
      }
      const durationMs = threads[0]?.durationMs ?? 0;
      await sleep(1500); // the load clients hang up
      const after = await memoryAfterGc(eva);
      const perCall = (v: number, b: number): number => (v - b) / calls;
      result.profiles.push({
        calls,
        load: step,
        rates,
        threads,
        rows: mergeRows(threads.map((t) => t.rows), durationMs, calls),
        sampledPctPerCall: durationMs > 0 ? (threads.reduce((sum, t) => sum + (t.cpuMs ?? t.busyMs), 0) / durationMs / calls) * 100 : 0,
        memory: memory && {
          rssMb: memory.rssMb,
          rssPerCallMb: perCall(memory.rssMb, base.rssMb),
          heapUsedPerCallMb: perCall(memory.heapUsedMb, base.heapUsedMb),
          externalPerCallMb: perCall(memory.externalMb, base.externalMb),
          arrayBuffersPerCallMb: perCall(memory.arrayBuffersMb, base.arrayBuffersMb),
        },
        rssAfterCloseMb: after.rssMb - base.rssMb,
        unprofiled: captured && {
          pctPerCall: (captured.quiet.processCpuMs / captured.quiet.wallMs / calls) * 100,
          otherThreadsPct: (captured.quiet.otherThreadsMs / captured.quiet.wallMs) * 100,
        },
      });
    }
  } finally {
    await eva?.stop();
    await groq.close();
  }
}

/** A thread's stage rows, its sampled times scaled to the CPU it really used (when known). */
function threadProfile(thread: string, t: ReturnType<typeof stageTimes>, busyMs: number, cpuMs: number | undefined, calls: number, talking: number, rates: MeasuredRates): ThreadProfile {
  const scale = cpuMs !== undefined && busyMs > 0 ? cpuMs / busyMs : 1;
  const scaled = new Map([...t.byStage].map(([k, v]) => [k, { unit: v.unit, ms: v.ms * scale }]));
  return { thread, durationMs: t.durationMs, busyMs, cpuMs, rows: stageRows(scaled, t.durationMs, calls, talking, rates) };
}

/** A worker thread's samples all belong to its stage (the VAD's inference, eSpeak's synthesis), idle aside. */
function workerRules(thread: string): StageRule[] {
  if (thread.includes('vad')) return [{ stage: 'VAD inference (worker)', unit: 'window', url: '' }];
  if (thread.includes('espeak')) return [{ stage: 'TTS eSpeak (worker)', unit: 'speech frame', url: '' }];
  return [{ stage: 'other workers (store checkpoint)', unit: 'call·s', url: '' }];
}

export async function main(argv: readonly string[]): Promise<number> {
  let args: StagesArgs;
  try {
    args = parseStagesArgs(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (args.report) {
    const r = JSON.parse(readFileSync(args.report, 'utf8')) as StagesResult;
    if (args.compare) {
      const b = JSON.parse(readFileSync(args.compare, 'utf8')) as StagesResult;
      r.before = { startedAt: b.startedAt, gitCommit: b.machine.gitCommit, micro: b.micro, profiles: b.profiles };
    }
    log(stagesReport(r));
    return 0;
  }
  const started = new Date();
  const t0 = performance.now();
  const rates = unitRates(0.4);
  const result: StagesResult = {
    version: 1,
    startedAt: started.toISOString(),
    durationS: 0,
    machine: machineInfo(),
    config: {
      samplingUs: args.samplingUs,
      windowMs: args.windowMs,
      calls: args.profile ? args.calls : [],
      loadProfile: 'groq',
      rates: { packet: `${rates.packet}/s per call`, frame: `${rates.frame}/s per call`, 'speech frame': '50/s × the share of time EVA talks', window: `${rates.window}/s per call`, 'call·s': 'one call for one second' },
    },
    micro: [],
    profiles: [],
    notes: [
      'micro: median over 15 rounds (16 for the VAD) of the mean per unit in a round; one process, nothing else of EVA running',
      'profiles: V8 sampling profiler over the inspector on EVA\'s main thread and each worker thread; a sample goes to the innermost frame a stage rule matches (bench/stages.ts STAGE_RULES); per-packet and per-frame units counted by EVA over the profile (eva_rtp_packets_total; without it, 50 packets and 50 frames a second per call), 31.25 VAD windows a second',
      'memory: RSS and the JS heap after a forced GC (HeapProfiler.collectGarbage), with the calls up, less the same before any call, per call',
    ],
  };
  if (args.compare) {
    const b = JSON.parse(readFileSync(args.compare, 'utf8')) as StagesResult;
    result.before = { startedAt: b.startedAt, gitCommit: b.machine.gitCommit, micro: b.micro, profiles: b.profiles };
  }
  mkdirSync(args.outDir, { recursive: true });
  const base = `${stamp(result.startedAt)}-stages`;
  const write = (name: string, body: string): void => writeFileSync(join(args.outDir, `${base}-${name}`), body);
  if (args.micro) {
    log('== stages: micro-benchmarks');
    result.micro = await microBenchmarks();
    for (const m of result.micro) log(`   ${m.stage} (per ${m.unit}): ${m.us.toFixed(1)} µs — ${m.note ?? ''}`);
  }
  if (args.profile) {
    log(`== stages: EVA under load, profiled at ${args.calls.join(', ')} calls`);
    await profileUnderLoad(args, result, write);
  }
  result.durationS = (performance.now() - t0) / 1000;
  const round = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v);
  writeFileSync(join(args.outDir, `${base}.json`), JSON.stringify(result, round, 2) + '\n');
  const text = stagesReport(result);
  writeFileSync(join(args.outDir, `${base}.txt`), text);
  log('\n' + text);
  log(`wrote ${join(args.outDir, base)}.json and .txt`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    // werift's DTLS retransmission timers keep the process alive for ~30 s after the pair closed.
    (code) => setTimeout(() => process.exit(code), 100),
    (err: unknown) => {
      process.stderr.write(`stages failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
