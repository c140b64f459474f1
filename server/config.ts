// Configuration from the environment, with the same names accepted as CLI flags (`--port 9000`,
// `--eva-llm groq,ollama`, `--EVA_LLM=echo`): flags win over the environment. Every value is validated here,
// at start-up: a wrong value is a clear error before any call is taken, never a crash mid-call.
import { availableParallelism } from 'node:os';
import { EvaError } from './errors.js';
import { DEFAULT_TURN_CONFIG, type TurnConfig } from '../media/turns.js';
import { DEFAULT_EOU_CONFIG } from './pipeline/eou.js';
import { DEFAULT_RTP_MAX_PPS } from '../media/rtp.js';
import { HELPER_THREAD_NICE } from '../media/thread-nice.js';

export interface EvaConfig {
  port: number;
  host: string;
  dataDir: string;
  /** EVA_RETENTION_DAYS: sessions and calls idle for longer are deleted (at start, then hourly); 0 keeps everything. */
  retentionDays: number;
  /** Provider chains; empty = auto-detect (README "Configuration": `EVA_STT`, `EVA_LLM`, `EVA_TTS`). */
  stt: string[];
  llm: string[];
  tts: string[];
  groqApiKey?: string;
  groqBaseUrl?: string;
  ollamaHost: string;
  llmModel?: string;
  ollamaModel?: string;
  sttModel?: string;
  sttUrl?: string;
  sttApiKey?: string;
  ttsUrl?: string;
  ttsApiKey?: string;
  ttsVoice?: string;
  llmDeadlineMs: number;
  /** Longest gap between two items of a started LLM/TTS stream before it ends with provider_timeout, ms. */
  streamIdleMs: number;
  systemPrompt: string;
  historyTurns: number;
  maxCalls: number;
  turn: TurnConfig;
  /** Answer a clearly finished turn after this much silence (the end-of-turn predictor); 0 = always wait for EVA_VAD_EOU_MS. */
  earlyEndMs: number;
  /** Speculative STT requests in flight per call (EVA_STT_SPECULATIVE_MAX); 0 = no speculation. */
  speculativeMax: number;
  /** Extra ICE host addresses (e.g. a public IP behind 1:1 NAT); loopback is always offered. */
  iceHosts: string[];
  /** EVA_ICE_SERVERS: STUN/TURN servers given to the page and used by EVA's own peer (RTCIceServer shape). */
  iceServers: IceServerConfig[];
  /** EVA_TURN_SECRET: coturn's `static-auth-secret`; TURN servers without a credential get time-limited ones minted from it. */
  turnSecret?: string;
  /** EVA_RTP_PORTS: the UDP ports werift may bind for media, inclusive; undefined = any ephemeral port. */
  rtpPorts?: [number, number];
  /**
   * EVA_OPUS_DTX: Opus DTX both ways: quiet, EVA sends a silence packet every 400 ms instead of every 20 ms
   * (media/pacer.ts), and its answer asks the caller for DTX, the silence not sent filled in (media/rx-clock.ts).
   */
  opusDtx: boolean;
  /**
   * EVA_VAD_BATCH_WAIT_MS: with 16 calls or more in a process, how long a window waits for other calls' windows to
   * share its Silero run (media/vad.ts BATCH_WAIT_MS); 0 runs each at once.
   */
  vadBatchWaitMs: number;
  /**
   * EVA_THREAD_NICE: nice value of the VAD's and eSpeak's worker threads (Linux), so that the main thread, which
   * paces the audio, wins a busy core (media/thread-nice.ts); 0 leaves them at the main thread's priority.
   */
  threadNice: number;
  /** EVA_WORKERS: worker processes serving the same port; 1 = a single process (no supervisor). */
  workers: number;
  /** EVA_DRAIN_S: on SIGINT/SIGTERM, how long calls in progress may go on before they are ended. */
  drainS: number;
  /**
   * EVA_EXIT_ON_STDIN_CLOSE=1: drain and exit when stdin reaches end-of-file, i.e. when the process that started EVA
   * with a pipe on its stdin is gone (server/lifeline.ts). For benches, test harnesses and other parents.
   */
  exitOnStdinClose: boolean;
  /** EVA_DATABASE_URL: `postgres://…` for a PostgreSQL store shared by many nodes; unset = SQLite in EVA_DATA_DIR. */
  databaseUrl?: string;
  /** Who may use EVA and how much (docs/security.md). */
  access: AccessConfig;
  limits: LimitsConfig;
  /** Things worth saying at start-up (a key given as a flag shows in `ps`). */
  warnings: string[];
}

export interface AccessConfig {
  /** EVA_API_KEY: when set, every endpoint but the page's assets needs it (or a token / the page's cookie). */
  apiKey?: string;
  /** EVA_ALLOWED_ORIGINS: browser origins served besides EVA's own, normalized (`https://app.example.com`). */
  allowedOrigins: string[];
  /** EVA_ALLOWED_HOSTS: `Host` names accepted besides loopback, IP literals, HOST and EVA_ICE_HOSTS. */
  allowedHosts: string[];
  /** EVA_TRUST_PROXY: proxies in front of EVA whose `X-Forwarded-For` entries are believed; 0 = none. */
  trustProxy: number;
  /** EVA_TOKEN_TTL_S: lifetime of a `POST /session-token` token. */
  tokenTtlS: number;
}

/** Per-client and global limits (README "Configuration"); each hit is counted in `eva_limit_hits_total{limit}`. */
export interface LimitsConfig {
  maxSockets: number;
  clientSockets: number;
  clientCalls: number;
  offersPerMin: number;
  textTurnsPerSec: number;
  ttsPerSec: number;
  ttsMaxChars: number;
  chatQueue: number;
  offerTimeoutS: number;
  /** EVA_RTP_MAX_PPS: inbound RTP packets per second decoded per call (media/rtp.ts PacketRateCap). */
  rtpMaxPps: number;
  /** Client addresses the per-client limits do not apply to (default: this machine's loopback). */
  exempt: string[];
}

/** One STUN or TURN server, as RTCPeerConnection takes it. */
export interface IceServerConfig {
  urls: string[];
  username?: string;
  credential?: string;
}

/**
 * EVA_ICE_SERVERS: a JSON array of RTCIceServer objects (`[{"urls":"turn:turn.example.com:3478","username":"u",
 * "credential":"p"}]`), or a comma-separated list of URLs, where a TURN URL may carry its credentials as
 * `turn:user:password@host:port`.
 */
export function parseIceServers(raw: string | undefined): IceServerConfig[] {
  const text = (raw ?? '').trim();
  if (text === '') return [];
  const bad = (why: string): never => {
    throw new EvaError('bad_request', `EVA_ICE_SERVERS: ${why}`);
  };
  const checkUrl = (u: unknown): string => {
    if (typeof u !== 'string' || !/^(stun|stuns|turn|turns):[^\s]+$/.test(u)) bad(`${JSON.stringify(u)} is not a stun:, stuns:, turn: or turns: URL`);
    return u as string;
  };
  if (text.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      return bad(`not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(parsed)) return bad('the JSON must be an array of {urls, username?, credential?}');
    return parsed.map((entry: unknown) => {
      if (typeof entry !== 'object' || entry === null) return bad('every entry must be an object with "urls"');
      const o = entry as Record<string, unknown>;
      const urls = (Array.isArray(o.urls) ? o.urls : [o.urls]).map(checkUrl);
      if (urls.length === 0) bad('an entry has no urls');
      for (const k of ['username', 'credential'] as const) if (o[k] !== undefined && typeof o[k] !== 'string') bad(`"${k}" must be a string`);
      return { urls, ...(o.username !== undefined ? { username: o.username as string } : {}), ...(o.credential !== undefined ? { credential: o.credential as string } : {}) };
    });
  }
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((u) => {
    const m = /^(turns?):([^:@/]+):([^@/]+)@(.+)$/.exec(u);
    if (m) return { urls: [checkUrl(`${m[1]}:${m[4]}`)], username: decodeURIComponent(m[2]!), credential: decodeURIComponent(m[3]!) };
    return { urls: [checkUrl(u)] };
  });
}

function portRange(env: Record<string, string | undefined>): [number, number] | undefined {
  const raw = (env.EVA_RTP_PORTS ?? '').trim();
  if (raw === '') return undefined;
  const m = /^(\d+)\s*-\s*(\d+)$/.exec(raw);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2]) : NaN;
  if (!m || lo < 1024 || hi > 65535 || lo > hi) throw new EvaError('bad_request', `EVA_RTP_PORTS must be a range like 40000-40999 within 1024-65535, got ${JSON.stringify(raw)}`);
  return [lo, hi];
}

/** A postgres:// URL; the error never repeats it (it may hold a password). */
function databaseUrl(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let ok = false;
  try {
    const u = new URL(raw);
    ok = (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && (u.hostname !== '' || u.searchParams.has('host'));
  } catch {
    ok = false;
  }
  if (!ok) throw new EvaError('bad_request', 'EVA_DATABASE_URL must be a postgres://user:password@host:port/database URL (the value is not repeated here: it may hold a password)');
  return raw;
}

export const DEFAULT_SYSTEM_PROMPT =
  'You are EVA, a friendly voice assistant. Answer in one to three short spoken sentences. ' +
  'No lists, no markdown, no emojis: everything you write is read aloud.';

/** Env-style map from argv: `--eva-llm=groq`, `--eva-llm groq`, `--PORT 9000`. */
export function argvToEnv(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new EvaError('bad_request', `unexpected argument ${JSON.stringify(a)} (flags look like --port 8080)`);
    const eq = a.indexOf('=');
    const name = (eq > 0 ? a.slice(2, eq) : a.slice(2)).replace(/-/g, '_').toUpperCase();
    let value: string | undefined = eq > 0 ? a.slice(eq + 1) : argv[i + 1];
    if (eq < 0) {
      if (value === undefined || value.startsWith('--')) throw new EvaError('bad_request', `flag --${name} needs a value`);
      i++;
    }
    out[name] = value!;
  }
  return out;
}

function int(env: Record<string, string | undefined>, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new EvaError('bad_request', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

function num(env: Record<string, string | undefined>, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new EvaError('bad_request', `${name} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

const PROVIDERS = { stt: ['groq', 'openai', 'realtime'], llm: ['groq', 'ollama', 'echo'], tts: ['espeak', 'groq', 'openai'] } as const;

function chain(env: Record<string, string | undefined>, stage: keyof typeof PROVIDERS): string[] {
  const name = `EVA_${stage.toUpperCase()}`;
  const raw = (env[name] ?? '').trim();
  if (raw === '' || raw === 'auto') return [];
  const list = raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const p of list) {
    if (!(PROVIDERS[stage] as readonly string[]).includes(p)) {
      throw new EvaError('bad_request', `${name}: unknown provider ${JSON.stringify(p)}; choose from ${PROVIDERS[stage].join(', ')}`);
    }
  }
  return [...new Set(list)];
}

function list(env: Record<string, string | undefined>, name: string, def = ''): string[] {
  return (env[name] ?? def).split(',').map((s) => s.trim()).filter(Boolean);
}

function origins(env: Record<string, string | undefined>): string[] {
  return list(env, 'EVA_ALLOWED_ORIGINS').map((raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new EvaError('bad_request', `EVA_ALLOWED_ORIGINS: ${JSON.stringify(raw)} is not an origin (like https://app.example.com)`);
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.pathname.length > 1 || u.search || u.username) {
      throw new EvaError('bad_request', `EVA_ALLOWED_ORIGINS: ${JSON.stringify(raw)} is not an origin (scheme://host[:port], no path)`);
    }
    return u.origin;
  });
}

/** Flags whose names look like secrets: their values show in `ps` and shell history. */
function secretFlagWarnings(argv: readonly string[]): string[] {
  const names = Object.keys(argvToEnv(argv)).filter((n) => /KEY|TOKEN|SECRET|PASSWORD/.test(n));
  return names.map((n) => `${n} was given as a command-line flag: its value is visible to every user of this machine (ps, shell history); set it in the environment instead`);
}

function url(env: Record<string, string | undefined>, name: string, def?: string, schemes = ['http:', 'https:']): string | undefined {
  const raw = env[name] || def;
  if (raw === undefined) return undefined;
  try {
    const u = new URL(raw);
    if (!schemes.includes(u.protocol)) throw new Error('wrong scheme');
  } catch {
    throw new EvaError('bad_request', `${name} must be a ${schemes.map((s) => s.slice(0, -1)).join('/')} URL, got ${JSON.stringify(raw)}`);
  }
  return raw.replace(/\/+$/, '');
}

export function loadConfig(env: Record<string, string | undefined> = process.env, argv: readonly string[] = []): EvaConfig {
  const e = { ...env, ...argvToEnv(argv) };
  const turn: TurnConfig = {
    onThreshold: num(e, 'EVA_VAD_THRESHOLD', DEFAULT_TURN_CONFIG.onThreshold, 0.05, 0.99),
    offThreshold: 0,
    minSpeechMs: int(e, 'EVA_VAD_MIN_SPEECH_MS', DEFAULT_TURN_CONFIG.minSpeechMs, 0, 2000),
    pauseMs: int(e, 'EVA_VAD_PAUSE_MS', DEFAULT_TURN_CONFIG.pauseMs, 32, 5000),
    endOfTurnMs: int(e, 'EVA_VAD_EOU_MS', DEFAULT_TURN_CONFIG.endOfTurnMs, 64, 10000),
    maxEndOfTurnMs: 0,
    bargeInMs: int(e, 'EVA_BARGE_IN_MS', DEFAULT_TURN_CONFIG.bargeInMs, 32, 5000),
  };
  turn.offThreshold = Math.max(0.01, turn.onThreshold - 0.15);
  if (turn.pauseMs > turn.endOfTurnMs) throw new EvaError('bad_request', 'EVA_VAD_PAUSE_MS must not exceed EVA_VAD_EOU_MS');
  turn.maxEndOfTurnMs = int(e, 'EVA_MAX_EOU_MS', Math.max(DEFAULT_TURN_CONFIG.maxEndOfTurnMs, turn.endOfTurnMs), turn.endOfTurnMs, 10000);
  const earlyEndMs = int(e, 'EVA_EARLY_EOU_MS', Math.min(Math.max(DEFAULT_EOU_CONFIG.finishedMs, turn.pauseMs), turn.endOfTurnMs), 0, 10000);
  if (earlyEndMs !== 0 && (earlyEndMs < turn.pauseMs || earlyEndMs > turn.endOfTurnMs)) {
    throw new EvaError('bad_request', `EVA_EARLY_EOU_MS must be 0 (off) or from EVA_VAD_PAUSE_MS (${turn.pauseMs}) to EVA_VAD_EOU_MS (${turn.endOfTurnMs}), got ${earlyEndMs}`);
  }
  const host = e.HOST || '127.0.0.1';
  return {
    port: int(e, 'PORT', 8080, 0, 65535),
    host,
    dataDir: e.EVA_DATA_DIR || './data',
    retentionDays: int(e, 'EVA_RETENTION_DAYS', 30, 0, 36500),
    stt: chain(e, 'stt'),
    llm: chain(e, 'llm'),
    tts: chain(e, 'tts'),
    groqApiKey: e.GROQ_API_KEY || undefined,
    groqBaseUrl: url(e, 'GROQ_BASE_URL'),
    ollamaHost: url(e, 'OLLAMA_HOST', 'http://127.0.0.1:11434')!,
    llmModel: e.EVA_LLM_MODEL || undefined,
    ollamaModel: e.EVA_OLLAMA_MODEL || undefined,
    sttModel: e.EVA_STT_MODEL || undefined,
    // ws(s):// is the streaming Realtime transcription protocol (EVA_STT=realtime), http(s):// a segment server.
    sttUrl: url(e, 'EVA_STT_URL', undefined, ['http:', 'https:', 'ws:', 'wss:']),
    sttApiKey: e.EVA_STT_API_KEY || undefined,
    ttsUrl: url(e, 'EVA_TTS_URL'),
    ttsApiKey: e.EVA_TTS_API_KEY || undefined,
    ttsVoice: e.EVA_TTS_VOICE || undefined,
    llmDeadlineMs: int(e, 'EVA_LLM_DEADLINE_MS', 2000, 50, 60000),
    streamIdleMs: int(e, 'EVA_STREAM_IDLE_MS', 5000, 100, 120000),
    systemPrompt: e.EVA_SYSTEM_PROMPT || DEFAULT_SYSTEM_PROMPT,
    historyTurns: int(e, 'EVA_HISTORY_TURNS', 20, 1, 500),
    maxCalls: int(e, 'EVA_MAX_CALLS', 100, 1, 10000),
    turn,
    earlyEndMs,
    speculativeMax: int(e, 'EVA_STT_SPECULATIVE_MAX', 2, 0, 16),
    iceHosts: (e.EVA_ICE_HOSTS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    iceServers: parseIceServers(e.EVA_ICE_SERVERS),
    turnSecret: e.EVA_TURN_SECRET || undefined,
    rtpPorts: portRange(e),
    opusDtx: int(e, 'EVA_OPUS_DTX', 1, 0, 1) === 1,
    // The default is media/vad.ts BATCH_WAIT_MS (not imported: the supervisor loads this file, not the model's runtime).
    vadBatchWaitMs: int(e, 'EVA_VAD_BATCH_WAIT_MS', 8, 0, 20),
    threadNice: int(e, 'EVA_THREAD_NICE', HELPER_THREAD_NICE, 0, 19),
    workers: int(e, 'EVA_WORKERS', availableParallelism(), 1, 256),
    drainS: int(e, 'EVA_DRAIN_S', 10, 0, 3600),
    exitOnStdinClose: int(e, 'EVA_EXIT_ON_STDIN_CLOSE', 0, 0, 1) === 1,
    databaseUrl: databaseUrl(e.EVA_DATABASE_URL),
    access: {
      apiKey: e.EVA_API_KEY || undefined,
      allowedOrigins: origins(e),
      allowedHosts: list(e, 'EVA_ALLOWED_HOSTS').map((h) => h.toLowerCase()),
      trustProxy: int(e, 'EVA_TRUST_PROXY', 0, 0, 10),
      tokenTtlS: int(e, 'EVA_TOKEN_TTL_S', 600, 1, 86400),
    },
    limits: {
      maxSockets: int(e, 'EVA_MAX_SOCKETS', 4000, 1, 1_000_000),
      clientSockets: int(e, 'EVA_CLIENT_SOCKETS', 32, 1, 100_000),
      clientCalls: int(e, 'EVA_CLIENT_CALLS', 8, 1, 10_000),
      offersPerMin: int(e, 'EVA_CLIENT_OFFERS_PER_MIN', 30, 1, 100_000),
      textTurnsPerSec: num(e, 'EVA_WS_TEXT_PER_SEC', 2, 0.01, 1000),
      ttsPerSec: num(e, 'EVA_TTS_PER_SEC', 2, 0.01, 1000),
      ttsMaxChars: int(e, 'EVA_TTS_MAX_CHARS', 2000, 1, 100_000),
      chatQueue: int(e, 'EVA_WS_CHAT_QUEUE', 32, 0, 10_000),
      offerTimeoutS: int(e, 'EVA_OFFER_TIMEOUT_S', 30, 1, 3600),
      rtpMaxPps: int(e, 'EVA_RTP_MAX_PPS', DEFAULT_RTP_MAX_PPS, 50, 100_000),
      exempt: list(e, 'EVA_LIMIT_EXEMPT', '127.0.0.1,::1'),
    },
    warnings: secretFlagWarnings(argv),
  };
}
