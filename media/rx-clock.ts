// The receive side's clock, for a caller that uses Opus DTX (EVA asks for it: `usedtx=1` in its answer). A browser
// in DTX sends nothing while its microphone is quiet (a refresh packet every 400 ms), but the VAD and the turn
// detector count time in samples: without packets their clock would stop, and an end of turn that falls in the
// quiet would wait for the next packet. So the silence the caller did not send is handed on as zeros:
//   - when a packet arrives, the gap its RTP timestamp shows since the audio handed on so far (48 kHz ticks → 16 kHz
//     samples), less what was already filled, goes on before its audio;
//   - while no packet comes, a shared ticker (RxFillScheduler, every 20 ms for all calls, run after the event loop
//     has read its sockets) fills whole 20 ms frames up to a slack behind where the caller's clock must be by now,
//     so silence reaches the VAD on time. The slack is FILL_SLACK_MS once the caller has sent DTX_ONSET_MS of
//     quiet in a row: an Opus encoder in DTX goes quiet only after ~200 ms of silent frames (libopus sends 10
//     before it stops), so only then is a missing packet likely silence. During speech and the first of a pause
//     a missing packet is jitter, a stall or a loss: the slack is SPEECH_SLACK_MS, and a packet that late still
//     finds its slot instead of following zeros that would stretch the pause the VAD hears.
// Audio is never dropped: a packet that arrives after its time was filled (a late first packet of new speech) is
// still handed on whole, and the stream runs that much ahead of the RTP clock (bounded by the network's jitter
// beyond the slack, once per quiet stretch). Losses inside speech fill the same way (with zeros, not PLC).

import { everyAfterPoll } from './after-poll.js';

/** PCM rate of what the clock hands on (the decoder's, the VAD's). */
export const RX_RATE = 16000;
const TICKS_PER_SAMPLE = 48000 / RX_RATE;
/** How far behind the caller's expected position the filler stays in DTX: a packet this late still finds its slot. */
export const FILL_SLACK_MS = 20;
/** The slack while the caller talks (or has been quiet for less than DTX_ONSET_MS). */
export const SPEECH_SLACK_MS = 200;
/** Quiet in a row after which the caller may be in DTX (libopus: 10 silent 20 ms frames, less one lost). */
export const DTX_ONSET_MS = 180;
const DTX_ONSET_SAMPLES = (DTX_ONSET_MS * RX_RATE) / 1000;
/** What the filler hands on at a time: the 20 ms a packet usually carries. */
export const FILL_FRAME = RX_RATE / 50;
/** A timestamp jump beyond this (10 s) is a new stream (restart, new SSRC), not silence to fill. */
const MAX_GAP_SAMPLES = RX_RATE * 10;

/** Signed distance a − b in 32-bit RTP timestamp space. */
function tsDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export class RxClock {
  /** Samples handed on so far: decoded and filled. */
  pos = 0;
  /** Zero samples handed on for silence that never arrived (DTX, loss), for metrics and tests. */
  filled = 0;
  /** RTP timestamp at which the audio after `anchorPos` was expected; null before the first packet. */
  private anchorTs: number | null = null;
  private anchorPos = 0;
  private lastArrivalMs = 0;
  /** Samples of quiet handed on in a row (packets that held only near-silence), up to the last packet. */
  private quietRun = 0;

  /**
   * A packet stamped `ts` is about to be handed on: the zero samples to hand on before it (the silence the caller
   * did not send, less what the filler already handed on). Call `afterPacket` once its audio is handed on.
   */
  beforePacket(ts: number): number {
    if (this.anchorTs === null) return 0;
    const gap = Math.round(tsDiff(ts, this.anchorTs) / TICKS_PER_SAMPLE);
    if (gap <= 0 || gap > MAX_GAP_SAMPLES) return 0;
    const zeros = this.anchorPos + gap - this.pos;
    if (zeros <= 0) return 0;
    this.pos += zeros;
    this.filled += zeros;
    return zeros;
  }

  /**
   * Whether the whole of a packet stamped `ts` and `samples` long lies in time already filled with zeros (it came
   * later than the slack: a stall, not DTX). Its silence is then already handed on; see `skipPacket`.
   */
  covered(ts: number, samples: number): boolean {
    if (this.anchorTs === null) return false;
    const gap = Math.round(tsDiff(ts, this.anchorTs) / TICKS_PER_SAMPLE);
    return gap >= 0 && gap <= MAX_GAP_SAMPLES && this.anchorPos + gap + samples <= this.pos;
  }

  /** A covered packet that held only silence was not handed on: its time was, as zeros. */
  skipPacket(ts: number, samples: number, nowMs: number): void {
    const gap = Math.round(tsDiff(ts, this.anchorTs!) / TICKS_PER_SAMPLE);
    this.anchorTs = (ts + samples * TICKS_PER_SAMPLE) >>> 0;
    this.anchorPos += gap + samples;
    this.lastArrivalMs = nowMs;
    this.quietRun += samples;
  }

  /**
   * The packet stamped `ts` was handed on as `samples` samples at `nowMs`; `quiet` when it held only near-silence
   * (it sets the filler's slack: see the top of this file).
   */
  afterPacket(ts: number, samples: number, nowMs: number, quiet: boolean): void {
    this.pos += samples;
    this.anchorTs = (ts + samples * TICKS_PER_SAMPLE) >>> 0;
    this.anchorPos = this.pos;
    this.lastArrivalMs = nowMs;
    this.quietRun = quiet ? this.quietRun + samples : 0;
  }

  /** The filler's slack now: short once the caller may be in DTX, long while it talks. */
  get slackMs(): number {
    return this.quietRun >= DTX_ONSET_SAMPLES ? FILL_SLACK_MS : SPEECH_SLACK_MS;
  }

  /**
   * Zero samples due at `nowMs` (whole FILL_FRAMEs) while no packet comes: the audio up to the slack (`slackMs`)
   * behind where the caller's clock is by now. Hands them on (counts them in `pos`); 0 before the first packet.
   */
  due(nowMs: number): number {
    if (this.anchorTs === null) return 0;
    const expected = this.anchorPos + Math.floor(((nowMs - this.lastArrivalMs - this.slackMs) * RX_RATE) / 1000);
    const frames = Math.floor((expected - this.pos) / FILL_FRAME);
    if (frames <= 0) return 0;
    const n = frames * FILL_FRAME;
    this.pos += n;
    this.filled += n;
    return n;
  }
}

/** What the scheduler ticks: a call's receive side. */
export interface RxFillTarget {
  fillIdle(nowMs: number): void;
}

/**
 * One 20 ms timer for every call's filler (unref'd: it never keeps the process alive). A tick runs after the poll
 * phase (after-poll.ts), so packets that queued during a stall of this process's loop are read before their time
 * would be filled with zeros.
 */
export class RxFillScheduler {
  static readonly shared = new RxFillScheduler();
  private readonly targets = new Set<RxFillTarget>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly now: () => number = () => performance.now(),
    private readonly everyMs = 1000 / 50,
  ) {}

  add(t: RxFillTarget): void {
    this.targets.add(t);
    if (!this.timer) {
      this.timer = everyAfterPoll(() => this.tick(), this.everyMs);
    }
  }

  remove(t: RxFillTarget): void {
    this.targets.delete(t);
    if (this.targets.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  get size(): number {
    return this.targets.size;
  }

  tick(): void {
    const now = this.now();
    for (const t of this.targets) {
      try {
        t.fillIdle(now);
      } catch (err) {
        process.emitWarning(`RTP receive filler failed: ${(err as Error).message}`);
      }
    }
  }
}
