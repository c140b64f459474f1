// Integration: streaming speech-to-text over real WebRTC. EVA_STT=realtime streams the caller's audio to a
// stand-in speaking the OpenAI Realtime transcription protocol (ws, 24 kHz PCM16) while they talk and commits it
// at the first silent window; groq-sdk answers through the Groq stand-in. A socket that drops mid-turn falls back
// to segment STT and the call goes on.
import t, { type Test } from 'tap';
import { ProbeCall } from '../bench/probe-client.js';
import { start as startGroq } from '../bench/standins/groq.js';
import { startRealtimeStandin } from '../bench/standins/realtime.js';
import { fixture16k, startEva } from './helpers/eva.js';

const question = fixture16k('question.wav');
const TEXT = 'What is the capital of France?';

async function setup(t: Test, sttChain: string) {
  // One item per turn carries the words; the short pieces a flickering VAD commits carry none.
  const realtime = await startRealtimeStandin({ profile: 'local-stream', transcript: (info) => (info.audioMs > 500 ? TEXT : '') });
  t.teardown(() => realtime.close());
  const groq = await startGroq({ profile: 'instant', transcript: TEXT, reply: (msgs) => `You said: ${msgs.at(-1)?.content}` });
  t.teardown(() => groq.close());
  const eva = await startEva(t, {
    runtime: true,
    env: { EVA_STT: sttChain, EVA_STT_URL: realtime.url, EVA_LLM: 'groq', GROQ_API_KEY: 'k', GROQ_BASE_URL: groq.url },
  });
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  await call.waitFor((m) => m.type === 'state' && m.state === 'listening');
  return { realtime, groq, eva, call };
}

async function ask(call: ProbeCall) {
  const sent = await call.play(question);
  const transcript = await call.waitFor((m) => m.type === 'transcript' && m.final, 10_000, sent.startAt);
  const end = await call.waitFor((m) => m.type === 'reply_end', 10_000, sent.startAt);
  await call.waitFor((m) => m.type === 'state' && m.state === 'listening', 15_000, sent.endAt);
  return { sent, transcript, end };
}

t.test('EVA_STT=realtime streams the turn while it is spoken and answers from the committed transcript', async (t) => {
  const { realtime, groq, eva, call } = await setup(t, 'realtime');
  const ready = await call.waitFor((m) => m.type === 'ready');
  t.match(ready, { providers: { stt: 'realtime' } });
  const r = await ask(call);
  t.match(r.transcript, { text: TEXT });
  t.match(r.end, { text: `You said: ${TEXT}` });
  const session = realtime.sessions.find((s) => s.items.length > 0);
  t.ok(session, 'a Realtime session carried the call');
  t.match(session!.config, { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } });
  const appends = session!.events.filter((e) => e.dir === 'in' && e.type === 'input_audio_buffer.append');
  const commits = session!.events.filter((e) => e.dir === 'in' && e.type === 'input_audio_buffer.commit');
  const lastCommit = commits.at(-1)!;
  t.ok(appends.filter((e) => e.at < lastCommit.at && e.at < r.sent.lastVoicedAt).length > 10, 'audio went up while the person talked');
  t.comment(`${appends.length} appends, ${commits.length} commits (one per pause the VAD saw) for one turn`);
  t.ok(session!.audioMs > 1000, `${session!.audioMs.toFixed(0)} ms of audio streamed`);
  t.equal(groq.requests.filter((q) => q.path.endsWith('/audio/transcriptions')).length, 0, 'no segment transcription was needed');
  t.match(await eva.runtime!.metrics.text(), /eva_stt_requests_total\{speculative="true"\} [1-9]/, 'each commit is counted as an STT request');
});

t.test('the streaming socket drops mid-turn: the turn falls back to segment STT and the call goes on', async (t) => {
  const { realtime, groq, call } = await setup(t, 'realtime,groq');
  realtime.setFail('drop-after-append');
  const first = await ask(call);
  t.match(first.transcript, { text: TEXT }, 'the turn was transcribed anyway');
  t.match(first.end, { text: `You said: ${TEXT}` }, 'and answered');
  t.ok(groq.requests.some((q) => q.path.endsWith('/audio/transcriptions')), 'by the segment STT further down the chain');
  realtime.setFail(null);
  const before = realtime.sessions.reduce((n, s) => n + s.items.length, 0);
  const second = await ask(call);
  t.match(second.end, { text: `You said: ${TEXT}` }, 'the next turn works');
  t.ok(realtime.sessions.reduce((n, s) => n + s.items.length, 0) > before, 'and streams again on a fresh socket');
});
