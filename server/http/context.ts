// What every route module shares: the server's dependencies, the access and limits layers, and the door every
// HTTP request and upgrade passes (`admit`), so each rule is written once.
import type { HttpRequest, HttpResponse, us_socket_context_t } from 'uWebSockets.js';
import type { AgentFactory } from '../agent.js';
import type { CallRegistry } from '../calls.js';
import type { EvaConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { TtsProvider } from '../providers/types.js';
import type { RateLimiter } from '../ratelimit.js';
import type { TextApi } from '../textapi.js';
import type { VadEngine } from '../../media/vad.js';
import type { WorkerView } from '../cluster-worker.js';
import { EvaError } from '../errors.js';
import type { Access, Admitted, Need } from './access.js';
import type { Limits } from './limits.js';
import { drainBody, requestInfo, sendError, sendRefusal } from './respond.js';

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
  /** What session ids and tokens are signed with (tokens.ts `loadSecret`); default: random for this process. */
  secret?: Buffer;
  /** This process's place in the server (EVA_WORKERS): draining, and the whole server's /metrics and /health. */
  worker?: WorkerView;
}

export interface RouteContext {
  deps: AppDeps;
  log: Logger;
  access: Access;
  limits: Limits;
  calls: CallRegistry;
  /** True once close() began. */
  readonly closed: boolean;
}

/**
 * The door: after close() a 503; then the access rules (Host, Origin, credentials). A refusal is answered here
 * and null returned. Synchronous, in the handler, as uWS requires for `req`.
 */
export function admit(ctx: RouteContext, res: HttpResponse, req: HttpRequest, need: Need): Admitted | null {
  if (ctx.closed) {
    res.cork(() => {
      res
        .writeStatus('503 Service Unavailable')
        .writeHeader('Content-Type', 'application/json')
        .writeHeader('Connection', 'close')
        .end(JSON.stringify({ error: { code: 'shutting_down', message: 'EVA is shutting down' } }), true);
    });
    return null;
  }
  const info = requestInfo(res, req);
  const decision = ctx.access.check(info, need);
  if (decision.ok) return decision;
  ctx.deps.metrics?.accessRefused(decision.code);
  ctx.log.debug('refused', { code: decision.code, method: info.method, path: info.path, origin: info.origin.slice(0, 80), host: info.host.slice(0, 80) });
  if (info.method !== 'GET' && info.method !== 'HEAD') drainBody(res);
  sendRefusal(res, decision);
  return null;
}

/**
 * The door for a WebSocket upgrade: `admit`, then the socket caps (global and per client). A refusal is answered
 * here and null returned; on success the caller upgrades and calls `limits.socketOpened` in `open`.
 */
export function admitUpgrade(ctx: RouteContext, res: HttpResponse, req: HttpRequest): Admitted | null {
  const ok = admit(ctx, res, req, 'auth');
  if (!ok) return null;
  const draining = drainingRefusal(ctx, 'connections');
  if (draining) {
    sendError(res, draining, ctx.log);
    return null;
  }
  const full = ctx.limits.canOpenSocket(ok.client);
  if (full) {
    sendError(res, full, ctx.log);
    return null;
  }
  return ok;
}

/** Completes an admitted upgrade with the socket's data, answering the subprotocol the door chose. */
export function upgrade<T>(res: HttpResponse, req: HttpRequest, context: us_socket_context_t, ok: Admitted, data: T): void {
  res.upgrade<T>(data, req.getHeader('sec-websocket-key'), ok.protocol, req.getHeader('sec-websocket-extensions'), context);
}

/** While this process drains (SIGTERM, EVA_DRAIN_S): the refusal of new `what`; otherwise null. */
export function drainingRefusal(ctx: RouteContext, what: 'calls' | 'connections'): EvaError | null {
  return ctx.deps.worker?.draining ? new EvaError('shutting_down', `EVA is draining: no new ${what} here; try again`, { status: 503, retryable: true }) : null;
}

/** EVA_MAX_CALLS: with `others` sessions that count as calls besides the registry's, the refusal (counted) or null. */
export function callsFullRefusal(ctx: RouteContext, others = 0): EvaError | null {
  const { calls } = ctx;
  if (calls.size + others < calls.max) return null;
  ctx.limits.hit('max_calls');
  return new EvaError('rate_limited', `the server is at its limit of ${calls.max} calls; try again later`, { retryable: true });
}
