// Browser: what Chromium makes of EVA's Opus DTX (EVA_OPUS_DTX, on by default: while EVA is quiet, one silence
// packet every 400 ms, the RTP timestamp following the clock, the marker bit on the next talkspurt; and its
// answer asks the caller for DTX, usedtx=1, the silence not sent reaching the VAD as zeros, media/rx-clock.ts). Read from
// the page's own RTCPeerConnection stats (inbound-rtp) over ~24 s of a call in which the fake microphone says
// "Hello EVA, how are you today?" every 5.7 s and EVA (zero-config: the echo agent, eSpeak) answers each time.
// Measured here: Chrome's jitter buffer held 10–15 ms of audio with DTX against 30–40 ms with 20 ms silence
// frames, its concealment during DTX was silent (no energy added between replies), and the page heard the
// replies ~40 ms sooner (median 740 vs 780 ms after the mic's talkspurt, the echo agent's end of turn included).
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './helpers/chromium.js';
import { spawnEva } from './helpers/server.js';

interface OutboundAudio {
  packetsSent: number;
}
interface InboundAudio {
  packetsReceived: number;
  jitterBufferDelay: number;
  jitterBufferEmittedCount: number;
  concealedSamples: number;
  silentConcealedSamples: number;
  totalAudioEnergy: number;
}
interface Talkspurt {
  source: 'mic' | 'remote';
  start: number;
  end: number | null;
}
declare const window: {
  eva: { connect(): Promise<void>; connection: string; stats: { talkspurts: Talkspurt[] } | null };
  __evaPcs: { getStats(): Promise<Map<string, Record<string, unknown>>> }[];
};

const HELLO_MIC = fileURLToPath(new URL('./fixtures/hello-48k.wav', import.meta.url));

t.test('with DTX, Chromium keeps a small jitter buffer, conceals the quiet stretches silently and hears every reply', async (t) => {
  const eva = await spawnEva(t);
  const browser = await launchChromium(t, { fakeAudio: HELLO_MIC });
  const { page } = browser;
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`page console:\n${browser.logs.join('\n') || '(empty)'}`);
    t.comment(`server stderr:\n${eva.stderr().slice(-4000) || '(empty)'}`);
  });
  // The page keeps its RTCPeerConnection to itself: keep a reference as it is made, to read its stats.
  await page.addInitScript(() => {
    const g = globalThis as unknown as { RTCPeerConnection: new (...a: unknown[]) => object; __evaPcs: object[] };
    const Native = g.RTCPeerConnection;
    g.__evaPcs = [];
    g.RTCPeerConnection = class extends Native {
      constructor(...a: unknown[]) {
        super(...a);
        g.__evaPcs.push(this);
      }
    };
  });
  await page.goto(eva.url);
  await page.evaluate(() => window.eva.connect());
  await page.waitForFunction(() => window.eva.connection === 'connected', null, { timeout: 15000 });

  const read = (): Promise<{ inbound: InboundAudio; outbound: OutboundAudio } | null> =>
    page.evaluate(async () => {
      const pc = window.__evaPcs[0];
      if (!pc) return null;
      let inbound: unknown = null;
      let outbound: unknown = null;
      for (const r of (await pc.getStats()).values()) {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') inbound = r;
        if (r.type === 'outbound-rtp' && r.kind === 'audio') outbound = r;
      }
      return inbound && outbound ? ({ inbound, outbound } as { inbound: InboundAudio; outbound: OutboundAudio }) : null;
    });
  const samples: InboundAudio[] = [];
  const sent: number[] = [];
  for (let i = 0; i < 12; i++) {
    await new Promise((r) => setTimeout(r, 2000));
    const s = await read();
    if (s) {
      samples.push(s.inbound);
      sent.push(s.outbound.packetsSent);
    }
  }
  t.ok(samples.length >= 10, `the page's inbound audio stats were read (${samples.length} of 12 times)`);
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const seconds = (samples.length - 1) * 2;
  const pps = (last.packetsReceived - first.packetsReceived) / seconds;
  t.ok(pps < 40, `fewer than 50 packets a second reached the page (${pps.toFixed(1)}/s: speech at 50/s, quiet at 2.5/s)`);
  // EVA's answer asks for DTX (usedtx=1): Chrome's Opus stops sending in the fake microphone's silences too.
  const micPps = (sent.at(-1)! - sent[0]!) / seconds;
  t.ok(micPps < 40, `Chrome sent fewer than 50 packets a second (${micPps.toFixed(1)}/s): it honours usedtx=1`);

  // Mean playout delay of the audio emitted in each 2 s window, and in the second half against the first.
  const windows = samples.slice(1).map((s, i) => {
    const emitted = s.jitterBufferEmittedCount - samples[i]!.jitterBufferEmittedCount;
    return emitted > 0 ? ((s.jitterBufferDelay - samples[i]!.jitterBufferDelay) / emitted) * 1000 : NaN;
  });
  const half = Math.floor(windows.length / 2);
  const mean = (xs: number[]): number => xs.filter(Number.isFinite).reduce((a, b) => a + b, 0) / Math.max(1, xs.filter(Number.isFinite).length);
  const early = mean(windows.slice(0, half));
  const late = mean(windows.slice(half));
  t.comment(`jitter buffer per 2 s window (ms): ${windows.map((w) => w.toFixed(1)).join(', ')}`);
  // Gaps that a receiver took for late packets grew Chrome's buffer from 35 to 221 ms in 25 s; DTX must not.
  t.ok(late < Math.max(80, 2 * early), `the jitter buffer did not grow: ${early.toFixed(1)} ms early, ${late.toFixed(1)} ms late`);

  const concealed = last.concealedSamples - first.concealedSamples;
  const silent = last.silentConcealedSamples - first.silentConcealedSamples;
  t.ok(concealed > 0 && silent / concealed > 0.8, `the quiet stretches were concealed as silence (${silent} of ${concealed} concealed samples silent)`);

  const spurts = (await page.evaluate(() => window.eva.stats?.talkspurts ?? [])) as Talkspurt[];
  const mics = spurts.filter((s) => s.source === 'mic' && s.end !== null);
  const replies = mics.map((m, i) => spurts.find((s) => s.source === 'remote' && s.start > m.end! && s.start < (mics[i + 1]?.start ?? Infinity)));
  const heard = replies.filter(Boolean).length;
  t.ok(mics.length >= 3 && heard >= mics.length - 1, `the page heard a reply to ${heard} of ${mics.length} utterances`);
  t.comment(
    `reply heard after the mic's talkspurt ended (ms): ${replies.map((r, i) => (r ? Math.round(r.start - mics[i]!.end!) : '-')).join(', ')}; ` +
      `packets ${pps.toFixed(1)}/s to the page, ${micPps.toFixed(1)}/s from it; concealed ${concealed} samples, ${((100 * silent) / Math.max(1, concealed)).toFixed(0)} % silent`,
  );
});
