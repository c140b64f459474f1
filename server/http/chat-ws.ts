// WebSocket `/ws/chat` (docs/protocol.md "HTTP API"): text turns streamed as tokens. One reply streams at a
// time per socket (tokens carry no turn id, so two at once would interleave): later messages wait in order, up to
// EVA_WS_CHAT_QUEUE, beyond which they get `rate_limited`. The text API's per-client bucket applies to each.
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { EvaError } from '../errors.js';
import { linkAbort } from '../abort-link.js';
import { rateLimitedError } from '../ratelimit.js';
import { parseWsChatMessage, type ChatRequest, type WsChatEvent } from '../textapi.js';
import { admitUpgrade, upgrade, type RouteContext } from './context.js';
import { publicMessage, wsError } from './respond.js';
import { WS_MAX_PAYLOAD } from './signaling-ws.js';

interface ChatSocketData {
  client: string;
  owner: boolean;
  ctrl: AbortController;
  open: boolean;
  busy: boolean;
  queue: ChatRequest[];
}

export interface ChatSockets {
  closeAll(): void;
}

export function registerChat(app: TemplatedApp, ctx: RouteContext): ChatSockets {
  const { deps, log, limits, access } = ctx;
  const text = deps.text;
  const sockets = new Set<WebSocket<ChatSocketData>>();
  if (!text) return { closeAll() {} };

  // The socket's data is read once: uWS throws on any access to a closed socket, `open` says when it closed.
  const emitter = (ws: WebSocket<ChatSocketData>, s: ChatSocketData) => (m: WsChatEvent): void => {
    if (!s.open) return;
    const out = m.type === 'error' ? { ...m, message: publicMessage(m.code, m.message) } : m;
    ws.send(JSON.stringify(out), false);
  };

  async function drain(ws: WebSocket<ChatSocketData>, s: ChatSocketData): Promise<void> {
    if (s.busy) return;
    s.busy = true;
    try {
      for (let req = s.queue.shift(); req && s.open; req = s.queue.shift()) {
        // A controller per message, let go of when it is answered: the socket's own signal lives as long as the
        // socket, and would otherwise keep every message's request state (server/abort-link.ts).
        const turn = new AbortController();
        const unlink = linkAbort(s.ctrl.signal, turn);
        try {
          await text!.streamChat({ ...req, sessionId: access.session(req.sessionId, s.owner) }, turn.signal, emitter(ws, s));
        } finally {
          unlink();
        }
      }
    } finally {
      s.busy = false;
    }
  }

  app.ws<ChatSocketData>('/ws/chat', {
    maxPayloadLength: WS_MAX_PAYLOAD,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const ok = admitUpgrade(ctx, res, req);
      if (!ok) return;
      upgrade<ChatSocketData>(res, req, context, ok, { client: ok.client, owner: ok.owner, ctrl: new AbortController(), open: true, busy: false, queue: [] });
    },
    open: (ws) => {
      sockets.add(ws);
      limits.socketOpened(ws.getUserData().client);
    },
    message: (ws, data) => {
      const s = ws.getUserData();
      const emit = emitter(ws, s);
      const limited = deps.limiter?.take(s.client);
      if (limited && !limited.ok) {
        limits.hit('text_api');
        emit(wsError(rateLimitedError(limited.retryAfterMs), log));
        return;
      }
      let req;
      try {
        req = parseWsChatMessage(data);
      } catch (err) {
        emit(wsError(err, log));
        return;
      }
      if (s.busy && s.queue.length >= limits.config.chatQueue) {
        limits.hit('ws_chat_stream');
        emit(wsError(new EvaError('rate_limited', `one reply streams at a time and ${limits.config.chatQueue} messages already wait; wait for "end"`, { status: 429, retryable: true }), log));
        return;
      }
      s.queue.push(req);
      drain(ws, s).catch((err: unknown) => log.error('/ws/chat turn failed', { err }));
    },
    close: (ws) => {
      sockets.delete(ws);
      const s = ws.getUserData();
      s.open = false;
      s.queue.length = 0;
      s.ctrl.abort();
      limits.socketClosed(s.client);
    },
  });

  return {
    closeAll() {
      for (const ws of [...sockets]) ws.close();
    },
  };
}
