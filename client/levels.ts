// Pure level arithmetic for the page: RMS of a block, the meter's scale, and talkspurt detection with a hold.
// No DOM, no timers: the caller polls an analyser and passes the level with the time it read it.

/** Levels are linear RMS of float samples in [-1, 1]. Speech from the fixtures reads 0.05–0.2, Opus silence 0. */
export const AUDIBLE_LEVEL = 0.01; // −40 dBFS: well above decoded silence and the mic's noise floor after NS
/**
 * Gaps between words are up to ~250 ms in the fixtures; 300 ms of hold keeps one utterance one talkspurt while
 * still ending it well inside EVA's 480 ms end-of-turn window.
 */
export const SPURT_HOLD_MS = 300;

export function rms(block: Float32Array): number {
  let s = 0;
  for (let i = 0; i < block.length; i++) s += block[i]! * block[i]!;
  return Math.sqrt(s / Math.max(1, block.length));
}

/** A level as the fraction of the meter to fill: −60 dBFS … 0 dBFS mapped to 0 … 1. */
export function meterFraction(level: number): number {
  if (level <= 0) return 0;
  const db = 20 * Math.log10(level);
  return Math.min(1, Math.max(0, (db + 60) / 60));
}

export type SpurtSource = 'mic' | 'remote';

/** One stretch of sound: `start` is the first poll above the threshold, `end` the last one (performance.now()). */
export interface Talkspurt {
  source: SpurtSource;
  start: number;
  end: number | null;
  peak: number;
}

export type SpurtEvent = { type: 'start' | 'end'; spurt: Talkspurt };

export class TalkspurtDetector {
  private current: Talkspurt | null = null;
  private lastAbove = 0;

  constructor(
    readonly source: SpurtSource,
    readonly threshold = AUDIBLE_LEVEL,
    readonly holdMs = SPURT_HOLD_MS,
  ) {}

  get active(): Talkspurt | null {
    return this.current;
  }

  step(level: number, now: number): SpurtEvent | null {
    const above = level >= this.threshold;
    if (above) this.lastAbove = now;
    if (!this.current) {
      if (!above) return null;
      this.current = { source: this.source, start: now, end: null, peak: level };
      return { type: 'start', spurt: this.current };
    }
    this.current.peak = Math.max(this.current.peak, level);
    if (above || now - this.lastAbove < this.holdMs) return null;
    const spurt = this.current;
    spurt.end = this.lastAbove;
    this.current = null;
    return { type: 'end', spurt };
  }

  /** Ends an open talkspurt at its last sound (hang-up). */
  flush(): SpurtEvent | null {
    if (!this.current) return null;
    const spurt = this.current;
    spurt.end = this.lastAbove;
    this.current = null;
    return { type: 'end', spurt };
  }
}

/** Pushes onto a list, dropping the oldest entries beyond `max` (the page's bounded logs). */
export function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}
