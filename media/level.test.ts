import t from 'tap';
import { voiceEdgeMs } from './level.js';

const RATE = 16000;
const ring = (pcm: Int16Array) => ({ slice: (from: number, to: number) => pcm.slice(from, to) });
function tone(ms: number, amp: number): Int16Array {
  const n = (ms * RATE) / 1000;
  return Int16Array.from({ length: n }, (_, i) => Math.round(amp * Math.sin((2 * Math.PI * 150 * i) / RATE)));
}
const cat = (...p: Int16Array[]) => {
  const out = new Int16Array(p.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of p) (out.set(x, o), (o += x.length));
  return out;
};

t.test('voice that stopped 50 ms before the end of the last voiced window is found 50 ms back', async (t) => {
  const pcm = cat(tone(400, 8000), new Int16Array((50 * RATE) / 1000));
  t.equal(voiceEdgeMs(ring(pcm), pcm.length, RATE), 50);
});

t.test('voice up to the end: no edge; a quiet tail below the speech level counts as ended', async (t) => {
  const loud = tone(400, 8000);
  t.equal(voiceEdgeMs(ring(loud), loud.length, RATE), 0);
  const tail = cat(tone(400, 8000), tone(40, 200)); // 32 dB down: breath, not voice
  t.equal(voiceEdgeMs(ring(tail), tail.length, RATE), 40);
});

t.test('never more than three VAD windows back, and 0 for nothing', async (t) => {
  const pcm = cat(tone(300, 8000), new Int16Array(RATE / 2));
  t.equal(voiceEdgeMs(ring(pcm), pcm.length, RATE), 90, 'capped at the scan (9 frames of 10 ms)');
  t.equal(voiceEdgeMs(ring(new Int16Array(0)), 0, RATE), 0);
});
