// Load: many concurrent WebRTC calls against one EVA, ramped (10, 20, 40, 80 …) until it can no longer keep up.
// Each call talks on a loop — a clip, EVA's answer, a pause sized so EVA talks ~40 % of the time — and we watch:
//   - the server's p99 event-loop lag, from EVA's `GET /metrics` (`eva_event_loop_lag_seconds{quantile="0.99"}`,
//     reset by each scrape: one scrape opens the window, one closes it); when that endpoint is missing, the p99
//     jitter of frame arrivals at the clients stands in for it, and the report says so; with EVA_WORKERS > 1
//     (`--workers N`) each worker's lag (its `worker` label), the step judged by the worst;
//   - audio underruns: a gap of more than 60 ms after a speech frame received on a call (EVA sends a frame every
//     20 ms while it talks, and a few encoded zero frames after it, before any DTX silence, so any such gap is a
//     stall somewhere on the path); frame jitter is each packet's arrival against its RTP timestamp, so DTX's
//     400 ms between silence packets is not counted as jitter. The callers share the machine, so their own event
//     loop stalls too (descheduled, GC, a burst of packets): a gap is EVA's only for what is left of it once the
//     time the callers' loop was stalled inside it is taken out (StallLog); the rest are counted apart
//     (`clientStallUnderruns`), reported, and do not end the ramp;
//   - CPU of the EVA processes (from /proc/<pid>/stat; the workers' pids from /health) and RSS per call (/proc/<pid>/status).
// Ramping stops at the first step with p99 lag > 20 ms or any underrun; "calls held" is the last step that passed.
//
// The callers run in a child process (this file with `--client`), not in the bench's own event loop, and cheaper
// than ProbeCall: clips are Opus-encoded once and sent as packets, and received packets are classified by size
// instead of decoded (Opus speech frames here are 45–110 bytes, digital silence 3 bytes). They still cost CPU
// on the same machine — werift's send + receive path is ~0.2 ms per packet — and the report gives their CPU too.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { OpusEncoder, enableFec } from '../media/opus.js';
import { framesDue } from '../media/pacer-core.js';
import { DTX_HANGOVER_FRAMES, dtxSends } from '../media/pacer.js';
import { Peer, answerAsksDtx } from '../media/peer.js';
import { RtpSequencer } from '../media/rtp.js';
import { decodeWav } from '../media/wav.js';
import { UNDERRUN_GAP_MS, summarize, type Summary } from './latency.js';

/** Received Opus packets at least this big carry sound (speech frames are 45–110 bytes; digital silence is 3). */
export const AUDIBLE_PACKET_BYTES = 20;
/** Target share of time EVA talks on each call. */
export const TALK_FRACTION = 0.4;
/** Ramp stops above this server p99 event-loop lag (the project's target). */
export const LAG_LIMIT_MS = 20;

export interface LoadStep {
  calls: number;
  /** Calls up during the window. */
  connected: number;
  failedConnects: number;
  /** Calls EVA ended since the ramp began (bye or closed socket), and why. */
  dropped: number;
  dropReasons?: Record<string, number>;
  /** Worst stall of the clients' event loop while they connected the new calls, ms. */
  clientRampStallMs?: number;
  windowS: number;
  /** Server p99 event-loop lag over the window (ms), and where it came from. */
  lagP99Ms?: number;
  lagMaxMs?: number;
  lagSource: 'server /metrics' | 'client frame jitter (no /metrics)';
  /** With EVA_WORKERS > 1: each worker's p99 lag (ms, by worker index); lagP99Ms is the worst of them. */
  lagP99ByWorkerMs?: Record<string, number>;
  underruns: number;
  /** Gaps over the limit that the load clients' own stalled event loop accounts for (not counted in `underruns`). */
  clientStallUnderruns?: number;
  maxGapMs: number;
  /** p99 of (gap between received frames − 20 ms), over every call. */
  jitterP99Ms: number;
  /** EVA's CPU over the window, % of one core (all its processes: the supervisor and every worker). */
  evaCpuPct?: number;
  /** The load clients' CPU over the window, % of one core. */
  clientCpuPct: number;
  /**
   * Share of the whole machine's CPU time the hypervisor gave to other guests over the window (`steal` in
   * /proc/stat), %. A ramp run while it is high measures the neighbours, not EVA: the report flags it.
   */
  stealPct?: number;
  clientLagP99Ms: number;
  evaRssMb?: number;
  /** (RSS − RSS with no calls) / calls. */
  rssPerCallMb?: number;
  /** (RSS − RSS at the previous step) / calls added: the marginal cost of a call, without the first call's warm-up. */
  rssMarginalMb?: number;
  /** Share of the window EVA was audible, averaged over calls. */
  talkingFraction: number;
  turns: number;
  noReply: number;
  perceived: Summary;
  passed: boolean;
  reason?: string;
}

export interface LoadResult {
  levels: number[];
  steps: LoadStep[];
  callsHeld: number;
  stopReason: string;
  baselineRssMb?: number;
  notes: string[];
  /** EVA_WORKERS of the EVA measured (bench/run.ts `--workers`); absent: one process. */
  workers?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Pure helpers (tested).

/**
 * When the load clients' event loop was stalled: a timer ticks every `tickMs`, and a tick later than twice that
 * marks the time since the previous one (less one tick) as stalled. Spans older than `keepMs` are forgotten.
 */
export class StallLog {
  private readonly spans: [number, number][] = [];
  private last: number;
  constructor(
    private readonly tickMs = 10,
    private readonly keepMs = 120_000,
    now = performance.now(),
  ) {
    this.last = now;
  }

  tick(now: number): void {
    if (now - this.last > 2 * this.tickMs) this.spans.push([this.last + this.tickMs, now]);
    this.last = now;
    while (this.spans.length > 0 && this.spans[0]![1] < now - this.keepMs) this.spans.shift();
  }

  /** ms of [from, to] during which the loop was stalled. */
  overlap(from: number, to: number): number {
    let ms = 0;
    for (const [a, b] of this.spans) ms += Math.max(0, Math.min(b, to) - Math.max(a, from));
    return ms;
  }
}

/**
 * Splits gaps over `limitMs` (each ending at `endMs`, `gapMs` long) into EVA's and the clients': a gap is EVA's
 * when it is still over the limit with the clients' own stall inside it taken out.
 */
export function splitGaps(gaps: readonly { endMs: number; gapMs: number }[], stalls: Pick<StallLog, 'overlap'>, limitMs = UNDERRUN_GAP_MS): { eva: number; client: number } {
  let eva = 0;
  let client = 0;
  for (const g of gaps) {
    if (g.gapMs <= limitMs) continue;
    if (g.gapMs - stalls.overlap(g.endMs - g.gapMs, g.endMs) > limitMs) eva++;
    else client++;
  }
  return { eva, client };
}

/**
 * Quantiles of `eva_event_loop_lag_seconds` in a Prometheus exposition, in ms, per worker (its `worker` label;
 * `""` for a process of its own, EVA_WORKERS=1).
 */
export function parseWorkerLag(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const re = /^eva_event_loop_lag_seconds\{([^}]*)\}\s+(\S+)/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const q = /quantile="([^"]+)"/.exec(m[1]!)?.[1];
    const worker = /worker="([^"]*)"/.exec(m[1]!)?.[1] ?? '';
    const v = Number(m[2]);
    if (q !== undefined && Number.isFinite(v)) (out[worker] ??= {})[q] = v * 1000;
  }
  return out;
}

/** Quantiles of `eva_event_loop_lag_seconds` in ms: with several workers, the worst worker's per quantile. */
export function parseLagQuantiles(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const qs of Object.values(parseWorkerLag(text))) for (const [q, v] of Object.entries(qs)) out[q] = Math.max(out[q] ?? 0, v);
  return out;
}

/** utime + stime of a /proc/<pid>/stat line, in clock ticks (the command name may hold spaces and parentheses). */
export function parseProcStat(text: string): number {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", fields start at 3 (state): utime is field 14, stime 15 → indexes 11 and 12 here.
  return Number(rest[11]) + Number(rest[12]);
}

/** VmRSS of a /proc/<pid>/status text, in MB. */
export function parseRssMb(text: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) / 1024 : undefined;
}

/** The aggregate `cpu` line of /proc/stat: all ticks, and the ticks stolen by the hypervisor (8th value). */
export function parseCpuStat(text: string): { total: number; steal: number } | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  // user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (v.length < 8 || v.some((x) => !Number.isFinite(x))) return undefined;
  return { total: v.reduce((a, b) => a + b, 0), steal: v[7]! };
}

/** Stolen share of the machine's CPU time between two /proc/stat readings, %. */
export function stealPercent(before: { total: number; steal: number }, after: { total: number; steal: number }): number {
  const total = after.total - before.total;
  return total > 0 ? ((after.steal - before.steal) / total) * 100 : 0;
}

/** The largest stolen CPU share of a ramp's steps, or undefined when none was read. */
export function worstSteal(steps: readonly { stealPct?: number }[]): number | undefined {
  const read = steps.map((s) => s.stealPct).filter((v): v is number => v !== undefined);
  return read.length ? Math.max(...read) : undefined;
}

/** Above this much stolen CPU in a step, the report says the ramp measured the host as much as EVA. */
export const STEAL_WARN_PCT = 5;

function readCpuStat(): { total: number; steal: number } | undefined {
  try {
    return parseCpuStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/** CPU % of one core between two tick readings `wallMs` apart (USER_HZ = 100 on Linux). */
export function cpuPercent(ticksBefore: number, ticksAfter: number, wallMs: number, hz = 100): number {
  return wallMs > 0 ? (((ticksAfter - ticksBefore) / hz) * 1000 * 100) / wallMs : 0;
}

/** Why a step fails, or undefined when it passed. */
export function stepProblem(s: Pick<LoadStep, 'lagP99Ms' | 'jitterP99Ms' | 'underruns' | 'connected' | 'calls' | 'dropped'>, lagLimitMs = LAG_LIMIT_MS): string | undefined {
  if (s.connected < s.calls) return `${s.calls - s.connected} of ${s.calls} calls did not connect`;
  if (s.dropped > 0) return `EVA ended ${s.dropped} calls`;
  if (s.underruns > 0) return `${s.underruns} audio underruns (gaps > ${UNDERRUN_GAP_MS} ms)`;
  const lag = s.lagP99Ms ?? s.jitterP99Ms;
  if (lag > lagLimitMs) return `p99 event-loop lag ${lag.toFixed(1)} ms > ${lagLimitMs} ms`;
  return undefined;
}

/** 10, 20, 40, 80 … up to max (doubling from `start`). */
/** Call counts of the ramp: doubling from `start` (10, 20, 40, 80 …), or with `step` start, start+step, … ; then `max`. */
export function rampLevels(start: number, max: number, step?: number): number[] {
  const out: number[] = [];
  for (let n = start; n <= max; n = step ? n + step : n * 2) out.push(n);
  if (out[out.length - 1] !== max && max > start) out.push(max);
  return out;
}

/**
 * What to subtract from EVA's exported lag: its p50 on an idle loop, when that is Node's 10 ms sampling interval
 * (8–13 ms), else nothing (an exporter that already subtracts it reads ~0).
 */
export function idleLagOffset(idleP50Ms: number | undefined): number {
  return idleP50Ms !== undefined && idleP50Ms >= 8 && idleP50Ms <= 13 ? 10 : 0;
}

/** A fixed 1 ms histogram (0–2000 ms) whose percentiles cost nothing to keep. */
export class GapHistogram {
  readonly counts = new Uint32Array(2001);
  total = 0;
  add(ms: number): void {
    this.counts[Math.max(0, Math.min(2000, Math.round(ms)))]!++;
    this.total++;
  }
  percentile(p: number): number {
    if (this.total === 0) return 0;
    const rank = Math.ceil((p / 100) * this.total);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return i;
    }
    return 2000;
  }
  merge(o: { counts: ArrayLike<number>; total: number }): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += o.counts[i] ?? 0;
    this.total += o.total;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The controller, in the bench process.

export interface LoadOptions {
  httpUrl: string;
  /** EVA's pid, for /proc readings (undefined: no CPU/RSS figures). */
  evaPid?: number;
  levels: number[];
  /** Clips the callers say (16 kHz mono WAV paths). */
  clips: string[];
  settleMs: number;
  windowMs: number;
  lagLimitMs?: number;
  log(line: string): void;
  signal?: AbortSignal;
}

interface ChildStats {
  connected: number;
  dropped: number;
  dropReasons: Record<string, number>;
  underruns: number;
  clientStallUnderruns: number;
  maxGapMs: number;
  gaps: { counts: number[]; total: number };
  audibleMs: number;
  callMs: number;
  turns: number;
  noReply: number;
  perceived: number[];
  cpuMs: number;
  lagP99Ms: number;
}

type ChildMsg = { type: 'ramped'; connected: number; failed: number; errors: string[]; maxStallMs: number } | { type: 'measured'; stats: ChildStats } | { type: 'error'; message: string };

function readOne(pid: number): { ticks?: number; rssMb?: number } {
  try {
    return { ticks: parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8')), rssMb: parseRssMb(readFileSync(`/proc/${pid}/status`, 'utf8')) };
  } catch {
    return {};
  }
}

/** CPU ticks and RSS of EVA's processes, added up (one, or the supervisor and its workers). */
function readProc(pids: readonly number[] | number | undefined): { ticks?: number; rssMb?: number } {
  const list = pids === undefined ? [] : typeof pids === 'number' ? [pids] : pids;
  const all = list.map(readOne);
  if (!all.length || all.some((p) => p.ticks === undefined)) return {};
  return { ticks: all.reduce((n, p) => n + p.ticks!, 0), rssMb: all.every((p) => p.rssMb !== undefined) ? all.reduce((n, p) => n + p.rssMb!, 0) : undefined };
}

/** EVA's pid and, with EVA_WORKERS > 1, its workers' (from /health). */
async function evaPids(httpUrl: string, evaPid: number | undefined): Promise<number[] | undefined> {
  if (evaPid === undefined) return undefined;
  try {
    const res = await fetch(`${httpUrl}/health`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { workers?: { pid: number | null }[] };
    const workers = (body.workers ?? []).map((w) => w.pid).filter((p): p is number => typeof p === 'number' && p !== evaPid);
    return [evaPid, ...workers];
  } catch {
    return [evaPid];
  }
}

async function scrapeLag(httpUrl: string): Promise<{ all: Record<string, number>; byWorker: Record<string, Record<string, number>> } | null> {
  try {
    const res = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return null;
    const text = await res.text();
    const all = parseLagQuantiles(text);
    return Object.keys(all).length ? { all, byWorker: parseWorkerLag(text) } : null;
  } catch {
    return null;
  }
}

class ClientChild {
  private readonly child: ChildProcess;
  private pending: ((m: ChildMsg) => void) | null = null;
  private exited = false;

  constructor(config: { wsUrl: string; clips: string[] }) {
    this.child = fork(fileURLToPath(import.meta.url), ['--client', JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m) => {
      const p = this.pending;
      this.pending = null;
      p?.(m as ChildMsg);
    });
    this.child.on('exit', () => {
      this.exited = true;
      const p = this.pending;
      this.pending = null;
      p?.({ type: 'error', message: 'load client process exited' });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  request(cmd: unknown, timeoutMs: number): Promise<ChildMsg> {
    if (this.exited) return Promise.resolve({ type: 'error', message: 'load client process exited' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending = null;
        resolve({ type: 'error', message: `load client did not answer in ${timeoutMs} ms` });
      }, timeoutMs);
      this.pending = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.child.send(cmd as object);
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    await this.request({ cmd: 'stop' }, 10_000);
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const lagLimit = opts.lagLimitMs ?? LAG_LIMIT_MS;
  const result: LoadResult = { levels: opts.levels, steps: [], callsHeld: 0, stopReason: 'reached the last level', notes: [] };
  result.baselineRssMb = readProc(await evaPids(opts.httpUrl, opts.evaPid)).rssMb;
  const hasMetrics = (await scrapeLag(opts.httpUrl)) !== null;
  let lagOffsetMs = 0;
  if (!hasMetrics) {
    result.notes.push('EVA has no GET /metrics with eva_event_loop_lag_seconds: lag is the p99 jitter of frame arrivals at the clients');
  } else {
    // Node's monitorEventLoopDelay records the whole timer interval, so an idle loop sampled every 10 ms reads
    // ~10 ms. Read it idle for a second: if that is what EVA exports, subtract it from every reading.
    await new Promise((r) => setTimeout(r, 1000));
    const idle = (await scrapeLag(opts.httpUrl))?.all;
    lagOffsetMs = idleLagOffset(idle?.['0.5']);
    if (lagOffsetMs) result.notes.push(`EVA's eva_event_loop_lag_seconds reads ${idle!['0.5']!.toFixed(1)} ms at p50 when idle (Node's sampling interval is included): ${lagOffsetMs} ms is subtracted from the lag figures`);
  }
  result.notes.push('the load clients run in a child process on the same machine; their CPU is in clientCpuPct');
  result.notes.push(
    `underruns are EVA's: a gap over ${UNDERRUN_GAP_MS} ms with the load clients' own event-loop stalls inside it taken out; "(+N)" counts the gaps that those stalls account for, which do not end the ramp`,
  );
  const child = new ClientChild({ wsUrl: opts.httpUrl.replace(/^http/, 'ws') + '/ws', clips: opts.clips });
  try {
    for (const calls of opts.levels) {
      if (opts.signal?.aborted) {
        result.stopReason = 'interrupted';
        break;
      }
      opts.log(`load: ramping to ${calls} calls`);
      const ramped = await child.request({ cmd: 'ramp', calls }, 30_000 + calls * 1000);
      if (ramped.type === 'error') throw new Error(ramped.message);
      if (ramped.type !== 'ramped') throw new Error('unexpected reply from the load client');
      if (ramped.errors.length) opts.log(`load: ${ramped.failed} calls failed to connect: ${ramped.errors.slice(0, 3).join('; ')}`);
      await new Promise((r) => setTimeout(r, opts.settleMs));
      await scrapeLag(opts.httpUrl); // resets the server's lag window
      const pids = await evaPids(opts.httpUrl, opts.evaPid);
      const evaBefore = readProc(pids);
      const statBefore = readCpuStat();
      const t0 = performance.now();
      const measured = await child.request({ cmd: 'measure', ms: opts.windowMs }, opts.windowMs + 20_000);
      const wallMs = performance.now() - t0;
      const evaAfter = readProc(pids);
      const statAfter = readCpuStat();
      const scraped = hasMetrics ? await scrapeLag(opts.httpUrl) : null;
      const lag = scraped?.all;
      if (measured.type !== 'measured') throw new Error(measured.type === 'error' ? measured.message : 'unexpected reply from the load client');
      const s = measured.stats;
      const gaps = new GapHistogram();
      gaps.merge(s.gaps);
      const step: LoadStep = {
        calls,
        connected: s.connected,
        failedConnects: ramped.failed,
        dropped: s.dropped,
        dropReasons: s.dropReasons,
        clientRampStallMs: ramped.maxStallMs,
        windowS: wallMs / 1000,
        lagSource: lag ? 'server /metrics' : 'client frame jitter (no /metrics)',
        underruns: s.underruns,
        clientStallUnderruns: s.clientStallUnderruns,
        maxGapMs: s.maxGapMs,
        jitterP99Ms: Math.max(0, gaps.percentile(99) - 20),
        clientCpuPct: (s.cpuMs / wallMs) * 100,
        clientLagP99Ms: s.lagP99Ms,
        talkingFraction: s.callMs > 0 ? s.audibleMs / s.callMs : 0,
        turns: s.turns,
        noReply: s.noReply,
        perceived: summarize(s.perceived),
        passed: false,
      };
      if (lag) {
        if (lag['0.99'] !== undefined) step.lagP99Ms = Math.max(0, lag['0.99'] - lagOffsetMs);
        if (lag['1'] !== undefined) step.lagMaxMs = Math.max(0, lag['1'] - lagOffsetMs);
        const workers = Object.entries(scraped!.byWorker).filter(([w, qs]) => w !== '' && qs['0.99'] !== undefined);
        if (workers.length > 1) step.lagP99ByWorkerMs = Object.fromEntries(workers.map(([w, qs]) => [w, Math.max(0, qs['0.99']! - lagOffsetMs)]));
      }
      if (evaBefore.ticks !== undefined && evaAfter.ticks !== undefined) step.evaCpuPct = cpuPercent(evaBefore.ticks, evaAfter.ticks, wallMs);
      if (statBefore && statAfter) step.stealPct = stealPercent(statBefore, statAfter);
      if (evaAfter.rssMb !== undefined) {
        step.evaRssMb = evaAfter.rssMb;
        if (result.baselineRssMb !== undefined && calls > 0) step.rssPerCallMb = (evaAfter.rssMb - result.baselineRssMb) / calls;
        const prev = result.steps[result.steps.length - 1];
        if (prev?.evaRssMb !== undefined && calls > prev.calls) step.rssMarginalMb = (evaAfter.rssMb - prev.evaRssMb) / (calls - prev.calls);
      }
      step.reason = stepProblem(step, lagLimit);
      step.passed = step.reason === undefined;
      result.steps.push(step);
      opts.log(
        `load: ${calls} calls: lag p99 ${fmt(step.lagP99Ms ?? step.jitterP99Ms)} ms (${step.lagSource}${step.lagP99ByWorkerMs ? `; by worker ${Object.entries(step.lagP99ByWorkerMs).map(([w, v]) => `${w}: ${fmt(v)}`).join(', ')}` : ''}), underruns ${step.underruns}${step.clientStallUnderruns ? ` (+${step.clientStallUnderruns} in the clients' own stalls)` : ''}, ` +
          `EVA CPU ${fmt(step.evaCpuPct)} %, clients CPU ${fmt(step.clientCpuPct)} % (their lag p99 ${fmt(step.clientLagP99Ms)} ms), RSS/call ${fmt(step.rssPerCallMb, 2)} MB, ` +
          `EVA talking ${(step.talkingFraction * 100).toFixed(0)} %, turns ${step.turns} (${step.noReply} unanswered), clients' worst stall while connecting ${fmt(step.clientRampStallMs, 0)} ms, CPU stolen ${fmt(step.stealPct)} %` +
          `${step.dropped ? `, ended by EVA: ${JSON.stringify(step.dropReasons)}` : ''}${step.passed ? '' : ` — ${step.reason}`}`,
      );
      if (!step.passed) {
        result.stopReason = step.reason!;
        break;
      }
      result.callsHeld = calls;
    }
  } finally {
    await child.stop();
  }
  const stolen = result.steps.filter((s) => (s.stealPct ?? 0) > STEAL_WARN_PCT);
  if (stolen.length) {
    result.notes.push(
      `the hypervisor took over ${STEAL_WARN_PCT} % of this machine's CPU in ${stolen.length} of ${result.steps.length} steps (up to ${fmt(worstSteal(stolen), 0)} %, column "steal"): those steps measured the host's other guests as much as EVA`,
    );
  }
  return result;
}

function fmt(v: number | undefined, digits = 1): string {
  return v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

// ---------------------------------------------------------------------------------------------------------------
// The load clients, in the child process.

interface Clip {
  packets: Buffer[];
}

class LoadCall {
  private readonly seq = new RtpSequencer();
  private readonly clock = { t0: 0, sent: 0 };
  nextAt = 0;
  up = false;
  ended = false;
  /** EVA ended the call (bye / socket closed) — set once, never reset. */
  gone: string | null = null;
  private phase: 'idle' | 'talk' | 'wait' | 'reply' = 'idle';
  private clip: Clip | null = null;
  private pkt = 0;
  private idleUntil: number;
  private cycleStart = 0;
  private lastVoicedAt = 0;
  private replyStartAt = 0;
  private lastAudibleAt = 0;
  private lastFrameAt = 0;
  private quietFrames = 0;
  /** Send DTX while quiet (EVA's answer asked for it). */
  dtx = false;
  private lastTs = 0;
  private lastAudible = false;
  // Window counters, reset by measure.
  w = { gaps: [] as { endMs: number; gapMs: number }[], maxGapMs: 0, audibleMs: 0, turns: 0, noReply: 0, perceived: [] as number[], since: 0 };

  constructor(
    private readonly ws: WebSocket,
    private readonly peer: Peer,
    private readonly shared: Shared,
    index: number,
  ) {
    // Spread the calls' turns: each starts after a random idle of up to 3 s.
    this.idleUntil = performance.now() + Math.random() * 3000;
    this.clipIndex = index;
  }
  private clipIndex: number;

  start(now: number): void {
    this.up = true;
    this.clock.t0 = now;
    this.nextAt = now;
    this.w.since = now;
  }

  onPacket(payload: Buffer, timestamp: number): void {
    if (!this.up || this.ended) return;
    const now = performance.now();
    const audible = payload.length >= AUDIBLE_PACKET_BYTES;
    if (this.lastFrameAt) {
      const gap = now - this.lastFrameAt;
      if (this.lastFrameAt >= this.w.since) {
        // Arrival against the sender's clock (48 kHz RTP timestamps): a 20 ms frame after 20 ms adds 20.
        const tsGapMs = ((timestamp - this.lastTs) >>> 0) / 48;
        this.shared.gaps.add(gap - tsGapMs + 20);
        if (this.lastAudible) {
          // Judged when the window closes (splitGaps): the clients' stall log may not have seen this stall yet.
          if (gap > UNDERRUN_GAP_MS) this.w.gaps.push({ endMs: now, gapMs: gap });
          if (gap > this.w.maxGapMs) this.w.maxGapMs = gap;
        }
      }
    }
    this.lastFrameAt = now;
    this.lastTs = timestamp;
    this.lastAudible = audible;
    if (!audible) return;
    this.w.audibleMs += 20;
    this.lastAudibleAt = now;
    if (this.phase === 'wait') {
      this.phase = 'reply';
      this.replyStartAt = now;
      this.w.perceived.push(now - this.lastVoicedAt);
    }
  }

  tick(now: number): void {
    if (this.ended) return;
    if (this.phase === 'idle' && now >= this.idleUntil) {
      this.clip = this.shared.clips[this.clipIndex++ % this.shared.clips.length]!;
      this.pkt = 0;
      this.phase = 'talk';
      this.cycleStart = now;
    } else if (this.phase === 'wait' && now - this.lastVoicedAt > 8000) {
      this.w.noReply++;
      this.toIdle(now, 1000);
    } else if (this.phase === 'reply' && now - this.lastAudibleAt > 500) {
      this.w.turns++;
      const replyMs = this.lastAudibleAt - this.replyStartAt;
      this.toIdle(now, replyMs / TALK_FRACTION - (now - this.cycleStart));
    }
    const due = framesDue(this.clock, now);
    if (due.skip) this.seq.skip(due.skip);
    for (let k = 0; k < due.send; k++) {
      if (this.phase === 'talk' && this.clip) {
        this.peer.sendAudio(this.clip.packets[this.pkt++]!, this.seq.next(true));
        this.quietFrames = 0;
        if (this.pkt >= this.clip.packets.length) {
          this.phase = 'wait';
          this.lastVoicedAt = now;
        }
      } else {
        // A browser asked for DTX (EVA's answer says usedtx=1) goes quiet after 200 ms: a packet every 400 ms.
        const q = this.quietFrames++;
        if (this.dtx && q >= DTX_HANGOVER_FRAMES && !dtxSends(q - DTX_HANGOVER_FRAMES)) this.seq.skip(1);
        else this.peer.sendAudio(this.shared.silence, this.seq.next(false));
      }
    }
    this.clock.sent += due.send + due.skip;
    this.nextAt = due.nextAt;
  }

  private toIdle(now: number, idleMs: number): void {
    this.phase = 'idle';
    this.idleUntil = now + Math.max(200, idleMs);
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
    } catch {
      // already closing
    }
    await this.peer.close();
  }
}

interface Shared {
  clips: Clip[];
  silence: Buffer;
  gaps: GapHistogram;
}

async function connectCall(wsUrl: string, shared: Shared, index: number, onEnd: (c: LoadCall, reason: string) => void): Promise<LoadCall> {
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let call: LoadCall | null = null;
  const peer = new Peer({ onAudio: (p, _seq, ts) => call?.onPacket(p, ts) }, { onlyHosts: ['127.0.0.1'], additionalHosts: ['127.0.0.1'] });
  call = new LoadCall(ws, peer, shared, index);
  const answer = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer in 15 s')), 15_000);
    ws.on('message', (data) => {
      let m: { type?: string; sdp?: string; code?: string; message?: string; reason?: string };
      try {
        m = JSON.parse(String(data)) as typeof m;
      } catch {
        return;
      }
      if (m.type === 'answer' && m.sdp) {
        clearTimeout(timer);
        resolve(m.sdp);
      } else if (m.type === 'error' && !call!.up) {
        clearTimeout(timer);
        reject(new Error(`${m.code}: ${m.message}`));
      } else if (m.type === 'bye') {
        onEnd(call!, `bye: ${m.reason ?? '?'}`);
      }
    });
    ws.on('close', () => onEnd(call!, 'socket closed'));
  });
  try {
    ws.send(JSON.stringify({ type: 'offer', sdp: await peer.offer(), config: {} }));
    const answerSdp = await answer;
    await peer.accept(answerSdp);
    call.dtx = answerAsksDtx(answerSdp);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([peer.whenConnected, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('WebRTC did not connect in 15 s')), 15_000)))]).finally(() =>
      clearTimeout(timer),
    );
  } catch (err) {
    await call.close();
    throw err;
  }
  call.start(performance.now());
  return call;
}

async function clientMain(config: { wsUrl: string; clips: string[] }): Promise<void> {
  const enc = new OpusEncoder({ sampleRate: 16000, application: 'voip', complexity: 5 });
  enableFec(enc);
  const encodeClip = (pcm: Int16Array): Buffer[] => {
    const out: Buffer[] = [];
    for (let o = 0; o < pcm.length; o += enc.frameSamples) {
      const frame = new Int16Array(enc.frameSamples);
      frame.set(pcm.subarray(o, Math.min(pcm.length, o + enc.frameSamples)));
      out.push(Buffer.from(enc.encode(frame)));
    }
    return out;
  };
  const silence = Buffer.from(enc.encode(new Int16Array(enc.frameSamples)));
  const shared: Shared = {
    clips: config.clips.map((f) => ({ packets: encodeClip(decodeWav(readFileSync(f)).samples) })),
    silence,
    gaps: new GapHistogram(),
  };
  enc.close();
  const calls: LoadCall[] = [];
  let windowStart = 0;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const stalls = new StallLog();
  const stallTimer = setInterval(() => stalls.tick(performance.now()), 10);

  // One timer for every call, armed for the earliest due frame (like media/pacer's scheduler).
  let timer: NodeJS.Timeout | null = null;
  const arm = (): void => {
    if (timer) return;
    let next = Infinity;
    for (const c of calls) if (c.up && !c.ended) next = Math.min(next, c.nextAt);
    if (next === Infinity) return;
    timer = setTimeout(run, Math.max(0, next - performance.now()));
  };
  const run = (): void => {
    timer = null;
    const now = performance.now();
    for (const c of calls) if (c.up && !c.ended && c.nextAt <= now + 1) c.tick(now);
    arm();
  };
  const onEnd = (c: LoadCall, reason: string): void => {
    if (c.ended || c.gone) return;
    c.gone = reason;
    void c.close();
  };

  const reply = (m: ChildMsg | { type: 'stopped' }): void => {
    process.send?.(m);
  };

  process.on('message', (raw) => {
    const msg = raw as { cmd: string; calls?: number; ms?: number };
    void (async () => {
      if (msg.cmd === 'ramp') {
        const target = msg.calls ?? 0;
        let failed = 0;
        const errors: string[] = [];
        const stall = monitorEventLoopDelay({ resolution: 10 });
        stall.enable();
        // Connect two at a time: each new peer connection makes a certificate and runs a DTLS handshake, and a
        // burst of them stalls this loop; a stall over 1 s stops the RTP of every call here and EVA ends them.
        while (calls.length + failed < target) {
          const batch = Math.min(2, target - calls.length - failed);
          const made = await Promise.allSettled(Array.from({ length: batch }, (_, i) => connectCall(config.wsUrl, shared, calls.length + i, onEnd)));
          for (const r of made) {
            if (r.status === 'fulfilled') calls.push(r.value);
            else {
              failed++;
              errors.push((r.reason as Error).message);
            }
          }
          arm();
        }
        stall.disable();
        reply({ type: 'ramped', connected: calls.filter((c) => !c.gone).length, failed, errors, maxStallMs: stall.count > 0 ? stall.max / 1e6 - 10 : 0 });
      } else if (msg.cmd === 'measure') {
        const ms = msg.ms ?? 10_000;
        windowStart = performance.now();
        shared.gaps.counts.fill(0);
        shared.gaps.total = 0;
        for (const c of calls) c.w = { gaps: [], maxGapMs: 0, audibleMs: 0, turns: 0, noReply: 0, perceived: [], since: windowStart };
        lag.reset();
        const cpu0 = process.cpuUsage();
        await new Promise((r) => setTimeout(r, ms));
        const cpu = process.cpuUsage(cpu0);
        const elapsed = performance.now() - windowStart;
        const live = calls.filter((c) => c.up && !c.ended && !c.gone);
        const dropReasons: Record<string, number> = {};
        for (const c of calls) if (c.gone) dropReasons[c.gone] = (dropReasons[c.gone] ?? 0) + 1;
        const stats: ChildStats = {
          connected: live.length,
          dropped: calls.filter((c) => c.gone).length,
          dropReasons,
          underruns: 0,
          clientStallUnderruns: 0,
          maxGapMs: 0,
          gaps: { counts: Array.from(shared.gaps.counts), total: shared.gaps.total },
          audibleMs: 0,
          callMs: live.length * elapsed,
          turns: 0,
          noReply: 0,
          perceived: [],
          cpuMs: (cpu.user + cpu.system) / 1000,
          // monitorEventLoopDelay includes its 10 ms sampling interval.
          lagP99Ms: lag.count > 0 ? Math.max(0, lag.percentile(99) / 1e6 - 10) : 0,
        };
        for (const c of live) {
          const split = splitGaps(c.w.gaps, stalls);
          stats.underruns += split.eva;
          stats.clientStallUnderruns += split.client;
          stats.maxGapMs = Math.max(stats.maxGapMs, c.w.maxGapMs);
          stats.audibleMs += c.w.audibleMs;
          stats.turns += c.w.turns;
          stats.noReply += c.w.noReply;
          stats.perceived.push(...c.w.perceived);
        }
        reply({ type: 'measured', stats });
      } else if (msg.cmd === 'stop') {
        if (timer) clearTimeout(timer);
        clearInterval(stallTimer);
        await Promise.allSettled(calls.map((c) => c.close()));
        reply({ type: 'stopped' });
        // werift's DTLS retransmission timers would keep the process alive for ~30 s.
        setTimeout(() => process.exit(0), 100);
      }
    })().catch((err: unknown) => reply({ type: 'error', message: (err as Error).message }));
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[2] === '--client' && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  clientMain(JSON.parse(process.argv[3] ?? '{}') as { wsUrl: string; clips: string[] }).catch((err: unknown) => {
    process.stderr.write(`load client: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
