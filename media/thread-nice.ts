// The helper threads' CPU priority. EVA's main thread paces every call's audio (a frame every 20 ms) and reads
// every packet; the VAD's and eSpeak's worker threads do batch work whose result is wanted soon, not within the
// next frame. On a machine whose cores are all busy (a 2-core box under load, its callers beside it) the kernel
// shares a core among runnable threads equally, and the main thread's long waits for a core were most of the
// loop stalls behind audio gaps (bench: a main-thread stall logger read 18–58 ms of run-queue wait inside 31–72 ms
// gaps with two workers at 40 calls). A helper thread with a higher nice value yields the core to the main thread
// when both want it; with a core free it runs as before. A thread's own id, not the process's: on Linux
// setpriority(PRIO_PROCESS, tid) sets one thread (what `os.setPriority` calls), and Node names no worker threads.
// Raising a nice value needs no privilege. Elsewhere (macOS, Windows) nothing is changed.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** EVA's default (EVA_THREAD_NICE) for the VAD and eSpeak worker threads; 0 leaves them at the main thread's. */
export const HELPER_THREAD_NICE = 10;

/**
 * Sets the calling thread's nice value (Linux only; call it inside the worker thread). Returns the thread id it
 * set, or undefined when it changed nothing (nice 0, another OS, or the kernel refused).
 */
export function niceThisThread(nice: number): number | undefined {
  if (!nice || process.platform !== 'linux') return undefined;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return undefined;
    setPriority(tid, nice);
    return tid;
  } catch {
    return undefined;
  }
}
