// Integration: the conversation pipeline over real WebRTC. A werift client speaks a real utterance; EVA's real VAD
// ends the turn; groq-sdk and the ollama client talk to stand-in servers on 127.0.0.1 speaking Groq's and
// Ollama's wire protocols; eSpeak NG speaks the reply; the client decodes the Opus it receives.
import t from 'tap';
import { AUDIBLE_RMS, ProbeCall } from '../bench/probe-client.js';
import { audibleOnsetMs } from '../bench/latency.js';
import { attenuate, recordReceived } from '../bench/run.js';
import { start as startGroq } from '../bench/standins/groq.js';
import { start as startOllama } from '../bench/standins/ollama.js';
import type { ServerMessage } from '../server/signaling.js';
import { fixture16k, sleep, startEva, until } from './helpers/eva.js';

type Metrics = Extract<ServerMessage, { type: 'metrics' }>;
const question = fixture16k('question.wav');
const hello = fixture16k('hello.wav');

const LONG_REPLY =
  'Paris is the capital of France, and it has been for a very long time. It sits on the river Seine, ' +
  'in the north of the country. About two million people live in the city itself, and many more around it. ' +
  'It is known for its museums, its cafes, its bridges and its long history of art and science.';

function chatRequests(standin: { requests: { path: string; body?: unknown }[] }, path: string) {
  return standin.requests.filter((r) => r.path.endsWith(path)).map((r) => r.body as { messages: { role: string; content: string }[] });
}

/** Ask one spoken question and wait until the reply has played out; returns what the client saw. */
async function askAndListen(call: ProbeCall) {
  const sent = await call.play(question);
  const transcript = await call.waitFor((m) => m.type === 'transcript' && m.final, 10_000, sent.startAt);
  const end = await call.waitFor((m) => m.type === 'reply_end', 10_000, sent.startAt);
  const metrics = (await call.waitFor((m) => m.type === 'metrics' && m.first_audio_ms !== undefined, 10_000, sent.startAt)) as Metrics;
  await until(() => !!call.firstAudible(sent.lastVoicedAt), 8000);
  const first = call.firstAudible(sent.lastVoicedAt);
  await call.waitFor((m) => m.type === 'state' && m.state === 'listening', 15_000, first?.at ?? sent.endAt);
  return { sent, transcript, end, metrics, first, perceivedMs: first ? first.at - sent.lastVoicedAt : NaN };
}

function stageLine(m: Metrics): string {
  const f = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(0));
  return `eou ${f(m.eou_ms)}, stt ${f(m.stt_ms)}, llm_ttft ${f(m.llm_ttft_ms)}, first_sentence ${f(m.first_sentence_ms)}, tts_first_audio ${f(m.tts_first_audio_ms)}, first_audio ${f(m.first_audio_ms)} ms`;
}

t.test('groq: a spoken question gets a transcript, a streamed reply and audible speech', async (t) => {
  const groq = await startGroq({ profile: 'groq', transcript: 'What is the capital of France?', reply: () => 'Paris is the capital of France. It is on the Seine.' });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'test-key', GROQ_BASE_URL: groq.url } });
  t.same(eva.runtime!.chosen, { stt: 'groq', llm: 'groq', tts: 'espeak' }, 'auto-detection picks Groq for STT and LLM, eSpeak for TTS');

  const call = await ProbeCall.connect(eva.wsUrl, { config: { session: 'pipeline-groq' } });
  t.teardown(() => call.close());
  const ready = await call.waitFor((m) => m.type === 'ready');
  t.match(ready, { session: 'pipeline-groq', providers: { stt: 'groq', llm: 'groq', tts: 'espeak' } });

  const r = await askAndListen(call);
  t.match(r.transcript, { text: 'What is the capital of France?' }, 'the transcript event carries the STT text');
  t.match(r.end, { text: 'Paris is the capital of France. It is on the Seine.' }, 'reply_end carries the whole reply');
  const deltas = call.events.filter((e) => e.msg.type === 'reply' && e.at >= r.sent.startAt);
  t.ok(deltas.length > 3, `the reply streamed in ${deltas.length} deltas`);
  t.ok(r.first, 'the reply was heard');
  t.ok(call.audibleMs(r.sent.lastVoicedAt) > 1000, `heard ${call.audibleMs(r.sent.lastVoicedAt)} ms of reply`);
  for (const k of ['eou_ms', 'stt_ms', 'llm_ttft_ms', 'first_sentence_ms', 'tts_first_audio_ms', 'first_audio_ms'] as const) {
    t.type(r.metrics[k], 'number', `metrics carry ${k}`);
  }
  t.ok(r.metrics.stt_ms! >= 140, `stt_ms (${r.metrics.stt_ms}) includes the stand-in's 150 ms`);
  t.ok(r.metrics.llm_ttft_ms! >= 140, `llm_ttft_ms (${r.metrics.llm_ttft_ms}) includes the stand-in's 150 ms`);
  t.comment(`groq profile, stages: ${stageLine(r.metrics)}; perceived in the client ${r.perceivedMs.toFixed(0)} ms`);

  // The STT request is a real Whisper upload: 16 kHz WAV with the model named.
  const stt = groq.requests.find((q) => q.path.endsWith('/audio/transcriptions'));
  t.match(stt?.form, { model: 'whisper-large-v3-turbo', file: { type: /wav/ } }, 'STT got a WAV upload for whisper-large-v3-turbo');
  const chat = chatRequests(groq, '/chat/completions').at(-1)!;
  t.match(chat.messages[0], { role: 'system' }, 'the system prompt leads the messages');
  t.match(chat.messages.at(-1), { role: 'user', content: 'What is the capital of France?' });

  // Persisted: the call's session holds the turn, the call has a transcript and per-turn metrics.
  const store = eva.runtime!.store;
  // The turn is stored when it ends, a little after its audio: poll the (asynchronous) reads.
  for (let i = 0; i < 150 && (await store.history('pipeline-groq', 10)).length < 2; i++) await sleep(20);
  t.same((await store.history('pipeline-groq', 10)).map((m) => m.role), ['user', 'assistant'], 'the session stored the turn');
  const callId = ready.type === 'ready' ? ready.call : '';
  t.same((await store.transcript(callId!)).map((e) => e.role), ['user', 'assistant'], 'the call transcript stored');
  t.equal((await store.turnMetrics(callId!)).length, 1, 'per-turn metrics stored');
  const scrape = await (await fetch(`${eva.httpUrl}/metrics`)).text();
  t.match(scrape, /eva_turns_total\{source="voice"\} 1/, '/metrics counts the voice turn');
  t.match(scrape, /eva_calls_open 1/, '/metrics counts the open call');
  call.hangup();
  await until(() => eva.server.calls.size === 0, 3000);
  t.match(await store.getCall(callId!), { endReason: 'hangup' }, 'the call record has its end');
});

t.test('ollama: the same spoken turn through the ollama client', async (t) => {
  const groq = await startGroq({ profile: 'instant', transcript: 'What is the capital of France?' });
  const ollama = await startOllama({ profile: 'ollama-gpu', reply: () => 'Paris, on the Seine.' });
  t.teardown(() => Promise.all([groq.close(), ollama.close()]));
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'ollama', OLLAMA_HOST: ollama.url } });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  t.match(await call.waitFor((m) => m.type === 'ready'), { providers: { llm: 'ollama' } });
  const r = await askAndListen(call);
  t.match(r.end, { text: 'Paris, on the Seine.' });
  t.ok(r.first, 'the reply was heard');
  const chat = chatRequests(ollama, '/api/chat').at(-1) as unknown as { model: string; stream: boolean; keep_alive: unknown };
  t.match(chat, { model: /llama3\.2/, keep_alive: '30m' }, 'ollama got a streaming chat request that keeps the model loaded');
  t.ok(r.metrics.llm_ttft_ms! >= 55, `llm_ttft_ms (${r.metrics.llm_ttft_ms}) includes the stand-in's 60 ms`);
  t.comment(`ollama-gpu profile, stages: ${stageLine(r.metrics)}; perceived ${r.perceivedMs.toFixed(0)} ms`);
});

t.test('fallback: a failing Groq hands the turn to Ollama within the deadline', async (t) => {
  const groq = await startGroq({ profile: 'instant', transcript: 'What is the capital of France?', fail: { mode: 'http500', match: 'chat' } });
  const ollama = await startOllama({ profile: 'instant', reply: () => 'Ollama answers: Paris.' });
  t.teardown(() => Promise.all([groq.close(), ollama.close()]));
  const eva = await startEva(t, {
    runtime: true,
    env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_LLM: 'groq,ollama', OLLAMA_HOST: ollama.url, EVA_LLM_DEADLINE_MS: '400' },
  });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  const r = await askAndListen(call);
  t.match(r.end, { text: 'Ollama answers: Paris.' }, 'the reply came from Ollama');
  t.ok(chatRequests(groq, '/chat/completions').length >= 1, 'Groq was asked first');
  t.ok(r.metrics.llm_ttft_ms! < 400 + 200, `first token after the fallback in ${r.metrics.llm_ttft_ms} ms`);
  t.comment(`fallback on HTTP 500: llm_ttft ${r.metrics.llm_ttft_ms} ms (groq-sdk retries disabled)`);

  // A Groq that hangs: the first-token deadline moves the turn on.
  groq.setFail({ mode: 'hang', match: 'chat' });
  const r2 = await askAndListen(call);
  t.match(r2.end, { text: 'Ollama answers: Paris.' });
  t.ok(r2.metrics.llm_ttft_ms! >= 380 && r2.metrics.llm_ttft_ms! < 1500, `a hanging Groq costs the 400 ms deadline (llm_ttft ${r2.metrics.llm_ttft_ms} ms)`);
  const scrape = await (await fetch(`${eva.httpUrl}/metrics`)).text();
  t.match(scrape, /eva_fallbacks_total\{from="groq",to="ollama"\} [1-9]/, '/metrics counts the fallbacks');

  // Both down: the turn fails with a reason the page can show, and the call goes on.
  ollama.setFail({ mode: 'http500' });
  groq.setFail({ mode: 'http500', match: 'chat' });
  const sent = await call.play(question);
  const err = await call.waitFor((m) => m.type === 'error', 10_000, sent.startAt);
  t.match(err, { code: 'provider_unavailable', message: /groq.*ollama|every LLM provider failed/ }, 'a failed turn says why');
  t.equal(eva.server.calls.size, 1, 'the call survives a failed turn');
});

t.test('barge-in mid-reply: interrupted with what was heard, and the next request carries the cut reply', async (t) => {
  let n = 0;
  const groq = await startGroq({
    profile: 'instant',
    transcript: () => (++n === 1 ? 'Tell me about Paris.' : 'Thanks, that is enough.'),
    reply: () => LONG_REPLY,
  });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url } });
  const call = await ProbeCall.connect(eva.wsUrl, { config: { session: 'barge' } });
  t.teardown(() => call.close());

  const sent = await call.play(question);
  await until(() => !!call.firstAudible(sent.lastVoicedAt), 10_000);
  const replyStart = call.firstAudible(sent.lastVoicedAt)!.at;
  await sleep(2500);
  const over = call.play(hello);
  const interrupted = await call.waitFor((m) => m.type === 'interrupted', 5000, replyStart);
  const bargeAt = call.events.find((e) => e.msg === interrupted)!.at;
  const heard = interrupted.type === 'interrupted' ? interrupted.heard : '';
  t.ok(heard.length > 10, `heard is the part played: ${JSON.stringify(heard)}`);
  t.ok(heard.length < LONG_REPLY.length - 40, 'heard is well short of the whole reply');
  t.ok(LONG_REPLY.startsWith(heard.replace(/[.,]?$/, '')), 'heard is a prefix of the reply, cut at a word');
  const overlap = await over;
  await sleep(Math.max(0, bargeAt + 500 - performance.now()));
  // EVA pauses her reply as soon as the VAD hears voice over it (a hold), and ends it at bargeInMs (interrupted).
  // So: audible right up to the person's speech onset, then nothing audible from shortly after it until past the
  // stop. `onset` is when the clip's first voiced frame left the client; the bound covers the VAD's confirmation
  // (~2 windows), the hold and the jitter buffer, generous for a loaded 2-core machine.
  const PAUSE_BOUND_MS = 450; // measured ~170 ms on an idle machine
  const onset = overlap.startAt + (audibleOnsetMs(hello) ?? 0);
  const audible = (from: number, to: number) => call.heard.filter((f) => f.at >= from && f.at < to && f.rms >= AUDIBLE_RMS);
  const beforeOnset = audible(onset - 1000, onset);
  t.ok(beforeOnset.length * 20 >= 300, `EVA was audible in the second before the onset (${beforeOnset.length * 20} ms)`);
  t.ok(bargeAt - onset > PAUSE_BOUND_MS, `the interruption came ${(bargeAt - onset).toFixed(0)} ms after the onset, leaving a pause to check`);
  const duringHold = audible(onset + PAUSE_BOUND_MS, bargeAt + 500);
  t.same(
    duringHold.map((f) => Math.round(f.at - onset)),
    [],
    `no audible reply frame from ${PAUSE_BOUND_MS} ms after the onset until 500 ms after the interruption`,
  );
  const lastAudible = audible(onset, bargeAt + 500).at(-1);
  const pauseMs = lastAudible ? lastAudible.at + 20 - onset : 0;
  const stopMs = Math.max(0, ...audible(bargeAt, bargeAt + 500).map((f) => f.at - bargeAt));
  t.comment(
    `barge-in: speech onset → reply paused ${pauseMs.toFixed(0)} ms (last audible frame), → interrupted ${(bargeAt - onset).toFixed(0)} ms; audible after the interrupted event ${stopMs.toFixed(0)} ms; heard ${heard.split(/\s+/).length} words`,
  );

  // The overlapping utterance is itself the next turn: its LLM request shows the truncated assistant message.
  await call.waitFor((m) => m.type === 'reply_end', 10_000, bargeAt);
  const next = chatRequests(groq, '/chat/completions').at(-1)!;
  const assistant = next.messages.filter((m) => m.role === 'assistant');
  t.equal(assistant.at(-1)?.content, heard, 'the next LLM request carries the reply as heard');
  t.match(next.messages.at(-1), { role: 'user', content: 'Thanks, that is enough.' });
  const stored = await eva.runtime!.store.history('barge', 10);
  t.equal(stored.find((m) => m.role === 'assistant')?.content, heard, 'the stored session keeps the cut reply');
  const scrape = await (await fetch(`${eva.httpUrl}/metrics`)).text();
  t.match(scrape, /eva_barge_ins_total [1-9]/, '/metrics counts the barge-in');
});

// End-of-turn prediction (early answers, paused sentences, retracted cut-offs): test/turn-taking.test.ts.

t.test("EVA's own voice leaking back into the mic (20 dB down) does not stop her; the person does", async (t) => {
  const groq = await startGroq({ profile: 'instant', transcript: 'Tell me about Paris.', reply: () => LONG_REPLY });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url } });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  const sent = await call.play(question);
  await until(() => !!call.firstAudible(sent.lastVoicedAt), 10_000);
  const replyStart = call.firstAudible(sent.lastVoicedAt)!.at;
  await sleep(1500);
  // What the client heard of EVA so far, played back into the mic 20 dB quieter: a speakerphone's echo residue.
  const heardSoFar = recordReceived(call.heard, call.pcm, replyStart, performance.now());
  t.ok(heardSoFar && heardSoFar.length > 16000, 'recorded a second of EVA');
  const echo = await call.play(attenuate(heardSoFar!, 20));
  await sleep(600);
  t.notOk(call.events.some((e) => e.at >= replyStart && e.msg.type === 'interrupted'), 'no barge-in on her own echo');
  t.ok(call.audibleMs(echo.endAt) > 200, 'EVA kept talking through it');
  const over = call.play(hello);
  const interrupted = await call.waitFor((m) => m.type === 'interrupted', 5000, echo.endAt);
  t.equal(interrupted.type, 'interrupted', 'the person talking over her at their own level still interrupts');
  await over;
});
