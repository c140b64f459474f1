import t from 'tap';
import { Worker } from 'node:worker_threads';
import { WorkerSupervisor, type SupervisorOptions } from './supervisor.js';

// A real worker thread, small enough to read here: answers jobs, and hangs, exits or streams on request.
const SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
if (workerData.failStart) process.exit(3);
parentPort.on('message', (m) => {
  if (m.op === 'echo') parentPort.postMessage({ type: 'done', id: m.id, value: m.value });
  else if (m.op === 'hang') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
  else if (m.op === 'exit') process.exit(7);
  else if (m.op === 'throw') setImmediate(() => { throw new Error('boom in the worker'); });
  else if (m.op === 'stream') {
    let n = 0;
    const tick = () => {
      if (++n > m.count) return parentPort.postMessage({ type: 'done', id: m.id, value: n - 1 });
      parentPort.postMessage({ type: 'part', id: m.id });
      setTimeout(tick, m.everyMs);
    };
    tick();
  }
});
setTimeout(() => parentPort.postMessage({ type: 'ready' }), workerData.readyDelayMs || 0);
`;

type Msg = { type: 'ready' } | { type: 'done'; id: number; value: unknown } | { type: 'part'; id: number };

function supervisor(t: { teardown(fn: () => unknown): void }, opts: Partial<SupervisorOptions<Msg>> & { data?: Record<string, unknown> } = {}) {
  let spawned = 0;
  const s = new WorkerSupervisor<Msg>({
    name: 'tiny',
    spawn: () => {
      spawned++;
      return new Worker(SCRIPT, { eval: true, workerData: { ...opts.data } });
    },
    isReady: (m) => m.type === 'ready',
    jobId: (m) => (m.type === 'ready' ? undefined : m.id),
    jobTimeoutMs: 300,
    backoff: { initialMs: 20, maxMs: 160, resetAfterMs: 60_000 },
    ...opts,
  });
  t.teardown(() => s.close());
  return { s, spawned: () => spawned };
}

function job(s: WorkerSupervisor<Msg>, op: string, extra: Record<string, unknown> = {}, signal?: AbortSignal) {
  return s.submit<unknown>({
    post: (w, id) => w.postMessage({ op, id, ...extra }),
    onMessage: (m) => (m.type === 'done' ? { result: m.value } : undefined),
    signal,
  });
}

t.test('jobs are answered in order by one worker started on demand', async (t) => {
  const { s, spawned } = supervisor(t);
  const answers = await Promise.all([1, 2, 3].map((v) => job(s, 'echo', { value: v })));
  t.same(answers, [1, 2, 3]);
  t.equal(spawned(), 1);
  t.equal(s.restarts, 0);
});

t.test('a job that hangs the worker fails with timeout; the worker is replaced and the next job is answered', async (t) => {
  const { s, spawned } = supervisor(t);
  await s.start();
  const restarted = new Promise<{ delayMs: number; downMs: number }>((r) => s.on('restarted', r));
  const t0 = performance.now();
  const hung = t.rejects(job(s, 'hang'), { name: 'WorkerError', fault: 'timeout' }, 'the hung job fails with timeout');
  const queued = job(s, 'echo', { value: 'after' }); // queued behind the hung one, not lost
  await hung;
  const hungFor = performance.now() - t0;
  t.equal(await queued, 'after', 'the job queued behind it runs on the replacement');
  const r = await restarted;
  t.equal(spawned(), 2);
  t.ok(hungFor < 3000, `timeout seen after ${hungFor.toFixed(0)} ms (deadline 300 ms)`);
  t.comment(`hang detected after ${hungFor.toFixed(0)} ms; replacement ready ${r.downMs.toFixed(0)} ms after it (backoff ${r.delayMs} ms)`);
  t.equal(await job(s, 'echo', { value: 'next' }), 'next');
});

t.test('a worker that exits or throws mid-job fails that job with crashed; queued jobs wait for the replacement', async (t) => {
  const { s } = supervisor(t, { concurrency: 2 });
  await s.start();
  const downs: string[] = [];
  s.on('down', (e) => downs.push(e.cause.fault));
  const [a, b] = [job(s, 'exit'), job(s, 'stream', { count: 100, everyMs: 50 })];
  await t.rejects(a, { name: 'WorkerError', fault: 'crashed' });
  await t.rejects(b, { name: 'WorkerError', fault: 'crashed' }, 'the other job in flight is lost too');
  t.equal(await job(s, 'echo', { value: 1 }), 1);
  await t.rejects(job(s, 'throw'), { name: 'WorkerError', fault: 'crashed', message: /boom in the worker|job in flight/ });
  t.equal(await job(s, 'echo', { value: 2 }), 2);
  t.same(downs, ['crashed', 'crashed']);
  t.equal(s.restarts, 2);
});

t.test('replacements back off, doubling to the cap, and start again at the first delay after a healthy spell', async (t) => {
  let clock = 0;
  const { s } = supervisor(t, { now: () => clock, backoff: { initialMs: 20, maxMs: 80, resetAfterMs: 1000 } });
  const delays: number[] = [];
  s.on('restarted', (e) => delays.push(e.delayMs));
  await s.start();
  for (let i = 0; i < 4; i++) {
    await t.rejects(job(s, 'exit'), { name: 'WorkerError', fault: 'crashed' });
    await s.start();
  }
  t.same(delays, [20, 40, 80, 80], 'delays double and stop at maxMs');
  clock += 1000; // the last worker has been up for resetAfterMs
  await t.rejects(job(s, 'exit'), { name: 'WorkerError', fault: 'crashed' });
  await s.start();
  t.same(delays.at(-1), 20, 'reset after a healthy spell');
});

t.test('a job that keeps sending is not timed out: the deadline is for progress, not for the whole job', async (t) => {
  const { s } = supervisor(t, { jobTimeoutMs: 400 });
  // 20 parts 40 ms apart: 800 ms in all, twice the deadline, never 400 ms without a message.
  t.equal(await job(s, 'stream', { count: 20, everyMs: 40 }), 20);
});

t.test('a full queue refuses with busy; an aborted queued job is dropped without reaching the worker', async (t) => {
  const { s } = supervisor(t, { maxQueue: 2, data: { readyDelayMs: 100 } });
  const a = job(s, 'echo', { value: 'a' });
  const ctrl = new AbortController();
  const b = job(s, 'echo', { value: 'b' }, ctrl.signal);
  await t.rejects(job(s, 'echo', { value: 'c' }), { name: 'WorkerError', fault: 'busy' });
  ctrl.abort(new Error('caller left'));
  await t.rejects(b, /caller left/);
  t.equal(s.load.queued, 1);
  t.equal(await a, 'a');
  t.equal(await job(s, 'echo', { value: 'd' }), 'd', 'room again once the queue drains');
});

t.test('a worker that cannot start fails the waiting jobs with start_failed; close() is idempotent and fails later jobs', async (t) => {
  const { s, spawned } = supervisor(t, { data: { failStart: true } });
  await t.rejects(job(s, 'echo', { value: 1 }), { name: 'WorkerError', fault: 'start_failed' });
  t.equal(spawned(), 1, 'not restarted eagerly: nothing waits on it');
  await t.rejects(s.start(), { name: 'WorkerError', fault: 'start_failed' }, 'the next request tries again, after the backoff');
  t.equal(spawned(), 2);
  await Promise.all([s.close(), s.close()]);
  await t.rejects(job(s, 'echo', { value: 1 }), { name: 'WorkerError', fault: 'closed' });
});

t.test('close() fails the jobs in flight and ends the worker', async (t) => {
  const { s } = supervisor(t, { jobTimeoutMs: 10_000 });
  await s.start();
  const w = s.worker!;
  const exited = new Promise<number>((r) => w.once('exit', r));
  const p = job(s, 'hang');
  const rejected = t.rejects(p, { name: 'WorkerError', fault: 'closed' });
  await new Promise((r) => setTimeout(r, 20));
  await s.close();
  await rejected;
  await exited;
  t.equal(s.worker, null);
});
