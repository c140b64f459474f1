// The HTTP API (docs/protocol.md "HTTP API"): /health, /session-token, /chat, /tts, /voices, /metrics, CORS preflights
// and the JSON 404 for everything else. Each handler passes the door (`admit`) first; the logic lives in the
// modules it calls (textapi.ts, the TTS provider, metrics.ts).
import type { TemplatedApp } from 'uWebSockets.js';
import { EvaError } from '../errors.js';
import { rateLimitedError } from '../ratelimit.js';
import { parseChatRequest } from '../textapi.js';
import { encodeWav } from '../../media/wav.js';
import type { WorkerStatus } from '../cluster-worker.js';
import { admit, type RouteContext } from './context.js';
import { drainBody, onAbort, readJson, requestInfo, sendError, sendJson, status } from './respond.js';

export function registerApi(app: TemplatedApp, ctx: RouteContext): void {
  const { deps, log, access, limits } = ctx;

  app.get('/health', (res, req) => {
    const ok = admit(ctx, res, req, 'open');
    if (!ok) return;
    // Without the key (when one is set) only the verdict: provider details name hosts and paths.
    const full = !access.keyRequired || ok.credential !== 'none';
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const parts = { media: { ok: true } } as Record<string, { ok: boolean; detail?: string; required?: boolean }>;
    const view = deps.worker;
    let workers: WorkerStatus[] | null = null;
    Promise.all([
      (deps.health ? deps.health() : Promise.resolve({})).then((extra) => Object.assign(parts, extra)),
      // Every worker's pid, calls, loop lag and state (EVA_WORKERS), gathered through the supervisor.
      full && view ? view.workers().then((w) => (workers = w)) : null,
    ])
      .catch((err: unknown) => log.warn('health check failed', { err }))
      .finally(() => {
        if (aborted) return;
        const healthy = Object.values(parts).every((p) => p.ok || p.required === false);
        // Draining answers 503 so that a load balancer stops sending new clients here.
        const verdict = view?.draining ? 'draining' : healthy ? 'ok' : 'degraded';
        const flat = Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, v.ok]));
        const list = workers as WorkerStatus[] | null;
        const calls = list ? list.reduce((n, w) => n + (w.calls ?? 0), 0) : ctx.calls.size;
        const body = full ? { status: verdict, ...flat, calls, providers: parts, ...(view && list && { worker: view.index, workers: list }) } : { status: verdict };
        sendJson(res, verdict === 'ok' ? 200 : 503, body, ok.headers);
      });
  });

  app.post('/session-token', (res, req) => {
    const ok = admit(ctx, res, req, 'key');
    if (!ok) return;
    drainBody(res);
    if (!access.keyRequired) {
      sendError(res, new EvaError('bad_request', 'EVA_API_KEY is not set: no token is needed', { status: 400 }), log, ok.headers);
      return;
    }
    const { token, expiresAt } = access.mintToken();
    sendJson(res, 200, { token, expires_at: new Date(expiresAt).toISOString(), expires_in: Math.round((expiresAt - Date.now()) / 1000) }, { 'Cache-Control': 'no-store', ...ok.headers });
  });

  if (deps.text) {
    const text = deps.text;
    app.post('/chat', (res, req) => {
      const ok = admit(ctx, res, req, 'auth');
      if (!ok) return;
      const ctrl = new AbortController();
      const aborted = onAbort(res, ctrl);
      const limited = deps.limiter?.take(ok.client);
      if (limited && !limited.ok) {
        limits.hit('text_api');
        drainBody(res);
        sendError(res, rateLimitedError(limited.retryAfterMs), log, ok.headers);
        return;
      }
      readJson(res, req, aborted)
        .then((body) => {
          const chat = parseChatRequest(body);
          return text.handleChat({ ...chat, sessionId: access.session(chat.sessionId, ok.owner) }, ctrl.signal);
        })
        .then((reply) => !aborted.value && sendJson(res, 200, reply, ok.headers))
        .catch((err: unknown) => !aborted.value && sendError(res, err, log, ok.headers));
    });
  }

  if (deps.tts) {
    const tts = deps.tts;
    app.post('/tts', (res, req) => {
      const ok = admit(ctx, res, req, 'auth');
      if (!ok) return;
      const ctrl = new AbortController();
      const aborted = onAbort(res, ctrl);
      const limited = limits.ttsRate(ok.client);
      if (limited) {
        drainBody(res);
        sendError(res, limited, log, ok.headers);
        return;
      }
      readJson(res, req, aborted)
        .then(async (body) => {
          const b = body as { text?: unknown; voice?: unknown };
          if (typeof b !== 'object' || b === null || typeof b.text !== 'string' || b.text.trim() === '') {
            throw new EvaError('bad_request', 'expected {"text": string, "voice"?: string}');
          }
          const tooLong = limits.ttsText(b.text.length);
          if (tooLong) throw tooLong;
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
          res.cork(() => {
            res.writeStatus('200 OK').writeHeader('Content-Type', 'audio/wav');
            for (const [k, v] of Object.entries(ok.headers)) res.writeHeader(k, v);
            res.end(wav);
          });
        })
        .catch((err: unknown) => !aborted.value && sendError(res, err, log, ok.headers));
    });

    app.get('/voices', (res, req) => {
      const ok = admit(ctx, res, req, 'auth');
      if (!ok) return;
      const aborted = onAbort(res, new AbortController());
      tts
        .voices()
        .then((voices) => !aborted.value && sendJson(res, 200, { provider: tts.name, voices }, ok.headers))
        .catch((err: unknown) => !aborted.value && sendError(res, err, log, ok.headers));
    });
  }

  if (deps.metrics) {
    const metrics = deps.metrics;
    app.get('/metrics', (res, req) => {
      const ok = admit(ctx, res, req, 'auth');
      if (!ok) return;
      const aborted = onAbort(res, new AbortController());
      // With EVA_WORKERS > 1: every worker's registry, aggregated (a `worker` label on per-process figures).
      (deps.worker ? deps.worker.metricsText() : metrics.text())
        .then((body) => {
          if (aborted.value) return;
          res.cork(() => res.writeHeader('Content-Type', metrics.contentType).end(body));
        })
        .catch((err: unknown) => !aborted.value && sendError(res, err, log));
    });
  }

  // Preflights, for pages on an EVA_ALLOWED_ORIGINS origin that send JSON or an Authorization header.
  app.options('/*', (res, req) => {
    const headers = access.preflight(requestInfo(res, req));
    if (!headers) {
      sendJson(res, 403, { error: { code: 'forbidden_origin', message: 'this origin is not in EVA_ALLOWED_ORIGINS' } });
      return;
    }
    res.cork(() => {
      res.writeStatus(status(204));
      for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
      res.end();
    });
  });

  // Unknown routes pass the door too, so a probe of /v1/… from a foreign page or without the key learns nothing.
  app.any('/*', (res, req) => {
    const url = req.getUrl();
    const method = req.getMethod().toUpperCase();
    const ok = admit(ctx, res, req, 'auth');
    if (!ok) return;
    if (method !== 'GET' && method !== 'HEAD') drainBody(res);
    sendJson(res, 404, { error: { code: 'not_found', message: `no route for ${method} ${url}` } }, ok.headers);
  });
}
