// A stand-in for Ollama's HTTP API, speaking its wire protocol (NDJSON chat/generate streams ending in a
// `done:true` object with durations and counts) so the real `ollama` npm client runs against it unchanged.
// It remembers which models are "loaded" and until when, from the keep_alive each request asked for.
import type { LatencyProfile } from './profile.js';
import {
  HttpError,
  chatMessages,
  defaultReply,
  pace,
  sendCut,
  stallUntilClosed,
  startCore,
  tokenize,
  type ChatMessageLike,
  type FailSpec,
  type RequestContext,
  type StandinHandle,
} from './server.js';

export interface OllamaStandinOptions {
  host?: string;
  /** 0 (default) = any free port. */
  port?: number;
  /** A profile object, or a spec such as "ollama-gpu,ttftMs=20". Default: instant. */
  profile?: LatencyProfile | string;
  /** The chat answer. Default: `You said: <last user message>. That is interesting, tell me more.` */
  reply?: (messages: ChatMessageLike[], body: Record<string, unknown>) => string;
  fail?: FailSpec | null;
  /** Installed models (GET /api/tags); others get 404 "not found, try pulling it first". Default ['llama3.2:latest']. */
  models?: string[];
  /** What GET /api/version reports. */
  version?: string;
  maxBodyBytes?: number;
}

export interface OllamaStandin extends StandinHandle {
  /** Loaded models and when they unload (ms epoch; Infinity = never), from the keep_alive requested. */
  loaded: Map<string, number>;
}

/** Ollama's default keep_alive: 5 minutes. */
const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000;

export async function start(opts: OllamaStandinOptions = {}): Promise<OllamaStandin> {
  const models = (opts.models ?? ['llama3.2:latest']).map(fullName);
  const loaded = new Map<string, number>();
  const ns = (ms: number): number => Math.round(ms * 1e6);

  const checkModel = (body: Record<string, unknown>): string => {
    if (typeof body.model !== 'string' || body.model === '') throw new HttpError(400, 'model is required');
    const name = fullName(body.model);
    if (!models.includes(name)) throw new HttpError(404, `model "${body.model}" not found, try pulling it first`);
    return body.model;
  };

  const touch = (model: string, keepAlive: unknown): void => {
    const ms = keepAliveMs(keepAlive);
    if (ms === 0) loaded.delete(fullName(model));
    else loaded.set(fullName(model), ms < 0 ? Infinity : Date.now() + ms);
  };

  /** Shared by /api/chat and /api/generate: `wrap` turns a text delta into that endpoint's object. */
  async function respond(ctx: RequestContext, model: string, messages: ChatMessageLike[], wrap: (text: string) => Record<string, unknown>): Promise<void> {
    const body = (ctx.rec.body ?? {}) as Record<string, unknown>;
    const text = opts.reply ? opts.reply(messages, body) : defaultReply(messages);
    const numPredict = (body.options as { num_predict?: unknown } | undefined)?.num_predict;
    const all = tokenize(text);
    const tokens = typeof numPredict === 'number' && numPredict > 0 ? all.slice(0, numPredict) : all;
    const doneReason = tokens.length < all.length ? 'length' : 'stop';
    const { res, signal, t0 } = ctx;
    const base = () => ({ model, created_at: new Date().toISOString() });
    const final = (content: string) => {
      const total = performance.now() - t0;
      return {
        ...base(),
        ...wrap(content),
        done: true,
        done_reason: doneReason,
        total_duration: ns(total),
        load_duration: ns(1),
        prompt_eval_count: messages.reduce((n, m) => n + tokenize(m.content).length + 4, 0),
        prompt_eval_duration: ns(Math.min(total, ctx.profile.ttftMs)),
        eval_count: tokens.length,
        eval_duration: ns(Math.max(0, total - ctx.profile.ttftMs)),
      };
    };

    if (body.stream === false) {
      for await (const _ of pace(tokens, t0, ctx.profile, signal)) {
        // wait out the profile's generation time
      }
      const json = JSON.stringify(final(tokens.join('')));
      ctx.rec.status = 200;
      if (ctx.cut) return sendCut(res, 200, { 'content-type': 'application/json; charset=utf-8' }, json);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) });
      res.end(json);
      return;
    }

    const head = (): void => {
      if (res.headersSent) return;
      ctx.rec.status = 200;
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    };
    const cutAfter = ctx.cut || ctx.stall ? Math.max(1, tokens.length >> 1) : Infinity;
    let sent = 0;
    for await (const batch of pace(tokens, t0, ctx.profile, signal)) {
      head();
      let out = '';
      for (const tok of batch) {
        if (sent >= cutAfter) break;
        out += JSON.stringify({ ...base(), ...wrap(tok), done: false }) + '\n';
        sent++;
        // Mode 'malformed': after the first token, a line that is not JSON, and the stream ends without `done`.
        if (ctx.malformed && sent === 1) {
          res.end(out + '{"model":"broken","message":{"content":\n');
          return;
        }
      }
      if (sent >= cutAfter && ctx.stall) {
        res.write(out);
        return stallUntilClosed(signal);
      }
      if (sent >= cutAfter) {
        // Let the lines reach the client before the connection drops.
        res.write(out, () => res.destroy());
        return;
      }
      res.write(out);
    }
    head();
    if (ctx.cut) {
      res.write('{"model":', () => res.destroy());
      return;
    }
    res.end(JSON.stringify(final('')) + '\n');
  }

  async function chat(ctx: RequestContext): Promise<void> {
    const body = (ctx.rec.body ?? {}) as Record<string, unknown>;
    const model = checkModel(body);
    const messages = chatMessages(body);
    touch(model, body.keep_alive);
    await respond(ctx, model, messages, (content) => ({ message: { role: 'assistant', content } }));
  }

  async function generate(ctx: RequestContext): Promise<void> {
    const body = (ctx.rec.body ?? {}) as Record<string, unknown>;
    const model = checkModel(body);
    touch(model, body.keep_alive);
    const prompt = typeof body.prompt === 'string' ? body.prompt : '';
    if (prompt === '') {
      // An empty prompt only loads (or, with keep_alive 0, unloads) the model.
      sendJson(ctx, { model, created_at: new Date().toISOString(), response: '', done: true, done_reason: keepAliveMs(body.keep_alive) === 0 ? 'unload' : 'load' });
      return;
    }
    await respond(ctx, model, [{ role: 'user', content: prompt }], (response) => ({ response }));
  }

  const details = { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '3.2B', quantization_level: 'Q4_K_M' };
  const digest = 'a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72';

  const core = await startCore(opts, {
    errorBody: (_status, message) => ({ error: message }),
    async handle(ctx) {
      const { method, path } = ctx.rec;
      if (method === 'POST' && path === '/api/chat') return chat(ctx);
      if (method === 'POST' && path === '/api/generate') return generate(ctx);
      if (method === 'GET' && path === '/api/version') return sendJson(ctx, { version: opts.version ?? '0.9.0' });
      if (method === 'GET' && path === '/api/tags') {
        const modified = new Date(0).toISOString();
        return sendJson(ctx, { models: models.map((name) => ({ name, model: name, modified_at: modified, size: 2019393189, digest, details })) });
      }
      if (method === 'GET' && path === '/api/ps') {
        const now = Date.now();
        for (const [m, until] of loaded) if (until <= now) loaded.delete(m);
        return sendJson(ctx, {
          models: [...loaded].map(([name, until]) => ({
            name,
            model: name,
            size: 3_500_000_000,
            digest,
            details,
            expires_at: new Date(Number.isFinite(until) ? until : Date.UTC(2318, 0, 1)).toISOString(),
            size_vram: 3_500_000_000,
          })),
        });
      }
      if ((method === 'GET' || method === 'HEAD') && path === '/') {
        ctx.rec.status = 200;
        ctx.res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        ctx.res.end('Ollama is running');
        return;
      }
      throw new HttpError(404, '404 page not found');
    },
  });
  return Object.assign(core, { loaded });
}

function sendJson(ctx: RequestContext, value: unknown): void {
  const json = JSON.stringify(value);
  ctx.rec.status = 200;
  if (ctx.cut) return sendCut(ctx.res, 200, { 'content-type': 'application/json; charset=utf-8' }, json);
  ctx.res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) });
  ctx.res.end(json);
}

/** "llama3.2" and "llama3.2:latest" are the same model to Ollama. */
export function fullName(model: string): string {
  return model.includes(':') ? model : `${model}:latest`;
}

/**
 * keep_alive as Ollama reads it: a number of seconds, or a Go duration ("30s", "5m", "1h", "-1"); negative means
 * forever, 0 unloads now, unset means the 5-minute default. Returns ms (negative = forever).
 */
export function keepAliveMs(v: unknown): number {
  if (v === undefined || v === null || v === '') return DEFAULT_KEEP_ALIVE_MS;
  if (typeof v === 'number') return v < 0 ? -1 : v * 1000;
  const m = /^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(v).trim());
  if (!m) throw new HttpError(400, `invalid keep_alive ${JSON.stringify(v)}`);
  const n = Number(m[1]);
  if (n < 0) return -1;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return n * unit;
}
