// The process's open calls — EVA's `/ws` calls and Realtime WebRTC calls alike — and the one sweep timer that enforces every call's timeouts (one timer for all
// calls rather than one per call).
import { everyAfterPoll } from '../media/after-poll.js';
import { CONNECT_TIMEOUT_MS, RTP_TIMEOUT_DTX_MS, RTP_TIMEOUT_MS, type CallEndReason } from './call.js';

/** What the registry needs of a call, whichever protocol drives it (call.ts, realtime/webrtc-call.ts). */
export interface RegisteredCall {
  readonly id: string;
  readonly state: string;
  /** performance.now() of the last RTP packet, or of the offer. */
  readonly lastRtpAt: number;
  /** Opus DTX is on for the call: a quiet caller sends a packet per 400 ms, not per 20 ms. */
  readonly dtx: boolean;
  close(reason: CallEndReason): void;
}

/**
 * The watchdog every WebRTC call gets: no RTP for RTP_TIMEOUT_MS (RTP_TIMEOUT_DTX_MS with DTX) once connected, no
 * connection by CONNECT_TIMEOUT_MS.
 */
export function timedOut(state: string, lastRtpAt: number, now: number, dtx: boolean): CallEndReason | null {
  if (state === 'connected' && now - lastRtpAt > (dtx ? RTP_TIMEOUT_DTX_MS : RTP_TIMEOUT_MS)) return 'rtp_timeout';
  if (state === 'connecting' && now - lastRtpAt > CONNECT_TIMEOUT_MS) return 'connect_timeout';
  return null;
}

export const SWEEP_MS = 100;

export class CallRegistry {
  private readonly calls = new Map<string, RegisteredCall>();
  private timer: NodeJS.Timeout | null = null;
  total = 0;

  constructor(readonly max: number) {}

  get size(): number {
    return this.calls.size;
  }

  /** The calls up now. */
  values(): IterableIterator<RegisteredCall> {
    return this.calls.values();
  }

  has(id: string): boolean {
    return this.calls.has(id);
  }

  add(call: RegisteredCall): void {
    this.calls.set(call.id, call);
    this.total++;
    if (!this.timer) {
      // Judged after the poll phase (after-poll.ts): packets that queued during a stall of this process's loop
      // are read first, so a call that kept sending is not ended.
      this.timer = everyAfterPoll(() => this.sweep(), SWEEP_MS);
    }
  }

  remove(call: RegisteredCall): void {
    this.calls.delete(call.id);
    if (this.calls.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of [...this.calls.values()]) {
      const reason = timedOut(c.state, c.lastRtpAt, now, c.dtx);
      if (reason) c.close(reason);
    }
  }

  /** Ends every call; one whose close throws does not keep the others open (the first error is rethrown after). */
  closeAll(reason: CallEndReason): void {
    let failed: { err: unknown } | undefined;
    for (const c of [...this.calls.values()]) {
      try {
        c.close(reason);
      } catch (err) {
        failed ??= { err };
      }
    }
    if (failed) throw failed.err;
  }
}
