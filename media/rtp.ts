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

export type Arrival = 'in_order' | 'gap' | 'late' | 'duplicate' | 'first';

/**
 * Tracks incoming sequence numbers. Audio is decoded in arrival order with no jitter buffer (loopback and LAN
 * deliver in order; the VAD tolerates a lost frame), so the policy is: accept anything newer, drop late and
 * duplicate packets, and count what was lost.
 */
export class RtpReceiveTracker {
  private highest = -1;
  received = 0;
  lost = 0;
  dropped = 0;

  /** Returns how the packet arrived and whether it should be decoded. */
  accept(seq: number): { arrival: Arrival; decode: boolean; missing: number } {
    if (this.highest < 0) {
      this.highest = seq;
      this.received++;
      return { arrival: 'first', decode: true, missing: 0 };
    }
    const d = seqDiff(seq, this.highest);
    if (d === 0) {
      this.dropped++;
      return { arrival: 'duplicate', decode: false, missing: 0 };
    }
    if (d < 0) {
      // A late packet was already counted as lost when the gap opened.
      this.dropped++;
      this.lost = Math.max(0, this.lost - 1);
      return { arrival: 'late', decode: false, missing: 0 };
    }
    this.highest = seq;
    this.received++;
    if (d === 1) return { arrival: 'in_order', decode: true, missing: 0 };
    // A jump of more than ~10 s of packets is a stream reset (new SSRC, restart), not loss.
    const missing = d - 1 > 500 ? 0 : d - 1;
    this.lost += missing;
    return { arrival: 'gap', decode: true, missing };
  }
}
