import t from 'tap';
import { rmsOf as rms } from '../../media/level.js';
import { ProviderError } from '../errors.js';
import { createEspeakTts, EspeakTts } from './tts-espeak.js';
import type { TtsChunk } from './types.js';

async function collect(it: AsyncIterable<TtsChunk>): Promise<{ audio: Int16Array; words: Extract<TtsChunk, { type: 'word' }>[]; rates: Set<number> }> {
  const parts: Int16Array[] = [];
  const words: Extract<TtsChunk, { type: 'word' }>[] = [];
  const rates = new Set<number>();
  for await (const c of it) {
    if (c.type === 'audio') (parts.push(c.samples), rates.add(c.sampleRate));
    else words.push(c);
  }
  const audio = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (audio.set(p, o), (o += p.length));
  return { audio, words, rates };
}

const signal = () => new AbortController().signal;

t.test('eSpeak NG in a worker', async (t) => {
  const tts = await createEspeakTts();
  t.teardown(() => tts.close());
  t.equal(tts.sampleRate, 22050);

  await t.test('a sentence gives speech-level audio at 22050 Hz of plausible duration', async (t) => {
    const text = 'The quick brown fox jumps over the lazy dog near the quiet river bank.';
    const { audio, rates } = await collect(tts.synthesize(text, { signal: signal() }));
    t.same([...rates], [22050]);
    const seconds = audio.length / 22050;
    t.ok(seconds > 2 && seconds < 8, `duration ${seconds.toFixed(2)} s for 14 words`);
    const level = rms(audio);
    t.ok(level > 500 && level < 20000, `rms ${level.toFixed(0)}`);
  });

  await t.test('word events come in order with offsets into the input', async (t) => {
    const text = '  Hello there, my friend. How are you today?';
    const { words, audio } = await collect(tts.synthesize(text, { signal: signal() }));
    t.same(
      words.map((w) => text.slice(w.textOffset, w.textOffset + w.textLength)),
      ['Hello', 'there', 'my', 'friend', 'How', 'are', 'you', 'today'],
    );
    const ms = words.map((w) => w.audioMs);
    t.same(ms, [...ms].sort((a, b) => a - b), 'audio times ascend');
    t.ok(ms.at(-1)! < (audio.length / 22050) * 1000, 'the last word starts inside the audio');
  });

  await t.test('offsets are UTF-16 string offsets also for non-ASCII text and emoji', async (t) => {
    const text = 'Café olé, naïve 😀 world.';
    const { words } = await collect(tts.synthesize(text, { signal: signal() }));
    const spans = words.map((w) => text.slice(w.textOffset, w.textOffset + w.textLength));
    t.same(spans.slice(0, 3), ['Café', 'olé', 'naïve']);
    t.equal(spans.at(-1), 'world');
  });

  await t.test('abort mid-synthesis ends the stream quickly and the next request still works', async (t) => {
    const ctrl = new AbortController();
    const long = Array.from({ length: 12 }, (_, i) => `This is sentence number ${i + 1} of a long reply.`).join(' ');
    let chunks = 0;
    let endedIn = 0;
    for await (const c of tts.synthesize(long, { signal: ctrl.signal })) {
      if (c.type !== 'audio') continue;
      if (++chunks === 2) {
        const at = performance.now();
        ctrl.abort();
        endedIn = -at;
      }
    }
    endedIn += performance.now();
    t.equal(chunks, 2, 'no audio after the abort');
    t.ok(endedIn < 20, `ended ${endedIn.toFixed(1)} ms after the abort`);
    const t0 = performance.now();
    const { audio } = await collect(tts.synthesize('Still here.', { signal: signal() }));
    t.ok(audio.length > 22050 * 0.3, 'the next request is served');
    t.ok(performance.now() - t0 < 1000, 'without waiting for the aborted one to finish');
  });

  await t.test('an already-aborted signal yields nothing; a consumer leaving early frees the worker', async (t) => {
    const ctrl = new AbortController();
    ctrl.abort();
    t.same((await collect(tts.synthesize('Never spoken.', { signal: ctrl.signal }))).audio.length, 0);
    for await (const c of tts.synthesize('One two three four five six seven eight nine ten.', { signal: signal() })) {
      if (c.type === 'audio') break;
    }
    t.ok((await collect(tts.synthesize('Next.', { signal: signal() }))).audio.length > 0);
  });

  await t.test('queued requests are served in order; aborting a queued one drops only it', async (t) => {
    const ctrl = new AbortController();
    const texts = ['First one.', 'Second one here.', 'Third.'];
    const order: number[] = [];
    const runs = texts.map(async (text, i) => {
      const r = await collect(tts.synthesize(text, { signal: i === 1 ? ctrl.signal : signal() }));
      if (r.audio.length > 0) order.push(i);
      return r.audio.length;
    });
    ctrl.abort();
    const lens = await Promise.all(runs);
    t.same(order, [0, 2]);
    t.equal(lens[1], 0);
  });

  await t.test('rate, pitch and voice options change the audio; an unknown voice is a ProviderError', async (t) => {
    const text = 'The quick brown fox jumps over the lazy dog.';
    const normal = (await collect(tts.synthesize(text, { signal: signal() }))).audio.length;
    const fast = (await collect(tts.synthesize(text, { signal: signal(), rate: 350 }))).audio.length;
    t.ok(fast < normal * 0.7, `350 wpm is shorter (${fast} < ${normal})`);
    const gb = (await collect(tts.synthesize(text, { signal: signal(), voice: 'en-gb' }))).audio.length;
    t.ok(gb > 0, 'a language name that is not a voice name is resolved');
    await t.rejects(collect(tts.synthesize(text, { signal: signal(), voice: 'xx-nope' })), ProviderError);
    t.ok((await collect(tts.synthesize('Back to normal.', { signal: signal() }))).audio.length > 0);
  });

  await t.test('empty or punctuation-only text gives no audio', async (t) => {
    t.equal((await collect(tts.synthesize('  ', { signal: signal() }))).audio.length, 0);
    t.equal((await collect(tts.synthesize('...', { signal: signal() }))).audio.length, 0);
  });

  await t.test('voices() lists eSpeak voices, en-us among them', async (t) => {
    const voices = await tts.voices();
    t.ok(voices.length > 50, `${voices.length} voices`);
    t.ok(voices.some((v) => v.language === 'en-us'), 'en-us is offered');
    t.ok(voices.every((v) => v.id && v.name));
  });

  await t.test('the main thread is not blocked during synthesis', async (t) => {
    let ticks = 0;
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 2);
    // ~16 sentences keep the worker busy for ~100–200 ms: a blocked main thread would show one gap that long.
    const text = Array.from({ length: 16 }, (_, i) => `Sentence ${i + 1}: the quick brown fox jumps over the lazy dog.`).join(' ');
    const t0 = performance.now();
    await collect(tts.synthesize(text, { signal: signal() }));
    const took = performance.now() - t0;
    clearInterval(timer);
    t.ok(ticks > 3, `${ticks} ticks in ${took.toFixed(0)} ms of synthesis`);
    t.ok(maxGap < Math.max(40, took / 3), `longest gap between ticks ${maxGap.toFixed(1)} ms of ${took.toFixed(0)} ms`);
  });

  await t.test('health() is ok while the worker is up', async (t) => {
    t.equal((await tts.health()).ok, true);
  });
});

t.test('a dead worker fails the synthesis in flight with a ProviderError; the next call restarts it', async (t) => {
  const tts = new EspeakTts();
  t.teardown(() => tts.close());
  await tts.init();
  // ~40 sentences take the worker a few hundred ms: it is still synthesizing when it is killed.
  const long = Array.from({ length: 40 }, (_, i) => `This is sentence number ${i + 1}, cut off when its worker dies.`).join(' ');
  const it = tts.synthesize(long, { signal: signal() });
  const worker = tts.worker!;
  await t.rejects(
    (async () => {
      for await (const c of it) if (c.type === 'audio') await worker.terminate();
    })(),
    { name: 'ProviderError', code: 'provider_unavailable' },
  );
  const { audio } = await collect(tts.synthesize('Back again.', { signal: signal() }));
  t.ok(audio.length > 0, 'a new worker speaks');
  t.equal((await tts.health()).ok, true);
});

t.test('close() twice is harmless; after close, calls fail and health says so', async (t) => {
  const tts = await createEspeakTts();
  await Promise.all([tts.close(), tts.close()]);
  await tts.close();
  t.same(await tts.health(), { ok: false, detail: 'closed' });
  await t.rejects(collect(tts.synthesize('Hello.', { signal: signal() })), ProviderError);
});
