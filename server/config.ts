// Configuration from the environment, with the same names accepted as CLI flags (`--port 9000`,
// `--eva-llm groq,ollama`, `--EVA_LLM=echo`): flags win over the environment. Every value is validated here,
// at start-up: a wrong value is a clear error before any call is taken, never a crash mid-call.
import { EvaError } from './errors.js';
import { DEFAULT_TURN_CONFIG, type TurnConfig } from '../media/turns.js';

export interface EvaConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Provider chains; empty = auto-detect (DESIGN "Providers"). */
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
  systemPrompt: string;
  historyTurns: number;
  maxCalls: number;
  turn: TurnConfig;
  /** Answer after this much silence when the transcript reads as finished; 0 = always wait for EVA_VAD_EOU_MS. */
  earlyEndMs: number;
  /** Extra ICE host addresses (e.g. a public IP behind 1:1 NAT); loopback is always offered. */
  iceHosts: string[];
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

const PROVIDERS = { stt: ['groq', 'openai'], llm: ['groq', 'ollama', 'echo'], tts: ['espeak', 'groq', 'openai'] } as const;

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

function url(env: Record<string, string | undefined>, name: string, def?: string): string | undefined {
  const raw = env[name] || def;
  if (raw === undefined) return undefined;
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new EvaError('bad_request', `${name} must be an http(s) URL, got ${JSON.stringify(raw)}`);
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
    bargeInMs: int(e, 'EVA_BARGE_IN_MS', DEFAULT_TURN_CONFIG.bargeInMs, 32, 5000),
  };
  turn.offThreshold = Math.max(0.01, turn.onThreshold - 0.15);
  if (turn.pauseMs > turn.endOfTurnMs) throw new EvaError('bad_request', 'EVA_VAD_PAUSE_MS must not exceed EVA_VAD_EOU_MS');
  const earlyEndMs = int(e, 'EVA_EARLY_EOU_MS', Math.min(Math.max(240, turn.pauseMs), turn.endOfTurnMs), 0, 10000);
  if (earlyEndMs !== 0 && (earlyEndMs < turn.pauseMs || earlyEndMs > turn.endOfTurnMs)) {
    throw new EvaError('bad_request', `EVA_EARLY_EOU_MS must be 0 (off) or from EVA_VAD_PAUSE_MS (${turn.pauseMs}) to EVA_VAD_EOU_MS (${turn.endOfTurnMs}), got ${earlyEndMs}`);
  }
  const host = e.HOST || '127.0.0.1';
  return {
    port: int(e, 'PORT', 8080, 0, 65535),
    host,
    dataDir: e.EVA_DATA_DIR || './data',
    stt: chain(e, 'stt'),
    llm: chain(e, 'llm'),
    tts: chain(e, 'tts'),
    groqApiKey: e.GROQ_API_KEY || undefined,
    groqBaseUrl: url(e, 'GROQ_BASE_URL'),
    ollamaHost: url(e, 'OLLAMA_HOST', 'http://127.0.0.1:11434')!,
    llmModel: e.EVA_LLM_MODEL || undefined,
    ollamaModel: e.EVA_OLLAMA_MODEL || undefined,
    sttModel: e.EVA_STT_MODEL || undefined,
    sttUrl: url(e, 'EVA_STT_URL'),
    sttApiKey: e.EVA_STT_API_KEY || undefined,
    ttsUrl: url(e, 'EVA_TTS_URL'),
    ttsApiKey: e.EVA_TTS_API_KEY || undefined,
    ttsVoice: e.EVA_TTS_VOICE || undefined,
    llmDeadlineMs: int(e, 'EVA_LLM_DEADLINE_MS', 2000, 50, 60000),
    systemPrompt: e.EVA_SYSTEM_PROMPT || DEFAULT_SYSTEM_PROMPT,
    historyTurns: int(e, 'EVA_HISTORY_TURNS', 20, 1, 500),
    maxCalls: int(e, 'EVA_MAX_CALLS', 100, 1, 10000),
    turn,
    earlyEndMs,
    iceHosts: (e.EVA_ICE_HOSTS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  };
}
