// Integration: the OpenAI Realtime API over WebRTC (`POST /v1/realtime/calls`, events on the `oai-events` data
// channel, audio as Opus on the track) and its client secrets (`POST /v1/realtime/client_secrets`). The caller is a
// real werift peer (test/helpers/realtime-rtc.ts) sending a real Opus-encoded question; EVA runs in-process with
// its runtime: the real Silero VAD and turn detector, groq-sdk against the Groq stand-in (STT + LLM, the real wire
// protocol on 127.0.0.1), eSpeak NG speaking the reply. Chromium with OpenAI's own SDK: realtime-browser.test.ts.
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { start as startGroq, type GroqStandin } from '../bench/standins/groq.js';
import { fixture16k, sleep, startEva, until, type TestEva } from './helpers/eva.js';
import { RealtimeRtcClient } from './helpers/realtime-rtc.js';

const QUESTION = 'What is the capital of France?';
const LONG_REPLY =
  'Paris is the capital of France, and it has been for a very long time. It sits on the river Seine, ' +
  'in the north of the country. About two million people live in the city itself, and many more around it.';
const KEY = 'test-eva-key';

async function stack(t: Test, reply: string, env: Record<string, string> = {}): Promise<{ groq: GroqStandin; eva: TestEva; calls: string }> {
  const groq = await startGroq({ profile: 'instant', transcript: QUESTION, reply: () => reply });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'test-key', GROQ_BASE_URL: groq.url, ...env } });
  return { groq, eva, calls: `${eva.httpUrl}/v1/realtime/calls` };
}

async function client(t: Test): Promise<RealtimeRtcClient> {
  const c = new RealtimeRtcClient();
  t.teardown(() => c.close());
  return c;
}

function chatSystem(groq: GroqStandin): string | undefined {
  const chats = groq.requests.filter((r) => r.path.endsWith('/chat/completions'));
  return (chats.at(-1)?.body as { messages: { role: string; content: string }[] } | undefined)?.messages[0]?.content;
}

t.test('a WebRTC call: 201 with a complete answer and Location, events on oai-events, a spoken question answered on the track', async (t) => {
  const { groq, eva, calls } = await stack(t, 'Paris is the capital of France. It is on the Seine.');
  const c = await client(t);
  const reply = await c.connect(calls);
  t.equal(reply.status, 201);
  t.match(reply.contentType, /^application\/sdp/);
  t.match(reply.location, /^\/v1\/realtime\/calls\/rtc_[A-Za-z0-9_-]+$/, 'Location carries the call id');
  t.match(reply.body, /a=candidate:/, 'the answer is complete: its candidates are in it (no trickle)');
  t.match(reply.body, /m=application .*webrtc-datachannel/, 'the data channel was accepted');
  const created = await c.waitFor((e) => e.type === 'session.created');
  t.equal(c.events[0]!.ev.type, 'session.created', 'session.created is the first event on the channel');
  t.match(created, { session: { type: 'realtime', object: 'realtime.session' } });
  t.equal(eva.server.calls.size, 1, 'the call counts against EVA_MAX_CALLS');

  c.send({ type: 'session.update', event_id: 'cfg1', session: { type: 'realtime', instructions: 'You are a terse geography tutor.' } });
  await c.waitFor((e) => e.type === 'session.updated');

  const sentAt = performance.now();
  const spokeEnd = await c.play(fixture16k('question.wav'));
  const transcription = await c.waitFor((e) => e.type === 'conversation.item.input_audio_transcription.completed', 15_000, sentAt);
  t.equal(transcription.transcript, QUESTION, 'the spoken question was transcribed');
  const started = await c.waitFor((e) => e.type === 'output_audio_buffer.started', 15_000, sentAt);
  const done = await c.waitFor((e) => e.type === 'response.done', 20_000, sentAt);
  t.match(done, { response: { status: 'completed', output: [{ role: 'assistant', content: [{ type: 'output_audio', transcript: 'Paris is the capital of France. It is on the Seine.' }] }] } });
  const stopped = await c.waitFor((e) => e.type === 'output_audio_buffer.stopped', 10_000, sentAt);
  t.equal(stopped.response_id, started.response_id, 'output_audio_buffer.started/stopped name the response');
  t.equal(started.response_id, (done.response as { id: string }).id);
  const types = c.events.filter((e) => e.at >= sentAt).map((e) => e.ev.type);
  for (const type of ['input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped', 'input_audio_buffer.committed', 'response.created', 'response.output_audio_transcript.delta', 'response.output_audio_transcript.done']) {
    t.ok(types.includes(type), `saw ${type}`);
  }
  t.notOk(types.includes('response.output_audio.delta'), 'no audio in the events: it is on the track');
  const heardMs = c.audibleMs(sentAt);
  t.ok(heardMs > 1500, `the answer was heard on the track: ${heardMs} ms of audible Opus`);
  const first = c.firstAudible(spokeEnd);
  t.ok(first !== undefined, 'audio came after the question');
  t.comment(`first audible reply ${(first! - spokeEnd).toFixed(0)} ms after the question's last frame left (includes the end-of-turn silence)`);
  t.equal(chatSystem(groq), 'You are a terse geography tutor.', 'session.update instructions are the system prompt');
  t.ok(c.events.every((e) => typeof e.ev.event_id === 'string'), 'every server event has an event_id');

  // Audio belongs on the track here: an append is refused, the call goes on.
  c.send({ type: 'input_audio_buffer.append', event_id: 'ap1', audio: Buffer.alloc(960).toString('base64') });
  const err = await c.waitFor((e) => e.type === 'error');
  t.match(err, { error: { type: 'invalid_request_error', code: 'unsupported_over_webrtc', event_id: 'ap1' } });
  c.send({ type: 'no.such.event', event_id: 'x1' });
  t.match(await c.waitFor((e) => e.type === 'error' && (e.error as { event_id: string }).event_id === 'x1'), { error: { type: 'invalid_request_error' } });

  // Hang up through the API: the call and its slot are released.
  const id = reply.location!.split('/').pop();
  const hung = await fetch(`${calls}/${id}/hangup`, { method: 'POST' });
  t.equal(hung.status, 200);
  t.ok(await until(() => eva.server.calls.size === 0, 5000), 'the call was released');
  t.equal((await fetch(`${calls}/${id}/hangup`, { method: 'POST' })).status, 404, 'a second hangup finds no call');
});

t.test('output_audio_buffer.clear stops the voice on the track and cancels the response; barge-in clears it too', async (t) => {
  const { eva, calls } = await stack(t, LONG_REPLY);
  const c = await client(t);
  await c.connect(calls);
  await c.waitFor((e) => e.type === 'session.created');
  const question = fixture16k('question.wav');
  let since = performance.now();
  await c.play(question);
  const started = await c.waitFor((e) => e.type === 'output_audio_buffer.started', 20_000, since);
  await sleep(1200);
  const clearAt = performance.now();
  c.send({ type: 'output_audio_buffer.clear', event_id: 'clr' });
  const cleared = await c.waitFor((e) => e.type === 'output_audio_buffer.cleared', 5000, clearAt);
  t.equal(cleared.response_id, started.response_id, 'cleared names the response that was playing');
  const done = await c.waitFor((e) => e.type === 'response.done', 5000, clearAt);
  t.match(done, { response: { status: 'cancelled', status_details: { reason: 'client_cancelled' } } });
  await sleep(600);
  t.equal(c.audibleMs(clearAt + 400), 0, 'nothing audible arrives once the buffer was cleared');

  // Speaking over the reply: EVA stops by herself, and says so.
  since = performance.now();
  await c.play(question);
  await c.waitFor((e) => e.type === 'output_audio_buffer.started', 20_000, since);
  await sleep(1200);
  const overAt = performance.now();
  void c.play(question);
  const bargeCleared = await c.waitFor((e) => e.type === 'output_audio_buffer.cleared', 10_000, overAt);
  t.type(bargeCleared.response_id, 'string');
  t.match(await c.waitFor((e) => e.type === 'response.done', 5000, overAt), { response: { status: 'cancelled', status_details: { reason: 'turn_detected' } } });
  t.equal(eva.server.calls.size, 1);
});

t.test('the multipart form: sdp + session; bad offers get clear HTTP errors and hold no call', async (t) => {
  const { groq, eva, calls } = await stack(t, 'Paris.');
  const c = await client(t);
  const reply = await c.connect(calls, { form: { type: 'realtime', model: 'gpt-realtime', instructions: 'From the form.' } });
  t.equal(reply.status, 201);
  const created = await c.waitFor((e) => e.type === 'session.created');
  t.match(created, { session: { instructions: 'From the form.', model: 'gpt-realtime' } }, 'the form’s session part is the session’s start');
  await c.play(fixture16k('question.wav'));
  await c.waitFor((e) => e.type === 'response.done', 20_000);
  t.equal(chatSystem(groq), 'From the form.');

  const post = (body: string, type: string) => fetch(calls, { method: 'POST', headers: { 'Content-Type': type }, body });
  const notSdp = await post('{"sdp":"v=0"}', 'application/json');
  t.equal(notSdp.status, 415, 'a JSON body is refused: 415');
  t.match(await notSdp.json(), { error: { code: 'bad_request', message: /application\/sdp/ } });
  const garbage = await post('hello', 'application/sdp');
  t.equal(garbage.status, 400);
  t.match(await garbage.json(), { error: { code: 'bad_sdp' } });
  const video = await post('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n', 'application/sdp');
  t.match(await video.json(), { error: { code: 'no_audio' } });
  const form = new FormData();
  form.set('session', '{"type":"realtime"}');
  const noSdp = await fetch(calls, { method: 'POST', body: form });
  t.equal(noSdp.status, 400);
  t.match(await noSdp.json(), { error: { message: /"sdp" part/ } });
  const badSession = new FormData();
  badSession.set('sdp', 'v=0');
  badSession.set('session', JSON.stringify({ audio: { input: { format: { type: 'audio/pcmu' } } } }));
  const bad = await fetch(calls, { method: 'POST', body: badSession });
  t.equal(bad.status, 400, 'session settings are checked like session.update');
  t.match(await bad.json(), { error: { message: /^session: / } });
  const huge = await post('v=0\r\n' + 'a=x\r\n'.repeat(40_000), 'application/sdp');
  t.equal(huge.status, 413);
  t.ok(await until(() => eva.server.calls.size === 1, 3000), 'only the good call holds a slot');
});

t.test('client secrets: ek_ keys minted with the API key, carrying session settings, accepted by WebRTC and WebSocket', async (t) => {
  const { groq, calls, eva } = await stack(t, 'Paris.', { EVA_API_KEY: KEY });
  const mintUrl = `${eva.httpUrl}/v1/realtime/client_secrets`;
  const mint = (body: unknown, key?: string) =>
    fetch(mintUrl, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(key && { Authorization: `Bearer ${key}` }) }, body: JSON.stringify(body) });
  t.equal((await mint({})).status, 401, 'minting needs the API key');
  t.equal((await mint({ expires_after: { anchor: 'created_at', seconds: 5 } }, KEY)).status, 400, 'expires_after.seconds below 10 is refused');
  const badVoice = await mint({ session: { type: 'realtime', audio: { output: { voice: 7 } } } }, KEY);
  t.equal(badVoice.status, 400);
  const res = await mint({ expires_after: { anchor: 'created_at', seconds: 120 }, session: { type: 'realtime', instructions: 'From the secret.' } }, KEY);
  t.equal(res.status, 200);
  t.equal(res.headers.get('cache-control'), 'no-store');
  const secret = (await res.json()) as { value: string; expires_at: number; session: { instructions: string } };
  t.match(secret.value, /^ek_/);
  const nowS = Date.now() / 1000;
  t.ok(secret.expires_at > nowS + 100 && secret.expires_at <= nowS + 121, 'expires_at is unix seconds, expires_after from now');
  t.equal(secret.session.instructions, 'From the secret.');

  const refused = await client(t);
  t.equal((await refused.connect(calls)).status, 401, 'a call without a key is refused');
  const wrong = await client(t);
  t.equal((await wrong.connect(calls, { key: 'ek_v1.zz.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA' })).status, 401, 'a forged ek_ key is refused');
  const c = await client(t);
  t.equal((await c.connect(calls, { key: secret.value })).status, 201, 'the ek_ key opens a call');
  t.match(await c.waitFor((e) => e.type === 'session.created'), { session: { instructions: 'From the secret.' } }, 'with the secret’s settings');
  await c.play(fixture16k('question.wav'));
  await c.waitFor((e) => e.type === 'response.done', 20_000);
  t.equal(chatSystem(groq), 'From the secret.');

  // The browser form of the WebSocket door: the ek_ key as the openai-insecure-api-key subprotocol.
  const ws = new WebSocket(`ws://127.0.0.1:${eva.server.port}/v1/realtime?model=gpt-realtime`, ['realtime', `openai-insecure-api-key.${secret.value}`]);
  t.teardown(() => ws.close());
  const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
    ws.once('message', (data) => resolve(JSON.parse(String(data)) as Record<string, unknown>));
    ws.once('error', reject);
  });
  t.equal(ws.protocol, 'realtime');
  t.match(first, { type: 'session.created', session: { instructions: 'From the secret.' } }, 'the WebSocket session starts with the secret’s settings too');
});
