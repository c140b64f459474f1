import t from 'tap';
import { VadEngine, VAD_WINDOW } from './vad.js';
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

t.test('a closed stream gets no more callbacks and close() is idempotent', async (t) => {
  const engine = await VadEngine.create();
  let calls = 0;
  const s = engine.createStream(() => calls++);
  s.push(new Int16Array(VAD_WINDOW * 3));
  s.close();
  s.close();
  await new Promise((r) => setTimeout(r, 30));
  t.equal(calls, 0);
  await engine.close();
  await engine.close();
  t.throws(() => engine.createStream(() => {}), /closed/);
});
