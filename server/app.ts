// The HTTP and WebSocket front: the only file that imports uWebSockets.js at run time (the route modules under
// server/http/ import its types only). It builds the one access layer and the limits, registers the routes —
// the page (http/page.ts), the HTTP API (http/api.ts), `/ws` signaling (http/signaling-ws.ts), `/ws/chat`
// (http/chat-ws.ts), the OpenAI Realtime WebSocket `/v1/realtime` (http/realtime-ws.ts) and its WebRTC calls and
// client secrets (http/realtime-calls.ts) — listens, and closes. Errors become replies in one place, http/respond.ts.
import { randomBytes } from 'node:crypto';
import uWS from 'uWebSockets.js';
import { CallRegistry } from './calls.js';
import { EvaError } from './errors.js';
import { Access } from './http/access.js';
import { registerApi } from './http/api.js';
import { registerChat } from './http/chat-ws.js';
import type { AppDeps, RouteContext } from './http/context.js';
import { Limits } from './http/limits.js';
import { loadStatic, registerPage } from './http/page.js';
import { registerRealtimeCalls } from './http/realtime-calls.js';
import { registerRealtime } from './http/realtime-ws.js';
import { ClientSecrets } from './realtime/client-secrets.js';
import { registerSignaling } from './http/signaling-ws.js';

export type { AppDeps } from './http/context.js';

export interface EvaServer {
  port: number;
  calls: CallRegistry;
  close(): Promise<void>;
}

export async function startServer(deps: AppDeps): Promise<EvaServer> {
  const { config, log } = deps;
  const calls = new CallRegistry(config.maxCalls);
  const statics = await loadStatic(deps.clientDir, log);
  const access = new Access({ access: config.access, host: config.host, iceHosts: config.iceHosts, secret: deps.secret ?? randomBytes(32) });
  const limits = new Limits(config.limits, deps.metrics);
  /** After close(): connections that were already open (HTTP keep-alive) get 503 and are closed. */
  let closed = false;
  const ctx: RouteContext = {
    deps,
    log,
    access,
    limits,
    calls,
    get closed() {
      return closed;
    },
  };

  const app = uWS.App();
  registerPage(app, ctx, statics);
  const signaling = registerSignaling(app, ctx);
  const chat = registerChat(app, ctx);
  const secrets = new ClientSecrets((ttlMs) => access.signer.mintToken(ttlMs, Date.now()));
  const realtime = registerRealtime(app, ctx, { secrets });
  const realtimeCalls = registerRealtimeCalls(app, ctx, { secrets, otherSessions: () => realtime.size });
  registerApi(app, ctx); // last: it holds the catch-all 404

  const listen = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (sock) => (sock ? resolve(sock) : reject(new EvaError('internal', `cannot listen on ${config.host}:${config.port} (in use?)`))));
  });
  const port = uWS.us_socket_local_port(listen);
  access.setPort(port);
  return {
    port,
    calls,
    async close() {
      if (closed) return;
      closed = true;
      calls.closeAll('shutdown');
      uWS.us_listen_socket_close(listen);
      signaling.closeAll();
      chat.closeAll();
      realtime.closeAll();
      realtimeCalls.closeAll('shutdown');
    },
  };
}
