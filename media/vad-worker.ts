// The Silero session in its own thread. onnxruntime-node runs inference synchronously on the calling thread (in a
// setImmediate): on the main thread that was about a third of EVA's event-loop time under load, competing with
// RTP and the pacer. Here the main thread only copies the batch in and the results out (transferred buffers).
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

export type ToVadWorker =
  | { type: 'run'; id: number; batch: number; input: Float32Array; h: Float32Array; c: Float32Array }
  | { type: 'close' };
export type FromVadWorker =
  | { type: 'ready' }
  | { type: 'result'; id: number; prob: Float32Array; hn: Float32Array; cn: Float32Array }
  | { type: 'error'; id: number; message: string };

const port = parentPort!;
const { modelPath, rate } = workerData as { modelPath: string; rate: number };
const session = await ort.InferenceSession.create(modelPath, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
});
const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(rate)]), []);
const post = (msg: FromVadWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

port.on('message', (msg: ToVadWorker) => {
  if (msg.type === 'close') {
    void session.release().finally(() => port.close());
    return;
  }
  const B = msg.batch;
  session
    .run({
      input: new ort.Tensor('float32', msg.input, [B, msg.input.length / B]),
      sr,
      h: new ort.Tensor('float32', msg.h, [2, B, 64]),
      c: new ort.Tensor('float32', msg.c, [2, B, 64]),
    })
    .then((out) => {
      // Copies: the tensors' buffers belong to ORT.
      const prob = Float32Array.from(out.output!.data as Float32Array);
      const hn = Float32Array.from(out.hn!.data as Float32Array);
      const cn = Float32Array.from(out.cn!.data as Float32Array);
      post({ type: 'result', id: msg.id, prob, hn, cn }, [prob.buffer, hn.buffer, cn.buffer]);
    })
    .catch((err: unknown) => post({ type: 'error', id: msg.id, message: (err as Error).message ?? String(err) }));
});
post({ type: 'ready' });
