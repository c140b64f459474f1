// The bench's provider profiles: the stand-ins' latency profiles (bench/standins/profile.ts, re-exported here)
// plus which EVA providers a run wires to them. A profile is given as a spec string:
//
//   instant                 every stand-in answers at once (EVA's own cost, nothing else)
//   groq                    Groq cloud as seen from Europe/US-east: STT 150 ms, TTFT 150 ms, 500 tok/s, TTS 80 ms
//   ollama-gpu              a local 3B model on a GPU, loaded: STT 0 ms (a local Whisper), TTFT 60 ms, 100 tok/s
//   local-stream            streaming STT (realtime stand-in: partials every 100 ms, final 30 ms after the commit),
//                           TTFT 60 ms, 150 tok/s through the Ollama stand-in
//   groq,ttftMs=200         a named profile with overrides (keys: sttMs, ttftMs, tokensPerSec, ttsFirstMs, ttsSpeed,
//                           partialEveryMs)
//   groq,llm=ollama,tts=groq,stt=realtime  bench keys: which EVA adapter talks to the stand-ins (see `evaEnv`)
//
// The numbers themselves live in the stand-ins' module so the tests, the stand-in CLI and the bench agree.
import { PROFILES, parseProfile, type LatencyProfile } from './standins/profile.js';

export { PROFILES, parseProfile, type LatencyProfile };

export const DEFAULT_PROFILES = ['instant', 'groq', 'ollama-gpu', 'local-stream'] as const;

export type BenchLlm = 'groq' | 'ollama';
export type BenchTts = 'espeak' | 'groq';
/**
 * EVA's STT adapter: Groq (`EVA_STT=groq`), an OpenAI-compatible segment endpoint (`EVA_STT=openai`, the Groq
 * stand-in as a local Whisper) or the streaming Realtime transcription protocol (`EVA_STT=realtime`, the realtime
 * stand-in).
 */
export type BenchStt = 'groq' | 'openai' | 'realtime';

export interface BenchProfile {
  /** The spec as given, e.g. "groq,ttftMs=200". */
  spec: string;
  /** For tables and file names: the spec with `,` as `+` ("groq+ttftMs=200"). */
  label: string;
  /** The stand-ins' latencies. */
  latency: LatencyProfile;
  /** EVA's LLM adapter: Groq (groq-sdk → the Groq stand-in) or Ollama (ollama client → the Ollama stand-in). */
  llm: BenchLlm;
  /**
   * EVA's TTS: embedded eSpeak NG (default; the profile's ttsFirstMs does not apply) or Groq speech through
   * the Groq stand-in (ttsFirstMs applies).
   */
  tts: BenchTts;
  stt: BenchStt;
}

const BENCH_KEYS = ['llm', 'tts', 'stt'] as const;
/** Profiles whose STT streams (the realtime stand-in) unless `stt=` says otherwise. */
const STREAMING = new Set(['local-stream']);

/** Parse one profile spec; throws an Error that names the known profiles and keys. */
export function parseBenchProfile(spec: string): BenchProfile {
  const parts = spec.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error(`empty profile; known: ${Object.keys(PROFILES).join(', ')}`);
  const rest: string[] = [];
  let llm: BenchLlm | undefined;
  let tts: BenchTts = 'espeak';
  let stt: BenchStt | undefined;
  for (const part of parts) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? '' : part.slice(0, eq).trim();
    const value = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (key === 'llm') {
      if (value !== 'groq' && value !== 'ollama') throw new Error(`llm must be groq or ollama, got ${JSON.stringify(value)}`);
      llm = value;
    } else if (key === 'tts') {
      if (value !== 'espeak' && value !== 'groq') throw new Error(`tts must be espeak or groq, got ${JSON.stringify(value)}`);
      tts = value;
    } else if (key === 'stt') {
      if (value !== 'groq' && value !== 'openai' && value !== 'realtime') throw new Error(`stt must be groq, openai or realtime, got ${JSON.stringify(value)}`);
      stt = value;
    } else {
      rest.push(part);
    }
  }
  let latency: LatencyProfile;
  try {
    latency = parseProfile(rest.join(','));
  } catch (err) {
    throw new Error(`profile ${JSON.stringify(spec)}: ${(err as Error).message} (bench keys: ${BENCH_KEYS.join(', ')})`);
  }
  const base = rest[0] && !rest[0].includes('=') ? rest[0] : 'instant';
  const chosenLlm: BenchLlm = llm ?? (base.startsWith('ollama') || STREAMING.has(base) ? 'ollama' : 'groq');
  return {
    spec,
    label: parts.join('+'),
    latency,
    llm: chosenLlm,
    tts,
    // Groq's LLM comes with Groq's STT; an Ollama LLM with a local (OpenAI-compatible) Whisper.
    stt: stt ?? (STREAMING.has(base) ? 'realtime' : chosenLlm === 'groq' ? 'groq' : 'openai'),
  };
}

/** Where the stand-ins listen (from their start()). */
export interface StandinUrls {
  /** The Groq stand-in's base URL (groq-sdk appends /openai/v1 itself). */
  groq: string;
  /** The Groq stand-in's OpenAI-compatible base, `${groq}/openai/v1`. */
  openai: string;
  ollama: string;
  /** The realtime stand-in's WebSocket URL, path included (ws://127.0.0.1:P/v1/realtime); needed for stt=realtime. */
  realtime?: string;
}

/**
 * EVA's environment for a profile. Groq LLM profiles use Groq for STT too (GROQ_API_KEY + GROQ_BASE_URL);
 * Ollama profiles transcribe through the OpenAI-compatible `/audio/transcriptions` of the Groq stand-in
 * (standing in for a local Whisper server) and talk to the Ollama stand-in; `stt=realtime` (local-stream)
 * streams the audio to the realtime stand-in over WebSocket instead.
 */
export function evaEnv(p: BenchProfile, urls: StandinUrls): Record<string, string> {
  const env: Record<string, string> = { EVA_TTS: p.tts };
  if (p.llm === 'groq' || p.tts === 'groq' || p.stt === 'groq') {
    env.GROQ_API_KEY = 'standin';
    env.GROQ_BASE_URL = urls.groq;
  }
  env.EVA_STT = p.stt;
  if (p.stt === 'openai') {
    env.EVA_STT_URL = urls.openai;
    env.EVA_STT_API_KEY = 'standin';
  } else if (p.stt === 'realtime') {
    if (!urls.realtime) throw new Error(`profile ${p.label}: stt=realtime needs the realtime stand-in's URL`);
    env.EVA_STT_URL = urls.realtime;
    env.EVA_STT_API_KEY = 'standin';
  }
  env.EVA_LLM = p.llm;
  if (p.llm === 'ollama') env.OLLAMA_HOST = urls.ollama;
  return env;
}

/** One line for progress output and the README: "STT 150 ms, TTFT 150 ms, 500 tok/s, TTS first audio 80 ms". */
export function describeProfile(p: BenchProfile): string {
  const l = p.latency;
  const rate = Number.isFinite(l.tokensPerSec) ? `${l.tokensPerSec} tok/s` : 'tokens at once';
  const tts = p.tts === 'espeak' ? 'TTS embedded eSpeak' : `TTS Groq stand-in, first audio ${l.ttsFirstMs} ms`;
  const stt = p.stt === 'realtime' ? `streaming STT (partials every ${l.partialEveryMs ?? 100} ms, final ${l.sttMs} ms after the commit)` : `STT ${l.sttMs} ms`;
  return `${stt}, TTFT ${l.ttftMs} ms, ${rate}, LLM ${p.llm}, ${tts}`;
}

/**
 * Profiles from the command line: `--profile SPEC` (repeatable; one spec each, commas inside a spec are
 * overrides) or `--profiles a,b,c` (names only). Default: every named profile in DEFAULT_PROFILES.
 */
export function profilesFromArgs(profileFlags: readonly string[], profilesFlag?: string): BenchProfile[] {
  const specs = [...profileFlags];
  if (profilesFlag) specs.push(...profilesFlag.split(',').map((s) => s.trim()).filter(Boolean));
  return (specs.length ? specs : [...DEFAULT_PROFILES]).map(parseBenchProfile);
}
