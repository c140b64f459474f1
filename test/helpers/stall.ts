// For tests of what a stall of this process's event loop does: a UDP sender in a process of its own (it goes on
// while this loop is blocked), a bound socket that counts what it reads, and a busy block of the loop.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';

/** A socket on 127.0.0.1 that counts the datagrams it reads and when it read the last one (performance.now()). */
export interface CountingSocket {
  port: number;
  packets: number;
  lastArrival: number;
  close(): void;
}

export async function countingSocket(): Promise<CountingSocket> {
  const sock = dgram.createSocket('udp4');
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  const s: CountingSocket = { port: sock.address().port, packets: 0, lastArrival: performance.now(), close: () => sock.close() };
  sock.on('message', () => {
    s.packets++;
    s.lastArrival = performance.now();
  });
  return s;
}

/** A child process that sends a 20-byte datagram to 127.0.0.1:`port` every `everyMs` for `forMs`, then exits. */
export function udpSender(port: number, everyMs: number, forMs: number): ChildProcess {
  const code = `const s = require('node:dgram').createSocket('udp4'); const end = Date.now() + ${forMs};
    const tick = () => { if (Date.now() > end) return s.close(); s.send(Buffer.alloc(20), ${port}, '127.0.0.1'); setTimeout(tick, ${everyMs}); }; tick();`;
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

/** Resolves once `sock` has read `n` datagrams (false if not within `timeoutMs`). */
export async function readAtLeast(sock: CountingSocket, n: number, timeoutMs = 10_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (sock.packets < n && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return sock.packets >= n;
}

/**
 * Blocks this process's event loop for `ms`, busy, inside a timer callback `afterMs` from now: timers that fall
 * due meanwhile are overdue when it returns and run in the same timers phase, before the poll phase.
 */
export function blockLoop(ms: number, afterMs: number): Promise<void> {
  return new Promise<void>((resolve) =>
    setTimeout(() => {
      const until = performance.now() + ms;
      while (performance.now() < until) {
        // busy: the event loop is stalled
      }
      resolve();
    }, afterMs),
  );
}
