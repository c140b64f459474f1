// WebSocket `/ws` (docs/protocol.md): one call per socket. The door and the socket limits at the upgrade; then
// per message the offer limits (rate, calls per client, EVA_MAX_CALLS), the text-turn rate and the session rule.
// A socket that has no call for EVA_OFFER_TIMEOUT_S is closed, so idle sockets cannot pile up.
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { Call, type CallEndReason } from '../call.js';
import { EvaError } from '../errors.js';
import { peerOptionsFor } from '../peer-options.js';
import { parseClientMessage, type ClientMessage, type ServerMessage } from '../signaling.js';
import { connectionId, iceServersFor, unusableTurnServers } from '../turn-credentials.js';
import { admitUpgrade, callsFullRefusal, drainingRefusal, upgrade, type RouteContext } from './context.js';
import { publicMessage, wsError } from './respond.js';

/** uWS frames above this close the socket with 1009; up to it, the protocol answers `too_large` and goes on. */
export const WS_MAX_PAYLOAD = 1024 * 1024;
/** Close code for a socket closed by a limit (1008: policy violation). */
export const CLOSE_POLICY = 1008;

interface SocketData {
  client: string;
  owner: boolean;
  ws?: WebSocket<SocketData>;
  call: Call | null;
  open: boolean;
  offerTimer?: NodeJS.Timeout;
}

export interface SignalingSockets {
  closeAll(): void;
}

export function registerSignaling(app: TemplatedApp, ctx: RouteContext): SignalingSockets {
  const { deps, log, limits, access, calls } = ctx;
  const { config } = deps;
  const sockets = new Set<SocketData>();
  const unusable = unusableTurnServers(config.iceServers, config.turnSecret);
  if (unusable.length) log.warn(`EVA_ICE_SERVERS: ${unusable.join(', ')} has no credential and EVA_TURN_SECRET is not set: it is not offered to callers or used`);

  /** No call on this socket: it must offer within the timeout or be closed. */
  const armOfferTimer = (s: SocketData): void => {
    clearTimeout(s.offerTimer);
    s.offerTimer = setTimeout(() => {
      if (!s.open || (s.call && s.call.state !== 'closed')) return;
      limits.hit('offer_timeout');
      s.ws?.end(CLOSE_POLICY, `offer_timeout: no offer within ${limits.config.offerTimeoutS} s`);
    }, limits.config.offerTimeoutS * 1000);
    s.offerTimer.unref();
  };

  const send = (s: SocketData, msg: ServerMessage): void => {
    if (!s.open) return;
    const out = msg.type === 'error' ? { ...msg, message: publicMessage(msg.code, msg.message) } : msg;
    s.ws?.send(JSON.stringify(out), false);
  };

  app.ws<SocketData>('/ws', {
    maxPayloadLength: WS_MAX_PAYLOAD,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    maxBackpressure: 4 * 1024 * 1024,
    upgrade: (res, req, context) => {
      const ok = admitUpgrade(ctx, res, req);
      if (!ok) return;
      upgrade<SocketData>(res, req, context, ok, { client: ok.client, owner: ok.owner, call: null, open: true });
    },
    open: (ws) => {
      const s = ws.getUserData();
      s.ws = ws;
      sockets.add(s);
      limits.socketOpened(s.client);
      armOfferTimer(s);
    },
    message: (ws, data, isBinary) => {
      const s = ws.getUserData();
      let msg;
      try {
        msg = parseClientMessage(data, isBinary);
      } catch (err) {
        send(s, wsError(err, log));
        return;
      }
      handleSignal(msg, s).catch((err: unknown) => send(s, wsError(err, log)));
    },
    close: (ws) => {
      const s = ws.getUserData();
      s.open = false;
      clearTimeout(s.offerTimer);
      sockets.delete(s);
      limits.socketClosed(s.client);
      s.call?.close('socket_closed');
    },
  });

  async function handleSignal(msg: ClientMessage, s: SocketData): Promise<void> {
    switch (msg.type) {
      case 'offer': {
        if (s.call && s.call.state !== 'closed') throw new EvaError('already_in_call', 'this socket already has a call; hang up first');
        const refused = drainingRefusal(ctx, 'calls') ?? limits.offer(s.client) ?? callsFullRefusal(ctx);
        if (refused) throw refused;
        clearTimeout(s.offerTimer);
        let answered = false;
        let counted = true;
        limits.callStarted(s.client);
        const call = new Call({
          vad: deps.vad,
          turn: config.turn,
          agent: deps.agent,
          emit: (m) => send(s, m),
          log: log.child('call'),
          onClosed: (c: Call, reason: CallEndReason) => {
            calls.remove(c);
            deps.metrics?.callClosed();
            if (counted) limits.callEnded(s.client);
            counted = false;
            if (answered) send(s, { type: 'bye', reason });
            if (s.open && s.call === c) armOfferTimer(s);
          },
          peer: peerOptionsFor(config, deps.worker?.index ?? 0),
          rtpMaxPps: limits.config.rtpMaxPps,
          dtx: config.opusDtx,
          onLimit: (limit) => limits.hit(limit),
        });
        s.call = call;
        calls.add(call);
        deps.metrics?.callOpened();
        try {
          const sdp = await call.start(msg.sdp, { ...msg.config, session: access.session(msg.config.session, s.owner) });
          if (!s.open) {
            call.close('socket_closed');
            return;
          }
          answered = true;
          send(s, { type: 'answer', sdp });
          send(s, { type: 'ready', session: call.sessionId, call: call.id, providers: call.providers ?? { stt: 'none', llm: 'none', tts: 'none' } });
        } catch (err) {
          call.close('error');
          s.call = null;
          if (s.open) armOfferTimer(s);
          throw err;
        }
        return;
      }
      case 'candidate':
        if (!s.call) throw new EvaError('no_call', 'send an offer before candidates');
        await s.call.addCandidate(msg.candidate);
        return;
      case 'text': {
        if (!s.call || s.call.state === 'closed') throw new EvaError('no_call', 'no call in progress; send an offer first');
        const limited = limits.textTurn(s.client);
        if (limited) throw limited;
        s.call.text(msg.text);
        return;
      }
      case 'hello':
        // Minted per request (an HMAC, microseconds): a page asks once, before it builds its peer connection.
        send(s, { type: 'hello', ice_servers: iceServersFor(config.iceServers, config.turnSecret, connectionId('ws')) });
        return;
      case 'hangup':
        if (!s.call) throw new EvaError('no_call', 'no call to hang up');
        s.call.close('hangup');
        s.call = null;
        armOfferTimer(s);
        return;
      default: {
        const never: never = msg;
        throw new Error(`unhandled message ${JSON.stringify(never)}`);
      }
    }
  }

  return {
    closeAll() {
      for (const s of [...sockets]) if (s.open) s.ws?.close();
    },
  };
}
