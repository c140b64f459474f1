import t from 'tap';
import { rmsOf as rms } from './level.js';
import { createResampler } from './resample.js';

const sine = (n: number, rate: number, hz: number, amp = 8000) =>
  Int16Array.from({ length: n }, (_, i) => Math.round(amp * Math.sin((2 * Math.PI * hz * i) / rate)));
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
const db = (x: Int16Array, amp: number) => 20 * Math.log10(Math.max(1e-9, rms(x)) / (amp / Math.SQRT2));

t.test("22.05 → 48 kHz keeps a 1 kHz tone's frequency, level and length, chunked or not", async (t) => {
  const input = sine(22050, 22050, 1000);
  const a = await createResampler(22050, 48000);
  const b = await createResampler(22050, 48000);
  t.teardown(() => (a.destroy(), b.destroy()));
  const chunked = concat([...Array.from({ length: 50 }, (_, k) => a.process(input.subarray(k * 441, (k + 1) * 441))), a.flush()]);
  const whole = concat([b.process(input), b.flush()]);
  t.ok(Math.abs(chunked.length - 48000) <= 2, `length ${chunked.length} ≈ 48000`);
  const mid = chunked.subarray(4800, 43200);
  const hz = crossings(mid) / 2 / (mid.length / 48000);
  t.ok(Math.abs(hz - 1000) < 5, `frequency kept (${hz.toFixed(1)} Hz)`);
  t.ok(Math.abs(rms(mid) - 8000 / Math.SQRT2) < 300, `level kept (${rms(mid).toFixed(0)})`);
  t.equal(chunked.length, whole.length, 'same length chunked and one-shot');
  let maxDiff = 0;
  for (let i = 0; i < Math.min(whole.length, chunked.length); i++) maxDiff = Math.max(maxDiff, Math.abs(whole[i]! - chunked[i]!));
  t.ok(maxDiff <= 2, `chunked and one-shot agree (max diff ${maxDiff})`);
});

t.test('odd chunk sizes (seeded random, 1–900 samples) give the same stream as one-shot', async (t) => {
  const input = sine(24000, 24000, 440, 12000);
  const a = await createResampler(24000, 48000);
  const b = await createResampler(24000, 48000);
  t.teardown(() => (a.destroy(), b.destroy()));
  let seed = 7;
  const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const parts: Int16Array[] = [];
  for (let off = 0; off < input.length; ) {
    const n = 1 + Math.floor(rnd() * 900);
    parts.push(a.process(input.subarray(off, off + n)));
    off += n;
  }
  parts.push(a.flush());
  const chunked = concat(parts);
  const whole = concat([b.process(input), b.flush()]);
  t.equal(chunked.length, whole.length);
  let maxDiff = 0;
  for (let i = 0; i < whole.length; i++) maxDiff = Math.max(maxDiff, Math.abs(whole[i]! - chunked[i]!));
  t.ok(maxDiff <= 2, `max diff ${maxDiff}`);
  // No click at any seam: past the onset, the largest step between neighbours stays what a 440 Hz sine allows.
  let maxStep = 0;
  for (let i = 200; i < chunked.length - 200; i++) maxStep = Math.max(maxStep, Math.abs(chunked[i]! - chunked[i - 1]!));
  t.ok(maxStep <= 12000 * 2 * Math.PI * (440 / 48000) * 1.05, `largest step ${maxStep}`);
});

t.test('48 → 16 kHz keeps a 1 kHz tone and rejects a 10 kHz one (above the new Nyquist)', async (t) => {
  const r = await createResampler(48000, 16000);
  t.teardown(() => r.destroy());
  const pass = r.process(sine(48000, 48000, 1000, 16000));
  t.ok(Math.abs(db(pass.subarray(800), 16000)) < 0.5, `1 kHz: ${db(pass.subarray(800), 16000).toFixed(2)} dB`);
  const stop = r.process(sine(48000, 48000, 10000, 16000));
  const rejection = db(stop.subarray(800), 16000);
  t.ok(rejection < -40, `10 kHz: ${rejection.toFixed(1)} dB`);
});

t.test('flush() drains the filter tail and the resampler stays usable', async (t) => {
  const r = await createResampler(22050, 48000);
  t.teardown(() => r.destroy());
  const body = r.process(sine(2205, 22050, 500));
  const tail = r.flush();
  t.ok(tail.length > 0, `tail of ${tail.length} samples`);
  t.ok(Math.abs(body.length + tail.length - 4800) <= 2, `${body.length} + ${tail.length} ≈ 4800 samples for 100 ms`);
  t.ok(r.process(sine(441, 22050, 500)).length > 0);
});

t.test('equal rates pass through; bad arguments, use after destroy and double destroy', async (t) => {
  const same = await createResampler(24000, 24000);
  const x = Int16Array.of(1, 2, 3);
  const y = same.process(x);
  t.same(Array.from(y), [1, 2, 3]);
  t.not(y, x, 'a copy, not the caller’s buffer');
  t.equal(same.flush().length, 0);
  same.destroy();
  same.destroy();
  await t.rejects(createResampler(0, 16000), /invalid sample rates/);
  await t.rejects(createResampler(16000, 24000, { quality: 11 }), /invalid quality/);
  const r = await createResampler(16000, 24000);
  r.destroy();
  r.destroy();
  t.throws(() => r.process(new Int16Array(10)), /after destroy/);
  t.throws(() => r.flush(), /after destroy/);
});

t.test('many resamplers share one module and free their memory', async (t) => {
  for (let i = 0; i < 200; i++) {
    const r = await createResampler(22050, 48000);
    r.process(sine(441, 22050, 300));
    r.destroy();
  }
  t.pass('200 create/destroy cycles');
});
