import t, { type Test } from 'tap';
import Groq, { toFile } from 'groq-sdk';
import { Ollama } from 'ollama';
import { decodeWav, encodeWav } from '../../media/wav.js';
import { parseArgs } from './cli.js';
import { start as startGroq } from './groq.js';
import { start as startOllama, keepAliveMs } from './ollama.js';
import { PROFILES, parseProfile } from './profile.js';

const MODEL = 'llama-3.1-8b-instant';

/** The HTTP status an SDK error carries (groq-sdk: status, ollama: status_code), or 'resolved'. */
async function statusOf(p: Promise<unknown>): Promise<number | string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    const e = err as { status?: number; status_code?: number };
    return e.status ?? e.status_code ?? String(err);
  }
}
const user = (content: string) => [{ role: 'user' as const, content }];

async function groqStandin(t: Test, opts: Parameters<typeof startGroq>[0] = {}) {
  const s = await startGroq(opts);
  t.teardown(() => s.close());
  const client = new Groq({ apiKey: 'test-key', baseURL: s.url, maxRetries: 0, timeout: 5000 });
  return { s, client };
}

async function ollamaStandin(t: Test, opts: Parameters<typeof startOllama>[0] = {}) {
  const s = await startOllama(opts);
  t.teardown(() => s.close());
  return { s, client: new Ollama({ host: s.url }) };
}

t.test('parseProfile reads a named profile with overrides and names what it does not know', async (t) => {
  t.same(parseProfile('groq'), PROFILES.groq);
  t.same(parseProfile('groq,ttftMs=200'), { ...PROFILES.groq, ttftMs: 200 });
  t.same(parseProfile('ttftMs=5,tokensPerSec=inf'), { ...PROFILES.instant, ttftMs: 5, tokensPerSec: Infinity });
  t.equal(parseProfile('instant').tokensPerSec, Infinity);
  t.throws(() => parseProfile('grok'), /unknown latency profile "grok"; known: instant, groq, ollama-gpu/);
  t.throws(() => parseProfile('groq,ttft=3'), /unknown latency profile key "ttft"; known: sttMs/);
  t.throws(() => parseProfile('groq,ttftMs=abc'), /ttftMs must be a number/);
  t.throws(() => parseProfile('groq,ttftMs=-1'), /from 0 to/);
  t.throws(() => parseProfile('groq,tokensPerSec=0'), /must be > 0/);
  t.throws(() => parseProfile('ttftMs=1,groq'), /must come first/);
});

t.test('the CLI parses ports, off and profiles, and refuses unknown flags', async (t) => {
  t.same(parseArgs(['--groq-port', '0', '--ollama-port', 'off', '--profile', 'groq']), {
    host: '127.0.0.1', groqPort: 0, ollamaPort: null, profile: 'groq', ollamaProfile: '',
  });
  t.throws(() => parseArgs(['--groq-port', '70000']), /must be a port/);
  t.throws(() => parseArgs(['--profile', 'nope']), /unknown latency profile/);
  t.throws(() => parseArgs(['--what', '1']), /unknown flag/);
});

t.test('groq-sdk streams the deterministic reply in order and the stand-in records the messages', async (t) => {
  const { s, client } = await groqStandin(t);
  const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'system', content: 'be brief' }, ...user('hello there.')], stream: true });
  const deltas: string[] = [];
  let finish: string | null = null;
  for await (const c of stream) {
    if (c.choices[0]?.delta?.content) deltas.push(c.choices[0].delta.content);
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  t.equal(deltas.join(''), 'You said: hello there. That is interesting, tell me more.');
  t.ok(deltas.length > 5, 'one delta per word');
  t.equal(finish, 'stop');
  t.equal(s.requests.length, 1);
  const rec = s.requests[0]!;
  t.equal(rec.path, '/openai/v1/chat/completions');
  t.same((rec.body as { messages: unknown }).messages, [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there.' }]);
  t.equal(await rec.settled, 'finished');
});

t.test('the SSE wire format ends with data: [DONE]; stream:false gives one chat.completion', async (t) => {
  const { s, client } = await groqStandin(t, { reply: () => 'One two three.' });
  const res = await fetch(`${s.openaiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
    body: JSON.stringify({ model: MODEL, messages: user('hi'), stream: true }),
  });
  t.match(res.headers.get('content-type'), /text\/event-stream/);
  const text = await res.text();
  const events = text.split('\n\n').filter(Boolean);
  t.ok(events.every((e) => e.startsWith('data: ')));
  t.equal(events.at(-1), 'data: [DONE]');
  t.match(JSON.parse(events[1]!.slice(6)), { object: 'chat.completion.chunk', choices: [{ delta: { content: 'One' } }] });
  const done = await client.chat.completions.create({ model: MODEL, messages: user('hi'), stream: false });
  t.equal(done.object, 'chat.completion');
  t.equal(done.choices[0]?.message.content, 'One two three.');
  t.equal(done.usage?.completion_tokens, 3);
});

t.test('a request without an API key gets 401 like the real API; unknown routes 404', async (t) => {
  const { s } = await groqStandin(t);
  const res = await fetch(`${s.openaiUrl}/models`);
  t.equal(res.status, 401);
  t.match(await res.json(), { error: { code: 'invalid_api_key' } });
  const nf = await fetch(`${s.openaiUrl}/nope`, { headers: { authorization: 'Bearer k' } });
  t.equal(nf.status, 404);
});

t.test('models are listed, and with an explicit list an unknown model is a 404', async (t) => {
  const { client } = await groqStandin(t, { models: ['m1'] });
  const list = await client.models.list();
  t.same(list.data.map((m) => m.id), ['m1']);
  t.equal(await statusOf(client.chat.completions.create({ model: 'm2', messages: user('x') })), 404);
});

t.test('groq-sdk sees each injected failure as an error', async (t) => {
  const { s, client } = await groqStandin(t, { reply: () => 'a b c d e f g h' });
  const ask = async (): Promise<string> => {
    const st = await client.chat.completions.create({ model: MODEL, messages: user('x'), stream: true });
    let out = '';
    for await (const c of st) out += c.choices[0]?.delta?.content ?? '';
    return out;
  };
  s.setFail({ mode: 'http500' });
  t.equal(await statusOf(ask()), 500, 'http500');
  s.setFail({ mode: 'http429' });
  t.equal(await statusOf(ask()), 429, 'http429');
  s.setFail({ mode: 'cut' });
  await t.rejects(ask(), /terminated|closed|socket/i, 'cut mid-stream');
  t.equal(s.requests.at(-1)!.outcome, 'aborted');
  s.setFail({ mode: 'hang' });
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  const st = client.chat.completions.create({ model: MODEL, messages: user('x'), stream: true }, { signal: ac.signal });
  await t.rejects(st, /aborted/i, 'hang: only an abort ends it');
  t.equal(await s.requests.at(-1)!.settled, 'aborted', 'the stand-in saw the request closed');
  s.setFail({ mode: 'http500', count: 1 });
  await t.rejects(ask());
  t.equal(await ask(), 'a b c d e f g h', 'recovers after count failures');
  t.same(s.requests.map((r) => r.failed ?? null), ['http500', 'http429', 'cut', 'hang', 'http500', null]);
});

t.test('failure injection can target one path only', async (t) => {
  const { s, client } = await groqStandin(t);
  s.setFail({ mode: 'http500', match: 'chat' });
  t.ok((await client.models.list()).data.length > 0);
  t.equal(await statusOf(client.chat.completions.create({ model: MODEL, messages: user('x') })), 500, 'chat fails');
});

t.test('transcriptions take a multipart WAV and answer with the configured text', async (t) => {
  const seen: number[] = [];
  const { s, client } = await groqStandin(t, {
    transcript: (info) => {
      seen.push(info.durationMs);
      return `heard ${Math.round(info.durationMs)} ms`;
    },
  });
  const wav = encodeWav(new Int16Array(8000), 16000);
  const res = await client.audio.transcriptions.create({ file: await toFile(wav, 'a.wav'), model: 'whisper-large-v3-turbo', response_format: 'json', language: 'en' });
  t.equal(res.text, 'heard 500 ms');
  t.same(seen, [500]);
  const form = s.requests[0]!.form!;
  t.equal(form.model, 'whisper-large-v3-turbo');
  t.equal(form.language, 'en');
  t.match(form.file, { filename: 'a.wav', size: wav.length });
  const noFile = new FormData();
  noFile.set('model', 'whisper-large-v3-turbo');
  const bad = await fetch(`${s.openaiUrl}/audio/transcriptions`, { method: 'POST', body: noFile, headers: { authorization: 'Bearer k' } });
  t.equal(bad.status, 400);
});

t.test('speech is a RIFF WAV whose length grows with the text', async (t) => {
  const { client } = await groqStandin(t);
  const say = async (input: string) => {
    const r = await client.audio.speech.create({ model: 'playai-tts', voice: 'Fritz-PlayAI', input, response_format: 'wav' });
    return decodeWav(new Uint8Array(await r.arrayBuffer()));
  };
  const short = await say('Hi there.');
  const long = await say('This is a much longer sentence, and it should take longer to say.');
  t.equal(short.sampleRate, 24000);
  t.ok(long.samples.length > short.samples.length * 3);
  const rms = Math.sqrt(long.samples.reduce((a, v) => a + v * v, 0) / long.samples.length);
  t.ok(rms > 500, `audible (rms ${rms.toFixed(0)})`);
  t.equal(await statusOf(client.audio.speech.create({ model: 'playai-tts', voice: 'Fritz-PlayAI', input: '' })), 400, 'empty input is a 400');
});

t.test('the profile delays are respected (lower bounds)', async (t) => {
  const { s, client } = await groqStandin(t, { profile: 'groq,tokensPerSec=100', reply: () => 'one two three four five six seven eight nine ten' });
  let t0 = performance.now();
  const st = await client.chat.completions.create({ model: MODEL, messages: user('x'), stream: true });
  let first = 0;
  for await (const c of st) if (!first && c.choices[0]?.delta?.content) first = performance.now() - t0;
  const total = performance.now() - t0;
  t.ok(first >= 149, `first token after ${first.toFixed(0)} ms >= 150`);
  t.ok(total >= 150 + 9 * 10 - 1, `10 tokens at 100/s end after ${total.toFixed(0)} ms >= 240`);

  t0 = performance.now();
  await client.audio.transcriptions.create({ file: await toFile(encodeWav(new Int16Array(1600), 16000), 'a.wav'), model: 'whisper-large-v3-turbo' });
  const stt = performance.now() - t0;
  t.ok(stt >= 149, `transcript after ${stt.toFixed(0)} ms >= 150`);

  s.setProfile('instant,ttsFirstMs=120');
  t0 = performance.now();
  const r = await client.audio.speech.create({ model: 'playai-tts', voice: 'Fritz-PlayAI', input: 'hello' });
  const tts = performance.now() - t0;
  await r.arrayBuffer();
  t.ok(tts >= 119, `first audio after ${tts.toFixed(0)} ms >= 120`);
});

t.test('the ollama client streams NDJSON to a done:true object and keep_alive is recorded', async (t) => {
  const { s, client } = await ollamaStandin(t);
  const it = await client.chat({ model: 'llama3.2', messages: user('good morning'), stream: true, keep_alive: '30m' });
  const parts = [];
  for await (const p of it) parts.push(p);
  const last = parts.at(-1)!;
  t.equal(parts.map((p) => p.message.content).join(''), 'You said: good morning. That is interesting, tell me more.');
  t.ok(parts.slice(0, -1).every((p) => !p.done));
  t.match(last, { done: true, done_reason: 'stop', eval_count: parts.length - 1 });
  t.ok(last.total_duration > 0);
  t.equal((s.requests[0]!.body as { keep_alive: string }).keep_alive, '30m');
  const ps = await client.ps();
  t.same(ps.models.map((m) => m.name), ['llama3.2:latest']);
  t.ok(new Date(ps.models[0]!.expires_at).getTime() > Date.now() + 29 * 60_000);
  const whole = await client.chat({ model: 'llama3.2', messages: user('x'), stream: false });
  t.match(whole, { done: true, message: { role: 'assistant', content: 'You said: x. That is interesting, tell me more.' } });
});

t.test('ollama tags, version, generate and unknown models behave like the real server', async (t) => {
  const { s, client } = await ollamaStandin(t, { models: ['llama3.2', 'qwen2.5:3b'] });
  t.same((await client.list()).models.map((m) => m.name), ['llama3.2:latest', 'qwen2.5:3b']);
  t.match(await client.version(), { version: /^\d+\.\d+\.\d+$/ });
  t.match(await client.generate({ model: 'qwen2.5:3b', prompt: '', keep_alive: -1 }), { done: true, done_reason: 'load' });
  t.equal(s.loaded.get('qwen2.5:3b'), Infinity);
  await client.generate({ model: 'qwen2.5:3b', prompt: '', keep_alive: 0 });
  t.notOk(s.loaded.has('qwen2.5:3b'), 'keep_alive 0 unloads');
  const g = await client.generate({ model: 'llama3.2', prompt: 'say hi', stream: false });
  t.equal(g.response, 'You said: say hi. That is interesting, tell me more.');
  await t.rejects(client.chat({ model: 'mistral', messages: user('x') }), { status_code: 404, message: /not found, try pulling it first/ });
  t.equal(keepAliveMs('5m'), 300_000);
  t.equal(keepAliveMs(10), 10_000);
  t.equal(keepAliveMs('-1'), -1);
});

t.test('the ollama client sees each injected failure as an error', async (t) => {
  const { s, client } = await ollamaStandin(t, { reply: () => 'a b c d e f' });
  const ask = async (c = client): Promise<string> => {
    let out = '';
    for await (const p of await c.chat({ model: 'llama3.2', messages: user('x'), stream: true })) out += p.message.content;
    return out;
  };
  s.setFail({ mode: 'http500', count: 1 });
  t.equal(await statusOf(ask()), 500, 'http500');
  s.setFail({ mode: 'http429', count: 1 });
  t.equal(await statusOf(ask()), 429, 'http429');
  s.setFail({ mode: 'cut', count: 1 });
  await t.rejects(ask(), /terminated|closed|socket|done/i);
  s.setFail({ mode: 'hang', count: 1 });
  const ac = new AbortController();
  const bound = new Ollama({ host: s.url, fetch: (u, init) => fetch(u, { ...init, signal: ac.signal }) });
  setTimeout(() => ac.abort(), 100);
  await t.rejects(ask(bound), { name: 'AbortError' });
  t.equal(await s.requests.at(-1)!.settled, 'aborted');
  t.equal(await ask(), 'a b c d e f', 'recovered');
});

t.test('the ollama profile delays the first line (lower bound)', async (t) => {
  const { client } = await ollamaStandin(t, { profile: 'ollama-gpu' });
  const t0 = performance.now();
  const it = await client.chat({ model: 'llama3.2', messages: user('one two'), stream: true });
  let first = 0;
  let n = 0;
  for await (const p of it) {
    if (!first) first = performance.now() - t0;
    n++;
  }
  const total = performance.now() - t0;
  t.ok(first >= 59, `first line after ${first.toFixed(0)} ms >= 60`);
  t.ok(total >= 60 + (n - 2) * 10 - 1, `${n - 1} tokens at 100/s took ${total.toFixed(0)} ms`);
});

t.test('close() is idempotent and ends hanging requests at once', async (t) => {
  const s = await startGroq({ fail: { mode: 'hang' } });
  const pending = fetch(`${s.openaiUrl}/models`, { headers: { authorization: 'Bearer k' } });
  while (s.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
  const t0 = performance.now();
  await Promise.all([s.close(), s.close()]);
  await s.close();
  await t.rejects(pending);
  t.ok(performance.now() - t0 < 1000, 'closed promptly');
  t.equal(await s.requests[0]!.settled, 'aborted');
});

t.test('request bodies over the cap are refused with 413', async (t) => {
  const { s } = await groqStandin(t, { maxBodyBytes: 1000 });
  const res = await fetch(`${s.openaiUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
    body: JSON.stringify({ model: MODEL, messages: user('x'.repeat(5000)) }),
  });
  t.equal(res.status, 413);
});

t.test('stall sends the first half of the tokens and then nothing, on an open connection, until the client leaves', async (t) => {
  const { s, client } = await groqStandin(t, { reply: () => 'a b c d e f g h' });
  s.setFail({ mode: 'stall', count: 1 });
  const ac = new AbortController();
  const got: string[] = [];
  const st = await client.chat.completions.create({ model: MODEL, messages: user('x'), stream: true }, { signal: ac.signal });
  const reading = (async () => {
    for await (const c of st) {
      const d = c.choices[0]?.delta?.content;
      if (d) got.push(d);
    }
  })();
  for (let i = 0; i < 100 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 200));
  t.same(got.join(''), 'a b c d', 'half the reply, then silence');
  t.equal(s.requests.at(-1)!.outcome, 'pending', 'the connection stays open');
  ac.abort();
  await reading.catch(() => undefined);
  t.equal(await s.requests.at(-1)!.settled, 'aborted', 'until the client leaves');
});

t.test('malformed breaks the stream: groq-sdk throws on the broken SSE event, the ollama client on a stream without done', async (t) => {
  const { s, client } = await groqStandin(t, { reply: () => 'a b c d' });
  s.setFail({ mode: 'malformed', count: 1 });
  const ask = async (): Promise<string> => {
    let out = '';
    for await (const c of await client.chat.completions.create({ model: MODEL, messages: user('x'), stream: true })) out += c.choices[0]?.delta?.content ?? '';
    return out;
  };
  await t.rejects(ask(), /JSON/);
  t.equal(await ask(), 'a b c d', 'the next request is whole');

  const o = await ollamaStandin(t, { reply: () => 'a b c d' });
  o.s.setFail({ mode: 'malformed', count: 1 });
  const parts: string[] = [];
  await t.rejects(
    (async () => {
      for await (const p of await o.client.chat({ model: 'llama3.2', messages: user('x'), stream: true })) parts.push(p.message.content);
    })(),
    /did not receive done/i,
  );
  t.same(parts, ['a'], 'one token came before the broken line');
});
