import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { SILERO_V4_BRANCHES, inlineBranches, loadSileroModel } from './silero-graph.js';
import { SESSION_OPTIONS, VAD_WINDOW, sileroModelPath } from './vad.js';
import { fixture16k } from '../test/helpers/fixtures.js';

const { onnx } = onnxProto;

t.test('the shipped model is the file the branch choices were derived from', async (t) => {
  const warnings: string[] = [];
  const model = loadSileroModel(sileroModelPath(), (w) => warnings.push(w));
  t.same(warnings, [], 'no warning: the sha256 matches (a vad-node update that changes the model fails here first)');
  const g = onnx.ModelProto.decode(model).graph!;
  const ops = new Set(g.node!.map((n) => n.opType));
  t.notOk(ops.has('If'), 'no If node is left');
  t.ok(ops.has('LSTM') && ops.has('Conv'), 'the 16 kHz model is there');
  t.same(g.input!.map((i) => i.name), ['input', 'sr', 'h', 'c'], 'same inputs (sr is fed and unused)');
  t.same(g.output!.map((o) => o.name), ['output', 'hn', 'cn'], 'same outputs');
  t.ok(model.length < readFileSync(sileroModelPath()).length / 2, `the 8 kHz weights are gone (${model.length} bytes)`);
});

t.test('the inlined graph gives bit-identical outputs to the full one, one window and three a run', async (t) => {
  const full = await ort.InferenceSession.create(sileroModelPath(), SESSION_OPTIONS);
  const inlined = await ort.InferenceSession.create(loadSileroModel(sileroModelPath()), SESSION_OPTIONS);
  t.teardown(async () => {
    await full.release();
    await inlined.release();
  });
  const speech = fixture16k('hello.wav');
  // Speech, digital silence, then low noise: every stage of the model sees something different.
  const audio = new Float32Array(speech.length + VAD_WINDOW * 40);
  audio.set(Float32Array.from(speech, (v) => v / 32768));
  let seed = 7;
  for (let i = speech.length + VAD_WINDOW * 20; i < audio.length; i++) audio[i] = ((seed = (seed * 48271) % 2147483647) / 2147483647 - 0.5) * 0.01;
  const sr = new ort.Tensor('int64', BigInt64Array.from([16000n]), []);
  for (const B of [1, 3]) {
    const state = [new Float32Array(2 * B * 64), new Float32Array(2 * B * 64)];
    const stateB = [state[0]!.slice(), state[1]!.slice()];
    let runs = 0;
    let differing = 0;
    let voiced = 0;
    for (let at = 0; at + B * VAD_WINDOW <= audio.length; at += B * VAD_WINDOW) {
      // B consecutive windows as B streams: each stream's state is its own, so any mix-up of the batch axis shows.
      const input = audio.slice(at, at + B * VAD_WINDOW);
      const feeds = (h: Float32Array, c: Float32Array) => ({
        input: new ort.Tensor('float32', input, [B, VAD_WINDOW]),
        sr,
        h: new ort.Tensor('float32', h, [2, B, 64]),
        c: new ort.Tensor('float32', c, [2, B, 64]),
      });
      const a = await full.run(feeds(state[0]!, state[1]!));
      const b = await inlined.run(feeds(stateB[0]!, stateB[1]!));
      for (const name of ['output', 'hn', 'cn']) {
        const x = a[name]!.data as Float32Array;
        const y = b[name]!.data as Float32Array;
        if (x.length !== y.length || x.some((v, i) => v !== y[i])) differing++;
      }
      voiced += (a.output!.data as Float32Array).filter((p) => p > 0.5).length;
      state[0] = Float32Array.from(a.hn!.data as Float32Array);
      state[1] = Float32Array.from(a.cn!.data as Float32Array);
      stateB[0] = Float32Array.from(b.hn!.data as Float32Array);
      stateB[1] = Float32Array.from(b.cn!.data as Float32Array);
      runs++;
    }
    t.equal(differing, 0, `${B} a run: ${runs} runs, every output equal to the bit`);
    t.ok(voiced > 0, `${B} a run: the speech was voiced (${voiced} windows), so the comparison covered speech`);
  }
});

t.test('another model file loads as it is, with a warning', async (t) => {
  // The same graph re-encoded: valid, equivalent, and not byte-for-byte the known file.
  const original = readFileSync(sileroModelPath());
  const other = onnx.ModelProto.encode(onnx.ModelProto.decode(original)).finish();
  const path = join(tmpdir(), `eva-silero-${process.pid}.onnx`);
  writeFileSync(path, other);
  const warnings: string[] = [];
  const loaded = loadSileroModel(path, (w) => warnings.push(w));
  t.ok(Buffer.from(loaded).equals(Buffer.from(other)), 'the bytes are handed on unchanged');
  t.match(warnings.join('\n'), /not the Silero v4 file EVA knows/, 'and the operator is told why');
  const s = await ort.InferenceSession.create(loaded, SESSION_OPTIONS);
  await s.release();
});

t.test('an If without a chosen branch is an error, not a guess', async (t) => {
  const original = readFileSync(sileroModelPath());
  const { If_69: _dropped, ...partial } = SILERO_V4_BRANCHES;
  t.throws(() => inlineBranches(original, partial), /no branch chosen for If node If_69/);
});
