// A bounded async queue between two pipeline stages that run at different speeds (LLM text arrives faster
// than TTS turns it into audio). Producers await room (backpressure); the consumer iterates. close() ends the
// iteration after what is queued; fail(err) ends it with that error at once.

export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private closed = false;
  private error: unknown = undefined;
  private readers: (() => void)[] = [];
  private writers: (() => void)[] = [];

  constructor(readonly capacity = 64) {}

  get size(): number {
    return this.items.length;
  }

  async push(item: T): Promise<void> {
    while (this.items.length >= this.capacity && !this.closed) await new Promise<void>((r) => this.writers.push(r));
    if (this.closed) return;
    this.items.push(item);
    this.wake(this.readers);
  }

  close(): void {
    this.closed = true;
    this.wake(this.readers);
    this.wake(this.writers);
  }

  fail(err: unknown): void {
    this.error = err ?? new Error('queue failed');
    this.items = [];
    this.close();
  }

  private wake(list: (() => void)[]): void {
    for (const w of list.splice(0)) w();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.error !== undefined) throw this.error;
      const item = this.items.shift();
      if (item !== undefined) {
        this.wake(this.writers);
        yield item;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((r) => this.readers.push(r));
    }
  }
}
