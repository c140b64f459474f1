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
import { AUDIBLE_RMS, analyzeTrial, countTrials, lastAudibleBetween, firstAudibleBetween, summarizeTrials, type TrialCapture, type TrialKind, type TrialResult } from './latency.js';
import { rampLevels, runLoad } from './load.js';
import { ProbeCall } from './probe-client.js';
import { describeProfile, evaEnv, parseBenchProfile, profilesFromArgs, type BenchProfile } from './profiles.js';
import { formatReport, reportFiles, type BenchResult, type MachineInfo, type ProfileResult } from './report.js';
import { start as startGroq, type GroqStandin } from './standins/groq.js';
import { start as startOllama, type OllamaStandin } from './standins/ollama.js';
import type { ChatMessageLike } from './standins/server.js';
import { runTextProbes } from './text-probes.js';

const USAGE = `usage: npm run bench -- [options]
  --quick                 a short run (about 2 min): 2 turns and one of each other trial per profile, no load ramp
  --profile SPEC          a profile, repeatable: instant | groq | ollama-gpu, with overrides: groq,ttftMs=200,tts=groq
  --profiles a,b,c        profile names, comma-separated (default: instant,groq,ollama-gpu)
  --turns N               turns per profile (default 20; quick 3)
  --barge N               barge-in trials per profile (default 10; quick 1)
  --backchannel N         backchannel trials per profile (default 5; quick 1)
  --pause N               mid-sentence pause trials per profile (default 6; quick 1)
  --echo N                trials with EVA's own answer fed back into the mic (default 5; quick 0)
  --echo-db DB            how much quieter that echo is than EVA's audio as received (default 20)
  --barge-delay MS        speak over EVA this long after its reply starts (default 300)
  --no-text               skip the text probes
  --load                  also run the load ramp in a --quick run (a full run always does)
  --no-load               skip the load ramp
  --load-only             only the load ramp
  --load-profile SPEC     profile for the load ramp (default groq)
  --load-max N            stop ramping at N calls (default 160; quick 8)
  --load-window MS        measuring window per step (default 15000; quick 5000)
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
  loadStart: number;
  loadWindowMs: number;
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
      case '--load-window': nums.loadWindowMs = int(flag, value(), 1000); break;
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
    pause: nums.pause ?? (quick ? 1 : 6),
    echo: nums.echo ?? (quick ? 0 : 5),
    echoDb: nums.echoDb ?? 20,
    bargeDelayMs: nums.bargeDelayMs ?? 300,
    text,
    latency: !loadOnly,
    load: load ?? !quick,
    loadProfile: parseBenchProfile(loadProfile),
    loadMax,
    loadStart: Math.min(quick ? 4 : 10, loadMax),
    loadWindowMs: nums.loadWindowMs ?? (quick ? 5000 : 15_000),
    outDir,
    evaEntry,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Utterances

export interface Utterance {
  file: string;
  kind: 'short' | 'long' | 'pause' | 'backchannel';
  text: string;
  durationMs: number;
  voicedStartMs: number;
  voicedEndMs: number;
  pauses: { startMs: number; endMs: number }[];
  path: string;
  pcm: Int16Array;
}

export function loadUtterances(dir = join(ROOT, 'bench', 'utterances')): Utterance[] {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { utterances: Omit<Utterance, 'pcm' | 'path'>[] };
  return manifest.utterances.map((u) => {
    const path = join(dir, u.file);
    const wav = decodeWav(readFileSync(path));
    if (wav.sampleRate !== 16000) throw new Error(`${u.file}: expected 16 kHz, got ${wav.sampleRate}`);
    return { ...u, path, pcm: wav.samples };
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
  const env = { ...cleanEnv(), PORT: '0', HOST: '127.0.0.1', EVA_DATA_DIR: dataDir, EVA_LOG_LEVEL: 'warn', ...extraEnv };
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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

interface Standins {
  groq: GroqStandin;
  ollama: OllamaStandin;
  /** What the stand-in STT returns: the text of the clip being played (the bench plays one clip at a time). */
  expect: { text: string; voicedMs?: number };
}

/** Audio EVA sends around a turn's speech: ~200 ms of lead-in and ~100 ms after it. */
const TURN_PADDING_MS = 300;

/**
 * What a Whisper-like STT makes of part of a clip: the words spoken so far, without the sentence's end
 * punctuation (speech cut mid-sentence does not sound finished). The whole clip gives the whole text. This keeps
 * EVA's early end of turn honest in the bench: a transcript of a mid-sentence pause does not read as finished.
 */
export function partialTranscript(text: string, voicedMs: number | undefined, audioMs: number): string {
  if (!voicedMs || audioMs - TURN_PADDING_MS >= 0.9 * voicedMs) return text;
  const words = text.split(/\s+/).filter(Boolean);
  const n = Math.max(0, Math.min(words.length, Math.round((words.length * Math.max(0, audioMs - TURN_PADDING_MS)) / voicedMs)));
  return words.slice(0, n).join(' ').replace(/[.?!,;:]+$/, '');
}

async function startStandins(p: BenchProfile, utterances: readonly Utterance[]): Promise<Standins> {
  const expect: Standins['expect'] = { text: 'Sure, go on.' };
  const short = new Set(utterances.filter((u) => u.kind === 'short' || u.kind === 'backchannel').map((u) => u.text));
  const reply = (messages: ChatMessageLike[]): string => {
    const last = [...messages].reverse().find((m) => m.role === 'user')?.content.trim() ?? '';
    return short.has(last) ? REPLIES.short : REPLIES.long;
  };
  const groq = await startGroq({ profile: p.latency, transcript: (info) => partialTranscript(expect.text, expect.voicedMs, info.durationMs), reply });
  cleanups.push(() => groq.close());
  const ollama = await startOllama({ profile: p.latency, reply });
  cleanups.push(() => ollama.close());
  return { groq, ollama, expect };
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
}

/** Placeholder for an echo trial's clip until the answer has been recorded. */
const ECHO_PENDING: OverClip = { file: 'echo', text: '', pcm: new Int16Array(0), voicedStartMs: 0, voicedEndMs: 0 };
/** An echo reaches the mic this long after the sound left the speaker (output buffer + air), ms. */
const ECHO_DELAY_MS = 40;

export function planTrials(args: Pick<Args, 'turns' | 'barge' | 'backchannel' | 'pause'> & { echo?: number }, utterances: readonly Utterance[]): TrialPlan[] {
  const by = (k: Utterance['kind']) => utterances.filter((u) => u.kind === k);
  const turnClips = [...by('short'), ...by('long')];
  const long = by('long');
  const pause = by('pause');
  const back = by('backchannel');
  const plan: TrialPlan[] = [];
  if (turnClips.length) plan.push({ kind: 'turn', clip: turnClips[0]!, warmup: true });
  // The warm-up took the first clip; counted turns start with the next one.
  for (let i = 0; i < args.turns && turnClips.length; i++) plan.push({ kind: 'turn', clip: turnClips[(i + 1) % turnClips.length]! });
  // Barge-ins are short phrases ("Sure, go on.", "No, thank you.") over the answer to a question.
  const shorts = by('short').filter((u) => u.durationMs >= 800);
  for (let i = 0; i < args.barge && long.length && shorts.length; i++) plan.push({ kind: 'barge', clip: long[i % long.length]!, over: shorts[i % shorts.length]! });
  for (let i = 0; i < args.backchannel && long.length && back.length; i++) plan.push({ kind: 'backchannel', clip: long[i % long.length]!, over: back[i % back.length]! });
  for (let i = 0; i < (args.echo ?? 0) && long.length; i++) plan.push({ kind: 'echo', clip: long[i % long.length]!, over: ECHO_PENDING });
  for (let i = 0; i < args.pause && pause.length; i++) plan.push({ kind: 'pause', clip: pause[i % pause.length]! });
  return plan;
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

async function runTrial(call: ProbeCall, plan: TrialPlan, expect: Standins['expect'], bargeDelayMs: number, signal: AbortSignal): Promise<TrialCapture> {
  // Start from quiet: nothing audible for QUIET_MS (returns at once when EVA is already silent).
  await waitQuiet(call, performance.now() - QUIET_MS, QUIET_MS, 10_000);
  expect.text = plan.clip.text;
  expect.voicedMs = plan.clip.voicedEndMs;
  const playing = call.play(plan.clip.pcm, plan.clip.voicedEndMs);
  if (!plan.over) {
    const play = await playing;
    const first = await waitAudible(call, play.lastVoicedAt, 10_000);
    if (first !== undefined && !signal.aborted) await waitQuiet(call, first, QUIET_MS);
    await sleep(100);
    const capture: TrialCapture = { kind: plan.kind, utterance: plan.clip.file, play, heard: call.heard, events: call.events, endAt: performance.now(), warmup: plan.warmup };
    if (plan.kind === 'pause') capture.pauses = plan.clip.pauses.map((p) => ({ startAt: play.startAt + p.startMs, endAt: play.startAt + p.endMs }));
    return capture;
  }
  const play = await playing;
  const first = await waitAudible(call, play.lastVoicedAt, 10_000);
  const delay = plan.kind === 'echo' ? ECHO_DELAY_MS : bargeDelayMs;
  if (first !== undefined) await sleep(Math.max(0, first + delay - performance.now()));
  expect.text = plan.over.text;
  expect.voicedMs = plan.over.voicedEndMs;
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
  if (r.kind === 'pause') parts.push(r.falseCutoff ? 'FALSE CUT-OFF' : r.splitTurn ? 'split turn' : 'waited through the pause');
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
    result.evaEnv = evaEnv(p, { groq: standins.groq.url, openai: standins.groq.openaiUrl, ollama: standins.ollama.url });
    const eva = await startEva(args.evaEntry, result.evaEnv);
    result.evaStartMs = eva.startMs;
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

async function runLoadPhase(args: Args, utterances: Utterance[], signal: AbortSignal): Promise<BenchResult['load']> {
  const p = args.loadProfile;
  log(`\n== load (${p.label}): ramp ${rampLevels(args.loadStart, args.loadMax).join(', ')} calls, ${args.loadWindowMs / 1000} s per step`);
  const mark = cleanups.length;
  try {
    const standins = await startStandins(p, utterances);
    const eva = await startEva(args.evaEntry, {
      ...evaEnv(p, { groq: standins.groq.url, openai: standins.groq.openaiUrl, ollama: standins.ollama.url }),
      EVA_MAX_CALLS: String(Math.max(100, args.loadMax * 2)),
    });
    log(`   EVA up at ${eva.httpUrl} (pid ${eva.child.pid})`);
    const clips = utterances.filter((u) => u.kind === 'short').map((u) => u.path);
    const load = await runLoad({
      httpUrl: eva.httpUrl,
      evaPid: eva.child.pid,
      levels: rampLevels(args.loadStart, args.loadMax),
      clips,
      settleMs: args.quick ? 2000 : 4000,
      windowMs: args.loadWindowMs,
      log: (l) => log(`   ${l}`),
      signal,
    });
    for (const line of eva.stderrTail()) log(`   EVA stderr: ${line.slice(0, 300)}`);
    return { ...load, profile: p.label };
  } catch (err) {
    log(`   ! load: ${(err as Error).message}`);
    return { profile: p.label, levels: [], steps: [], callsHeld: 0, stopReason: `failed: ${(err as Error).message}`, notes: [] };
  } finally {
    const mine = cleanups.splice(mark);
    for (const fn of mine.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  }
}

function machineInfo(): MachineInfo {
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
      'stand-in STT returns the text of the clip being played; stand-in LLM answers short turns with a short reply and questions with two sentences',
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
      result.config.load = { profile: args.loadProfile.label, levels: rampLevels(args.loadStart, args.loadMax), windowMs: args.loadWindowMs, settleMs: args.quick ? 2000 : 4000 };
      result.load = await runLoadPhase(args, utterances, ac.signal);
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
