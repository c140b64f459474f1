// Signal level of 16-bit PCM, shared by the echo gate, the pacer, the probe client and the tests.

/** Root mean square of the samples (0 for none), in sample units (full scale 32768). */
export function rmsOf(pcm: Int16Array): number {
  let s = 0;
  for (let i = 0; i < pcm.length; i++) s += pcm[i]! * pcm[i]!;
  return Math.sqrt(s / Math.max(1, pcm.length));
}

/** How far back from the end of the last voiced VAD window the voice may really have ended: three windows. */
const EDGE_SCAN_MS = 96;
const EDGE_FRAME_MS = 10;
/** Voice is within this many dB of the loudest 10 ms of the last 300 ms… */
const EDGE_BELOW_PEAK_DB = 25;
/** …and above this absolute floor (about −50 dBFS). */
const EDGE_FLOOR_RMS = 100;

/**
 * Where voice really ended, as ms before `endSample`: Silero keeps its probability above the off threshold for
 * 0–2 windows after speech stops (measured on the bench clips: the end of the last voiced window is 28 ms late at
 * the median, 68 ms at p95), so the silence EVA counts starts late by that much. Scans the last EDGE_SCAN_MS in
 * 10 ms frames for the last one still near the recent speech level. Pure; 0 when nothing looks like voice.
 */
export function voiceEdgeMs(ring: { slice(from: number, to: number): Int16Array }, endSample: number, rate: number): number {
  const frame = Math.round((rate * EDGE_FRAME_MS) / 1000);
  const look = ring.slice(Math.max(0, endSample - Math.round(rate * 0.3)), endSample);
  const frames = Math.floor(look.length / frame);
  if (frames === 0) return 0;
  const levels: number[] = [];
  for (let i = 0; i < frames; i++) levels.push(rmsOf(look.subarray(look.length - (frames - i) * frame, look.length - (frames - i - 1) * frame)));
  const peak = Math.max(...levels);
  const threshold = Math.max(EDGE_FLOOR_RMS, peak * 10 ** (-EDGE_BELOW_PEAK_DB / 20));
  const scan = Math.min(frames, Math.floor(EDGE_SCAN_MS / EDGE_FRAME_MS));
  for (let k = 0; k < scan; k++) {
    if (levels[frames - 1 - k]! >= threshold) return k * EDGE_FRAME_MS;
  }
  return scan * EDGE_FRAME_MS;
}
