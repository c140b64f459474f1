// onStdinClose on streams: what ends the lifeline and what does not. The real thing (a parent killed with
// SIGKILL, EVA exiting after it) is test/lifeline.test.ts.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { onStdinClose } from './lifeline.js';

t.test('data keeps EVA up; end-of-file fires once, and the close after it does not fire again', async (t) => {
  const stdin = new PassThrough();
  const why: string[] = [];
  onStdinClose(stdin, (w) => why.push(w));
  stdin.write('anything the parent writes is dropped\n');
  await new Promise((r) => setImmediate(r));
  t.same(why, [], 'writing to the pipe is not the end');
  stdin.end();
  await new Promise((r) => stdin.once('close', r));
  await new Promise((r) => setImmediate(r));
  t.equal(why.length, 1, 'fired once for end and close together');
  t.match(why[0], /stdin closed/);
});

t.test('a failing stdin counts as the parent being gone', async (t) => {
  const stdin = new PassThrough();
  const why: string[] = [];
  onStdinClose(stdin, (w) => why.push(w));
  stdin.destroy(new Error('EIO'));
  await new Promise((r) => stdin.once('close', r));
  t.equal(why.length, 1, 'error then close: one call');
  t.match(why[0], /stdin failed \(EIO\)/);
});
