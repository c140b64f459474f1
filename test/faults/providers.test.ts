// Provider faults for STT, LLM and TTS, through the real SDK adapters (groq-sdk, the ollama client, fetch) against
// the stand-in servers on loopback, each inside the chain EVA runs them in (server/providers/fallback.ts). Every
// fault must end the request with a clear ProviderError within its deadline, and the next request must work.
// Deadlines are shortened (first item 800 ms, idle 400 ms, STT attempt 800 ms) so the suite runs in seconds; the
// bounds asserted are the deadline plus 2.5 s of slack for a loaded 2-core machine, and the figures are reported.
import t, { type Test } from 'tap';
import { start as startGroq, type GroqStandin } from '../../bench/standins/groq.js';
import { start as startOllama, type OllamaStandin } from '../../bench/standins/ollama.js';
import type { FailMode, StandinHandle } from '../../bench/standins/server.js';
import { ProviderError } from '../../server/errors.js';
import { FallbackLlm, FallbackStt, FallbackTts } from '../../server/providers/fallback.js';
import { GroqLlm } from '../../server/providers/llm-groq.js';
import { OllamaLlm } from '../../server/providers/llm-ollama.js';
import { GroqStt } from '../../server/providers/stt-groq.js';
import { GroqTts } from '../../server/providers/tts-groq.js';
import { OpenAiTts } from '../../server/providers/tts-openai.js';
import type { ChatMessage, LlmProvider, TtsProvider } from '../../server/providers/types.js';

const FIRST_MS = 800;
const IDLE_MS = 400;
const STT_MS = 800;
const SLACK_MS = 2500;

const MSGS: ChatMessage[] = [{ role: 'user', content: 'Tell me about otters' }];
const REPLY = 'You said: Tell me about otters. That is interesting, tell me more.';
const signal = () => new AbortController().signal;
const figures: string[] = [];

interface Outcome {
  err: unknown;
  /** Items yielded before the end (tokens, audio chunks). */
  items: number;
  ms: number;
  /** ms from the last item to the failure (the idle deadline at work). */
  sinceLastMs: number;
}

async function drain<T>(it: AsyncIterable<T>): Promise<Outcome & { out: T[] }> {
  const t0 = performance.now();
  let last = t0;
  const out: T[] = [];
  try {
    for await (const x of it) {
      out.push(x);
      last = performance.now();
    }
    return { err: null, items: out.length, ms: performance.now() - t0, sinceLastMs: 0, out };
  } catch (err) {
    const now = performance.now();
    return { err, items: out.length, ms: now - t0, sinceLastMs: now - last, out };
  }
}

function provErr(t: Test, r: Outcome, code: string | RegExp, message?: RegExp): void {
  t.ok(r.err instanceof ProviderError, `a ProviderError: ${(r.err as Error)?.message}`);
  const e = r.err as ProviderError;
  if (typeof code === 'string') t.equal(e.code, code, `code ${code}`);
  else t.match(e.code, code);
  if (message) t.match(e.message, message);
}

async function groqStandin(t: Test): Promise<GroqStandin> {
  const s = await startGroq({ transcript: 'the quick brown fox' });
  t.teardown(() => s.close());
  return s;
}

interface Case {
  mode: FailMode | 'drip';
  /** The error code, and for a timeout which deadline ends it. */
  code: string | RegExp;
  message?: RegExp;
  deadline: 'first' | 'idle' | 'none';
}

const LLM_CASES: Case[] = [
  { mode: 'http500', code: 'provider_unavailable', message: /HTTP 500/, deadline: 'none' },
  { mode: 'http429', code: 'provider_unavailable', message: /HTTP 429/, deadline: 'none' },
  { mode: 'hang', code: 'provider_timeout', message: /no first token within/, deadline: 'first' },
  { mode: 'stall', code: 'provider_timeout', message: /stream stalled/, deadline: 'idle' },
  { mode: 'cut', code: /provider_(error|unavailable)/, deadline: 'none' },
  { mode: 'malformed', code: 'provider_error', deadline: 'none' },
  { mode: 'drip', code: 'provider_timeout', message: /stream stalled/, deadline: 'idle' },
];

function boundOf(c: Case, first: number): number {
  return (c.deadline === 'first' ? first : c.deadline === 'idle' ? IDLE_MS : 0) + SLACK_MS;
}

/** Inject the fault (a drip is a profile: one token a second, slower than the idle deadline). */
function inject(s: StandinHandle, c: Case, match: string): () => void {
  const before = s.profile;
  if (c.mode === 'drip') s.setProfile({ ...before, tokensPerSec: 1, ttsSpeed: 0.02 });
  else s.setFail({ mode: c.mode, count: 1, match });
  return () => {
    s.setFail(null);
    s.setProfile(before);
  };
}

const LLMS: { name: string; make(t: Test): Promise<{ llm: LlmProvider; standin: StandinHandle; match: string }> }[] = [
  {
    name: 'groq',
    async make(t) {
      const s = await groqStandin(t);
      return { llm: new GroqLlm({ apiKey: 'test', baseURL: s.url }), standin: s, match: 'chat' };
    },
  },
  {
    name: 'ollama',
    async make(t) {
      const s: OllamaStandin = await startOllama();
      t.teardown(() => s.close());
      return { llm: new OllamaLlm({ host: s.url }), standin: s, match: 'chat' };
    },
  },
];

for (const subject of LLMS) {
  t.test(`LLM ${subject.name}: each fault ends the stream with a clear error in time, and the next request works`, async (t) => {
    const { llm, standin, match } = await subject.make(t);
    for (const c of LLM_CASES) {
      await t.test(c.mode, async (t) => {
        const chain = new FallbackLlm([llm], { firstTokenMs: FIRST_MS, idleMs: IDLE_MS });
        const restore = inject(standin, c, match);
        const r = await drain(chain.stream(MSGS, { signal: signal() }));
        restore();
        provErr(t, r, c.code, c.message);
        const bound = boundOf(c, FIRST_MS);
        t.ok(r.ms < bound, `ended after ${r.ms.toFixed(0)} ms (bound ${bound} ms)`);
        if (c.deadline === 'idle') {
          t.ok(r.items > 0, `${r.items} tokens came before the stall`);
          t.ok(r.sinceLastMs >= IDLE_MS * 0.9, `ended ${r.sinceLastMs.toFixed(0)} ms after the last token (idle ${IDLE_MS} ms)`);
        }
        if (c.mode === 'hang' || c.mode === 'stall') t.equal((r.err as ProviderError).status, 504, 'a timeout maps to 504');
        figures.push(`llm ${subject.name} ${c.mode}: ${(r.err as ProviderError).code} after ${r.ms.toFixed(0)} ms`);
        const next = await drain(chain.stream(MSGS, { signal: signal() }));
        t.equal(next.err, null, 'the next request succeeds');
        t.equal(next.out.join(''), REPLY, 'with the whole reply');
      });
    }
  });
}

t.test('LLM chain groq,ollama: a fault before the first token falls back; a stall after it ends the turn', async (t) => {
  const groq = await groqStandin(t);
  const ollama = await startOllama();
  t.teardown(() => ollama.close());
  const fallbacks: string[] = [];
  const chain = new FallbackLlm([new GroqLlm({ apiKey: 'test', baseURL: groq.url }), new OllamaLlm({ host: ollama.url })], {
    firstTokenMs: FIRST_MS,
    idleMs: IDLE_MS,
    onFallback: (from, to, e) => fallbacks.push(`${from}->${to}: ${(e as ProviderError).code}`),
  });
  for (const mode of ['hang', 'http500', 'malformed'] as const) {
    groq.setFail({ mode, count: 1, match: 'chat' });
    let provider = '';
    const r = await drain(chain.stream(MSGS, { signal: signal(), onProvider: (p) => (provider = p) }));
    if (mode === 'malformed') {
      // The broken event comes after the first token: the answer is committed to groq and ends with its error.
      provErr(t, r, 'provider_error');
      t.equal(provider, 'groq');
    } else {
      t.equal(r.err, null, `${mode}: answered`);
      t.equal(provider, 'ollama', `${mode}: by the next provider`);
      t.equal(r.out.join(''), REPLY);
    }
  }
  t.match(fallbacks, [/groq->ollama: provider_timeout/, /groq->ollama: provider_error/], "the hang and the HTTP 500 each moved the request on");
  groq.setFail({ mode: 'stall', count: 1, match: 'chat' });
  const r = await drain(chain.stream(MSGS, { signal: signal() }));
  provErr(t, r, 'provider_timeout', /groq: stream stalled/);
  t.ok(r.items > 0, 'the tokens before the stall were given (no switch mid-answer)');
  groq.setFail(null);
  t.equal((await drain(chain.stream(MSGS, { signal: signal() }))).out.join(''), REPLY, 'the next turn works');
});

t.test('STT groq: each fault rejects with a clear error within the attempt deadline, and the next request works', async (t) => {
  const s = await groqStandin(t);
  const stt = new FallbackStt([new GroqStt({ apiKey: 'test', baseURL: s.url })], { attemptMs: STT_MS });
  const pcm = new Int16Array(16000).map((_, i) => Math.round(Math.sin(i / 10) * 3000));
  const cases: Case[] = [
    { mode: 'http500', code: 'provider_unavailable', message: /HTTP 500/, deadline: 'none' },
    { mode: 'http429', code: 'provider_unavailable', message: /HTTP 429/, deadline: 'none' },
    { mode: 'hang', code: 'provider_timeout', message: /no transcript within/, deadline: 'first' },
    { mode: 'stall', code: 'provider_timeout', message: /no transcript within/, deadline: 'first' },
    { mode: 'cut', code: /provider_(error|unavailable)/, deadline: 'none' },
    { mode: 'malformed', code: /provider_(error|unavailable)/, deadline: 'none' },
  ];
  for (const c of cases) {
    await t.test(c.mode, async (t) => {
      s.setFail({ mode: c.mode as FailMode, count: 1, match: 'transcriptions' });
      const t0 = performance.now();
      const err = await stt.transcribe(pcm, { signal: signal() }).then(() => null, (e: unknown) => e);
      const ms = performance.now() - t0;
      s.setFail(null);
      provErr(t, { err, items: 0, ms, sinceLastMs: 0 }, c.code, c.message);
      const bound = boundOf(c, STT_MS);
      t.ok(ms < bound, `rejected after ${ms.toFixed(0)} ms (bound ${bound} ms)`);
      figures.push(`stt groq ${c.mode}: ${(err as ProviderError).code} after ${ms.toFixed(0)} ms`);
      t.same(await stt.transcribe(pcm, { signal: signal() }), { text: 'the quick brown fox' }, 'the next request is transcribed');
    });
  }
});

const TTS_CASES: Case[] = [
  { mode: 'http500', code: 'provider_unavailable', message: /HTTP 500/, deadline: 'none' },
  { mode: 'http429', code: 'provider_unavailable', message: /HTTP 429/, deadline: 'none' },
  { mode: 'hang', code: 'provider_timeout', message: /no audio within/, deadline: 'first' },
  { mode: 'stall', code: 'provider_timeout', message: /stream stalled/, deadline: 'idle' },
  { mode: 'cut', code: /provider_(error|unavailable)/, deadline: 'none' },
  { mode: 'malformed', code: /provider_(error|unavailable)/, message: /bad audio/, deadline: 'none' },
  { mode: 'drip', code: 'provider_timeout', message: /stream stalled/, deadline: 'idle' },
];

const TTSS: { name: string; make(s: GroqStandin): TtsProvider }[] = [
  { name: 'groq', make: (s) => new GroqTts({ apiKey: 'test', baseURL: s.url }) },
  { name: 'openai', make: (s) => new OpenAiTts({ apiKey: 'test', baseURL: s.openaiUrl, voice: 'alloy' }) },
];

for (const subject of TTSS) {
  t.test(`TTS ${subject.name} (a chain of one, as runtime.ts builds it): each fault ends the audio with a clear error in time`, async (t) => {
    const s = await groqStandin(t);
    // ~3 s of speech: 30 chunks of 100 ms, so a stall or a cut comes mid-sentence.
    const text = 'The quick brown fox jumps over the lazy dog, and then it runs far away across the field.';
    const tts = subject.make(s);
    for (const c of TTS_CASES) {
      await t.test(c.mode, async (t) => {
        const chain = new FallbackTts([tts], { firstAudioMs: FIRST_MS, idleMs: IDLE_MS });
        const restore = inject(s, c, 'speech');
        const r = await drain(chain.synthesize(text, { signal: signal() }));
        restore();
        provErr(t, r, c.code, c.message);
        const bound = boundOf(c, FIRST_MS);
        t.ok(r.ms < bound, `ended after ${r.ms.toFixed(0)} ms (bound ${bound} ms)`);
        if (c.deadline === 'idle') t.ok(r.items > 0 && r.sinceLastMs >= IDLE_MS * 0.9, `${r.items} chunks, then ${r.sinceLastMs.toFixed(0)} ms of nothing`);
        figures.push(`tts ${subject.name} ${c.mode}: ${(r.err as ProviderError).code} after ${r.ms.toFixed(0)} ms`);
        const next = await drain(chain.synthesize(text, { signal: signal() }));
        t.equal(next.err, null, 'the next request succeeds');
        t.ok(next.items > 10, `with all its audio (${next.items} chunks)`);
      });
    }
  });
}

t.test('figures', async (t) => {
  for (const f of figures) t.comment(f);
  t.pass(`${figures.length} faults measured`);
});
