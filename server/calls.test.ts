// The calls' watchdog (calls.ts): its timeouts, and that a stall of EVA's own event loop does not end a call whose
// packets kept arriving while the loop was blocked.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import t from 'tap';
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
  const sock = dgram.createSocket('udp4');
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  const port = sock.address().port;
  const ended: CallEndReason[] = [];
  const call = { id: 'c1', state: 'connected', lastRtpAt: performance.now(), dtx: false, close: (r: CallEndReason) => ended.push(r) };
  let packets = 0;
  sock.on('message', () => {
    packets++;
    call.lastRtpAt = performance.now();
  });
  const registry = new CallRegistry(10);
  registry.add(call);
  t.teardown(() => {
    registry.remove(call);
    sock.close();
  });
  // A sender in its own process (it goes on while this loop is blocked): a packet every 20 ms for 4 s.
  const sender = spawn(
    process.execPath,
    ['-e', `const s = require('node:dgram').createSocket('udp4'); const end = Date.now() + 4000;
      const tick = () => { if (Date.now() > end) return s.close(); s.send(Buffer.alloc(20), ${port}, '127.0.0.1'); setTimeout(tick, 20); }; tick();`],
    { stdio: 'ignore' },
  );
  t.teardown(() => sender.kill());
  const deadline = performance.now() + 10_000;
  while (packets < 10 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.ok(packets >= 10, `the sender's packets arrive (${packets})`);
  const before = packets;
  // Block the loop in a timer callback for longer than the RTP timeout; the watchdog's interval is overdue when
  // it returns and fires in the same timers phase, before the poll phase has read what queued in the socket.
  const blockMs = RTP_TIMEOUT_MS + 500;
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      const until = performance.now() + blockMs;
      while (performance.now() < until) {
        // busy: this process's event loop is stalled
      }
      resolve();
    }, SWEEP_MS / 2),
  );
  await new Promise((r) => setTimeout(r, 4 * SWEEP_MS));
  t.ok(packets > before, `the packets sent during the stall were read (${packets - before})`);
  t.same(ended, [], 'the call was not ended for the stall of its own server');
  // The watchdog still works: with the sender gone, the call ends with rtp_timeout.
  sender.kill();
  const quietDeadline = performance.now() + RTP_TIMEOUT_MS + 5000;
  while (ended.length === 0 && performance.now() < quietDeadline) await new Promise((r) => setTimeout(r, 50));
  t.same(ended.slice(0, 1), ['rtp_timeout'], 'a call whose packets stop still ends');
});
