// Worker faults, eSpeak NG: the synthesis worker is killed, then made to hang, in the middle of a sentence. The
// request in flight must fail with a clear ProviderError, the worker is replaced, and the next request speaks.
// A flood beyond the queue bound is refused with tts_busy instead of waiting without end.
import t from 'tap';
import { EspeakTts, ESPEAK_JOB_TIMEOUT_MS } from '../../server/providers/tts-espeak.js';
import type { TtsChunk } from '../../server/providers/types.js';

// The worker honours test faults only with this set in its environment (copied when it is spawned).
process.env.EVA_TEST_FAULTS = '1';

const signal = () => new AbortController().signal;
const LONG = Array.from({ length: 30 }, (_, i) => `This is sentence number ${i + 1} of a reply that is cut off.`).join(' ');

async function audioOf(it: AsyncIterable<TtsChunk>): Promise<number> {
  let n = 0;
  for await (const c of it) if (c.type === 'audio') n += c.samples.length;
  return n;
}

/** Consume until the stream fails; returns the error, the audio chunks before it and when it came. */
async function failureOf(it: AsyncIterable<TtsChunk>, onChunk?: (n: number) => void): Promise<{ err: unknown; chunks: number; at: number }> {
  let chunks = 0;
  try {
    for await (const c of it) if (c.type === 'audio') onChunk?.(++chunks);
  } catch (err) {
    return { err, chunks, at: performance.now() };
  }
  return { err: null, chunks, at: performance.now() };
}

t.test('eSpeak worker faults mid-sentence: the request fails clearly, the next one speaks', async (t) => {
  const tts = new EspeakTts();
  t.teardown(() => tts.close());
  await tts.init();

  await t.test('killed mid-synthesis: provider_unavailable, then a new worker speaks', async (t) => {
    const killedAt: number[] = [];
    const r = await failureOf(tts.synthesize(LONG, { signal: signal() }), (n) => {
      if (n === 2) {
        killedAt.push(performance.now());
        void tts.worker!.terminate();
      }
    });
    t.match(r.err, { name: 'ProviderError', code: 'provider_unavailable', message: /died during the request/ });
    t.ok(r.chunks >= 2, `${r.chunks} chunks before the failure`);
    const t0 = performance.now();
    t.ok((await audioOf(tts.synthesize('Back again after a crash.', { signal: signal() }))) > 0, 'the next request speaks');
    t.comment(`kill → error ${(r.at - killedAt[0]!).toFixed(0)} ms; next sentence done ${(performance.now() - t0).toFixed(0)} ms later (includes the new worker's start)`);
  });

  await t.test('exits on its own mid-synthesis: the same', async (t) => {
    t.ok(tts.debugFault('exit', 2), 'fault armed');
    const r = await failureOf(tts.synthesize(LONG, { signal: signal() }));
    t.match(r.err, { name: 'ProviderError', code: 'provider_unavailable' });
    t.ok(r.chunks <= 2, `no audio after the fault (${r.chunks} chunks before it)`);
    t.ok((await audioOf(tts.synthesize('Still here.', { signal: signal() }))) > 0);
  });

  await t.test('hangs mid-synthesis: provider_timeout after the job deadline; a request queued behind it is served', async (t) => {
    t.ok(tts.debugFault('hang', 2), 'fault armed');
    const t0 = performance.now();
    const hung = failureOf(tts.synthesize(LONG, { signal: signal() }));
    const queued = audioOf(tts.synthesize('Queued behind the hung one.', { signal: signal() }));
    const r = await hung;
    const took = r.at - t0;
    t.match(r.err, { name: 'ProviderError', code: 'provider_timeout', message: /hung/ });
    t.ok(took >= ESPEAK_JOB_TIMEOUT_MS * 0.9 && took < ESPEAK_JOB_TIMEOUT_MS + 3000, `failed after ${took.toFixed(0)} ms (deadline ${ESPEAK_JOB_TIMEOUT_MS} ms)`);
    t.ok((await queued) > 0, 'the queued request speaks on the replacement');
    t.ok((await audioOf(tts.synthesize('And the next one too.', { signal: signal() }))) > 0);
    t.equal(tts.restarts, 3, 'three replacements so far');
    t.equal((await tts.health()).ok, true);
  });
});

t.test('a full queue answers tts_busy at once; the queue drains and serves again', async (t) => {
  const tts = new EspeakTts({ maxQueue: 3 });
  t.teardown(() => tts.close());
  await tts.init();
  // One in the worker, three waiting: the fifth is refused.
  const runs = Array.from({ length: 5 }, (_, i) => audioOf(tts.synthesize(`Request number ${i + 1} of the flood.`, { signal: signal() })).then(
    (n) => ({ ok: n > 0 }),
    (err: unknown) => ({ err }),
  ));
  const results = await Promise.all(runs);
  const busy = results.filter((r) => 'err' in r);
  t.equal(busy.length, 1, 'one refused');
  t.match((busy[0] as { err: unknown }).err, { name: 'ProviderError', code: 'tts_busy', retryable: true, status: 503 });
  t.equal(results.filter((r) => 'ok' in r && r.ok).length, 4, 'the others spoke');
  t.ok((await audioOf(tts.synthesize('Room again.', { signal: signal() }))) > 0);
});
