// The VAD's and eSpeak's worker threads at a nice value of their own, the calling thread left alone. Linux only
// (/proc); elsewhere niceThisThread changes nothing, which the last test checks.
import t from 'tap';
import { createEspeakTts } from '../server/providers/tts-espeak.js';
import { threadNices } from '../test/helpers/proc.js';
import { niceThisThread } from './thread-nice.js';
import { VadEngine } from './vad.js';

const at = (nice: number): number[] => [...threadNices()].filter(([, n]) => n === nice).map(([tid]) => tid);

const linux = process.platform === 'linux';

t.test('the VAD worker thread runs at the nice value asked for, and only it', { skip: !linux && 'Linux only' }, async (t) => {
  t.same(at(7), [], 'no thread at nice 7 before');
  const engine = await VadEngine.create(undefined, { threadNice: 7 });
  t.teardown(() => engine.close());
  const niced = at(7);
  t.ok(niced.length >= 1, `a thread at nice 7 (${niced.join(', ')})`);
  t.notOk(niced.includes(process.pid), 'not the main thread');
  t.equal(threadNices().get(process.pid), 0, 'the main thread stays at 0');
});

t.test('without threadNice the VAD worker is left at the process\'s priority', { skip: !linux && 'Linux only' }, async (t) => {
  const before = new Set(threadNices().keys());
  const engine = await VadEngine.create();
  t.teardown(() => engine.close());
  const started = [...threadNices()].filter(([tid]) => !before.has(tid));
  t.ok(started.length >= 1, `the engine started threads (${started.map(([tid]) => tid).join(', ')})`);
  t.same(started.filter(([, n]) => n !== 0), [], 'all of them at nice 0');
});

t.test('the eSpeak worker thread too', { skip: !linux && 'Linux only' }, async (t) => {
  const tts = await createEspeakTts({ threadNice: 9 });
  t.teardown(() => tts.close());
  const niced = at(9);
  t.ok(niced.length >= 1, `a thread at nice 9 (${niced.join(', ')})`);
  t.notOk(niced.includes(process.pid), 'not the main thread');
});

t.test('nice 0, or an OS without /proc/thread-self, changes nothing', async (t) => {
  t.equal(niceThisThread(0), undefined);
  if (!linux) t.equal(niceThisThread(5), undefined, 'nothing outside Linux');
});
