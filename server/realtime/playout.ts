// The outgoing audio of a Realtime WebSocket session. Audio leaves at once, faster than real time, as OpenAI's
// server sends it; what EVA cannot see is when the client plays it. So this sink keeps a virtual playout clock:
// the client is assumed to play at real time from the first delta, back to back. From that clock come the same
// events the WebRTC pacer gives — talk start, every played position (for "what was heard" on a barge-in), talk
// end, and the output level for the echo gate — so the session core and the agent cannot tell the two apart.
// A client that reports its real position (`conversation.item.truncate`) overrides the assumption afterwards.
import type { AudioSink } from '../session-core.js';
import type { FrameTag } from '../../media/pacer.js';
import { rmsOf } from '../../media/level.js';

export interface PlayoutEvents {
  talkStart(at: number): void;
  talkEnd(at: number): void;
  played(tag: FrameTag): void;
  level(rms: number, at: number): void;
}

interface Span {
  segment: number;
  /** ms into the segment where this span starts. */
  segStartMs: number;
  durMs: number;
  /** When the client starts playing it (virtual clock, ms). */
  startAt: number;
  rms: number;
}

/** Played positions are reported this often while the client is (assumed to be) playing. */
const TICK_MS = 20;
/**
 * How far ahead of the virtual playout the producer may run before waitForRoom() holds it: a reply's text is
 * complete long before its audio plays; 30 s bounds what one session buffers at the client and in memory here.
 */
const MAX_LEAD_MS = 30_000;

export class VirtualPlayout implements AudioSink {
  readonly sampleRate: number;
  /** Text-only sessions: audio is dropped and nothing plays. */
  muted = false;
  private readonly send: (pcm: Int16Array, segment: number) => void;
  private readonly events: PlayoutEvents;
  private readonly now: () => number;
  private spans: Span[] = [];
  private playEnd = 0;
  private segment: number | undefined;
  private segMs = 0;
  private talking = false;
  private timer: NodeJS.Timeout | null = null;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(opts: { sampleRate: number; send(pcm: Int16Array, segment: number): void; events: PlayoutEvents; now?: () => number }) {
    this.sampleRate = opts.sampleRate;
    this.send = opts.send;
    this.events = opts.events;
    this.now = opts.now ?? (() => performance.now());
  }

  get speaking(): boolean {
    return this.talking || this.spans.length > 0;
  }

  get queuedMs(): number {
    return Math.max(0, this.playEnd - this.now());
  }

  enqueue(pcm: Int16Array, segment: number): void {
    if (this.closed || this.muted || pcm.length === 0) return;
    if (segment !== this.segment) {
      this.segment = segment;
      this.segMs = 0;
    }
    const now = this.now();
    const durMs = (pcm.length * 1000) / this.sampleRate;
    const startAt = Math.max(now, this.playEnd);
    this.spans.push({ segment, segStartMs: this.segMs, durMs, startAt, rms: rmsOf(pcm) });
    this.segMs += durMs;
    this.playEnd = startAt + durMs;
    this.send(pcm, segment);
    this.arm(0);
  }

  flush(): void {}

  waitForRoom(): Promise<void> {
    if (this.closed || this.queuedMs < MAX_LEAD_MS) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The audio is at the client already: a hold cannot pause it. */
  hold(_on: boolean): void {}

  /** The client stops playing (it was told, or it noticed the speech itself): returns the ms that will not play. */
  clear(): number {
    const now = this.now();
    const dropped = Math.max(0, this.playEnd - now);
    this.tick(); // report what was played up to now
    this.spans = [];
    this.playEnd = now;
    this.wake();
    return dropped;
  }

  private arm(delay: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tick();
      if (this.speaking) this.arm(TICK_MS);
    }, delay);
    this.timer.unref();
  }

  private tick(): void {
    if (this.closed) return;
    const now = this.now();
    if (this.spans.length > 0 && !this.talking && this.spans[0]!.startAt <= now) {
      this.talking = true;
      this.events.talkStart(now);
    }
    while (this.spans.length > 0 && this.spans[0]!.startAt <= now) {
      const s = this.spans[0]!;
      const playedMs = Math.min(s.durMs, now - s.startAt);
      this.events.played({ segment: s.segment, endMs: s.segStartMs + playedMs });
      this.events.level(s.rms, now);
      if (playedMs < s.durMs) break;
      this.spans.shift();
    }
    if (this.queuedMs < MAX_LEAD_MS) this.wake();
    if (this.spans.length === 0 && this.talking) {
      this.talking = false;
      this.events.talkEnd(now);
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.spans = [];
    this.wake();
  }
}
