import t from 'tap';
import * as ort from 'onnxruntime-node';
import { QUIET_RMS, SETTLE_WINDOWS, VadEngine, VAD_WINDOW, sileroModelPath } from './vad.js';
import { fixture16k } from '../test/helpers/fixtures.js';

t.test('Silero finds the speech in a spoken fixture and nothing in silence, for several streams in one batch', async (t) => {
  const engine = await VadEngine.create();
  t.teardown(() => engine.close());
  const speech = fixture16k('hello.wav');
  const probs: number[][] = [[], [], []];
  const streams = probs.map((p) => engine.createStream((prob) => p.push(prob)));
  for (let i = 0; i < speech.length; i += 320) {
    const frame = speech.subarray(i, i + 320);
    streams[0]!.push(frame);
    streams[1]!.push(new Int16Array(frame.length));
    streams[2]!.push(frame);
    // Faster than real time (20 ms of audio per ms), but not faster than the engine can run.
    await new Promise((r) => setTimeout(r, 1));
  }
  const windows = Math.floor(speech.length / VAD_WINDOW);
  for (let i = 0; i < 300 && probs.some((p) => p.length < windows); i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(probs[0]!.length, windows, 'one probability per 512-sample window');
  const voiced = probs[0]!.filter((p) => p > 0.5).length;
  t.ok(voiced > windows * 0.4, `${voiced} of ${windows} windows voiced in speech`);
  t.equal(probs[1]!.filter((p) => p > 0.5).length, 0, 'silence is never voiced');
  t.same(probs[2], probs[0], 'the same audio in another stream of the batch gives the same result (state is per stream)');
  t.ok(engine.batches < engine.windows, `batched: ${engine.windows} windows in ${engine.batches} runs`);
});

t.test('inference on the main thread gives the same probabilities as in the worker', async (t) => {
  const speech = fixture16k('hello.wav').subarray(0, VAD_WINDOW * 20);
  const results: number[][] = [];
  for (const thread of ['worker', 'main'] as const) {
    const engine = await VadEngine.create(undefined, { thread });
    const probs: number[] = [];
    const s = engine.createStream((p) => probs.push(p));
    for (let i = 0; i < speech.length; i += VAD_WINDOW) {
      s.push(speech.subarray(i, i + VAD_WINDOW));
      while (probs.length < i / VAD_WINDOW + 1) await new Promise((r) => setTimeout(r, 1));
    }
    await engine.close();
    results.push(probs);
  }
  t.equal(results[0]!.length, 20);
  t.same(results[0], results[1]);
});

t.test('settled near-silence is answered without the model, and the speech after it is voiced as with the model run throughout', async (t) => {
  // Speech, 1.5 s of Opus-like near-silence (a few tiny samples, far below −60 dBFS), speech again, silence.
  const speech = fixture16k('question.wav');
  const hush = Int16Array.from({ length: 24_000 }, (_, i) => (i % 97 === 0 ? 3 : 0));
  const audio = new Int16Array(speech.length * 2 + hush.length * 2);
  audio.set(speech, 0);
  audio.set(hush, speech.length);
  audio.set(speech, speech.length + hush.length);
  audio.set(hush, speech.length * 2 + hush.length);
  const windows = Math.floor(audio.length / VAD_WINDOW);
  const run = async (skipQuiet: boolean) => {
    const engine = await VadEngine.create(undefined, { skipQuiet });
    const probs: number[] = [];
    const ends: number[] = [];
    const s = engine.createStream((p, end) => (probs.push(p), ends.push(end)));
    for (let i = 0; i < audio.length; i += 320) {
      s.push(audio.subarray(i, i + 320));
      await new Promise((r) => setTimeout(r, 1)); // faster than real time, not faster than the engine
    }
    for (let i = 0; i < 500 && probs.length < windows; i++) await new Promise((r) => setTimeout(r, 10));
    const stats = { skipped: engine.skipped, modelWindows: engine.windows };
    await engine.close();
    return { probs, ends, ...stats };
  };
  const full = await run(false);
  const gated = await run(true);
  t.equal(gated.probs.length, windows, 'every window still gets a probability');
  t.same(gated.ends, full.ends, 'in order, at the same sample positions');
  t.equal(full.skipped, 0);
  const quietWindows = Math.floor((hush.length * 2) / VAD_WINDOW);
  t.ok(gated.skipped >= quietWindows - 2 * SETTLE_WINDOWS - 2, `${gated.skipped} of ~${quietWindows} near-silent windows skipped (${SETTLE_WINDOWS} per stretch run to settle)`);
  t.equal(gated.modelWindows + gated.skipped, windows);
  // The kept state is not the state a full run reaches through the pause (media/vad.ts SETTLE_WINDOWS): the
  // resumed speech may be voiced a little sooner, and a window near the threshold may flip; its words are not lost.
  const voiced = (ps: number[]) => ps.map((p) => p > 0.5);
  const g = voiced(gated.probs);
  const f = voiced(full.probs);
  const lost = f.filter((v, i) => v && !g[i]).length;
  const extra = g.filter((v, i) => v && !f[i]).length;
  const voicedFull = f.filter(Boolean).length;
  t.ok(lost <= 1, `${lost} of ${voicedFull} windows voiced by the full run are not voiced after the skipped stretches`);
  t.ok(extra <= 4, `${extra} windows voiced only after the skipped stretches`);
  const onset = (v: boolean[], from: number) => v.indexOf(true, from);
  const resumed = speech.length + hush.length;
  const from = Math.floor(resumed / VAD_WINDOW);
  const d = onset(f, from) - onset(g, from);
  t.ok(d >= 0 && d <= 3, `the resumed speech is voiced ${d} windows sooner than with the model run throughout (0–3)`);
  t.ok(QUIET_RMS <= 0.001, 'the gate is at −60 dBFS or below');
});

t.test('packed batches give the probabilities of a plain session run window by window', async (t) => {
  // The reference: Silero as vad-node would run it, default session options, one window at a time, separate arrays.
  const plain = await ort.InferenceSession.create(sileroModelPath());
  t.teardown(() => plain.release());
  const speech = fixture16k('hello.wav');
  // Speech, then digital silence long enough for the recurrent state to decay.
  const audio = new Int16Array(speech.length + VAD_WINDOW * 60);
  audio.set(speech);
  const n = Math.floor(audio.length / VAD_WINDOW);
  const sr = new ort.Tensor('int64', BigInt64Array.from([16000n]), []);
  let h = new Float32Array(128);
  let c = new Float32Array(128);
  const expected: number[] = [];
  for (let i = 0; i < n; i++) {
    const win = Float32Array.from(audio.subarray(i * VAD_WINDOW, (i + 1) * VAD_WINDOW), (v) => v / 32768);
    const out = await plain.run({ input: new ort.Tensor('float32', win, [1, VAD_WINDOW]), sr, h: new ort.Tensor('float32', h, [2, 1, 64]), c: new ort.Tensor('float32', c, [2, 1, 64]) });
    expected.push((out.output!.data as Float32Array)[0]!);
    h = Float32Array.from(out.hn!.data as Float32Array);
    c = Float32Array.from(out.cn!.data as Float32Array);
  }
  // The model on every window, as the reference runs it (the near-silence skip is tested on its own above).
  const engine = await VadEngine.create(undefined, { skipQuiet: false });
  t.teardown(() => engine.close());
  // Two streams, so the batches hold two windows and the packing's offsets are exercised.
  const got: number[][] = [[], []];
  const streams = got.map((g) => engine.createStream((p) => g.push(p)));
  for (let i = 0; i < audio.length; i += 320) {
    for (const s of streams) s.push(audio.subarray(i, i + 320));
    await new Promise((r) => setTimeout(r, 1));
  }
  t.ok(await until(() => got.every((g) => g.length === n), 20_000), `all ${n} windows came back`);
  const worst = Math.max(...got.flatMap((g) => g.map((p, i) => Math.abs(p - expected[i]!))));
  t.ok(worst < 1e-5, `largest difference ${worst.toExponential(2)}`);
  t.ok(expected.some((p) => p > 0.5) && expected.slice(-20).every((p) => p < 0.1), 'the reference saw speech, then silence');
});

/** Poll until `done()` or the deadline; returns whether it got there. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!done() && performance.now() < end) await new Promise((r) => setTimeout(r, 5));
  return done();
}

t.test('a closed stream gets no more callbacks, whether its windows were queued or already in a batch', async (t) => {
  const engine = await VadEngine.create();
  t.teardown(() => engine.close());
  const audio = fixture16k('hello.wav').subarray(0, VAD_WINDOW * 6);
  const windows = audio.length / VAD_WINDOW;
  // Each closed stream has a twin fed the same audio in the same tick and left open: once the twin has all its
  // probabilities, the engine has run every batch the closed stream's windows could have been in. Without the
  // twin, a slow engine would pass this test whether close() works or not.
  const queuedTwin: number[] = [];
  let queued = 0;
  const twin1 = engine.createStream((p) => queuedTwin.push(p));
  const closedQueued = engine.createStream(() => queued++);
  twin1.push(audio);
  closedQueued.push(audio);
  closedQueued.close(); // before the engine took any of its windows
  closedQueued.close();

  const batchTwin: number[] = [];
  let before = 0;
  let after = 0;
  let closed = false;
  let closedInBatch: ReturnType<typeof engine.createStream> | null = null;
  const twin2 = engine.createStream((p) => {
    batchTwin.push(p);
    if (!closed) {
      closed = true;
      closedInBatch!.close(); // from inside a batch's delivery: its own windows in this batch are in flight
    }
  });
  closedInBatch = engine.createStream(() => (closed ? after++ : before++));
  twin2.push(audio);
  closedInBatch.push(audio);

  t.ok(await until(() => queuedTwin.length === windows && batchTwin.length === windows, 10_000), `the open twins got all ${windows} probabilities (${queuedTwin.length}, ${batchTwin.length})`);
  // One more round through the engine: anything still owed to the closed streams would come before this.
  twin1.push(new Int16Array(VAD_WINDOW));
  t.ok(await until(() => queuedTwin.length === windows + 1, 10_000), 'one more batch ran');
  t.equal(queued, 0, 'a stream closed with its windows queued never hears of them');
  t.equal(after, 0, `a stream closed mid-delivery gets nothing after close() (${before} before it)`);
  t.ok(before < windows, 'close() came before the stream had all its windows');
  twin1.close();
  twin2.close();
});

t.test('close() is idempotent, and a closed engine refuses new streams', async (t) => {
  const engine = await VadEngine.create();
  const s = engine.createStream(() => undefined);
  s.close();
  s.close();
  await engine.close();
  await engine.close();
  t.throws(() => engine.createStream(() => {}), /closed/);
});

t.test('with many streams open, windows that complete a few ms apart share one batch; with few, each runs at once', async (t) => {
  const speech = fixture16k('hello.wav').subarray(0, VAD_WINDOW);
  const run = async (streams: number): Promise<{ batches: number; windows: number; waitedMs: number[] }> => {
    const engine = await VadEngine.create(undefined, { batchWaitMs: 30, coalesceStreams: 4, skipQuiet: false });
    const waitedMs: number[] = [];
    const list = Array.from({ length: streams }, () => engine.createStream(() => waitedMs.push(performance.now())));
    const t0 = performance.now();
    // One window per stream, each in its own event-loop turn, 1 ms apart: arrivals like RTP from different calls.
    for (const s of list) {
      s.push(speech);
      await new Promise((r) => setTimeout(r, 1));
    }
    for (let i = 0; i < 300 && waitedMs.length < streams; i++) await new Promise((r) => setTimeout(r, 5));
    const out = { batches: engine.batches, windows: engine.windows, waitedMs: waitedMs.map((at) => at - t0) };
    await engine.close();
    return out;
  };
  const many = await run(6);
  t.equal(many.windows, 6, 'every window got its probability');
  t.ok(many.batches <= 2, `6 streams (coalescing from 4): ${many.windows} windows in ${many.batches} batch(es)`);
  const few = await run(3);
  t.equal(few.windows, 3);
  t.ok(few.batches >= 2, `3 streams (below 4): ${few.batches} batches, none waiting for company`);
  t.ok(Math.max(...few.waitedMs) < Math.max(...many.waitedMs), 'so their probabilities come sooner');
});

t.test('settled near-silence is answered at once, never ahead of a window still in the model', async (t) => {
  // A long coalescing wait (200 ms, from one stream on): only windows that skip the model can come back soon.
  const engine = await VadEngine.create(undefined, { batchWaitMs: 200, coalesceStreams: 1 });
  t.teardown(() => engine.close());
  const got: { prob: number; end: number }[] = [];
  const s = engine.createStream((prob, end) => got.push({ prob, end }));
  const quiet = new Int16Array(VAD_WINDOW);
  const waitFor = async (n: number) => {
    for (let i = 0; i < 400 && got.length < n; i++) await new Promise((r) => setTimeout(r, 5));
  };
  for (let i = 0; i < SETTLE_WINDOWS; i++) s.push(quiet);
  await waitFor(SETTLE_WINDOWS);
  t.equal(got.length, SETTLE_WINDOWS, 'the settling windows went through the model');
  s.push(quiet);
  t.equal(got.length, SETTLE_WINDOWS + 1, 'a settled quiet window is answered inside push(), with no batch to wait for');
  t.equal(got.at(-1)!.prob, 0);
  // A loud window goes to the model (and waits); quiet ones behind it wait for its result, then come in order.
  const speech = fixture16k('hello.wav');
  s.push(speech.subarray(speech.length / 2 - VAD_WINDOW / 2, speech.length / 2 + VAD_WINDOW / 2));
  s.push(quiet);
  s.push(quiet);
  t.equal(got.length, SETTLE_WINDOWS + 1, 'nothing overtakes the loud window');
  await waitFor(SETTLE_WINDOWS + 4);
  t.equal(got.length, SETTLE_WINDOWS + 4, 'all answered');
  t.same(got.map((g) => g.end), got.map((_, i) => (i + 1) * VAD_WINDOW), 'in order');
  t.ok(engine.windows >= SETTLE_WINDOWS + 1, 'the loud window and what followed it went through the model');
});
