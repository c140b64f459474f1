// Prometheus metrics for GET /metrics. EVA owns its Registry (never prom-client's global one), so a test or a
// second server in the same process gets its own counters. Label values come from closed sets (stages, turn
// sources, provider names and error codes), so the number of series stays bounded.
//
// With EVA_WORKERS > 1 each worker process has its own registry and a scrape of any worker returns them all
// aggregated (server/cluster.ts, prom-client's AggregatorRegistry): counters and histograms are summed; the
// figures that only make sense per process (open calls, event-loop lag) carry a `worker` label instead.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { rtpTotals } from '../media/rtp.js';
import { vadTotals } from '../media/vad-totals.js';
import { RX_RATE } from '../media/rx-clock.js';

export const STAGES = ['eou', 'stt', 'llm_ttft', 'first_sentence', 'tts_first_audio', 'first_audio', 'text_turn'] as const;
export type Stage = (typeof STAGES)[number];
export type TurnSource = 'voice' | 'text';
/** The supervised worker threads (`eva_worker_restarts_total{worker}`). */
export const WORKERS = ['vad', 'espeak'] as const;
export type WorkerName = (typeof WORKERS)[number];
/** The limits of README "Configuration" whose hits `eva_limit_hits_total{limit}` counts (a closed set). */
export const LIMITS = [
  'max_sockets',
  'max_calls',
  'client_sockets',
  'client_calls',
  'client_offers',
  'ws_text',
  'tts_rate',
  'tts_chars',
  'ws_chat_stream',
  'text_api',
  'offer_timeout',
  /** Inbound RTP over EVA_RTP_MAX_PPS: one hit per call per second in which packets were dropped. */
  'rtp_pps',
] as const;
export type LimitName = (typeof LIMITS)[number];
/** Why a request was refused at the door (`eva_access_refused_total{code}`). */
export const REFUSALS = ['forbidden_origin', 'forbidden_host', 'unauthorized'] as const;
export type RefusalCode = (typeof REFUSALS)[number];

/**
 * Stage latency buckets, in seconds: 5 ms to 5 s, densest around the 200-350 ms perceived-latency targets so
 * p50/p95 can be read from the histogram without a wide interpolation.
 */
export const STAGE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5];

/** Event-loop lag quantiles exported on each scrape. */
const LAG_QUANTILES = [0.5, 0.9, 0.99, 1] as const;

export interface MetricsOptions {
  /** Also export prom-client's process and Node.js metrics (CPU, memory, GC, handles), prefixed `eva_`. Default true. */
  defaultMetrics?: boolean;
  /** This process's worker index (EVA_WORKERS > 1): open calls and event-loop lag are labelled `worker`. */
  worker?: number;
}

/** One registry's metrics as prom-client's `getMetricsAsJSON` gives them: what workers send for aggregation. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export interface Metrics {
  readonly registry: Registry;
  /** The Content-Type of `text()`. */
  readonly contentType: string;
  callOpened(): void;
  callClosed(): void;
  turn(source: TurnSource): void;
  bargeIn(): void;
  /** One STT request (a segment transcription or a streaming commit); `speculative`: made before the end of turn. */
  sttRequest(speculative: boolean): void;
  /** A spoken turn's end was decided: by the predictor's class, or `window` when the silence window closed first. */
  endOfTurn(cls: string, early: boolean): void;
  providerError(provider: string, code: string): void;
  fallback(from: string, to: string): void;
  /** A limit refused a request or closed a socket. */
  limitHit(limit: LimitName): void;
  /** The access layer refused a request (origin, host or credentials). */
  accessRefused(code: RefusalCode): void;
  /** A promise rejection nobody handled (logged, never fatal: each one is a bug to fix). */
  unhandledRejection(): void;
  /** A supervised worker (media/supervisor.ts) was replaced after a crash or a hang. */
  workerRestart(worker: WorkerName): void;
  /** Records a stage duration in milliseconds; non-finite or negative values are ignored. */
  observeStage(stage: Stage, ms: number): void;
  /** The exposition text for a scrape. */
  text(): Promise<string>;
  /** This registry's metrics as JSON, for the supervisor to aggregate (runs the same collectors as a scrape). */
  json(): Promise<MetricsJson>;
  /** Event-loop delay since the previous call, ms: p99 and max (for /health; a window apart from the scrape's). */
  loopLag(): { p99Ms: number; maxMs: number };
  /** Stops the event-loop monitor; a second call does nothing. */
  close(): void;
}

/**
 * A counter that exports the growth of process-wide totals since the registry's previous scrape: `series` maps each
 * value of `label` (or '' for an unlabelled counter) to a reader of its total, exported in units of `per`.
 */
function totalsCounter(registers: Registry[], name: string, help: string, label: string | undefined, series: Record<string, () => number>, per = 1): void {
  const seen = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames: label ? [label] : [],
    registers,
    collect() {
      for (const [value, read] of Object.entries(series)) {
        const total = read();
        const growth = (total - (seen.get(value) ?? 0)) / per;
        seen.set(value, total);
        if (label) this.inc({ [label]: value }, growth);
        else this.inc(growth);
      }
    },
  });
}

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];

  // A worker's series carry its index, so that aggregation keeps them apart (and PromQL sums them).
  const workerLabel = opts.worker === undefined ? {} : { worker: String(opts.worker) };
  const perWorker = opts.worker === undefined ? [] : ['worker'];
  const callsOpen = new Gauge({ name: 'eva_calls_open', help: 'Calls open now (per worker process when EVA_WORKERS > 1).', labelNames: perWorker, registers });
  const callsTotal = new Counter({ name: 'eva_calls_total', help: 'Calls started since the process started.', registers });
  const turns = new Counter({
    name: 'eva_turns_total',
    help: 'User turns handled, by source (a spoken turn in a call, or a text turn from the chat API or a call).',
    labelNames: ['source'] as const,
    registers,
  });
  const bargeIns = new Counter({ name: 'eva_barge_ins_total', help: 'Replies cut off because the person spoke over EVA.', registers });
  const sttRequests = new Counter({
    name: 'eva_stt_requests_total',
    help: 'STT requests (segment transcriptions and streaming commits); speculative="true" ones start at a pause, before the end of turn is known (cloud STT bills each).',
    labelNames: ['speculative'] as const,
    registers,
  });
  const endsOfTurn = new Counter({
    name: 'eva_end_of_turn_total',
    help: 'Spoken turns answered, by how the end of turn was decided: the predictor class (finished, likely, uncertain, unfinished) or window; early="true" before the end-of-turn window closed.',
    labelNames: ['class', 'early'] as const,
    registers,
  });
  const providerErrors = new Counter({
    name: 'eva_provider_errors_total',
    help: 'Provider failures, by provider adapter and error code.',
    labelNames: ['provider', 'code'] as const,
    registers,
  });
  const fallbacks = new Counter({
    name: 'eva_fallbacks_total',
    help: 'Requests moved from one provider to the next in a fallback chain.',
    labelNames: ['from', 'to'] as const,
    registers,
  });
  const limitHits = new Counter({
    name: 'eva_limit_hits_total',
    help: 'Requests refused or sockets closed by a limit (README "Configuration"), by limit.',
    labelNames: ['limit'] as const,
    registers,
  });
  const accessRefusals = new Counter({
    name: 'eva_access_refused_total',
    help: 'Requests refused by the access rules (docs/security.md), by error code.',
    labelNames: ['code'] as const,
    registers,
  });
  const unhandled = new Counter({
    name: 'eva_unhandled_rejections_total',
    help: 'Promise rejections no code handled (logged and survived; each one is a bug).',
    registers,
  });
  const workerRestarts = new Counter({
    name: 'eva_worker_restarts_total',
    help: 'Worker threads replaced after a crash or a hang, by worker (vad, espeak).',
    labelNames: ['worker'] as const,
    registers,
  });
  const stageLatency = new Histogram({
    name: 'eva_stage_latency_seconds',
    help: 'Duration of each stage of a turn (see the `metrics` event in docs/protocol.md: eou, stt, llm_ttft, first_sentence, tts_first_audio, first_audio; text_turn is a whole text-API turn).',
    labelNames: ['stage'] as const,
    buckets: STAGE_BUCKETS,
    registers,
  });

  // The lag seen since the previous scrape, from Node's own sampler (a libuv timer every 10 ms that does not
  // keep the process alive). Reset on each scrape, so two scrapers would each see part of the window.
  // Each sample is the time between two ticks of that timer, so an idle loop reads the resolution itself (10 ms):
  // the resolution is subtracted to report the lag alone.
  const LAG_RESOLUTION_MS = 10;
  const lag: IntervalHistogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  lag.enable();
  /** /health's own window, so that a health poll and a scrape do not cut each other's short. */
  const healthLag: IntervalHistogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  healthLag.enable();
  /** A quantile (1 = the maximum) of a lag histogram in ns, the sampler's resolution taken off. */
  const lagNs = (h: IntervalHistogram, q: number): number => {
    // The histogram records in ns and reports NaN/huge values before its first sample.
    const ns = q === 1 ? h.max : h.percentile(q * 100);
    return Number.isFinite(ns) && h.count > 0 ? Math.max(0, ns - LAG_RESOLUTION_MS * 1e6) : 0;
  };
  new Gauge({
    name: 'eva_event_loop_lag_seconds',
    help: 'Event-loop delay since the previous scrape, by quantile (1 = the maximum); per worker process when EVA_WORKERS > 1.',
    labelNames: ['quantile', ...perWorker],
    // Several workers' lags are kept apart by their `worker` label; a maximum is the safe merge otherwise.
    aggregator: 'max',
    registers,
    collect() {
      for (const q of LAG_QUANTILES) this.set({ quantile: String(q), ...workerLabel }, lagNs(lag, q) / 1e9);
      lag.reset();
    },
  });

  // Process-wide totals kept by the media legs and the VAD (a plain increment per packet or window); each
  // registry exports their growth since its previous scrape.
  totalsCounter(registers, 'eva_rtp_packets_total', "RTP packets of the calls' audio: received (before any drop) and sent (EVA's voice, DTX silence included).", 'direction', {
    received: () => rtpTotals.received,
    sent: () => rtpTotals.sent,
  });
  totalsCounter(registers, 'eva_rtp_filled_seconds_total', 'Silence that callers in Opus DTX did not send, handed to the VAD as zeros (EVA_OPUS_DTX).', undefined, { '': () => rtpTotals.filledSamples }, RX_RATE);
  totalsCounter(registers, 'eva_vad_windows_total', "VAD windows (32 ms of a call's audio): through the Silero model, or settled near-silence answered without it.", 'path', {
    model: () => vadTotals.modelWindows,
    skipped: () => vadTotals.skippedWindows,
  });
  totalsCounter(registers, 'eva_vad_batches_total', 'Silero model runs; windows through the model / runs = windows per batch (media/vad.ts batching).', undefined, { '': () => vadTotals.batches });

  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'eva_' });

  // Series with known labels exist from the start at zero, so rates and dashboards need no "absent" handling.
  callsOpen.set(workerLabel, 0);
  turns.inc({ source: 'voice' }, 0);
  turns.inc({ source: 'text' }, 0);
  for (const stage of STAGES) stageLatency.zero({ stage });
  for (const worker of WORKERS) workerRestarts.inc({ worker }, 0);
  for (const limit of LIMITS) limitHits.inc({ limit }, 0);
  for (const code of REFUSALS) accessRefusals.inc({ code }, 0);

  const knownStages = new Set<string>(STAGES);
  let open = 0;
  let closed = false;

  return {
    registry,
    contentType: registry.contentType,
    callOpened() {
      open++;
      callsOpen.set(workerLabel, open);
      callsTotal.inc();
    },
    callClosed() {
      // Never below zero, whatever the caller's bookkeeping.
      open = Math.max(0, open - 1);
      callsOpen.set(workerLabel, open);
    },
    turn(source) {
      turns.inc({ source });
    },
    bargeIn() {
      bargeIns.inc();
    },
    sttRequest(speculative) {
      sttRequests.inc({ speculative: String(speculative) });
    },
    endOfTurn(cls, early) {
      endsOfTurn.inc({ class: cls, early: String(early) });
    },
    providerError(provider, code) {
      providerErrors.inc({ provider, code });
    },
    fallback(from, to) {
      fallbacks.inc({ from, to });
    },
    limitHit(limit) {
      limitHits.inc({ limit });
    },
    accessRefused(code) {
      accessRefusals.inc({ code });
    },
    unhandledRejection() {
      unhandled.inc();
    },
    workerRestart(worker) {
      workerRestarts.inc({ worker });
    },
    observeStage(stage, ms) {
      if (!knownStages.has(stage) || !Number.isFinite(ms) || ms < 0) return;
      stageLatency.observe({ stage }, ms / 1000);
    },
    text: () => registry.metrics(),
    json: () => registry.getMetricsAsJSON(),
    loopLag() {
      const out = { p99Ms: lagNs(healthLag, 0.99) / 1e6, maxMs: lagNs(healthLag, 1) / 1e6 };
      healthLag.reset();
      return out;
    },
    close() {
      if (closed) return;
      closed = true;
      lag.disable();
      healthLag.disable();
    },
  };
}

/** What only the supervisor knows (EVA_WORKERS > 1): worker processes up, and how often each was restarted. */
export interface SupervisorMetrics {
  workerStarted(worker: number): void;
  workerRestarted(worker: number): void;
  setUp(n: number): void;
  json(): Promise<MetricsJson>;
}

export function createSupervisorMetrics(workers: number): SupervisorMetrics {
  const registry = new Registry();
  const registers = [registry];
  const up = new Gauge({ name: 'eva_workers_up', help: 'Worker processes serving (EVA_WORKERS > 1).', registers, aggregator: 'first' });
  new Gauge({ name: 'eva_workers', help: 'Worker processes configured (EVA_WORKERS).', registers, aggregator: 'first' }).set(workers);
  const restarts = new Counter({
    name: 'eva_worker_process_restarts_total',
    help: 'Worker processes started again after one exited, by worker index.',
    labelNames: ['worker'] as const,
    registers,
  });
  return {
    workerStarted: (worker) => restarts.inc({ worker: String(worker) }, 0),
    workerRestarted: (worker) => restarts.inc({ worker: String(worker) }),
    setUp: (n) => up.set(n),
    json: () => registry.getMetricsAsJSON(),
  };
}

/** Several registries' JSON (one per worker, and the supervisor's) as one exposition text. */
export function aggregateMetrics(parts: readonly MetricsJson[]): Promise<string> {
  return AggregatorRegistry.aggregate([...parts]).metrics();
}
