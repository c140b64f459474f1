// The OpenAI Realtime API's HTTP routes (docs/realtime.md "WebRTC"):
// - `POST /v1/realtime/calls`: a WebRTC call. The body is the SDP offer (`application/sdp`), or a multipart form
//   with `sdp` and `session` (JSON settings) parts; the reply is 201 with the complete answer
//   (`application/sdp`, every candidate in it) and `Location: /v1/realtime/calls/{call_id}`. Events travel on
//   the `oai-events` data channel of the call (realtime/webrtc-call.ts).
// - `POST /v1/realtime/calls/{call_id}/hangup`: ends that call.
// - `POST /v1/realtime/client_secrets`: a short-lived `ek_` key for a browser, carrying session settings.
// Every route passes the one door (`admit`); calls count against EVA_MAX_CALLS and the per-client offer limits
// like `/ws` calls.
import type { TemplatedApp } from 'uWebSockets.js';
import type { CallEndReason } from '../call.js';
import { EvaError } from '../errors.js';
import { peerOptionsFor } from '../peer-options.js';
import { ClientSecrets, DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S } from '../realtime/client-secrets.js';
import { RealtimeError, applySessionUpdate, defaultSession, sessionJson } from '../realtime/protocol.js';
import { RealtimeCall } from '../realtime/webrtc-call.js';
import { authorizationSecret } from './access.js';
import { admit, callsFullRefusal, drainingRefusal, type RouteContext } from './context.js';
import { MAX_SDP_BYTES } from '../../media/sdp-check.js';
import { drainBody, onAbort, readBody, readJson, sendError, sendJson } from './respond.js';

/** A multipart form holds the offer and the session settings: room for both. */
const MAX_OFFER_BODY = 2 * MAX_SDP_BYTES;

export interface RealtimeCalls {
  readonly size: number;
  closeAll(reason: CallEndReason): void;
}

/** The offer and the form's session settings, from either body the API accepts. */
export async function parseOffer(contentType: string, body: Buffer): Promise<{ sdp: string; session?: Record<string, unknown> }> {
  if (/^\s*multipart\/form-data/i.test(contentType)) {
    let form: FormData;
    try {
      form = await new Response(body, { headers: { 'content-type': contentType } }).formData();
    } catch (err) {
      throw new EvaError('bad_request', `the multipart form could not be read (${(err as Error).message})`);
    }
    const sdp = form.get('sdp');
    if (typeof sdp !== 'string') throw new EvaError('bad_request', 'the multipart form needs an "sdp" part with the SDP offer');
    const raw = form.get('session');
    if (raw === null) return { sdp };
    let session: unknown;
    try {
      session = JSON.parse(typeof raw === 'string' ? raw : await raw.text());
    } catch {
      throw new EvaError('bad_request', 'the "session" part is not valid JSON');
    }
    if (typeof session !== 'object' || session === null || Array.isArray(session)) throw new EvaError('bad_request', 'the "session" part must be a JSON object');
    return { sdp, session: session as Record<string, unknown> };
  }
  if (contentType !== '' && !/^\s*application\/sdp/i.test(contentType)) {
    throw new EvaError('bad_request', `Content-Type ${contentType.slice(0, 60)} is not accepted: send the offer as application/sdp, or a multipart/form-data form with "sdp" and "session"`, { status: 415 });
  }
  return { sdp: body.toString('utf8') };
}

/** Session settings checked the way session.update checks them; a bad one is a 400 naming the field. */
function checkSession(ctx: RouteContext, model: string, session: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!session) return {};
  const { config } = ctx.deps;
  try {
    applySessionUpdate(defaultSession({ id: 'sess_check', model, instructions: config.systemPrompt, endOfTurnMs: config.turn.endOfTurnMs, threshold: config.turn.onThreshold }), session);
  } catch (err) {
    if (err instanceof RealtimeError) throw new EvaError('bad_request', `session: ${err.message}`);
    throw err;
  }
  return session;
}

export function registerRealtimeCalls(app: TemplatedApp, ctx: RouteContext, opts: { secrets: ClientSecrets; otherSessions: () => number }): RealtimeCalls {
  const { deps, log, limits, calls } = ctx;
  const { config } = deps;
  const open = new Map<string, RealtimeCall>();

  app.post('/v1/realtime/calls', (res, req) => {
    const ok = admit(ctx, res, req, 'auth');
    if (!ok) return;
    const contentType = req.getHeader('content-type');
    const presented = authorizationSecret(req.getHeader('authorization'));
    const queryModel = req.getQuery('model') ?? '';
    const aborted = onAbort(res, new AbortController());
    const refused = drainingRefusal(ctx, 'calls') ?? limits.offer(ok.client) ?? callsFullRefusal(ctx, opts.otherSessions());
    if (refused) {
      drainBody(res);
      sendError(res, refused, log, ok.headers);
      return;
    }
    readBody(res, req, aborted, MAX_OFFER_BODY)
      .then(async (body) => {
        const offer = await parseOffer(contentType, body);
        const model = (typeof offer.session?.model === 'string' && offer.session.model) || queryModel || 'eva';
        // The client secret's settings first, then the form's own.
        const initial = { ...opts.secrets.sessionFor(presented), ...checkSession(ctx, model, offer.session) };
        let counted = true;
        limits.callStarted(ok.client);
        const call = new RealtimeCall({
          vad: deps.vad,
          turn: config.turn,
          agent: deps.agent,
          log: log.child('rtc'),
          instructions: config.systemPrompt,
          model,
          initial,
          peer: peerOptionsFor(config, deps.worker?.index ?? 0),
          rtpMaxPps: limits.config.rtpMaxPps,
          dtx: config.opusDtx,
          onLimit: (limit) => limits.hit(limit),
          onClosed: (c) => {
            open.delete(c.id);
            calls.remove(c);
            deps.metrics?.callClosed();
            if (counted) limits.callEnded(ok.client);
            counted = false;
          },
        });
        open.set(call.id, call);
        calls.add(call);
        deps.metrics?.callOpened();
        let answer: string;
        try {
          answer = await call.answer(offer.sdp);
        } catch (err) {
          call.close('error');
          throw err;
        }
        if (aborted.value) {
          call.close('hangup');
          return;
        }
        res.cork(() => {
          res.writeStatus('201 Created').writeHeader('Content-Type', 'application/sdp').writeHeader('Location', `/v1/realtime/calls/${call.id}`);
          for (const [k, v] of Object.entries(ok.headers)) res.writeHeader(k, v);
          // A page on another origin reads the call id from Location (the agents SDK does).
          if (ok.headers['Access-Control-Allow-Origin']) res.writeHeader('Access-Control-Expose-Headers', 'Location');
          res.end(answer);
        });
      })
      .catch((err: unknown) => !aborted.value && sendError(res, err, log, ok.headers));
  });

  app.post('/v1/realtime/calls/:id/hangup', (res, req) => {
    const ok = admit(ctx, res, req, 'auth');
    if (!ok) return;
    drainBody(res);
    const call = open.get(req.getParameter(0) ?? '');
    if (!call) {
      sendJson(res, 404, { error: { code: 'not_found', message: 'no such call (it may have ended already)' } }, ok.headers);
      return;
    }
    call.close('hangup');
    sendJson(res, 200, {}, ok.headers);
  });

  app.post('/v1/realtime/client_secrets', (res, req) => {
    const ok = admit(ctx, res, req, 'key');
    if (!ok) return;
    const aborted = onAbort(res, new AbortController());
    readJson(res, req, aborted)
      .then((body) => {
        const b = (typeof body === 'object' && body !== null ? body : {}) as { expires_after?: { anchor?: unknown; seconds?: unknown }; session?: unknown };
        const seconds = b.expires_after?.seconds ?? DEFAULT_TTL_S;
        if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < MIN_TTL_S || seconds > MAX_TTL_S) {
          throw new EvaError('bad_request', `expires_after.seconds must be an integer from ${MIN_TTL_S} to ${MAX_TTL_S}`);
        }
        if (b.expires_after?.anchor !== undefined && b.expires_after.anchor !== 'created_at') throw new EvaError('bad_request', 'expires_after.anchor must be "created_at"');
        if (b.session !== undefined && (typeof b.session !== 'object' || b.session === null || Array.isArray(b.session))) throw new EvaError('bad_request', 'session must be an object');
        const session = (b.session ?? {}) as Record<string, unknown>;
        if (session.type !== undefined && session.type !== 'realtime') throw new EvaError('bad_request', 'EVA serves realtime sessions only (session.type "realtime"); transcription sessions are not supported');
        const model = typeof session.model === 'string' && session.model ? session.model : 'eva';
        checkSession(ctx, model, session);
        const { value, expiresAt } = opts.secrets.mint(session, seconds);
        const shown = applySessionUpdate(
          defaultSession({ id: 'sess_pending', model, instructions: config.systemPrompt, endOfTurnMs: config.turn.endOfTurnMs, threshold: config.turn.onThreshold }),
          session,
        );
        if (aborted.value) return;
        sendJson(res, 200, { value, expires_at: Math.floor(expiresAt / 1000), session: sessionJson(shown) }, { 'Cache-Control': 'no-store', ...ok.headers });
      })
      .catch((err: unknown) => !aborted.value && sendError(res, err, log, ok.headers));
  });

  return {
    get size() {
      return open.size;
    },
    closeAll(reason) {
      for (const c of [...open.values()]) c.close(reason);
    },
  };
}
