// Deterministic speech-shaped audio for the TTS stand-ins: a voiced buzz (140 Hz with harmonics and a little
// breath noise) under a ~4 Hz syllable envelope, its length proportional to the text. Not intelligible, but it has
// speech's level, rhythm and spectrum, so VAD, Opus and the pacer see realistic work.

/** ~15 characters per second of speech, the pace of a calm English speaker. */
export const MS_PER_CHAR = 65;
const MIN_MS = 200;
/** Cap: one stand-in reply is never more than 30 s of audio (1.4 MB at 24 kHz). */
const MAX_MS = 30_000;

export function speechDurationMs(text: string): number {
  return Math.min(MAX_MS, Math.max(MIN_MS, text.trim().length * MS_PER_CHAR));
}

export function synthSpeech(text: string, sampleRate: number): Int16Array {
  const n = Math.round((speechDurationMs(text) * sampleRate) / 1000);
  const out = new Int16Array(n);
  let seed = hash(text);
  const rand = (): number => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const f0 = 120 + (hash(text) % 40);
  let phase = 0;
  const fade = Math.min(n / 2, sampleRate * 0.01);
  for (let i = 0; i < n; i++) {
    const t = i / sampleRate;
    const f = f0 * (1 + 0.03 * Math.sin(2 * Math.PI * 5 * t));
    phase += (2 * Math.PI * f) / sampleRate;
    const voiced = Math.sin(phase) + 0.5 * Math.sin(2 * phase) + 0.25 * Math.sin(3 * phase) + 0.12 * Math.sin(5 * phase);
    const syllable = Math.max(0, Math.sin(2 * Math.PI * 4 * t)) ** 0.6;
    const edge = Math.min(1, i / fade, (n - 1 - i) / fade);
    const v = (voiced * 0.8 + (rand() - 0.5) * 0.3) * (0.15 + 0.85 * syllable) * edge;
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v * 6000)));
  }
  return out;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
