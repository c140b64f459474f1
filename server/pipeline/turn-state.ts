// Which reply turn is current, as a pure reducer: events from the call (a pause, each window of silence, a
// transcript, the person going on, the end of turn, a typed turn, a barge-in, a reply playing out) in, the new
// state and the effects to run out. No timers and no clock of its own: every event carries `at` (ms on the
// caller's clock), so tables of events test it (turn-state.test.ts). The agent (server/agent-pipeline.ts) is the
// thin shell that owns the ReplyTurns and runs the effects.
//
// A turn's life: a *speculative* turn starts at the first silent window (STT, then the LLM, nothing leaves);
// the predictor (eou.ts) may answer it *early*, before the end-of-turn window, which commits it but leaves it
// retractable until that window closes; otherwise the end of turn *commits* it. If the person goes on, a
// speculative turn is *discarded* and an early answer is *retracted* (nothing of it enters the history) — at once
// if it was not heard yet; once heard, only when the person's new speech lasts a barge-in's worth, so that an
// "uh huh" does not take it back. Speech over EVA that lasts is a *barge-in*: the current turn is interrupted
// and keeps only what was heard.
import { DEFAULT_EOU_CONFIG, decide, type Contour, type EouConfig, type EouVerdict } from './eou.js';

export interface TurnMachineConfig {
  eou: EouConfig;
  /** Speculative turns whose STT may be in flight at once (cloud STT bills per request); 0 = no speculation. */
  speculativeMax: number;
}

export const DEFAULT_TURN_MACHINE: TurnMachineConfig = { eou: DEFAULT_EOU_CONFIG, speculativeMax: 2 };

/**
 * Voice that starts within this long of the early answer becoming audible may be the person going on with the
 * sentence EVA cut into (then it is contested: retracted after a barge-in's worth of voice); later voice is a
 * reaction to what EVA says — a barge-in or a backchannel, a new turn. 250 ms: the bench's paused clips resume
 * 250–450 ms after their pause began, i.e. within ~300 ms of an answer at 120 ms; its barge-in trials speak 300 ms
 * into the answer.
 */
export const CONTEST_MS = 250;

/** Pauses that resumed, kept for the speaker's pace (a rolling window). */
const PACE_WINDOW = 8;

interface Speculative {
  id: number;
  /** null until its STT answered. */
  transcript: string | null;
  /** Whether its STT request is still in flight (counts towards speculativeMax). */
  sttPending: boolean;
}

export interface TurnState {
  next: number;
  /** The speculative turn of the current silence, if one runs. */
  spec: Speculative | null;
  /** Speculative turns whose STT is still in flight, this one included (discarded ones count until they settle). */
  sttInFlight: number[];
  /** A turn answered before the end of turn: retractable until the end of turn comes. */
  early: number | null;
  /** When the early answer's first frame left (caller's clock); null while it has not. */
  earlyHeardAt: number | null;
  /**
   * The person spoke again after the early answer was heard: her audio is paused (the detector holds it) while
   * it is unclear whether they go on (a barge-in's worth of voice: retract) or it was a backchannel (the end of
   * turn comes: she goes on).
   */
  contested: boolean;
  /** The committed turn that is thinking or talking. */
  current: number | null;
  /** When the person's speech ended (caller's clock), while it is silent within a turn; null otherwise. */
  speechEndAt: number | null;
  contour: Contour;
  /** Streaming STT's text of the turn so far, while no speculative transcript is in hand. */
  partial: string | null;
  /** Whether the end-of-turn window was extended for this silence (told to the detector once). */
  extended: boolean;
  /** Lengths of recent pauses inside turns, ms. */
  pauses: number[];
  retractions: number;
  /**
   * How far the VAD's view of the silence lags the wall clock (batched inference in a worker), from the last
   * silence event: events with no audio time of their own (a transcript) subtract it.
   */
  lagMs: number;
  /** The predictor's last verdict for the current silence (logs, metrics). */
  verdict: EouVerdict | null;
}

export const INITIAL_TURN_STATE: TurnState = {
  next: 1,
  spec: null,
  sttInFlight: [],
  early: null,
  earlyHeardAt: null,
  contested: false,
  current: null,
  speechEndAt: null,
  contour: 'unknown',
  lagMs: 0,
  partial: null,
  extended: false,
  pauses: [],
  retractions: 0,
  verdict: null,
};

export type TurnMachineEvent =
  /** The first silent window after speech: `speechEndAt` on the caller's clock, the contour of the last voice. */
  | { type: 'pause'; at: number; speechEndAt: number; contour: Contour }
  /** Another window of silence: `silenceMs` by the audio's own clock (the VAD runs behind the wall clock). */
  | { type: 'silence'; at: number; silenceMs?: number }
  /** Streaming STT's partial text of the turn so far (feeds the predictor until a transcript is in hand). */
  | { type: 'partial'; at: number; text: string }
  /** A speculative turn's STT answered (or failed: `text` null). */
  | { type: 'transcript'; at: number; id: number; text: string | null }
  /** A speculative turn's STT request settled (for the in-flight cap). */
  | { type: 'stt_settled'; at: number; id: number }
  /** The person went on after a pause; `onsetAt`: when that voice began (caller's clock), if known. */
  | { type: 'resume'; at: number; onsetAt?: number }
  /** The end-of-turn window closed: the turn is over, whatever was decided. */
  | { type: 'end_of_turn'; at: number; speechEndAt: number }
  | { type: 'text'; at: number }
  | { type: 'barge_in'; at: number }
  /** A committed turn's first frame left (EVA is audible). */
  | { type: 'talking'; at: number; id: number }
  /** A committed turn finished (played out, failed, or had nothing to say). */
  | { type: 'finished'; at: number; id: number };

export type TurnEffect =
  /** Start a speculative turn on the audio so far. */
  | { type: 'speculate'; id: number; speechEndAt: number }
  /** Release a speculative turn: `early` when answered before the end of turn. */
  | { type: 'commit'; id: number; speechEndAt: number; eouMs: number; early: boolean; verdict: EouVerdict | null }
  /** Start a committed turn on the whole turn's audio (no speculative turn could be used). */
  | { type: 'start_audio'; id: number; speechEndAt: number; eouMs: number }
  | { type: 'start_text'; id: number }
  /** Throw a speculative turn away (nothing of it was heard). */
  | { type: 'discard'; id: number }
  /** Take an early answer back: the person went on; none of it enters the history. */
  | { type: 'retract'; id: number }
  /** Stop the current turn: `interrupted` by a barge-in, or `superseded` by a newer turn. */
  | { type: 'stop'; id: number; reason: 'interrupted' | 'superseded' }
  /** The predictor says the person is clearly not done: keep the end-of-turn window open up to its maximum. */
  | { type: 'extend' }
  /** The voice now is a new turn, not the answered one going on: the detector starts a turn at its onset. */
  | { type: 'split' };

export interface Step {
  state: TurnState;
  effects: TurnEffect[];
}

function median(xs: readonly number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Make `id` the current turn, stopping the one it replaces (before the new one's audio is released). */
function promote(s: TurnState, id: number, effects: TurnEffect[]): TurnState {
  if (s.current !== null && s.current !== id) effects.push({ type: 'stop', id: s.current, reason: 'superseded' });
  return { ...s, current: id };
}

/** Ask the predictor, at `at`, whether the speculative turn may be answered now. */
function evaluate(s: TurnState, at: number, config: TurnMachineConfig, effects: TurnEffect[]): TurnState {
  const speechEndAt = s.speechEndAt;
  if (speechEndAt === null || s.early !== null) return s;
  const verdict = decide(
    { transcript: s.spec?.transcript ?? s.partial, contour: s.contour, silenceMs: Math.max(0, at - speechEndAt - s.lagMs), paceMs: median(s.pauses), retractions: s.retractions },
    config.eou,
  );
  s = { ...s, verdict };
  if (verdict.decision === 'not_done' && !s.extended) {
    effects.push({ type: 'extend' });
    s = { ...s, extended: true };
  }
  // Answer only a transcript in hand: without one, the end of turn (fallback window) commits what runs.
  if (verdict.decision === 'answer' && s.spec && (s.spec.transcript !== null || s.partial !== null) && config.eou.finishedMs > 0) {
    const id = s.spec.id;
    s = promote({ ...s, spec: null, early: id, earlyHeardAt: null, contested: false }, id, effects);
    effects.push({ type: 'commit', id, speechEndAt, eouMs: at - speechEndAt, early: true, verdict });
  }
  return s;
}

export function reduceTurn(s: TurnState, ev: TurnMachineEvent, config: TurnMachineConfig = DEFAULT_TURN_MACHINE): Step {
  const effects: TurnEffect[] = [];
  switch (ev.type) {
    case 'pause': {
      // An early answer is playing and its turn is contested: wait for the verdict, start nothing new.
      if (s.contested) return { state: s, effects };
      if (s.spec) {
        effects.push({ type: 'discard', id: s.spec.id });
        s = { ...s, spec: null };
      }
      s = { ...s, speechEndAt: ev.speechEndAt, contour: ev.contour, extended: false, verdict: null, lagMs: 0 };
      if (config.speculativeMax > 0 && s.sttInFlight.length < config.speculativeMax) {
        const id = s.next;
        effects.push({ type: 'speculate', id, speechEndAt: ev.speechEndAt });
        s = { ...s, next: id + 1, spec: { id, transcript: null, sttPending: true }, sttInFlight: [...s.sttInFlight, id] };
      }
      return { state: evaluate(s, ev.at, config, effects), effects };
    }
    case 'silence':
      if (s.contested) return { state: s, effects };
      if (ev.silenceMs !== undefined && s.speechEndAt !== null) s = { ...s, lagMs: Math.max(0, ev.at - s.speechEndAt - ev.silenceMs) };
      return { state: evaluate(s, ev.at, config, effects), effects };
    case 'talking':
      return { state: s.early === ev.id ? { ...s, earlyHeardAt: ev.at } : s, effects };
    case 'partial':
      return { state: evaluate({ ...s, partial: ev.text }, ev.at, config, effects), effects };
    case 'transcript': {
      if (!s.spec || s.spec.id !== ev.id) return { state: s, effects };
      s = { ...s, spec: { ...s.spec, transcript: ev.text ?? null } };
      return { state: evaluate(s, ev.at, config, effects), effects };
    }
    case 'stt_settled': {
      const sttInFlight = s.sttInFlight.filter((id) => id !== ev.id);
      const spec = s.spec && s.spec.id === ev.id ? { ...s.spec, sttPending: false } : s.spec;
      return { state: { ...s, sttInFlight, spec }, effects };
    }
    case 'resume': {
      if (s.early !== null && s.earlyHeardAt !== null && (ev.onsetAt ?? ev.at) - s.earlyHeardAt > CONTEST_MS) {
        // EVA had been talking for a while: this is a reaction to her answer, a turn of its own.
        effects.push({ type: 'split' });
        return { state: { ...s, early: null, earlyHeardAt: null, contested: false, speechEndAt: null, extended: false, verdict: null, partial: null }, effects };
      }
      if (s.speechEndAt !== null) {
        const pauses = [...s.pauses, ev.at - s.speechEndAt].slice(-PACE_WINDOW);
        s = { ...s, pauses };
      }
      if (s.spec) {
        effects.push({ type: 'discard', id: s.spec.id });
        s = { ...s, spec: null };
      }
      if (s.early !== null && s.earlyHeardAt !== null) {
        // The person speaks while the early answer is heard: a continuation or only "uh huh"? Her audio is held
        // by the detector; a barge-in's worth of voice retracts the answer, the end of turn lets it go on.
        return { state: { ...s, contested: true, verdict: null }, effects };
      }
      if (s.early !== null) {
        // The person went on before EVA was heard: a false cut-off, taken back.
        effects.push({ type: 'retract', id: s.early });
        s = { ...s, current: s.current === s.early ? null : s.current, early: null, retractions: s.retractions + 1 };
      }
      return { state: { ...s, speechEndAt: null, extended: false, verdict: null, partial: null }, effects };
    }
    case 'end_of_turn': {
      const base = { ...s, speechEndAt: null, extended: false, verdict: null, contour: 'unknown' as Contour, partial: null };
      if (s.early !== null) return { state: { ...base, early: null, contested: false, earlyHeardAt: null }, effects }; // answered
      const eouMs = ev.at - ev.speechEndAt;
      if (s.spec) {
        const id = s.spec.id;
        const state = promote({ ...base, spec: null }, id, effects);
        effects.push({ type: 'commit', id, speechEndAt: ev.speechEndAt, eouMs, early: false, verdict: s.verdict });
        return { state, effects };
      }
      const id = s.next;
      const state = promote({ ...base, next: id + 1 }, id, effects);
      effects.push({ type: 'start_audio', id, speechEndAt: ev.speechEndAt, eouMs });
      return { state, effects };
    }
    case 'text': {
      const id = s.next;
      const state = promote({ ...s, next: id + 1 }, id, effects);
      effects.push({ type: 'start_text', id });
      return { state, effects };
    }
    case 'barge_in': {
      if (s.contested && s.early !== null) {
        // The person went on after the early answer was heard: a false cut-off, taken back; the turn goes on.
        effects.push({ type: 'retract', id: s.early });
        const current = s.current === s.early ? null : s.current;
        return { state: { ...s, current, early: null, contested: false, earlyHeardAt: null, retractions: s.retractions + 1 }, effects };
      }
      if (s.current !== null) effects.push({ type: 'stop', id: s.current, reason: 'interrupted' });
      return { state: { ...s, current: null, early: s.early === s.current ? null : s.early, contested: false }, effects };
    }
    case 'finished': {
      if (s.current !== ev.id) return { state: s, effects };
      return { state: { ...s, current: null }, effects };
    }
    default: {
      const never: never = ev;
      throw new Error(`unhandled turn event ${JSON.stringify(never)}`);
    }
  }
}
