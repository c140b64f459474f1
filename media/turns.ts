// Turn detection, pure: VAD probabilities in, turn events out. No timers: time is the audio's own clock (the end
// of each VAD window, in ms of call audio), so the same input always gives the same events and tests need no
// sleeping. The session feeds one step per 32 ms window.

export interface TurnConfig {
  /** Probability at or above which a window is voiced. */
  onThreshold: number;
  /** Probability below which a voiced run ends (hysteresis: between the two the previous state holds). */
  offThreshold: number;
  /** Voiced audio needed before speech counts as started (filters clicks and coughs). */
  minSpeechMs: number;
  /**
   * Silence after speech that is a pause: speculative STT/LLM work may start. One VAD window (32 ms): the
   * earlier the transcript is in hand, the earlier a finished turn can be answered.
   */
  pauseMs: number;
  /** Silence after speech that ends the turn, unless `extend()` was called for this silence. */
  endOfTurnMs: number;
  /** The longest silence a turn waits after `extend()` (the person is clearly not done). */
  maxEndOfTurnMs: number;
  /**
   * Voiced audio over EVA's own voice needed before it is a barge-in that ends EVA's reply. Shorter speech over
   * EVA (a backchannel: "uh huh", "yes") only pauses the reply while it lasts; see `hold`.
   */
  bargeInMs: number;
}

export const DEFAULT_TURN_CONFIG: TurnConfig = {
  onThreshold: 0.5,
  offThreshold: 0.35,
  minSpeechMs: 64,
  pauseMs: 32,
  endOfTurnMs: 480,
  maxEndOfTurnMs: 1000,
  bargeInMs: 600,
};

export type TurnEvent =
  /** The VAD's hysteresis flipped (for the page's indicator). */
  | { type: 'vad'; speaking: boolean; atMs: number }
  /** A turn began: `atMs` is the onset of its first voiced window. */
  | { type: 'speech_start'; atMs: number; overlap: boolean }
  /** Silence reached pauseMs: speculative work may start on the audio so far. */
  | { type: 'pause'; atMs: number; speechEndMs: number }
  /** Each further window of silence after the pause, until the end of turn (the predictor decides on it). */
  | { type: 'silence'; atMs: number; silenceMs: number }
  /** Speech came back after a pause, before the end of turn: speculative work must be thrown away. */
  | { type: 'resume'; atMs: number }
  | { type: 'end_of_turn'; atMs: number; speechStartMs: number; speechEndMs: number }
  /** Voice started over EVA: pause its audio now (nothing is dropped yet) until `release` or `barge_in`. */
  | { type: 'hold'; atMs: number }
  /** That voice stopped short of a barge-in: EVA's audio goes on where it paused. */
  | { type: 'release'; atMs: number }
  /** The person has talked over EVA for bargeInMs: the reply ends. */
  | { type: 'barge_in'; atMs: number; onsetMs: number }
  /** Speech over EVA that never became a barge-in ended: it was a backchannel, not a turn to answer. */
  | { type: 'backchannel'; atMs: number; speechStartMs: number; speechEndMs: number };

export interface TurnInput {
  prob: number;
  /** End of this window, ms of call audio. */
  atMs: number;
  windowMs: number;
  /** Whether EVA is playing audio right now. */
  evaSpeaking: boolean;
}

type Phase = 'idle' | 'speech' | 'pause';

/**
 * Voice over EVA too short to be a turn (a click, one noisy window) releases her after this much silence: 160 ms,
 * five VAD windows, enough for Silero's probability to settle after a blip without a held reply sounding cut.
 */
export const BLIP_RELEASE_MS = 160;

export class TurnDetector {
  private voiced = false;
  private runStartMs = 0; // onset of the current voiced run
  private phase: Phase = 'idle';
  private turnStartMs = 0;
  private lastVoicedEndMs = 0;
  private pauseSent = false;
  /** The end of turn waits up to maxEndOfTurnMs for this silence. */
  private extended = false;
  /** EVA's audio is paused for voice over it; how much voice since, and where it began. */
  private held = false;
  private heldVoicedMs = 0;
  private holdOnsetMs = 0;
  /** The current turn started over EVA's voice and has not (yet) become a barge-in. */
  private overlap = false;

  constructor(readonly config: TurnConfig = DEFAULT_TURN_CONFIG) {
    if (!(config.offThreshold <= config.onThreshold)) throw new RangeError('offThreshold must be ≤ onThreshold');
    if (!(config.pauseMs <= config.endOfTurnMs)) throw new RangeError('pauseMs must be ≤ endOfTurnMs');
    if (!(config.endOfTurnMs <= config.maxEndOfTurnMs)) throw new RangeError('endOfTurnMs must be ≤ maxEndOfTurnMs');
  }

  get inTurn(): boolean {
    return this.phase !== 'idle';
  }

  step(input: TurnInput): TurnEvent[] {
    const c = this.config;
    const events: TurnEvent[] = [];
    const start = input.atMs - input.windowMs;
    const wasVoiced = this.voiced;
    if (!this.voiced && input.prob >= c.onThreshold) {
      this.voiced = true;
      this.runStartMs = start;
      // EVA finished while the person went on: their next words are an ordinary turn.
      if (!input.evaSpeaking) this.overlap = false;
    } else if (this.voiced && input.prob < c.offThreshold) {
      this.voiced = false;
    }
    if (this.voiced !== wasVoiced) events.push({ type: 'vad', speaking: this.voiced, atMs: start });

    if (this.voiced) {
      this.lastVoicedEndMs = input.atMs;
      if (input.evaSpeaking && !this.held) {
        // Voice over EVA: pause her now; whether it is a barge-in is decided by how long it lasts. Within one
        // overlapping turn the voiced time adds up ("Hello EVA, — how are you"), so a comma does not reset it.
        this.held = true;
        if (!this.overlap) {
          this.heldVoicedMs = 0;
          this.holdOnsetMs = this.runStartMs;
        }
        events.push({ type: 'hold', atMs: input.atMs });
      }
      if (this.held) this.heldVoicedMs += input.windowMs;
      const runMs = input.atMs - this.runStartMs;
      if (this.phase === 'idle' && runMs >= c.minSpeechMs) {
        this.phase = 'speech';
        this.turnStartMs = this.runStartMs;
        this.pauseSent = false;
        this.overlap = this.held;
        this.extended = false;
        events.push({ type: 'speech_start', atMs: this.runStartMs, overlap: this.overlap });
      } else if (this.phase === 'pause' && runMs >= c.minSpeechMs) {
        this.phase = 'speech';
        if (this.pauseSent) events.push({ type: 'resume', atMs: this.runStartMs });
        this.pauseSent = false;
        this.extended = false;
      }
      // Voiced time while held adds up across short gaps ("wait — no"), so a halting interruption still counts.
      if (this.held && input.evaSpeaking && this.heldVoicedMs >= c.bargeInMs) {
        this.held = false;
        this.overlap = false;
        events.push({ type: 'barge_in', atMs: input.atMs, onsetMs: this.holdOnsetMs });
      }
      return events;
    }

    const silence = input.atMs - this.lastVoicedEndMs;
    // The voice stopped short of a barge-in: EVA goes on where she paused — after a blip (too short to be a turn)
    // once pauseMs of silence shows it is over, after speech (a backchannel) once it ended as a turn would, so a
    // halting interruption ("Hello EVA, — how are you") does not let her resume at each comma.
    const releaseAfterMs = this.phase === 'idle' ? BLIP_RELEASE_MS : c.endOfTurnMs;
    if (this.held && (silence >= releaseAfterMs || !input.evaSpeaking)) {
      this.held = false;
      events.push({ type: 'release', atMs: input.atMs });
    }
    if (this.phase === 'idle') return events;
    this.phase = 'pause';
    if (this.overlap) {
      // Speech over EVA that stayed short of a barge-in: no pause work, no turn to answer.
      if (silence >= c.endOfTurnMs) {
        this.phase = 'idle';
        this.overlap = false;
        events.push({ type: 'backchannel', atMs: input.atMs, speechStartMs: this.turnStartMs, speechEndMs: this.lastVoicedEndMs });
      }
      return events;
    }
    if (!this.pauseSent && silence >= c.pauseMs) {
      this.pauseSent = true;
      events.push({ type: 'pause', atMs: input.atMs, speechEndMs: this.lastVoicedEndMs });
    } else if (this.pauseSent) {
      events.push({ type: 'silence', atMs: input.atMs, silenceMs: silence });
    }
    if (silence >= (this.extended ? c.maxEndOfTurnMs : c.endOfTurnMs)) {
      this.extended = false;
      this.phase = 'idle';
      events.push({ type: 'end_of_turn', atMs: input.atMs, speechStartMs: this.turnStartMs, speechEndMs: this.lastVoicedEndMs });
    }
    return events;
  }

  /**
   * The person is clearly not done (the end-of-turn predictor says so): this silence ends the turn only at
   * maxEndOfTurnMs. Speech resuming, or the end of turn, clears it.
   */
  extend(): void {
    if (this.phase === 'pause') this.extended = true;
  }

  /**
   * The turn before the current voiced run is over (the agent answered it and what follows is not its
   * continuation): the voice now starts a new turn from its onset — over EVA's voice, so the barge-in and
   * backchannel rules apply to it. Returns the new turn's `speech_start`, or nothing outside a turn.
   */
  split(): TurnEvent[] {
    if (this.phase === 'idle' || !this.voiced) return [];
    this.phase = 'speech';
    this.turnStartMs = this.runStartMs;
    this.pauseSent = false;
    this.extended = false;
    this.overlap = this.held;
    if (this.held) this.holdOnsetMs = this.runStartMs;
    return [{ type: 'speech_start', atMs: this.runStartMs, overlap: this.overlap }];
  }

  /** Forget the turn in progress (after a hang-up or a reset of the call's audio). */
  reset(): void {
    this.extended = false;
    this.voiced = false;
    this.phase = 'idle';
    this.pauseSent = false;
    this.held = false;
    this.overlap = false;
  }
}
