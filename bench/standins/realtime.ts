// A stand-in for a Realtime *transcription* server (OpenAI's GA protocol, also served by speaches and LocalAI) on
// loopback: WebSocket `/v1/realtime`, JSON events, PCM16 24 kHz base64 audio. It validates what clients send the way
// OpenAI does (an `error` event, never a disconnect), streams `...transcription.delta` events while audio arrives
// (one word per WORD_MS of audio: a prefix of the item's transcript), and on commit answers
// `input_audio_buffer.committed`, then the rest of the text and `...transcription.completed` finalMs later.
// Failures can be injected; every session and event is recorded for assertions. No server VAD: commits are the
// client's (turn_detection is recorded, not acted on).
import http from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { parseProfile, type LatencyProfile } from './profile.js';
import { listenLoopback } from './server.js';

export interface RealtimeProfile {
  /** A delta at most this often while audio is being appended (only when new words are due). */
  partialEveryMs: number;
  /** Commit received → completed sent. */
  finalMs: number;
}

/** A local streaming Whisper on a GPU: partials every 100 ms, the final 30 ms after the commit. */
export const LOCAL_STREAM_STT: Readonly<RealtimeProfile> = Object.freeze({ partialEveryMs: 100, finalMs: 30 });

export const REALTIME_PROFILES: Readonly<Record<string, Readonly<RealtimeProfile>>> = Object.freeze({
  instant: Object.freeze({ partialEveryMs: 100, finalMs: 0 }),
  'local-stream': LOCAL_STREAM_STT,
});

/** `"local-stream"`, `"local-stream,finalMs=80"`, `"partialEveryMs=50,finalMs=10"` (on top of `instant`). */
export function parseRealtimeProfile(spec: string): RealtimeProfile {
  let p: RealtimeProfile = { ...REALTIME_PROFILES.instant! };
  spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .forEach((part, i) => {
      const eq = part.indexOf('=');
      if (eq < 0) {
        const named = REALTIME_PROFILES[part];
        if (!named || i !== 0) throw new Error(`unknown realtime profile ${JSON.stringify(part)}; known: ${Object.keys(REALTIME_PROFILES).join(', ')} (name first)`);
        p = { ...named };
        return;
      }
      const key = part.slice(0, eq).trim();
      const n = Number(part.slice(eq + 1).trim());
      if (key !== 'partialEveryMs' && key !== 'finalMs') throw new Error(`unknown realtime profile key ${JSON.stringify(key)}; known: partialEveryMs, finalMs`);
      if (!Number.isFinite(n) || n < 0 || n > 60_000 || (key === 'partialEveryMs' && n < 10)) throw new Error(`${key} out of range: ${part}`);
      p[key] = n;
    });
  return p;
}

export type RealtimeFail =
  /** The socket is destroyed when the first append of a session arrives. */
  | 'drop-after-append'
  /** A commit is answered with an `error` event (server_error) naming the commit's event_id. */
  | 'error-on-commit'
  /** A commit is answered with `committed`, then `...transcription.failed`. */
  | 'transcription-failed'
  /** Commits get no answer at all (the session stays open). */
  | 'hang';

export interface TranscriptInfo {
  /** 0 for the first item of the session. */
  itemIndex: number;
  /** Audio in this item so far (all of it, at commit). */
  audioMs: number;
  /** Audio appended in the whole session so far. */
  totalAudioMs: number;
}

export interface RealtimeStandinOptions {
  host?: string;
  port?: number;
  /** Its own shape, a bench LatencyProfile (`sttMs` is the final's delay) or a spec of either kind. Default: instant. */
  profile?: RealtimeProfile | LatencyProfile | string;
  /** Default: "Hello, this is a test." */
  transcript?: string | ((info: TranscriptInfo) => string);
  /** When set, the upgrade needs `Authorization: Bearer <apiKey>`; else any Bearer (or none) is accepted. */
  apiKey?: string;
  fail?: RealtimeFail | null;
}

export interface RecordedEvent {
  /** performance.now() on arrival (client events) or on sending (server events). */
  at: number;
  dir: 'in' | 'out';
  type: string;
  /** The event as parsed/sent; an append's `audio` is replaced by its byte count (`audioBytes`). */
  event: Record<string, unknown>;
}

export interface RecordedItem {
  itemId: string;
  audioMs: number;
  transcript: string;
  /** performance.now() of the commit and of the completed event (unset while pending / when never sent). */
  committedAt: number;
  completedAt?: number;
}

export interface RecordedSession {
  id: string;
  /** Path and query of the upgrade request. */
  url: string;
  headers: http.IncomingHttpHeaders;
  at: number;
  /** The `session` of the last session.update (merged), as the client sent it. */
  config: Record<string, unknown> | null;
  events: RecordedEvent[];
  items: RecordedItem[];
  /** Total PCM16 24 kHz audio appended, in ms. */
  audioMs: number;
  closed: boolean;
}

export interface RealtimeStandin {
  /** e.g. ws://127.0.0.1:40123/v1/realtime */
  url: string;
  port: number;
  /** Sessions in arrival order (a live array, the newest MAX_SESSIONS). */
  sessions: RecordedSession[];
  /** Upgrades refused (wrong key, wrong path). */
  readonly refused: number;
  setProfile(p: RealtimeProfile | LatencyProfile | string): void;
  setFail(f: RealtimeFail | null): void;
  setTranscript(t: string | ((info: TranscriptInfo) => string)): void;
  /** Idempotent: stops listening, destroys every socket, clears every timer. */
  close(): Promise<void>;
}

export const DEFAULT_TRANSCRIPT = 'Hello, this is a test.';
const PATH = '/v1/realtime';
const RATE = 24000;
/** Speech runs ~3 words a second: one more word of the transcript is revealed per 300 ms of audio. */
const WORD_MS = 300;
/** OpenAI refuses commits of less than 100 ms. */
const MIN_COMMIT_MS = 100;
const MAX_SESSIONS = 1000;
const MAX_EVENTS = 10_000;
const MAX_FRAME = 16 * 1024 * 1024;
const CLIENT_TYPES = new Set(['session.update', 'input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The bench's profiles (bench/standins/profile.ts) carry streaming STT as `sttMs` (the final) + `partialEveryMs`. */
function fromLatency(p: LatencyProfile): RealtimeProfile {
  const every = (p as { partialEveryMs?: unknown }).partialEveryMs;
  return { partialEveryMs: typeof every === 'number' ? every : 100, finalMs: p.sttMs };
}

function toProfile(p: RealtimeProfile | LatencyProfile | string | undefined): RealtimeProfile {
  if (p === undefined) return { ...REALTIME_PROFILES.instant! };
  if (typeof p === 'string') {
    try {
      return parseRealtimeProfile(p);
    } catch (err) {
      try {
        return fromLatency(parseProfile(p));
      } catch {
        throw err;
      }
    }
  }
  return 'finalMs' in p ? { partialEveryMs: p.partialEveryMs, finalMs: p.finalMs } : fromLatency(p);
}

function words(text: string, n: number): string {
  return text.split(/\s+/).filter(Boolean).slice(0, n).join(' ');
}

export async function startRealtimeStandin(opts: RealtimeStandinOptions = {}): Promise<RealtimeStandin> {
  let profile = toProfile(opts.profile);
  let fail: RealtimeFail | null = opts.fail ?? null;
  let transcript = opts.transcript ?? DEFAULT_TRANSCRIPT;
  const sessions: RecordedSession[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let refused = 0;
  let seq = 0;

  const later = (ms: number, fn: () => void): NodeJS.Timeout => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  };
  const cancel = (t: NodeJS.Timeout | null): void => {
    if (!t) return;
    clearTimeout(t);
    timers.delete(t);
  };
  const textFor = (info: TranscriptInfo): string => (typeof transcript === 'function' ? transcript(info) : transcript);

  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'this endpoint takes WebSocket upgrades', type: 'invalid_request_error' } }));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });

  server.on('upgrade', (req, socket, head) => {
    const u = new URL(req.url ?? '/', 'http://standin');
    const refuse = (status: number, message: string, code: string): void => {
      refused++;
      const body = JSON.stringify({ error: { message, type: 'invalid_request_error', code } });
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    };
    if (u.pathname !== PATH) return refuse(404, `Unknown path ${u.pathname}`, 'not_found');
    if (opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      return refuse(401, 'Incorrect API key provided.', 'invalid_api_key');
    }
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, req, u));
  });

  function serve(ws: WebSocket, req: http.IncomingMessage, u: URL): void {
    const n = ++seq;
    const rec: RecordedSession = { id: `sess_standin_${n}`, url: u.pathname + u.search, headers: req.headers, at: performance.now(), config: null, events: [], items: [], audioMs: 0, closed: false };
    sessions.push(rec);
    if (sessions.length > MAX_SESSIONS) sessions.splice(0, sessions.length - MAX_SESSIONS);
    let eventSeq = 0;
    let itemSeq = 0;
    let previousItem: string | null = null;
    // The piece being appended: its item id is fixed at its first append, so deltas before the commit name it.
    let itemId = '';
    let bufferBytes = 0;
    let sentText = '';
    let partialTimer: NodeJS.Timeout | null = null;
    let audioSincePartial = false;
    const session: Record<string, unknown> = {
      type: 'transcription',
      object: 'realtime.transcription_session',
      id: rec.id,
      expires_at: Math.floor(Date.now() / 1000) + 3600,
      audio: { input: { format: { type: 'audio/pcm', rate: RATE }, transcription: null, noise_reduction: null, turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 } } },
      include: null,
    };

    const record = (e: RecordedEvent): void => {
      rec.events.push(e);
      if (rec.events.length > MAX_EVENTS) rec.events.splice(0, rec.events.length - MAX_EVENTS);
    };
    const send = (type: string, fields: Record<string, unknown> = {}): void => {
      if (ws.readyState !== ws.OPEN) return;
      const event = { event_id: `event_${n}_${++eventSeq}`, type, ...fields };
      record({ at: performance.now(), dir: 'out', type, event });
      ws.send(JSON.stringify(event));
    };
    const error = (message: string, code: string, extra: { param?: string; event_id?: unknown; type?: string } = {}): void => {
      send('error', { error: { type: extra.type ?? 'invalid_request_error', code, message, param: extra.param ?? null, event_id: typeof extra.event_id === 'string' ? extra.event_id : null } });
    };
    const msOf = (bytes: number): number => (bytes / 2 / RATE) * 1000;
    const info = (): TranscriptInfo => ({ itemIndex: itemSeq, audioMs: msOf(bufferBytes), totalAudioMs: rec.audioMs });

    /** Send the words of the piece's transcript that its audio so far has earned (all of them when `all`). */
    const sendDelta = (id: string, text: string, all: boolean): void => {
      const next = all ? text : words(text, Math.floor(msOf(bufferBytes) / WORD_MS));
      if (next.length > sentText.length && next.startsWith(sentText)) {
        send('conversation.item.input_audio_transcription.delta', { item_id: id, content_index: 0, delta: next.slice(sentText.length) });
        sentText = next;
      }
    };
    const partialTick = (): void => {
      partialTimer = null;
      if (!audioSincePartial || !itemId) return;
      audioSincePartial = false;
      sendDelta(itemId, textFor(info()), false);
      partialTimer = later(profile.partialEveryMs, partialTick);
    };
    const resetPiece = (): void => {
      cancel(partialTimer);
      partialTimer = null;
      itemId = '';
      bufferBytes = 0;
      sentText = '';
      audioSincePartial = false;
    };

    const append = (e: Record<string, unknown>): void => {
      const audio = e.audio;
      if (typeof audio !== 'string' || !BASE64.test(audio) || audio.length % 4 !== 0) {
        return error("Invalid 'audio'. Expected base64-encoded audio bytes.", 'invalid_value', { param: 'audio', event_id: e.event_id });
      }
      const bytes = Buffer.byteLength(audio, 'base64');
      if (bytes % 2 !== 0) return error("Invalid 'audio'. PCM16 audio must hold whole 16-bit samples.", 'invalid_value', { param: 'audio', event_id: e.event_id });
      if (fail === 'drop-after-append') {
        ws.terminate();
        return;
      }
      if (!itemId) itemId = `item_standin_${n}_${itemSeq}`;
      bufferBytes += bytes;
      rec.audioMs += msOf(bytes);
      audioSincePartial = true;
      partialTimer ??= later(profile.partialEveryMs, partialTick);
    };

    const commit = (e: Record<string, unknown>): void => {
      if (fail === 'hang') return;
      if (fail === 'error-on-commit') return error('The server had an error while processing your request (injected).', 'server_error', { type: 'server_error', event_id: e.event_id });
      const ms = msOf(bufferBytes);
      if (ms < MIN_COMMIT_MS) {
        return error(`Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has ${ms.toFixed(2)}ms of audio.`, 'input_audio_buffer_commit_empty', { event_id: e.event_id });
      }
      const id = itemId;
      const text = textFor(info());
      const item: RecordedItem = { itemId: id, audioMs: ms, transcript: text, committedAt: performance.now() };
      rec.items.push(item);
      send('input_audio_buffer.committed', { previous_item_id: previousItem, item_id: id });
      previousItem = id;
      const injectFailure = fail === 'transcription-failed';
      const revealed = sentText;
      itemSeq++;
      resetPiece();
      later(profile.finalMs, () => {
        if (injectFailure) {
          send('conversation.item.input_audio_transcription.failed', { item_id: id, content_index: 0, error: { type: 'transcription_error', code: 'audio_unintelligible', message: 'Audio could not be transcribed (injected).', param: null } });
          return;
        }
        if (text.length > revealed.length && text.startsWith(revealed)) {
          send('conversation.item.input_audio_transcription.delta', { item_id: id, content_index: 0, delta: text.slice(revealed.length) });
        }
        item.completedAt = performance.now();
        send('conversation.item.input_audio_transcription.completed', { item_id: id, content_index: 0, transcript: text, usage: { type: 'duration', seconds: Math.round(ms) / 1000 } });
      });
    };

    const update = (e: Record<string, unknown>): void => {
      const s = e.session;
      if (!s || typeof s !== 'object') return error("Missing required parameter: 'session'.", 'missing_required_parameter', { param: 'session', event_id: e.event_id });
      const next = s as Record<string, unknown>;
      if (next.type !== undefined && next.type !== 'transcription') {
        return error(`Invalid value: '${String(next.type)}'. This is a transcription session; session.type must be 'transcription'.`, 'invalid_value', { param: 'session.type', event_id: e.event_id });
      }
      const input = ((next.audio as Record<string, unknown> | undefined)?.input ?? {}) as Record<string, unknown>;
      const format = input.format as { type?: unknown; rate?: unknown } | undefined;
      if (format !== undefined && (format.type !== 'audio/pcm' || (format.rate !== undefined && format.rate !== RATE))) {
        return error('The stand-in takes audio/pcm at 24000 Hz only.', 'invalid_value', { param: 'session.audio.input.format', event_id: e.event_id });
      }
      rec.config = { ...(rec.config ?? {}), ...next };
      const cur = (session.audio as { input: Record<string, unknown> }).input;
      for (const k of ['format', 'transcription', 'noise_reduction', 'turn_detection']) if (k in input) cur[k] = input[k];
      if (next.include !== undefined) session.include = next.include;
      send('session.updated', { session });
    };

    ws.on('message', (data, isBinary) => {
      let e: Record<string, unknown>;
      try {
        if (isBinary) throw new Error('binary');
        const v = JSON.parse(String(data)) as unknown;
        if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
        e = v as Record<string, unknown>;
      } catch {
        record({ at: performance.now(), dir: 'in', type: '(invalid)', event: {} });
        return error('We could not parse the JSON body of your request.', 'invalid_json');
      }
      const type = typeof e.type === 'string' ? e.type : '';
      const kept = type === 'input_audio_buffer.append' && typeof e.audio === 'string' ? { ...e, audio: undefined, audioBytes: Buffer.byteLength(e.audio, 'base64') } : e;
      record({ at: performance.now(), dir: 'in', type, event: kept });
      if (!CLIENT_TYPES.has(type)) {
        return error(`Invalid value: '${type}'. Supported values are: ${[...CLIENT_TYPES].join(', ')}.`, 'invalid_value', { param: 'type', event_id: e.event_id });
      }
      switch (type) {
        case 'session.update':
          return update(e);
        case 'input_audio_buffer.append':
          return append(e);
        case 'input_audio_buffer.commit':
          return commit(e);
        case 'input_audio_buffer.clear':
          resetPiece();
          return send('input_audio_buffer.cleared');
      }
    });
    ws.on('close', () => {
      rec.closed = true;
      resetPiece();
    });
    ws.on('error', () => ws.terminate());
    send('session.created', { session });
  }

  const { port, hostPort } = await listenLoopback(server, opts.host, opts.port);
  let closing: Promise<void> | null = null;
  return {
    url: `ws://${hostPort}${PATH}`,
    port,
    sessions,
    get refused() {
      return refused;
    },
    setProfile(p) {
      profile = toProfile(p);
    },
    setFail(f) {
      fail = f;
    },
    setTranscript(t) {
      transcript = t;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        sockets.clear();
      });
      return closing;
    },
  };
}
