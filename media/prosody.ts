// Prosody of the end of a turn, for end-of-turn prediction: does the last voiced stretch sound finished?
// A pure, synchronous function of the PCM (no timers, no I/O), called once per pause on the main thread, so it
// looks only at the last ANALYSIS_MS of voice: 10 ms energy frames for the end of voice, the energy decay and
// syllable-like nuclei; pitchfinder's YIN on 32 ms frames at ~4 kHz, every 10 ms over the final 0.4 s and every
// 20 ms before it, for the pitch contour. Measured (Node 20, x86): ~1.8 ms a call (median; 1 s, 5 s or 9.5 s of
// audio alike, as only the end is read), of which YIN is ~1.5 ms.
import { YIN } from 'pitchfinder';

export interface ProsodyFeatures {
  /** Pitch change over the final pitched stretch (the last SLOPE_MS before the last pitched frame), as a robust
   *  (Theil–Sen) slope scaled to SLOPE_MS, in semitones; negative = falling. Null with too little pitched voice. */
  pitchSlopeSt: number | null;
  /** Median F0 of the last 100 ms of pitched voice vs median F0 0.35–0.8 s before the end of pitched voice,
   *  in semitones (negative = ends lower). Null if either stretch has too few pitched frames. */
  finalDropSt: number | null;
  /** Median F0 of the last 50 ms of pitched voice above the low point of the final SLOPE_MS (3-frame median),
   *  semitones, ≥ 0: ~0 when the voice ends at its lowest (a full stop), large for a final rise (a comma's
   *  continuation rise, a question). Null with too little pitched voice. */
  finalRiseSt: number | null;
  /** RMS of the last 100 ms of voice relative to the median voiced frame RMS of the analysed stretch, dB
   *  (negative = decaying). 0 when there is no voice. */
  energyDropDb: number;
  /** Duration of the last syllable-like energy nucleus relative to the median of the nuclei before it in the
   *  analysed stretch (>1 = lengthened). Null with fewer than 3 whole nuclei. */
  finalLengthening: number | null;
  /** ms of voice (10 ms frames above the voice threshold) in the analysed stretch; 0 = nothing to judge. */
  voicedMs: number;
  /** ms of that voice where YIN found a pitch (a reliability hint for the three pitch features). */
  pitchedMs: number;
}

export type Contour = 'falling' | 'level' | 'rising' | 'unknown';

export interface ProsodyOptions {
  /** Default 16000. Any rate ≥ 8 kHz works; pitch is tracked after decimating to ~4 kHz. */
  sampleRate?: number;
  /** Where the voice ended (exclusive sample index), e.g. from the VAD. Default: found by energy, trimming
   *  trailing silence within the last END_SCAN_MS of the buffer. */
  endSample?: number;
}

/** Voice looked at: ~4–5 syllables of conversational speech, enough for the 0.8 s pitch reference. */
const ANALYSIS_MS = 1000;
/** Energy frame and pitch hop. */
const FRAME_MS = 10;
/** When endSample is not given, the end of voice is searched for this far back: a pause longer than this has
 *  no voice left to judge (the turn detector asks at pauses of 0.2–3 s). */
const END_SCAN_MS = 4000;
/** A frame is voice when its level is above all of: this absolute floor (dBFS; 16-bit dither is ≈ −90)... */
const VOICE_FLOOR_DBFS = -55;
/** ...this far below the loudest frame of the scanned audio (eSpeak's syllable valleys are 15–25 dB down)... */
const VOICE_BELOW_PEAK_DB = 35;
/** ...and this far above the quietest frame (the line's noise floor), but never closer than VOICE_RANGE_DB under
 *  the peak: audio that is all voice (a VAD-cut segment, a test tone) has no noise floor to see. So steady
 *  noise alone reads as voice, mostly without pitch: ask after the VAD has heard speech. */
const VOICE_ABOVE_FLOOR_DB = 12;
const VOICE_RANGE_DB = 20;

/** Pitch tracking rate. YIN's cost is quadratic in its frame: at 8 kHz a 256-sample frame took 90 µs and a
 *  call 7.7 ms; at 4 kHz (128 samples, 22 µs) the features moved by < 0.5 st on the eSpeak clips. F0 and its
 *  first harmonics stay under 2 kHz. */
const PITCH_RATE_TARGET = 4000;
/** Lowest F0 tracked; YIN's lag range is half its frame, so this sets the frame: 128 samples at 4 kHz (32 ms,
 *  lags to 62.5 Hz). eSpeak's falling ends reach 74 Hz; low male voices go to ~70 Hz. */
const MIN_F0 = 65;
const MAX_F0 = 500;
/** YIN's absolute threshold on the normalized difference: pitchfinder's default 0.1 is made for music; speech
 *  is less periodic (aubio uses 0.15–0.2). */
const YIN_THRESHOLD = 0.2;
/** Mean square each frame is scaled to before YIN (see trackPitch). */
const YIN_SCALE = 1e4;
/** Frames further than this from the median of their neighbours are octave errors or creaks: dropped. */
const OUTLIER_ST = 7;

const SLOPE_MS = 350;
const FINAL_MS = 100;
const RISE_END_MS = 50;
const REF_FROM_MS = 350;
const REF_TO_MS = 800;
/** The last pitched frame must be this close to the end of voice (a final /s/ or /t/ is unvoiced). */
const MAX_UNVOICED_TAIL_MS = 250;
/** Fewest pitched frames for a slope or a rise (over at least half of SLOPE_MS) and for each median of
 *  finalDropSt. */
const MIN_SLOPE_FRAMES = 8;
const MIN_MEDIAN_FRAMES = 3;

/** Syllable nuclei: energy peaks separated by dips of at least NUCLEUS_DIP_DB (smoothed over 30 ms); a
 *  nucleus lasts while within NUCLEUS_WIDTH_DB of its peak. */
const NUCLEUS_DIP_DB = 3;
const NUCLEUS_WIDTH_DB = 6;

interface PitchFrame {
  /** Centre, ms before the end of voice (≥ 0). */
  ago: number;
  /** F0 in semitones re 1 Hz. */
  st: number;
  /** ms of voice this frame stands for (its hop). */
  ms: number;
}

const EMPTY: ProsodyFeatures = { pitchSlopeSt: null, finalDropSt: null, finalRiseSt: null, energyDropDb: 0, finalLengthening: null, voicedMs: 0, pitchedMs: 0 };

/** Prosodic features of the last ~1 s of voice in `pcm` (mono Int16). */
export function prosodyOf(pcm: Int16Array, opts: ProsodyOptions = {}): ProsodyFeatures {
  const rate = opts.sampleRate ?? 16000;
  if (!(rate >= 8000 && Number.isFinite(rate))) throw new RangeError(`invalid sample rate ${rate}`);
  const hop = Math.round((rate * FRAME_MS) / 1000);
  const given = opts.endSample !== undefined;
  const last = Math.max(0, Math.min(pcm.length, Math.floor(opts.endSample ?? pcm.length)));
  const scanMs = given ? ANALYSIS_MS : END_SCAN_MS + ANALYSIS_MS;

  // 10 ms frame levels, newest last, ending at `last`.
  const nScan = Math.min(Math.floor(last / hop), Math.round(scanMs / FRAME_MS));
  if (nScan < 3) return { ...EMPTY };
  const scanStart = last - nScan * hop;
  const db = new Float64Array(nScan);
  for (let f = 0; f < nScan; f++) db[f] = levelDb(pcm, scanStart + f * hop, hop);
  let peak = -Infinity;
  let floor = Infinity;
  for (let f = 0; f < nScan; f++) (peak = Math.max(peak, db[f]!)), (floor = Math.min(floor, db[f]!));
  const thr = Math.max(VOICE_FLOOR_DBFS, peak - VOICE_BELOW_PEAK_DB, Math.min(floor + VOICE_ABOVE_FLOOR_DB, peak - VOICE_RANGE_DB));
  if (peak <= thr) return { ...EMPTY };

  // End of voice: the last voice frame (the given end is trusted as is).
  let endF = nScan;
  if (!given) while (endF > 0 && db[endF - 1]! <= thr) endF--;
  const nWin = Math.min(endF, Math.round(ANALYSIS_MS / FRAME_MS));
  const winF = endF - nWin;
  const win = db.subarray(winF, endF);
  const end = scanStart + endF * hop;
  const start = end - nWin * hop;

  let voiced = 0;
  const voicedDb: number[] = [];
  for (const d of win) if (d > thr) (voiced++, voicedDb.push(d));
  if (voiced === 0) return { ...EMPTY };

  const finalFrames = Math.min(nWin, FINAL_MS / FRAME_MS);
  const finalDb = levelDb(pcm, end - finalFrames * hop, finalFrames * hop);
  const energyDropDb = finalDb - median(voicedDb);

  const pitch = trackPitch(pcm, rate, start, end, thr);
  const { pitchSlopeSt, finalDropSt, finalRiseSt } = pitchFeatures(pitch);

  return {
    pitchSlopeSt,
    finalDropSt,
    finalRiseSt,
    energyDropDb: round2(energyDropDb),
    finalLengthening: finalLengthening(win, thr, median(voicedDb), winF > 0 && db[winF - 1]! > thr),
    voicedMs: voiced * FRAME_MS,
    pitchedMs: pitch.reduce((ms, p) => ms + p.ms, 0),
  };
}

// Contour boundaries, from eSpeak NG en-us at 175 wpm resampled to 16 kHz, through this module (6 comma/full-stop
// pairs and 4 yes/no questions, printed by prosody.test.ts): full stops end at their low point (finalRiseSt
// 0–0.4) after a fall (finalDropSt −2.3 to −5.8, pitchSlopeSt −4.3 to −8.0); commas end in a continuation rise
// from a dip (finalRiseSt 1.8–3.9, finalDropSt −0.3 to −3.1) and questions in one of 3.3–3.8 st, some after a
// fall as deep as a full stop's (slope −3.7, drop −4.1): so the rise is looked at first. 1.5 st sits between.
/** finalRiseSt or pitchSlopeSt at or above this: rising. */
const RISE_ST = 1.5;
/** Otherwise finalDropSt or pitchSlopeSt at or below this: falling. */
const FALL_ST = -1.5;

/** Falling, level or rising end of voice; unknown without enough pitched voice. A comma's continuation rise
 *  and a question both come out rising: telling them apart is the text's job. */
export function contourOf(f: ProsodyFeatures): Contour {
  if (f.pitchSlopeSt === null && f.finalDropSt === null && f.finalRiseSt === null) return 'unknown';
  const slope = f.pitchSlopeSt ?? 0;
  if ((f.finalRiseSt ?? 0) >= RISE_ST || slope >= RISE_ST) return 'rising';
  if ((f.finalDropSt ?? 0) <= FALL_ST || slope <= FALL_ST) return 'falling';
  return 'level';
}

/** Level of pcm[from, from + n) in dBFS (−120 for digital silence). */
function levelDb(pcm: Int16Array, from: number, n: number): number {
  let s = 0;
  const to = Math.min(pcm.length, from + n);
  for (let i = Math.max(0, from); i < to; i++) s += pcm[i]! * pcm[i]!;
  const ms = s / Math.max(1, n) / (32768 * 32768);
  return ms > 1e-12 ? 10 * Math.log10(ms) : -120;
}

// pitchfinder's YIN reads only the power of two below the buffer's length and allocates per call; the detector
// itself is stateless and cached per rate. YIN over pitchfinder's other detectors: Macleod drops F0 < 80 Hz
// (eSpeak's falls end at 79 Hz) and ignores its bufferSize option, AMDF/ACF2+ are octave-error prone on speech,
// DynamicWavelet is made for music.
const detectors = new Map<number, (x: Float32Array) => number | null>();

/** F0 frames over pcm[from, end), voiced frames only (level above thr), cleaned of octave jumps. */
function trackPitch(pcm: Int16Array, rate: number, from: number, end: number, thr: number): PitchFrame[] {
  const dec = Math.max(1, Math.round(rate / PITCH_RATE_TARGET));
  const r = rate / dec;
  let frame = 2;
  while (frame / 2 < r / MIN_F0) frame *= 2;
  let detect = detectors.get(r);
  if (!detect) detectors.set(r, (detect = YIN({ sampleRate: r, threshold: YIN_THRESHOLD })));

  // Decimate with a triangular low-pass (two boxcars of dec taps: zeros at multiples of the new rate).
  const n = Math.floor((end - from) / dec);
  if (n < frame + 1) return [];
  const x = new Float32Array(n);
  const w = dec * dec;
  for (let k = 0; k < n; k++) {
    const c = from + k * dec;
    let s = 0;
    for (let j = -(dec - 1); j <= dec - 1; j++) s += (pcm[c + j] ?? 0) * (dec - Math.abs(j));
    x[k] = s / w / 32768;
  }

  const hop = r * (FRAME_MS / 1000);
  const thrPow = 10 ** (thr / 10);
  const out: PitchFrame[] = [];
  const buf = new Float32Array(frame + 1); // YIN reads the first `frame` samples
  // Every 10 ms over the final stretch, every 20 ms further back (only medians are taken there): ≤ 70 frames.
  const dense = r * ((SLOPE_MS + 50) / 1000);
  for (let s0 = n - frame - 1; s0 >= 0; s0 -= n - s0 - frame < dense ? hop : 2 * hop) {
    const s = Math.round(s0);
    let p = 0;
    for (let i = 0; i < frame; i++) p += x[s + i]! * x[s + i]!;
    if (p / frame <= thrPow) continue;
    // pitchfinder's cumulative mean starts from 1 instead of d(1) (yinBuffer[1] = 1 before the running sum),
    // so on a quiet or low-passed frame (a nasal, a decaying vowel) d'(2) = 2·d(2)/(1 + d(2)) dips under the
    // threshold and YIN reports ~3.4 kHz (seen on eSpeak's final /n/). Scaled to a mean square of YIN_SCALE,
    // d(τ) is in the thousands and that 1 is lost in it: half the missing frames of the clips came back.
    const k = Math.sqrt((YIN_SCALE * frame) / p);
    for (let i = 0; i <= frame; i++) buf[i] = x[s + i]! * k;
    const f0 = detect(buf);
    if (f0 === null || !(f0 >= MIN_F0 && f0 <= MAX_F0)) continue;
    const ago = ((n - s - frame / 2) / r) * 1000;
    out.push({ ago, st: 12 * Math.log2(f0), ms: n - s0 - frame < dense ? FRAME_MS : 2 * FRAME_MS });
  }
  out.reverse();
  // Octave errors and creaky frames: drop frames far from the median of their ±5 neighbours.
  return out.filter((p, i) => {
    const from = Math.max(0, i - 5);
    const to = Math.min(out.length, i + 6);
    const w = scratch(to - from);
    for (let j = from; j < to; j++) w[j - from] = out[j]!.st;
    return Math.abs(p.st - medianInPlace(w, to - from)) <= OUTLIER_ST;
  });
}

function pitchFeatures(frames: PitchFrame[]): Pick<ProsodyFeatures, 'pitchSlopeSt' | 'finalDropSt' | 'finalRiseSt'> {
  const none = { pitchSlopeSt: null, finalDropSt: null, finalRiseSt: null };
  if (frames.length === 0) return none;
  const tail = frames.at(-1)!.ago; // the end of pitched voice
  if (tail > MAX_UNVOICED_TAIL_MS) return none;
  const within = (a: number, b: number) => frames.filter((p) => p.ago - tail >= a && p.ago - tail <= b);

  const stretch = within(0, SLOPE_MS);
  const span = stretch.length ? stretch[0]!.ago - tail : 0;
  const enough = stretch.length >= MIN_SLOPE_FRAMES && span >= SLOPE_MS / 2;
  const pitchSlopeSt = enough ? round2(-theilSen(stretch) * SLOPE_MS) : null;

  let finalRiseSt: number | null = null;
  if (enough) {
    let low = Infinity;
    for (let i = 1; i + 1 < stretch.length; i++) low = Math.min(low, median3(stretch[i - 1]!.st, stretch[i]!.st, stretch[i + 1]!.st));
    finalRiseSt = round2(Math.max(0, median(within(0, RISE_END_MS).map((p) => p.st)) - low));
  }

  const fin = within(0, FINAL_MS).map((p) => p.st);
  const ref = within(REF_FROM_MS, REF_TO_MS).map((p) => p.st);
  const finalDropSt = fin.length >= MIN_MEDIAN_FRAMES && ref.length >= MIN_MEDIAN_FRAMES ? round2(median(fin) - median(ref)) : null;
  return { pitchSlopeSt, finalDropSt, finalRiseSt };
}

/** Median of pairwise slopes of st against `ago` (st per ms; positive = higher further back = falling). */
function theilSen(p: PitchFrame[]): number {
  const slopes = scratch((p.length * (p.length - 1)) / 2);
  let n = 0;
  for (let i = 0; i < p.length; i++) {
    for (let j = i + 1; j < p.length; j++) {
      const dt = p[j]!.ago - p[i]!.ago;
      if (dt !== 0) slopes[n++] = (p[j]!.st - p[i]!.st) / dt;
    }
  }
  return medianInPlace(slopes, n);
}

/** Last nucleus duration over the median of the earlier whole nuclei, from 10 ms frame levels. */
function finalLengthening(db: Float64Array, thr: number, medianDb: number, cutAtStart: boolean): number | null {
  const n = db.length;
  // Smoothed over 30 ms; silence is a deep valley.
  const s = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = (db[Math.max(0, i - 1)]! + db[i]! + db[Math.min(n - 1, i + 1)]!) / 3;
    s[i] = db[i]! > thr ? v : thr - 30;
  }
  // Peaks and the valleys between them, with NUCLEUS_DIP_DB hysteresis (Billauer's peakdet).
  const peaks: number[] = [];
  const valleys: number[] = [];
  let mx = -Infinity;
  let mn = Infinity;
  let mxAt = -1;
  let mnAt = -1;
  let seekMax = true;
  for (let i = 0; i < n; i++) {
    const v = s[i]!;
    if (v > mx) (mx = v), (mxAt = i);
    if (v < mn) (mn = v), (mnAt = i);
    if (seekMax && v < mx - NUCLEUS_DIP_DB) {
      if (mx > thr) peaks.push(mxAt);
      (mn = v), (mnAt = i), (seekMax = false);
    } else if (!seekMax && v > mn + NUCLEUS_DIP_DB) {
      if (peaks.length) valleys.push(mnAt);
      (mx = v), (mxAt = i), (seekMax = true);
    }
  }
  if (seekMax && mxAt >= 0 && mx > thr) peaks.push(mxAt); // the end of voice ends the last one
  const durs: number[] = [];
  for (let k = 0; k < peaks.length; k++) {
    const p = peaks[k]!;
    const left = k > 0 ? valleys[k - 1]! : -1;
    const right = k < valleys.length ? valleys[k]! : n;
    const top = s[p]! - NUCLEUS_WIDTH_DB;
    let a = p;
    let b = p;
    while (a - 1 > left && s[a - 1]! >= top) a--;
    while (b + 1 < right && s[b + 1]! >= top) b++;
    if (k === 0 && cutAtStart && a === 0) continue; // cut by the window's start: not whole
    if (s[p]! < medianDb) continue; // a release burst or a murmur, not a vowel
    durs.push(b - a + 1);
  }
  if (durs.length < 3) return null;
  return round2(durs.at(-1)! / median(durs.slice(0, -1)));
}

function median(v: readonly number[]): number {
  const a = scratch(v.length);
  for (let i = 0; i < v.length; i++) a[i] = v[i]!;
  return medianInPlace(a, v.length);
}

/**
 * The median of a[0, n), reordering them. One pause's analysis takes a few hundred medians (an outlier check per
 * pitch frame, Theil–Sen's pairwise slopes): they sort a shared scratch array in place instead of copying into a
 * new array each (prosody was EVA's own largest allocator under load).
 * @internal exported for its test
 */
export function medianInPlace(a: Float64Array, n: number): number {
  if (n === 0) return NaN;
  if (n <= 16) {
    for (let i = 1; i < n; i++) {
      const v = a[i]!;
      let j = i - 1;
      for (; j >= 0 && a[j]! > v; j--) a[j + 1] = a[j]!;
      a[j + 1] = v;
    }
  } else a.subarray(0, n).sort();
  const m = n >> 1;
  return n % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

function median3(a: number, b: number, c: number): number {
  return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
}

let scratchBuf = new Float64Array(256);
/** A scratch array of at least n values, reused by every median (the analysis is synchronous: one user at a time). */
function scratch(n: number): Float64Array {
  if (scratchBuf.length < n) scratchBuf = new Float64Array(Math.max(n, scratchBuf.length * 2));
  return scratchBuf;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}
