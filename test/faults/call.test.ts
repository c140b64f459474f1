// Faults in a real call: a werift client speaks real utterances to EVA over WebRTC; Groq's STT and LLM are the
// stand-in on loopback; eSpeak NG speaks. Mid-call, the LLM stalls after its first token, the VAD worker is
// killed, and the eSpeak worker is killed mid-reply. Each time the turn ends with a clear event (or the call just
// goes on) and the next spoken turn on the same call is answered.
import t from 'tap';
import { ProbeCall } from '../../bench/probe-client.js';
import { start as startGroq } from '../../bench/standins/groq.js';
import type { EspeakTts } from '../../server/providers/tts-espeak.js';
import type { FallbackTts } from '../../server/providers/fallback.js';
import { fixture16k, startEva, until, vadEngine } from '../helpers/eva.js';

const question = fixture16k('question.wav');
const REPLY = 'Paris is the capital of France. It is on the Seine, and it is lovely in the spring.';

/** One spoken question; resolves with the reply_end (or the error) the call saw. */
async function ask(call: ProbeCall) {
  const sent = await call.play(question);
  const end = await call.waitFor((m) => m.type === 'reply_end' || m.type === 'error', 15_000, sent.startAt);
  return { sent, end };
}

t.test('a call survives a stalled LLM stream, a killed VAD worker and a killed eSpeak worker, and answers after each', async (t) => {
  const groq = await startGroq({ profile: 'instant', transcript: 'What is the capital of France?', reply: () => REPLY });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url, EVA_STREAM_IDLE_MS: '600' } });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  await call.waitFor((m) => m.type === 'ready');

  const first = await ask(call);
  t.match(first.end, { type: 'reply_end', text: REPLY }, 'a healthy turn first');

  // 1. The LLM stream stalls after its first tokens: the turn ends with provider_timeout.
  groq.setFail({ mode: 'stall', count: 1, match: 'chat' });
  const stalled = await ask(call);
  t.match(stalled.end, { type: 'error', code: 'provider_timeout' }, 'the stalled turn ends with provider_timeout');
  const stallMs = call.events.find((e) => e.msg === stalled.end)!.at - stalled.sent.endAt;
  t.ok(stallMs < 600 + 5000, `error ${stallMs.toFixed(0)} ms after the question ended (idle deadline 600 ms)`);
  await until(() => call.events.some((e) => e.at > stalled.sent.startAt && e.msg.type === 'state' && e.msg.state === 'listening'), 5000);
  const afterStall = await ask(call);
  t.match(afterStall.end, { type: 'reply_end', text: REPLY }, 'the next turn is answered in full');

  // 2. The VAD worker is killed between turns: the engine replaces it and the call hears the next question.
  const vad = await vadEngine();
  const restarts = vad.restarts;
  await vad.worker!.terminate();
  t.ok(await until(() => vad.restarts > restarts, 5000), 'the VAD worker was replaced');
  const afterVad = await ask(call);
  t.match(afterVad.end, { type: 'reply_end', text: REPLY }, 'the next question is heard and answered');

  // 3. The eSpeak worker is killed while it speaks a reply: the turn fails or is cut, the next one is spoken.
  const espeak = (eva.runtime!.tts as FallbackTts).providers[0] as EspeakTts;
  const sent = await call.play(question);
  await call.waitFor((m) => m.type === 'reply', 15_000, sent.startAt);
  await espeak.worker?.terminate();
  const killedAt = performance.now();
  const cut = await call.waitFor((m) => m.type === 'reply_end' || m.type === 'error', 15_000, sent.startAt);
  t.comment(`the turn spoken by the killed worker ended with ${cut.type === 'error' ? `error ${cut.code}` : 'reply_end'}`);
  await until(() => call.events.some((e) => e.at > sent.startAt && e.msg.type === 'state' && e.msg.state === 'listening'), 10_000);
  // The replacement loads and warms up (~0.6 s from dist; several seconds here, where tap compiles its source).
  for (let i = 0; i < 100 && !(await espeak.health()).ok; i++) await new Promise((r) => setTimeout(r, 100));
  const ttsBackMs = performance.now() - killedAt;
  const afterTts = await ask(call);
  t.match(afterTts.end, { type: 'reply_end', text: REPLY }, 'the turn after the eSpeak crash is answered');
  t.ok(await until(() => !!call.firstAudible(afterTts.sent.lastVoicedAt), 10_000), 'and spoken by the new eSpeak worker');
  t.equal(espeak.restarts >= 1, true, 'eSpeak was replaced');
  const scrape = await (await fetch(`${eva.httpUrl}/metrics`)).text();
  t.match(scrape, /eva_worker_restarts_total\{worker="espeak"\} [1-9]/, '/metrics counts the eSpeak replacement');
  t.equal(eva.server.calls.size, 1, 'one call all along');
  t.comment(`stalled LLM: error ${stallMs.toFixed(0)} ms after the end of the question; eSpeak healthy again ${ttsBackMs.toFixed(0)} ms after the kill`);
});
