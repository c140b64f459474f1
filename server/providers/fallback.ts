// Fallback chains over providers of one stage. The LLM chain gives each provider a deadline for its FIRST token
// and moves on when it misses it or fails; once a token has been yielded the answer is committed to that provider
// (switching mid-sentence would speak two half answers), and a stream that then stalls for `idleMs` ends with
// provider_timeout. A circuit breaker per provider skips one that keeps failing, so a dead Groq costs one
// deadline per cool-down, not one per turn.
import { ProviderError } from '../errors.js';
import { abortError, throwIfAborted } from './http-util.js';
import type { ChatMessage, LlmOptions, LlmProvider, ProviderHealth, SttOptions, SttProvider, SttResult, TtsChunk, TtsOptions, TtsProvider, Voice } from './types.js';

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. Default 3. */
  threshold?: number;
  /** How long an open circuit skips the provider, ms. Default 30 000. */
  cooldownMs?: number;
  /** Clock in ms; injectable so tests need no sleeping. Default performance.now. */
  now?: () => number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * closed → (threshold consecutive failures) → open → (cool-down over) → half-open: one trial request at a time;
 * its success closes the circuit, its failure opens it for another cool-down.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private opened = false;
  private trialInFlight = false;
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;

  constructor(opts: BreakerOptions = {}) {
    this.threshold = opts.threshold ?? 3;
    this.cooldownMs = opts.cooldownMs ?? 30_000;
    this.now = opts.now ?? (() => performance.now());
  }

  get state(): BreakerState {
    if (!this.opened) return 'closed';
    return this.now() - this.openedAt >= this.cooldownMs ? 'half-open' : 'open';
  }

  /** May a request go to this provider now? In half-open, only the first caller gets the trial. */
  tryAcquire(): boolean {
    const s = this.state;
    if (s === 'closed') return true;
    if (s === 'open' || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.opened = false;
    this.trialInFlight = false;
  }

  failure(): void {
    this.failures++;
    if (this.trialInFlight || this.failures >= this.threshold) {
      this.opened = true;
      this.openedAt = this.now();
    }
    this.trialInFlight = false;
  }

  /** The request ended without a verdict (the caller aborted): free the trial slot, count nothing. */
  release(): void {
    this.trialInFlight = false;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }
}

/**
 * Default longest gap between two items of a stream once it has started (LLM tokens, TTS audio), ms. A stalled
 * stream is a connection the provider keeps open but stops writing to: nothing else ends it. Groq streams ~500
 * tokens/s and a slow local model ~20 (50 ms apart); network TTS sends ~100 ms of audio per chunk in real time.
 * 5 s is 100x the slowest healthy gap, and still ends a stalled turn before the person gives up on it.
 * EVA_STREAM_IDLE_MS overrides it.
 */
export const STREAM_IDLE_MS = 5000;

export interface FallbackOptions extends BreakerOptions {
  /** Called when a request moves on from `from` to `to` because of `error` (a failure, a timeout, an open circuit). */
  onFallback?: (from: string, to: string, error: Error) => void;
  /** Chain name in errors. Default: the providers' names joined by ','. */
  name?: string;
  /**
   * Streams (LLM, TTS): the longest wait for the next item after the first, ms (the time the consumer takes
   * between items does not count). A stall ends the stream with provider_timeout. Default STREAM_IDLE_MS.
   */
  idleMs?: number;
}

export interface FallbackLlmOptions extends FallbackOptions {
  /**
   * Per-attempt deadline for the first token, ms. Default 2000: Groq's p99 TTFT is well under a second and a
   * loaded local model answers in ~100 ms, so 2 s means the provider is in trouble, and waiting longer costs
   * more than starting over elsewhere.
   */
  firstTokenMs?: number;
}

/** Reason text for the final error: ProviderError messages already start with the provider's name. */
function reason(name: string, err: Error): string {
  return err instanceof ProviderError ? err.message : `${name}: ${err.message}`;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * An open circuit is skipped, except on the last provider when no other was tried: failing without even asking
 * would turn a provider that may have recovered into certain silence (a chain of one, or every circuit open).
 */
function mayTry(b: CircuitBreaker, isLast: boolean, tried: number): boolean {
  return b.tryAcquire() || (isLast && tried === 0);
}

function circuitOpen(name: string, b: CircuitBreaker): ProviderError {
  return new ProviderError(name, 'provider_unavailable', `skipped: circuit open after ${b.consecutiveFailures} consecutive failures`, { retryable: true });
}

/**
 * The chain's final error. Its code is the providers' own when they all failed the same way with a code the
 * caller acts on (every one timed out: provider_timeout, HTTP 504; every one busy: tts_busy), else
 * provider_unavailable.
 */
function allFailed(chain: string, stage: string, reasons: string[], errors: Error[]): ProviderError {
  const codes = new Set(errors.map((e) => (e instanceof ProviderError ? e.code : 'provider_error')));
  const only = codes.size === 1 ? [...codes][0] : undefined;
  const code = only === 'provider_timeout' || only === 'tts_busy' ? only : 'provider_unavailable';
  return new ProviderError(chain, code, `every ${stage} provider failed: ${reasons.join('; ')}`, {
    retryable: errors.some((e) => !(e instanceof ProviderError) || e.retryable),
    cause: errors[errors.length - 1],
  });
}

/** A chain is healthy when any of its providers is; the detail lists each. */
async function chainHealth(providers: readonly { name: string; health(signal?: AbortSignal): Promise<ProviderHealth> }[], signal?: AbortSignal): Promise<ProviderHealth> {
  const results = await Promise.all(providers.map((p) => p.health(signal).catch((err: unknown) => ({ ok: false, detail: asError(err).message }))));
  if (signal?.aborted) throw abortError(signal);
  return {
    ok: results.some((r) => r.ok),
    detail: results.map((r, i) => `${providers[i]!.name}: ${r.ok ? 'ok' : (r.detail ?? 'down')}`).join('; '),
  };
}

/** What a streaming chain needs to walk its providers. */
interface StreamChain<P extends { name: string }> {
  readonly name: string;
  readonly providers: readonly P[];
  readonly breakers: CircuitBreaker[];
  readonly opts: FallbackOptions;
  lastProvider?: string;
}

/**
 * The streaming chains' walk (LLM tokens, TTS audio): each provider in order, skipping open circuits, gets
 * `deadlineMs` to produce its first item; the first one that does keeps the request to the end (a stream is not
 * switched mid-way), and from then on each next item must come within `opts.idleMs`, or the stream ends with
 * provider_timeout. `open(p, i, signal)` starts provider i's stream.
 */
async function* streamFirstThatAnswers<P extends { name: string }, T>(
  chain: StreamChain<P>,
  stage: string,
  deadlineMs: number,
  nothingWithin: string,
  signal: AbortSignal,
  open: (p: P, i: number, signal: AbortSignal) => AsyncIterator<T>,
  onProvider?: (name: string) => void,
): AsyncGenerator<T> {
  throwIfAborted(signal);
  const reasons: string[] = [];
  const errors: Error[] = [];
  let pending: { from: string; error: Error } | null = null;
  let tried = 0;

  for (let i = 0; i < chain.providers.length; i++) {
    const p = chain.providers[i]!;
    const b = chain.breakers[i]!;
    if (!mayTry(b, i === chain.providers.length - 1, tried)) {
      const err = circuitOpen(p.name, b);
      reasons.push(reason(p.name, err));
      errors.push(err);
      pending ??= { from: p.name, error: err };
      continue;
    }
    if (pending) chain.opts.onFallback?.(pending.from, p.name, pending.error);
    pending = null;
    tried++;

    const attempt = new AbortController();
    let it: AsyncIterator<T> | undefined;
    let first: IteratorResult<T>;
    let timer: NodeJS.Timeout | undefined;
    try {
      // The first item or the deadline, whichever comes first. If the deadline wins, the attempt is aborted
      // below and its late rejection lands on this already-settled promise, where it is moot.
      first = await new Promise<IteratorResult<T>>((resolve, reject) => {
        timer = setTimeout(() => {
          reject(new ProviderError(p.name, 'provider_timeout', `${nothingWithin} within ${deadlineMs} ms`, { retryable: true }));
        }, deadlineMs);
        it = open(p, i, AbortSignal.any([signal, attempt.signal]));
        it.next().then(resolve, reject);
      });
    } catch (e) {
      const err = asError(e);
      attempt.abort(err);
      if (signal.aborted) {
        b.release();
        throw abortError(signal);
      }
      b.failure();
      reasons.push(reason(p.name, err));
      errors.push(err);
      pending = { from: p.name, error: err };
      continue;
    } finally {
      clearTimeout(timer);
    }

    // Committed to this provider from here on.
    b.success();
    chain.lastProvider = p.name;
    onProvider?.(p.name);
    let complete = false;
    const idleMs = chain.opts.idleMs ?? STREAM_IDLE_MS;
    const idle = idleWatch(idleMs, () => new ProviderError(p.name, 'provider_timeout', `stream stalled: nothing more for ${idleMs} ms`, { retryable: true }));
    try {
      if (first.done) {
        complete = true;
        return;
      }
      yield first.value;
      for (;;) {
        const r = await idle.next(it!);
        if (r.done) break;
        yield r.value;
      }
      complete = true;
    } catch (e) {
      if (signal.aborted) throw abortError(signal);
      b.failure();
      throw e;
    } finally {
      idle.stop();
      if (!complete) {
        attempt.abort();
        // A stalled iterator may never settle its pending next(): do not wait on it after an idle timeout.
        if (!idle.fired) await it?.return?.();
        else void it?.return?.()?.catch(() => undefined);
      }
    }
    return;
  }
  throw allFailed(chain.name, stage, reasons, errors);
}

/**
 * The idle deadline of one stream: each `next(it)` gets `ms` to settle, or rejects with `stalled()`. One timer
 * per stream, re-armed per item (timer.refresh), so a token-rate stream costs no timer churn.
 */
function idleWatch(ms: number, stalled: () => Error): { next<T>(it: AsyncIterator<T>): Promise<IteratorResult<T>>; stop(): void; readonly fired: boolean } {
  let reject: ((e: Error) => void) | null = null;
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
    reject?.(stalled());
  }, ms);
  return {
    next<T>(it: AsyncIterator<T>): Promise<IteratorResult<T>> {
      return new Promise<IteratorResult<T>>((resolve, rej) => {
        reject = rej;
        timer.refresh();
        it.next().then(
          (r) => {
            reject = null;
            resolve(r);
          },
          (e: unknown) => {
            reject = null;
            rej(e);
          },
        );
      });
    },
    stop() {
      clearTimeout(timer);
      reject = null;
    },
    get fired() {
      return fired;
    },
  };
}

export class FallbackLlm implements LlmProvider {
  readonly name: string;
  /** The provider that answered the last request (set when its first token arrived). */
  lastProvider?: string;
  readonly providers: readonly LlmProvider[];
  readonly breakers: CircuitBreaker[];
  readonly opts: FallbackLlmOptions;

  constructor(providers: readonly LlmProvider[], opts: FallbackLlmOptions = {}) {
    if (providers.length === 0) throw new Error('FallbackLlm needs at least one provider');
    this.providers = providers;
    this.opts = opts;
    this.name = opts.name ?? providers.map((p) => p.name).join(',');
    this.breakers = providers.map(() => new CircuitBreaker(opts));
  }

  breaker(name: string): CircuitBreaker | undefined {
    const i = this.providers.findIndex((p) => p.name === name);
    return i < 0 ? undefined : this.breakers[i];
  }

  stream(messages: readonly ChatMessage[], { signal, onProvider }: LlmOptions): AsyncIterable<string> {
    return streamFirstThatAnswers(
      this,
      'LLM',
      this.opts.firstTokenMs ?? 2000,
      'no first token',
      signal,
      (p, _i, s) => p.stream(messages, { signal: s })[Symbol.asyncIterator](),
      onProvider,
    );
  }

  /** Healthy when any provider is; the detail lists each. */
  health(signal?: AbortSignal): Promise<ProviderHealth> {
    return chainHealth(this.providers, signal);
  }
}

export interface FallbackSttOptions extends FallbackOptions {
  /**
   * Per-attempt deadline, ms. Default 8000: a few seconds of speech transcribes in well under a second on Groq
   * and in 1-3 s on a local CPU whisper; beyond that the next provider is the better bet.
   */
  attemptMs?: number;
}

/** STT chain: try each provider in order (skipping open circuits), each under its own deadline. */
export class FallbackStt implements SttProvider {
  readonly name: string;
  lastProvider?: string;
  private readonly providers: readonly SttProvider[];
  private readonly breakers: CircuitBreaker[];
  private readonly opts: FallbackSttOptions;

  constructor(providers: readonly SttProvider[], opts: FallbackSttOptions = {}) {
    if (providers.length === 0) throw new Error('FallbackStt needs at least one provider');
    this.providers = providers;
    this.opts = opts;
    this.name = opts.name ?? providers.map((p) => p.name).join(',');
    this.breakers = providers.map(() => new CircuitBreaker(opts));
  }

  async transcribe(pcm16k: Int16Array, opts: SttOptions): Promise<SttResult> {
    const { signal } = opts;
    throwIfAborted(signal);
    const ms = this.opts.attemptMs ?? 8000;
    const reasons: string[] = [];
    const errors: Error[] = [];
    let pending: { from: string; error: Error } | null = null;
    let tried = 0;
    for (let i = 0; i < this.providers.length; i++) {
      const p = this.providers[i]!;
      const b = this.breakers[i]!;
      if (!mayTry(b, i === this.providers.length - 1, tried)) {
        const err = circuitOpen(p.name, b);
        reasons.push(reason(p.name, err));
        errors.push(err);
        pending ??= { from: p.name, error: err };
        continue;
      }
      if (pending) this.opts.onFallback?.(pending.from, p.name, pending.error);
      pending = null;
      tried++;
      const deadline = AbortSignal.timeout(ms);
      try {
        const r = await p.transcribe(pcm16k, { ...opts, signal: AbortSignal.any([signal, deadline]) });
        b.success();
        this.lastProvider = p.name;
        return r;
      } catch (e) {
        if (signal.aborted) {
          b.release();
          throw abortError(signal);
        }
        const err = deadline.aborted ? new ProviderError(p.name, 'provider_timeout', `no transcript within ${ms} ms`, { retryable: true, cause: e }) : asError(e);
        b.failure();
        reasons.push(reason(p.name, err));
        errors.push(err);
        pending = { from: p.name, error: err };
      }
    }
    throw allFailed(this.name, 'STT', reasons, errors);
  }

  health(signal?: AbortSignal): Promise<ProviderHealth> {
    return chainHealth(this.providers, signal);
  }
}

export interface FallbackTtsOptions extends FallbackOptions {
  /** Per-attempt deadline for the first audio of a piece of text, ms. Default 3000. */
  firstAudioMs?: number;
}

/**
 * TTS chain: each piece of text goes to the first provider whose circuit is closed; a provider that fails or
 * stays silent past the deadline before its first audio hands the piece to the next. Once audio has flowed,
 * the piece stays with that provider (switching voices mid-sentence would be worse than an error).
 */
export class FallbackTts implements TtsProvider {
  readonly name: string;
  lastProvider?: string;
  readonly providers: readonly TtsProvider[];
  readonly breakers: CircuitBreaker[];
  readonly opts: FallbackTtsOptions;

  constructor(providers: readonly TtsProvider[], opts: FallbackTtsOptions = {}) {
    if (providers.length === 0) throw new Error('FallbackTts needs at least one provider');
    this.providers = providers;
    this.opts = opts;
    this.name = opts.name ?? providers.map((p) => p.name).join(',');
    this.breakers = providers.map(() => new CircuitBreaker(opts));
  }

  synthesize(text: string, opts: TtsOptions): AsyncIterable<TtsChunk> {
    return streamFirstThatAnswers(this, 'TTS', this.opts.firstAudioMs ?? 3000, 'no audio', opts.signal, (p, i, signal) =>
      // A voice named for one engine means nothing to the next: only the first provider gets it.
      p.synthesize(text, { ...opts, voice: i === 0 ? opts.voice : undefined, signal })[Symbol.asyncIterator](),
    );
  }

  /** The first provider's voices: `voice` is only passed to it. */
  voices(): Promise<Voice[]> {
    return this.providers[0]!.voices();
  }

  health(signal?: AbortSignal): Promise<ProviderHealth> {
    return chainHealth(this.providers, signal);
  }

  async close(): Promise<void> {
    await Promise.all(this.providers.map((p) => p.close?.()));
  }
}
