// Helpers shared by the provider adapters: abort errors, mapping HTTP statuses and network failures to
// ProviderErrors, and a fetch that honours both the caller's signal and a deadline. No SDK is imported here.
import { ProviderError, isAbort } from '../errors.js';
import type { ProviderHealth } from './types.js';

/** The error an aborted call rejects with: the signal's own reason when it is an abort, else a DOMException. */
export function abortError(signal?: AbortSignal): Error {
  const reason: unknown = signal?.reason;
  if (isAbort(reason)) return reason as Error;
  return new DOMException('This operation was aborted', 'AbortError');
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortError(signal);
}

/** 408 (timeout), 409 (conflict), 425, 429 (rate limit) and every 5xx are worth retrying; other 4xx are not. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 425 || status === 429 || status >= 500;
}

/** A ProviderError for an HTTP error reply: 429 and 503 mean "unavailable now", other statuses "error". */
export function statusError(provider: string, status: number, detail: string, cause?: unknown): ProviderError {
  const code = status === 429 || status === 503 ? 'provider_unavailable' : 'provider_error';
  const text = detail ? `HTTP ${status}: ${detail.slice(0, 300)}` : `HTTP ${status}`;
  return new ProviderError(provider, code, text, { retryable: retryableStatus(status), cause });
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

function errCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Map anything a provider call threw to what the caller should see: the abort itself when the caller's signal
 * fired (an abort is not an error), a ProviderError unchanged, a timeout/network failure as a retryable
 * ProviderError, anything else as a retryable provider_error (a malformed reply is usually transient).
 */
export function providerError(provider: string, err: unknown, signal?: AbortSignal, timedOut = false): Error {
  if (signal?.aborted) return abortError(signal);
  if (err instanceof ProviderError) return err;
  if (timedOut || (err instanceof Error && err.name === 'TimeoutError')) {
    return new ProviderError(provider, 'provider_timeout', 'timed out', { retryable: true, cause: err });
  }
  if (isAbort(err)) {
    // Aborted without the caller asking: a deadline of ours or the library's.
    return new ProviderError(provider, 'provider_timeout', 'request aborted (timed out)', { retryable: true, cause: err });
  }
  const code = errCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code && NETWORK_CODES.has(code)) {
    const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' ? 'host not found' : `network error (${code})`;
    return new ProviderError(provider, 'provider_unavailable', what, { retryable: true, cause: err });
  }
  if (/fetch failed|terminated|socket hang up|other side closed/i.test(message)) {
    return new ProviderError(provider, 'provider_unavailable', `connection failed: ${message}`, { retryable: true, cause: err });
  }
  return new ProviderError(provider, 'provider_error', message, { retryable: true, cause: err });
}

/**
 * fetch with the caller's signal and a deadline for the response headers (the body is read by the caller, still
 * under the caller's signal). HTTP errors become ProviderErrors with the body's message.
 */
export async function fetchOk(provider: string, url: string, init: RequestInit & { signal?: AbortSignal }, headersTimeoutMs: number): Promise<Response> {
  const headersDeadline = new AbortController();
  const timer = setTimeout(() => headersDeadline.abort(new DOMException('no response headers in time', 'TimeoutError')), headersTimeoutMs);
  const signal = init.signal ? AbortSignal.any([init.signal, headersDeadline.signal]) : headersDeadline.signal;
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal });
  } catch (err) {
    throw providerError(provider, err, init.signal, headersDeadline.signal.aborted);
  } finally {
    clearTimeout(timer);
  }
  if (!res.ok) {
    let detail = '';
    try {
      detail = errorDetail(await res.text());
    } catch {
      if (init.signal?.aborted) throw abortError(init.signal);
    }
    throw statusError(provider, res.status, detail);
  }
  return res;
}

/** The message inside an OpenAI-style (`{error:{message}}`) or Ollama-style (`{error}`) error body, else the text. */
export function errorDetail(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
    if (typeof j.error === 'string') return j.error;
    if (j.error && typeof j.error === 'object' && typeof (j.error as { message?: unknown }).message === 'string') {
      return (j.error as { message: string }).message;
    }
    if (typeof j.message === 'string') return j.message;
    if (typeof j.detail === 'string') return j.detail;
  } catch {
    // not JSON: use the text as it is
  }
  return text.trim().slice(0, 300);
}

/**
 * The API base of an OpenAI-compatible server from what a person may write: `http://host:8000` (→ `/v1`
 * appended), `http://host:8000/v1`, `http://host/openai/v1`, or the full endpoint URL (`.../audio/speech`).
 */
export function baseUrl(raw: string, endpoint?: string): string {
  let u = raw.trim().replace(/\/+$/, '');
  if (endpoint && u.endsWith(endpoint)) u = u.slice(0, -endpoint.length);
  try {
    if (new URL(u).pathname.replace(/\/+$/, '') === '') u += '/v1';
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(raw)}`);
  }
  return u;
}

/** GET `url` within `ms`: any answer but a 401/403 or a 5xx means the server is up (some servers lack the route). */
export async function httpHealth(provider: string, url: string, headers: Record<string, string>, ms: number, signal?: AbortSignal): Promise<ProviderHealth> {
  const deadline = AbortSignal.timeout(ms);
  try {
    const res = await fetch(url, { headers, signal: signal ? AbortSignal.any([signal, deadline]) : deadline });
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) return { ok: false, detail: `HTTP ${res.status}: key refused` };
    if (res.status >= 500) return { ok: false, detail: `HTTP ${res.status}` };
    return { ok: true, detail: url };
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    if (deadline.aborted) return { ok: false, detail: `no answer within ${ms} ms` };
    return { ok: false, detail: providerError(provider, err).message };
  }
}
