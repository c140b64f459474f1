// `node dist/bench/vad-edge.js`: where EVA's end of speech falls against the audio, offline. Each turn clip goes
// through what a call does to it — the probe's Opus encoder (16 kHz, voip), EVA's decoder, Silero (media/vad.ts, on
// the main thread) and the turn detector (DEFAULT_TURN_CONFIG) — at 8 alignments against the 32 ms VAD windows,
// and the end of speech of the last pause is compared with the end of the 20 ms frame that carried the clip's last
// voiced sample (the instant the bench's perceived latency starts from). No network, no event loop: what remains is
// the VAD's own edge, which the bench's network+jitter (its "transit+VAD edge" part) carries and EVA's eou_ms and
// first_audio_ms leave out. See README "The figures".
import { pathToFileURL } from 'node:url';
import { OpusDecoder, OpusEncoder } from '../media/opus.js';
import { DEFAULT_TURN_CONFIG, TurnDetector } from '../media/turns.js';
import { VAD_WINDOW_MS, VadEngine } from '../media/vad.js';
import { summarize } from './latency.js';
import { loadUtterances } from './run.js';

const FRAME = 320; // 20 ms at 16 kHz
/** Silence before each clip, plus 0–28 ms in 4 ms steps: the clip's end lands at 8 places in a VAD window. */
const LEAD_MS = 400;
const SHIFTS_MS = [0, 4, 8, 12, 16, 20, 24, 28];

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** EVA's end of speech (its last `pause` event) minus the end of the frame holding the last voiced sample, ms. */
async function edgeOf(engine: VadEngine, clip: Int16Array, shiftMs: number): Promise<number | undefined> {
  const enc = new OpusEncoder({ sampleRate: 16000, application: 'voip', complexity: 5 });
  const dec = new OpusDecoder(16000);
  const lead = 16 * (LEAD_MS + shiftMs);
  const pcm = new Int16Array(Math.ceil((lead + clip.length + 16 * 1000) / FRAME) * FRAME);
  pcm.set(clip, lead);
  const lastFrameEndMs = (Math.ceil((lead + clip.length) / FRAME) * FRAME) / 16;
  const turns = new TurnDetector(DEFAULT_TURN_CONFIG);
  let speechEndMs: number | undefined;
  const stream = engine.createStream((prob, endSample) => {
    for (const ev of turns.step({ prob, atMs: endSample / 16, windowMs: VAD_WINDOW_MS, evaSpeaking: false })) if (ev.type === 'pause') speechEndMs = ev.speechEndMs;
  });
  try {
    for (let i = 0; i < pcm.length; i += FRAME) {
      stream.push(dec.decode(enc.encode(pcm.subarray(i, i + FRAME))));
      // The engine keeps a bounded queue per stream: let it run, as packets arriving every 20 ms would.
      await tick();
      await tick();
    }
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    stream.close();
    enc.close();
    dec.close();
  }
  return speechEndMs === undefined ? undefined : speechEndMs - lastFrameEndMs;
}

export async function main(): Promise<void> {
  const engine = await VadEngine.create(undefined, { thread: 'main' });
  const clips = loadUtterances().filter((u) => u.kind === 'short' || u.kind === 'long');
  const all: number[] = [];
  for (const c of clips) {
    const edges: (number | undefined)[] = [];
    for (const s of SHIFTS_MS) edges.push(await edgeOf(engine, c.pcm, s));
    all.push(...edges.filter((e): e is number => e !== undefined));
    process.stdout.write(`${c.file.padEnd(18)} ${edges.map((e) => (e === undefined ? '–' : e.toFixed(0))).join(' ')}\n`);
  }
  const s = summarize(all);
  process.stdout.write(
    `EVA's end of speech − end of the frame with the last voiced sample, over ${s.n} runs: min ${s.min.toFixed(0)}, p50 ${s.p50.toFixed(0)}, p95 ${s.p95.toFixed(0)}, max ${s.max.toFixed(0)} ms\n`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`vad-edge failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
