// Calls end and release everything, whichever way they end.
import { readdirSync } from 'node:fs';
import t from 'tap';
import WebSocket from 'ws';
import { ProbeCall } from '../bench/probe-client.js';
import { sleep, startEva, until } from './helpers/eva.js';

const fds = () => readdirSync('/proc/self/fd').length;

t.test('50 connect/hang-up cycles leave no call open and no file descriptors behind', async (t) => {
  const eva = await startEva(t);
  // Warm up (first connect JIT-compiles werift), then measure from a steady state.
  const warm = await ProbeCall.connect(eva.wsUrl);
  warm.hangup();
  await warm.close();
  await until(() => eva.server.calls.size === 0, 3000);
  await sleep(200);
  const before = fds();
  const connectMs: number[] = [];
  for (let i = 0; i < 50; i++) {
    const call = await ProbeCall.connect(eva.wsUrl);
    connectMs.push(call.connectMs);
    t.equal(eva.server.calls.size, 1);
    if (i % 2 === 0) call.hangup();
    await call.close(); // odd cycles: the socket closes without a hangup message
    await until(() => eva.server.calls.size === 0, 3000);
  }
  t.equal(eva.server.calls.size, 0, 'every call closed');
  t.equal(eva.server.calls.total, 51);
  await sleep(300);
  const after = fds();
  t.ok(after <= before + 4, `fds before ${before}, after ${after}`);
  connectMs.sort((a, b) => a - b);
  t.comment(`connect p50 ${connectMs[25]!.toFixed(0)} ms, max ${connectMs.at(-1)!.toFixed(0)} ms (werift client, loopback)`);
});

t.test('a client that stops sending RTP is dropped by the watchdog within ~1 s', async (t) => {
  const eva = await startEva(t);
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  await call.waitFor((m) => m.type === 'state');
  const stoppedAt = performance.now();
  call.stopSending();
  const bye = await call.waitFor((m) => m.type === 'bye', 4000);
  const took = performance.now() - stoppedAt;
  t.same(bye, { type: 'bye', reason: 'rtp_timeout' });
  t.ok(took >= 900 && took < 2000, `closed ${took.toFixed(0)} ms after the last packet`);
  t.equal(eva.server.calls.size, 0);
});

t.test('a client that vanishes (socket dropped, no hangup, no DTLS close) is cleaned up', async (t) => {
  const eva = await startEva(t);
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  call.terminateSocket();
  call.stopSending();
  t.ok(await until(() => eva.server.calls.size === 0, 3000), 'call closed');
});

t.test('a page closing its peer connection (DTLS close_notify) ends the call at once', async (t) => {
  const eva = await startEva(t);
  const call = await ProbeCall.connect(eva.wsUrl);
  await call.waitFor((m) => m.type === 'state');
  const t0 = performance.now();
  await call.close(); // closes the peer first-hand; the WS close follows
  t.ok(await until(() => eva.server.calls.size === 0, 2000), 'call closed');
  t.comment(`closed ${(performance.now() - t0).toFixed(0)} ms after pc.close()`);
});

t.test('a connection flood beyond EVA_MAX_CALLS is refused with a clear error and the server goes on', async (t) => {
  const eva = await startEva(t, { env: { EVA_MAX_CALLS: '3' } });
  const calls = await Promise.all([0, 1, 2].map(() => ProbeCall.connect(eva.wsUrl)));
  t.teardown(() => Promise.all(calls.map((c) => c.close())));
  await t.rejects(ProbeCall.connect(eva.wsUrl), /rate_limited: the server is at its limit of 3 calls/);
  await calls[0]!.close();
  await until(() => eva.server.calls.size === 2, 3000);
  const again = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => again.close());
  t.equal(eva.server.calls.size, 3, 'a slot freed up is usable again');
});

t.test('closing the server closes its calls and sockets', async (t) => {
  const eva = await startEva(t);
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  const ws = new WebSocket(eva.wsUrl);
  await new Promise((r) => ws.once('open', r));
  const closed = new Promise((r) => ws.once('close', r));
  await eva.server.close();
  await eva.server.close();
  await closed;
  t.equal(eva.server.calls.size, 0);
});
