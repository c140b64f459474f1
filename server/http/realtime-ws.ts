// WebSocket `/v1/realtime` (docs/realtime.md): the OpenAI Realtime API's WebSocket front door to the same session
// core and agent as `/ws`. The one access layer decides at the upgrade (a Bearer key, or the browser form: the
// `realtime` + `openai-insecure-api-key.<key>` subprotocols, answered with `realtime`); the socket limits and
// EVA_MAX_CALLS apply as for calls. Frames become client events (realtime/protocol.ts); a bad one gets an
// `error` event carrying the client's `event_id`, never a disconnect.
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { RealtimeSession, type RealtimeEvent } from '../realtime/session.js';
import { RealtimeError, decodeFrame, eventIdOf, parseClientEvent } from '../realtime/protocol.js';
import type { ClientSecrets } from '../realtime/client-secrets.js';
import { authorizationSecret, splitProtocols } from './access.js';
import { admitUpgrade, callsFullRefusal, upgrade, type RouteContext } from './context.js';
import { sendError } from './respond.js';

/**
 * uWS closes the socket (1009) on frames above this. OpenAI accepts appends of up to 15 MiB of audio; EVA takes
 * up to 8 MiB per event (MAX_EVENT_BYTES, ~2.9 min of 24 kHz PCM16 in base64) and answers bigger ones with an
 * `error` up to this size.
 */
export const REALTIME_MAX_PAYLOAD = 16 * 1024 * 1024;

interface RealtimeSocketData {
  client: string;
  model: string;
  protocol: string;
  open: boolean;
  /** The settings of the client secret it was opened with, if any. */
  initial?: Record<string, unknown>;
  session?: RealtimeSession;
}

export interface RealtimeSockets {
  readonly size: number;
  closeAll(): void;
}

export function registerRealtime(app: TemplatedApp, ctx: RouteContext, opts: { secrets: ClientSecrets }): RealtimeSockets {
  const { deps, log, limits } = ctx;
  const { config } = deps;
  const sockets = new Set<WebSocket<RealtimeSocketData>>();

  app.ws<RealtimeSocketData>('/v1/realtime', {
    maxPayloadLength: REALTIME_MAX_PAYLOAD,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    maxBackpressure: 16 * 1024 * 1024,
    upgrade: (res, req, context) => {
      const model = req.getQuery('model') ?? '';
      const presented = authorizationSecret(req.getHeader('authorization')) || splitProtocols(req.getHeader('sec-websocket-protocol')).key;
      const ok = admitUpgrade(ctx, res, req);
      if (!ok) return;
      const full = callsFullRefusal(ctx, sockets.size);
      if (full) {
        sendError(res, full, log);
        return;
      }
      upgrade<RealtimeSocketData>(res, req, context, ok, { client: ok.client, model: model || 'eva', protocol: ok.protocol, open: true, initial: opts.secrets.sessionFor(presented) });
    },
    open: (ws) => {
      const s = ws.getUserData();
      sockets.add(ws);
      limits.socketOpened(s.client);
      deps.metrics?.callOpened();
      // uWS throws on any use of a closed socket: `open` says when it closed.
      const send = (ev: RealtimeEvent): void => {
        if (s.open) ws.send(JSON.stringify(ev), false);
      };
      s.session = new RealtimeSession({
        vad: deps.vad,
        turn: config.turn,
        agent: deps.agent,
        log: log.child('realtime'),
        instructions: config.systemPrompt,
        model: s.model,
        initial: s.initial,
        send,
        onFault: () => {
          if (s.open) ws.end(1011, 'internal error');
        },
      });
      s.session.whenReady().catch((err: unknown) => {
        log.error('realtime session failed to start', { err });
        if (s.open) ws.end(1011, 'could not start the session');
      });
    },
    message: (ws, data, isBinary) => {
      const s = ws.getUserData();
      const session = s.session;
      if (!session) return;
      let text: string;
      try {
        if (isBinary) throw new RealtimeError('invalid_json', 'Binary frames are not part of the protocol: send JSON text events.');
        text = decodeFrame(data);
      } catch (err) {
        session.error(err as RealtimeError);
        return;
      }
      try {
        session.handle(parseClientEvent(text));
      } catch (err) {
        if (!(err instanceof RealtimeError)) throw err;
        session.error(err, eventIdOf(text));
      }
    },
    close: (ws) => {
      const s = ws.getUserData();
      s.open = false;
      sockets.delete(ws);
      limits.socketClosed(s.client);
      deps.metrics?.callClosed();
      s.session?.close('socket_closed');
    },
  });

  return {
    get size() {
      return sockets.size;
    },
    closeAll() {
      for (const ws of [...sockets]) ws.close();
    },
  };
}
