// The Silero session in its own thread. onnxruntime-node runs inference synchronously on the calling thread (in a
// setImmediate): on the main thread that was about a third of EVA's event-loop time under load, competing with
// RTP and the pacer. Here the main thread only copies the batch in and the results out (one transferred buffer
// each way: vad.ts batchLayout).
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { loadSileroModel } from './silero-graph.js';
import { niceThisThread } from './thread-nice.js';
import { SESSION_OPTIONS, runPacked } from './vad.js';

/** Test-only faults (see `debug` below). */
export type VadFault = 'hang' | 'exit';

export type ToVadWorker =
  /** A batch packed as vad.ts batchLayout says (transferred). */
  | { type: 'run'; id: number; batch: number; packed: Float32Array }
  | { type: 'close' }
  /** Fault injection: the next batch hangs the thread (60 s) or exits it. Ignored unless EVA_TEST_FAULTS=1. */
  | { type: 'debug'; fault: VadFault };
export type FromVadWorker =
  | { type: 'ready' }
  | { type: 'result'; id: number; packed: Float32Array }
  | { type: 'error'; id: number; message: string };

const port = parentPort!;
const { modelPath, rate, nice } = workerData as { modelPath: string; rate: number; nice?: number };
niceThisThread(nice ?? 0);
const session = await ort.InferenceSession.create(loadSileroModel(modelPath), SESSION_OPTIONS);
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
  runPacked(session, sr, msg.batch, msg.packed)
    .then((packed) => post({ type: 'result', id: msg.id, packed }, [packed.buffer as ArrayBuffer]))
    .catch((err: unknown) => post({ type: 'error', id: msg.id, message: (err as Error).message ?? String(err) }));
});
post({ type: 'ready' });
