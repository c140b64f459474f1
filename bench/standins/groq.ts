// A stand-in for Groq's OpenAI-compatible API under /openai/v1, speaking the real wire protocol (SSE chat chunks
// ending in `data: [DONE]`, multipart transcriptions, WAV speech) so groq-sdk and plain OpenAI-style clients run
// against it unchanged. Latency follows a profile; replies are deterministic; failures can be injected.
import type http from 'node:http';
import { decodeWav, wavHeader } from '../../media/wav.js';
import { synthSpeech } from './audio.js';
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
  waitUntil,
  type ChatMessageLike,
  type FailSpec,
  type RequestContext,
  type StandinHandle,
} from './server.js';

export interface TranscriptInfo {
  /** Length of the uploaded audio (0 when it was not a PCM16 WAV). */
  durationMs: number;
  bytes: number;
  /** The other form fields (model, language, response_format, ...). */
  fields: Record<string, string>;
}

export interface GroqStandinOptions {
  host?: string;
  /** 0 (default) = any free port. */
  port?: number;
  /** A profile object, or a spec such as "groq,ttftMs=200". Default: instant. */
  profile?: LatencyProfile | string;
  /** The chat answer. Default: `You said: <last user message>. That is interesting, tell me more.` */
  reply?: (messages: ChatMessageLike[], body: Record<string, unknown>) => string;
  /** The transcription text, fixed or from the audio. Default: "Hello, this is a test." */
  transcript?: string | ((info: TranscriptInfo) => string);
  fail?: FailSpec | null;
  /** Models listed by GET /models; when given, other model names get 404 like the real API. */
  models?: string[];
  /** Speech sample rate when the request names none. Default 24000. */
  sampleRate?: number;
  maxBodyBytes?: number;
}

export interface GroqStandin extends StandinHandle {
  /** `url` + '/openai/v1': the base URL for OpenAI-compatible clients. */
  openaiUrl: string;
}

export const DEFAULT_TRANSCRIPT = 'Hello, this is a test.';
const DEFAULT_MODELS = ['llama-3.1-8b-instant', 'llama-3.3-70b-versatile', 'whisper-large-v3-turbo', 'whisper-large-v3', 'playai-tts'];
const PREFIX = '/openai/v1';
const SPEECH_RATES = new Set([8000, 16000, 22050, 24000, 32000, 44100, 48000]);

export async function start(opts: GroqStandinOptions = {}): Promise<GroqStandin> {
  const strict = opts.models !== undefined;
  const models = opts.models ?? DEFAULT_MODELS;
  const created = Math.floor(Date.now() / 1000);
  let seq = 0;

  const checkModel = (body: Record<string, unknown>): string => {
    const model = body.model;
    if (typeof model !== 'string' || model === '') throw new HttpError(400, "'model' is required");
    if (strict && !models.includes(model)) {
      throw new HttpError(404, `The model \`${model}\` does not exist or you do not have access to it.`, 'model_not_found');
    }
    return model;
  };

  async function chat(ctx: RequestContext): Promise<void> {
    const body = (ctx.rec.body ?? {}) as Record<string, unknown>;
    const model = checkModel(body);
    const messages = chatMessages(body);
    const text = opts.reply ? opts.reply(messages, body) : defaultReply(messages);
    const limit = body.max_completion_tokens ?? body.max_tokens;
    const maxTokens = typeof limit === 'number' && limit > 0 ? limit : undefined;
    const all = tokenize(text);
    const tokens = maxTokens !== undefined ? all.slice(0, maxTokens) : all;
    const finish = tokens.length < all.length ? 'length' : 'stop';
    const id = `chatcmpl-standin-${++seq}`;
    const usage = { prompt_tokens: promptTokens(messages), completion_tokens: tokens.length, total_tokens: promptTokens(messages) + tokens.length };
    const { res, signal, t0 } = ctx;

    if (body.stream !== true) {
      await waitUntil(t0, ctx.profile.ttftMs + durationOf(tokens.length, ctx.profile), signal);
      const json = JSON.stringify({
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: tokens.join('') }, logprobs: null, finish_reason: finish }],
        usage,
        system_fingerprint: 'fp_standin',
        x_groq: { id: `req_standin_${seq}` },
      });
      ctx.rec.status = 200;
      if (ctx.cut) return sendCut(res, 200, { 'content-type': 'application/json' }, json);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
      res.end(json);
      return;
    }

    const chunk = (delta: Record<string, unknown>, finishReason: string | null, extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        system_fingerprint: 'fp_standin',
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
        ...extra,
      })}\n\n`;
    // The real API sends its headers only with the first chunk, after the time to first token.
    const cutAfter = ctx.cut || ctx.stall ? Math.max(1, tokens.length >> 1) : Infinity;
    let sent = 0;
    for await (const batch of pace(tokens, t0, ctx.profile, signal)) {
      if (!res.headersSent) {
        ctx.rec.status = 200;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
        res.write(chunk({ role: 'assistant', content: '' }, null, { x_groq: { id: `req_standin_${seq}` } }));
      }
      let out = '';
      for (const tok of batch) {
        if (sent >= cutAfter) break;
        out += chunk({ content: tok }, null);
        sent++;
        // Mode 'malformed': after the first token, an event whose JSON breaks off.
        if (ctx.malformed && sent === 1) out += 'data: {"id":"chatcmpl-broken","choices":[{"delta":{"content":\n\n';
      }
      if (sent >= cutAfter) {
        if (ctx.stall) {
          res.write(out);
          return stallUntilClosed(signal);
        }
        // Let the tokens reach the client before the connection drops.
        res.write(out, () => res.destroy());
        return;
      }
      res.write(out);
    }
    if (!res.headersSent) {
      ctx.rec.status = 200;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      if (ctx.cut) {
        res.write(chunk({ role: 'assistant', content: '' }, null), () => res.destroy());
        return;
      }
      res.write(chunk({ role: 'assistant', content: '' }, null));
    }
    res.end(chunk({}, finish, { x_groq: { id: `req_standin_${seq}`, usage } }) + 'data: [DONE]\n\n');
  }

  async function transcription(ctx: RequestContext): Promise<void> {
    const form = ctx.form;
    if (!form) throw new HttpError(400, 'request must be multipart/form-data');
    const fields: Record<string, string> = {};
    for (const [k, v] of form.entries()) if (typeof v === 'string') fields[k] = v;
    checkModel(fields);
    const file = form.get('file');
    if (!file || typeof file === 'string') throw new HttpError(400, "'file' is required");
    const audio = Buffer.from(await file.arrayBuffer());
    let durationMs = 0;
    try {
      const wav = decodeWav(audio);
      durationMs = (wav.samples.length / wav.sampleRate) * 1000;
    } catch {
      // Not PCM16 WAV (mp3, flac...): the real API would decode it; the stand-in just cannot time it.
    }
    const text =
      typeof opts.transcript === 'function'
        ? opts.transcript({ durationMs, bytes: audio.length, fields })
        : (opts.transcript ?? DEFAULT_TRANSCRIPT);
    await waitUntil(ctx.t0, ctx.profile.sttMs, ctx.signal);
    if (ctx.stall) {
      ctx.rec.status = 200;
      ctx.res.writeHead(200, { 'content-type': 'application/json' });
      ctx.res.write('{"text": "');
      return stallUntilClosed(ctx.signal);
    }
    if (ctx.malformed) {
      ctx.rec.status = 200;
      const broken = '{"text": "Hello, this is';
      ctx.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(broken) });
      ctx.res.end(broken);
      return;
    }
    const format = fields.response_format ?? 'json';
    let body: string;
    let type = 'application/json';
    if (format === 'text') {
      body = text;
      type = 'text/plain; charset=utf-8';
    } else if (format === 'verbose_json') {
      body = JSON.stringify({
        task: 'transcribe',
        language: fields.language ?? 'english',
        duration: durationMs / 1000,
        text,
        segments: [{ id: 0, seek: 0, start: 0, end: durationMs / 1000, text, tokens: [], temperature: 0, avg_logprob: -0.1, compression_ratio: 1, no_speech_prob: 0.01 }],
        x_groq: { id: `req_standin_${++seq}` },
      });
    } else if (format === 'json') {
      body = JSON.stringify({ text, x_groq: { id: `req_standin_${++seq}` } });
    } else {
      throw new HttpError(400, `response_format must be json, text or verbose_json, got ${format}`);
    }
    ctx.rec.status = 200;
    if (ctx.cut) return sendCut(ctx.res, 200, { 'content-type': type }, body);
    ctx.res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    ctx.res.end(body);
  }

  async function speech(ctx: RequestContext): Promise<void> {
    const body = (ctx.rec.body ?? {}) as Record<string, unknown>;
    checkModel(body);
    if (typeof body.input !== 'string' || body.input.trim() === '') throw new HttpError(400, "'input' must be a non-empty string");
    if (body.input.length > 10_000) throw new HttpError(400, "'input' is longer than 10000 characters");
    if (typeof body.voice !== 'string' || body.voice === '') throw new HttpError(400, "'voice' is required");
    const format = body.response_format ?? 'wav';
    if (format !== 'wav' && format !== 'pcm') throw new HttpError(400, `response_format ${String(format)} is not supported by the stand-in (wav, pcm)`);
    const rate = typeof body.sample_rate === 'number' ? body.sample_rate : format === 'pcm' ? 24000 : (opts.sampleRate ?? 24000);
    if (!SPEECH_RATES.has(rate)) throw new HttpError(400, `sample_rate must be one of ${[...SPEECH_RATES].join(', ')}`);
    const samples = synthSpeech(body.input, rate);
    const pcm = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
    await waitUntil(ctx.t0, ctx.profile.ttsFirstMs, ctx.signal);
    const { res, signal } = ctx;
    ctx.rec.status = 200;
    res.writeHead(200, { 'content-type': format === 'wav' ? 'audio/wav' : 'audio/pcm', 'transfer-encoding': 'chunked' });
    // Mode 'malformed': what comes is not a WAV file.
    if (format === 'wav') res.write(ctx.malformed ? Buffer.from('<html><body>502 Bad Gateway</body></html>'.padEnd(44, ' ')) : wavHeader(pcm.length, rate));
    // 100 ms pieces; after the first, paced at ttsSpeed × real time (unlimited by default).
    const piece = Math.round(rate * 0.1) * 2;
    const speed = ctx.profile.ttsSpeed ?? Infinity;
    const tFirst = performance.now();
    const end = ctx.cut ? Math.max(piece, pcm.length >> 1) : pcm.length;
    for (let off = 0, i = 0; off < end; off += piece, i++) {
      if (i > 0 && Number.isFinite(speed)) await waitUntil(tFirst, (i * 100) / speed, signal);
      else if (i > 0 && i % 8 === 0) await new Promise((r) => setImmediate(r)); // let other requests run
      if (signal.aborted) return;
      const last = off + piece >= end;
      const bytes = pcm.subarray(off, Math.min(off + piece, end));
      // A cut lets the bytes reach the client before the connection drops.
      if (last && ctx.cut) res.write(bytes, () => res.destroy());
      else res.write(bytes);
      // Mode 'stall': the first 100 ms of audio, then silence on an open connection.
      if (ctx.stall) return stallUntilClosed(signal);
    }
    if (!ctx.cut) res.end();
  }

  function modelsList(ctx: RequestContext): void {
    const data = models.map((id) => ({ id, object: 'model', created, owned_by: 'Standin', active: true, context_window: 131072 }));
    sendJson(ctx, { object: 'list', data });
  }

  const core = await startCore(opts, {
    errorBody: (_status, message, kind) => ({ error: { message, type: kind === 'internal_server_error' ? 'internal_server_error' : 'invalid_request_error', code: kind } }),
    authorize(req: http.IncomingMessage) {
      const auth = req.headers.authorization;
      if (!auth || !/^Bearer\s+\S+/.test(auth)) return { status: 401, message: 'Invalid API Key', kind: 'invalid_api_key' };
      return null;
    },
    async handle(ctx) {
      const { method, path } = ctx.rec;
      const route = path.startsWith(PREFIX) ? path.slice(PREFIX.length) : null;
      if (method === 'POST' && route === '/chat/completions') return chat(ctx);
      if (method === 'POST' && route === '/audio/transcriptions') return transcription(ctx);
      if (method === 'POST' && route === '/audio/speech') return speech(ctx);
      if (method === 'GET' && route === '/models') return modelsList(ctx);
      throw new HttpError(404, `Unknown request URL: ${method} ${path}`, 'unknown_url');
    },
  });
  return Object.assign(core, { openaiUrl: core.url + PREFIX });
}

function sendJson(ctx: RequestContext, value: unknown): void {
  const json = JSON.stringify(value);
  ctx.rec.status = 200;
  if (ctx.cut) return sendCut(ctx.res, 200, { 'content-type': 'application/json' }, json);
  ctx.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  ctx.res.end(json);
}

function durationOf(tokens: number, p: LatencyProfile): number {
  return Number.isFinite(p.tokensPerSec) && p.tokensPerSec > 0 ? (Math.max(0, tokens - 1) * 1000) / p.tokensPerSec : 0;
}

function promptTokens(messages: readonly ChatMessageLike[]): number {
  return messages.reduce((n, m) => n + tokenize(m.content).length + 4, 0);
}
