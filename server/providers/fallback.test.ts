import t, { type Test } from 'tap';
import { start as startGroq } from '../../bench/standins/groq.js';
import { start as startOllama } from '../../bench/standins/ollama.js';
import { ProviderError, isAbort } from '../errors.js';
import { CircuitBreaker, FallbackLlm, FallbackStt, FallbackTts, type FallbackLlmOptions } from './fallback.js';
import { GroqTts } from './tts-groq.js';
import { OpenAiTts } from './tts-openai.js';
import { GroqLlm } from './llm-groq.js';
import { OllamaLlm } from './llm-ollama.js';
import { GroqStt } from './stt-groq.js';
import { OpenAiStt } from './stt-openai.js';
import type { ChatMessage } from './types.js';

const MSGS: ChatMessage[] = [{ role: 'user', content: 'Hello' }];
const ANSWER = 'You said: Hello. That is interesting, tell me more.';

async function chain(t: Test, opts: FallbackLlmOptions = {}) {
  const groq = await startGroq({ reply: () => 'Groq answers here, with several words in it.' });
  const ollama = await startOllama({});
  t.teardown(() => Promise.all([groq.close(), ollama.close()]));
  const fallbacks: { from: string; to: string; error: Error }[] = [];
  const llm = new FallbackLlm([new GroqLlm({ apiKey: 'test', baseURL: groq.url }), new OllamaLlm({ host: ollama.url })], {
    ...opts,
    onFallback: (from, to, error) => fallbacks.push({ from, to, error }),
  });
  const ask = async (signal = new AbortController().signal): Promise<string> => {
    let out = '';
    for await (const d of llm.stream(MSGS, { signal })) out += d;
    return out;
  };
  return { groq, ollama, llm, fallbacks, ask };
}

t.test('the circuit breaker opens after N failures, half-opens after the cool-down, and closes on success', async (t) => {
  let now = 0;
  const b = new CircuitBreaker({ threshold: 3, cooldownMs: 30_000, now: () => now });
  b.failure();
  b.failure();
  t.equal(b.state, 'closed');
  b.success();
  b.failure();
  b.failure();
  t.equal(b.state, 'closed', 'a success resets the count');
  b.failure();
  t.equal(b.state, 'open');
  t.equal(b.tryAcquire(), false);
  now += 29_999;
  t.equal(b.tryAcquire(), false);
  now += 1;
  t.equal(b.state, 'half-open');
  t.equal(b.tryAcquire(), true, 'one trial');
  t.equal(b.tryAcquire(), false, 'only one at a time');
  b.failure();
  t.equal(b.state, 'open', 'a failed trial opens it again');
  now += 30_000;
  t.equal(b.tryAcquire(), true);
  b.release();
  t.equal(b.tryAcquire(), true, 'an aborted trial frees the slot');
  b.success();
  t.equal(b.state, 'closed');
});

t.test('groq failing with 500 falls back to ollama at once, well within the deadline', async (t) => {
  const { groq, llm, fallbacks, ask } = await chain(t, { firstTokenMs: 2000 });
  groq.setFail({ mode: 'http500' });
  const t0 = performance.now();
  t.equal(await ask(), ANSWER);
  t.ok(performance.now() - t0 < 1000, 'no waiting for the deadline');
  t.equal(llm.lastProvider, 'ollama');
  t.equal(fallbacks.length, 1);
  t.match(fallbacks[0], { from: 'groq', to: 'ollama', error: { message: /HTTP 500/ } });
  groq.setFail(null);
  t.equal(await ask(), 'Groq answers here, with several words in it.');
  t.equal(llm.lastProvider, 'groq');
});

t.test('a hanging provider is abandoned at the first-token deadline and its request closed', async (t) => {
  const { groq, llm, fallbacks, ask } = await chain(t, { firstTokenMs: 300 });
  groq.setFail({ mode: 'hang' });
  const t0 = performance.now();
  t.equal(await ask(), ANSWER);
  const took = performance.now() - t0;
  t.ok(took >= 290 && took < 1500, `answered after ${took.toFixed(0)} ms`);
  t.equal(llm.lastProvider, 'ollama');
  t.match(fallbacks[0], { from: 'groq', to: 'ollama', error: { code: 'provider_timeout' } });
  t.equal(await groq.requests[0]!.settled, 'aborted');
});

t.test('a slow first token (not a hang) also misses the deadline', async (t) => {
  const { groq, llm, ask } = await chain(t, { firstTokenMs: 200 });
  groq.setProfile('instant,ttftMs=1000');
  t.equal(await ask(), ANSWER);
  t.equal(llm.lastProvider, 'ollama');
});

t.test('the breaker skips groq after 3 failures and tries it again after the cool-down', async (t) => {
  let now = 1000;
  const { groq, ollama, llm, fallbacks, ask } = await chain(t, { now: () => now, cooldownMs: 30_000 });
  groq.setFail({ mode: 'http500' });
  for (let i = 0; i < 3; i++) t.equal(await ask(), ANSWER);
  t.equal(groq.requests.length, 3);
  t.equal(llm.breaker('groq')?.state, 'open');

  t.equal(await ask(), ANSWER);
  t.equal(groq.requests.length, 3, 'open: groq is not asked');
  t.match(fallbacks.at(-1), { from: 'groq', to: 'ollama', error: { message: /circuit open/ } });

  now += 30_000;
  t.equal(llm.breaker('groq')?.state, 'half-open');
  t.equal(await ask(), ANSWER, 'the trial fails: ollama answers');
  t.equal(groq.requests.length, 4, 'half-open: one trial request');
  t.equal(llm.breaker('groq')?.state, 'open');
  await ask();
  t.equal(groq.requests.length, 4);

  now += 30_000;
  groq.setFail(null);
  t.equal(await ask(), 'Groq answers here, with several words in it.');
  t.equal(llm.breaker('groq')?.state, 'closed', 'a successful trial closes it');
  t.equal(ollama.requests.length, 6);
});

t.test('when every provider fails, one error names each of them and why', async (t) => {
  const { groq, ollama, ask } = await chain(t);
  groq.setFail({ mode: 'http500' });
  ollama.setFail({ mode: 'http429' });
  const err = await ask().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProviderError);
  const e = err as ProviderError;
  t.equal(e.provider, 'groq,ollama');
  t.equal(e.retryable, true);
  t.match(e.message, /groq: HTTP 500/);
  t.match(e.message, /ollama: HTTP 429/);
});

t.test('after the first token there is no switching: a mid-stream failure throws', async (t) => {
  const { groq, ollama, llm } = await chain(t);
  groq.setFail({ mode: 'cut' });
  const got: string[] = [];
  const err = await (async () => {
    for await (const d of llm.stream(MSGS, { signal: new AbortController().signal })) got.push(d);
  })().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(got.length > 0, 'tokens came from groq first');
  t.ok(err instanceof ProviderError, 'then the failure surfaces');
  t.equal(ollama.requests.length, 0, 'ollama was never asked');
  t.equal(llm.lastProvider, 'groq');
  t.equal(llm.breaker('groq')?.consecutiveFailures, 1);
});

t.test("the caller's abort is an abort, not a fallback, and counts no failure", async (t) => {
  const { groq, ollama, llm, fallbacks, ask } = await chain(t);
  groq.setFail({ mode: 'hang' });
  const ac = new AbortController();
  // Aborted once Groq holds the request (a fixed delay raced the request on a loaded machine).
  void (async () => {
    for (let i = 0; i < 500 && groq.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
  })();
  const err = await ask(ac.signal).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(isAbort(err), 'AbortError');
  t.equal(fallbacks.length, 0);
  t.equal(ollama.requests.length, 0);
  t.equal(llm.breaker('groq')?.consecutiveFailures, 0);
  t.equal(await groq.requests[0]!.settled, 'aborted');
});

t.test('chain health is ok while any provider is, and lists each', async (t) => {
  const { groq, llm } = await chain(t);
  t.match(await llm.health(), { ok: true, detail: 'groq: ok; ollama: ok' });
  groq.setFail({ mode: 'http500' });
  t.match(await llm.health(), { ok: true, detail: /groq: .*500.*; ollama: ok/ });
});

t.test('the STT chain tries each provider in order', async (t) => {
  const a = await startGroq({ transcript: 'from groq' });
  const b = await startGroq({ transcript: 'from openai' });
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const moved: string[] = [];
  const stt = new FallbackStt([new GroqStt({ apiKey: 'k', baseURL: a.url }), new OpenAiStt({ apiKey: 'k', baseURL: b.openaiUrl })], {
    onFallback: (from, to) => moved.push(`${from}->${to}`),
    attemptMs: 300,
  });
  const pcm = new Int16Array(4000).fill(1000);
  const signal = new AbortController().signal;
  t.same(await stt.transcribe(pcm, { signal }), { text: 'from groq' });
  a.setFail({ mode: 'http500' });
  t.same(await stt.transcribe(pcm, { signal }), { text: 'from openai' });
  t.equal(stt.lastProvider, 'openai');
  a.setFail({ mode: 'hang' });
  t.same(await stt.transcribe(pcm, { signal }), { text: 'from openai' }, 'a hang is cut at the attempt deadline');
  t.same(moved, ['groq->openai', 'groq->openai']);
  b.setFail({ mode: 'http500' });
  const err = await stt.transcribe(pcm, { signal }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof ProviderError);
  t.match((err as Error).message, /groq: .*; openai: HTTP 500/);
});

t.test('the last provider is still asked when every circuit is open, so a recovered service is found', async (t) => {
  let now = 0;
  const { groq, ollama, llm, ask } = await chain(t, { now: () => now });
  groq.setFail({ mode: 'http500' });
  ollama.setFail({ mode: 'http500' });
  for (let i = 0; i < 3; i++) await t.rejects(ask(), /every LLM provider failed/);
  t.equal(llm.breaker('groq')?.state, 'open');
  t.equal(llm.breaker('ollama')?.state, 'open');
  ollama.setFail(null);
  t.equal(await ask(), ANSWER, 'ollama answers although its circuit was open');
  t.equal(groq.requests.length, 3, 'groq stays skipped');
  t.equal(llm.breaker('ollama')?.state, 'closed');
});

t.test('TTS chain: a failing speech server hands the sentence to the next, which gets no foreign voice name', async (t) => {
  const broken = await startGroq({ fail: { mode: 'http500', match: 'speech' } });
  const working = await startGroq({});
  t.teardown(() => Promise.all([broken.close(), working.close()]));
  const fallbacks: string[] = [];
  const tts = new FallbackTts(
    [new GroqTts({ apiKey: 'k', baseURL: broken.url }), new OpenAiTts({ baseURL: working.openaiUrl, apiKey: 'k' })],
    { onFallback: (from, to) => fallbacks.push(`${from}->${to}`) },
  );
  let samples = 0;
  for await (const c of tts.synthesize('Hello there.', { signal: new AbortController().signal, voice: 'Fritz-PlayAI' })) {
    if (c.type === 'audio') samples += c.samples.length;
  }
  t.ok(samples > 1000, `audio came from the second server (${samples} samples)`);
  t.same(fallbacks, ['groq->openai']);
  t.equal(tts.lastProvider, 'openai');
  const speech = working.requests.find((r) => r.path.endsWith('/audio/speech'))!.body as { voice?: string };
  t.not(speech.voice, 'Fritz-PlayAI', 'the first engine\'s voice is not sent to the second');
});

/** An LLM that yields `tokens` with the given gaps (ms) before each, then ends; it honours the abort. */
function scripted(name: string, steps: { gapMs: number; token: string }[]) {
  let aborted = 0;
  return {
    get aborted() {
      return aborted;
    },
    llm: {
      name,
      async *stream(_m: readonly ChatMessage[], { signal }: { signal: AbortSignal }) {
        for (const s of steps) {
          await new Promise<void>((resolve, reject) => {
            const onAbort = (): void => {
              clearTimeout(timer);
              aborted++;
              reject(signal.reason);
            };
            const timer = setTimeout(() => {
              signal.removeEventListener('abort', onAbort);
              resolve();
            }, s.gapMs);
            signal.addEventListener('abort', onAbort, { once: true });
          });
          yield s.token;
        }
      },
      health: async () => ({ ok: true }),
    },
  };
}

t.test('a stream that stalls after its first token ends with provider_timeout after the idle deadline, and is aborted', async (t) => {
  const p = scripted('slowpoke', [
    { gapMs: 0, token: 'One' },
    { gapMs: 10, token: ' two' },
    { gapMs: 60_000, token: ' never' },
  ]);
  const llm = new FallbackLlm([p.llm], { firstTokenMs: 1000, idleMs: 150 });
  const got: string[] = [];
  const t0 = performance.now();
  const err = await (async () => {
    for await (const d of llm.stream(MSGS, { signal: new AbortController().signal })) got.push(d);
  })().then(() => null, (e: unknown) => e);
  const ms = performance.now() - t0;
  t.same(got, ['One', ' two'], 'what came before the stall was given');
  t.match(err, { name: 'ProviderError', code: 'provider_timeout', status: 504, message: /slowpoke: stream stalled: nothing more for 150 ms/ });
  t.ok(ms < 3000, `ended after ${ms.toFixed(0)} ms`);
  t.equal(p.aborted, 1, "the stalled provider's request was aborted");
  t.equal(llm.breaker('slowpoke')!.consecutiveFailures, 1, 'a stall counts as a failure');
});

t.test("the consumer's own pace does not count towards the idle deadline", async (t) => {
  const p = scripted('steady', [
    { gapMs: 0, token: 'a' },
    { gapMs: 0, token: 'b' },
    { gapMs: 0, token: 'c' },
  ]);
  const llm = new FallbackLlm([p.llm], { idleMs: 100 });
  let out = '';
  for await (const d of llm.stream(MSGS, { signal: new AbortController().signal })) {
    out += d;
    await new Promise((r) => setTimeout(r, 300)); // 3x the idle deadline between pulls
  }
  t.equal(out, 'abc');
});

t.test('a chain where every provider timed out fails with provider_timeout (504), not provider_unavailable', async (t) => {
  const a = scripted('a', [{ gapMs: 60_000, token: 'x' }]);
  const b = scripted('b', [{ gapMs: 60_000, token: 'x' }]);
  const llm = new FallbackLlm([a.llm, b.llm], { firstTokenMs: 50 });
  const err = await (async () => {
    for await (const d of llm.stream(MSGS, { signal: new AbortController().signal })) void d;
  })().then(() => null, (e: unknown) => e);
  t.match(err, { name: 'ProviderError', code: 'provider_timeout', status: 504, message: /every LLM provider failed: a: no first token within 50 ms; b: no first token/ });
});

t.test('a TTS chain of one gives its stream the idle deadline too', async (t) => {
  const tts = {
    name: 'drip',
    async *synthesize(_text: string, { signal }: { signal: AbortSignal }) {
      yield { type: 'audio' as const, samples: new Int16Array(160), sampleRate: 16000 };
      await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    },
    voices: async () => [],
    health: async () => ({ ok: true }),
  };
  const chain = new FallbackTts([tts], { idleMs: 100 });
  let chunks = 0;
  const err = await (async () => {
    for await (const c of chain.synthesize('Hello.', { signal: new AbortController().signal })) void (c && chunks++);
  })().then(() => null, (e: unknown) => e);
  t.equal(chunks, 1);
  t.match(err, { code: 'provider_timeout', message: /drip: stream stalled/ });
});
