// eSpeak NG TTS: the zero-config default voice. eSpeak NG is GPL-3.0; this is a replaceable adapter, and only
// espeak-worker.ts loads the engine. Synthesis runs in one worker thread (after warm-up a 12-word sentence
// blocks it ~6 ms, first audio after ~1 ms; cold, 50–440 ms): requests queue here and go to the worker one at
// a time, in order; audio streams back as it is made (22050 Hz, ~100 ms per chunk) with word timings.
// An abort stops the running synthesis at its next callback (≈ every 100 ms of audio, < 1 ms of CPU) and
// ends the iterable at once; a queued request is just dropped. The worker is supervised (media/supervisor.ts): a
// synthesis that makes no progress for ESPEAK_JOB_TIMEOUT_MS fails with provider_timeout and the hung worker is
// replaced; a worker that dies fails the synthesis in flight with provider_unavailable and is replaced; queued
// requests go on with the new worker. More than ESPEAK_MAX_QUEUE waiting get `tts_busy`.
import { fileURLToPath } from 'node:url';
import { workerScript } from '../../media/worker-entry.js';
import { Worker } from 'node:worker_threads';
import { WorkerError, WorkerSupervisor } from '../../media/supervisor.js';
import { ProviderError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ProviderHealth, TtsChunk, TtsOptions, TtsProvider, Voice } from './types.js';
import type { FromWorker, ToWorker, WorkerInit } from './espeak-worker.js';

const NAME = 'espeak';
export const ESPEAK_SAMPLE_RATE = 22050;
/** Loading takes ~100 ms and warm-up ~0.5 s; under tap's TS loader the worker first compiles its source (~1 s). */
const READY_TIMEOUT_MS = 30_000;

export interface EspeakConfig {
  /** eSpeak voice: a voice id from voices() ('gmw/en-US') or a language name ('en-us'). Default 'en-us'. */
  voice?: string;
  /** Words per minute (eSpeak: 80–450, default 175). */
  rate?: number;
  /** Base pitch, 0–100 (default 50). */
  pitch?: number;
  log?: Logger;
  /** Requests that may wait for the worker. Default ESPEAK_MAX_QUEUE. */
  maxQueue?: number;
  /** Per-synthesis progress deadline, ms. Default ESPEAK_JOB_TIMEOUT_MS. */
  jobTimeoutMs?: number;
  /** The worker thread's nice value (media/thread-nice.ts; EVA passes EVA_THREAD_NICE); default 0, unchanged. */
  threadNice?: number;
}

export interface EspeakTtsOptions extends TtsOptions {
  rate?: number;
  pitch?: number;
}

function workerEntry(): { url: URL; execArgv?: string[] } {
  const entry = workerScript(import.meta.url, 'espeak-worker');
  if (!entry) throw new ProviderError(NAME, 'provider_unavailable', `worker script not found beside ${fileURLToPath(import.meta.url)}`);
  return entry;
}

/**
 * Longest wait for the next message of a synthesis in flight before the worker counts as hung, ms. A warm
 * sentence gives its first audio after ~1 ms and then one chunk per ~100 ms of speech (< 1 ms of CPU each); a
 * cold one takes 50–440 ms. 2 s is ~4x the slowest seen, and inside the TTS chain's 3 s first-audio deadline.
 */
export const ESPEAK_JOB_TIMEOUT_MS = 2000;
/**
 * Requests that may wait for the worker; one more gets `tts_busy`. A sentence takes ~6 ms warm, so 128 waiting
 * is ~0.8 s of work: a call behind more than that is better told at once (a fallback engine, or an error).
 */
export const ESPEAK_MAX_QUEUE = 128;

/** Test-only faults, honoured by the worker only with EVA_TEST_FAULTS=1 (see espeak-worker.ts). */
export type EspeakFault = Extract<ToWorker, { type: 'debug' }>['fault'];

/** One request's stream: chunks pushed by the worker's messages, pulled by the consumer's async iterator. */
class Job {
  ended = false;
  private readonly items: TtsChunk[] = [];
  private error: unknown = null;
  private wake: (() => void) | null = null;

  push(chunk: TtsChunk): void {
    if (this.ended) return;
    this.items.push(chunk);
    this.notify();
  }
  end(error: unknown = null): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.notify();
  }
  /** The next chunk, or null at the end; throws what the job ended with. */
  async next(): Promise<TtsChunk | null> {
    for (;;) {
      const item = this.items.shift();
      if (item) return item;
      if (this.ended) {
        if (this.error) throw this.error;
        return null;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

export class EspeakTts implements TtsProvider {
  readonly name = NAME;
  readonly sampleRate = ESPEAK_SAMPLE_RATE;
  private readonly voice: string;
  private readonly rate: number;
  private readonly pitch: number;
  private readonly log: Logger | undefined;
  /** Starts, feeds and replaces the worker (media/supervisor.ts): one synthesis at a time, in order. */
  private readonly sup: WorkerSupervisor<FromWorker>;
  /** The serving worker's stop flag (a new one per worker). */
  private abortFlag: Int32Array | null = null;
  private voiceCache: Voice[] | null = null;
  private closing: Promise<void> | null = null;
  /** Load and warm-up times of the last worker start, in ms. */
  lastStart: { loadMs: number; warmupMs: number } | null = null;

  constructor(config: EspeakConfig = {}) {
    this.voice = config.voice ?? 'en-us';
    this.rate = config.rate ?? 175;
    this.pitch = config.pitch ?? 50;
    this.log = config.log;
    this.sup = new WorkerSupervisor<FromWorker>({
      name: NAME,
      spawn: () => {
        const { url, execArgv } = workerEntry();
        const abort = new SharedArrayBuffer(4);
        this.abortFlag = new Int32Array(abort);
        return new Worker(url, { workerData: { abort, nice: config.threadNice ?? 0 } satisfies WorkerInit, ...(execArgv ? { execArgv } : {}) });
      },
      isReady: (m) => {
        if (m.type !== 'ready') return false;
        this.lastStart = { loadMs: Math.round(m.loadMs), warmupMs: Math.round(m.warmupMs) };
        this.log?.info('eSpeak NG worker ready', this.lastStart);
        return true;
      },
      jobId: (m) => ('id' in m ? m.id : undefined),
      onMessage: (m) => {
        if (m.type === 'fatal') this.log?.warn('eSpeak NG worker failed to load', { message: m.message });
      },
      jobTimeoutMs: config.jobTimeoutMs ?? ESPEAK_JOB_TIMEOUT_MS,
      readyTimeoutMs: READY_TIMEOUT_MS,
      maxQueue: config.maxQueue ?? ESPEAK_MAX_QUEUE,
      // Referenced only while a request waits on it: an idle TTS never holds the process open.
      unrefWhenIdle: true,
    });
    this.sup.on('down', ({ cause }) => this.log?.warn('eSpeak NG worker died', { err: cause }));
    this.sup.on('restarted', (e) => this.log?.info('eSpeak NG worker replaced', { restarts: e.restarts, downMs: Math.round(e.downMs) }));
  }

  /** Worker replacements so far. */
  get restarts(): number {
    return this.sup.restarts;
  }

  /** Told each time a replacement worker is ready (after a crash or a hang), for the metrics. Returns an unsubscribe. */
  onRestart(fn: () => void): () => void {
    return this.sup.on('restarted', () => fn());
  }

  /** Start the worker and wait until it has loaded and warmed up (this side too: the first real request took
   *  ~17 ms to first audio with this thread's message path cold, ~2 ms after one request through it). */
  async init(): Promise<void> {
    await this.sup.start().catch((err: unknown) => {
      throw this.mapError(err);
    });
    const signal = new AbortController().signal;
    for await (const chunk of this.synthesize('Ready.', { signal })) void chunk;
  }

  synthesize(text: string, opts: EspeakTtsOptions): AsyncIterable<TtsChunk> {
    return this.run(text, opts);
  }

  private async *run(text: string, opts: EspeakTtsOptions): AsyncGenerator<TtsChunk> {
    if (this.closing) throw new ProviderError(NAME, 'provider_unavailable', 'closed');
    const { signal } = opts;
    if (signal.aborted) return;
    const job = new Job();
    const queued = new AbortController();
    let sentId = 0;
    const stop = (): void => {
      job.end();
      queued.abort();
    };
    signal.addEventListener('abort', stop, { once: true });
    void this.sup
      .submit<void>({
        post: (w, id) => {
          sentId = id;
          const msg: ToWorker = { type: 'synth', id, text, voice: opts.voice ?? this.voice, rate: opts.rate ?? this.rate, pitch: opts.pitch ?? this.pitch };
          w.postMessage(msg);
        },
        onMessage: (m) => {
          if (m.type === 'audio') {
            for (const word of m.words) job.push({ type: 'word', ...word });
            job.push({ type: 'audio', samples: m.samples, sampleRate: this.sampleRate });
            return undefined;
          }
          if (m.type === 'error') throw new ProviderError(NAME, 'provider_error', m.message);
          return m.type === 'done' ? { result: undefined } : undefined;
        },
        signal: queued.signal,
        // Seen by the worker at its next callback; the job stays in flight until the worker says done.
        onAbort: () => {
          if (this.abortFlag) Atomics.store(this.abortFlag, 0, sentId);
        },
      })
      .then(
        () => job.end(),
        (err: unknown) => job.end(queued.signal.aborted ? null : this.mapError(err)),
      );
    try {
      for (let chunk = await job.next(); chunk; chunk = await job.next()) yield chunk;
    } finally {
      signal.removeEventListener('abort', stop);
      stop(); // the consumer stopped early: free the worker for the next request
    }
  }

  async voices(): Promise<Voice[]> {
    if (this.voiceCache) return this.voiceCache;
    if (this.closing) throw new ProviderError(NAME, 'provider_unavailable', 'closed');
    const list = await this.sup
      .submit<Voice[]>({
        post: (w, id) => w.postMessage({ type: 'voices', id } satisfies ToWorker),
        onMessage: (m) => (m.type === 'voices' ? { result: m.voices } : undefined),
      })
      .catch((err: unknown) => {
        throw this.mapError(err);
      });
    this.voiceCache = list;
    return list;
  }

  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    if (this.closing) return { ok: false, detail: 'closed' };
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(signal?.reason ?? new Error('aborted'));
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        this.sup.start().then(resolve, (err: unknown) => reject(this.mapError(err))).finally(() => signal?.removeEventListener('abort', onAbort));
      });
      return { ok: true, detail: `eSpeak NG, ${this.sampleRate} Hz, voice ${this.voice}` };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  /**
   * @internal Fault injection for tests: the next synthesis hangs the worker (60 s) or exits it after
   * `afterChunks` chunks of audio. Honoured only by a worker started with EVA_TEST_FAULTS=1.
   */
  debugFault(fault: EspeakFault, afterChunks = 1): boolean {
    return this.sup.post({ type: 'debug', fault, afterChunks } satisfies ToWorker);
  }

  /** @internal the worker thread now serving, for fault-injection tests. */
  get worker(): Worker | null {
    return this.sup.worker;
  }

  /** Stop the worker; requests in flight or queued end with a ProviderError. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.sup.close();
    return this.closing;
  }

  /** The supervisor's failures as this adapter's ProviderErrors (a synthesis error passes through). */
  private mapError(err: unknown): Error {
    if (err instanceof ProviderError) return err;
    if (!(err instanceof WorkerError)) return new ProviderError(NAME, 'provider_error', (err as Error)?.message ?? String(err), { retryable: true, cause: err });
    switch (err.fault) {
      case 'busy':
        return new ProviderError(NAME, 'tts_busy', `too many requests waiting for eSpeak NG (${err.message.replace(/^\S+ worker: /, '')})`, { retryable: true, status: 503, cause: err });
      case 'timeout':
        return new ProviderError(NAME, 'provider_timeout', 'synthesis hung (no audio in time): worker replaced', { retryable: true, cause: err });
      case 'closed':
        return new ProviderError(NAME, 'provider_unavailable', 'closed', { cause: err });
      case 'crashed':
        return new ProviderError(NAME, 'provider_unavailable', 'eSpeak NG worker died during the request: replaced', { retryable: true, cause: err });
      case 'start_failed':
        // The spawn's own ProviderError (no worker script) says it best.
        if (err.cause instanceof ProviderError) return err.cause;
        return new ProviderError(NAME, 'provider_unavailable', `eSpeak NG worker failed: ${err.message}`, { retryable: true, cause: err });
    }
  }
}

/** Start eSpeak NG in its worker and wait for the warm-up, so the first sentence of the first call is fast. */
export async function createEspeakTts(config: EspeakConfig = {}): Promise<EspeakTts> {
  const tts = new EspeakTts(config);
  await tts.init();
  return tts;
}
