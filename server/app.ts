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
import type { VadEngine } from '../media/vad.js';

export interface AppDeps {
  config: EvaConfig;
  vad: VadEngine;
  agent: AgentFactory;
  log: Logger;
  /** Directory with the built page (index.html, main.js). */
  clientDir: string;
  /** Extra health checks, by part name (stt, llm, tts, database …). */
  health?: () => Promise<Record<string, { ok: boolean; detail?: string }>>;
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

  for (const [path, file] of statics) {
    app.get(path, (res) => {
      res.cork(() => {
        res.writeHeader('Content-Type', file.type).writeHeader('Cache-Control', 'no-cache').end(file.body);
      });
    });
  }

  app.get('/health', (res) => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const parts = { media: { ok: true } } as Record<string, { ok: boolean; detail?: string }>;
    (deps.health ? deps.health() : Promise.resolve({}))
      .then((extra) => Object.assign(parts, extra))
      .catch((err: unknown) => log.warn('health check failed', { err }))
      .finally(() => {
        if (aborted) return;
        const ok = Object.values(parts).every((p) => p.ok);
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
        const call = new Call({
          vad: deps.vad,
          turn: config.turn,
          agent: deps.agent,
          emit: send,
          log: log.child('call'),
          onClosed: (c: Call, reason: CallEndReason) => {
            calls.remove(c);
            send({ type: 'bye', reason });
          },
          peer: config.iceHosts.length ? { additionalHosts: ['127.0.0.1', ...config.iceHosts] } : undefined,
        });
        s.call = call;
        calls.add(call);
        try {
          const sdp = await call.start(msg.sdp, msg.config);
          if (!s.open) {
            call.close('socket_closed');
            return;
          }
          send({ type: 'answer', sdp });
          send({ type: 'ready', session: call.id, providers: call.providers ?? { stt: 'none', llm: 'none', tts: 'none' } });
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

  app.any('/*', (res, req) => {
    const url = req.getUrl();
    sendJson(res, 404, { error: { code: 'not_found', message: `no route for ${req.getMethod().toUpperCase()} ${url}` } });
  });

  const listen = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (sock) => (sock ? resolve(sock) : reject(new EvaError('internal', `cannot listen on ${config.host}:${config.port} (in use?)`))));
  });
  const port = uWS.us_socket_local_port(listen);
  let closed = false;
  return {
    port,
    calls,
    async close() {
      if (closed) return;
      closed = true;
      calls.closeAll('shutdown');
      uWS.us_listen_socket_close(listen);
      for (const s of [...sockets]) if (s.open) s.ws?.close();
    },
  };
}

/** The one place an error becomes a WS `error` message: stable code, a client-safe message, never a stack. */
export function wsError(err: unknown, log: Logger): ServerMessage {
  if (err instanceof EvaError) return { type: 'error', code: err.code, message: err.message };
  log.error('unexpected error', { err });
  return { type: 'error', code: 'internal', message: 'internal error' };
}

function sendJson(res: uWS.HttpResponse, status: number, body: unknown): void {
  res.cork(() => {
    res
      .writeStatus(`${status} ${STATUS_TEXT[status] ?? 'OK'}`)
      .writeHeader('Content-Type', 'application/json')
      .end(JSON.stringify(body));
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
