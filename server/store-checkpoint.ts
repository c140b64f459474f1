// WAL checkpoints off the event loop (store.ts). A checkpoint fsyncs the WAL and the database file: measured at
// 10-16 ms here, on whichever thread commits when the WAL passes 1000 pages. So the store's connection never
// checkpoints (wal_autocheckpoint=0) and this worker thread, with its own connection, runs a PASSIVE checkpoint
// (which never blocks the writer) every CHECKPOINT_MS when the WAL has changed. If the worker cannot start or
// dies, the store's connection checkpoints again (the default), and the error is reported.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the worker folds the WAL back into the database file. */
export const CHECKPOINT_MS = 1000;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.module);
const db = new Database(workerData.path, { timeout: 1000 });
// A checkpoint of an unchanged WAL is work for nothing (a few % of a core a second, measured by bench/stages.ts):
// skip it while the WAL file's size and mtime stay as they were after the last one.
let seen = '';
const walState = () => { try { const st = statSync(workerData.path + '-wal'); return st.size + ':' + st.mtimeMs; } catch { return 'none'; } };
const run = () => {
  const before = walState();
  if (before === seen) return;
  try { db.pragma('wal_checkpoint(PASSIVE)'); seen = walState(); } catch (err) { parentPort.postMessage({ error: String((err && err.message) || err) }); }
};
const timer = setInterval(run, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m !== 'close') return;
  clearInterval(timer);
  try { db.close(); } catch {}
  parentPort.close();
});
`;

export interface Checkpointer {
  /** Stops the worker; resolves once it has closed its connection and exited (at most CLOSE_WAIT_MS). */
  close(): Promise<void>;
}

/** How long close() waits for a checkpoint in progress before it terminates the worker. */
const CLOSE_WAIT_MS = 1000;

/** `setAutoCheckpoint(false)` once the worker runs; `(true)` if it goes away. */
export function startCheckpointer(path: string, setAutoCheckpoint: (on: boolean) => void, onError: (what: string, err: unknown) => void): Checkpointer {
  let worker: Worker | null = null;
  try {
    worker = new Worker(WORKER, { eval: true, workerData: { module: createRequire(import.meta.url).resolve('better-sqlite3'), path, everyMs: CHECKPOINT_MS } });
  } catch (err) {
    onError('start the checkpoint worker; checkpointing on the main thread', err);
    return { close: async () => undefined };
  }
  worker.unref();
  setAutoCheckpoint(false);
  worker.on('message', (m: { error?: string }) => {
    if (m.error) onError('checkpoint the WAL (worker)', new Error(m.error));
  });
  const lost = (err: unknown): void => {
    if (!worker) return;
    worker = null;
    onError('the checkpoint worker stopped; checkpointing on the main thread again', err);
    setAutoCheckpoint(true);
  };
  worker.on('error', lost);
  worker.on('exit', (code) => lost(new Error(`exit code ${code}`)));
  return {
    close() {
      const w = worker;
      worker = null;
      if (!w) return Promise.resolve();
      // Its connection holds the -wal and -shm files until it exits: a caller that removes the database next
      // (a test's temporary directory, an operator's cleanup) must not race it.
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => void w.terminate(), CLOSE_WAIT_MS);
        w.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        w.postMessage('close');
      });
    },
  };
}
