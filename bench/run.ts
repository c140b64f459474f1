// `npm run bench [-- --quick] [--profile groq,ttftMs=200] [--load | --load-only]`: EVA's latency bench through
// real WebRTC. For each profile it starts the stand-in providers (in this process) and EVA itself (a child:
// `node dist/server/main.js`, PORT=0, loopback), calls it with a headless werift client that speaks real audio,
// and measures from the client's side: turns, barge-ins over EVA's reply, backchannels, mid-sentence pauses, the
// seeds' text probes; then optionally the concurrent-call ramp (load.ts). It prints a table and writes
// bench/results/<time>.json (machine, configuration, every trial, summaries), a .txt copy of the table and SVG
// charts. Everything it started is stopped at the end, on failure and on SIGINT. See bench/README.md.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { decodeWav } from '../media/wav.js';
import { DEFAULT_TURN_CONFIG } from '../media/turns.js';
import { AUDIBLE_RMS, analyzeTrial, countTrials, lastAudibleBetween, firstAudibleBetween, summarizeTrials, type ClipClass, type TrialCapture, type TrialKind, type TrialResult } from './latency.js';
import { rampLevels, runLoad } from './load.js';
import { ProbeCall } from './probe-client.js';
import { describeProfile, evaEnv, parseBenchProfile, profilesFromArgs, type BenchProfile } from './profiles.js';
import { formatReport, reportFiles, sttRequestCounts, type BenchResult, type MachineInfo, type ProfileResult } from './report.js';
import { start as startGroq, type GroqStandin } from './standins/groq.js';
import { start as startOllama, type OllamaStandin } from './standins/ollama.js';
import { startRealtimeStandin, type RealtimeStandin } from './standins/realtime.js';
import type { ChatMessageLike } from './standins/server.js';
import { runTextProbes } from './text-probes.js';

const USAGE = `usage: npm run bench -- [options]
  --quick                 a short run (about 1 min per profile): 2 turns, 2 pauses, one of each other trial, no load ramp
  --profile SPEC          a profile, repeatable: instant | groq | ollama-gpu | local-stream, with overrides: groq,ttftMs=200,tts=groq
  --profiles a,b,c        profile names, comma-separated (default: instant,groq,ollama-gpu,local-stream)
  --turns N               turns per profile (default 20; quick 3)
  --barge N               barge-in trials per profile (default 10; quick 1)
  --backchannel N         backchannel trials per profile (default 5; quick 1)
  --pause N               mid-sentence pause trials per profile (default 20; quick 2); every other one gets partial
                          transcripts that end in a full stop
  --echo N                trials with EVA's own answer fed back into the mic (default 5; quick 0)
  --echo-db DB            how much quieter that echo is than EVA's audio as received (default 20)
  --barge-delay MS        speak over EVA this long after its reply starts (default 300), plus 0–20 ms spread over
                          the trials (the reply's frame grid sampled at every phase)
  --no-text               skip the text probes
  --load                  also run the load ramp in a --quick run (a full run always does)
  --no-load               skip the load ramp
  --load-only             only the load ramp
  --load-profile SPEC     profile for the load ramp (default groq)
  --load-max N            stop ramping at N calls (default 160; quick 8)
  --load-step N           ramp by N calls a step (10, 20, 30 …) instead of doubling (10, 20, 40 …)
  --load-window MS        measuring window per step (default 15000; quick 5000)
  --workers N[,M…]        EVA_WORKERS for the load ramp's EVA (default 1; the latency profiles always run one process);
                          a list (--workers 1,2) runs one ramp per count, each on a fresh EVA, and prints them side by side
  --out DIR               where results go (default bench/results)
  --eva-entry FILE        the EVA entry point to spawn (default dist/server/main.js)`;

export interface Args {
  quick: boolean;
  profiles: BenchProfile[];
  turns: number;
  barge: number;
  backchannel: number;
  pause: number;
  echo: number;
  echoDb: number;
  bargeDelayMs: number;
  text: boolean;
  latency: boolean;
  load: boolean;
  loadProfile: BenchProfile;
  loadMax: number;
  /** Ramp by this many calls a step instead of doubling. */
  loadStep?: number;
  loadStart: number;
  loadWindowMs: number;
  /** EVA_WORKERS of the load ramp: one ramp per entry, in order. */
  workers: number[];
  outDir: string;
  evaEntry: string;
}

const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../' : '../', import.meta.url));

export function parseArgs(argv: readonly string[]): Args {
  const profileFlags: string[] = [];
  let profilesFlag: string | undefined;
  const nums: Record<string, number> = {};
  let quick = false;
  let text = true;
  let load: boolean | undefined;
  let workers: number[] | undefined;
  let loadOnly = false;
  let loadProfile = 'groq';
  let outDir = join(ROOT, 'bench', 'results');
  let evaEntry = join(ROOT, 'dist', 'server', 'main.js');
  const int = (flag: string, v: string | undefined, min = 0): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer ≥ ${min}, got ${JSON.stringify(v)}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--quick': quick = true; break;
      case '--profile': profileFlags.push(value()); break;
      case '--profiles': profilesFlag = value(); break;
      case '--turns': nums.turns = int(flag, value()); break;
      case '--barge': nums.barge = int(flag, value()); break;
      case '--backchannel': nums.backchannel = int(flag, value()); break;
      case '--pause': nums.pause = int(flag, value()); break;
      case '--echo': nums.echo = int(flag, value()); break;
      case '--echo-db': nums.echoDb = int(flag, value()); break;
      case '--barge-delay': nums.bargeDelayMs = int(flag, value()); break;
      case '--no-text': text = false; break;
      case '--load': load = true; break;
      case '--no-load': load = false; break;
      case '--load-only': loadOnly = true; load = true; break;
      case '--load-profile': loadProfile = value(); break;
      case '--load-max': nums.loadMax = int(flag, value(), 1); break;
      case '--load-step': nums.loadStep = int(flag, value(), 1); break;
      case '--load-window': nums.loadWindowMs = int(flag, value(), 1000); break;
      case '--workers': workers = value().split(',').map((w) => int(flag, w.trim(), 1)); break;
      case '--out': outDir = value(); break;
      case '--eva-entry': evaEntry = value(); break;
      case '--help': case '-h': throw new Error(USAGE);
      default: throw new Error(`unknown option ${JSON.stringify(a)}\n${USAGE}`);
    }
  }
  const loadMax = nums.loadMax ?? (quick ? 8 : 160);
  return {
    quick,
    profiles: profilesFromArgs(profileFlags, profilesFlag),
    turns: nums.turns ?? (quick ? 2 : 20),
    barge: nums.barge ?? (quick ? 1 : 10),
    backchannel: nums.backchannel ?? (quick ? 1 : 5),
    pause: nums.pause ?? (quick ? 2 : 20),
    echo: nums.echo ?? (quick ? 0 : 5),
    echoDb: nums.echoDb ?? 20,
    bargeDelayMs: nums.bargeDelayMs ?? 300,
    text,
    latency: !loadOnly,
    load: load ?? !quick,
    loadProfile: parseBenchProfile(loadProfile),
    loadMax,
    loadStep: nums.loadStep,
    loadStart: Math.min(quick ? 4 : 10, loadMax),
    loadWindowMs: nums.loadWindowMs ?? (quick ? 5000 : 15_000),
    workers: workers ?? [1],
    outDir,
    evaEntry,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Utterances

/** A mid-sentence pause of a clip (manifest.json). */
export interface ClipPause {
  startMs: number;
  endMs: number;
  /** Words of the clip's text before the pause. */
  words?: number;
  /** How the part before the pause ends: `level` (continuation, part A said with a trailing comma) or `falling`. */
  intonation?: 'level' | 'falling';
}

export interface Utterance {
  file: string;
  /** How the trial plan uses it: short answers, long clips (questions, statements), pauses, backchannels. */
  kind: 'short' | 'long' | 'pause' | 'backchannel';
  /** What it is, for the report's breakdown by class. */
  class: ClipClass;
  text: string;
  durationMs: number;
  voicedStartMs: number;
  voicedEndMs: number;
  pauses: ClipPause[];
  path: string;
  pcm: Int16Array;
}

const KIND_CLASS: Record<Utterance['kind'], ClipClass> = { short: 'short', long: 'question', pause: 'paused', backchannel: 'backchannel' };

export function loadUtterances(dir = join(ROOT, 'bench', 'utterances')): Utterance[] {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { utterances: (Omit<Utterance, 'pcm' | 'path' | 'class'> & { class?: ClipClass })[] };
  return manifest.utterances.map((u) => {
    const path = join(dir, u.file);
    const wav = decodeWav(readFileSync(path));
    if (wav.sampleRate !== 16000) throw new Error(`${u.file}: expected 16 kHz, got ${wav.sampleRate}`);
    // Manifests from before the classes: a long clip was a question.
    return { ...u, class: u.class ?? KIND_CLASS[u.kind], path, pcm: wav.samples };
  });
}

/** The stand-in LLM's answers: short to short turns, two sentences to questions (long enough to talk over). */
export const REPLIES = {
  short: 'Okay. Tell me more.',
  long: 'Good question. Here is a short answer for you.',
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Processes and cleanup

const cleanups: (() => Promise<void> | void)[] = [];
const log = (line: string): void => void process.stdout.write(line + '\n');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function runCleanups(): Promise<void> {
  while (cleanups.length) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`bench: cleanup failed: ${(err as Error).message}\n`);
    }
  }
}

interface Eva {
  child: ChildProcess;
  httpUrl: string;
  wsUrl: string;
  startMs: number;
  /** The last lines EVA wrote to stderr (warnings and errors; EVA_LOG_LEVEL=warn). */
  stderrTail(): string[];
  stop(): Promise<void>;
}

/** Env without anything that would point EVA at real providers. */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('EVA_') || k.startsWith('GROQ_') || k.startsWith('OLLAMA_') || k.startsWith('OPENAI_') || k === 'PORT' || k === 'HOST') continue;
    env[k] = v;
  }
  return env;
}

async function startEva(main: string, extraEnv: Record<string, string>): Promise<Eva> {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'eva-bench-'));
  const t0 = performance.now();
  // One process unless the caller asks for workers (EVA_WORKERS defaults to the number of cores); no drain at stop.
  // Its stdin is a pipe the bench holds: a bench killed with SIGKILL, which no cleanup survives, takes EVA with it.
  const env = { ...cleanEnv(), PORT: '0', HOST: '127.0.0.1', EVA_DATA_DIR: dataDir, EVA_LOG_LEVEL: 'warn', EVA_WORKERS: '1', EVA_DRAIN_S: '0', EVA_EXIT_ON_STDIN_CLOSE: '1', ...extraEnv };
  const child = spawn(process.execPath, [main], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderrTail = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderrTail = (stderrTail + d.toString()).slice(-4000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(5000)]);
      if (!exited) child.kill('SIGKILL');
      await Promise.race([exit, sleep(2000)]);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  cleanups.push(stop);
  const httpUrl = await new Promise<string>((resolve, reject) => {
    let out = '';
    let found = false;
    const timer = setTimeout(() => reject(new Error(`EVA did not print its listening line in 60 s; stderr:\n${stderrTail}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (found) return; // keep draining the pipe, keep nothing
      out = (out + d.toString()).slice(-4000);
      const m = /EVA listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        found = true;
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`EVA exited with ${code} before listening; stderr:\n${stderrTail}`));
    });
  });
  const tail = (): string[] => stderrTail.split('\n').filter(Boolean).slice(-5);
  return { child, httpUrl, wsUrl: httpUrl.replace(/^http/, 'ws') + '/ws', startMs: performance.now() - t0, stderrTail: tail, stop };
}

/** What the stand-in STTs transcribe: the clip being played (the bench plays one clip at a time). */
export interface Expect {
  text: string;
  voicedMs?: number;
  pauses?: readonly ClipPause[];
  /** Partial transcripts (part of the clip) end in a full stop, as Whisper often writes one at a pause. */
  fullStop?: boolean;
  /** performance.now() when the clip started to leave: nothing after now − startAt can have been heard yet. */
  startAt?: number;
}

interface Standins {
  groq: GroqStandin;
  ollama: OllamaStandin;
  /** Only for streaming-STT profiles (stt=realtime). */
  realtime?: RealtimeStandin;
  expect: Expect;
}

/** Audio EVA sends around a turn's speech: ~200 ms of lead-in and ~100 ms after it. */
const TURN_PADDING_MS = 300;

/**
 * How many of a clip's `words` have been said `heardMs` into it. Words are spread evenly over each run of speech
 * between the clip's pauses; with the pauses' word counts known (manifest `words`), audio that ends in or near a
 * pause gives exactly the words before it.
 */
export function wordsHeard(words: number, voicedMs: number, heardMs: number, pauses: readonly ClipPause[] = []): number {
  // Runs of speech between the pauses: [startMs, endMs, words before the run, words in it].
  const runs: [number, number, number, number][] = [];
  let from = 0;
  let before = 0;
  for (const p of [...pauses].filter((p) => p.words !== undefined).sort((a, b) => a.startMs - b.startMs)) {
    runs.push([from, p.startMs, before, p.words! - before]);
    from = p.endMs;
    before = p.words!;
  }
  runs.push([from, voicedMs, before, words - before]);
  let n = 0;
  for (const [start, end, prior, count] of runs) {
    if (heardMs < start) break;
    n = prior + Math.round(count * Math.min(1, (heardMs - start) / Math.max(1, end - start)));
  }
  return Math.max(0, Math.min(words, n));
}

/** Words [from, to) of `text`; when they stop short of its end, without end punctuation or (fullStop) with ".". */
function wordSpan(text: string, from: number, to: number, fullStop: boolean): string {
  const words = text.split(/\s+/).filter(Boolean);
  const said = words.slice(from, to).join(' ');
  if (to >= words.length) return said;
  const cut = said.replace(/[.?!,;:]+$/, '');
  return cut && fullStop ? `${cut}.` : cut;
}

/**
 * A Whisper hears a clip as finished once the audio reaches this close to its end (the last word is mostly
 * there): 10 % of the clip, or 150 ms for short ones ("Yes." is 403 ms).
 */
function heardWhole(voicedMs: number, heardMs: number): boolean {
  return heardMs >= Math.min(0.9 * voicedMs, voicedMs - 150);
}

/** The first words of `text` said `heardMs` into the clip, cut as a partial (see partialTranscript). */
function partialOf(text: string, voicedMs: number | undefined, heardMs: number, fullStop: boolean, pauses: readonly ClipPause[]): string {
  if (!voicedMs || heardWhole(voicedMs, heardMs)) return text;
  const total = text.split(/\s+/).filter(Boolean).length;
  return wordSpan(text, 0, wordsHeard(total, voicedMs, Math.max(0, heardMs), pauses), fullStop);
}

/**
 * What a Whisper-like STT makes of part of a clip: the words spoken so far, without the sentence's end
 * punctuation — or, with `fullStop`, ending in "." as Whisper often writes one at a pause (the hard case for an
 * end-of-turn rule that trusts punctuation). The whole clip gives the whole text. `audioMs` is the audio EVA sent,
 * taken here to hold ~200 ms of lead-in and ~100 ms after the speech (TURN_PADDING_MS).
 */
export function partialTranscript(text: string, voicedMs: number | undefined, audioMs: number, fullStop = false, pauses: readonly ClipPause[] = []): string {
  return partialOf(text, voicedMs, audioMs - TURN_PADDING_MS, fullStop, pauses);
}

/** Audio EVA sends after the end of speech it saw: up to ~100 ms (less when it transcribes at the first silent window). */
const TAIL_MS = 100;

/**
 * What the segment stand-in transcribes for an upload of `audioMs` of the current clip. The speech in it is at most
 * the upload less its tail, and at most what had left the client by now: the second bound matters when the upload
 * lacks the ~200 ms lead-in (the first turn of a call: 460 ms for the 403 ms "Yes.", which the padding rule alone
 * took for 160 ms of speech, i.e. no words).
 */
export function transcriptFor(expect: Expect, audioMs: number, now = performance.now()): string {
  const sentMs = expect.startAt === undefined ? Infinity : now - expect.startAt;
  return partialOf(expect.text, expect.voicedMs, Math.min(audioMs - TAIL_MS, sentMs), expect.fullStop ?? false, expect.pauses ?? []);
}

/**
 * What the realtime stand-in transcribes for one committed piece. EVA streams a turn from its lead-in on and
 * commits at each pause, so a piece is the audio between two commits: `audioMs` of it, ending now, i.e.
 * `now − startAt` into the clip. The piece gets the words said in that span — after a pause, only the rest — cut
 * like a segment's partial when the clip goes on after it.
 */
export function pieceTranscript(expect: Expect, audioMs: number, now = performance.now()): string {
  const words = expect.text.split(/\s+/).filter(Boolean).length;
  if (expect.startAt === undefined || !expect.voicedMs) return expect.text;
  const endMs = now - expect.startAt;
  const startMs = endMs - audioMs;
  const at = (ms: number): number => (heardWhole(expect.voicedMs!, ms) ? words : wordsHeard(words, expect.voicedMs!, Math.max(0, ms), expect.pauses));
  return wordSpan(expect.text, startMs <= 0 ? 0 : at(startMs), at(endMs), expect.fullStop ?? false);
}

async function startStandins(p: BenchProfile, utterances: readonly Utterance[]): Promise<Standins> {
  const expect: Expect = { text: 'Sure, go on.' };
  const short = new Set(utterances.filter((u) => u.kind === 'short' || u.kind === 'backchannel').map((u) => u.text));
  const reply = (messages: ChatMessageLike[]): string => {
    const last = [...messages].reverse().find((m) => m.role === 'user')?.content.trim() ?? '';
    return short.has(last) ? REPLIES.short : REPLIES.long;
  };
  const groq = await startGroq({ profile: p.latency, transcript: (info) => transcriptFor(expect, info.durationMs), reply });
  cleanups.push(() => groq.close());
  const ollama = await startOllama({ profile: p.latency, reply });
  cleanups.push(() => ollama.close());
  let realtime: RealtimeStandin | undefined;
  if (p.stt === 'realtime') {
    // Each committed piece is transcribed by the words said during its audio (see pieceTranscript).
    realtime = await startRealtimeStandin({
      profile: { partialEveryMs: p.latency.partialEveryMs ?? 100, finalMs: p.latency.sttMs },
      transcript: (info) => pieceTranscript(expect, info.audioMs),
    });
    cleanups.push(() => realtime!.close());
  }
  return { groq, ollama, realtime, expect };
}

// ---------------------------------------------------------------------------------------------------------------
// Trials

/** Audio played over EVA's answer: a manifest clip, or (echo trials) EVA's own recorded answer. */
interface OverClip {
  file: string;
  text: string;
  pcm: Int16Array;
  voicedStartMs: number;
  voicedEndMs: number;
}

interface TrialPlan {
  kind: TrialKind;
  clip: Utterance;
  over?: OverClip;
  warmup?: boolean;
  /** The stand-in STT ends partial transcripts of this clip with a full stop (every other pause trial). */
  partialFullStop?: boolean;
  /** Barge-in and backchannel trials: ms added to --barge-delay (overPhaseMs), so the frame grid is sampled. */
  overOffsetMs?: number;
}

/**
 * The n-th talk-over trial's offset on --barge-delay: 0–20 ms in golden-ratio steps (0, 12.4, 4.7, 17.1, 9.4, …;
 * any run of trials spreads evenly). The delay counts from the reply's audible onset, which sits on EVA's 20 ms
 * frame grid, so a fixed delay put every interruption at the same phase of that grid and the barge-in stop (the
 * last reply frame heard) moved by up to a frame with anything that shifts the reply's timing by a few ms: 300,
 * 304 and 310 ms gave medians of 99, 93 and 70 ms on one build here.
 */
export function overPhaseMs(n: number): number {
  return Math.round(((n * 0.6180339887) % 1) * 200) / 10;
}

/** Placeholder for an echo trial's clip until the answer has been recorded. */
const ECHO_PENDING: OverClip = { file: 'echo', text: '', pcm: new Int16Array(0), voicedStartMs: 0, voicedEndMs: 0 };
/** An echo reaches the mic this long after the sound left the speaker (output buffer + air), ms. */
const ECHO_DELAY_MS = 40;

export function planTrials(args: Pick<Args, 'turns' | 'barge' | 'backchannel' | 'pause'> & { echo?: number }, utterances: readonly Utterance[]): TrialPlan[] {
  const by = (k: Utterance['kind']) => utterances.filter((u) => u.kind === k);
  // Turns take the classes in turn (short answer, statement, question, …) so a short run still sees each.
  const turnClips = interleave(['short', 'statement', 'question'].map((c) => utterances.filter((u) => u.class === c && (u.kind === 'short' || u.kind === 'long'))));
  const long = by('long');
  // Pause trials use the clips said with continuation intonation when there are any: a person's voice does not
  // fall mid-sentence (the older clips, part A said as a sentence of its own, remain for the tests).
  const level = by('pause').filter((u) => u.pauses.some((p) => p.intonation === 'level'));
  const pause = level.length ? level : by('pause');
  const back = by('backchannel');
  const plan: TrialPlan[] = [];
  if (turnClips.length) plan.push({ kind: 'turn', clip: turnClips[0]!, warmup: true });
  // The warm-up took the first clip; counted turns start with the next one.
  for (let i = 0; i < args.turns && turnClips.length; i++) plan.push({ kind: 'turn', clip: turnClips[(i + 1) % turnClips.length]! });
  // Barge-ins are short phrases ("Sure, go on.", "No, thank you.") over the answer to a question.
  const shorts = by('short').filter((u) => u.durationMs >= 800);
  for (let i = 0; i < args.barge && long.length && shorts.length; i++) plan.push({ kind: 'barge', clip: long[i % long.length]!, over: shorts[i % shorts.length]!, overOffsetMs: overPhaseMs(i) });
  for (let i = 0; i < args.backchannel && long.length && back.length; i++) plan.push({ kind: 'backchannel', clip: long[i % long.length]!, over: back[i % back.length]!, overOffsetMs: overPhaseMs(i) });
  for (let i = 0; i < (args.echo ?? 0) && long.length; i++) plan.push({ kind: 'echo', clip: long[i % long.length]!, over: ECHO_PENDING });
  // Every other pause trial (the first, the third, …) gets partials that end in a full stop; with an even number
  // of clips the clips alternate too, so each clip is tried both ways over 2 × clips trials.
  for (let i = 0; i < args.pause && pause.length; i++) {
    const round = Math.floor(i / pause.length);
    plan.push({ kind: 'pause', clip: pause[i % pause.length]!, partialFullStop: (i + (pause.length % 2 === 0 ? round : 0)) % 2 === 0 });
  }
  return plan;
}

/** a0, b0, c0, a1, b1, c1, … (lists of different lengths: the shorter ones drop out). */
function interleave<T>(lists: readonly (readonly T[])[]): T[] {
  const out: T[] = [];
  for (let i = 0; lists.some((l) => i < l.length); i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}

/**
 * Silence that ends an answer. It must be longer than the gaps inside one (between sentences, each synthesized on
 * its own): every trial records its longest as `replyGapMs`, and the run warns when one comes within 100 ms.
 */
const QUIET_MS = 500;

/** Resolves with the first audible frame at/after `since`, or undefined after `timeoutMs`. */
async function waitAudible(call: ProbeCall, since: number, timeoutMs: number): Promise<number | undefined> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const f = firstAudibleBetween(call.heard, since);
    if (f) return f.at;
    if (performance.now() > end) return undefined;
    await sleep(10);
  }
}

/** Waits until nothing audible arrived for `quietMs` (counted from `since` at the earliest); at most `maxMs`. */
async function waitQuiet(call: ProbeCall, since: number, quietMs: number, maxMs = 30_000): Promise<void> {
  const end = performance.now() + maxMs;
  while (performance.now() < end) {
    const last = lastAudibleBetween(call.heard, since)?.at ?? since;
    if (performance.now() - last >= quietMs) return;
    await sleep(20);
  }
}

async function runTrial(call: ProbeCall, plan: TrialPlan, expect: Expect, bargeDelayMs: number, signal: AbortSignal): Promise<TrialCapture> {
  // Start from quiet: nothing audible for QUIET_MS (returns at once when EVA is already silent).
  await waitQuiet(call, performance.now() - QUIET_MS, QUIET_MS, 10_000);
  Object.assign(expect, { text: plan.clip.text, voicedMs: plan.clip.voicedEndMs, pauses: plan.clip.pauses, fullStop: plan.partialFullStop ?? false, startAt: performance.now() });
  const playing = call.play(plan.clip.pcm, plan.clip.voicedEndMs);
  const about = { clipClass: plan.clip.class, ...(plan.partialFullStop !== undefined ? { partialFullStop: plan.partialFullStop } : {}) };
  if (!plan.over) {
    const play = await playing;
    const first = await waitAudible(call, play.lastVoicedAt, 10_000);
    if (first !== undefined && !signal.aborted) await waitQuiet(call, first, QUIET_MS);
    await sleep(100);
    const capture: TrialCapture = { kind: plan.kind, utterance: plan.clip.file, play, heard: call.heard, events: call.events, endAt: performance.now(), warmup: plan.warmup, ...about };
    if (plan.kind === 'pause') capture.pauses = plan.clip.pauses.map((p) => ({ startAt: play.startAt + p.startMs, endAt: play.startAt + p.endMs }));
    return capture;
  }
  const play = await playing;
  const first = await waitAudible(call, play.lastVoicedAt, 10_000);
  const delay = plan.kind === 'echo' ? ECHO_DELAY_MS : bargeDelayMs + (plan.overOffsetMs ?? 0);
  if (first !== undefined) await sleep(Math.max(0, first + delay - performance.now()));
  Object.assign(expect, { text: plan.over.text, voicedMs: plan.over.voicedEndMs, pauses: [], fullStop: false, startAt: performance.now() });
  const overPlay = await call.play(plan.over.pcm, plan.over.voicedEndMs);
  // Whatever follows must end before the next trial: after a barge-in, EVA's answer to the new turn; after a
  // backchannel, the rest of the reply and perhaps an answer to "uh huh" (hence the longer quiet).
  if (plan.kind === 'barge') {
    const next = await waitAudible(call, overPlay.lastVoicedAt, 5000);
    if (next !== undefined) await waitQuiet(call, next, QUIET_MS);
  } else {
    await waitQuiet(call, overPlay.lastVoicedAt, 1500);
  }
  await sleep(100);
  return {
    kind: plan.kind,
    utterance: plan.clip.file,
    play,
    over: { utterance: plan.over.file, play: overPlay, voicedStartMs: plan.over.voicedStartMs },
    heard: call.heard,
    events: call.events,
    endAt: performance.now(),
    warmup: plan.warmup,
    ...about,
  };
}

/** The audible part of what the call received in [from, to) as one clip (ProbeCall keeps the first 120 s of PCM). */
export function recordReceived(heard: ProbeCall['heard'], pcm: readonly Int16Array[], from: number, to: number, rms = AUDIBLE_RMS): Int16Array | null {
  let first = -1;
  let last = -1;
  heard.forEach((f, i) => {
    if (f.at < from || f.at >= to || f.rms < rms) return;
    if (first < 0) first = i;
    last = i;
  });
  if (first < 0 || last >= pcm.length) return null;
  const parts = pcm.slice(first, last + 1);
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/** `pcm` made `db` decibels quieter. */
export function attenuate(pcm: Int16Array, db: number): Int16Array {
  const g = 10 ** (-db / 20);
  return Int16Array.from(pcm, (v) => Math.round(v * g));
}

function describeTrial(r: TrialResult): string {
  const f = (v: number | undefined, d = 0) => (v === undefined ? '–' : v.toFixed(d));
  const parts = [`perceived ${f(r.perceivedMs)} ms`];
  if (r.eouMs !== undefined) parts.push(`eou ${f(r.eouMs)}`);
  if (r.sttMs !== undefined) parts.push(`stt ${f(r.sttMs)}`);
  if (r.firstSentenceMs !== undefined) parts.push(`llm→sentence ${f(r.firstSentenceMs)}`);
  if (r.ttsFirstAudioMs !== undefined) parts.push(`tts ${f(r.ttsFirstAudioMs)}`);
  if (r.overheadMs !== undefined) parts.push(`overhead ${f(r.overheadMs, 1)}${r.speculative ? ' (speculative)' : ''}`);
  if (r.networkMs !== undefined) parts.push(`net ${f(r.networkMs)}`);
  if (r.kind === 'barge') parts.push(`barge-in stop ${f(r.bargeStopMs)} ms${r.overReply ? '' : ' (reply not playing)'}`);
  if (r.kind === 'backchannel' || r.kind === 'echo') parts.push(r.falseBargeIn ? 'EVA stopped: false barge-in' : 'EVA kept talking');
  if (r.decision !== undefined || r.eouClass !== undefined) parts.push(`decision ${r.decision ?? '–'}${r.eouClass ? ` (${r.eouClass})` : ''}`);
  if (r.kind === 'pause') parts.push(`${r.falseCutoff ? 'FALSE CUT-OFF' : r.splitTurn ? 'split turn' : 'waited through the pause'}${r.partialFullStop ? ' (partial ended in ".")' : ''}`);
  else if (r.falseCutoff) parts.push('FALSE CUT-OFF (EVA talked before the clip ended)');
  if (r.note) parts.push(`(${r.note})`);
  return parts.join(', ');
}

async function runProfile(p: BenchProfile, args: Args, utterances: Utterance[], signal: AbortSignal): Promise<ProfileResult> {
  const result: ProfileResult = {
    label: p.label,
    spec: p.spec,
    description: describeProfile(p),
    latency: p.latency,
    llm: p.llm,
    tts: p.tts,
    trials: [],
    summary: summarizeTrials([]),
    counts: countTrials([]),
    text: [],
    errors: [],
  };
  log(`\n== ${p.label}: ${result.description}`);
  const mark = cleanups.length;
  try {
    const standins = await startStandins(p, utterances);
    result.evaEnv = evaEnv(p, { groq: standins.groq.url, openai: standins.groq.openaiUrl, ollama: standins.ollama.url, realtime: standins.realtime?.url });
    const eva = await startEva(args.evaEntry, result.evaEnv);
    result.evaStartMs = eva.startMs;
    const sttBefore = await scrapeSttRequests(eva.httpUrl);
    log(`   EVA up at ${eva.httpUrl} in ${eva.startMs.toFixed(0)} ms (pid ${eva.child.pid})`);
    // A profile's trials last ~5 minutes; the echo trials replay an answer recorded late in it (16 kHz: 2 MB/min).
    const call = await ProbeCall.connect(eva.wsUrl, { timeoutMs: 15_000, keepPcmSeconds: 1800 });
    cleanups.push(() => call.close());
    result.connectMs = call.connectMs;
    const ready = await call.waitFor((m) => m.type === 'ready', 5000).catch(() => undefined);
    if (ready?.type === 'ready') result.providers = ready.providers;
    log(`   call connected in ${call.connectMs.toFixed(0)} ms; providers ${JSON.stringify(result.providers ?? {})}`);
    if (result.providers && result.providers.stt === 'none') result.errors.push('EVA has no STT in this build: it echoes the audio (figures are the echo path, not STT → LLM → TTS)');
    const plan = planTrials(args, utterances);
    const analyze = { pauseMs: DEFAULT_TURN_CONFIG.pauseMs };
    let echo: OverClip | null = null;
    let i = 0;
    const total = plan.length + (plan.some((p) => p.kind === 'echo') ? 1 : 0);
    const run = async (trial: TrialPlan): Promise<TrialCapture> => {
      const capture = await runTrial(call, trial, standins.expect, args.bargeDelayMs, signal);
      const r = analyzeTrial(capture, analyze);
      result.trials.push(r);
      if ((r.replyGapMs ?? 0) > QUIET_MS - 100) result.errors.push(`${trial.clip.file}: a ${r.replyGapMs} ms silence inside the answer is close to the ${QUIET_MS} ms taken as its end`);
      log(`   [${++i}/${total}] ${trial.warmup ? 'warm-up' : trial.kind} ${trial.clip.file}${trial.over ? ` + ${trial.over.file}` : ''}: ${describeTrial(r)}`);
      return capture;
    };
    for (let trial of plan) {
      if (signal.aborted) break;
      if (trial.kind === 'echo') {
        if (!echo) {
          // Record EVA's answer to this question once (the stand-ins answer the same way every time): an extra,
          // counted turn. The echo trials then play it back, quieter, as EVA says it again.
          const cap = await run({ kind: 'turn', clip: trial.clip });
          const pcm = recordReceived(call.heard, call.pcm, cap.play.lastVoicedAt, cap.endAt);
          if (!pcm) {
            result.errors.push('echo trials skipped: no answer could be recorded');
            continue;
          }
          echo = { file: `echo −${args.echoDb} dB`, text: REPLIES.long, pcm: attenuate(pcm, args.echoDb), voicedStartMs: 0, voicedEndMs: pcm.length / 16 };
        }
        trial = { ...trial, over: echo };
      }
      await run(trial);
    }
    const sttAfter = await scrapeSttRequests(eva.httpUrl);
    const turns = new Set(call.events.flatMap((e) => (e.msg.type === 'metrics' ? [e.msg.turn] : []))).size;
    result.sttRequests =
      typeof sttBefore === 'string' || typeof sttAfter === 'string'
        ? { unavailable: typeof sttBefore === 'string' ? sttBefore : (sttAfter as string) }
        : { speculative: sttAfter.speculative - sttBefore.speculative, final: sttAfter.final - sttBefore.final, turns };
    const errors = call.events.filter((e) => e.msg.type === 'error').map((e) => (e.msg.type === 'error' ? `${e.msg.code}: ${e.msg.message}` : ''));
    for (const e of new Set(errors)) result.errors.push(`EVA said: ${e}`);
    for (const line of eva.stderrTail()) log(`   EVA stderr: ${line.slice(0, 300)}`);
    await call.close();
    if (args.text && !signal.aborted) {
      log('   text probes …');
      result.text = await runTextProbes(eva.httpUrl, args.quick ? 3 : 10);
      for (const t of result.text) log(`   ${t.name}: ${t.skipped ? `skipped — ${t.skipped}` : `p50 ${t.summary?.p50.toFixed(0) ?? '–'} ms over ${t.values.length}${t.errors ? `, ${t.errors} errors` : ''}`}`);
    }
  } catch (err) {
    result.errors.push((err as Error).message);
    log(`   ! ${(err as Error).message}`);
  } finally {
    // Stop this profile's EVA, call and stand-ins (pushed after `mark`).
    const mine = cleanups.splice(mark);
    for (const fn of mine.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  }
  result.summary = summarizeTrials(result.trials);
  result.counts = countTrials(result.trials);
  return result;
}

async function runLoadPhase(args: Args, workers: number, utterances: Utterance[], signal: AbortSignal): Promise<NonNullable<BenchResult['load']>> {
  const p = args.loadProfile;
  log(`\n== load (${p.label}${workers > 1 ? `, ${workers} workers` : ''}): ramp ${rampLevels(args.loadStart, args.loadMax, args.loadStep).join(', ')} calls, ${args.loadWindowMs / 1000} s per step`);
  const mark = cleanups.length;
  try {
    const standins = await startStandins(p, utterances);
    const eva = await startEva(args.evaEntry, {
      ...evaEnv(p, { groq: standins.groq.url, openai: standins.groq.openaiUrl, ollama: standins.ollama.url, realtime: standins.realtime?.url }),
      EVA_MAX_CALLS: String(Math.max(100, args.loadMax * 2)),
      EVA_WORKERS: String(workers),
    });
    log(`   EVA up at ${eva.httpUrl} (pid ${eva.child.pid}${workers > 1 ? `, ${workers} workers` : ''})`);
    const clips = utterances.filter((u) => u.kind === 'short').map((u) => u.path);
    const load = await runLoad({
      httpUrl: eva.httpUrl,
      evaPid: eva.child.pid,
      levels: rampLevels(args.loadStart, args.loadMax, args.loadStep),
      clips,
      settleMs: args.quick ? 2000 : 4000,
      windowMs: args.loadWindowMs,
      log: (l) => log(`   ${l}`),
      signal,
    });
    for (const line of eva.stderrTail()) log(`   EVA stderr: ${line.slice(0, 300)}`);
    if (workers > 1) load.notes.push(`EVA ran ${workers} worker processes (EVA_WORKERS); CPU and RSS add up all of its processes, lag is the worst worker's`);
    return { ...load, profile: p.label, workers };
  } catch (err) {
    log(`   ! load: ${(err as Error).message}`);
    return { profile: p.label, levels: [], steps: [], callsHeld: 0, stopReason: `failed: ${(err as Error).message}`, notes: [], workers };
  } finally {
    const mine = cleanups.splice(mark);
    for (const fn of mine.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  }
}

/** EVA's STT request counters from GET /metrics, or why they could not be read. */
async function scrapeSttRequests(httpUrl: string): Promise<{ speculative: number; final: number } | string> {
  try {
    const res = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return `GET /metrics answered ${res.status}`;
    return sttRequestCounts(await res.text()) ?? 'EVA exports no eva_stt_requests_total{speculative} counter';
  } catch (err) {
    return `GET /metrics failed: ${(err as Error).message}`;
  }
}

/** The machine a result was measured on (also the stage profile's, bench/stages.ts). */
export function machineInfo(): MachineInfo {
  let gitCommit = 'unknown';
  try {
    gitCommit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  return {
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    gitCommit,
    loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const ac = new AbortController();
  let interrupted = 0;
  const onSigint = (): void => {
    interrupted++;
    if (interrupted > 1) process.exit(130);
    log('\ninterrupted: stopping EVA and the stand-ins (Ctrl-C again to quit at once)');
    ac.abort();
    void runCleanups().then(() => process.exit(130));
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const startedAt = new Date();
  const t0 = performance.now();
  const utterances = loadUtterances();
  const machine = machineInfo();
  log(`EVA bench: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, commit ${machine.gitCommit.slice(0, 12)}${args.quick ? ' (quick)' : ''}`);
  const result: BenchResult = {
    version: 1,
    startedAt: startedAt.toISOString(),
    durationS: 0,
    machine,
    config: {
      quick: args.quick,
      turns: args.turns,
      bargeTrials: args.barge,
      backchannelTrials: args.backchannel,
      pauseTrials: args.pause,
      echoTrials: args.echo,
      echoDb: args.echoDb,
      bargeDelayMs: args.bargeDelayMs,
      speculationLeadMs: DEFAULT_TURN_CONFIG.endOfTurnMs - DEFAULT_TURN_CONFIG.pauseMs,
      pauseMs: DEFAULT_TURN_CONFIG.pauseMs,
      audibleRms: AUDIBLE_RMS,
      utterances: utterances.map((u) => u.file),
      evaEnv: { PORT: '0', HOST: '127.0.0.1', EVA_LOG_LEVEL: 'warn', EVA_DATA_DIR: '(a temporary directory)' },
    },
    profiles: [],
    notes: [
      `ProbeCall and the stand-in providers run in the bench process on the same ${machine.cores}-core machine as EVA: their CPU competes with EVA's`,
      'stand-in STT returns the text of the clip being played (part of a clip: its first words, ending in "." on every other pause trial); stand-in LLM answers short answers with a short reply and everything else with two sentences',
    ],
  };
  try {
    if (args.latency) {
      for (const p of args.profiles) {
        if (ac.signal.aborted) break;
        result.profiles.push(await runProfile(p, args, utterances, ac.signal));
      }
    }
    if (args.load && !ac.signal.aborted) {
      result.config.load = { profile: args.loadProfile.label, levels: rampLevels(args.loadStart, args.loadMax, args.loadStep), windowMs: args.loadWindowMs, settleMs: args.quick ? 2000 : 4000 };
      const loads: NonNullable<BenchResult['load']>[] = [];
      for (const w of args.workers) {
        if (ac.signal.aborted) break;
        loads.push(await runLoadPhase(args, w, utterances, ac.signal));
      }
      result.load = loads[0];
      if (loads.length > 1) result.loads = loads;
    }
  } finally {
    await runCleanups();
  }
  if (ac.signal.aborted) return 130;
  result.durationS = (performance.now() - t0) / 1000;
  mkdirSync(args.outDir, { recursive: true });
  const files = reportFiles(result);
  for (const [name, body] of Object.entries(files)) writeFileSync(join(args.outDir, name), body);
  log('\n' + formatReport(result));
  log(`wrote ${Object.keys(files).length} files to ${args.outDir}: ${Object.keys(files).join(', ')}`);
  return result.profiles.some((p) => p.trials.length === 0) ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      // werift's DTLS retransmission timers keep the process alive for ~30 s after the calls closed.
      setTimeout(() => process.exit(code), 100);
    },
    async (err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
      await runCleanups();
      process.exit(1);
    },
  );
}
