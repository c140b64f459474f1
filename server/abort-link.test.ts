import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { linkAbort } from './abort-link.js';
import { ReplyTurn } from './pipeline/reply.js';
import { Conversation } from './pipeline/history.js';
import { createLogger } from './log.js';
import { GroqLlm } from './providers/llm-groq.js';
import { EspeakTts } from './providers/tts-espeak.js';
import { start as startGroq } from '../bench/standins/groq.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

t.test('linkAbort: the child aborts with the parent, with its reason, until it is unlinked', async (t) => {
  const parent = new AbortController();
  const a = new AbortController();
  const b = new AbortController();
  linkAbort(parent.signal, a);
  const unlinkB = linkAbort(parent.signal, b);
  t.equal(getEventListeners(parent.signal, 'abort').length, 2, 'one listener per linked child');
  unlinkB();
  unlinkB();
  t.equal(getEventListeners(parent.signal, 'abort').length, 1, 'unlinking removes its listener (twice is harmless)');
  const reason = new Error('call ended');
  parent.abort(reason);
  t.equal(a.signal.aborted, true, 'a linked child aborts');
  t.equal(a.signal.reason, reason, "with the parent's reason");
  t.equal(b.signal.aborted, false, 'an unlinked child does not');

  const late = new AbortController();
  const unlink = linkAbort(parent.signal, late);
  t.equal(late.signal.aborted, true, 'linking to an aborted parent aborts the child at once');
  unlink();
});

t.test('linkAbort lets a finished child go; AbortSignal.any keeps every dependent with a listener alive', async (t) => {
  const parent = new AbortController();
  const anyRefs: WeakRef<AbortSignal>[] = [];
  const linkedRefs: WeakRef<AbortSignal>[] = [];
  // In a function of its own, so that no local of the last round is still on the stack at the GC.
  const round = (): void => {
    const turn = new AbortController();
    const dependent = AbortSignal.any([parent.signal, turn.signal]);
    dependent.addEventListener('abort', () => {}, { once: true });
    anyRefs.push(new WeakRef(dependent));

    const child = new AbortController();
    const unlink = linkAbort(parent.signal, child);
    child.signal.addEventListener('abort', () => {}, { once: true });
    linkedRefs.push(new WeakRef(child.signal));
    unlink();
  };
  for (let i = 0; i < 200; i++) round();
  await collect();
  const alive = (refs: WeakRef<AbortSignal>[]) => refs.filter((r) => r.deref() !== undefined).length;
  t.equal(alive(linkedRefs), 0, 'no unlinked child survives a GC');
  // The reason this module exists: if Node ever stops keeping these, this assertion says linkAbort can go.
  t.equal(alive(anyRefs), 200, 'every AbortSignal.any dependent with a listener is still held by its source');
  t.equal(getEventListeners(parent.signal, 'abort').length, 0, 'the parent holds no listener of the unlinked children');
});

t.test('a finished reply turn is cut loose from the call: the call keeps nothing of it', async (t) => {
  const groq = await startGroq({ reply: () => 'Sure. Here you are.' });
  t.teardown(() => groq.close());
  const llm = new GroqLlm({ apiKey: 'test-key', baseURL: groq.url });
  const call = new AbortController();
  const deps = {
    stt: null,
    llm,
    tts: new EspeakTts(),
    speak: false,
    conversation: new Conversation('You are a test.'),
    out: { sampleRate: 24000, enqueue() {}, flush() {}, waitForRoom: async () => {}, clear: () => 0, speaking: false, queuedMs: 0 },
    emit: () => {},
    log: createLogger('test'),
    callSignal: call.signal,
    now: () => performance.now(),
  };
  const turns: ReplyTurn[] = [];
  for (let i = 1; i <= 5; i++) {
    const turn = new ReplyTurn(i, deps, { speculative: false, speechEndAt: performance.now() });
    await turn.run({ kind: 'text', text: `question ${i}` });
    turns.push(turn);
  }
  t.same(turns.map((x) => x.text), Array(5).fill('Sure. Here you are.'), 'five turns answered through groq-sdk and the stand-in');
  t.equal(getEventListeners(call.signal, 'abort').length, 0, "the call's signal holds no listener of a finished turn");
  call.abort();
  t.same(turns.map((x) => x.aborted), Array(5).fill(false), "ending the call later touches none of the finished turns' signals");

  // And a turn still running when the call ends is aborted by it.
  const call2 = new AbortController();
  const slow = await startGroq({ profile: 'instant,ttftMs=5000', reply: () => 'Too late.' });
  t.teardown(() => slow.close());
  const running = new ReplyTurn(6, { ...deps, llm: new GroqLlm({ apiKey: 'test-key', baseURL: slow.url }), callSignal: call2.signal }, { speculative: false, speechEndAt: performance.now() });
  const done = running.run({ kind: 'text', text: 'question 6' });
  setTimeout(() => call2.abort(), 100);
  await done;
  t.equal(running.aborted, true, 'a running turn ends with the call');
  t.equal(running.text, '', 'and says nothing');
});
