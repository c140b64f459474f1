import t from 'tap';
import { AsyncQueue } from './queue.js';

t.test('items come out in order and iteration ends on close', async (t) => {
  const q = new AsyncQueue<number>(2);
  const got: number[] = [];
  const reader = (async () => {
    for await (const x of q) got.push(x);
  })();
  await q.push(1);
  await q.push(2);
  await q.push(3); // waits for room until the reader takes one
  q.close();
  await reader;
  t.same(got, [1, 2, 3]);
});

t.test('a producer waits while the queue is full', async (t) => {
  const q = new AsyncQueue<number>(1);
  await q.push(1);
  let pushed = false;
  const p = q.push(2).then(() => (pushed = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(pushed, 'blocked at capacity');
  const it = q[Symbol.asyncIterator]();
  t.same(await it.next(), { value: 1, done: false });
  await p;
  t.ok(pushed);
});

t.test('fail() ends the iteration with the error and releases producers', async (t) => {
  const q = new AsyncQueue<number>(1);
  await q.push(1);
  const blocked = q.push(2);
  q.fail(new Error('upstream died'));
  await blocked;
  await t.rejects(
    (async () => {
      for await (const _ of q) void _;
    })(),
    /upstream died/,
  );
});
