// eSpeak NG TTS: the zero-config default voice. eSpeak NG is GPL-3.0; this is a replaceable adapter, and only
// espeak-worker.ts loads the engine. Synthesis runs in one worker thread (after warm-up a 12-word sentence
// blocks it ~6 ms, first audio after ~1 ms; cold, 50–440 ms): requests queue here and go to the worker one at
// a time, in order; audio streams back as it is made (22050 Hz, ~100 ms per chunk) with word timings.
// An abort stops the running synthesis at its next callback (≈ every 100 ms of audio, < 1 ms of CPU) and
// ends the iterable at once; a queued request is just dropped. If the worker dies, the synthesis in flight
// throws a ProviderError and the next request starts a new worker.
import { fileURLToPath } from 'node:url';
import { workerScript } from '../../media/worker-entry.js';
import { Worker } from 'node:worker_threads';
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

/** One request's stream: chunks pushed by the worker's messages, pulled by the consumer's async iterator. */
class Job {
  state: 'queued' | 'running' | 'ended' = 'queued';
  private readonly items: TtsChunk[] = [];
  private error: unknown = null;
  private wake: (() => void) | null = null;
  constructor(readonly msg: Extract<ToWorker, { type: 'synth' }>) {}

  push(chunk: TtsChunk): void {
    if (this.state === 'ended') return;
    this.items.push(chunk);
    this.notify();
  }
  end(error: unknown = null): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.error = error;
    this.notify();
  }
  /** The next chunk, or null at the end; throws what the job ended with. */
  async next(): Promise<TtsChunk | null> {
    for (;;) {
      const item = this.items.shift();
      if (item) return item;
      if (this.state === 'ended') {
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

interface Running {
  worker: Worker;
  abortFlag: Int32Array;
  ready: boolean;
  readyWaiters: { resolve: () => void; reject: (err: unknown) => void }[];
  /** Why it died, once it has. */
  dead: Error | null;
  voiceWaiters: Map<number, { resolve: (v: Voice[]) => void; reject: (err: unknown) => void }>;
}

export class EspeakTts implements TtsProvider {
  readonly name = NAME;
  readonly sampleRate = ESPEAK_SAMPLE_RATE;
  private readonly voice: string;
  private readonly rate: number;
  private readonly pitch: number;
  private readonly log: Logger | undefined;
  private w: Running | null = null;
  private readonly queue: Job[] = [];
  /** The job the worker is working on (may already be ended for its consumer, after an abort). */
  private busy: Job | null = null;
  private nextId = 1;
  private voiceCache: Voice[] | null = null;
  private closing: Promise<void> | null = null;
  /** Load and warm-up times of the last worker start, in ms. */
  lastStart: { loadMs: number; warmupMs: number } | null = null;

  constructor(config: EspeakConfig = {}) {
    this.voice = config.voice ?? 'en-us';
    this.rate = config.rate ?? 175;
    this.pitch = config.pitch ?? 50;
    this.log = config.log;
  }

  /** Start the worker and wait until it has loaded and warmed up (this side too: the first real request took
   *  ~17 ms to first audio with this thread's message path cold, ~2 ms after one request through it). */
  async init(): Promise<void> {
    await this.whenReady(this.ensureWorker());
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
    const job = new Job({
      type: 'synth',
      id: this.nextId++,
      text,
      voice: opts.voice ?? this.voice,
      rate: opts.rate ?? this.rate,
      pitch: opts.pitch ?? this.pitch,
    });
    const stop = (): void => this.cancel(job);
    signal.addEventListener('abort', stop, { once: true });
    this.queue.push(job);
    this.pump();
    try {
      for (let chunk = await job.next(); chunk; chunk = await job.next()) yield chunk;
    } finally {
      signal.removeEventListener('abort', stop);
      this.cancel(job); // the consumer stopped early: free the worker for the next request
    }
  }

  async voices(): Promise<Voice[]> {
    if (this.voiceCache) return this.voiceCache;
    if (this.closing) throw new ProviderError(NAME, 'provider_unavailable', 'closed');
    const w = this.ensureWorker();
    const id = this.nextId++;
    const list = await new Promise<Voice[]>((resolve, reject) => {
      w.voiceWaiters.set(id, { resolve, reject });
      w.worker.ref();
      w.worker.postMessage({ type: 'voices', id } satisfies ToWorker);
    });
    this.voiceCache = list;
    return list;
  }

  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    if (this.closing) return { ok: false, detail: 'closed' };
    try {
      await this.whenReady(this.ensureWorker(), signal);
      return { ok: true, detail: `eSpeak NG, ${this.sampleRate} Hz, voice ${this.voice}` };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  /** Stop the worker; requests in flight or queued end with a ProviderError. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new ProviderError(NAME, 'provider_unavailable', 'closed');
      for (const job of this.queue.splice(0)) job.end(closed);
      this.busy?.end(closed);
      this.busy = null;
      const w = this.w;
      this.w = null;
      if (w) {
        this.fail(w, closed);
        await w.worker.terminate();
      }
    })();
    return this.closing;
  }

  private cancel(job: Job): void {
    if (job.state === 'queued') {
      const i = this.queue.indexOf(job);
      if (i >= 0) this.queue.splice(i, 1);
    } else if (job === this.busy && this.w) {
      // Seen by the worker at its next callback; the job stays busy until the worker says done.
      Atomics.store(this.w.abortFlag, 0, job.msg.id);
    }
    job.end();
  }

  /** Send the next queued request when the worker is free. */
  private pump(): void {
    if (this.busy || this.closing) return;
    const job = this.queue.shift();
    if (!job) return;
    let w: Running;
    try {
      w = this.ensureWorker();
    } catch (err) {
      job.end(err);
      this.pump();
      return;
    }
    job.state = 'running';
    this.busy = job;
    w.worker.ref();
    w.worker.postMessage(job.msg satisfies ToWorker);
  }

  private ensureWorker(): Running {
    if (this.w && !this.w.dead) return this.w;
    const { url, execArgv } = workerEntry();
    const abort = new SharedArrayBuffer(4);
    let worker: Worker;
    try {
      worker = new Worker(url, { workerData: { abort } satisfies WorkerInit, ...(execArgv ? { execArgv } : {}) });
    } catch (err) {
      throw this.unavailable(err as Error);
    }
    const w: Running = { worker, abortFlag: new Int32Array(abort), ready: false, readyWaiters: [], dead: null, voiceWaiters: new Map() };
    this.w = w;
    worker.on('message', (msg: FromWorker) => this.onMessage(w, msg));
    worker.on('error', (err) => {
      w.dead ??= err;
    });
    worker.on('exit', (code) => this.onExit(w, code));
    worker.unref(); // referenced only while a request waits on it: an idle TTS never holds the process open
    return w;
  }

  private whenReady(w: Running, signal?: AbortSignal): Promise<void> {
    if (w.ready) return Promise.resolve();
    if (w.dead) return Promise.reject(this.unavailable(w.dead));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new ProviderError(NAME, 'provider_timeout', `worker not ready after ${READY_TIMEOUT_MS} ms`, { retryable: true })), READY_TIMEOUT_MS);
      const onAbort = (): void => done(signal?.reason ?? new Error('aborted'));
      const waiter = { resolve: () => done(null), reject: (err: unknown) => done(err) };
      const done = (err: unknown): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = w.readyWaiters.indexOf(waiter);
        if (i >= 0) w.readyWaiters.splice(i, 1);
        this.settle(w);
        if (err) reject(err);
        else resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      w.readyWaiters.push(waiter);
      w.worker.ref();
    });
  }

  private onMessage(w: Running, msg: FromWorker): void {
    switch (msg.type) {
      case 'ready':
        w.ready = true;
        this.lastStart = { loadMs: Math.round(msg.loadMs), warmupMs: Math.round(msg.warmupMs) };
        this.log?.info('eSpeak NG worker ready', this.lastStart);
        for (const r of w.readyWaiters.slice()) r.resolve();
        return;
      case 'audio': {
        const job = this.busy;
        if (!job || job.msg.id !== msg.id) return;
        for (const word of msg.words) job.push({ type: 'word', ...word });
        job.push({ type: 'audio', samples: msg.samples, sampleRate: this.sampleRate });
        return;
      }
      case 'done':
      case 'error': {
        const job = this.busy;
        if (!job || job.msg.id !== msg.id) return;
        this.busy = null;
        job.end(msg.type === 'error' ? new ProviderError(NAME, 'provider_error', msg.message) : null);
        this.pump();
        this.settle(w);
        return;
      }
      case 'voices': {
        const waiter = w.voiceWaiters.get(msg.id);
        w.voiceWaiters.delete(msg.id);
        waiter?.resolve(msg.voices);
        this.settle(w);
        return;
      }
      case 'fatal':
        w.dead ??= new Error(msg.message);
        return;
    }
  }

  private onExit(w: Running, code: number): void {
    const cause = w.dead ?? new Error(`worker exited with code ${code}`);
    w.dead = cause;
    if (this.w !== w) return; // closed or already replaced
    this.w = null;
    const err = this.unavailable(cause);
    this.log?.warn('eSpeak NG worker died', { err });
    this.busy?.end(err);
    this.busy = null;
    // A worker that never got ready will not do better on a retry now: fail what waits; the next call retries.
    if (!w.ready) for (const job of this.queue.splice(0)) job.end(err);
    this.fail(w, err);
    this.pump();
  }

  /** Let the process exit while nothing waits on the worker. */
  private settle(w: Running): void {
    if (!this.busy && w.voiceWaiters.size === 0 && w.readyWaiters.length === 0) w.worker.unref();
  }

  private fail(w: Running, err: unknown): void {
    for (const r of w.readyWaiters.slice()) r.reject(err);
    for (const v of w.voiceWaiters.values()) v.reject(err);
    w.voiceWaiters.clear();
  }

  private unavailable(cause: Error): ProviderError {
    if (cause instanceof ProviderError) return cause;
    return new ProviderError(NAME, 'provider_unavailable', `eSpeak NG worker failed: ${cause.message}`, { retryable: true, cause });
  }
}

/** Start eSpeak NG in its worker and wait for the warm-up, so the first sentence of the first call is fast. */
export async function createEspeakTts(config: EspeakConfig = {}): Promise<EspeakTts> {
  const tts = new EspeakTts(config);
  await tts.init();
  return tts;
}
