// Drift-free pacing decisions, pure. A call sends one 20 ms frame per slot; slots are counted from the start
// time t0, never from how many timer ticks fired: timers in Node fire 1–4 ms late and a tick-counting pacer
// drifts by seconds per minute. After a stall (GC, a busy event loop) it catches up by sending the frames that
// were due, up to a bound; past that bound it skips the slots and re-bases (the receiver's jitter buffer cannot
// use a burst of stale audio anyway).

export interface PacerClock {
  t0: number;
  /** Frame slots already filled (sent or skipped). */
  sent: number;
}

export interface Due {
  /** Frames to send now. */
  send: number;
  /** Frame slots to skip (advance RTP timestamps without sending). */
  skip: number;
  /** When the next slot is due (ms, same clock as now). */
  nextAt: number;
}

/** Up to this many overdue frames are sent back to back after a stall (60 ms); the rest are skipped. */
export const MAX_CATCH_UP = 3;

export function framesDue(clock: PacerClock, now: number, frameMs = 20, maxCatchUp = MAX_CATCH_UP): Due {
  const dueTotal = Math.floor((now - clock.t0) / frameMs) + 1;
  const behind = Math.max(0, dueTotal - clock.sent);
  const send = Math.min(behind, maxCatchUp);
  const skip = behind - send;
  const nextAt = clock.t0 + (clock.sent + behind) * frameMs;
  return { send, skip, nextAt };
}
