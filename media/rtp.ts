// RTP bookkeeping for one Opus stream, pure: sequence numbers and timestamps on the way out, ordering and loss
// accounting on the way in. RTP's Opus clock is always 48 kHz whatever rate the codec runs at (RFC 7587).

export const RTP_CLOCK = 48_000;
export const FRAME_MS = 20;
export const FRAME_TICKS = (RTP_CLOCK * FRAME_MS) / 1000; // 960

export interface OutgoingHeader {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
}

/** Numbers outgoing packets: 16-bit sequence and 32-bit timestamp, both wrapping, random starts (RFC 3550 §5.1). */
export class RtpSequencer {
  private seq: number;
  private ts: number;
  private talking = false;

  constructor(initialSeq = Math.floor(Math.random() * 0x10000), initialTs = Math.floor(Math.random() * 0x1_0000_0000)) {
    this.seq = initialSeq & 0xffff;
    this.ts = initialTs >>> 0;
  }

  /**
   * Header for the next 20 ms frame. `speech` marks talkspurts: the marker bit is set on the first speech frame
   * after silence frames, which lets the receiver's jitter buffer re-sync at the start of EVA's reply.
   */
  next(speech: boolean): OutgoingHeader {
    const h = { sequenceNumber: this.seq, timestamp: this.ts, marker: speech && !this.talking };
    this.talking = speech;
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + FRAME_TICKS) >>> 0;
    return h;
  }

  /** Skip `frames` frame slots (time passed with nothing sent): the timestamp follows the wall clock. */
  skip(frames: number): void {
    this.ts = (this.ts + frames * FRAME_TICKS) >>> 0;
    this.talking = false;
  }
}

/** Signed distance a − b in 16-bit sequence space (−32768..32767). */
export function seqDiff(a: number, b: number): number {
  const d = (a - b) & 0xffff;
  return d >= 0x8000 ? d - 0x10000 : d;
}

export type Arrival = 'in_order' | 'gap' | 'late' | 'duplicate' | 'first' | 'reset';

/** How many recent sequence numbers the tracker remembers to tell a late packet from a duplicate (2.5 s at 20 ms). */
const SEEN_WINDOW = 128;
/** A jump of more than this many packets either way (10 s at 20 ms) is a stream reset (new SSRC, restart), not loss. */
const RESET_JUMP = 500;

/**
 * Tracks incoming sequence numbers. Audio is decoded in arrival order with no jitter buffer (loopback and LAN
 * deliver in order; the VAD tolerates a lost frame), so the policy is: decode anything newer, drop late and
 * duplicate packets before decode, and count what was lost. The last SEEN_WINDOW sequence numbers are
 * remembered, so a repeat of an older packet is a duplicate (loss unchanged) and a first arrival behind the
 * newest is late (it was counted lost when the gap opened; no longer). A jump of more than RESET_JUMP either way
 * restarts the tracking: a sender that restarts with a lower sequence number is not dropped as "late" for minutes.
 */
export class RtpReceiveTracker {
  private highest = -1;
  private readonly seen = new Int32Array(SEEN_WINDOW).fill(-1);
  received = 0;
  lost = 0;
  dropped = 0;

  /** Returns how the packet arrived and whether it should be decoded. */
  accept(seq: number): { arrival: Arrival; decode: boolean; missing: number } {
    seq &= 0xffff;
    if (this.highest < 0) return this.take(seq, 'first', 0);
    const d = seqDiff(seq, this.highest);
    if (d > RESET_JUMP || d < -RESET_JUMP) return this.take(seq, 'reset', 0);
    if (d === 0 || (d < 0 && (d <= -SEEN_WINDOW || this.seen[seq % SEEN_WINDOW] === seq))) {
      // Beyond the window nothing is known: dropped as a duplicate, loss left as it is.
      this.dropped++;
      return { arrival: 'duplicate', decode: false, missing: 0 };
    }
    if (d < 0) {
      // A late packet was already counted as lost when the gap opened.
      this.seen[seq % SEEN_WINDOW] = seq;
      this.dropped++;
      this.lost = Math.max(0, this.lost - 1);
      return { arrival: 'late', decode: false, missing: 0 };
    }
    if (d === 1) return this.take(seq, 'in_order', 0);
    this.lost += d - 1;
    return this.take(seq, 'gap', d - 1);
  }

  private take(seq: number, arrival: Arrival, missing: number): { arrival: Arrival; decode: boolean; missing: number } {
    this.highest = seq;
    this.seen[seq % SEEN_WINDOW] = seq;
    this.received++;
    return { arrival, decode: true, missing };
  }
}

/** EVA_RTP_MAX_PPS's default: see PacketRateCap. */
export const DEFAULT_RTP_MAX_PPS = 200;

export type CapDecision = 'pass' | 'drop' | 'drop_report';

/**
 * Inbound packets per second, per call: a token bucket over the packets that would be decoded, pure (the clock is
 * the caller's). Opus at 20 ms is 50 packets/s, 100 at the 10 ms the offer allows (minptime=10); the default cap
 * of 200 (EVA_RTP_MAX_PPS) is twice that, and the burst (half a second of the cap, 100 packets) passes 2 s of
 * 20 ms audio that a stalled network delivers at once. Beyond it each packet costs a decode (~70 µs) plus VAD
 * work for audio that cannot be real, so it is dropped. `drop_report` marks the first drop in each second, so a
 * flood counts one limit hit per call per second (`eva_limit_hits_total{limit="rtp_pps"}`), not one per packet.
 */
export class PacketRateCap {
  readonly burst: number;
  private tokens: number;
  private last: number | undefined;
  private reportedAt = Number.NEGATIVE_INFINITY;
  dropped = 0;

  constructor(
    readonly perSecond: number,
    burst = Math.max(1, Math.ceil(perSecond / 2)),
  ) {
    this.burst = burst;
    this.tokens = burst;
  }

  take(nowMs: number): CapDecision {
    if (this.last !== undefined) this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.last) * this.perSecond) / 1000);
    this.last = nowMs;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 'pass';
    }
    this.dropped++;
    if (nowMs - this.reportedAt < 1000) return 'drop';
    this.reportedAt = nowMs;
    return 'drop_report';
  }
}

/**
 * RTP packets of every call in this process since it started: received (each one werift delivered, before any
 * drop), sent (EVA's voice, DTX silence included), and 16 kHz samples of a caller's silence filled in (DTX).
 * server/metrics.ts exports them (eva_rtp_packets_total, eva_rtp_filled_seconds_total); the bench divides its stage costs by them.
 */
export const rtpTotals = { received: 0, sent: 0, filledSamples: 0 };
