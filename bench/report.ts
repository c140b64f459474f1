// The bench's results file and what is made from it: the text table printed at the end of a run, and the SVG
// charts (a waterfall of the median turn and a histogram of perceived latency per profile, lag and CPU against
// calls for the load ramp). Pure: a result in, strings out; run.ts writes them to bench/results/.
import { COLORS, histogramSvg, lineSvg, waterfallSvg, type Marker, type WaterfallRow } from './chart.js';
import { FIGURES, classBreakdown, medianTrial, type ClipClass, type Counts, type FigureKey, type Summary, type TrialResult } from './latency.js';
import { worstSteal, type LoadResult } from './load.js';
import type { LatencyProfile } from './profiles.js';
import type { MicroResult, ProfileStep, StagesResult } from './stages.js';
import type { TextProbeResult } from './text-probes.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  gitCommit: string;
  loadAvg: number[];
}

export interface ProfileResult {
  label: string;
  spec: string;
  description: string;
  latency: LatencyProfile;
  llm: string;
  tts: string;
  /** The provider variables EVA was started with (on top of `config.evaEnv`). */
  evaEnv?: Record<string, string>;
  /** Providers EVA reported in `ready`. */
  providers?: { stt: string; llm: string; tts: string };
  evaStartMs?: number;
  connectMs?: number;
  trials: TrialResult[];
  summary: Record<FigureKey, Summary>;
  counts: Counts;
  /**
   * EVA's STT requests over the profile's trials (GET /metrics `eva_stt_requests_total{speculative}` before and
   * after), and the turns EVA answered (distinct `metrics` turns); or why the counter could not be read.
   */
  sttRequests?: { speculative: number; final: number; turns: number } | { unavailable: string };
  text: TextProbeResult[];
  errors: string[];
}

export interface BenchResult {
  version: 1;
  startedAt: string;
  durationS: number;
  machine: MachineInfo;
  config: {
    quick: boolean;
    turns: number;
    bargeTrials: number;
    backchannelTrials: number;
    pauseTrials: number;
    bargeDelayMs: number;
    echoTrials: number;
    /** Level of the echo fed back, dB below EVA's received audio. */
    echoDb: number;
    /** Fallback lead of speculative work before the end of turn, for turns without `eou_ms`. */
    speculationLeadMs: number;
    /** EVA's pause window: speculative STT starts after it; the lead of a turn is its eou_ms minus this. */
    pauseMs?: number;
    audibleRms: number;
    utterances: string[];
    evaEnv: Record<string, string>;
    load?: { profile: string; levels: number[]; windowMs: number; settleMs: number };
  };
  profiles: ProfileResult[];
  load?: LoadResult & { profile: string };
  /** With `--workers 1,2`: one ramp per EVA_WORKERS count, in order (`load` is the first of them). */
  loads?: (LoadResult & { profile: string })[];
  notes: string[];
}

/** The project's latency targets (README "Bench"), shown beside the figures (never asserted). */
export const TARGETS: Partial<Record<FigureKey, string>> = {
  perceivedMs: 'p50 ≤ 200, p95 ≤ 350 (Groq-like)',
  overheadMs: 'p50 ≤ 10, p99 ≤ 30',
  bargeStopMs: 'p50 ≤ 120',
};

const SHORT: Record<FigureKey, string> = {
  perceivedMs: 'perceived latency',
  eouMs: 'end of turn (eou)',
  sttMs: 'STT',
  llmTtftMs: 'LLM first token',
  firstSentenceMs: 'LLM first sentence',
  ttsFirstAudioMs: 'TTS first audio',
  firstAudioMs: 'server first audio',
  providersMs: 'providers total',
  overheadMs: 'EVA overhead',
  networkMs: 'network+jitter',
  quietStartMs: '  quiet reply start',
  edgeTransitMs: '  transit+VAD edge',
  bargeStopMs: 'barge-in stop',
  bargeEventMs: 'barge-in event',
};

function num(v: number | undefined, digits = 0): string {
  return v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

function pad(s: string, w: number, right = false): string {
  return right ? s.padStart(w) : s.padEnd(w);
}

/** A fixed-width table: the first and last columns (names, notes) left-aligned, the numbers between right-aligned. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const last = header.length - 1;
  const line = (cells: string[]): string => cells.map((c, i) => pad(c, widths[i]!, i > 0 && i < last)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function rate(x: number, of: number): string {
  return of === 0 ? '–' : `${x}/${of}`;
}

/**
 * The totals of `eva_stt_requests_total` in a Prometheus text scrape, by its `speculative` label (summed over any
 * other labels); zeros when the counter is declared but has no samples yet (prom-client exports a labelled counter
 * only once it was incremented); undefined when EVA has no such counter.
 */
export function sttRequestCounts(scrape: string): { speculative: number; final: number } | undefined {
  let found = /^# TYPE eva_stt_requests_total counter$/m.test(scrape);
  const out = { speculative: 0, final: 0 };
  for (const line of scrape.split('\n')) {
    const m = /^eva_stt_requests_total\{([^}]*)\}\s+(\S+)/.exec(line.trim());
    if (!m) continue;
    const spec = /(?:^|,)\s*speculative="(true|false)"/.exec(m[1]!);
    const v = Number(m[2]);
    if (!spec || !Number.isFinite(v)) continue;
    found = true;
    if (spec[1] === 'true') out.speculative += v;
    else out.final += v;
  }
  return found ? out : undefined;
}

/** "1.40 speculative STT requests per turn (28 speculative + 20 final over 20 turns)", or "n/a (why)". */
export function sttRequestsLine(r: ProfileResult['sttRequests']): string {
  if (!r) return 'speculative STT requests per turn: n/a (not measured)';
  if ('unavailable' in r) return `speculative STT requests per turn: n/a (${r.unavailable})`;
  const per = r.turns ? (r.speculative / r.turns).toFixed(2) : '–';
  return `speculative STT requests per turn: ${per} (${r.speculative} speculative + ${r.final} final over ${r.turns} answered turns)`;
}

const CLASS_NAMES: Record<ClipClass, string> = {
  short: 'short answer',
  statement: 'finished statement',
  question: 'question',
  paused: 'paused (mid-sentence)',
  backchannel: 'backchannel',
};

/**
 * EOU time, perceived latency and false cut-offs by clip class; for paused clips also the cut-offs among the
 * trials whose partial transcript ended in "."; EVA's decisions when its metrics name them.
 */
export function classTable(trials: readonly TrialResult[]): string | undefined {
  const rows = classBreakdown(trials);
  if (!rows.length) return undefined;
  const body = rows.map((r) => [
    CLASS_NAMES[r.clipClass],
    String(r.trials),
    num(r.eou.p50),
    num(r.eou.p95),
    num(r.perceived.p50),
    num(r.perceived.p95),
    `${rate(r.falseCutoffs, r.trials)}${r.fullStopTrials ? ` (${rate(r.fullStopCutoffs, r.fullStopTrials)} with ".")` : ''}`,
    Object.entries(r.decisions)
      .map(([d, n]) => `${d} ${n}`)
      .join(', '),
  ]);
  return textTable(['by class (ms)', 'trials', 'eou p50', 'eou p95', 'perceived p50', 'perceived p95', 'false cut-offs', 'decisions'], body);
}

/** The table for one profile: every figure with n/min/p50/p95/p99/max, then the counts. */
export function profileTable(p: ProfileResult): string {
  const rows = FIGURES.filter(([k]) => p.summary[k] && p.summary[k].n > 0).map(([k]) => {
    const s = p.summary[k];
    return [SHORT[k], String(s.n), num(s.min), num(s.p50), num(s.p95), num(s.p99), num(s.max), TARGETS[k] ?? ''];
  });
  const c = p.counts;
  const head = [
    `== ${p.label}: ${p.description}`,
    p.providers ? `   EVA providers: stt ${p.providers.stt}, llm ${p.providers.llm}, tts ${p.providers.tts}` : '   EVA providers: unknown (no ready event)',
  ];
  const tail = [
    `   replies ${rate(c.replies, c.turns)} trials; speculative turns ${c.speculativeTurns}; ` +
      `barge-in: stopped ${rate(c.bargeValid - c.bargeNotStopped, c.bargeValid)} (${c.bargeTrials - c.bargeValid} trials missed the reply); ` +
      `false barge-ins on backchannels ${rate(c.falseBargeIns, c.backchannelTrials)}, on EVA's own echo ${rate(c.echoBargeIns, c.echoTrials)}; ` +
      `false cut-offs in pauses ${rate(c.falseCutoffs, c.pauseTrials)} (split turns ${rate(c.splitTurns, c.pauseTrials)})`,
  ];
  tail.push(`   ${sttRequestsLine(p.sttRequests)}`);
  for (const e of p.errors) tail.push(`   ! ${e}`);
  const headers = ['figure (ms)', 'n', 'min', 'p50', 'p95', 'p99', 'max', 'target'];
  const table = rows.length ? textTable(headers, rows) : '   (no figures: no trial got a reply)';
  const classes = classTable(p.trials);
  return [...head, table, ...(classes ? [classes] : []), ...tail].join('\n');
}

export function textProbeTable(probes: readonly TextProbeResult[]): string {
  const rows = probes.map((t) =>
    t.skipped
      ? [t.name, '–', '–', '–', '–', '–', `skipped: ${t.skipped}`]
      : [
          t.name,
          String(t.summary?.n ?? 0),
          num(t.summary?.min),
          num(t.summary?.p50),
          num(t.summary?.p95),
          num(t.summary?.max),
          `${t.errors ? `${t.errors} errors; ` : ''}${t.serverValues.length ? `server-reported p50 ${num(median(t.serverValues))}` : ''}`,
        ],
  );
  return textTable(['text probe (ms)', 'n', 'min', 'p50', 'p95', 'max', 'notes'], rows);
}

function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.ceil(s.length / 2) - 1]!;
}

export function loadTable(load: LoadResult & { profile: string }): string {
  const rows = load.steps.map((s) => [
    String(s.calls),
    `${s.connected}`,
    num(s.lagP99Ms ?? s.jitterP99Ms, 1),
    s.clientStallUnderruns ? `${s.underruns} (+${s.clientStallUnderruns})` : String(s.underruns),
    num(s.maxGapMs),
    num(s.evaCpuPct),
    num(s.clientCpuPct),
    num(s.stealPct),
    num(s.evaRssMb),
    num(s.rssPerCallMb, 2),
    num(s.rssMarginalMb, 2),
    `${Math.round(s.talkingFraction * 100)}%`,
    `${s.turns}/${s.noReply}`,
    num(s.perceived.p50),
    s.passed ? 'ok' : (s.reason ?? 'failed'),
  ]);
  const src = load.steps[0]?.lagSource ?? 'server /metrics';
  return [
    `== load (${load.profile}${load.workers && load.workers > 1 ? `, EVA_WORKERS=${load.workers}` : ''}): calls held ${load.callsHeld}; stopped: ${load.stopReason}; lag from ${src}`,
    textTable(['calls', 'up', 'lag p99', 'underruns', 'max gap', 'EVA CPU%', 'client CPU%', 'steal%', 'RSS MB', 'MB/call', 'MB/added call', 'EVA talks', 'turns/unanswered', 'perceived p50', 'result'], rows),
    ...load.notes.map((n) => `   note: ${n}`),
  ].join('\n');
}

/**
 * Ramps with different EVA_WORKERS side by side: calls held, why each stopped, and at the last step held the worst
 * worker's lag p99, EVA's CPU (all its processes) per call, RSS per call and the load clients' CPU.
 */
export function workersTable(loads: readonly (LoadResult & { profile: string })[]): string {
  const rows = loads.map((l) => {
    const held = l.steps.filter((s) => s.passed && s.calls === l.callsHeld).at(-1);
    const byWorker = held?.lagP99ByWorkerMs ? Object.values(held.lagP99ByWorkerMs).map((v) => num(v, 1)).join(' / ') : num(held?.lagP99Ms, 1);
    return [
      String(l.workers ?? 1),
      String(l.callsHeld),
      byWorker,
      num(held?.evaCpuPct),
      held?.evaCpuPct !== undefined && held.calls > 0 ? num(held.evaCpuPct / held.calls, 2) : '–',
      num(held?.rssPerCallMb, 2),
      num(held?.clientCpuPct),
      num(worstSteal(l.steps), 0),
      l.stopReason,
    ];
  });
  return [
    `== load by EVA_WORKERS (${loads[0]?.profile ?? '?'}): figures at the last step held`,
    textTable(['workers', 'calls held', 'lag p99 (each worker)', 'EVA CPU%', 'CPU%/call', 'MB/call', 'client CPU%', 'steal% (worst step)', 'stopped'], rows),
  ].join('\n');
}

/** Everything printed at the end of a run. */
export function formatReport(r: BenchResult): string {
  const m = r.machine;
  const out = [
    `EVA bench ${r.startedAt} — ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB.toFixed(1)} GiB, Node ${m.node}, commit ${m.gitCommit.slice(0, 12)}` +
      `${r.config.quick ? ' (quick)' : ''}; ${r.durationS.toFixed(0)} s`,
    '',
  ];
  for (const p of r.profiles) {
    out.push(profileTable(p), '');
    if (p.text.length) out.push(textProbeTable(p.text), '');
  }
  if (r.loads && r.loads.length > 1) {
    for (const l of r.loads) out.push(loadTable(l), '');
    out.push(workersTable(r.loads), '');
  } else if (r.load) out.push(loadTable(r.load), '');
  for (const n of r.notes) out.push(`note: ${n}`);
  return out.join('\n').trimEnd() + '\n';
}

/**
 * The median turn's stages on the client's time line (0 = its last voiced sample left the client). The server's
 * clock is drawn as if it started at 0 too; the uplink and downlink together make the last bar.
 */
export function waterfallRows(t: TrialResult, speculationLeadMs = 320): WaterfallRow[] {
  const rows: WaterfallRow[] = [];
  if (t.eouMs !== undefined) rows.push({ label: 'end-of-turn silence', start: 0, end: t.eouMs, color: COLORS.wait });
  if (t.eouMs !== undefined && t.sttMs !== undefined) {
    let at = t.speculative ? Math.max(0, t.eouMs - speculationLeadMs) : t.eouMs;
    rows.push({ label: t.speculative ? 'STT (speculative)' : 'STT', start: at, end: (at += t.sttMs), color: COLORS.stt });
    if (t.llmTtftMs !== undefined) rows.push({ label: 'LLM first token', start: at, end: at + t.llmTtftMs, color: COLORS.llm });
    if (t.firstSentenceMs !== undefined) {
      const from = at + (t.llmTtftMs ?? 0);
      rows.push({ label: 'LLM rest of 1st sentence', start: from, end: at + t.firstSentenceMs, color: COLORS.llm2 });
      at += t.firstSentenceMs;
    }
    if (t.ttsFirstAudioMs !== undefined) rows.push({ label: 'TTS first audio', start: at, end: at + t.ttsFirstAudioMs, color: COLORS.tts });
  }
  if (t.firstAudioMs !== undefined && t.overheadMs !== undefined) {
    rows.push({ label: 'EVA overhead', start: t.firstAudioMs - Math.max(0, t.overheadMs), end: t.firstAudioMs, color: COLORS.eva, note: `${t.overheadMs.toFixed(1)} ms` });
  }
  if (t.firstAudioMs !== undefined && t.perceivedMs !== undefined) {
    rows.push({ label: 'network, jitter, decode', start: t.firstAudioMs, end: t.perceivedMs, color: COLORS.net });
  }
  if (t.perceivedMs !== undefined) rows.push({ label: 'perceived latency', start: 0, end: t.perceivedMs, color: COLORS.total });
  return rows;
}

export function waterfallChart(p: ProfileResult, pauseMs = 160): string {
  const t = medianTrial(p.trials);
  if (!t) return waterfallSvg([], { title: `${p.label}: median turn`, subtitle: 'no turn got a reply' });
  // Speculative work starts at the pause; the turn may have ended early (eou < 480), so the lead is per turn.
  const lead = t.eouMs !== undefined ? Math.max(0, t.eouMs - pauseMs) : 320;
  return waterfallSvg(waterfallRows(t, lead), {
    title: `${p.label}: the median turn, stage by stage`,
    subtitle: `${t.utterance} (${t.kind}${t.clipClass ? `, ${CLASS_NAMES[t.clipClass]}` : ''}), perceived ${t.perceivedMs!.toFixed(0)} ms; stages from EVA's metrics event, perceived from the client over WebRTC`,
    markers: decisionMarkers(t),
  });
}

/** The end-of-turn decision on the waterfall: a line at eou_ms (speech end → EVA decided), named by its decision. */
export function decisionMarkers(t: TrialResult): Marker[] {
  if (t.eouMs === undefined) return [];
  const what = [t.decision, t.eouClass].filter(Boolean).join(', ');
  return [{ label: `decision at ${t.eouMs.toFixed(0)} ms${what ? ` (${what})` : ''}`, value: t.eouMs, color: COLORS.eva, dashed: true }];
}

export function histogramChart(p: ProfileResult): string {
  const values = p.trials.filter((t) => !t.warmup && t.perceivedMs !== undefined).map((t) => t.perceivedMs!);
  const s = p.summary.perceivedMs;
  const markers: Marker[] = [];
  if (s.n > 0) {
    markers.push({ label: `p50 ${s.p50.toFixed(0)}`, value: s.p50, color: COLORS.p50 });
    markers.push({ label: `p95 ${s.p95.toFixed(0)}`, value: s.p95, color: COLORS.p95 });
  }
  if (p.label.startsWith('groq')) {
    markers.push({ label: 'target p50 200', value: 200, color: COLORS.target, dashed: true });
    markers.push({ label: 'target p95 350', value: 350, color: COLORS.target, dashed: true });
  }
  return histogramSvg(values, {
    title: `${p.label}: perceived latency over ${values.length} turns`,
    subtitle: 'last voiced sample sent → first audible reply frame received, measured at the client over WebRTC',
    markers,
  });
}

export function loadChart(load: LoadResult & { profile: string }): string {
  const lag = load.steps.map((s) => ({ x: s.calls, y: s.lagP99Ms ?? s.jitterP99Ms }));
  const cpu = load.steps.filter((s) => s.evaCpuPct !== undefined).map((s) => ({ x: s.calls, y: s.evaCpuPct! / 10 }));
  return lineSvg(
    [
      { label: 'p99 lag (ms)', color: COLORS.p95, points: lag },
      { label: 'EVA CPU (% / 10)', color: COLORS.stt, points: cpu },
    ],
    { title: `load (${load.profile}${load.workers && load.workers > 1 ? `, ${load.workers} workers` : ''}): calls held ${load.callsHeld}`, xLabel: 'concurrent calls', yLabel: 'ms  |  % of a core / 10', markers: [{ label: 'lag limit 20 ms', value: 20 }] },
  );
}

/** File name stem for a run started at `iso`: 2025-01-31T12-00-00Z. */
export function stamp(iso: string): string {
  return iso.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/** Every file a result produces, by name relative to bench/results/. */
export function reportFiles(r: BenchResult): Record<string, string> {
  const base = stamp(r.startedAt);
  // Microseconds are noise here: keep three decimals of every ms figure.
  const round = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v);
  const files: Record<string, string> = { [`${base}.json`]: JSON.stringify(r, round, 2) + '\n', [`${base}.txt`]: formatReport(r) };
  for (const p of r.profiles) {
    const safe = p.label.replace(/[^A-Za-z0-9_.=+-]/g, '_');
    files[`${base}-${safe}-waterfall.svg`] = waterfallChart(p, r.config.pauseMs ?? 160);
    files[`${base}-${safe}-histogram.svg`] = histogramChart(p);
  }
  if (r.loads && r.loads.length > 1) {
    for (const l of r.loads) if (l.steps.length) files[`${base}-load-w${l.workers ?? 1}.svg`] = loadChart(l);
  } else if (r.load && r.load.steps.length) files[`${base}-load.svg`] = loadChart(r.load);
  return files;
}

// ---------------------------------------------------------------------------------------------------------------
// The stage profile (stages.ts): micro-benchmarks, then EVA under load, stage by stage, with a before/after
// column when the run was compared with an earlier one.

function change(before: number | undefined, after: number): string {
  if (before === undefined || !Number.isFinite(before) || before <= 0) return '';
  const pct = ((after - before) / before) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(0)}%`;
}

function us(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

/** Micro-benchmarks: µs per unit, and the earlier run's beside them (matched by stage, unit and note). */
export function microTable(s: StagesResult): string {
  const before = s.before?.micro ?? [];
  const key = (m: MicroResult): string => `${m.stage}|${m.unit}|${m.note ?? ''}`;
  const rows = s.micro.map((m) => {
    const b = before.find((x) => key(x) === key(m));
    return [m.stage, m.unit, ...(s.before ? [us(b?.us)] : []), us(m.us), ...(s.before ? [change(b?.us, m.us)] : []), m.note ?? ''];
  });
  const head = ['micro-benchmark', 'per', ...(s.before ? ['before µs', 'µs', 'change'] : ['µs']), 'what'];
  return textTable(head, rows);
}

/** One load step: the stages' µs per unit and % of a core per call, the load's own figures and memory per call. */
export function profileStepTable(step: ProfileStep, before?: ProfileStep): string {
  const l = step.load;
  const m = step.memory;
  const lines = [
    `== EVA under load: ${step.calls} calls` +
      (l ? ` — lag p99 ${num(l.lagP99Ms ?? l.jitterP99Ms, 1)} ms, underruns ${l.underruns}, EVA CPU ${num(l.evaCpuPct)}% of a core (/proc, all threads) = ${num((l.evaCpuPct ?? NaN) / step.calls, 2)}% per call, EVA talks ${Math.round(l.talkingFraction * 100)}%` : ''),
    `   over the profile: ${step.sampledPctPerCall.toFixed(2)}% of a core per call (threads, % of a core: ${step.threads.map((t) => `${t.thread} ${(((t.cpuMs ?? t.busyMs) / Math.max(1, t.durationMs)) * 100).toFixed(1)}`).join(', ')})` +
      (before ? `; before: ${before.sampledPctPerCall.toFixed(2)}% per call (${change(before.sampledPctPerCall, step.sampledPctPerCall)})` : ''),
  ];
  const rate = (r: ProfileStep['rates']): string =>
    (r?.packet !== undefined ? `${r.packet.toFixed(1)} packets received, ${r.frame!.toFixed(1)} frames sent` : '50 and 50 (nominal)') +
    (r?.modelWindows !== undefined ? `, ${r.modelWindows.toFixed(1)} of 31.25 VAD windows through the model (${r.windowsPerBatch!.toFixed(1)} a batch)` : '');
  if (step.rates || before?.rates) lines.push(`   per call per second: ${rate(step.rates)}${before ? `; before: ${rate(before.rates)}` : ''}`);
  if (step.unprofiled) {
    const u = step.unprofiled;
    lines.push(
      `   without the profiler, right after: ${u.pctPerCall.toFixed(2)}% of a core per call, unprofiled threads ${u.otherThreadsPct.toFixed(1)}% of a core` +
        (before?.unprofiled ? `; before: ${before.unprofiled.pctPerCall.toFixed(2)}% per call (${change(before.unprofiled.pctPerCall, u.pctPerCall)})` : ''),
    );
  }
  if (m) {
    lines.push(
      `   memory after a forced GC: RSS ${m.rssMb.toFixed(0)} MB, ${m.rssPerCallMb.toFixed(2)} MB per call (JS heap ${m.heapUsedPerCallMb.toFixed(2)}, external ${m.externalPerCallMb.toFixed(2)} of which ArrayBuffers ${m.arrayBuffersPerCallMb.toFixed(2)})` +
        (before?.memory ? `; before ${before.memory.rssPerCallMb.toFixed(2)} MB per call` : '') +
        (step.rssAfterCloseMb !== undefined ? `; after the calls closed: RSS +${step.rssAfterCloseMb.toFixed(0)} MB over the idle baseline` : ''),
    );
  }
  const rows = step.rows.map((r) => {
    const b = before?.rows.find((x) => x.stage === r.stage);
    return [
      r.stage,
      r.unit,
      ...(before ? [us(b?.usPerUnit)] : []),
      us(r.usPerUnit),
      ...(before ? [change(b?.usPerUnit, r.usPerUnit), b ? b.pctPerCall.toFixed(3) : '–'] : []),
      r.pctPerCall.toFixed(3),
      r.selfMs.toFixed(0),
    ];
  });
  const total = step.rows.reduce((s, r) => s + r.pctPerCall, 0);
  const totalBefore = before?.rows.reduce((s, r) => s + r.pctPerCall, 0);
  rows.push(['all stages', '', ...(before ? ['', '', '', totalBefore!.toFixed(3)] : []), '', total.toFixed(3), step.rows.reduce((s, r) => s + r.selfMs, 0).toFixed(0)]);
  const head = ['stage', 'per', ...(before ? ['before µs', 'µs', 'change', 'before %/call'] : ['µs']), '% core/call', 'self ms'];
  lines.push(textTable(head, rows));
  return lines.join('\n');
}

/** Everything stages.ts prints and writes to <time>-stages.txt. */
export function stagesReport(s: StagesResult): string {
  const m = s.machine;
  const out = [
    `EVA stages ${s.startedAt} — ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, commit ${m.gitCommit.slice(0, 12)}; ${s.durationS.toFixed(0)} s` +
      (s.before ? `; before = ${s.before.startedAt} (commit ${s.before.gitCommit.slice(0, 12)})` : ''),
    '',
  ];
  if (s.micro.length) out.push(microTable(s), '');
  for (const p of s.profiles) out.push(profileStepTable(p, s.before?.profiles.find((b) => b.calls === p.calls)), '');
  for (const n of s.notes) out.push(`note: ${n}`);
  return out.join('\n').trimEnd() + '\n';
}
