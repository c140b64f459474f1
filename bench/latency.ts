// What the bench measures, as pure functions of what a ProbeCall recorded: the frames it heard (arrival time and
// RMS of the decoded audio), the server messages it got (arrival times), and when its own audio left. No clocks,
// sockets or timers here: every figure is a difference of two recorded instants, so the tests can build
// synthetic records with known onsets and check the arithmetic exactly.
//
// All instants are performance.now() of the bench process (ms). Server-side figures come from EVA's `metrics`
// event, whose values are durations on the server's own clock; only differences of durations mix the two.
import type { HeardFrame, PlayResult, TimedEvent } from './probe-client.js';
import type { MetricsMessage } from '../server/signaling.js';

/** RMS (16-bit samples) from which a received frame counts as audible (~ −50 dBFS); same as ProbeCall's. */
export const AUDIBLE_RMS = 100;
/** A gap between two received frames longer than this is an underrun (EVA sends a frame every 20 ms, also silence). */
export const UNDERRUN_GAP_MS = 60;
/** Samples over which a frame's audible onset is found: 2 ms at 16 kHz (a tenth of a frame). */
export const ONSET_WINDOW = 32;

/**
 * Where sound becomes audible in `pcm`, in ms: in the first ONSET_WINDOW samples whose RMS reaches `rms`, the
 * first sample whose own level does (a window that merely ends on the sound does not move the onset before it).
 * Windows slide by one sample, so the answer is exact to 1/16 ms. Undefined when no window is audible. The probe
 * records it for every frame it decodes (HeardFrame.onsetMs).
 */
export function audibleOnsetMs(pcm: Int16Array, rms = AUDIBLE_RMS, window = ONSET_WINDOW, rate = 16000): number | undefined {
  if (pcm.length < window) return undefined;
  const limit = rms * rms * window;
  let sum = 0;
  for (let i = 0; i < window; i++) sum += pcm[i]! * pcm[i]!;
  for (let i = 0; ; i++) {
    if (sum >= limit) {
      for (let j = i; j < i + window; j++) if (Math.abs(pcm[j]!) >= rms) return (j * 1000) / rate;
      return (i * 1000) / rate; // unreachable: a window at RMS ≥ rms has a sample at ≥ rms
    }
    if (i + window >= pcm.length) return undefined;
    sum += pcm[i + window]! * pcm[i + window]! - pcm[i]! * pcm[i]!;
  }
}

/** Opus payloads from this size are speech: EVA's silence packets are 3 bytes (load.ts classifies the same way). */
export const SPEECH_PACKET_BYTES = 20;

/**
 * What a clip is, for the report's breakdown: a short answer ("Yes."), a finished statement, a question, a sentence
 * with a mid-sentence pause (bench/utterances/manifest.json `class`).
 */
export type ClipClass = 'short' | 'statement' | 'question' | 'paused' | 'backchannel';
export const CLIP_CLASSES: readonly ClipClass[] = ['short', 'statement', 'question', 'paused'];

/**
 * turn: a clip, then EVA's answer. barge: speech over the answer (EVA should stop). backchannel: "uh huh" over the
 * answer; echo: EVA's own answer fed back into the microphone, quieter (EVA should not stop for either).
 * pause: a clip with a mid-sentence pause (EVA should wait).
 */
export type TrialKind = 'turn' | 'barge' | 'backchannel' | 'echo' | 'pause';

/** A pause inside a played clip, in the bench's clock. */
export interface TimedPause {
  startAt: number;
  endAt: number;
}

/** Everything recorded for one trial; `heard` and `events` may hold the whole call (they are filtered by time). */
export interface TrialCapture {
  kind: TrialKind;
  /** Manifest file name of the clip that was answered (for barge/backchannel/echo: the first clip, the question). */
  utterance: string;
  play: PlayResult;
  /** Mid-sentence pauses of `play`'s clip (pause trials). */
  pauses?: TimedPause[];
  /** The clip played over EVA's reply (barge, backchannel and echo trials). */
  over?: { utterance: string; play: PlayResult; voicedStartMs: number };
  heard: readonly HeardFrame[];
  events: readonly TimedEvent[];
  /** Nothing after this instant belongs to the trial. */
  endAt: number;
  warmup?: boolean;
  /** The answered clip's class (manifest). */
  clipClass?: ClipClass;
  /** The stand-in STT ended partial transcripts of this clip with a full stop (every other pause trial). */
  partialFullStop?: boolean;
}

export interface AnalyzeOptions {
  /** Audible threshold; default AUDIBLE_RMS. */
  audibleRms?: number;
  /**
   * How long before the end of turn a speculative STT + LLM start (work starts on a short
   * pause). Default: per turn, its `eou_ms` minus `pauseMs` (EVA may end a turn early, 240 ms after the speech,
   * when the transcript reads as finished); this fixed value only when a turn reports no `eou_ms`: 480 − 160.
   */
  speculationLeadMs?: number;
  /** EVA's pause window (EVA_VAD_PAUSE_MS), ms. Default 160. */
  pauseMs?: number;
}

/** One trial's figures, all in ms; a figure that could not be measured is absent. What the results file stores. */
export interface TrialResult extends StageSplit {
  kind: TrialKind;
  utterance: string;
  warmup?: boolean;
  clipClass?: ClipClass;
  partialFullStop?: boolean;
  /** Server turn number, from the metrics event. */
  turn?: number;
  /** Last voiced sample sent → first audible reply frame received. */
  perceivedMs?: number;
  /** Onset of speech over EVA's reply → last reply frame received (barge trials). */
  bargeStopMs?: number;
  /** Onset → `interrupted` event received. */
  bargeEventMs?: number;
  /** EVA's reply was audible when the clip over it began (else the trial measured nothing). */
  overReply?: boolean;
  /** EVA stopped (an `interrupted` event) on a backchannel or its own echo: a false barge-in. */
  falseBargeIn?: boolean;
  /** EVA's reply was audible inside a mid-sentence pause or before the speech ended. */
  falseCutoff?: boolean;
  /** A transcript arrived before the clip ended: the server ended the turn in the pause. */
  splitTurn?: boolean;
  /** Last voiced sample sent → the reply's first speech packet (≥ SPEECH_PACKET_BYTES) received. */
  replyPacketMs?: number;
  /**
   * perceived − replyPacketMs: how long the reply's first packets stayed below the audible threshold once they
   * arrived (Opus's algorithmic delay, a quiet attack of the synthesized voice). Part of network+jitter.
   */
  quietStartMs?: number;
  /**
   * replyPacketMs − first_audio: the rest of network+jitter — the last voiced frame's uplink, the reply packet's
   * downlink, and the error of EVA's end-of-speech instant (the end of its last voiced 32 ms VAD window, as EVA
   * times it, against the frame that carried the last voiced sample).
   */
  edgeTransitMs?: number;
  /** Audible reply received for the trial, ms (frames × 20). */
  replyAudibleMs?: number;
  /** Longest silence inside the answer (between its first and last audible frames before anything is played over it). */
  replyGapMs?: number;
  /** Why figures are missing (no reply, no metrics …). */
  note?: string;
}

/** First audible frame in [from, to). */
export function firstAudibleBetween(heard: readonly HeardFrame[], from: number, to = Infinity, rms = AUDIBLE_RMS): HeardFrame | undefined {
  for (const f of heard) if (f.at >= from && f.at < to && f.rms >= rms) return f;
  return undefined;
}

/** Last audible frame in [from, to). */
export function lastAudibleBetween(heard: readonly HeardFrame[], from: number, to = Infinity, rms = AUDIBLE_RMS): HeardFrame | undefined {
  let last: HeardFrame | undefined;
  for (const f of heard) if (f.at >= from && f.at < to && f.rms >= rms) last = f;
  return last;
}

/**
 * The first instant in [from, to) at which received audio is audible: the onset inside the first frame that is
 * audible in part (`onsetMs`: its first 2 ms at RMS ≥ 100) and whose sound goes on (the frame, or the one after
 * it, is audible as a whole: an isolated click does not count); a frame recorded without onsets (synthetic
 * records) counts from its arrival when its RMS is audible. The onset matters: a reply whose first frame turns
 * audible 15 ms in has a whole-frame RMS under the threshold, and counting from the next frame's arrival would
 * add 20 ms that nobody waited; a frame audible from 12 ms in is not heard at its arrival either.
 */
export function audibleOnsetBetween(heard: readonly HeardFrame[], from: number, to = Infinity, rms = AUDIBLE_RMS): { at: number; frame: HeardFrame } | undefined {
  for (let i = 0; i < heard.length; i++) {
    const f = heard[i]!;
    if (f.at < from) continue;
    if (f.at >= to) return undefined;
    if (f.onsetMs !== undefined) {
      const next = heard[i + 1];
      if (f.rms >= rms || (next !== undefined && next.rms >= rms)) return { at: f.at + f.onsetMs, frame: f };
    } else if (f.rms >= rms) {
      return { at: f.at, frame: f };
    }
  }
  return undefined;
}

/** Perceived latency: last voiced sample sent → the reply's audible onset received after it (undefined: no reply). */
export function perceivedLatency(lastVoicedAt: number, heard: readonly HeardFrame[], until = Infinity, rms = AUDIBLE_RMS): number | undefined {
  const f = audibleOnsetBetween(heard, lastVoicedAt, until, rms);
  return f ? f.at - lastVoicedAt : undefined;
}

/** The first speech packet (by size) received in [from, to); only frames recorded with their size count. */
export function firstSpeechPacketBetween(heard: readonly HeardFrame[], from: number, to = Infinity): HeardFrame | undefined {
  for (const f of heard) if (f.at >= from && f.at < to && f.bytes !== undefined && f.bytes >= SPEECH_PACKET_BYTES) return f;
  return undefined;
}

/** The first `metrics` event received in [from, to). */
export function metricsBetween(events: readonly TimedEvent[], from: number, to = Infinity): { at: number; msg: MetricsMessage } | undefined {
  for (const e of events) if (e.at >= from && e.at < to && e.msg.type === 'metrics') return { at: e.at, msg: e.msg };
  return undefined;
}

/** The server's per-turn stages and what is derived from them (see splitStages). */
export interface StageSplit {
  eouMs?: number;
  /**
   * EVA's end-of-turn predictor, when its metrics event says (`eou_class`: what it took the turn for, e.g.
   * finished / likely / uncertain / unfinished; `decision`: `early` when it answered before the end-of-turn window
   * closed (`eou_early`), `window` when at it, or what EVA names in a `decision` field). Absent from EVAs that do
   * not send them.
   */
  eouClass?: string;
  decision?: string;
  sttMs?: number;
  llmTtftMs?: number;
  firstSentenceMs?: number;
  ttsFirstAudioMs?: number;
  /** Server: end of speech → first reply packet sent. */
  firstAudioMs?: number;
  /** stt + first sentence (LLM, includes its TTFT) + TTS to first audio. */
  providersMs?: number;
  /** perceived − first_audio: uplink of the last voiced frame, downlink, decode, and the VAD's edge error. */
  networkMs?: number;
  /** EVA's own part: first_audio − the critical path of (end-of-turn window, provider chain). */
  overheadMs?: number;
  /** The provider chain overlapped the end-of-turn window (it started on a pause). */
  speculative?: boolean;
}

/**
 * The server's split of one turn, and what is left over.
 *
 * EVA overhead = perceived − (STT + LLM to first sentence + TTS to first audio) − end-of-turn window − network.
 * The network part is what the client sees and the server does not: network = perceived − first_audio. So the
 * sequential overhead is first_audio − eou − providers. But EVA starts STT and the LLM speculatively on a pause,
 * `speculationLeadMs` before the end of turn, and holds what they produce until the end of turn; then the provider
 * chain overlaps the silence window and the critical path is max(eou, eou − lead + providers). The two readings
 * differ by min(providers, lead), so which one applies matters:
 *   - `replyAfterCommitMs` decides when given: the turn's first `reply` event minus its `state: thinking` event,
 *     both on the client's clock (EVA sends `thinking` when the end of turn commits the reply, right after
 *     releasing what a speculative turn held). A speculative turn's first text comes max(0, stt + ttft − lead)
 *     after it (≤ 0: released together), a sequential one's stt + ttft after it; the nearer prediction wins.
 *     (Timing against the last voiced sample instead would carry the VAD's ±30 ms edge error.)
 *   - without it (an agent that sends no text), a negative sequential reading means speculative; a speculative
 *     turn whose providers were fast is then read as sequential, and its overhead under-reported by the providers'
 *     time.
 */
export function splitStages(m: MetricsMessage | undefined, perceivedMs: number | undefined, speculationLeadMs = 320, replyAfterCommitMs?: number): StageSplit {
  if (!m) return {};
  const extra = m as unknown as Record<string, unknown>;
  const label = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined);
  const s: StageSplit = {
    eouMs: m.eou_ms,
    eouClass: label(extra.eou_class),
    // `decision` when EVA names it; else from `eou_early`: answered before the end-of-turn window closed, or at it.
    decision: label(extra.decision) ?? (typeof extra.eou_early === 'boolean' ? (extra.eou_early ? 'early' : 'window') : undefined),
    sttMs: m.stt_ms,
    llmTtftMs: m.llm_ttft_ms,
    firstSentenceMs: m.first_sentence_ms,
    ttsFirstAudioMs: m.tts_first_audio_ms,
    firstAudioMs: m.first_audio_ms,
  };
  if (m.stt_ms !== undefined && m.first_sentence_ms !== undefined && m.tts_first_audio_ms !== undefined) {
    s.providersMs = m.stt_ms + m.first_sentence_ms + m.tts_first_audio_ms;
  }
  if (perceivedMs !== undefined && m.first_audio_ms !== undefined) s.networkMs = perceivedMs - m.first_audio_ms;
  if (m.first_audio_ms !== undefined && m.eou_ms !== undefined && s.providersMs !== undefined) {
    const sequential = m.first_audio_ms - m.eou_ms - s.providersMs;
    const overlapped = m.first_audio_ms - Math.max(m.eou_ms, m.eou_ms - speculationLeadMs + s.providersMs);
    let speculative = sequential < 0;
    if (replyAfterCommitMs !== undefined && m.stt_ms !== undefined && m.llm_ttft_ms !== undefined) {
      const text = m.stt_ms + m.llm_ttft_ms;
      const ifSpeculative = Math.max(0, text - speculationLeadMs);
      const seen = Math.max(0, replyAfterCommitMs);
      speculative = Math.abs(seen - ifSpeculative) < Math.abs(seen - text);
    }
    s.speculative = speculative;
    s.overheadMs = speculative ? overlapped : sequential;
  }
  return s;
}

/**
 * Barge-in stop: onset of the speech sent over EVA's reply → the last reply frame received. Only frames that can
 * be the interrupted reply count: from the onset until `until` (the end of the interrupting speech — EVA cannot
 * answer the new turn before it ends). Undefined when the reply was still audible at `until` (it never stopped).
 */
export function bargeInStop(onsetAt: number, heard: readonly HeardFrame[], until: number, rms = AUDIBLE_RMS): { stopMs?: number; stopped: boolean } {
  const last = lastAudibleBetween(heard, onsetAt, until, rms);
  if (!last) return { stopMs: 0, stopped: true };
  // Still talking in the last 100 ms before `until`: not stopped.
  if (last.at >= until - 100) return { stopped: false };
  return { stopMs: last.at - onsetAt, stopped: true };
}

/** EVA's reply was audible in the `windowMs` before `at`. */
export function audibleBefore(heard: readonly HeardFrame[], at: number, windowMs = 100, rms = AUDIBLE_RMS): boolean {
  return firstAudibleBetween(heard, at - windowMs, at, rms) !== undefined;
}

/**
 * False cut-off: EVA's reply became audible inside a mid-sentence pause or before the clip's speech ended (it took
 * the pause for an end of turn). `splitTurn`: a transcript arrived before the clip ended, so the server ended a
 * turn in the pause even if its audio came later.
 */
export function cutOff(
  play: PlayResult,
  pauses: readonly TimedPause[],
  heard: readonly HeardFrame[],
  events: readonly TimedEvent[],
  rms = AUDIBLE_RMS,
): { falseCutoff: boolean; splitTurn: boolean } {
  const firstPause = pauses.length ? Math.min(...pauses.map((p) => p.startAt)) : play.startAt;
  const falseCutoff = firstAudibleBetween(heard, firstPause, play.lastVoicedAt, rms) !== undefined;
  const splitTurn = events.some((e) => e.at >= play.startAt && e.at < play.lastVoicedAt && e.msg.type === 'transcript');
  return { falseCutoff, splitTurn };
}

/** Audible ms received in [from, to). */
export function audibleMsBetween(heard: readonly HeardFrame[], from: number, to: number, rms = AUDIBLE_RMS): number {
  let n = 0;
  for (const f of heard) if (f.at >= from && f.at < to && f.rms >= rms) n++;
  return n * 20;
}

/** Turn one trial's capture into its figures. */
export function analyzeTrial(c: TrialCapture, opts: AnalyzeOptions = {}): TrialResult {
  const rms = opts.audibleRms ?? AUDIBLE_RMS;
  const r: TrialResult = { kind: c.kind, utterance: c.utterance };
  if (c.warmup) r.warmup = true;
  if (c.clipClass) r.clipClass = c.clipClass;
  if (c.partialFullStop !== undefined) r.partialFullStop = c.partialFullStop;
  const notes: string[] = [];
  // The answer to the first clip must come before the clip played over it (if any) starts.
  const perceived = perceivedLatency(c.play.lastVoicedAt, c.heard, c.over ? c.over.play.startAt : c.endAt, rms);
  if (perceived !== undefined) r.perceivedMs = perceived;
  else notes.push('no audible reply');
  // The answer to the whole clip: the first metrics event after its speech ended. An answer given inside a pause
  // (a false cut-off) sends one earlier; it is the fallback only when no later one came.
  const metrics = metricsBetween(c.events, c.play.lastVoicedAt, c.endAt) ?? metricsBetween(c.events, c.play.startAt, c.endAt);
  if (metrics) {
    r.turn = metrics.msg.turn;
    const turn = metrics.msg.turn;
    const reply = c.events.find((e) => e.at >= c.play.startAt && e.at < c.endAt && e.msg.type === 'reply' && e.msg.turn === turn);
    const thinking = c.events.find((e) => e.at >= c.play.lastVoicedAt && e.at < c.endAt && e.msg.type === 'state' && e.msg.state === 'thinking');
    const replyAfterCommitMs = reply && thinking ? reply.at - thinking.at : undefined;
    const lead = opts.speculationLeadMs ?? (metrics.msg.eou_ms !== undefined ? Math.max(0, metrics.msg.eou_ms - (opts.pauseMs ?? 160)) : undefined);
    Object.assign(r, dropUndefined(splitStages(metrics.msg, r.perceivedMs, lead, replyAfterCommitMs)));
  } else {
    notes.push('no metrics event');
  }
  // Every trial can be cut off (EVA audible before the clip's speech ended); a pause trial is where it is likely.
  const cut = cutOff(c.play, c.pauses ?? [], c.heard, c.events, rms);
  if (c.kind === 'pause') Object.assign(r, cut);
  else if (cut.falseCutoff) r.falseCutoff = true;
  const packet = firstSpeechPacketBetween(c.heard, c.play.lastVoicedAt, c.over ? c.over.play.startAt : c.endAt);
  if (packet && r.perceivedMs !== undefined) {
    r.replyPacketMs = packet.at - c.play.lastVoicedAt;
    r.quietStartMs = r.perceivedMs - r.replyPacketMs;
    if (r.firstAudioMs !== undefined) r.edgeTransitMs = r.replyPacketMs - r.firstAudioMs;
  }
  if (cut.falseCutoff && r.networkMs !== undefined) {
    // After an answer inside the pause was taken back, the final answer's first_audio need not be the first packet
    // the client got after the speech (seen: 105 ms apart): the network split of such a trial is not a network's.
    delete r.networkMs;
    delete r.quietStartMs;
    delete r.edgeTransitMs;
    notes.push('no network split after a cut-off');
  }
  // EVA already talking when the speech ended (it answered inside a pause, or an earlier answer ran on): the first
  // audible frame after the end is not the start of an answer, so there is no latency to read.
  if (r.perceivedMs !== undefined && audibleBefore(c.heard, c.play.lastVoicedAt, 100, rms)) {
    delete r.perceivedMs;
    delete r.networkMs;
    delete r.replyPacketMs;
    delete r.quietStartMs;
    delete r.edgeTransitMs;
    notes.push('EVA was already talking when the speech ended');
  }
  if (c.over) {
    const onset = c.over.play.startAt + c.over.voicedStartMs;
    r.overReply = audibleBefore(c.heard, onset, 100, rms);
    const interrupted = c.events.find((e) => e.at >= onset && e.at < c.endAt && e.msg.type === 'interrupted');
    if (c.kind === 'barge') {
      if (!r.overReply) notes.push('reply was not audible at the onset');
      const stop = bargeInStop(onset, c.heard, c.over.play.lastVoicedAt, rms);
      if (!interrupted) notes.push('no interrupted event');
      else if (!stop.stopped) notes.push('reply did not stop while the person spoke');
      // Without the event the reply may simply have ended by itself: that is not a stop.
      if (interrupted && stop.stopped && r.overReply) r.bargeStopMs = stop.stopMs;
      if (interrupted) r.bargeEventMs = interrupted.at - onset;
    } else {
      r.falseBargeIn = interrupted !== undefined;
    }
  }
  r.replyAudibleMs = audibleMsBetween(c.heard, c.play.lastVoicedAt, c.endAt, rms);
  if (r.perceivedMs !== undefined) r.replyGapMs = longestSilence(c.heard, c.play.lastVoicedAt + r.perceivedMs, c.over ? c.over.play.startAt : c.endAt, rms);
  if (notes.length) r.note = notes.join('; ');
  return r;
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Longest run without an audible frame between the first and the last audible frame in [from, to), ms. */
export function longestSilence(heard: readonly HeardFrame[], from: number, to: number, rms = AUDIBLE_RMS): number {
  let prev: number | undefined;
  let longest = 0;
  for (const f of heard) {
    if (f.at < from || f.at >= to || f.rms < rms) continue;
    if (prev !== undefined) longest = Math.max(longest, f.at - prev - 20);
    prev = f.at;
  }
  return longest;
}

/** Gaps between consecutive received frames longer than `gapMs` (audio underruns at the listener). */
export function underruns(frameTimes: readonly number[], gapMs = UNDERRUN_GAP_MS): { count: number; maxGapMs: number } {
  let count = 0;
  let maxGapMs = 0;
  for (let i = 1; i < frameTimes.length; i++) {
    const gap = frameTimes[i]! - frameTimes[i - 1]!;
    if (gap > maxGapMs) maxGapMs = gap;
    if (gap > gapMs) count++;
  }
  return { count, maxGapMs };
}

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * Nearest-rank percentile of sorted values: the smallest value v such that at least p % of the values are ≤ v,
 * i.e. sorted[ceil(p/100 × n) − 1]. Always one of the measured values (no interpolation), so with 20 turns p95
 * is the 19th smallest and p99 the largest — honest for small samples.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  if (p <= 0) return sorted[0]!;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** n, min, nearest-rank p50/p95/p99, max and mean of the finite values (NaNs for an empty set). */
export function summarize(values: readonly (number | undefined)[]): Summary {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  const n = v.length;
  return {
    n,
    min: n ? v[0]! : NaN,
    p50: percentile(v, 50),
    p95: percentile(v, 95),
    p99: percentile(v, 99),
    max: n ? v[n - 1]! : NaN,
    mean: n ? v.reduce((a, b) => a + b, 0) / n : NaN,
  };
}

/** The figures summarized for every profile, in table order, with what each means (README, table). */
export const FIGURES = [
  ['perceivedMs', 'perceived latency (client: last voiced sample sent → first audible reply frame)'],
  ['eouMs', 'end-of-turn decision (server: end of speech → end of turn)'],
  ['sttMs', 'STT'],
  ['llmTtftMs', 'LLM time to first token'],
  ['firstSentenceMs', 'LLM time to first sentence'],
  ['ttsFirstAudioMs', 'TTS time to first audio'],
  ['firstAudioMs', 'server: end of speech → first reply packet sent'],
  ['providersMs', 'providers: STT + LLM first sentence + TTS first audio'],
  ['overheadMs', "EVA's overhead (first_audio − critical path of eou window and providers)"],
  ['networkMs', 'network + jitter + decode (perceived − first_audio)'],
  ['quietStartMs', "of which the reply's quiet start (first speech packet received → audible onset)"],
  ['edgeTransitMs', "of which uplink + downlink + EVA's end-of-speech error (first speech packet received − first_audio)"],
  ['bargeStopMs', 'barge-in stop (client: onset of speech sent → last reply frame received)'],
  ['bargeEventMs', 'barge-in event (client: onset → `interrupted` received)'],
] as const satisfies readonly (readonly [keyof TrialResult, string])[];

export type FigureKey = (typeof FIGURES)[number][0];

/** Summaries of every figure over the trials that are not warm-ups. */
export function summarizeTrials(trials: readonly TrialResult[]): Record<FigureKey, Summary> {
  const counted = trials.filter((t) => !t.warmup);
  const out = {} as Record<FigureKey, Summary>;
  for (const [key] of FIGURES) out[key] = summarize(counted.map((t) => t[key] as number | undefined));
  return out;
}

export interface Counts {
  turns: number;
  replies: number;
  bargeTrials: number;
  /** Barge trials where the reply was audible at the onset. */
  bargeValid: number;
  bargeNotStopped: number;
  backchannelTrials: number;
  /** Backchannel trials that stopped EVA. */
  falseBargeIns: number;
  echoTrials: number;
  /** Echo trials that stopped EVA. */
  echoBargeIns: number;
  pauseTrials: number;
  falseCutoffs: number;
  splitTurns: number;
  speculativeTurns: number;
}

export function countTrials(trials: readonly TrialResult[]): Counts {
  const t = trials.filter((x) => !x.warmup);
  const barge = t.filter((x) => x.kind === 'barge');
  const back = t.filter((x) => x.kind === 'backchannel');
  const echo = t.filter((x) => x.kind === 'echo');
  const pause = t.filter((x) => x.kind === 'pause');
  return {
    turns: t.length,
    replies: t.filter((x) => x.perceivedMs !== undefined).length,
    bargeTrials: barge.length,
    bargeValid: barge.filter((x) => x.overReply).length,
    bargeNotStopped: barge.filter((x) => x.overReply && x.bargeStopMs === undefined).length,
    backchannelTrials: back.length,
    falseBargeIns: back.filter((x) => x.falseBargeIn).length,
    echoTrials: echo.length,
    echoBargeIns: echo.filter((x) => x.falseBargeIn).length,
    pauseTrials: pause.length,
    falseCutoffs: pause.filter((x) => x.falseCutoff).length,
    splitTurns: pause.filter((x) => x.splitTurn).length,
    speculativeTurns: t.filter((x) => x.speculative).length,
  };
}

/** The trial whose perceived latency is the nearest-rank median (for the waterfall chart). */
export function medianTrial(trials: readonly TrialResult[]): TrialResult | undefined {
  const withP = trials.filter((t) => !t.warmup && t.perceivedMs !== undefined).sort((a, b) => a.perceivedMs! - b.perceivedMs!);
  if (!withP.length) return undefined;
  return withP[Math.ceil(0.5 * withP.length) - 1];
}

/** One row of the breakdown by clip class (report). */
export interface ClassRow {
  clipClass: ClipClass;
  /** Counted trials whose answered clip has this class. */
  trials: number;
  eou: Summary;
  perceived: Summary;
  /** Trials in which EVA was audible before the clip's speech ended. */
  falseCutoffs: number;
  /** Pause trials whose partial transcripts ended in ".", and the false cut-offs among them. */
  fullStopTrials: number;
  fullStopCutoffs: number;
  /** How often EVA's predictor decided what (metrics `decision`), when it says. */
  decisions: Record<string, number>;
}

/** EOU time, perceived latency, false cut-offs and decisions per clip class, warm-ups left out. */
export function classBreakdown(trials: readonly TrialResult[]): ClassRow[] {
  const counted = trials.filter((t) => !t.warmup);
  const rows: ClassRow[] = [];
  for (const c of CLIP_CLASSES) {
    const of = counted.filter((t) => t.clipClass === c);
    if (!of.length) continue;
    const decisions: Record<string, number> = {};
    for (const t of of) if (t.decision !== undefined) decisions[t.decision] = (decisions[t.decision] ?? 0) + 1;
    const stop = of.filter((t) => t.partialFullStop);
    rows.push({
      clipClass: c,
      trials: of.length,
      eou: summarize(of.map((t) => t.eouMs)),
      perceived: summarize(of.map((t) => t.perceivedMs)),
      falseCutoffs: of.filter((t) => t.falseCutoff).length,
      fullStopTrials: stop.length,
      fullStopCutoffs: stop.filter((t) => t.falseCutoff).length,
      decisions,
    });
  }
  return rows;
}
