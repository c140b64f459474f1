import t from 'tap';
import { createResampler } from './resample.js';

const sine = (n: number, rate: number, hz: number, amp = 8000) =>
  Int16Array.from({ length: n }, (_, i) => Math.round(amp * Math.sin((2 * Math.PI * hz * i) / rate)));
function rms(x: Int16Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s / Math.max(1, x.length));
}
function crossings(x: Int16Array): number {
  let n = 0;
  for (let i = 1; i < x.length; i++) if ((x[i - 1]! < 0) !== (x[i]! < 0)) n++;
  return n;
}
const concat = (parts: Int16Array[]) => {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
};

t.test('22.05 → 48 kHz keeps a 1 kHz tone\'s frequency, level and length, chunked or not', async (t) => {
  const input = sine(22050, 22050, 1000);
  const a = await createResampler(22050, 48000);
  const b = await createResampler(22050, 48000);
  t.teardown(() => (a.destroy(), b.destroy()));
  const chunked = concat([...Array.from({ length: 50 }, (_, k) => a.process(input.subarray(k * 441, (k + 1) * 441))), a.flush()]);
  const whole = concat([b.process(input), b.flush()]);
  t.ok(Math.abs(chunked.length - 48000) <= 2, `length ${chunked.length} ≈ 48000`);
  const mid = chunked.subarray(4800, 43200);
  t.ok(Math.abs(crossings(mid) / 2 / (mid.length / 48000) - 1000) < 5, 'frequency kept');
  t.ok(Math.abs(rms(mid) - 8000 / Math.SQRT2) < 300, `level kept (${rms(mid).toFixed(0)})`);
  let maxDiff = 0;
  for (let i = 0; i < Math.min(whole.length, chunked.length); i++) maxDiff = Math.max(maxDiff, Math.abs(whole[i]! - chunked[i]!));
  t.ok(maxDiff <= 2, `chunked and one-shot agree (max diff ${maxDiff})`);
});

t.test('48 → 16 kHz rejects a 10 kHz tone (above the new Nyquist)', async (t) => {
  const r = await createResampler(48000, 16000);
  t.teardown(() => r.destroy());
  const out = r.process(sine(48000, 48000, 10000, 16000));
  const db = 20 * Math.log10(rms(out.subarray(800)) / (16000 / Math.SQRT2));
  t.ok(db < -40, `${db.toFixed(1)} dB`);
});

t.test('equal rates pass through; bad rates, use after destroy and double destroy', async (t) => {
  const same = await createResampler(24000, 24000);
  t.same(Array.from(same.process(Int16Array.of(1, 2, 3))), [1, 2, 3]);
  await t.rejects(createResampler(0, 16000), /invalid sample rates/);
  const r = await createResampler(16000, 24000);
  r.destroy();
  r.destroy();
  t.throws(() => r.process(new Int16Array(10)), /after destroy/);
});
