// Integration: end-of-turn prediction over real WebRTC. A werift client speaks eSpeak NG clips; EVA's real VAD,
// prosody analysis and predictor decide when each turn is over; groq-sdk talks to the Groq stand-in, whose STT
// answers a paused clip's first part the way Whisper often does — as a finished sentence with a full stop.
import t, { type Test } from 'tap';
import { ProbeCall } from '../bench/probe-client.js';
import { start as startGroq } from '../bench/standins/groq.js';
import type { ServerMessage } from '../server/signaling.js';
import { fixture16k, sleep, startEva } from './helpers/eva.js';

type Metrics = Extract<ServerMessage, { type: 'metrics' }>;
const question = fixture16k('question.wav');
const pizza = fixture16k('../../bench/utterances/pizza.wav'); // "I would like to order a large pizza," 350 ms "with extra cheese and mushrooms."
const yes = fixture16k('../../bench/utterances/yes.wav');
const taxi = fixture16k('../../bench/utterances/taxi.wav');

function concat(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
const silence = (ms: number) => new Int16Array((ms * 16000) / 1000);

function chatRequests(standin: { requests: { path: string; body?: unknown }[] }) {
  return standin.requests.filter((r) => r.path.endsWith('/chat/completions')).map((r) => r.body as { messages: { role: string; content: string }[] });
}

async function evaWith(t: Test, transcript: (info: { durationMs: number }) => string) {
  const groq = await startGroq({ profile: 'instant', transcript, reply: (msgs) => `You said: ${msgs.at(-1)?.content}` });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url } });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  await call.waitFor((m) => m.type === 'state' && m.state === 'listening');
  return { groq, eva, call };
}

t.test('a finished question is answered before the 480 ms window, early, and counted by class', async (t) => {
  const { eva, call } = await evaWith(t, () => 'What is the capital of France?');
  const sent = await call.play(question);
  const metrics = (await call.waitFor((m) => m.type === 'metrics' && m.first_audio_ms !== undefined, 10_000, sent.startAt)) as Metrics;
  t.ok(metrics.eou_ms! < 480, `the turn ended after ${metrics.eou_ms} ms of silence (${metrics.eou_class})`);
  t.equal(metrics.eou_early, true, 'answered before the end-of-turn window closed');
  t.ok(metrics.eou_class === 'finished' || metrics.eou_class === 'likely', `class ${metrics.eou_class}`);
  const end = await call.waitFor((m) => m.type === 'reply_end', 10_000, sent.startAt);
  t.match(end, { text: 'You said: What is the capital of France?' });
  const text = await eva.runtime!.metrics.text();
  t.match(text, /eva_stt_requests_total\{speculative="true"\} [1-9]/, 'the speculative STT request is counted');
  t.match(text, /eva_end_of_turn_total\{class="(finished|likely)",early="true"\} 1/, 'the end of turn is counted by class');
  t.comment(`finished question: eou ${metrics.eou_ms} ms (${metrics.eou_class}), first audio ${metrics.first_audio_ms} ms`);
});

t.test('a paused sentence said with a level pitch is not cut off, even when the partial transcript ends in a full stop', async (t) => {
  const pizzaMs = pizza.length / 16;
  const full = 'I would like to order a large pizza, with extra cheese and mushrooms.';
  const { groq, call } = await evaWith(t, (info) => (info.durationMs < pizzaMs - 500 ? 'I would like to order a large pizza.' : full));
  const sent = await call.play(pizza);
  const end = await call.waitFor((m) => m.type === 'reply_end', 10_000, sent.startAt);
  t.match(end, { text: `You said: ${full}` }, 'the whole sentence is answered');
  await sleep(300);
  t.notOk(
    call.events.some((e) => e.at >= sent.startAt && e.msg.type === 'interrupted'),
    'EVA did not start answering inside the pause',
  );
  const audible = call.firstAudible(sent.startAt);
  t.ok(audible && audible.at >= sent.lastVoicedAt, 'nothing of a reply was heard before the speech ended');
  const chats = chatRequests(groq);
  t.ok(chats.some((c) => c.messages.at(-1)?.content === 'I would like to order a large pizza.'), 'the pause was transcribed speculatively (its answer held)');
  t.equal(call.events.filter((e) => e.at >= sent.startAt && e.msg.type === 'reply_end').length, 1, 'one answer');
});

t.test('a cut-off that does happen is retracted when the person goes on, and leaves nothing in the history', async (t) => {
  // "Yes." said as a finished answer, then 350 ms later (inside the 480 ms window) "I need a taxi to the airport.": EVA answers the "Yes."
  // (text and pitch both say finished) and must take it back when the person goes on.
  const clip = concat(yes, silence(350), taxi);
  const clipMs = clip.length / 16;
  const full = 'Yes. I need a taxi to the airport.';
  const { eva, groq, call } = await evaWith(t, (info) => (info.durationMs < clipMs - 1000 ? 'Yes.' : full));
  const sent = await call.play(clip);
  const interrupted = await call.waitFor((m) => m.type === 'interrupted', 8000, sent.startAt);
  t.match(interrupted, { heard: '' }, 'the early answer is taken back: nothing of it counts as heard');
  const end = await call.waitFor((m) => m.type === 'reply_end' && m.text === `You said: ${full}`, 10_000, sent.startAt);
  t.ok(end, 'the whole turn is answered at its real end');
  await call.waitFor((m) => m.type === 'state' && m.state === 'listening', 15_000, call.events.find((e) => e.msg === end)!.at);
  const last = chatRequests(groq).at(-1)!.messages;
  t.match(last.at(-1), { role: 'user', content: full }, 'the final request carries the whole turn');
  t.notOk(last.some((m) => m.content === 'Yes.' || m.content === 'You said: Yes.'), 'nothing of the retracted answer is in the history');
  const ready = call.events.find((e) => e.msg.type === 'ready')!.msg as Extract<ServerMessage, { type: 'ready' }>;
  const stored = (await eva.runtime!.store.history(ready.session, 10)).map((m) => m.content);
  t.same(stored.slice(-2), [full, `You said: ${full}`], 'the stored session has the whole turn only');
  t.comment(`retracted ${(call.events.find((e) => e.msg === interrupted)!.at - sent.startAt).toFixed(0)} ms into the clip`);
});
