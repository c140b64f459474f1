// Telling the person's voice from EVA's own coming back. A browser's echo canceller removes most of EVA's voice
// from the mic, but not all (speakerphones, cheap headsets): what leaks back is the same speech, delayed and much
// quieter. While EVA talks, a mic window well below her recent output level is taken for echo, not for a
// barge-in. The person, talking over her from their own mouth, is far louder than any residue; when EVA pauses
// (a hold) her level decays and the gate opens by itself. Pure: levels and times in, a decision out.

export interface EchoGateOptions {
  /** A mic window this many dB below EVA's loudest recent frame is echo. Default 15. */
  marginDb?: number;
  /** How far back EVA's output counts (echo path delay plus jitter), ms. Default 300. */
  windowMs?: number;
}

export class EchoGate {
  private readonly ratio: number;
  private readonly windowMs: number;
  private readonly at = new Float64Array(64);
  private readonly rms = new Float64Array(64);
  private next = 0;

  constructor(opts: EchoGateOptions = {}) {
    this.ratio = 10 ** (-(opts.marginDb ?? 15) / 20);
    this.windowMs = opts.windowMs ?? 300;
  }

  /** EVA sent a frame of this RMS at `at` (ms). */
  output(rms: number, at: number): void {
    this.at[this.next] = at;
    this.rms[this.next] = rms;
    this.next = (this.next + 1) % this.at.length;
  }

  /** EVA's loudest frame in the window before `now`; 0 when she was quiet. */
  level(now: number): number {
    let max = 0;
    for (let i = 0; i < this.at.length; i++) {
      if (this.at[i]! > 0 && now - this.at[i]! <= this.windowMs && this.rms[i]! > max) max = this.rms[i]!;
    }
    return max;
  }

  /** Whether a mic window of `micRms` at `now` is quiet enough, next to EVA's output, to be her echo. */
  isEcho(micRms: number, now: number): boolean {
    const out = this.level(now);
    return out > 0 && micRms < out * this.ratio;
  }
}
