// One contract per stage, run against every adapter of that stage through the stand-in servers: each must yield
// its output, end promptly with an AbortError when the turn is aborted (and close its request), report a dead
// server as a retryable ProviderError, and tell health true from false.
import net from 'node:net';
import t, { type Test } from 'tap';
import { start as startGroq, type GroqStandin } from '../../bench/standins/groq.js';
import { start as startOllama } from '../../bench/standins/ollama.js';
import { speechDurationMs } from '../../bench/standins/audio.js';
import type { StandinHandle } from '../../bench/standins/server.js';
import { ProviderError, isAbort } from '../errors.js';
import { EchoLlm } from './llm-echo.js';
import { GroqLlm } from './llm-groq.js';
import { OllamaLlm } from './llm-ollama.js';
import { GroqStt } from './stt-groq.js';
import { OpenAiStt } from './stt-openai.js';
import { GroqTts } from './tts-groq.js';
import { OpenAiTts } from './tts-openai.js';
import type { ChatMessage, LlmProvider, SttProvider, TtsChunk, TtsProvider } from './types.js';

/** A port nothing listens on: bound, then released. */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function groqStandin(t: Test): Promise<GroqStandin> {
  const s = await startGroq({ transcript: 'the quick brown fox' });
  t.teardown(() => s.close());
  return s;
}

/** Resolves with what the promise rejected with, or fails the test. */
async function rejection(t: Test, p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  t.fail('expected a rejection');
  return undefined;
}

function isRetryableProviderError(t: Test, err: unknown, code?: string): void {
  t.ok(err instanceof ProviderError, `a ProviderError (${(err as Error)?.message})`);
  t.equal((err as ProviderError).retryable, true, 'retryable');
  if (code) t.equal((err as ProviderError).code, code);
}

const MSGS: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Tell me about otters' },
];
const EXPECTED = 'You said: Tell me about otters. That is interesting, tell me more.';

interface LlmSubject {
  provider: LlmProvider;
  /** The expected full reply to MSGS. */
  expected: string;
  /** The server behind the adapter, when there is one. */
  standin?: StandinHandle;
}

interface LlmFactory {
  live(t: Test): Promise<LlmSubject>;
  /** The adapter pointed at a port where nothing listens; absent for adapters with no server. */
  dead?(port: number): LlmProvider;
}

function llmContract(name: string, f: LlmFactory): void {
  t.test(`LLM contract: ${name}`, async (t) => {
    t.test('streams the reply as several text deltas', async (t) => {
      const { provider, expected, standin } = await f.live(t);
      const deltas: string[] = [];
      for await (const d of provider.stream(MSGS, { signal: noAbort() })) deltas.push(d);
      t.equal(deltas.join(''), expected);
      t.ok(deltas.length > 3, `${deltas.length} deltas`);
      t.ok(deltas.every((d) => typeof d === 'string' && d.length > 0), 'no empty deltas');
      if (standin) t.same((standin.requests.at(-1)!.body as { messages: unknown }).messages, MSGS, 'the messages reach the server as given');
    });

    t.test('an abort mid-stream ends the stream promptly with an AbortError and closes the request', async (t) => {
      const { provider, standin } = await f.live(t);
      standin?.setProfile('instant,tokensPerSec=20');
      const ac = new AbortController();
      const it = provider.stream(MSGS, { signal: ac.signal })[Symbol.asyncIterator]();
      const first = await it.next();
      t.equal(first.done, false);
      const t0 = performance.now();
      ac.abort();
      const err = await rejection(t, (async () => {
        for (;;) if ((await it.next()).done) throw new Error('ended without an abort');
      })());
      t.ok(isAbort(err), `an AbortError (${(err as Error)?.name}: ${(err as Error)?.message})`);
      t.ok(performance.now() - t0 < 500, 'promptly');
      if (standin) t.equal(await standin.requests.at(-1)!.settled, 'aborted', 'the server saw the request closed');
    });

    t.test('an abort before the first token rejects with an AbortError', async (t) => {
      const { provider, standin } = await f.live(t);
      standin?.setFail({ mode: 'hang' });
      const ac = new AbortController();
      // With a server: aborted once it holds the request (a fixed delay raced the request on a loaded machine).
      const before = standin?.requests.length ?? 0;
      void (async () => {
        for (let i = 0; standin && i < 500 && standin.requests.length === before; i++) await new Promise((r) => setTimeout(r, 10));
        ac.abort();
      })();
      const err = await rejection(t, (async () => {
        for await (const _ of provider.stream(MSGS, { signal: ac.signal })) if (!standin) await new Promise((r) => setTimeout(r, 10));
      })());
      t.ok(isAbort(err), `an AbortError (${(err as Error)?.message})`);
      t.notOk(err instanceof ProviderError, 'not wrapped as a provider error');
      if (standin) t.equal(await standin.requests.at(-1)!.settled, 'aborted');
    });

    t.test('leaving the loop early closes the request', async (t) => {
      const { provider, standin } = await f.live(t);
      standin?.setProfile('instant,tokensPerSec=20');
      for await (const _ of provider.stream(MSGS, { signal: noAbort() })) break;
      if (standin) t.equal(await standin.requests.at(-1)!.settled, 'aborted');
    });

    if (f.dead) {
      const dead = f.dead;
      t.test('a dead server is a retryable ProviderError', async (t) => {
        const p = dead(await deadPort());
        const err = await rejection(t, (async () => {
          for await (const _ of p.stream(MSGS, { signal: noAbort() })) t.fail('no tokens expected');
        })());
        isRetryableProviderError(t, err, 'provider_unavailable');
      });

      t.test('HTTP 5xx is retryable, 4xx is not, and a cut stream is an error', async (t) => {
        const { provider, standin } = await f.live(t);
        const ask = async () => {
          let out = '';
          for await (const d of provider.stream(MSGS, { signal: noAbort() })) out += d;
          return out;
        };
        standin!.setFail({ mode: 'http500', count: 1 });
        isRetryableProviderError(t, await rejection(t, ask()));
        standin!.setFail({ mode: 'http400', count: 1 });
        const e400 = await rejection(t, ask());
        t.ok(e400 instanceof ProviderError && !e400.retryable, '400 is not retryable');
        standin!.setFail({ mode: 'cut', count: 1 });
        isRetryableProviderError(t, await rejection(t, ask()));
      });

      t.test('health is true when the server answers and false when it is dead', async (t) => {
        const { provider } = await f.live(t);
        t.match(await provider.health(), { ok: true });
        const h = await dead(await deadPort()).health();
        t.equal(h.ok, false);
        t.type(h.detail, 'string');
      });
    } else {
      t.test('health is true', async (t) => {
        t.match(await (await f.live(t)).provider.health(), { ok: true });
      });
    }
  });
}

/** A signal that never fires (a fresh controller per call keeps tests independent). */
function noAbort(): AbortSignal {
  return new AbortController().signal;
}

llmContract('groq', {
  async live(t) {
    const s = await groqStandin(t);
    return { provider: new GroqLlm({ apiKey: 'test', baseURL: s.url }), expected: EXPECTED, standin: s };
  },
  dead: (port) => new GroqLlm({ apiKey: 'test', baseURL: `http://127.0.0.1:${port}`, healthTimeoutMs: 1000 }),
});

llmContract('ollama', {
  async live(t) {
    const s = await startOllama({});
    t.teardown(() => s.close());
    return { provider: new OllamaLlm({ host: s.url }), expected: EXPECTED, standin: s };
  },
  dead: (port) => new OllamaLlm({ host: `http://127.0.0.1:${port}`, healthTimeoutMs: 1000 }),
});

llmContract('echo', {
  async live() {
    return { provider: new EchoLlm(), expected: 'You said: Tell me about otters' };
  },
});

interface SttFactory {
  live(t: Test): Promise<{ provider: SttProvider; standin: GroqStandin }>;
  dead(port: number): SttProvider;
}

/** 0.5 s of a 220 Hz tone at 16 kHz. */
const SPEECH = Int16Array.from({ length: 8000 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 220 * i) / 16000)));

function sttContract(name: string, f: SttFactory): void {
  t.test(`STT contract: ${name}`, async (t) => {
    t.test('transcribes a segment sent as a 16 kHz WAV', async (t) => {
      const { provider, standin } = await f.live(t);
      const r = await provider.transcribe(SPEECH, { signal: noAbort(), language: 'en' });
      t.equal(r.text, 'the quick brown fox');
      const form = standin.requests.at(-1)!.form!;
      t.match(form.file, { type: /audio\/wav/, size: 44 + SPEECH.byteLength });
      t.equal(form.language, 'en');
      t.type(form.model, 'string');
    });

    t.test('an empty segment gives empty text without a request', async (t) => {
      const { provider, standin } = await f.live(t);
      t.same(await provider.transcribe(new Int16Array(0), { signal: noAbort() }), { text: '' });
      t.equal(standin.requests.length, 0);
    });

    t.test('an abort rejects promptly with an AbortError and closes the request', async (t) => {
      const { provider, standin } = await f.live(t);
      standin.setProfile('instant,sttMs=3000');
      const ac = new AbortController();
      const before = standin.requests.length;
      const pending = rejection(t, provider.transcribe(SPEECH, { signal: ac.signal }));
      // Aborted once the server holds the request (a fixed delay raced the request on a loaded machine).
      for (let i = 0; i < 500 && standin.requests.length === before; i++) await new Promise((r) => setTimeout(r, 10));
      t.ok(standin.requests.length > before, 'the request reached the server');
      const t0 = performance.now();
      ac.abort();
      const err = await pending;
      t.ok(isAbort(err), `an AbortError (${(err as Error)?.message})`);
      t.ok(performance.now() - t0 < 1000, 'promptly');
      t.equal(await standin.requests.at(-1)!.settled, 'aborted');
    });

    t.test('a dead server is a retryable ProviderError', async (t) => {
      const err = await rejection(t, f.dead(await deadPort()).transcribe(SPEECH, { signal: noAbort() }));
      isRetryableProviderError(t, err, 'provider_unavailable');
    });

    t.test('HTTP 5xx is retryable and 4xx is not', async (t) => {
      const { provider, standin } = await f.live(t);
      standin.setFail({ mode: 'http500', count: 1 });
      isRetryableProviderError(t, await rejection(t, provider.transcribe(SPEECH, { signal: noAbort() })));
      standin.setFail({ mode: 'http400', count: 1 });
      const e = await rejection(t, provider.transcribe(SPEECH, { signal: noAbort() }));
      t.ok(e instanceof ProviderError && !e.retryable, '400 is not retryable');
    });

    t.test('health is true when the server answers and false when it is dead', async (t) => {
      const { provider } = await f.live(t);
      t.match(await provider.health(), { ok: true });
      t.match(await f.dead(await deadPort()).health(), { ok: false });
    });
  });
}

sttContract('groq', {
  async live(t) {
    const s = await groqStandin(t);
    return { provider: new GroqStt({ apiKey: 'test', baseURL: s.url }), standin: s };
  },
  dead: (port) => new GroqStt({ apiKey: 'test', baseURL: `http://127.0.0.1:${port}`, healthTimeoutMs: 1000 }),
});

sttContract('openai', {
  async live(t) {
    const s = await groqStandin(t);
    return { provider: new OpenAiStt({ apiKey: 'test', baseURL: s.openaiUrl, model: 'whisper-large-v3-turbo' }), standin: s };
  },
  dead: (port) => new OpenAiStt({ baseURL: `http://127.0.0.1:${port}/v1`, healthTimeoutMs: 1000 }),
});

interface TtsFactory {
  live(t: Test): Promise<{ provider: TtsProvider; standin: GroqStandin }>;
  dead(port: number): TtsProvider;
}

const SENTENCE = 'Otters hold hands while they sleep, so that they do not drift apart.';

function ttsContract(name: string, f: TtsFactory): void {
  t.test(`TTS contract: ${name}`, async (t) => {
    t.test('yields the whole sentence as audio chunks', async (t) => {
      const { provider, standin } = await f.live(t);
      const chunks: TtsChunk[] = [];
      for await (const c of provider.synthesize(SENTENCE, { signal: noAbort() })) chunks.push(c);
      const audio = chunks.filter((c): c is Extract<TtsChunk, { type: 'audio' }> => c.type === 'audio');
      t.ok(audio.length > 0);
      t.equal(audio[0]!.sampleRate, 24000);
      const ms = (audio.reduce((n, c) => n + c.samples.length, 0) / 24000) * 1000;
      t.ok(Math.abs(ms - speechDurationMs(SENTENCE)) < 1, `${ms.toFixed(0)} ms of audio`);
      t.match(standin.requests.at(-1)!.body, { input: SENTENCE });
    });

    t.test('audio arrives in pieces before the reply is complete', async (t) => {
      const { provider, standin } = await f.live(t);
      standin.setProfile('instant,ttsSpeed=10');
      let chunks = 0;
      let firstAt = 0;
      const t0 = performance.now();
      for await (const c of provider.synthesize(SENTENCE, { signal: noAbort() })) {
        if (c.type === 'audio' && chunks++ === 0) firstAt = performance.now() - t0;
      }
      const total = performance.now() - t0;
      t.ok(chunks > 3, `${chunks} chunks`);
      t.ok(firstAt < total / 2, `first audio at ${firstAt.toFixed(0)} ms of ${total.toFixed(0)} ms`);
    });

    t.test('an abort mid-stream ends it promptly with an AbortError and closes the request', async (t) => {
      const { provider, standin } = await f.live(t);
      standin.setProfile('instant,ttsSpeed=2');
      const ac = new AbortController();
      const it = provider.synthesize(SENTENCE, { signal: ac.signal })[Symbol.asyncIterator]();
      t.equal((await it.next()).done, false);
      const t0 = performance.now();
      ac.abort();
      const err = await rejection(t, (async () => {
        for (;;) if ((await it.next()).done) throw new Error('ended without an abort');
      })());
      t.ok(isAbort(err), `an AbortError (${(err as Error)?.message})`);
      t.ok(performance.now() - t0 < 500, 'promptly');
      t.equal(await standin.requests.at(-1)!.settled, 'aborted');
    });

    t.test('a dead server is a retryable ProviderError; a cut reply is an error', async (t) => {
      const drain = async (p: TtsProvider) => {
        for await (const _ of p.synthesize(SENTENCE, { signal: noAbort() })) {
          // consume
        }
      };
      isRetryableProviderError(t, await rejection(t, drain(f.dead(await deadPort()))), 'provider_unavailable');
      const { provider, standin } = await f.live(t);
      standin.setFail({ mode: 'cut', count: 1 });
      isRetryableProviderError(t, await rejection(t, drain(provider)));
      standin.setFail({ mode: 'http400', count: 1 });
      const e = await rejection(t, drain(provider));
      t.ok(e instanceof ProviderError && !e.retryable, '400 is not retryable');
    });

    t.test('offers voices; health is true when the server answers and false when it is dead', async (t) => {
      const { provider } = await f.live(t);
      const voices = await provider.voices();
      t.ok(voices.length > 0 && voices.every((v) => v.id && v.name));
      t.match(await provider.health(), { ok: true });
      t.match(await f.dead(await deadPort()).health(), { ok: false });
    });
  });
}

ttsContract('groq', {
  async live(t) {
    const s = await groqStandin(t);
    return { provider: new GroqTts({ apiKey: 'test', baseURL: s.url }), standin: s };
  },
  dead: (port) => new GroqTts({ apiKey: 'test', baseURL: `http://127.0.0.1:${port}`, healthTimeoutMs: 1000 }),
});

ttsContract('openai', {
  async live(t) {
    const s = await groqStandin(t);
    return { provider: new OpenAiTts({ apiKey: 'test', baseURL: s.openaiUrl, voice: 'alloy' }), standin: s };
  },
  dead: (port) => new OpenAiTts({ baseURL: `http://127.0.0.1:${port}/v1`, healthTimeoutMs: 1000 }),
});

t.test('openai TTS also reads raw PCM replies', async (t) => {
  const s = await groqStandin(t);
  const p = new OpenAiTts({ apiKey: 'test', baseURL: s.openaiUrl, format: 'pcm' });
  let n = 0;
  for await (const c of p.synthesize('Hello there.', { signal: noAbort() })) if (c.type === 'audio') n += c.samples.length;
  t.equal(n, Math.round((speechDurationMs('Hello there.') * 24000) / 1000));
  t.match(s.requests[0]!.body, { response_format: 'pcm' });
});

t.test('Groq adapters without an API key fail at construction with a clear error', async (t) => {
  const saved = process.env.GROQ_API_KEY;
  delete process.env.GROQ_API_KEY;
  t.teardown(() => {
    if (saved !== undefined) process.env.GROQ_API_KEY = saved;
  });
  t.throws(() => new GroqLlm(), /GROQ_API_KEY/);
  t.throws(() => new GroqStt(), /GROQ_API_KEY/);
  t.throws(() => new GroqTts(), /GROQ_API_KEY/);
});

t.test('the ollama adapter asks the server to keep the model loaded', async (t) => {
  const s = await startOllama({ models: ['llama3.2', 'qwen2.5:3b'] });
  t.teardown(() => s.close());
  const p = new OllamaLlm({ host: s.url, model: 'qwen2.5:3b', keepAlive: '1h' });
  for await (const _ of p.stream(MSGS, { signal: noAbort() })) {
    // drain
  }
  t.match(s.requests[0]!.body, { model: 'qwen2.5:3b', keep_alive: '1h', stream: true });
  t.ok(s.loaded.has('qwen2.5:3b'));
  await p.warm();
  t.match(s.requests[1]!.body, { prompt: '', keep_alive: '1h' });
  t.match(await new OllamaLlm({ host: s.url, model: 'mistral' }).health(), { ok: false, detail: /not pulled/ });
});

t.test('OpenAI-compatible base URLs are accepted with or without /v1 or the endpoint', async (t) => {
  t.equal(new OpenAiStt({ baseURL: 'http://h:8000' }).baseURL, 'http://h:8000/v1');
  t.equal(new OpenAiStt({ baseURL: 'http://h:8000/v1/' }).baseURL, 'http://h:8000/v1');
  t.equal(new OpenAiStt({ baseURL: 'http://h:8000/v1/audio/transcriptions' }).baseURL, 'http://h:8000/v1');
  t.equal(new OpenAiTts({ baseURL: 'http://h/openai/v1/audio/speech' }).baseURL, 'http://h/openai/v1');
  t.throws(() => new OpenAiTts({ baseURL: 'nope' }), /not a URL/);
});
