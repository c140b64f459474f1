// Soak: connect/hang-up cycles against one EVA, then file descriptors (/proc/self/fd: EVA runs in this process)
// and heap (after a full GC) must come back to their baseline.
//
// Two kinds of cycle. A full cycle is what a page does: WebSocket, offer, answer, ICE + DTLS connected, hangup
// (odd cycles drop the socket instead). It takes ~150-250 ms here, so 1,000 would take 3-4 minutes: the soak does
// FULL_CYCLES of them plus SIGNALING_CYCLES signaling-only cycles (WebSocket, a real offer, the server's answer with
// its werift peer gathering, hangup, close), which exercise every allocation of a call but the media.
//
// werift keeps a closed DTLS client's handshake retransmission alive for up to 33 s (test/helpers/handles.ts): a
// call hung up within ~0.5 s of connecting holds its DTLS state that long. The heap is therefore compared after
// those have run out, and also reported right after the cycles.
import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import WebSocket from 'ws';
import { ProbeCall } from '../../bench/probe-client.js';
import { Peer } from '../../media/peer.js';
import { sleep, startEva, until } from '../helpers/eva.js';
import { weriftRetransmitSleeps } from '../helpers/handles.js';
import { refusedLookups } from '../helpers/offline.js';

const FULL_CYCLES = 100;
const SIGNALING_CYCLES = 1000;
/** werift's Flight.transmit back-off: 0.5 + 1 + … + 5.5 s. */
const DTLS_RETRANSMIT_MS = 33_000;
/** Generous: a few fds may be in flux (a closing UDP socket), and V8's heap after GC varies by a few MB. */
const FD_SLACK = 10;
const HEAP_SLACK_MB = 16;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const fds = (): number => readdirSync('/proc/self/fd').length;
async function heapMb(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(50);
  }
  return process.memoryUsage().heapUsed / 2 ** 20;
}

async function signalingCycle(url: string, sdp: string): Promise<void> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const answered = new Promise<void>((resolve, reject) => {
    ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as { type: string; code?: string };
      if (m.type === 'answer') resolve();
      else if (m.type === 'error') reject(new Error(`offer refused: ${m.code}`));
    });
  });
  ws.send(JSON.stringify({ type: 'offer', sdp }));
  await answered;
  ws.send(JSON.stringify({ type: 'hangup' }));
  const closed = new Promise((r) => ws.once('close', r));
  ws.close();
  await closed;
}

t.test(`${FULL_CYCLES} full and ${SIGNALING_CYCLES} signaling connect/hang-up cycles: fds and heap return to baseline`, async (t) => {
  const eva = await startEva(t, { env: { EVA_LOG_LEVEL: 'error' } });
  const dead = new Peer({ onAudio: () => undefined }, { onlyHosts: ['127.0.0.1'] });
  const offer = await dead.offer();
  await dead.close();

  // Warm up both paths (JIT, werift's lazy modules, the Opus wasm). These calls stay up 300 ms, so the server's
  // DTLS handshake completes and leaves no retransmission behind (see above): the baseline is clean.
  for (let i = 0; i < 10; i++) {
    const c = await ProbeCall.connect(eva.wsUrl);
    await sleep(300);
    c.hangup();
    await c.close();
    await signalingCycle(eva.wsUrl, offer);
  }
  await until(() => eva.server.calls.size === 0, 5000);
  await sleep(1000);
  const fd0 = fds();
  const heap0 = await heapMb();
  const retransmits0 = weriftRetransmitSleeps.started;

  const full0 = performance.now();
  const connectMs: number[] = [];
  for (let i = 0; i < FULL_CYCLES; i++) {
    const c = await ProbeCall.connect(eva.wsUrl, { keepPcmSeconds: 0 });
    connectMs.push(c.connectMs);
    if (i % 2 === 0) c.hangup();
    await c.close(); // odd cycles: the socket closes without a hangup message
    await until(() => eva.server.calls.size === 0, 5000);
  }
  const fullMs = performance.now() - full0;
  const fullTotal = eva.server.calls.total;

  const sig0 = performance.now();
  for (let i = 0; i < SIGNALING_CYCLES; i++) await signalingCycle(eva.wsUrl, offer);
  const sigMs = performance.now() - sig0;
  t.ok(await until(() => eva.server.calls.size === 0, 5000), 'every call closed');
  t.equal(eva.server.calls.total - fullTotal, SIGNALING_CYCLES, 'every signaling cycle made a call');

  await sleep(500);
  const fd1 = fds();
  const retransmitting = weriftRetransmitSleeps.live;
  const heap1 = await heapMb();
  // The full cycles' DTLS retransmissions end DTLS_RETRANSMIT_MS after the last full cycle.
  await sleep(Math.max(0, full0 + fullMs + DTLS_RETRANSMIT_MS + 1000 - performance.now()));
  const fd2 = fds();
  const heap2 = await heapMb();

  t.ok(fd1 <= fd0 + FD_SLACK, `fds: ${fd0} before, ${fd1} right after the cycles`);
  t.ok(fd2 <= fd0 + FD_SLACK, `fds: ${fd2} once werift's retransmissions ran out`);
  t.equal(weriftRetransmitSleeps.live, 0, `werift's DTLS retransmissions ran out (${retransmitting} were running right after the cycles)`);
  t.ok(heap2 <= heap0 + HEAP_SLACK_MB, `heap after GC: ${heap0.toFixed(1)} MB before, ${heap2.toFixed(1)} MB after (${(heap2 - heap0).toFixed(1)} MB)`);
  connectMs.sort((a, b) => a - b);
  t.comment(
    `full cycles: ${FULL_CYCLES} in ${(fullMs / 1000).toFixed(1)} s (${(fullMs / FULL_CYCLES).toFixed(0)} ms each; connect p50 ${connectMs[FULL_CYCLES >> 1]!.toFixed(0)} ms, max ${connectMs.at(-1)!.toFixed(0)} ms); ` +
      `signaling cycles: ${SIGNALING_CYCLES} in ${(sigMs / 1000).toFixed(1)} s (${(sigMs / SIGNALING_CYCLES).toFixed(0)} ms each)`,
  );
  t.comment(`werift DTLS retransmission sleeps started during the cycles: ${weriftRetransmitSleeps.started - retransmits0}; EVA's DNS lookups refused: ${JSON.stringify(Object.fromEntries(refusedLookups))}`);
  t.comment(`fds ${fd0} → ${fd1} → ${fd2}; heap ${heap0.toFixed(1)} → ${heap1.toFixed(1)} (right after) → ${heap2.toFixed(1)} MB (after werift's DTLS timers); rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`);
});
