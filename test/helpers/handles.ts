// What keeps a finished test process alive. A test file must end by itself once its tests are done: anything
// still open then is a leak, and is printed (not hidden by a forced exit).
//
// One known leak is werift's, not EVA's: a DTLS client's handshake flight (Flight5, the role EVA's answering
// peer takes) retransmits from a `timers/promises` sleep with back-off — 0.5 s, 1 s … 5.5 s, 33 s in all — until
// the server's last flight arrives. When the peer closes before that (a call hung up within ~0.5 s of
// connecting, as the lifecycle and soak tests do), nothing stops the loop: pc.close() leaves it sleeping, and it
// resends on a closed transport 11 times (werift 0.25 lib/index.mjs, `Flight.transmit`). Those sleeps hold no
// socket; they are made unref'd here so they cannot hold the process. Every other timer, socket or port still
// does, and `reportLeaksAtExit` names them.
import { createHook } from 'node:async_hooks';
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const timersPromises = require('node:timers/promises') as { setTimeout: (ms?: number, value?: unknown, opts?: { ref?: boolean; signal?: AbortSignal }) => Promise<unknown> };

let patched = false;
/** werift's DTLS retransmission sleeps: started so far, and sleeping now (figures the soak test reports). */
export const weriftRetransmitSleeps = { started: 0, live: 0 };

/** Make werift's DTLS retransmission sleeps unref'd. Idempotent; other callers of timers/promises are untouched. */
export function unrefWeriftRetransmits(): void {
  if (patched) return;
  patched = true;
  const original = timersPromises.setTimeout;
  timersPromises.setTimeout = function setTimeout(ms, value, opts) {
    // Only werift's bundle calls it without options; the stack is read only then (a few calls per handshake).
    if (opts === undefined && /Flight\d*\.transmit[^\n]*werift/.test(new Error().stack ?? '')) {
      weriftRetransmitSleeps.started++;
      weriftRetransmitSleeps.live++;
      const sleep = original(ms, value, { ref: false });
      const done = (): void => void weriftRetransmitSleeps.live--;
      sleep.then(done, done);
      return sleep;
    }
    return original(ms, value, opts);
  };
  // werift imports the ESM binding (`import { setTimeout } from "timers/promises"`): publish the new function to it.
  syncBuiltinESMExports();
}

// EVA_TEST_WHY=1: record where every timer, socket and port was made (async_hooks; slows the run), so the leak
// report below can say who made what is still open.
const origins = new Map<number, { type: string; stack: string; resource: object }>();
if (process.env.EVA_TEST_WHY === '1') {
  createHook({
    init(id, type, _trigger, resource) {
      // Timers and handles (sockets, ports, workers) hold a process; requests and promises do not.
      if (type !== 'Timeout' && type !== 'MESSAGEPORT' && type !== 'WORKER' && !/WRAP$/.test(type)) return;
      origins.set(id, { type, stack: (new Error().stack ?? '').split('\n').slice(3, 11).join('\n'), resource });
    },
    destroy(id) {
      origins.delete(id);
    },
  }).enable();
}

/** Whether a recorded resource still holds the event loop (a ref'd timer or handle). */
function holds(resource: object): boolean {
  const r = resource as { hasRef?: () => boolean; _destroyed?: boolean };
  return typeof r.hasRef === 'function' ? r.hasRef() && r._destroyed !== true : true;
}

/**
 * If the process is still alive `graceMs` after the caller's teardown, print what holds it (an unref'd timer: it
 * never holds the process itself). Resource names (`Timeout`, `TCPWrap`, `MessagePort` …), and with
 * EVA_TEST_WHY=1 the stacks that made them.
 */
export function reportLeaksAtExit(graceMs = 3000): void {
  setTimeout(() => {
    // stdout/stderr (pipes under tap, a TTY by hand) are always there and hold nothing.
    const held = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap');
    if (!held.length) return;
    console.error(`# test process still alive ${graceMs} ms after its last test; open resources: ${JSON.stringify(held)}`);
    if (!origins.size) {
      console.error('# run it again with EVA_TEST_WHY=1 to see where they were made');
      return;
    }
    const byStack = new Map<string, number>();
    for (const o of origins.values()) {
      if (o.type === 'PIPEWRAP' || o.type === 'TTYWRAP' || !holds(o.resource)) continue;
      const k = `${o.type}\n${o.stack}`;
      byStack.set(k, (byStack.get(k) ?? 0) + 1);
    }
    for (const [k, n] of byStack) console.error(`# ${n} × ${k.replace(/\n/g, '\n#   ')}`);
  }, graceMs).unref();
}
