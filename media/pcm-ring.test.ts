import t from 'tap';
import { PcmRing } from './pcm-ring.js';

const seq = (from: number, n: number) => Int16Array.from({ length: n }, (_, i) => from + i);

t.test('slices across the wrap point come back in order', async (t) => {
  const r = new PcmRing(10);
  r.write(seq(0, 7));
  r.write(seq(7, 7)); // 0..13 written, 4..13 held
  t.same(Array.from(r.slice(5, 12)), [5, 6, 7, 8, 9, 10, 11]);
  t.same(Array.from(r.slice(0, 6)), [4, 5], 'what was overwritten is clamped away');
  t.same(Array.from(r.slice(12, 99)), [12, 13], 'the future is clamped to what was written');
  t.equal(r.slice(9, 3).length, 0);
});

t.test('a write larger than the ring keeps its tail', async (t) => {
  const r = new PcmRing(4);
  r.write(seq(0, 9));
  t.equal(r.written, 9);
  t.same(Array.from(r.slice(0, 9)), [5, 6, 7, 8]);
});
