// A periodic timer whose callback runs after the event loop has read its sockets. A timer fires in the loop's
// timers phase, before the poll phase: after a stall of the loop (GC, a busy core) an overdue timer runs before the
// packets that queued meanwhile are read, and would take their absence for silence or a dead caller. Deferring
// the callback with setImmediate puts it after that iteration's poll phase.

/** Every `everyMs`, `fn` after the poll phase; unref'd (it never keeps the process alive). Stop with clearInterval. */
export function everyAfterPoll(fn: () => void, everyMs: number): NodeJS.Timeout {
  const timer = setInterval(() => setImmediate(fn), everyMs);
  timer.unref();
  return timer;
}
