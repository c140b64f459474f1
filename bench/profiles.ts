// The bench's provider profiles: the stand-ins' latency profiles (bench/standins/profile.ts, re-exported here)
// plus which EVA providers a run wires to them. A profile is given as a spec string:
//
//   instant                 every stand-in answers at once (EVA's own cost, nothing else)
//   groq                    Groq cloud as seen from Europe/US-east: STT 150 ms, TTFT 150 ms, 500 tok/s, TTS 80 ms
//   ollama-gpu              a local 3B model on a GPU, loaded: STT 0 ms (a local Whisper), TTFT 60 ms, 100 tok/s
//   groq,ttftMs=200         a named profile with overrides (keys: sttMs, ttftMs, tokensPerSec, ttsFirstMs, ttsSpeed)
//   groq,llm=ollama,tts=groq  bench keys: which EVA adapter talks to the stand-ins (see `evaEnv`)
//
// The numbers themselves live in the stand-ins' module so the tests, the stand-in CLI and the bench agree.
import { PROFILES, parseProfile, type LatencyProfile } from './standins/profile.js';

export { PROFILES, parseProfile, type LatencyProfile };

export const DEFAULT_PROFILES = ['instant', 'groq', 'ollama-gpu'] as const;

export type BenchLlm = 'groq' | 'ollama';
export type BenchTts = 'espeak' | 'groq';

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
}

const BENCH_KEYS = ['llm', 'tts'] as const;

/** Parse one profile spec; throws an Error that names the known profiles and keys. */
export function parseBenchProfile(spec: string): BenchProfile {
  const parts = spec.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error(`empty profile; known: ${Object.keys(PROFILES).join(', ')}`);
  const rest: string[] = [];
  let llm: BenchLlm | undefined;
  let tts: BenchTts = 'espeak';
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
  return {
    spec,
    label: parts.join('+'),
    latency,
    llm: llm ?? (base.startsWith('ollama') ? 'ollama' : 'groq'),
    tts,
  };
}

/** Where the stand-ins listen (from their start()). */
export interface StandinUrls {
  /** The Groq stand-in's base URL (groq-sdk appends /openai/v1 itself). */
  groq: string;
  /** The Groq stand-in's OpenAI-compatible base, `${groq}/openai/v1`. */
  openai: string;
  ollama: string;
}

/**
 * EVA's environment for a profile. Groq LLM profiles use Groq for STT too (GROQ_API_KEY + GROQ_BASE_URL);
 * Ollama profiles transcribe through the OpenAI-compatible `/audio/transcriptions` of the Groq stand-in
 * (standing in for a local Whisper server) and talk to the Ollama stand-in.
 */
export function evaEnv(p: BenchProfile, urls: StandinUrls): Record<string, string> {
  const env: Record<string, string> = { EVA_TTS: p.tts };
  if (p.llm === 'groq' || p.tts === 'groq') {
    env.GROQ_API_KEY = 'standin';
    env.GROQ_BASE_URL = urls.groq;
  }
  if (p.llm === 'groq') {
    env.EVA_STT = 'groq';
    env.EVA_LLM = 'groq';
  } else {
    env.EVA_STT = 'openai';
    env.EVA_STT_URL = urls.openai;
    env.EVA_STT_API_KEY = 'standin';
    env.EVA_LLM = 'ollama';
    env.OLLAMA_HOST = urls.ollama;
  }
  return env;
}

/** One line for progress output and the README: "STT 150 ms, TTFT 150 ms, 500 tok/s, TTS first audio 80 ms". */
export function describeProfile(p: BenchProfile): string {
  const l = p.latency;
  const rate = Number.isFinite(l.tokensPerSec) ? `${l.tokensPerSec} tok/s` : 'tokens at once';
  const tts = p.tts === 'espeak' ? 'TTS embedded eSpeak' : `TTS Groq stand-in, first audio ${l.ttsFirstMs} ms`;
  return `STT ${l.sttMs} ms, TTFT ${l.ttftMs} ms, ${rate}, LLM ${p.llm}, ${tts}`;
}

/**
 * Profiles from the command line: `--profile SPEC` (repeatable; one spec each, commas inside a spec are
 * overrides) or `--profiles a,b,c` (names only). Default: all three named profiles.
 */
export function profilesFromArgs(profileFlags: readonly string[], profilesFlag?: string): BenchProfile[] {
  const specs = [...profileFlags];
  if (profilesFlag) specs.push(...profilesFlag.split(',').map((s) => s.trim()).filter(Boolean));
  return (specs.length ? specs : [...DEFAULT_PROFILES]).map(parseBenchProfile);
}
