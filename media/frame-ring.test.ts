import t from 'tap';
import { FrameRing } from './frame-ring.js';

/** A frame of `n` samples all equal to `v`. */
const frameOf = (n: number, v: number) => new Int16Array(n).fill(v);

t.test('frames come out in order, tags with them, across the wrap of the ring', async (t) => {
  const r = new FrameRing(4, 3);
  const out: number[] = [];
  for (let v = 1; v <= 10; v++) {
    t.equal(r.write(frameOf(4, v), 0), 4);
    r.commit(v % 2 ? v : NaN, v * 20);
    if (r.length === 2) {
      const s = r.first;
      out.push(r.frame(s)[0]!);
      t.equal(Number.isNaN(r.tagSegment(s)), r.frame(s)[0]! % 2 === 0, 'the tag is the frame\'s');
      r.shift();
    }
  }
  t.same(out, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.equal(r.slots, 3, 'never more than two queued: the ring did not grow');
});

t.test('samples written in pieces make one frame; a short one is zero-padded, even over an old frame', async (t) => {
  const r = new FrameRing(4, 2);
  r.write(frameOf(4, 9), 0);
  r.commit(NaN, 0);
  r.shift();
  r.write(frameOf(4, 9), 0);
  r.commit(NaN, 0);
  r.shift();
  // The slot that held 9s takes a partial frame of 2 samples written as 1 + 1.
  const src = Int16Array.from([5, 6, 7]);
  t.equal(r.write(src, 1), 2, 'takes what is left of the source');
  t.equal(r.partialLen, 2);
  t.equal(r.write(Int16Array.from([1, 2, 3]), 0), 2, 'then only up to the end of the frame');
  r.commit(1, 20);
  r.write(Int16Array.from([8]), 0);
  r.commit(1, 40);
  t.same(Array.from(r.frame(r.first)), [6, 7, 1, 2]);
  r.shift();
  t.same(Array.from(r.frame(r.first)), [8, 0, 0, 0], 'padded with zeros, not the 9s the slot held');
});

t.test('a full ring doubles, keeping the order, and goes on filling', async (t) => {
  const r = new FrameRing(2, 3);
  // Start off the front so the copy has to unwrap.
  r.write(frameOf(2, 0), 0);
  r.commit(NaN, 0);
  r.shift();
  for (let v = 1; v <= 3; v++) {
    r.write(frameOf(2, v), 0);
    r.commit(v, v);
  }
  t.equal(r.slots, 6, 'grew when the last free slot was taken');
  r.write(Int16Array.from([4]), 0);
  r.write(Int16Array.from([5]), 0);
  r.commit(5, 5);
  r.write(frameOf(2, 6), 0);
  r.commit(6, 6);
  r.write(Int16Array.from([7]), 0);
  const got: number[][] = [];
  while (r.length > 0) {
    got.push([...r.frame(r.first), r.tagSegment(r.first)]);
    r.shift();
  }
  t.same(got, [
    [1, 1, 1],
    [2, 2, 2],
    [3, 3, 3],
    [4, 5, 5],
    [6, 6, 6],
  ]);
  t.equal(r.partialLen, 1, 'the partial frame is still there');
});

t.test('drop takes the oldest frames and reports the last tagged one; clear empties everything', async (t) => {
  const r = new FrameRing(1, 8);
  for (const seg of [1, NaN, 2, NaN, NaN]) {
    r.write(Int16Array.from([0]), 0);
    r.commit(seg, 10);
  }
  t.equal(r.drop(2), 0, 'the first two: slot 0 was the last tagged');
  t.equal(r.tagSegment(r.drop(2)), 2, 'the next two: the one tagged 2');
  t.equal(r.drop(5), -1, 'the rest (only one left): none tagged');
  t.equal(r.length, 0);
  r.write(Int16Array.from([3]), 0);
  r.commit(NaN, 0);
  r.write(Int16Array.from([0]), 0);
  r.clear();
  t.equal(r.length, 0);
  t.equal(r.partialLen, 0);
});
