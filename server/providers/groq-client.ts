// The one file that imports groq-sdk. The Groq adapters (llm-groq, stt-groq, tts-groq) get their client, their
// error mapping and their health check from here, so the SDK's types and quirks stay in one place.
import Groq, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, toFile } from 'groq-sdk';
import { ProviderError } from '../errors.js';
import type { ProviderHealth } from './types.js';
import { abortError, providerError, statusError } from './http-util.js';

export { Groq, toFile };

export interface GroqClientOptions {
  /** Default: GROQ_API_KEY. */
  apiKey?: string;
  /** Default: GROQ_BASE_URL, else https://api.groq.com (read by groq-sdk itself). */
  baseURL?: string;
  /**
   * Time to the response headers, ms. The SDK's default is a minute; a voice turn cannot wait that long, and the
   * fallback chain has its own tighter first-token deadline. Default 20 s.
   */
  timeoutMs?: number;
}

/**
 * One client per adapter, created once: groq-sdk uses the global fetch, whose connection pool keeps the TLS
 * connection to Groq warm between turns. Retries are off: the fallback chain decides what to do next, at once.
 */
export function createGroqClient(provider: string, opts: GroqClientOptions): Groq {
  const apiKey = opts.apiKey ?? process.env.GROQ_API_KEY;
  if (!apiKey) {
    throw new ProviderError(provider, 'provider_unavailable', 'no API key: set GROQ_API_KEY', { retryable: false, status: 500 });
  }
  return new Groq({ apiKey, baseURL: opts.baseURL ?? undefined, maxRetries: 0, timeout: opts.timeoutMs ?? 20_000 });
}

/** Map a groq-sdk failure: the caller's abort stays an abort; statuses keep their retryability; network is retryable. */
export function groqError(provider: string, err: unknown, signal?: AbortSignal): Error {
  if (signal?.aborted) return abortError(signal);
  if (err instanceof APIUserAbortError) return abortError(signal);
  if (err instanceof APIConnectionTimeoutError) {
    return new ProviderError(provider, 'provider_timeout', 'timed out waiting for a response', { retryable: true, cause: err });
  }
  if (err instanceof APIConnectionError) {
    return providerError(provider, err.cause ?? err, signal);
  }
  if (err instanceof APIError && typeof err.status === 'number') {
    const body = err.error as { message?: unknown; error?: { message?: unknown } } | undefined;
    const detail = typeof body?.message === 'string' ? body.message : typeof body?.error?.message === 'string' ? body.error.message : err.message;
    return statusError(provider, err.status, detail, err);
  }
  return providerError(provider, err, signal);
}

/**
 * Health: GET /models within `timeoutMs`. Not ok when unreachable, when the key is refused, or when the models
 * listed do not include `model`.
 */
export async function groqHealth(provider: string, client: Groq, model: string, timeoutMs: number, signal?: AbortSignal): Promise<ProviderHealth> {
  const deadline = AbortSignal.timeout(timeoutMs);
  try {
    const list = await client.models.list({ signal: signal ? AbortSignal.any([signal, deadline]) : deadline, timeout: timeoutMs, maxRetries: 0 });
    const ids = list.data.map((m) => m.id);
    if (ids.length > 0 && !ids.includes(model)) return { ok: false, detail: `model ${model} is not offered` };
    return { ok: true, detail: model };
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    if (deadline.aborted) return { ok: false, detail: `no answer within ${timeoutMs} ms` };
    return { ok: false, detail: groqError(provider, err).message };
  }
}
