// The shared shell of the stand-in provider servers: a node:http server on loopback that reads bounded bodies,
// records every request, injects failures on demand and closes promptly (open sockets are destroyed, pending
// waits are aborted). The Groq and Ollama stand-ins add their routes on top.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { toProfile, type LatencyProfile } from './profile.js';

/** Listen (127.0.0.1 and an ephemeral port by default); resolves with the port and `host:port` for URLs. */
export async function listenLoopback(server: http.Server, host = '127.0.0.1', port = 0): Promise<{ port: number; hostPort: string }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return { port: bound, hostPort: `${host.includes(':') ? `[${host}]` : host}:${bound}` };
}

export type FailMode = 'http500' | 'http429' | 'http400' | 'cut' | 'hang' | 'stall' | 'malformed';

export interface FailSpec {
  /**
   * http500/http429/http400: an error reply; cut: part of the reply then a destroyed socket; hang: no reply at
   * all; stall: part of the reply (at least the first token or chunk), then nothing more on an open connection
   * until the client leaves; malformed: a reply whose stream or body does not parse (a broken SSE/NDJSON event,
   * invalid JSON, audio that is not WAV).
   */
  mode: FailMode;
  /** How many requests fail before the stand-in recovers by itself; unset = until `setFail(null)`. */
  count?: number;
  /** Only requests whose path contains this string fail (e.g. 'chat'); unset = every API request. */
  match?: string;
}

export interface FormFile {
  filename: string;
  type: string;
  size: number;
}

export interface RecordedRequest {
  id: number;
  method: string;
  /** Path without the query string. */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON body, when the body was JSON. */
  body?: unknown;
  /** Multipart fields; files are described, not kept. */
  form?: Record<string, string | FormFile>;
  /** performance.now() when the request arrived. */
  at: number;
  /** The failure injected into this request, if any. */
  failed?: FailMode;
  status?: number;
  /** 'aborted' once the connection closed before the reply was complete (client abort, cut, server close). */
  outcome: 'pending' | 'finished' | 'aborted';
  /** Resolves with the outcome once the exchange is over. */
  settled: Promise<'finished' | 'aborted'>;
}

export interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  rec: RecordedRequest;
  /** performance.now() when the request arrived: the origin of every profile delay. */
  t0: number;
  raw: Buffer;
  form?: FormData;
  /** Aborted when the connection closes early or the server closes. */
  signal: AbortSignal;
  profile: LatencyProfile;
  /** True when this request must be cut part-way (failure injection, mode 'cut'). */
  cut: boolean;
  /** Mode 'stall': send part of the reply, then `stallUntilClosed`. */
  stall: boolean;
  /** Mode 'malformed': send a reply that does not parse. */
  malformed: boolean;
}

export interface StandinHandle {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  port: number;
  /** Every request so far, in arrival order (a live array). */
  requests: RecordedRequest[];
  setFail(fail: FailSpec | null): void;
  setProfile(profile: LatencyProfile | string): void;
  readonly profile: LatencyProfile;
  /** Idempotent: stops listening, destroys open sockets, aborts pending waits. */
  close(): Promise<void>;
}

export interface CoreOptions {
  host?: string;
  port?: number;
  profile?: LatencyProfile | string;
  fail?: FailSpec | null;
  /** Largest request body accepted; bigger gets 413. Default 25 MB (Groq's own upload limit). */
  maxBodyBytes?: number;
  /** Requests kept in `requests`; the oldest are dropped beyond it (long bench runs). Default 10 000. */
  maxRecorded?: number;
}

export interface Routes {
  /** Error body in the API's own shape. */
  errorBody(status: number, message: string, kind: string): unknown;
  /** A reason to refuse the request before anything else (e.g. missing API key), or null. */
  authorize?(req: http.IncomingMessage): { status: number; message: string; kind: string } | null;
  handle(ctx: RequestContext): Promise<void>;
}

export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly kind = 'invalid_request_error') {
    super(message);
  }
}

const DEFAULT_MAX_BODY = 25 * 1024 * 1024;

export async function startCore(opts: CoreOptions, routes: Routes): Promise<StandinHandle> {
  let profile = toProfile(opts.profile);
  let fail: FailSpec | null = opts.fail ?? null;
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const maxRecorded = opts.maxRecorded ?? 10_000;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const closing = new AbortController();
  let nextId = 1;

  const server = http.createServer((req, res) => {
    void serve(req, res);
  });
  server.keepAliveTimeout = 5000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = performance.now();
    const u = new URL(req.url ?? '/', 'http://standin');
    let settle!: (o: 'finished' | 'aborted') => void;
    const rec: RecordedRequest = {
      id: nextId++,
      method: req.method ?? 'GET',
      path: u.pathname,
      headers: req.headers,
      at: t0,
      outcome: 'pending',
      settled: new Promise((r) => (settle = r)),
    };
    requests.push(rec);
    if (requests.length > maxRecorded) requests.splice(0, requests.length - maxRecorded);
    const conn = new AbortController();
    const signal = AbortSignal.any([conn.signal, closing.signal]);
    res.on('close', () => {
      rec.outcome = res.writableFinished ? 'finished' : 'aborted';
      if (rec.outcome === 'aborted') conn.abort();
      settle(rec.outcome);
    });
    const sendError = (status: number, message: string, kind: string): void => {
      rec.status = status;
      const body = JSON.stringify(routes.errorBody(status, message, kind));
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
      if (status === 429) headers['retry-after'] = '1';
      if (!res.headersSent) res.writeHead(status, headers);
      res.end(body);
    };
    try {
      const raw = await readBody(req, maxBody, signal);
      const denied = routes.authorize?.(req);
      if (denied) return sendError(denied.status, denied.message, denied.kind);
      const ct = String(req.headers['content-type'] ?? '');
      let form: FormData | undefined;
      if (raw.length > 0 && ct.includes('json')) {
        try {
          rec.body = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new HttpError(400, 'request body is not valid JSON');
        }
      } else if (ct.startsWith('multipart/form-data')) {
        try {
          form = await new Response(raw, { headers: { 'content-type': ct } }).formData();
        } catch {
          throw new HttpError(400, 'request body is not valid multipart/form-data');
        }
        rec.form = describeForm(form);
      }

      let cut = false;
      let stall = false;
      let malformed = false;
      if (fail && (fail.match === undefined || rec.path.includes(fail.match))) {
        const mode = fail.mode;
        if (fail.count !== undefined && --fail.count <= 0) fail = null;
        rec.failed = mode;
        switch (mode) {
          case 'http500':
            return sendError(500, 'Internal Server Error (injected)', 'internal_server_error');
          case 'http429':
            return sendError(429, 'Rate limit reached (injected)', 'rate_limit_exceeded');
          case 'http400':
            return sendError(400, 'Bad request (injected)', 'invalid_request_error');
          case 'hang':
            return; // never answer; the socket stays open until the client or close() ends it
          case 'cut':
            cut = true;
            break;
          case 'stall':
            stall = true;
            break;
          case 'malformed':
            malformed = true;
            break;
        }
      }
      await routes.handle({ req, res, rec, t0, raw, form, signal, profile, cut, stall, malformed });
    } catch (err) {
      if (signal.aborted || res.destroyed) return;
      if (err instanceof HttpError) return sendError(err.status, err.message, err.kind);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendError(500, `stand-in failure: ${(err as Error).message}`, 'internal_server_error');
    }
  }

  const { port, hostPort } = await listenLoopback(server, opts.host, opts.port);

  let closed: Promise<void> | null = null;
  return {
    url: `http://${hostPort}`,
    port,
    requests,
    setFail(f) {
      fail = f ? { ...f } : null;
    },
    setProfile(p) {
      profile = toProfile(p);
    },
    get profile() {
      return profile;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        sockets.clear();
      });
      return closed;
    },
  };
}

async function readBody(req: http.IncomingMessage, max: number, signal: AbortSignal): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw new HttpError(413, `request body over ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (signal.aborted) throw signal.reason;
    size += chunk.length;
    if (size > max) throw new HttpError(413, `request body over ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function describeForm(form: FormData): Record<string, string | FormFile> {
  const out: Record<string, string | FormFile> = {};
  for (const [k, v] of form.entries()) {
    out[k] = typeof v === 'string' ? v : { filename: (v as File).name, type: v.type, size: v.size };
  }
  return out;
}

/** Wait `ms` after `t0` (performance.now() origin); rejects with an AbortError when `signal` fires. */
export async function waitUntil(t0: number, ms: number, signal: AbortSignal): Promise<void> {
  const left = t0 + ms - performance.now();
  if (left > 0) await sleep(left, undefined, { signal });
  else if (signal.aborted) throw signal.reason;
}

/** The reply split the way an LLM streams it: words with their leading whitespace. Capped at `max` tokens. */
export function tokenize(text: string, max = 4096): string[] {
  return (text.match(/\s*\S+/g) ?? []).slice(0, max);
}

/**
 * Token batches as they fall due: the first at t0+ttftMs, then one every 1000/tokensPerSec ms. Several tokens
 * that are due at one wake-up come as one batch, so a 500 tok/s profile costs ~1 timer per ms, not a busy loop.
 */
export async function* pace(tokens: readonly string[], t0: number, p: LatencyProfile, signal: AbortSignal): AsyncGenerator<string[]> {
  await waitUntil(t0, p.ttftMs, signal);
  const interval = Number.isFinite(p.tokensPerSec) && p.tokensPerSec > 0 ? 1000 / p.tokensPerSec : 0;
  let i = 0;
  while (i < tokens.length) {
    const elapsed = performance.now() - (t0 + p.ttftMs);
    const due = interval === 0 ? tokens.length : Math.min(tokens.length, Math.floor(elapsed / interval) + 1);
    if (due > i) {
      yield tokens.slice(i, due);
      i = due;
    } else {
      await waitUntil(t0 + p.ttftMs, i * interval, signal);
    }
  }
}

/**
 * Failure mode 'stall': keep the connection open with nothing more to say until the client leaves or the
 * stand-in closes (both abort `signal`), as a provider does whose generation stopped behind a live socket.
 */
export async function stallUntilClosed(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Write `body` with `status`, but only its first half, then destroy the socket (failure mode 'cut'). */
export function sendCut(res: http.ServerResponse, status: number, headers: http.OutgoingHttpHeaders, body: Buffer | string): void {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { ...headers, 'content-length': b.length });
  res.write(b.subarray(0, Math.max(1, b.length >> 1)), () => res.destroy());
}

/** Text of an OpenAI/Ollama message content: a string, or an array of `{type:'text', text}` parts. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : ''))
      .join('');
  }
  return '';
}

export interface ChatMessageLike {
  role: string;
  content: string;
}

/** Validated `messages` of a chat request (400 otherwise), bounded at 1,000 messages. */
export function chatMessages(body: unknown): ChatMessageLike[] {
  const msgs = (body as { messages?: unknown } | undefined)?.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) throw new HttpError(400, "'messages' must be a non-empty array");
  if (msgs.length > 1000) throw new HttpError(400, "'messages' has more than 1000 entries");
  return msgs.map((m, i) => {
    if (!m || typeof m !== 'object' || typeof (m as { role?: unknown }).role !== 'string') {
      throw new HttpError(400, `'messages.${i}' must be an object with a role`);
    }
    return { role: (m as { role: string }).role, content: contentText((m as { content?: unknown }).content) };
  });
}

/** The default deterministic answer: built from the last user message, so tests can assert on it. */
export function defaultReply(messages: readonly ChatMessageLike[]): string {
  const last = [...messages].reverse().find((m) => m.role === 'user');
  const said = (last?.content ?? '').trim().slice(0, 500).replace(/[.!?]+$/, '');
  if (!said) return 'Hello! How can I help you?';
  return `You said: ${said}. That is interesting, tell me more.`;
}
