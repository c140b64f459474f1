// Latency profiles for the stand-in provider servers: how long each kind of request takes before its first byte,
// and how fast tokens flow after that. Numbers for `groq` are typical of Groq cloud seen from Europe/US-east
// (Whisper-turbo ~150 ms for a short segment, 8B model TTFT ~150 ms then ~500 tok/s, PlayAI first audio ~80 ms);
// `ollama-gpu` is a local 3B model on a consumer GPU with the model already loaded (keep_alive); `local-stream` is
// a streaming Whisper on a local GPU (partial transcripts every 100 ms while the person talks, the final one 30 ms
// after the audio is committed) with a local 3B-class model behind it (TTFT 60 ms, 150 tok/s).

export interface LatencyProfile {
  /** Transcription: request received → response sent. */
  sttMs: number;
  /** Chat: request received → first token. */
  ttftMs: number;
  /** Token rate after the first token; Infinity = as fast as possible. */
  tokensPerSec: number;
  /** Speech: request received → first audio bytes. */
  ttsFirstMs: number;
  /** Speech after the first bytes, in multiples of real time; Infinity (default) = all at once. */
  ttsSpeed?: number;
  /**
   * Streaming STT (the realtime stand-in): a partial transcript at most this often while audio arrives. Its final
   * transcript comes `sttMs` after the commit. Unset: the profile has no streaming STT of its own (100 ms is used).
   */
  partialEveryMs?: number;
}

export const PROFILES: Readonly<Record<string, Readonly<LatencyProfile>>> = Object.freeze({
  instant: Object.freeze({ sttMs: 0, ttftMs: 0, tokensPerSec: Infinity, ttsFirstMs: 0 }),
  groq: Object.freeze({ sttMs: 150, ttftMs: 150, tokensPerSec: 500, ttsFirstMs: 80 }),
  'ollama-gpu': Object.freeze({ sttMs: 0, ttftMs: 60, tokensPerSec: 100, ttsFirstMs: 0 }),
  'local-stream': Object.freeze({ sttMs: 30, ttftMs: 60, tokensPerSec: 150, ttsFirstMs: 0, partialEveryMs: 100 }),
});

const KEYS: readonly (keyof LatencyProfile)[] = ['sttMs', 'ttftMs', 'tokensPerSec', 'ttsFirstMs', 'ttsSpeed', 'partialEveryMs'];
/** One minute: a stand-in never needs to wait longer, and a typo such as 15000000 should fail loudly. */
const MAX_MS = 60_000;

/**
 * `"groq"`, `"groq,ttftMs=200"`, `"ttftMs=5,tokensPerSec=inf"` (overrides on top of `instant`).
 * Throws an Error naming the known profiles or keys when a part is not understood.
 */
export function parseProfile(spec: string): LatencyProfile {
  const parts = spec.split(',').map((s) => s.trim()).filter(Boolean);
  let profile: LatencyProfile = { ...PROFILES.instant! };
  parts.forEach((part, i) => {
    const eq = part.indexOf('=');
    if (eq < 0) {
      const named = PROFILES[part];
      if (!named) throw new Error(`unknown latency profile ${JSON.stringify(part)}; known: ${Object.keys(PROFILES).join(', ')}`);
      if (i !== 0) throw new Error(`profile name ${JSON.stringify(part)} must come first in ${JSON.stringify(spec)}`);
      profile = { ...named };
      return;
    }
    const key = part.slice(0, eq).trim() as keyof LatencyProfile;
    const raw = part.slice(eq + 1).trim();
    if (!KEYS.includes(key)) throw new Error(`unknown latency profile key ${JSON.stringify(key)}; known: ${KEYS.join(', ')}`);
    profile[key] = parseValue(key, raw);
  });
  return profile;
}

function parseValue(key: keyof LatencyProfile, raw: string): number {
  const isRate = key === 'tokensPerSec' || key === 'ttsSpeed';
  if (isRate && /^(inf|infinity)$/i.test(raw)) return Infinity;
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n)) throw new Error(`${key} must be a number, got ${JSON.stringify(raw)}`);
  if (isRate) {
    if (n <= 0) throw new Error(`${key} must be > 0 (or inf), got ${raw}`);
    return n;
  }
  if (n < 0 || n > MAX_MS) throw new Error(`${key} must be from 0 to ${MAX_MS} ms, got ${raw}`);
  // The realtime stand-in refuses partials more often than every 10 ms (a typo such as 0 would spin).
  if (key === 'partialEveryMs' && n < 10) throw new Error(`partialEveryMs must be at least 10 ms, got ${raw}`);
  return n;
}

/** A profile given as an object, a name/spec string or nothing (instant). */
export function toProfile(p: LatencyProfile | string | undefined): LatencyProfile {
  if (p === undefined) return { ...PROFILES.instant! };
  if (typeof p === 'string') return parseProfile(p);
  return { ...p };
}
