// LLM on a local Ollama server through the `ollama` npm client (NDJSON streaming). The client has no per-call
// AbortSignal option, so each call hands it a fetch bound to that call's signal (connections are pooled by the
// global fetch, so this costs nothing); breaking out of the stream also aborts the request.
import { Ollama, type ChatResponse } from 'ollama';
import { ProviderError } from '../errors.js';
import { abortError, providerError, statusError, throwIfAborted } from './http-util.js';
import type { ChatMessage, LlmOptions, LlmProvider, ProviderHealth } from './types.js';

export interface OllamaLlmOptions {
  /** Default: OLLAMA_HOST, else http://127.0.0.1:11434. */
  host?: string;
  /** Default 'llama3.2' (3B: fast first token on a consumer GPU). */
  model?: string;
  /**
   * How long Ollama keeps the model loaded after each request. Loading a 3B model takes seconds, so a voice
   * server keeps it resident between turns. Default '30m'.
   */
  keepAlive?: string | number;
  temperature?: number;
  /** Upper bound on the reply length (num_predict). Default 400. */
  maxTokens?: number;
  /** health() deadline, ms. Default 2000. */
  healthTimeoutMs?: number;
  /** Adapter name in errors and metrics. Default 'ollama'. */
  name?: string;
}

export const OLLAMA_DEFAULT_HOST = 'http://127.0.0.1:11434';
export const OLLAMA_DEFAULT_MODEL = 'llama3.2';

export class OllamaLlm implements LlmProvider {
  readonly name: string;
  readonly model: string;
  readonly host: string;
  private readonly opts: OllamaLlmOptions;

  constructor(opts: OllamaLlmOptions = {}) {
    this.name = opts.name ?? 'ollama';
    this.model = opts.model ?? OLLAMA_DEFAULT_MODEL;
    this.host = opts.host ?? (process.env.OLLAMA_HOST || OLLAMA_DEFAULT_HOST);
    this.opts = opts;
  }

  /** A client whose every request also ends when `signal` fires. */
  private client(signal: AbortSignal): Ollama {
    const boundFetch: typeof fetch = (input, init) =>
      fetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal });
    return new Ollama({ host: this.host, fetch: boundFetch });
  }

  async *stream(messages: readonly ChatMessage[], { signal }: LlmOptions): AsyncIterable<string> {
    throwIfAborted(signal);
    // Our own controller too: leaving the loop early (the caller's `break`) must close the HTTP request.
    const local = new AbortController();
    const both = AbortSignal.any([signal, local.signal]);
    let complete = false;
    try {
      let it: AsyncIterable<ChatResponse>;
      try {
        it = await this.client(both).chat({
          model: this.model,
          messages: messages.map((m) => ({ role: m.role, content: m.content })),
          stream: true,
          keep_alive: this.opts.keepAlive ?? '30m',
          options: {
            num_predict: this.opts.maxTokens ?? 400,
            ...(this.opts.temperature !== undefined ? { temperature: this.opts.temperature } : {}),
          },
        });
      } catch (err) {
        throw ollamaError(this.name, err, signal);
      }
      try {
        for await (const part of it) {
          const delta = part.message?.content;
          if (delta) yield delta;
          if (part.done) complete = true;
        }
      } catch (err) {
        throw ollamaError(this.name, err, signal);
      }
      if (signal.aborted) throw abortError(signal);
      if (!complete) throw new ProviderError(this.name, 'provider_error', 'stream ended before the reply was complete', { retryable: true });
    } finally {
      if (!complete) local.abort();
    }
  }

  /** Load the model now (an empty generate), so the first turn does not pay for it. */
  async warm(signal?: AbortSignal): Promise<void> {
    const s = signal ?? AbortSignal.timeout(60_000);
    try {
      await this.client(s).generate({ model: this.model, prompt: '', stream: false, keep_alive: this.opts.keepAlive ?? '30m' });
    } catch (err) {
      throw ollamaError(this.name, err, signal);
    }
  }

  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    const ms = this.opts.healthTimeoutMs ?? 2000;
    const deadline = AbortSignal.timeout(ms);
    const client = this.client(signal ? AbortSignal.any([signal, deadline]) : deadline);
    try {
      const { version } = await client.version();
      const { models } = await client.list();
      const want = fullName(this.model);
      if (!models.some((m) => fullName(m.name) === want || fullName(m.model) === want)) {
        return { ok: false, detail: `model ${this.model} is not pulled (ollama pull ${this.model})` };
      }
      return { ok: true, detail: `ollama ${version}, ${this.model}` };
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      if (deadline.aborted) return { ok: false, detail: `no answer from ${this.host} within ${ms} ms` };
      return { ok: false, detail: ollamaError(this.name, err).message };
    }
  }
}

/** "llama3.2" and "llama3.2:latest" name the same model. */
function fullName(model: string): string {
  return model.includes(':') ? model : `${model}:latest`;
}

/** The client throws a ResponseError (with status_code) for HTTP errors, plain Errors for in-stream ones. */
function ollamaError(provider: string, err: unknown, signal?: AbortSignal): Error {
  if (signal?.aborted) return abortError(signal);
  const e = err as { name?: unknown; status_code?: unknown; error?: unknown; message?: unknown };
  if (e && e.name === 'ResponseError' && typeof e.status_code === 'number') {
    const detail = typeof e.error === 'string' ? e.error : String(e.message ?? '');
    return statusError(provider, e.status_code, detail, err);
  }
  return providerError(provider, err, signal);
}
