// The HTTP and WebSocket front: the only file that imports uWebSockets.js. It maps requests to handlers and
// errors to replies, in one place (`sendError`/`wsError`); the logic lives in the modules it calls.
import { readFile, readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import uWS from 'uWebSockets.js';
import { Call, type CallEndReason } from './call.js';
import { CallRegistry } from './calls.js';
import type { AgentFactory } from './agent.js';
import type { EvaConfig } from './config.js';
import { EvaError } from './errors.js';
import type { Logger } from './log.js';
import { parseClientMessage, type ServerMessage } from './signaling.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from './ratelimit.js';
import { rateLimitedError } from './ratelimit.js';
import { errorBody, parseChatRequest, parseWsChatMessage, type TextApi, type WsChatEvent } from './textapi.js';
import type { TtsProvider } from './providers/types.js';
import { encodeWav } from '../media/wav.js';
import type { VadEngine } from '../media/vad.js';

export interface AppDeps {
  config: EvaConfig;
  vad: VadEngine;
  agent: AgentFactory;
  log: Logger;
  /** Directory with the built page (index.html, main.js). */
  clientDir: string;
  /** Extra health checks, by part name (stt, llm, tts, database …). */
  health?: () => Promise<Record<string, { ok: boolean; detail?: string; required?: boolean }>>;
  /** The seeds' text API, `/tts`, `/voices`, `/metrics` (absent in media-only tests). */
  text?: TextApi;
  tts?: TtsProvider;
  metrics?: Metrics;
  limiter?: RateLimiter;
}

/** Request bodies above this are refused with 413 before they are read further. */
const MAX_BODY = 64 * 1024;
const MAX_TTS_CHARS = 2000;

interface ChatSocketData {
  ip: string;
  ctrl: AbortController;
  open: boolean;
}

interface SocketData {
  ip: string;
  ws?: uWS.WebSocket<SocketData>;
  call: Call | null;
  open: boolean;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

/** uWS frames above this close the socket with 1009; up to it, the protocol answers `too_large` and goes on. */
const WS_MAX_PAYLOAD = 1024 * 1024;

export interface EvaServer {
  port: number;
  calls: CallRegistry;
  close(): Promise<void>;
}

async function loadStatic(dir: string, log: Logger): Promise<Map<string, { body: Buffer; type: string }>> {
  const files = new Map<string, { body: Buffer; type: string }>();
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    log.warn('client page not built; run `npm run build`', { dir });
  }
  for (const name of names) {
    const type = MIME[extname(name)];
    if (type) files.set(`/${name}`, { body: await readFile(join(dir, name)), type });
  }
  const index = files.get('/index.html');
  if (index) files.set('/', index);
  return files;
}

export async function startServer(deps: AppDeps): Promise<EvaServer> {
  const { config, log } = deps;
  const calls = new CallRegistry(config.maxCalls);
  const statics = await loadStatic(deps.clientDir, log);
  const app = uWS.App();
  const sockets = new Set<SocketData>();
  const chatSockets = new Set<uWS.WebSocket<ChatSocketData>>();
  /** After close(): connections that were already open (HTTP keep-alive) get 503 and are closed. */
  let closed = false;
  const refuseIfClosed = (res: uWS.HttpResponse): boolean => {
    if (!closed) return false;
    res.cork(() => {
      res
        .writeStatus('503 Service Unavailable')
        .writeHeader('Content-Type', 'application/json')
        .writeHeader('Connection', 'close')
        .end(JSON.stringify({ error: { code: 'shutting_down', message: 'EVA is shutting down' } }), true);
    });
    return true;
  };

  for (const [path, file] of statics) {
    app.get(path, (res) => {
      res.cork(() => {
        res.writeHeader('Content-Type', file.type).writeHeader('Cache-Control', 'no-cache').end(file.body);
      });
    });
  }

  app.get('/health', (res) => {
    if (refuseIfClosed(res)) return;
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const parts = { media: { ok: true } } as Record<string, { ok: boolean; detail?: string; required?: boolean }>;
    (deps.health ? deps.health() : Promise.resolve({}))
      .then((extra) => Object.assign(parts, extra))
      .catch((err: unknown) => log.warn('health check failed', { err }))
      .finally(() => {
        if (aborted) return;
        const ok = Object.values(parts).every((p) => p.ok || p.required === false);
        const flat = Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, v.ok]));
        sendJson(res, ok ? 200 : 503, { status: ok ? 'ok' : 'degraded', ...flat, calls: calls.size, providers: parts });
      });
  });

  app.ws<SocketData>('/ws', {
    maxPayloadLength: WS_MAX_PAYLOAD,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    maxBackpressure: 4 * 1024 * 1024,
    upgrade: (res, req, context) => {
      const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
      res.upgrade<SocketData>(
        { ip, call: null, open: true },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    message: (ws, data, isBinary) => {
      const s = ws.getUserData();
      const send = (msg: ServerMessage): void => {
        if (s.open) ws.send(JSON.stringify(msg), false);
      };
      let msg;
      try {
        msg = parseClientMessage(data, isBinary);
      } catch (err) {
        send(wsError(err, log));
        return;
      }
      handleSignal(msg, s, send).catch((err: unknown) => send(wsError(err, log)));
    },
    open: (ws) => {
      const s = ws.getUserData();
      s.ws = ws;
      sockets.add(s);
    },
    close: (ws) => {
      const s = ws.getUserData();
      s.open = false;
      sockets.delete(s);
      s.call?.close('socket_closed');
    },
  });

  async function handleSignal(msg: ReturnType<typeof parseClientMessage>, s: SocketData, send: (m: ServerMessage) => void): Promise<void> {
    switch (msg.type) {
      case 'offer': {
        if (s.call && s.call.state !== 'closed') throw new EvaError('already_in_call', 'this socket already has a call; hang up first');
        if (calls.size >= calls.max) throw new EvaError('rate_limited', `the server is at its limit of ${calls.max} calls; try again later`, { retryable: true });
        let answered = false;
        const call = new Call({
          vad: deps.vad,
          turn: config.turn,
          agent: deps.agent,
          emit: send,
          log: log.child('call'),
          onClosed: (c: Call, reason: CallEndReason) => {
            calls.remove(c);
            deps.metrics?.callClosed();
            if (answered) send({ type: 'bye', reason });
          },
          peer: config.iceHosts.length ? { additionalHosts: ['127.0.0.1', ...config.iceHosts] } : undefined,
        });
        s.call = call;
        calls.add(call);
        deps.metrics?.callOpened();
        try {
          const sdp = await call.start(msg.sdp, msg.config);
          if (!s.open) {
            call.close('socket_closed');
            return;
          }
          answered = true;
          send({ type: 'answer', sdp });
          send({ type: 'ready', session: call.sessionId, call: call.id, providers: call.providers ?? { stt: 'none', llm: 'none', tts: 'none' } });
        } catch (err) {
          call.close('error');
          s.call = null;
          throw err;
        }
        return;
      }
      case 'candidate':
        if (!s.call) throw new EvaError('no_call', 'send an offer before candidates');
        await s.call.addCandidate(msg.candidate);
        return;
      case 'text':
        if (!s.call || s.call.state === 'closed') throw new EvaError('no_call', 'no call in progress; send an offer first');
        s.call.text(msg.text);
        return;
      case 'hangup':
        if (!s.call) throw new EvaError('no_call', 'no call to hang up');
        s.call.close('hangup');
        s.call = null;
        return;
      default: {
        const never: never = msg;
        throw new Error(`unhandled message ${JSON.stringify(never)}`);
      }
    }
  }

  if (deps.text) {
    const text = deps.text;
    app.post('/chat', (res, req) => {
      if (refuseIfClosed(res)) return;
      const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
      const ctrl = new AbortController();
      const aborted = onAbort(res, ctrl);
      const limited = deps.limiter?.take(ip);
      if (limited && !limited.ok) {
        res.onData(() => undefined);
        sendError(res, rateLimitedError(limited.retryAfterMs), log);
        return;
      }
      readJson(res, req, aborted)
        .then((body) => text.handleChat(parseChatRequest(body), ctrl.signal))
        .then((reply) => !aborted.value && sendJson(res, 200, reply))
        .catch((err: unknown) => !aborted.value && sendError(res, err, log));
    });

    app.ws<ChatSocketData>('/ws/chat', {
      maxPayloadLength: WS_MAX_PAYLOAD,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        res.upgrade(
          { ip: Buffer.from(res.getRemoteAddressAsText()).toString(), ctrl: new AbortController(), open: true },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      },
      open: (ws) => {
        chatSockets.add(ws);
      },
      message: (ws, data) => {
        const s = ws.getUserData();
        const emit = (m: WsChatEvent | { type: 'error'; code: string; message: string }): void => {
          if (s.open) ws.send(JSON.stringify(m), false);
        };
        const limited = deps.limiter?.take(s.ip);
        if (limited && !limited.ok) {
          emit({ type: 'error', ...errorBody(rateLimitedError(limited.retryAfterMs)).body.error });
          return;
        }
        let req;
        try {
          req = parseWsChatMessage(data);
        } catch (err) {
          emit({ type: 'error', ...errorBody(err, log).body.error });
          return;
        }
        void text.streamChat(req, s.ctrl.signal, emit);
      },
      close: (ws) => {
        chatSockets.delete(ws);
        const s = ws.getUserData();
        s.open = false;
        s.ctrl.abort();
      },
    });
  }

  if (deps.tts) {
    const tts = deps.tts;
    app.post('/tts', (res, req) => {
      if (refuseIfClosed(res)) return;
      const ctrl = new AbortController();
      const aborted = onAbort(res, ctrl);
      readJson(res, req, aborted)
        .then(async (body) => {
          const b = body as { text?: unknown; voice?: unknown };
          if (typeof b !== 'object' || b === null || typeof b.text !== 'string' || b.text.trim() === '') {
            throw new EvaError('bad_request', 'expected {"text": string, "voice"?: string}');
          }
          if (b.text.length > MAX_TTS_CHARS) throw new EvaError('too_large', `text is longer than ${MAX_TTS_CHARS} characters`, { status: 413 });
          if (b.voice !== undefined && typeof b.voice !== 'string') throw new EvaError('bad_request', 'voice must be a string');
          const parts: Int16Array[] = [];
          let rate = 0;
          for await (const chunk of tts.synthesize(b.text, { signal: ctrl.signal, voice: b.voice as string | undefined })) {
            if (chunk.type !== 'audio') continue;
            rate = chunk.sampleRate;
            parts.push(chunk.samples);
          }
          const all = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
          let o = 0;
          for (const p of parts) (all.set(p, o), (o += p.length));
          return encodeWav(all, rate || 22050);
        })
        .then((wav) => {
          if (aborted.value) return;
          res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', 'audio/wav').end(wav));
        })
        .catch((err: unknown) => !aborted.value && sendError(res, err, log));
    });

    app.get('/voices', (res) => {
      if (refuseIfClosed(res)) return;
      const aborted = onAbort(res, new AbortController());
      tts
        .voices()
        .then((voices) => !aborted.value && sendJson(res, 200, { provider: tts.name, voices }))
        .catch((err: unknown) => !aborted.value && sendError(res, err, log));
    });
  }

  if (deps.metrics) {
    const metrics = deps.metrics;
    app.get('/metrics', (res) => {
      if (refuseIfClosed(res)) return;
      const aborted = onAbort(res, new AbortController());
      metrics
        .text()
        .then((body) => {
          if (aborted.value) return;
          res.cork(() => res.writeHeader('Content-Type', metrics.contentType).end(body));
        })
        .catch((err: unknown) => !aborted.value && sendError(res, err, log));
    });
  }

  app.any('/*', (res, req) => {
    const url = req.getUrl();
    sendJson(res, 404, { error: { code: 'not_found', message: `no route for ${req.getMethod().toUpperCase()} ${url}` } });
  });

  const listen = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (sock) => (sock ? resolve(sock) : reject(new EvaError('internal', `cannot listen on ${config.host}:${config.port} (in use?)`))));
  });
  const port = uWS.us_socket_local_port(listen);
  return {
    port,
    calls,
    async close() {
      if (closed) return;
      closed = true;
      calls.closeAll('shutdown');
      uWS.us_listen_socket_close(listen);
      for (const s of [...sockets]) if (s.open) s.ws?.close();
      for (const ws of [...chatSockets]) ws.close();
    },
  };
}

/** An error as a WS `error` message; the mapping itself is errorBody's (textapi.ts), the one place for it. */
export function wsError(err: unknown, log: Logger): ServerMessage {
  return { type: 'error', ...errorBody(err, log).body.error };
}

function sendError(res: uWS.HttpResponse, err: unknown, log: Logger): void {
  const { status, body } = errorBody(err, log);
  const retryAfterMs = (err as { retryAfterMs?: unknown }).retryAfterMs;
  const headers = typeof retryAfterMs === 'number' ? { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } : undefined;
  sendJson(res, status, body, headers);
}

/** uWS requires an abort handler before any asynchronous reply; `value` turns true when the client is gone. */
function onAbort(res: uWS.HttpResponse, ctrl: AbortController): { value: boolean } {
  const flag = { value: false };
  res.onAborted(() => {
    flag.value = true;
    ctrl.abort();
  });
  return flag;
}

/** Read a bounded JSON body. Must be called synchronously in the handler (uWS invalidates `req` after). */
function readJson(res: uWS.HttpResponse, req: uWS.HttpRequest, aborted: { value: boolean }): Promise<unknown> {
  const type = req.getHeader('content-type');
  const declared = Number(req.getHeader('content-length') || 0);
  return new Promise((resolve, reject) => {
    if (declared > MAX_BODY) {
      res.onData(() => undefined);
      reject(new EvaError('too_large', `request body larger than ${MAX_BODY} bytes`, { status: 413 }));
      return;
    }
    // Seed clients post JSON as text/plain (fetch's default for a string) or form-encoded (curl -d): the body
    // decides. Only types that cannot be one JSON document are refused.
    if (type && /multipart\/|octet-stream|^audio\/|^image\//i.test(type)) {
      res.onData(() => undefined);
      reject(new EvaError('bad_request', `Content-Type ${type.slice(0, 60)} is not accepted; send a JSON body (application/json)`, { status: 415 }));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk, isLast) => {
      if (failed || aborted.value) return;
      size += chunk.byteLength;
      if (size > MAX_BODY) {
        failed = true;
        reject(new EvaError('too_large', `request body larger than ${MAX_BODY} bytes`, { status: 413 }));
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory after this callback
      if (!isLast) return;
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new EvaError('bad_request', 'request body is not valid JSON'));
      }
    });
  });
}

function sendJson(res: uWS.HttpResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  res.cork(() => {
    res.writeStatus(`${status} ${STATUS_TEXT[status] ?? 'OK'}`).writeHeader('Content-Type', 'application/json');
    for (const [k, v] of Object.entries(headers ?? {})) res.writeHeader(k, v);
    res.end(JSON.stringify(body));
  });
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
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
