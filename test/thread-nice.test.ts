// EVA as a user starts it: the VAD's and eSpeak's worker threads at EVA_THREAD_NICE (default 10), the main thread
// that paces the audio at the process's own priority; EVA_THREAD_NICE=0 leaves every thread alone. Linux only.
import t from 'tap';
import { threadNices } from './helpers/proc.js';
import { spawnEva } from './helpers/server.js';

const skip = process.platform !== 'linux' && 'Linux only';

t.test('by default the VAD and eSpeak worker threads run at nice 10, the main thread at 0', { skip }, async (t) => {
  const eva = await spawnEva(t, { env: { EVA_LLM: 'echo' } });
  const nices = threadNices(eva.child.pid!);
  const niced = [...nices].filter(([, n]) => n === 10).map(([tid]) => tid);
  t.ok(niced.length >= 2, `at least two threads at nice 10 (the VAD's and eSpeak's): ${niced.join(', ')}`);
  t.equal(nices.get(eva.child.pid!), 0, 'the main thread at 0');
  t.same([...nices.values()].filter((n) => n !== 0 && n !== 10), [], 'nothing at any other value');
});

t.test('EVA_THREAD_NICE=0 leaves every thread at the process\'s priority', { skip }, async (t) => {
  const eva = await spawnEva(t, { env: { EVA_LLM: 'echo', EVA_THREAD_NICE: '0' } });
  t.same([...threadNices(eva.child.pid!).values()].filter((n) => n !== 0), [], 'no thread niced');
});
