// The outgoing audio of one call: a bounded queue of 20 ms PCM frames, encoded to Opus only when due and sent
// on a drift-free clock (pacer-core.ts). While EVA is quiet it sends a silence frame every 20 ms, or with `dtx`
// (Opus DTX, RFC 7587 §3.1.3) one every 400 ms: the slots between send nothing, the RTP timestamp still follows the
// clock and the next speech frame carries the marker bit, which is what keeps a receiver's jitter buffer in step
// (plain gaps, without either, grew Chrome's from 35 to 221 ms in 25 s, measured here). Encoding at send time
// spreads the codec's CPU evenly instead of in a burst per sentence, and a barge-in just drops PCM that was never
// encoded.
//
// All pacers of the process share one timer (PacerScheduler): 80 calls cost one setTimeout, not 80.
import type { OpusEncoder } from './opus.js';
import { rmsOf } from './level.js';
import { FrameRing } from './frame-ring.js';
import { framesDue } from './pacer-core.js';
import { RtpSequencer, type OutgoingHeader } from './rtp.js';

/** What a queued frame belongs to: lets the call know exactly how much of each TTS segment was played. */
export interface FrameTag {
  segment: number;
  /** ms of the segment's audio played once this frame is sent. */
  endMs: number;
}

export interface PacerEvents {
  /** First speech frame of a talkspurt left the server. */
  talkStart(atMs: number): void;
  /** The queue ran dry after speech: EVA is quiet again. */
  talkEnd(atMs: number): void;
  /** A tagged frame was sent. */
  played(tag: FrameTag): void;
  /** A speech frame of this RMS was sent (for the echo gate). */
  level(rms: number, atMs: number): void;
}

export interface PacerOptions {
  encoder: OpusEncoder;
  send(payload: Buffer, header: OutgoingHeader): void;
  scheduler?: PacerScheduler;
  events?: Partial<PacerEvents>;
  /** Most audio the queue holds; writers wait for room above it (backpressure, not dropping). */
  maxQueueMs?: number;
  now?: () => number;
  /**
   * Send the first frame of a reply as soon as it is queued (re-basing the 20 ms slot grid there) instead of at
   * the next slot of the silence stream: up to 20 ms (10 on average) off every reply. Default true.
   */
  startAtOnce?: boolean;
  /**
   * Opus DTX while quiet: after the tail of a talkspurt, one silence packet every DTX_KEEPALIVE_FRAMES slots
   * instead of one per slot (about 60 % of a call's packets, each ~75 µs of werift's send path here, and as much
   * of the receiver's work). Default false: a continuous 50 packets a second. `Pacer.dtx` can change it later (a
   * caller that learns from the answer that the other side asked for DTX).
   */
  dtx?: boolean;
  /** Zero frames encoded for real after speech, at the full rate, before the cached silence (and DTX). Default 3. */
  tailFrames?: number;
}

/** Zero frames encoded for real after speech before switching to the cached silence packet. */
const SILENCE_TAIL_FRAMES = 3;
/** With DTX, a silence packet every 400 ms (libopus's own DTX refresh interval): the receiver knows the stream lives. */
export const DTX_KEEPALIVE_FRAMES = 20;
/** libopus goes into DTX after 200 ms without speech: a browser's quiet frames before its first DTX gap. */
export const DTX_HANGOVER_FRAMES = 10;

/** In DTX, whether the `slot`-th quiet slot (0: the first after the hangover) carries a silence packet. */
export function dtxSends(slot: number): boolean {
  return slot % DTX_KEEPALIVE_FRAMES === 0;
}

export class Pacer {
  private readonly enc: OpusEncoder;
  private readonly sendFn: PacerOptions['send'];
  private readonly events: Partial<PacerEvents>;
  private readonly scheduler: PacerScheduler;
  private readonly maxFrames: number;
  private readonly seq = new RtpSequencer();
  /** The queued frames and the partial one being filled (frame-ring.ts: a queued frame allocates nothing). */
  private readonly queue: FrameRing;
  private segment: number | undefined;
  private segSamples = 0;
  private silence: Buffer | null = null;
  /** A frame of zeros for the encoder (hold, the tail after speech): read-only, made once. */
  private readonly zeros: Int16Array;
  private tailFrames = 0;
  private talking = false;
  private held = false;
  private readonly startAtOnce: boolean;
  dtx: boolean;
  private readonly tailLength: number;
  /** Silence slots since the talkspurt's tail ended (DTX sends the first of every DTX_KEEPALIVE_FRAMES). */
  private quietSlots = 0;
  private kickPending = false;
  private waiters: (() => void)[] = [];
  private clock = { t0: 0, sent: 0 };
  private running = false;
  closed = false;
  /** Counters for the bench: frames sent, speech frames, slots skipped after stalls, silent slots not sent (DTX). */
  readonly stats = { frames: 0, speechFrames: 0, skipped: 0, underruns: 0, dtxSlots: 0 };
  nextAt = 0;

  constructor(opts: PacerOptions) {
    this.enc = opts.encoder;
    this.sendFn = opts.send;
    this.events = opts.events ?? {};
    this.scheduler = opts.scheduler ?? PacerScheduler.shared;
    this.maxFrames = Math.ceil((opts.maxQueueMs ?? 2000) / 20);
    this.startAtOnce = opts.startAtOnce ?? true;
    this.dtx = opts.dtx ?? false;
    this.tailLength = opts.tailFrames ?? SILENCE_TAIL_FRAMES;
    // The bound plus a few 100 ms writes past it before the ring has to grow.
    this.queue = new FrameRing(this.enc.frameSamples, this.maxFrames + 8);
    this.zeros = new Int16Array(this.enc.frameSamples);
  }

  get frameSamples(): number {
    return this.enc.frameSamples;
  }
  get sampleRate(): number {
    return this.enc.sampleRate;
  }
  get queuedMs(): number {
    return (this.queue.length + (this.queue.partialLen > 0 ? 1 : 0)) * 20;
  }
  get speaking(): boolean {
    return this.talking || this.queue.length > 0;
  }

  start(): void {
    if (this.running || this.closed) return;
    this.running = true;
    // The cached silence packet must come from the encoder before any speech: encoded right after speech, a
    // stateful Opus encoder emits a packet that still carries the speech's tail, and repeating it is a drone.
    this.silence ??= this.enc.encode(this.zeros);
    this.clock = { t0: this.scheduler.now(), sent: 0 };
    this.nextAt = this.clock.t0;
    this.scheduler.add(this);
  }

  /**
   * Queue PCM at the encoder's rate. With a `segment` id, each frame is tagged with how much of that segment
   * has been played once it is sent (segments are queued one after another; a new id restarts the count).
   */
  enqueue(pcm: Int16Array, segment?: number): void {
    if (this.closed) return;
    if (segment !== this.segment) {
      this.segment = segment;
      this.segSamples = 0;
    }
    let i = 0;
    const n = this.enc.frameSamples;
    while (i < pcm.length) {
      const take = this.queue.write(pcm, i);
      this.segSamples += take;
      i += take;
      if (this.queue.partialLen === n) this.pushPartial();
    }
  }

  /** Pad and queue the last partial frame (end of a segment). */
  flush(): void {
    if (this.queue.partialLen > 0) this.pushPartial();
  }

  private pushPartial(): void {
    if (this.segment === undefined) this.queue.commit(NaN, 0);
    else this.queue.commit(this.segment, (this.segSamples * 1000) / this.enc.sampleRate);
    if (this.startAtOnce && this.queue.length === 1 && !this.talking && this.running) this.kick();
  }

  /**
   * A reply's first frame while the pacer only sends silence: send it on the next turn of the event loop (after
   * the code that queued it has finished, so its talkStart finds the reply in place) and re-base the slot grid
   * there. RTP timestamps stay continuous; the receiver sees one packet up to 20 ms early, well within jitter.
   */
  private kick(): void {
    if (this.kickPending) return;
    this.kickPending = true;
    setImmediate(() => {
      this.kickPending = false;
      if (this.closed || this.talking || this.held || this.queue.length === 0) return;
      const now = this.scheduler.now();
      this.clock = { t0: now, sent: 0 };
      this.tick(now);
    });
  }

  /** Resolves when the queue has room (or the pacer was cleared or closed). */
  waitForRoom(): Promise<void> {
    if (this.queue.length < this.maxFrames || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Pause (true) or resume (false) playback without dropping anything: the person may be talking over EVA, and
   * it is not yet clear whether that is a barge-in. Silence is sent meanwhile; `played` tags stop with the audio.
   */
  hold(on: boolean): void {
    this.held = on;
  }

  get isHeld(): boolean {
    return this.held;
  }

  /** Drop everything queued (barge-in) and end a hold. Returns how many ms of audio were dropped. */
  clear(): number {
    const dropped = this.queuedMs;
    this.held = false;
    this.queue.clear();
    this.wake();
    return dropped;
  }

  /** @internal called by the scheduler when due. */
  tick(now: number): void {
    if (this.closed) return;
    const due = framesDue(this.clock, now);
    if (due.skip > 0) {
      this.seq.skip(due.skip);
      this.stats.skipped += due.skip;
      // Drop the audio those slots would have carried, so the reply stays in time with the clock. Its time has
      // passed: the last dropped position is reported as played, or a clip whose end fell in a stall would never
      // be reported finished (a probe's play() waited for ever on it).
      const lastTagged = this.queue.drop(due.skip);
      if (lastTagged >= 0) this.playedTag(lastTagged);
    }
    for (let k = 0; k < due.send; k++) this.sendOne(now);
    this.clock.sent += due.send + due.skip;
    this.nextAt = due.nextAt;
    if (this.queue.length < this.maxFrames) this.wake();
  }

  private sendOne(now: number): void {
    if (this.held && this.queue.length > 0) {
      // Paused mid-reply: zero frames through the encoder keep its state continuous for the resume.
      this.sendFn(this.enc.encode(this.zeros), this.seq.next(false));
      this.stats.frames++;
      this.quietSlots = 0;
      return;
    }
    if (this.queue.length > 0) {
      const slot = this.queue.first;
      const pcm = this.queue.frame(slot);
      this.quietSlots = 0;
      const header = this.seq.next(true);
      const payload = this.enc.encode(pcm);
      if (!this.talking) {
        this.talking = true;
        this.events.talkStart?.(now);
      }
      this.sendFn(payload, header);
      this.stats.frames++;
      this.stats.speechFrames++;
      // Read before anything can queue more audio: a listener's write could land in the slot once it is shifted.
      if (this.events.level) this.events.level(rmsOf(pcm), now);
      this.queue.shift();
      // shift() only moves the head: the slot's tag is still there to read.
      if (!Number.isNaN(this.queue.tagSegment(slot))) this.playedTag(slot);
      return;
    }
    if (this.talking) {
      this.talking = false;
      this.tailFrames = this.tailLength;
      this.events.talkEnd?.(now);
    }
    // A few real zero frames through the encoder let it decay naturally before the cached silence packet.
    if (this.tailFrames > 0) {
      this.tailFrames--;
      this.sendFn(this.enc.encode(this.zeros), this.seq.next(false));
      this.stats.frames++;
      return;
    }
    if (this.dtx && !dtxSends(this.quietSlots++)) {
      // Nothing on the wire: the timestamp moves on, the sequence number does not (no loss to the receiver), and
      // the next speech frame gets the marker bit.
      this.seq.skip(1);
      this.stats.dtxSlots++;
      return;
    }
    this.silence ??= this.enc.encode(this.zeros);
    this.sendFn(this.silence, this.seq.next(false));
    this.stats.frames++;
  }

  /** Reports a slot's tag as played; its values are read before the listener runs (it may queue audio into the slot). */
  private playedTag(slot: number): void {
    this.events.played?.({ segment: this.queue.tagSegment(slot), endMs: this.queue.tagEndMs(slot) });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.clear();
    this.scheduler.remove(this);
    this.wake();
  }
}

/**
 * Pacers due within this much of the earliest are served in the same timer callback, each frame leaving up to this
 * early (well inside any receiver's jitter): with calls at scattered 20 ms phases the timer fires a few times per
 * slot instead of once per call (50 × calls times a second, each also scanning every pacer).
 */
export const SCHEDULER_LOOKAHEAD_MS = 4;

/** One timer for every pacer in the process, armed for the earliest due frame. */
export class PacerScheduler {
  static readonly shared = new PacerScheduler();
  private pacers = new Set<Pacer>();
  private timer: NodeJS.Timeout | null = null;
  /** Worst lateness seen (ms) since the last read, for the bench. */
  maxLateMs = 0;

  constructor(readonly now: () => number = () => performance.now()) {}

  add(p: Pacer): void {
    this.pacers.add(p);
    this.arm();
  }

  remove(p: Pacer): void {
    this.pacers.delete(p);
    if (this.pacers.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  get size(): number {
    return this.pacers.size;
  }

  private arm(): void {
    if (this.timer || this.pacers.size === 0) return;
    let next = Infinity;
    for (const p of this.pacers) next = Math.min(next, p.nextAt);
    const delay = Math.max(0, next - this.now());
    this.timer = setTimeout(() => this.run(), delay);
  }

  private run(): void {
    this.timer = null;
    this.runDue(this.now());
    this.arm();
  }

  /**
   * @internal (the timer's work; tests drive it by hand) Ticks every pacer due by `now` + SCHEDULER_LOOKAHEAD_MS,
   * each at its own slot time when that is still ahead. Returns how many it ticked.
   */
  runDue(now: number): number {
    let ticked = 0;
    for (const p of this.pacers) {
      if (p.nextAt > now + SCHEDULER_LOOKAHEAD_MS) continue;
      this.maxLateMs = Math.max(this.maxLateMs, now - p.nextAt);
      ticked++;
      try {
        p.tick(Math.max(now, p.nextAt));
      } catch (err) {
        process.emitWarning(`pacer tick failed: ${(err as Error).message}`);
      }
    }
    return ticked;
  }
}
