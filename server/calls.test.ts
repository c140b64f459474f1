// The calls' watchdog (calls.ts): its timeouts, and that a stall of EVA's own event loop does not end a call whose
// packets kept arriving while the loop was blocked.
import t from 'tap';
import { blockLoop, countingSocket, readAtLeast, udpSender } from '../test/helpers/stall.js';
import { CONNECT_TIMEOUT_MS, RTP_TIMEOUT_DTX_MS, RTP_TIMEOUT_MS, type CallEndReason } from './call.js';
import { CallRegistry, SWEEP_MS, timedOut } from './calls.js';

t.test('timeouts: 1 s of no RTP, 2 s with DTX (five missed 400 ms keep-alives), 15 s to connect', async (t) => {
  t.equal(timedOut('connected', 0, RTP_TIMEOUT_MS, false), null, 'not at the limit');
  t.equal(timedOut('connected', 0, RTP_TIMEOUT_MS + 1, false), 'rtp_timeout');
  t.equal(timedOut('connected', 0, RTP_TIMEOUT_MS + 1, true), null, 'a DTX call is allowed its keep-alive gaps');
  t.equal(timedOut('connected', 0, RTP_TIMEOUT_DTX_MS + 1, true), 'rtp_timeout');
  t.equal(timedOut('connecting', 0, RTP_TIMEOUT_DTX_MS + 1, true), null, 'before connecting, only the connect timeout');
  t.equal(timedOut('connecting', 0, CONNECT_TIMEOUT_MS + 1, false), 'connect_timeout');
  t.equal(timedOut('closed', 0, CONNECT_TIMEOUT_MS + 1, false), null);
});

t.test('a blocked event loop does not end a call whose packets arrived meanwhile: they are read before the watchdog judges', async (t) => {
  const sock = await countingSocket();
  const ended: CallEndReason[] = [];
  const call = {
    id: 'c1',
    state: 'connected',
    dtx: false,
    get lastRtpAt() {
      return sock.lastArrival;
    },
    close: (r: CallEndReason) => void ended.push(r),
  };
  const registry = new CallRegistry(10);
  registry.add(call);
  t.teardown(() => {
    registry.remove(call);
    sock.close();
  });
  // A packet every 20 ms for 4 s, from a process this loop's stall does not stop.
  const sender = udpSender(sock.port, 20, 4000);
  t.teardown(() => sender.kill());
  t.ok(await readAtLeast(sock, 10), `the sender's packets arrive (${sock.packets})`);
  const before = sock.packets;
  // Blocked for longer than the RTP timeout: the watchdog's interval is overdue when the loop goes on, and fires
  // in the same timers phase, before the poll phase has read what queued in the socket.
  await blockLoop(RTP_TIMEOUT_MS + 500, SWEEP_MS / 2);
  await new Promise((r) => setTimeout(r, 4 * SWEEP_MS));
  t.ok(sock.packets > before, `the packets sent during the stall were read (${sock.packets - before})`);
  t.same(ended, [], 'the call was not ended for the stall of its own server');
  // The watchdog still works: with the sender gone, the call ends with rtp_timeout.
  sender.kill();
  const quietDeadline = performance.now() + RTP_TIMEOUT_MS + 5000;
  while (ended.length === 0 && performance.now() < quietDeadline) await new Promise((r) => setTimeout(r, 50));
  t.same(ended.slice(0, 1), ['rtp_timeout'], 'a call whose packets stop still ends');
});

t.test('closeAll ends every call even when one close throws, then rethrows the first error', async (t) => {
  const ended: string[] = [];
  const registry = new CallRegistry(10);
  const mk = (id: string, fails: boolean) => {
    const call = {
      id,
      state: 'connected',
      dtx: false,
      lastRtpAt: performance.now(),
      close: (r: CallEndReason) => {
        registry.remove(call);
        if (fails) throw new Error(`close of ${id} failed`);
        ended.push(`${id}:${r}`);
      },
    };
    return call;
  };
  for (const c of [mk('a', false), mk('b', true), mk('c', false)]) registry.add(c);
  t.throws(() => registry.closeAll('error'), /close of b failed/, 'the failure is not swallowed');
  t.same(ended, ['a:error', 'c:error'], 'the calls after the failing one were ended too');
  t.equal(registry.size, 0, 'none is left in the registry');
});
