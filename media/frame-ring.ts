// The pacer's queue of 20 ms PCM frames, in one preallocated buffer.
//
// A frame used to be its own Int16Array plus a queue entry and a tag object. EVA's TTS runs far ahead of real
// time, so a talking call's queue sits near its 2 s bound and every frame lived ~2 s: long enough to survive two
// scavenges and be promoted, each with an ArrayBuffer of its own for V8 to track and, later, for a mark-compact
// to free (at 50 calls about a thousand such frames a second, a third of what each scavenge promoted). Here the
// frames are fixed slots of one Int16Array, each with a view made once, and the tags are two Float64Arrays: a
// queued frame allocates nothing.
export class FrameRing {
  private pcm: Int16Array;
  /** One view per slot, made when the ring is (re)built: handing a frame to the encoder allocates nothing. */
  private views: Int16Array[] = [];
  /** Per slot: the tag's segment (NaN: untagged) and its ms played once the frame is sent. */
  private segment: Float64Array;
  private endMs: Float64Array;
  private head = 0;
  private count = 0;
  /** Samples written so far into the slot after the last committed frame (the partial frame). */
  partialLen = 0;

  constructor(
    readonly frameSamples: number,
    private capacity: number,
  ) {
    this.pcm = new Int16Array(frameSamples * capacity);
    this.segment = new Float64Array(capacity);
    this.endMs = new Float64Array(capacity);
    this.makeViews();
  }

  /** Committed frames (the partial one not counted). */
  get length(): number {
    return this.count;
  }

  get slots(): number {
    return this.capacity;
  }

  /** Appends samples to the partial frame; returns how many it took (up to the frame's end). */
  write(src: Int16Array, from: number): number {
    const take = Math.min(this.frameSamples - this.partialLen, src.length - from);
    const at = this.slot(this.count) * this.frameSamples + this.partialLen;
    this.pcm.set(take === src.length && from === 0 ? src : src.subarray(from, from + take), at);
    this.partialLen += take;
    return take;
  }

  /** Queues the partial frame, zero-padded to a full one, with its tag (segment NaN: none). */
  commit(segment: number, endMs: number): void {
    const s = this.slot(this.count);
    if (this.partialLen < this.frameSamples) this.views[s]!.fill(0, this.partialLen);
    this.segment[s] = segment;
    this.endMs[s] = endMs;
    this.count++;
    this.partialLen = 0;
    // The next partial frame needs a free slot.
    if (this.count === this.capacity) this.grow();
  }

  /** The oldest frame's slot (call only when length > 0). */
  get first(): number {
    return this.head;
  }

  frame(slot: number): Int16Array {
    return this.views[slot]!;
  }

  tagSegment(slot: number): number {
    return this.segment[slot]!;
  }

  tagEndMs(slot: number): number {
    return this.endMs[slot]!;
  }

  /** Drops the oldest frame (it was sent). */
  shift(): void {
    if (this.count === 0) return;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
  }

  /** Drops up to `n` of the oldest frames; returns the slot of the last tagged one dropped, or -1. */
  drop(n: number): number {
    let lastTagged = -1;
    for (let k = Math.min(n, this.count); k > 0; k--) {
      if (!Number.isNaN(this.segment[this.head]!)) lastTagged = this.head;
      this.shift();
    }
    return lastTagged;
  }

  /** Drops every frame and the partial one. */
  clear(): void {
    this.head = 0;
    this.count = 0;
    this.partialLen = 0;
  }

  private slot(i: number): number {
    return (this.head + i) % this.capacity;
  }

  /** Doubles the ring, the frames moved to the front in order (only commit() grows it: no partial frame then). */
  private grow(): void {
    const n = this.frameSamples;
    const capacity = this.capacity * 2;
    const pcm = new Int16Array(n * capacity);
    const segment = new Float64Array(capacity);
    const endMs = new Float64Array(capacity);
    for (let i = 0; i < this.count; i++) {
      const s = this.slot(i);
      pcm.set(this.views[s]!, i * n);
      segment[i] = this.segment[s]!;
      endMs[i] = this.endMs[s]!;
    }
    this.pcm = pcm;
    this.segment = segment;
    this.endMs = endMs;
    this.capacity = capacity;
    this.head = 0;
    this.makeViews();
  }

  private makeViews(): void {
    const n = this.frameSamples;
    this.views = Array.from({ length: this.capacity }, (_, s) => this.pcm.subarray(s * n, (s + 1) * n));
  }
}
