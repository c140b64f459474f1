// Replies, in one place: JSON bodies, errors (`publicError` is the only way an error reaches a client, over HTTP
// or either socket), access refusals, and the bounded JSON body reader. Type-only uWS imports: app.ts owns the
// runtime import.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { EvaError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { errorBody } from '../textapi.js';
import type { Refused, RequestInfo } from './access.js';

/** Request bodies above this are refused with 413 before they are read further. */
export const MAX_BODY = 64 * 1024;

/**
 * Provider errors quote what the upstream said (bodies, socket errors, sometimes a key): the client gets the
 * provider's name and a fixed sentence per code; the detail stays in the log (redacted there, see log.ts).
 */
const UPSTREAM_MESSAGES: Partial<Record<string, string>> = {
  provider_error: 'the provider failed; try again',
  provider_timeout: 'the provider did not answer in time; try again',
  provider_unavailable: 'unavailable (every provider tried failed); try again later',
};

/** A client-safe message for an error code: EVA's own words pass, an upstream's are replaced. */
export function publicMessage(code: string, message: string): string {
  const fixed = UPSTREAM_MESSAGES[code];
  if (fixed === undefined) return message;
  const names = /^([a-z0-9_.,>-]{1,60}): /i.exec(message)?.[1] ?? /\(([a-z0-9_.,-]{1,60})\)/i.exec(message)?.[1];
  return names ? `${names}: ${fixed}` : fixed;
}

export interface PublicError {
  status: number;
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
}

/** The one mapping of an error to what a client sees; anything not an EvaError is a logged 500 `internal`. */
export function publicError(err: unknown, log: Logger): PublicError {
  const { status, body } = errorBody(err, log);
  const { code, message } = body.error;
  if (UPSTREAM_MESSAGES[code] !== undefined) log.debug('upstream failure', { code, message, cause: (err as { cause?: unknown }).cause });
  const retryAfterMs = (err as { retryAfterMs?: unknown }).retryAfterMs;
  return { status, code, message: publicMessage(code, message), ...(typeof retryAfterMs === 'number' && { retryAfterMs }) };
}

/** An error as a WS `{type:"error"}` frame. */
export function wsError(err: unknown, log: Logger): { type: 'error'; code: ErrorCode; message: string } {
  const e = publicError(err, log);
  return { type: 'error', code: e.code, message: e.message };
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function status(code: number): string {
  return `${code} ${STATUS_TEXT[code] ?? 'OK'}`;
}

export function sendJson(res: HttpResponse, code: number, body: unknown, headers?: Record<string, string>): void {
  res.cork(() => {
    res.writeStatus(status(code)).writeHeader('Content-Type', 'application/json');
    for (const [k, v] of Object.entries(headers ?? {})) res.writeHeader(k, v);
    res.end(JSON.stringify(body));
  });
}

export function sendError(res: HttpResponse, err: unknown, log: Logger, headers?: Record<string, string>): void {
  const e = publicError(err, log);
  const retry: Record<string, string> = e.retryAfterMs === undefined ? {} : { 'Retry-After': String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))) };
  sendJson(res, e.status, { error: { code: e.code, message: e.message } }, { ...headers, ...retry });
}

/** An access refusal: 401/403 JSON; the page's 401 also asks the browser for the key (HTTP Basic). */
export function sendRefusal(res: HttpResponse, r: Refused): void {
  const headers: Record<string, string> = r.challenge ? { 'WWW-Authenticate': 'Basic realm="EVA (user name: anything, password: the API key)", charset="UTF-8"' } : {};
  sendJson(res, r.status, { error: { code: r.code, message: r.message } }, headers);
}

/** The headers the access layer reads. Must be called synchronously in the handler (uWS invalidates `req` after). */
export function requestInfo(res: HttpResponse, req: HttpRequest): RequestInfo {
  return {
    method: req.getMethod().toUpperCase(),
    path: req.getUrl(),
    host: req.getHeader('host'),
    origin: req.getHeader('origin'),
    authorization: req.getHeader('authorization'),
    cookie: req.getHeader('cookie'),
    protocol: req.getHeader('sec-websocket-protocol'),
    peer: Buffer.from(res.getRemoteAddressAsText()).toString(),
    forwardedFor: req.getHeader('x-forwarded-for'),
    forwardedProto: req.getHeader('x-forwarded-proto'),
  };
}

/** uWS requires an abort handler before any asynchronous reply; `value` turns true when the client is gone. */
export function onAbort(res: HttpResponse, ctrl: AbortController): { value: boolean } {
  const flag = { value: false };
  res.onAborted(() => {
    flag.value = true;
    ctrl.abort();
  });
  return flag;
}

/** Reads and drops a body nobody will use (uWS needs a data handler before the reply on a request with one). */
export function drainBody(res: HttpResponse): void {
  res.onData(() => undefined);
}

/** Read a bounded raw body (an SDP offer, a multipart form). Must be called synchronously in the handler. */
export function readBody(res: HttpResponse, req: HttpRequest, aborted: { value: boolean }, max: number): Promise<Buffer> {
  const declared = Number(req.getHeader('content-length') || 0);
  return new Promise((resolve, reject) => {
    const tooLarge = () => new EvaError('too_large', `request body larger than ${max} bytes`, { status: 413 });
    if (declared > max) {
      drainBody(res);
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk, isLast) => {
      if (failed || aborted.value) return;
      size += chunk.byteLength;
      if (size > max) {
        failed = true;
        reject(tooLarge());
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory after this callback
      if (isLast) resolve(Buffer.concat(chunks));
    });
  });
}

/** Read a bounded JSON body. Must be called synchronously in the handler (uWS invalidates `req` after). */
export function readJson(res: HttpResponse, req: HttpRequest, aborted: { value: boolean }): Promise<unknown> {
  const type = req.getHeader('content-type');
  const declared = Number(req.getHeader('content-length') || 0);
  // Seed clients post JSON as text/plain (fetch's default for a string) or form-encoded (curl -d): the body
  // decides. Only types that cannot be one JSON document are refused (a body declared too large is a 413 first).
  if (!(declared > MAX_BODY) && type && /multipart\/|octet-stream|^audio\/|^image\//i.test(type)) {
    drainBody(res);
    return Promise.reject(new EvaError('bad_request', `Content-Type ${type.slice(0, 60)} is not accepted; send a JSON body (application/json)`, { status: 415 }));
  }
  return readBody(res, req, aborted, MAX_BODY).then((body) => {
    try {
      return JSON.parse(body.toString('utf8')) as unknown;
    } catch {
      throw new EvaError('bad_request', 'request body is not valid JSON');
    }
  });
}
