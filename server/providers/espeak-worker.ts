// eSpeak NG (GPL-3.0, compiled by emscripten) in a worker thread: a replaceable adapter. This file runs only as the
// worker that tts-espeak.ts starts (which imports nothing but its types): at top level it needs a parentPort.
// One synthesis blocks its thread for ~7–22 ms per sentence, so it runs here, never on the main thread. Audio is
// posted as it is made (one callback ≈ 100 ms at 22050 Hz), with the word timings that came with it. An abort is
// seen at the next callback through a shared flag: messages cannot arrive mid-synthesis.
//
// Audio buffers are copied (4.4 kB per post, a few µs), NOT transferred: the first detached ArrayBuffer in this
// thread invalidates V8's typed-array "detaching protector", which deoptimizes eSpeak's code (wasm2js output full
// of typed-array accesses). Measured: with transfer, the first sentence after warm-up took 60–90 ms and every
// later one 12–14 ms; copied, 6 ms and 1 ms to first audio. Nothing in this thread may detach a buffer.
import { parentPort, workerData } from 'node:worker_threads';
import { niceThisThread } from '../../media/thread-nice.js';

export interface WorkerWord {
  textOffset: number;
  textLength: number;
  audioMs: number;
}

export interface WorkerVoice {
  id: string;
  name: string;
  language?: string;
}

export type ToWorker =
  | { type: 'synth'; id: number; text: string; voice: string; rate: number; pitch: number }
  | { type: 'voices'; id: number }
  /**
   * Fault injection for tests: the next synthesis hangs this thread (60 s) or exits it after `afterChunks` chunks
   * of audio. Ignored unless the worker was started with EVA_TEST_FAULTS=1.
   */
  | { type: 'debug'; fault: 'hang' | 'exit'; afterChunks: number };

export type FromWorker =
  | { type: 'ready'; sampleRate: number; loadMs: number; warmupMs: number }
  | { type: 'audio'; id: number; samples: Int16Array; words: WorkerWord[] }
  | { type: 'done'; id: number; aborted: boolean; /** CPU ms this synthesis took in the worker. */ synthMs: number }
  | { type: 'error'; id: number; message: string }
  | { type: 'voices'; id: number; voices: WorkerVoice[] }
  | { type: 'fatal'; message: string };

/** Shared with the main thread: slot 0 holds the id of the request to stop. */
export interface WorkerInit {
  abort: SharedArrayBuffer;
  /** This thread's nice value (media/thread-nice.ts); 0 leaves it unchanged. */
  nice: number;
}

interface EspeakEvent {
  type: string;
  text_position: number;
  word_length: number;
  audio_position: number;
}
interface EspeakVoiceInfo {
  name: string;
  identifier: string;
  languages: { priority: number; name: string }[];
}
interface EspeakEngine {
  set_voice(name: string): number;
  set_rate(wpm: number): void;
  set_pitch(pitch: number): void;
  get_samplerate(): number;
  list_voices(): EspeakVoiceInfo[];
  synthesize(text: string, cb: (samples: Int16Array, events: EspeakEvent[]) => boolean): void;
}

// The package ships no types: a non-literal specifier keeps the compiler from asking for them.
const ESPEAK_PACKAGE: string = '@echogarden/espeak-ng-emscripten';

// The package is wasm2js output (plain JS, not WASM): V8 has to JIT its huge synthesis function, which runs once
// per call, so it is optimized in its loops and re-specialized on new kinds of input. Measured here: the first
// syntheses take 50–440 ms; after the fixed set twice and ~8 generated sentences, a new 12-word sentence takes
// ~6 ms (~2 ms of CPU per second of speech) with first audio after ~1 ms. Warm-up goes on with generated sentences
// until that cost stays low, within a time cap (a busy CPU never settles): ~0.4–0.6 s, off the main thread.
const WARMUP_FIXED = [
  'Hello! How can I help you today?',
  'Sure, the weather in Paris is mild: around 18 degrees, with light rain at 3:30 p.m.',
  'Pack my box with five dozen liquor jugs; the job requires extra pluck and zeal from every young wage earner.',
  'Would you like me to read it again, or should we move on to something else?',
];
const WARMUP_WORDS = (
  'the a quick brown fox jumps over lazy dog weather today tomorrow please could would you I we they station ' +
  'train music river city answer question think know really maybe sure okay seven twelve forty 3.5 percent price ' +
  'dollars morning evening friend family coffee water light happy sorry great thanks help need want go see find read'
).split(' ');
const WARMUP = { minNew: 8, maxNew: 40, settledMsPerSecond: 3, settledRuns: 4, capMs: 2000 };

/** Deterministic varied sentences (an LCG over a word list): new text each time, same text each start. */
function* warmupSentences(): Generator<string> {
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (;;) {
    const n = 8 + Math.floor(rnd() * 8);
    const ws = Array.from({ length: n }, () => WARMUP_WORDS[Math.floor(rnd() * WARMUP_WORDS.length)]!);
    ws[0] = ws[0]![0]!.toUpperCase() + ws[0]!.slice(1);
    if (n > 10) ws[5] += ',';
    yield ws.join(' ') + (rnd() < 0.3 ? '?' : '.');
  }
}

const port = parentPort;
if (!port) throw new Error('espeak-worker must run in a worker thread');
const abortFlag = new Int32Array((workerData as WorkerInit).abort);
niceThisThread((workerData as WorkerInit).nice);

let engine: EspeakEngine | null = null;
let voiceList: EspeakVoiceInfo[] = [];
let current = { voice: '', rate: -1, pitch: -1 };
const inbox: ToWorker[] = [];
const faultsAllowed = process.env.EVA_TEST_FAULTS === '1';
/** The fault a test armed for the next synthesis (see ToWorker 'debug'). */
let armed: { fault: 'hang' | 'exit'; afterChunks: number } | null = null;

function injectFault(chunks: number): void {
  if (!armed || chunks < armed.afterChunks) return;
  const { fault } = armed;
  armed = null;
  if (fault === 'exit') process.exit(1);
  // Blocks the thread as a stuck synthesis would (bounded: 60 s); worker.terminate() ends the wait.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
}

function post(msg: FromWorker): void {
  port!.postMessage(msg);
}

/** UTF-16 offset of each code point of `text` (eSpeak counts positions in code points, from 1), plus the end. */
function codePointOffsets(text: string): Uint32Array {
  const out = new Uint32Array(text.length + 1);
  let k = 0;
  for (let i = 0; i < text.length; i++) {
    out[k++] = i;
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  out[k] = text.length;
  return out.subarray(0, k + 1);
}

function selectVoice(e: EspeakEngine, voice: string): boolean {
  if (voice === current.voice) return true;
  let ok = e.set_voice(voice) === 0;
  if (!ok) {
    // Some language names (en-gb, fr-fr) are not voice names; find the voice that lists the language.
    const want = voice.toLowerCase();
    const match = voiceList.find((v) => v.name.toLowerCase() === want || v.languages.some((l) => l.name.toLowerCase() === want));
    ok = match !== undefined && e.set_voice(match.identifier) === 0;
  }
  if (!ok) {
    if (current.voice) e.set_voice(current.voice);
    return false;
  }
  current.voice = voice;
  return true;
}

type Send = (msg: FromWorker) => void;

function synth(e: EspeakEngine, msg: Extract<ToWorker, { type: 'synth' }>, send: Send): void {
  const { id } = msg;
  const t0 = performance.now();
  if (!selectVoice(e, msg.voice)) {
    send({ type: 'error', id, message: `unknown voice "${msg.voice}"` });
    return;
  }
  if (msg.rate !== current.rate) (e.set_rate(msg.rate), (current.rate = msg.rate));
  if (msg.pitch !== current.pitch) (e.set_pitch(msg.pitch), (current.pitch = msg.pitch));
  // eSpeak reads the text as SSML-ish markup: angle brackets would start tags. Same-length replacement keeps offsets.
  const text = msg.text.replace(/[<>]/g, ' ');
  let aborted = Atomics.load(abortFlag, 0) === id;
  if (!aborted && /[\p{L}\p{N}]/u.test(text)) {
    const offsets = codePointOffsets(text);
    const last = offsets.length - 1;
    let lastStart = -1;
    let chunks = 0;
    e.synthesize(text, (samples, events) => {
      if (Atomics.load(abortFlag, 0) === id) {
        aborted = true;
        return true;
      }
      if (armed && id >= 0) injectFault(chunks++);
      const words: WorkerWord[] = [];
      for (const ev of events) {
        if (ev.type !== 'word' || ev.text_position < 1) continue;
        const cp = Math.min(ev.text_position - 1, last);
        const start = offsets[cp]!;
        const end = offsets[Math.min(cp + Math.max(0, ev.word_length), last)]!;
        if (start < lastStart || start >= text.length) continue; // eSpeak's numbers and emoji can repeat positions
        lastStart = start;
        words.push({ textOffset: start, textLength: end - start, audioMs: ev.audio_position });
      }
      send({ type: 'audio', id, samples, words }); // copied, not transferred: see the head of this file
      return false;
    });
  }
  send({ type: 'done', id, aborted, synthMs: performance.now() - t0 });
}

function handle(e: EspeakEngine, msg: ToWorker): void {
  switch (msg.type) {
    case 'synth':
      try {
        synth(e, msg, post);
      } catch (err) {
        post({ type: 'error', id: msg.id, message: (err as Error).message ?? String(err) });
      }
      return;
    case 'debug':
      if (faultsAllowed) armed = { fault: msg.fault, afterChunks: msg.afterChunks };
      return;
    case 'voices':
      post({
        type: 'voices',
        id: msg.id,
        voices: voiceList.map((v) => ({ id: v.identifier, name: v.name, language: v.languages[0]?.name })),
      });
      return;
  }
}

function drain(): void {
  if (!engine) return;
  for (let msg = inbox.shift(); msg; msg = inbox.shift()) handle(engine, msg);
}

port.on('message', (msg: ToWorker) => {
  inbox.push(msg);
  drain();
});

async function load(): Promise<void> {
  const t0 = performance.now();
  const { default: createModule } = (await import(ESPEAK_PACKAGE)) as {
    default: () => Promise<{ eSpeakNGWorker: new () => EspeakEngine }>;
  };
  const m = await createModule();
  const e = new m.eSpeakNGWorker();
  voiceList = e.list_voices();
  const loadMs = performance.now() - t0;
  const t1 = performance.now();
  // Through the same code path as requests (callback, word mapping), messages dropped; id -1 is never aborted.
  let samples = 0;
  const count: Send = (msg) => {
    if (msg.type === 'audio') samples += msg.samples.length;
  };
  const say = (text: string): number => {
    samples = 0;
    const t = performance.now();
    synth(e, { type: 'synth', id: -1, text, voice: 'en-us', rate: 175, pitch: 50 }, count);
    return (performance.now() - t) / Math.max(0.1, samples / e.get_samplerate());
  };
  for (const text of [...WARMUP_FIXED, ...WARMUP_FIXED]) say(text);
  let settled = 0;
  let n = 0;
  for (const text of warmupSentences()) {
    settled = say(text) < WARMUP.settledMsPerSecond ? settled + 1 : 0;
    if (++n >= WARMUP.maxNew || performance.now() - t1 > WARMUP.capMs) break;
    if (n >= WARMUP.minNew && settled >= WARMUP.settledRuns) break;
  }
  engine = e;
  post({ type: 'ready', sampleRate: e.get_samplerate(), loadMs, warmupMs: performance.now() - t1 });
  drain();
}

load().catch((err: unknown) => {
  post({ type: 'fatal', message: (err as Error)?.message ?? String(err) });
  process.exit(1);
});
