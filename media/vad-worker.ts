// The Silero session in its own thread. onnxruntime-node runs inference synchronously on the calling thread (in a
// setImmediate): on the main thread that was about a third of EVA's event-loop time under load, competing with
// RTP and the pacer. Here the main thread only copies the batch in and the results out (transferred buffers).
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

/** Test-only faults (see `debug` below). */
export type VadFault = 'hang' | 'exit';

export type ToVadWorker =
  | { type: 'run'; id: number; batch: number; input: Float32Array; h: Float32Array; c: Float32Array }
  | { type: 'close' }
  /** Fault injection: the next batch hangs the thread (60 s) or exits it. Ignored unless EVA_TEST_FAULTS=1. */
  | { type: 'debug'; fault: VadFault };
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
/** The fault tests armed (honoured only with EVA_TEST_FAULTS=1: production never hangs on request). */
const faultsAllowed = process.env.EVA_TEST_FAULTS === '1';
let armed: VadFault | null = null;

port.on('message', (msg: ToVadWorker) => {
  if (msg.type === 'close') {
    void session.release().finally(() => port.close());
    return;
  }
  if (msg.type === 'debug') {
    if (faultsAllowed) armed = msg.fault;
    return;
  }
  if (armed) {
    const fault = armed;
    armed = null;
    if (fault === 'exit') process.exit(1);
    // Blocks this thread as stuck native code would (bounded: 60 s); worker.terminate() ends the wait.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
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
