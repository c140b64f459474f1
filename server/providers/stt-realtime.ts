// Streaming STT over the OpenAI Realtime *transcription* protocol (GA event names) on a WebSocket: OpenAI itself
// (wss://api.openai.com/v1/realtime?intent=transcription), speaches, LocalAI. Audio goes up as the person talks
// (16 kHz in, Speex-resampled to the protocol's 24 kHz PCM16, base64 `input_audio_buffer.append`); each
// `input_audio_buffer.commit` closes one piece, and its `...input_audio_transcription.completed` is the answer.
//
// Lifecycle. A stream is one socket and one server session, connected the moment it is opened, carrying any number
// of commits (one per turn): a call opens one when it starts, so the ~1 RTT (+TLS) connect is long paid before the
// first end of speech, and each turn costs only its commit → completed. The stream's signal closes it (give it the
// call's signal, not a turn's). Segment transcribe() keeps one warm stream of its own, reused across segments and
// calls, closed after IDLE_MS unused or by close(). A stream that fails stays failed (`failed`): the caller opens a
// new one or falls back to segment STT; the warm stream is replaced on the next transcribe().
//
// Matching answers to commits: commits are answered in order, so each `input_audio_buffer.committed` names the item
// of the oldest unanswered commit; deltas and the completed event carry that item id. Models that stream while audio
// arrives send deltas before the commit, for an item not yet named: they go to onPartial all the same.
import WebSocket from 'ws';
import { createResampler, type Resampler } from '../../media/resample.js';
import { ProviderError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { abortError, errorDetail, providerError, statusError, throwIfAborted } from './http-util.js';
import type { ProviderHealth, SttOptions, SttResult, SttStream, StreamingSttProvider } from './types.js';

export interface RealtimeSttOptions {
  /** ws(s)://host:port/v1/realtime (http(s) and a bare host are accepted; `?intent=transcription` is added). Default: EVA_STT_URL. */
  url?: string;
  /** Sent as `Authorization: Bearer` when set. Default: EVA_STT_API_KEY. */
  apiKey?: string;
  /** Transcription model. Default: EVA_STT_MODEL, else 'gpt-live-transcribe' (OpenAI's streaming one). */
  model?: string;
  /** ISO-639-1 code used when a call names none. */
  language?: string;
  /** Vocabulary/context hint for the model. */
  prompt?: string;
  /** commit() → completed deadline, ms. Default 5000: a local model answers in ~30–300 ms, OpenAI in ~0.3–1 s. */
  commitTimeoutMs?: number;
  /** Socket open deadline, ms. Default 5000. */
  connectTimeoutMs?: number;
  /** health() deadline, ms. Default 2000. */
  healthTimeoutMs?: number;
  /** Audio held while the socket or resampler is not ready, ms of 16 kHz; the oldest is dropped beyond. Default 30 000. */
  maxPendingMs?: number;
  /** Adapter name in errors and metrics. Default 'realtime'. */
  name?: string;
  log?: Logger;
}

const IN_RATE = 16000;
const OUT_RATE = 24000;
/** OpenAI refuses commits of under 100 ms (`input_audio_buffer_commit_empty`): shorter pieces are cleared instead. */
const MIN_COMMIT_SAMPLES = IN_RATE / 10;
/** The warm segment socket is closed after a minute unused (OpenAI bills audio, not sockets; idle ones get reaped). */
const IDLE_MS = 60_000;
const MAX_FRAME = 16 * 1024 * 1024;
/** Partial texts kept for items not yet answered (a bound for servers that never complete). */
const MAX_ITEMS = 32;

/** The Realtime URL from what a person may write: ws(s)/http(s), with or without `/v1/realtime`. */
export function realtimeUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(raw)}`);
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`not a ws(s) URL: ${JSON.stringify(raw)}`);
  const path = u.pathname.replace(/\/+$/, '');
  if (path === '') u.pathname = '/v1/realtime';
  else if (path.endsWith('/v1')) u.pathname = path + '/realtime';
  if (!u.searchParams.has('intent')) u.searchParams.set('intent', 'transcription');
  return u.toString();
}

interface StreamConfig {
  name: string;
  url: string;
  headers: Record<string, string>;
  model: string;
  prompt?: string;
  commitTimeoutMs: number;
  connectTimeoutMs: number;
  maxPendingSamples: number;
  log: Logger;
}

export class RealtimeStt implements StreamingSttProvider {
  readonly name: string;
  readonly url: string;
  readonly model: string;
  private readonly cfg: StreamConfig;
  private readonly language?: string;
  private readonly healthTimeoutMs: number;
  private warm: RealtimeStream | null = null;
  private idle: NodeJS.Timeout | null = null;

  constructor(opts: RealtimeSttOptions = {}) {
    this.name = opts.name ?? 'realtime';
    const raw = opts.url ?? process.env.EVA_STT_URL;
    if (!raw) throw new Error('stt realtime: no server URL (set EVA_STT_URL, e.g. ws://127.0.0.1:8000/v1/realtime)');
    this.url = realtimeUrl(raw);
    this.model = opts.model ?? (process.env.EVA_STT_MODEL || 'gpt-live-transcribe');
    const key = opts.apiKey ?? process.env.EVA_STT_API_KEY;
    this.language = opts.language;
    this.healthTimeoutMs = opts.healthTimeoutMs ?? 2000;
    this.cfg = {
      name: this.name,
      url: this.url,
      headers: key ? { authorization: `Bearer ${key}` } : {},
      model: this.model,
      prompt: opts.prompt,
      commitTimeoutMs: opts.commitTimeoutMs ?? 5000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
      maxPendingSamples: Math.round(((opts.maxPendingMs ?? 30_000) * IN_RATE) / 1000),
      log: opts.log ?? createLogger(`stt.${this.name}`),
    };
  }

  openStream({ signal, language }: SttOptions): SttStream {
    return new RealtimeStream(this.cfg, signal, language ?? this.language);
  }

  /** Segment mode: the whole segment up, one commit, on the warm socket (opened here if there is none). */
  async transcribe(pcm16k: Int16Array, { signal, language }: SttOptions): Promise<SttResult> {
    throwIfAborted(signal);
    if (pcm16k.length < MIN_COMMIT_SAMPLES) return { text: '' };
    const lang = language ?? this.language;
    if (!this.warm || this.warm.failed) {
      this.warm?.close();
      this.warm = new RealtimeStream(this.cfg, undefined, lang);
    }
    const stream = this.warm;
    stream.setLanguage(lang);
    stream.push(pcm16k);
    const done = stream.commit();
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => this.closeWarm(), IDLE_MS);
    this.idle.unref();
    return settleOrAbort(done, signal);
  }

  /** Connects and waits for the server's session.created/updated within healthTimeoutMs. */
  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    const ms = this.healthTimeoutMs;
    const deadline = AbortSignal.timeout(ms);
    const stream = new RealtimeStream(this.cfg, signal ? AbortSignal.any([signal, deadline]) : deadline, this.language);
    try {
      await stream.ready();
      return { ok: true, detail: `${this.url} (${this.model})` };
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      if (deadline.aborted) return { ok: false, detail: `no session.created within ${ms} ms` };
      return { ok: false, detail: (err as Error).message };
    } finally {
      stream.close();
    }
  }

  close(): void {
    this.closeWarm();
  }

  private closeWarm(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.warm?.close();
    this.warm = null;
  }
}

/** `p`'s outcome, or the abort as soon as `signal` fires (the commit is then answered into the void). */
function settleOrAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

interface Pending {
  eventId: string;
  itemId: string | null;
  resolve(r: SttResult): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** What waits to go up, in order: audio, commits and clears must keep their order across the async start. */
type Op = { kind: 'audio'; pcm: Int16Array } | { kind: 'commit'; p: Pending } | { kind: 'clear' } | { kind: 'config' };

interface ServerError {
  type?: string;
  code?: string;
  message?: string;
  event_id?: string | null;
}

class RealtimeStream implements SttStream {
  onPartial?: (text: string) => void;
  private readonly ws: WebSocket;
  private readonly signal?: AbortSignal;
  private language?: string;
  private resampler: Resampler | null = null;
  private socketOpen = false;
  private sessionSeen = false;
  private waiters: { resolve(): void; reject(e: Error): void }[] = [];
  private queue: Op[] = [];
  private queuedSamples = 0;
  /** 16 kHz samples pushed since the last commit/clear: decides whether a commit is worth sending. */
  private pieceSamples = 0;
  private sentSincePiece = false;
  /** Commits sent, in order, whose `committed` has not come yet. */
  private uncommitted: Pending[] = [];
  private byItem = new Map<string, Pending>();
  private texts = new Map<string, string>();
  private dropping = false;
  private error: Error | null = null;
  private seq = 0;

  constructor(private readonly cfg: StreamConfig, signal: AbortSignal | undefined, language: string | undefined) {
    this.signal = signal;
    this.language = language;
    this.ws = new WebSocket(cfg.url, { headers: cfg.headers, handshakeTimeout: cfg.connectTimeoutMs, maxPayload: MAX_FRAME, perMessageDeflate: false });
    this.ws.on('open', () => {
      this.socketOpen = true;
      this.send({ type: 'session.update', event_id: `evt_eva_session_${++this.seq}`, session: this.session() });
      this.drain();
    });
    this.ws.on('message', (data, isBinary) => {
      if (!isBinary) this.onEvent(String(data));
    });
    this.ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 4096) body += c;
      });
      res.on('end', () => {
        this.fail(statusError(cfg.name, res.statusCode ?? 0, errorDetail(body)));
      });
      res.on('error', () => this.fail(statusError(cfg.name, res.statusCode ?? 0, '')));
    });
    this.ws.on('error', (err) => this.fail(providerError(cfg.name, err, undefined, /handshake has timed out/i.test(err.message))));
    this.ws.on('close', (code, reason) => {
      const why = reason.length ? `: ${reason.toString('utf8').slice(0, 200)}` : '';
      this.fail(new ProviderError(cfg.name, 'provider_unavailable', `socket closed (${code}${why})`, { retryable: true }));
    });
    createResampler(IN_RATE, OUT_RATE).then(
      (r) => {
        if (this.error) return r.destroy();
        this.resampler = r;
        this.drain();
      },
      (err: unknown) => this.fail(new ProviderError(cfg.name, 'provider_error', `resampler: ${(err as Error).message}`, { cause: err })),
    );
    if (signal?.aborted) this.close();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  get failed(): boolean {
    return this.error !== null;
  }

  push(pcm16k: Int16Array): void {
    if (this.error || pcm16k.length === 0) return;
    this.queue.push({ kind: 'audio', pcm: pcm16k.slice() });
    this.queuedSamples += pcm16k.length;
    this.pieceSamples += pcm16k.length;
    while (this.queuedSamples > this.cfg.maxPendingSamples) {
      const excess = this.queuedSamples - this.cfg.maxPendingSamples;
      const i = this.queue.findIndex((op) => op.kind === 'audio');
      const op = this.queue[i] as { kind: 'audio'; pcm: Int16Array };
      const n = Math.min(excess, op.pcm.length);
      if (n === op.pcm.length) this.queue.splice(i, 1);
      else op.pcm = op.pcm.subarray(n);
      this.queuedSamples -= n;
      if (!this.dropping) this.cfg.log.warn('socket not ready: dropping the oldest pending audio', { maxPendingMs: (this.cfg.maxPendingSamples * 1000) / IN_RATE });
      this.dropping = true;
    }
    this.drain();
  }

  commit(): Promise<SttResult> {
    if (this.error) return Promise.reject(this.error);
    if (this.pieceSamples < MIN_COMMIT_SAMPLES) {
      if (this.pieceSamples > 0) this.clear();
      return Promise.resolve({ text: '' });
    }
    this.pieceSamples = 0;
    return new Promise<SttResult>((resolve, reject) => {
      const ms = this.cfg.commitTimeoutMs;
      const p: Pending = {
        eventId: `evt_eva_${++this.seq}`,
        itemId: null,
        resolve,
        reject,
        timer: setTimeout(() => this.fail(new ProviderError(this.cfg.name, 'provider_timeout', `no transcript within ${ms} ms of the commit`, { retryable: true })), ms),
      };
      this.queue.push({ kind: 'commit', p });
      this.drain();
    });
  }

  clear(): void {
    if (this.error) return;
    // Audio of this piece still waiting here never goes up; what went up already is cleared on the server.
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.kind === 'audio') i--;
    for (const op of this.queue.splice(i)) if (op.kind === 'audio') this.queuedSamples -= op.pcm.length;
    this.pieceSamples = 0;
    this.queue.push({ kind: 'clear' });
    this.drain();
  }

  /** Segment mode across calls: a different language is a session.update before the next audio. */
  setLanguage(language: string | undefined): void {
    if (language === this.language) return;
    this.language = language;
    this.queue.push({ kind: 'config' });
    this.drain();
  }

  /** Resolves at the server's first session.created/updated; rejects if the stream fails first. */
  ready(): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (this.sessionSeen) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  close(): void {
    this.fail(abortError(this.signal?.aborted ? this.signal : undefined));
  }

  private readonly onAbort = (): void => this.close();

  private session(): Record<string, unknown> {
    const transcription: Record<string, unknown> = { model: this.cfg.model };
    if (this.language) transcription.language = this.language;
    if (this.cfg.prompt) transcription.prompt = this.cfg.prompt;
    return { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: OUT_RATE }, transcription, turn_detection: null } } };
  }

  private send(event: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(event));
  }

  private append(pcm24k: Int16Array): void {
    if (pcm24k.length === 0) return;
    this.send({ type: 'input_audio_buffer.append', audio: Buffer.from(pcm24k.buffer, pcm24k.byteOffset, pcm24k.byteLength).toString('base64') });
    this.sentSincePiece = true;
  }

  /** Send what is queued, in order, once both the socket and the resampler are up. */
  private drain(): void {
    const r = this.resampler;
    if (!this.socketOpen || !r || this.error) return;
    this.dropping = false;
    for (const op of this.queue.splice(0)) {
      switch (op.kind) {
        case 'audio':
          this.queuedSamples -= op.pcm.length;
          this.append(r.process(op.pcm));
          break;
        case 'commit':
          this.append(r.flush()); // the filter's tail belongs to this piece
          this.send({ type: 'input_audio_buffer.commit', event_id: op.p.eventId });
          this.sentSincePiece = false;
          this.uncommitted.push(op.p);
          break;
        case 'clear':
          r.flush(); // drop the tail: nothing of the cleared piece leaks into the next
          if (this.sentSincePiece) this.send({ type: 'input_audio_buffer.clear' });
          this.sentSincePiece = false;
          break;
        case 'config':
          this.send({ type: 'session.update', event_id: `evt_eva_session_${++this.seq}`, session: this.session() });
          break;
        default: {
          const never: never = op;
          throw new Error(`unknown op ${JSON.stringify(never)}`);
        }
      }
    }
  }

  private onEvent(raw: string): void {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      this.cfg.log.warn('unparsable server event', { raw: raw.slice(0, 200) });
      return;
    }
    const itemId = typeof e.item_id === 'string' ? e.item_id : '';
    switch (e.type) {
      case 'session.created':
      case 'session.updated':
        this.sessionSeen = true;
        for (const w of this.waiters.splice(0)) w.resolve();
        return;
      case 'input_audio_buffer.committed': {
        const p = this.uncommitted.shift();
        if (p) this.bind(p, itemId);
        return;
      }
      case 'conversation.item.input_audio_transcription.delta': {
        if (typeof e.delta !== 'string' || e.delta === '') return;
        const text = (this.texts.get(itemId) ?? '') + e.delta;
        this.texts.set(itemId, text);
        if (this.texts.size > MAX_ITEMS) this.texts.delete(this.texts.keys().next().value!);
        this.safePartial(text.trim());
        return;
      }
      case 'conversation.item.input_audio_transcription.completed': {
        const p = this.pendingFor(itemId);
        this.texts.delete(itemId);
        if (!p) return;
        this.settle(p);
        p.resolve({ text: typeof e.transcript === 'string' ? e.transcript.trim() : '', ...(this.language ? { language: this.language } : {}) });
        return;
      }
      case 'conversation.item.input_audio_transcription.failed': {
        const p = this.pendingFor(itemId);
        this.texts.delete(itemId);
        if (!p) return;
        const err = (e.error ?? {}) as ServerError;
        this.settle(p);
        p.reject(new ProviderError(this.cfg.name, 'provider_error', `transcription failed: ${err.message ?? err.code ?? 'no reason given'}`, { retryable: true }));
        return;
      }
      case 'error':
        return this.onError((e.error ?? {}) as ServerError);
      default:
        return; // cleared, speech_started, conversation.item.added...: nothing to do
    }
  }

  private onError(err: ServerError): void {
    const message = err.message ?? err.code ?? 'unknown error';
    const i = err.event_id ? this.uncommitted.findIndex((p) => p.eventId === err.event_id) : -1;
    if (i >= 0) {
      const [p] = this.uncommitted.splice(i, 1);
      this.settle(p!);
      if (err.code === 'input_audio_buffer_commit_empty') p!.resolve({ text: '' });
      else p!.reject(new ProviderError(this.cfg.name, 'provider_error', message, { retryable: err.type === 'server_error' }));
      return;
    }
    // A refused session.update (unknown model, format) leaves nothing worth committing to.
    const refusedConfig = err.event_id?.startsWith('evt_eva_session_') ?? false;
    if (refusedConfig || !this.sessionSeen || err.type === 'server_error' || err.code === 'session_expired' || err.code === 'invalid_api_key') {
      this.fail(new ProviderError(this.cfg.name, 'provider_error', message, { retryable: err.type === 'server_error' || err.code === 'session_expired' }));
      return;
    }
    this.cfg.log.warn('server error event', { code: err.code, message });
  }

  /** The commit an answer is for: by item id, else (a server that sends no `committed`) the oldest one sent. */
  private pendingFor(itemId: string): Pending | undefined {
    const p = this.byItem.get(itemId);
    if (p) return p;
    const oldest = this.uncommitted.shift();
    if (oldest) this.bind(oldest, itemId);
    return oldest;
  }

  private bind(p: Pending, itemId: string): void {
    p.itemId = itemId;
    this.byItem.set(itemId, p);
  }

  private settle(p: Pending): void {
    clearTimeout(p.timer);
    if (p.itemId !== null) this.byItem.delete(p.itemId);
  }

  private safePartial(text: string): void {
    if (!this.onPartial || text === '') return;
    try {
      this.onPartial(text);
    } catch (err) {
      this.cfg.log.warn('onPartial threw', { err });
    }
  }

  /** The one way down: every pending commit rejects with `err`, the socket and the resampler go. Idempotent. */
  private fail(err: Error): void {
    if (this.error) return;
    this.error = err;
    this.signal?.removeEventListener('abort', this.onAbort);
    const pending = new Set<Pending>([...this.uncommitted, ...this.byItem.values()]);
    for (const op of this.queue) if (op.kind === 'commit') pending.add(op.p);
    this.queue = [];
    this.queuedSamples = 0;
    this.uncommitted = [];
    this.byItem.clear();
    this.texts.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.resampler?.destroy();
    this.resampler = null;
    this.ws.terminate();
  }
}
