// The last N seconds of a call's 16 kHz audio, addressed by absolute sample index. Fixed memory per call
// (20 s = 640 KB); a turn longer than that keeps its last 20 s.

export class PcmRing {
  private readonly buf: Int16Array;
  /** Samples written since the start of the call. */
  written = 0;

  constructor(readonly capacity: number) {
    this.buf = new Int16Array(capacity);
  }

  write(pcm: Int16Array): void {
    let src = pcm;
    if (src.length > this.capacity) src = src.subarray(src.length - this.capacity);
    const at = (this.written + pcm.length - src.length) % this.capacity;
    const first = Math.min(src.length, this.capacity - at);
    this.buf.set(src.subarray(0, first), at);
    if (first < src.length) this.buf.set(src.subarray(first), 0);
    this.written += pcm.length;
  }

  /** Copy of samples [from, to) clamped to what is still held. */
  slice(from: number, to: number): Int16Array {
    const lo = Math.max(from, this.written - this.capacity, 0);
    const hi = Math.min(to, this.written);
    if (hi <= lo) return new Int16Array(0);
    const out = new Int16Array(hi - lo);
    const a = lo % this.capacity;
    const first = Math.min(out.length, this.capacity - a);
    out.set(this.buf.subarray(a, a + first), 0);
    if (first < out.length) out.set(this.buf.subarray(0, out.length - first), first);
    return out;
  }
}
