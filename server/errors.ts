// Errors carry a stable code, a retryable flag and a cause; they are mapped to WS/HTTP replies in one place
// (server/app.ts). Codes are part of the public contract: add, never rename.

export type ErrorCode =
  | 'bad_message'
  | 'unknown_type'
  | 'too_large'
  | 'already_in_call'
  | 'no_call'
  | 'bad_sdp'
  | 'no_audio'
  | 'call_failed'
  | 'rate_limited'
  | 'not_found'
  | 'bad_request'
  | 'provider_error'
  | 'provider_timeout'
  | 'provider_unavailable'
  | 'no_stt'
  /** The embedded TTS has too many requests waiting (a bounded queue): try again or use another engine. */
  | 'tts_busy'
  | 'forbidden_origin'
  | 'forbidden_host'
  | 'unauthorized'
  /** The server is draining (SIGTERM, EVA_DRAIN_S): no new calls or sockets here; retry, another node may serve. */
  | 'shutting_down'
  | 'internal';

export class EvaError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly status: number;
  constructor(code: ErrorCode, message: string, opts: { retryable?: boolean; status?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'EvaError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.status = opts.status ?? 400;
  }
}

/**
 * Provider failures: `provider` names the adapter; `retryable` tells the fallback chain whether to try again.
 * HTTP status by default: 504 for provider_timeout (a provider that stalled), 502 for the others.
 */
export class ProviderError extends EvaError {
  readonly provider: string;
  constructor(
    provider: string,
    code: 'provider_error' | 'provider_timeout' | 'provider_unavailable' | 'tts_busy',
    message: string,
    opts: { retryable?: boolean; status?: number; cause?: unknown } = {},
  ) {
    super(code, `${provider}: ${message}`, { status: code === 'provider_timeout' ? 504 : 502, ...opts });
    this.name = 'ProviderError';
    this.provider = provider;
  }
}

export function isAbort(err: unknown): boolean {
  return (
    err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR')
  );
}
