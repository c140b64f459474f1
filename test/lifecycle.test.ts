// Calls end and release everything, whichever way they end.
import { readdirSync } from 'node:fs';
import t from 'tap';
import WebSocket from 'ws';
import { ProbeCall } from '../bench/probe-client.js';
import { sleep, startEva, until } from './helpers/eva.js';
import { closeDtls } from './helpers/probe.js';

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

for (const [dtx, timeoutMs] of [
  [false, 1000],
  [true, 2000],
] as const) {
  t.test(`a client that stops sending RTP is dropped by the watchdog after ${timeoutMs / 1000} s (DTX ${dtx ? 'on' : 'off'})`, async (t) => {
    const eva = await startEva(t, { env: { EVA_OPUS_DTX: dtx ? '1' : '0' } });
    const call = await ProbeCall.connect(eva.wsUrl);
    t.teardown(() => call.close());
    t.equal(call.dtx, dtx, `the call ${dtx ? 'uses' : 'does not use'} DTX`);
    await call.waitFor((m) => m.type === 'state');
    const stoppedAt = performance.now();
    call.stopSending();
    const bye = await call.waitFor((m) => m.type === 'bye', timeoutMs + 4000);
    const took = performance.now() - stoppedAt;
    t.same(bye, { type: 'bye', reason: 'rtp_timeout' });
    // Not before the timeout (a quiet DTX caller's 400 ms keep-alive gaps are allowed five times over); after it,
    // within the 100 ms sweep plus what a loaded 2-core machine adds.
    t.ok(took >= timeoutMs - 100 && took < timeoutMs + 4000, `closed ${took.toFixed(0)} ms after the last packet`);
    t.equal(eva.server.calls.size, 0);
  });
}

t.test('a client that vanishes (socket dropped, no hangup, no DTLS close) is cleaned up', async (t) => {
  const eva = await startEva(t);
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  call.terminateSocket();
  call.stopSending();
  t.ok(await until(() => eva.server.calls.size === 0, 3000), 'call closed');
});

t.test('a page closing its peer connection (DTLS close_notify) ends the call at once with bye dtls_closed', async (t) => {
  const eva = await startEva(t);
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  // EVA's audio arriving means her side is connected too (she watches DTLS from then on; a close_notify that
  // beats it is left to the RTP watchdog).
  t.ok(await until(() => call.heard.length >= 5, 5000), 'EVA is sending audio');
  const t0 = performance.now();
  const sentAt = await closeDtls(call); // close_notify, then pc.close(); the WebSocket stays open
  const bye = await call.waitFor((m) => m.type === 'bye', 5000, t0);
  const byeAt = call.events.find((e) => e.msg === bye)!.at;
  t.same(bye, { type: 'bye', reason: 'dtls_closed' }, 'the call ended for the DTLS close, not the RTP watchdog');
  t.equal(eva.server.calls.size, 0, 'call closed');
  // The socket is still open and serving: a typed turn now has no call to go to.
  call.send({ type: 'text', text: 'still there?' });
  t.match(await call.waitFor((m) => m.type === 'error', 5000, t0), { code: 'no_call' }, 'the signaling socket stays open after the call');
  // The reason is the check (the RTP watchdog would say rtp_timeout at 1 s); the time is a figure.
  t.comment(`bye ${(byeAt - sentAt).toFixed(0)} ms after close_notify`);
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
