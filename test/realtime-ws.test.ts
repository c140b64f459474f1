// Integration: EVA's OpenAI Realtime WebSocket front door (`/v1/realtime`), driven by OpenAI's own clients —
// `@openai/agents-realtime` (RealtimeSession over its OpenAIRealtimeWebSocket transport) and the `openai`
// package's OpenAIRealtimeWS (wss: only, so through a local TLS terminator) — and by a raw `ws` client for the
// protocol's edges. Real components: EVA in-process with its runtime, the real Silero VAD and turn
// detector, groq-sdk against the Groq stand-in (STT + LLM), eSpeak NG speaking the reply.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import WebSocket from 'ws';
import { OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession } from '@openai/agents-realtime';
import { start as startGroq, type GroqStandin } from '../bench/standins/groq.js';
import { createResampler } from '../media/resample.js';
import { fixture16k, sleep, startEva, until, type TestEva } from './helpers/eva.js';

const RATE = 24000;
const CHUNK = RATE / 50; // 20 ms
const QUESTION = 'What is the capital of France?';
const LONG_REPLY =
  'Paris is the capital of France, and it has been for a very long time. It sits on the river Seine, ' +
  'in the north of the country. About two million people live in the city itself, and many more around it. ' +
  'It is known for its museums, its cafes, its bridges and its long history of art and science.';

async function to24k(pcm16: Int16Array): Promise<Int16Array> {
  const r = await createResampler(16000, RATE);
  const body = r.process(pcm16);
  const tail = r.flush();
  r.destroy();
  const out = new Int16Array(body.length + tail.length);
  out.set(body);
  out.set(tail, body.length);
  return out;
}

/** A microphone: 20 ms of PCM16 every 20 ms, on a drift-free clock; silence when nothing is being said. */
class Mic {
  private queue: Int16Array[] = [];
  private timer: NodeJS.Timeout | null = null;
  private t0 = 0;
  private sent = 0;
  private done: (() => void)[] = [];
  constructor(private readonly send: (chunk: ArrayBuffer) => void) {}

  start(): void {
    this.t0 = performance.now();
    const tick = () => {
      const due = Math.floor((performance.now() - this.t0) / 20) + 1;
      for (; this.sent < due; this.sent++) {
        const chunk = this.queue.shift() ?? new Int16Array(CHUNK);
        this.send(chunk.slice().buffer);
        if (this.queue.length === 0) for (const d of this.done.splice(0)) d();
      }
      this.timer = setTimeout(tick, 10);
    };
    tick();
  }

  /** Queue an utterance; resolves when its last chunk was sent. */
  say(pcm: Int16Array): Promise<void> {
    for (let i = 0; i < pcm.length; i += CHUNK) {
      const c = new Int16Array(CHUNK);
      c.set(pcm.subarray(i, Math.min(pcm.length, i + CHUNK)));
      this.queue.push(c);
    }
    return new Promise((resolve) => this.done.push(resolve));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

type Ev = Record<string, unknown> & { type: string };

interface SdkClient {
  session: RealtimeSession;
  transport: OpenAIRealtimeWebSocket;
  events: { at: number; ev: Ev }[];
  mic: Mic;
  interrupted: number[];
  waitFor(pred: (ev: Ev) => boolean, timeoutMs?: number, after?: number): Promise<Ev>;
}

async function connectSdk(t: Test, eva: TestEva, agent: RealtimeAgent, opts: { apiKey?: string } = {}): Promise<SdkClient> {
  const transport = new OpenAIRealtimeWebSocket({ url: `ws://127.0.0.1:${eva.server.port}/v1/realtime?model=gpt-realtime` });
  const session = new RealtimeSession(agent, { transport, model: 'gpt-realtime' });
  const events: { at: number; ev: Ev }[] = [];
  const interrupted: number[] = [];
  session.on('transport_event', (ev) => events.push({ at: performance.now(), ev: ev as Ev }));
  session.on('audio_interrupted', () => interrupted.push(performance.now()));
  await session.connect({ apiKey: opts.apiKey ?? 'sk-test' });
  const mic = new Mic((chunk) => session.sendAudio(chunk));
  t.teardown(() => {
    mic.stop();
    session.close();
  });
  const waitFor = async (pred: (ev: Ev) => boolean, timeoutMs = 15_000, after = 0): Promise<Ev> => {
    let hit: Ev | undefined;
    await until(() => !!(hit = events.find((e) => e.at >= after && pred(e.ev))?.ev), timeoutMs);
    if (!hit) throw new Error(`no matching event in ${timeoutMs} ms; saw ${[...new Set(events.map((e) => e.ev.type))].join(', ')}`);
    return hit;
  };
  return { session, transport, events, mic, interrupted, waitFor };
}

function chatRequests(groq: GroqStandin): { messages: { role: string; content: string }[] }[] {
  return groq.requests.filter((r) => r.path.endsWith('/chat/completions')).map((r) => r.body as { messages: { role: string; content: string }[] });
}

async function startStack(t: Test, reply: string, env: Record<string, string> = {}) {
  const groq = await startGroq({ profile: 'instant', transcript: QUESTION, reply: () => reply });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'test-key', GROQ_BASE_URL: groq.url, ...env } });
  return { groq, eva };
}

t.test('@openai/agents-realtime: a spoken question with server VAD gets a transcription, streamed audio and transcript, response.done', async (t) => {
  const { groq, eva } = await startStack(t, 'Paris is the capital of France. It is on the Seine.');
  const c = await connectSdk(t, eva, new RealtimeAgent({ name: 'eva', instructions: 'You are a terse geography tutor.' }));
  const created = await c.waitFor((e) => e.type === 'session.created');
  t.match(created, { session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } }, 'session.created carries the GA session object');
  await c.waitFor((e) => e.type === 'session.updated');
  t.ok(c.events.every((e) => typeof e.ev.event_id === 'string'), 'every server event has an event_id');
  t.notOk(c.events.some((e) => e.ev.type === 'error'), 'the SDK’s session.update (tracing, tools, semantic_vad) is accepted');

  c.mic.start();
  const sentAt = performance.now();
  await c.mic.say(await to24k(fixture16k('question.wav')));
  const spokeEnd = performance.now();
  const started = await c.waitFor((e) => e.type === 'input_audio_buffer.speech_started');
  t.type(started.item_id, 'string', 'speech_started names the user item');
  const transcription = await c.waitFor((e) => e.type === 'conversation.item.input_audio_transcription.completed');
  t.match(transcription, { item_id: started.item_id, content_index: 0, transcript: QUESTION }, 'the transcription event carries the STT text for the spoken item');
  const done = await c.waitFor((e) => e.type === 'response.done', 20_000);
  t.match(done, { response: { status: 'completed', output: [{ role: 'assistant', content: [{ type: 'output_audio', transcript: 'Paris is the capital of France. It is on the Seine.' }] }] } });

  const types = c.events.filter((e) => e.at >= sentAt).map((e) => e.ev.type);
  for (const type of [
    'input_audio_buffer.speech_stopped',
    'input_audio_buffer.committed',
    'conversation.item.added',
    'conversation.item.done',
    'response.created',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_audio_transcript.delta',
    'response.output_audio.done',
    'response.output_audio_transcript.done',
    'response.content_part.done',
    'response.output_item.done',
  ]) {
    t.ok(types.includes(type), `saw ${type}`);
  }
  t.ok(types.indexOf('response.created') < types.indexOf('response.output_audio.delta'), 'response.created comes before the audio');
  const deltas = c.events.filter((e) => e.ev.type === 'response.output_audio.delta');
  const audioMs = deltas.reduce((ms, e) => ms + (Buffer.from(e.ev.delta as string, 'base64').length / 2 / RATE) * 1000, 0);
  t.ok(audioMs > 1500, `the reply streamed ${deltas.length} audio deltas, ${audioMs.toFixed(0)} ms of 24 kHz PCM`);
  const firstAudio = deltas[0]!.at;
  t.comment(`first reply audio ${(firstAudio - spokeEnd).toFixed(0)} ms after the question's last chunk was sent (includes the end-of-turn silence)`);
  const retrieved = await c.waitFor((e) => e.type === 'conversation.item.retrieved');
  t.match(retrieved, { item: { id: started.item_id, content: [{ type: 'input_audio', transcript: QUESTION }] } }, 'the SDK retrieved the transcribed item');
  await until(() => c.session.history.some((i) => i.type === 'message' && i.role === 'assistant'), 3000);
  const history = c.session.history.filter((i) => i.type === 'message').map((i) => (i as { role: string }).role);
  t.same(history.slice(0, 2), ['user', 'assistant'], 'the SDK built its history from the events');
  const chat = chatRequests(groq).at(-1)!;
  t.match(chat.messages[0], { role: 'system', content: 'You are a terse geography tutor.' }, "the agent's instructions are EVA's system prompt");
  t.match(chat.messages.at(-1), { role: 'user', content: QUESTION });
});

t.test('@openai/agents-realtime: speaking over the reply interrupts it and the assistant item is truncated to what was heard', async (t) => {
  const { groq, eva } = await startStack(t, LONG_REPLY);
  const c = await connectSdk(t, eva, new RealtimeAgent({ name: 'eva', instructions: 'Be thorough.' }));
  await c.waitFor((e) => e.type === 'session.updated');
  c.mic.start();
  const question = await to24k(fixture16k('question.wav'));
  await c.mic.say(question);
  const firstDelta = await c.waitFor((e) => e.type === 'response.output_audio.delta', 20_000);
  const itemId = firstDelta.item_id as string;
  const firstAt = c.events.find((e) => e.ev === firstDelta)!.at;
  await sleep(1500);
  const overAt = performance.now();
  void c.mic.say(question);
  const cancelled = await c.waitFor((e) => e.type === 'response.done', 10_000, overAt);
  t.match(cancelled, { response: { status: 'cancelled', status_details: { type: 'cancelled', reason: 'turn_detected' } } }, 'the barge-in cancelled the response');
  const started = c.events.find((e) => e.at >= overAt && e.ev.type === 'input_audio_buffer.speech_started');
  t.ok(started, 'speech_started announced the barge-in');
  t.ok(c.events.indexOf(started!) < c.events.findIndex((e) => e.ev === cancelled), 'speech_started came before the cancellation');
  await until(() => c.interrupted.length > 0, 2000);
  t.ok(c.interrupted.length > 0, 'the SDK stopped its playback (audio_interrupted)');
  const truncated = await c.waitFor((e) => e.type === 'conversation.item.truncated', 5000, overAt);
  t.equal(truncated.item_id, itemId, 'the SDK truncated the assistant item');
  const endMs = truncated.audio_end_ms as number;
  t.ok(endMs > 1000 && endMs < 5000, `audio_end_ms ${endMs} is about the time since the first delta (${(performance.now() - firstAt).toFixed(0)} ms ago)`);
  const retrieved = await c.waitFor((e) => e.type === 'conversation.item.retrieved' && (e.item as { id: string }).id === itemId, 5000, overAt);
  const heard = ((retrieved.item as { content: { transcript: string }[] }).content[0]!.transcript ?? '') as string;
  t.ok(heard.length > 0 && heard.length < LONG_REPLY.length / 2, `the item keeps what was heard: "${heard}"`);
  t.ok(LONG_REPLY.startsWith(heard), 'a prefix of the reply');
  // The overlapping speech is the next turn: the model sees the cut reply, not the whole one.
  await until(() => chatRequests(groq).length >= 2, 15_000);
  const next = chatRequests(groq)[1]!;
  const assistant = next.messages.filter((m) => m.role === 'assistant').at(-1);
  t.equal(assistant?.content, heard, "EVA's history holds the truncated reply");
});

t.test('@openai/agents-realtime: session.update changes the instructions and the voice mid-session', async (t) => {
  const { groq, eva } = await startStack(t, 'Paris.');
  const voices: (string | undefined)[] = [];
  const tts = eva.runtime!.tts;
  const synthesize = tts.synthesize.bind(tts);
  tts.synthesize = (text, opts) => {
    voices.push(opts?.voice);
    return synthesize(text, opts);
  };
  const c = await connectSdk(t, eva, new RealtimeAgent({ name: 'first', instructions: 'First instructions.', voice: 'alloy' }));
  await c.waitFor((e) => e.type === 'session.updated');
  c.session.sendMessage('Where is Paris?');
  await c.waitFor((e) => e.type === 'response.done', 15_000);
  t.match(chatRequests(groq).at(-1)!.messages[0], { role: 'system', content: 'First instructions.' });
  t.equal(voices.at(-1), undefined, "OpenAI's 'alloy' means EVA's default voice");

  const at = performance.now();
  await c.session.updateAgent(new RealtimeAgent({ name: 'second', instructions: 'Second instructions.', voice: 'en-gb' }));
  const updated = await c.waitFor((e) => e.type === 'session.updated', 5000, at);
  t.match(updated, { session: { instructions: 'Second instructions.', audio: { output: { voice: 'en-gb' } } } }, 'session.updated echoes the change');
  c.session.sendMessage('And Rome?');
  const done = await c.waitFor((e) => e.type === 'response.done', 15_000, at);
  t.match(done, { response: { status: 'completed' } });
  t.match(chatRequests(groq).at(-1)!.messages[0], { role: 'system', content: 'Second instructions.' }, 'the LLM got the new system prompt');
  t.equal(voices.at(-1), 'en-gb', 'the TTS spoke with the new voice');
  const deltas = c.events.filter((e) => e.at >= at && e.ev.type === 'response.output_audio.delta');
  t.ok(deltas.length > 0, 'and it was heard');
});

// ---- raw protocol ---------------------------------------------------------------------------------------------

interface Raw {
  ws: WebSocket;
  events: Ev[];
  next(pred: (ev: Ev) => boolean, timeoutMs?: number): Promise<Ev>;
  send(ev: unknown): void;
}

async function raw(url: string, opts: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<Raw> {
  const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers });
  const events: Ev[] = [];
  ws.on('message', (data) => events.push(JSON.parse(String(data)) as Ev));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let seen = 0;
  const next = async (pred: (ev: Ev) => boolean, timeoutMs = 5000): Promise<Ev> => {
    let hit: Ev | undefined;
    await until(() => {
      const i = events.findIndex((e, k) => k >= seen && pred(e));
      if (i < 0) return false;
      hit = events[i];
      seen = i + 1;
      return true;
    }, timeoutMs);
    if (!hit) throw new Error(`no matching event; saw ${events.map((e) => e.type).join(', ')}`);
    return hit;
  };
  return { ws, events, next, send: (ev) => ws.send(typeof ev === 'string' ? ev : JSON.stringify(ev)) };
}

t.test('protocol errors are error events carrying the client event_id, and the socket stays usable', async (t) => {
  const eva = await startEva(t, { runtime: true });
  const url = `ws://127.0.0.1:${eva.server.port}/v1/realtime?model=whatever`;
  const c = await raw(url);
  t.teardown(() => c.ws.close());
  await c.next((e) => e.type === 'session.created');

  c.send({ type: 'response.audio.delta', event_id: 'evt_beta' });
  t.match(await c.next((e) => e.type === 'error'), { error: { type: 'invalid_request_error', code: 'invalid_value', param: 'type', event_id: 'evt_beta' } }, 'an unknown (beta) event type');
  c.send({ type: 'input_audio_buffer.append', event_id: 'evt_b64', audio: 'not base64!' });
  t.match(await c.next((e) => e.type === 'error'), { error: { param: 'audio', event_id: 'evt_b64' } }, 'bad base64');
  c.send({ type: 'input_audio_buffer.append', event_id: 'evt_odd', audio: Buffer.from([1, 2, 3]).toString('base64') });
  t.match(await c.next((e) => e.type === 'error'), { error: { param: 'audio', event_id: 'evt_odd' } }, 'an odd number of PCM16 bytes');
  c.send('{"type":');
  t.match(await c.next((e) => e.type === 'error'), { error: { code: 'invalid_json' } }, 'a frame that is not JSON');
  c.send({ type: 'session.update', event_id: 'evt_fmt', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } });
  t.match(await c.next((e) => e.type === 'error'), { error: { code: 'unsupported_audio_format', event_id: 'evt_fmt' } }, 'audio in a format EVA does not speak');
  c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 16000 } } } } });
  t.match(await c.next((e) => e.type === 'error'), { error: { code: 'unsupported_audio_format' } }, 'PCM at another rate');
  c.send({ type: 'conversation.item.retrieve', event_id: 'evt_nf', item_id: 'item_nope' });
  t.match(await c.next((e) => e.type === 'error'), { error: { code: 'item_not_found', event_id: 'evt_nf' } });
  c.send({ type: 'input_audio_buffer.commit', event_id: 'evt_empty' });
  t.match(await c.next((e) => e.type === 'error'), { error: { code: 'input_audio_buffer_commit_empty', event_id: 'evt_empty' } }, 'commit with nothing spoken');
  c.send({ type: 'response.cancel', event_id: 'evt_cancel' });
  t.match(await c.next((e) => e.type === 'error'), { error: { code: 'response_cancel_not_active', event_id: 'evt_cancel' } });
  const huge = JSON.stringify({ type: 'input_audio_buffer.append', event_id: 'evt_huge', audio: 'A'.repeat(9 * 1024 * 1024) });
  c.send(huge);
  t.match(await c.next((e) => e.type === 'error', 10_000), { error: { code: 'message_too_large', event_id: 'evt_huge' } }, 'a 9 MiB frame');
  c.send({ type: 'session.update', event_id: 'evt_ok', session: { type: 'realtime', tracing: 'auto', tools: [], prompt: null, instructions: 'Hi.' } });
  t.match(await c.next((e) => e.type === 'session.updated'), { session: { instructions: 'Hi.', tracing: 'auto' } }, 'fields EVA does not use are accepted');
  t.ok(c.events.every((e) => typeof e.event_id === 'string' && e.event_id.length > 0), 'every server event has an event_id');
  t.equal(c.ws.readyState, WebSocket.OPEN, 'the socket is still open');
});

t.test('turn_detection null: manual commit, then response.create, text out when output_modalities is text', async (t) => {
  // Groq's TTS (the stand-in's /audio/speech): a text-only session must never ask it for speech.
  const { groq, eva } = await startStack(t, 'Paris is the capital.', { EVA_TTS: 'groq' });
  const c = await raw(`ws://127.0.0.1:${eva.server.port}/v1/realtime`);
  t.teardown(() => c.ws.close());
  await c.next((e) => e.type === 'session.created');
  c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } } } });
  t.match(await c.next((e) => e.type === 'session.updated'), { session: { output_modalities: ['text'], audio: { input: { turn_detection: null } } } });
  const q = await to24k(fixture16k('question.wav'));
  for (let i = 0; i < q.length; i += CHUNK * 10) {
    const part = q.subarray(i, Math.min(q.length, i + CHUNK * 10));
    c.send({ type: 'input_audio_buffer.append', audio: Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString('base64') });
    await sleep(150); // faster than real time, but the VAD keeps up
  }
  c.send({ type: 'input_audio_buffer.commit' });
  const committed = await c.next((e) => e.type === 'input_audio_buffer.committed');
  t.notOk(c.events.some((e) => e.type === 'input_audio_buffer.speech_started'), 'no VAD events without turn detection');
  await sleep(300);
  t.equal(chatRequests(groq).length, 0, 'no answer before response.create');
  c.send({ type: 'response.create' });
  t.match(await c.next((e) => e.type === 'response.created'), { response: { status: 'in_progress' } });
  t.match(await c.next((e) => e.type === 'conversation.item.input_audio_transcription.completed', 10_000), { item_id: committed.item_id, transcript: QUESTION });
  const done = await c.next((e) => e.type === 'response.done', 10_000);
  t.match(done, { response: { status: 'completed', output: [{ content: [{ type: 'output_text', text: 'Paris is the capital.' }] }] } });
  t.ok(c.events.some((e) => e.type === 'response.output_text.delta'), 'text deltas');
  t.ok(c.events.some((e) => e.type === 'response.output_text.done'));
  t.notOk(c.events.some((e) => e.type === 'response.output_audio.delta'), 'no audio in a text-only session');
  t.equal(groq.requests.filter((r) => r.path.endsWith('/audio/speech')).length, 0, 'and no speech synthesized for it');

  // Deleting both items takes them out of what the model sees next.
  const assistantId = (done.response as { output: { id: string }[] }).output[0]!.id;
  c.send({ type: 'conversation.item.delete', item_id: committed.item_id });
  t.match(await c.next((e) => e.type === 'conversation.item.deleted'), { item_id: committed.item_id });
  c.send({ type: 'conversation.item.delete', item_id: assistantId });
  t.match(await c.next((e) => e.type === 'conversation.item.deleted' && e.item_id === assistantId), { item_id: assistantId });
  c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'And Germany?' }] } });
  c.send({ type: 'response.create' });
  await c.next((e) => e.type === 'response.done' && e !== done, 10_000);
  const contents = chatRequests(groq).at(-1)!.messages.map((m) => m.content);
  t.ok(contents.includes('And Germany?'), 'the new turn was asked');
  t.notOk(contents.includes(QUESTION), 'the deleted user item is not in the history');
  t.notOk(contents.includes('Paris is the capital.'), 'nor the deleted assistant item');
});

t.test('a typed turn is answered on response.create; response.cancel stops it; truncate cuts what the client played', async (t) => {
  const { groq, eva } = await startStack(t, LONG_REPLY);
  const c = await raw(`ws://127.0.0.1:${eva.server.port}/v1/realtime`);
  t.teardown(() => c.ws.close());
  await c.next((e) => e.type === 'session.created');
  c.send({ type: 'conversation.item.create', event_id: 'evt_item', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Tell me about Paris.' }] } });
  const added = await c.next((e) => e.type === 'conversation.item.added');
  t.match(added, { item: { role: 'user', content: [{ type: 'input_text', text: 'Tell me about Paris.' }] } });
  c.send({ type: 'response.create' });
  const created = await c.next((e) => e.type === 'response.created');
  const delta = await c.next((e) => e.type === 'response.output_audio.delta', 10_000);
  t.match(delta, { response_id: (created.response as { id: string }).id, output_index: 0, content_index: 0 });
  t.match(chatRequests(groq).at(-1)!.messages.at(-1), { role: 'user', content: 'Tell me about Paris.' });
  c.send({ type: 'response.create', event_id: 'evt_twice' });
  t.match(await c.next((e) => e.type === 'error'), { error: { code: 'conversation_already_has_active_response', event_id: 'evt_twice' } }, 'one response at a time');
  await sleep(300);
  c.send({ type: 'response.cancel' });
  const done = await c.next((e) => e.type === 'response.done', 5000);
  t.match(done, { response: { status: 'cancelled', status_details: { reason: 'client_cancelled' } } });
  c.send({ type: 'conversation.item.truncate', item_id: delta.item_id, content_index: 0, audio_end_ms: 1200 });
  t.match(await c.next((e) => e.type === 'conversation.item.truncated'), { item_id: delta.item_id, audio_end_ms: 1200 });
  c.send({ type: 'conversation.item.retrieve', item_id: delta.item_id });
  const item = (await c.next((e) => e.type === 'conversation.item.retrieved')).item as { status: string; content: { transcript: string }[] };
  const heard = item.content[0]!.transcript;
  t.ok(heard.length > 0 && heard.length < 60 && LONG_REPLY.startsWith(heard), `1.2 s of audio heard: "${heard}"`);
  t.equal(item.status, 'incomplete');
  c.send({ type: 'conversation.item.truncate', event_id: 'evt_long', item_id: delta.item_id, content_index: 0, audio_end_ms: 600_000 });
  t.match(await c.next((e) => e.type === 'error'), { error: { param: 'audio_end_ms', event_id: 'evt_long' } }, 'past the end of the audio');
});

/** A TLS terminator in front of EVA (a self-signed certificate made by openssl): the `openai` client needs wss:. */
async function tlsProxy(t: Test, port: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'eva-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const server = tls.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (client) => {
    const upstream = net.connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const end = () => (client.destroy(), upstream.destroy());
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

t.test("the `openai` package's OpenAIRealtimeWS (wss: through a TLS terminator) gets a spoken answer to a typed turn", async (t) => {
  const { eva } = await startStack(t, 'Paris is the capital of France.');
  const port = await tlsProxy(t, eva.server.port);
  const client = new OpenAI({ apiKey: 'sk-test', baseURL: `https://127.0.0.1:${port}/v1` });
  const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { rejectUnauthorized: false } }, client);
  t.teardown(() => rt.close());
  const events: Ev[] = [];
  rt.on('event', (ev) => events.push(ev as unknown as Ev));
  rt.on('error', (err) => t.comment(`openai client error: ${err.message}`));
  t.ok(await until(() => events.some((e) => e.type === 'session.created'), 5000), 'session.created over wss:');
  rt.send({ type: 'session.update', session: { type: 'realtime', instructions: 'Be brief.', audio: { output: { voice: 'marin' } } } });
  rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Capital of France?' }] } });
  rt.send({ type: 'response.create' });
  t.ok(await until(() => events.some((e) => e.type === 'response.done'), 15_000), 'response.done');
  t.ok(events.some((e) => e.type === 'response.output_audio.delta'), 'audio deltas');
  t.match(events.find((e) => e.type === 'response.done'), { response: { status: 'completed', output: [{ content: [{ transcript: 'Paris is the capital of France.' }] }] } });
  t.notOk(events.some((e) => e.type === 'error'), 'no errors');
});

t.test('with EVA_API_KEY: no key is refused; the subprotocol key is accepted and `realtime` answered; Bearer works', async (t) => {
  const eva = await startEva(t, { runtime: true, env: { EVA_API_KEY: 'sekrit-key' } });
  const url = `ws://127.0.0.1:${eva.server.port}/v1/realtime?model=gpt-realtime`;
  await t.rejects(raw(url), /401/, 'no key: the upgrade is refused with 401');
  await t.rejects(raw(url, { protocols: ['realtime', 'openai-insecure-api-key.wrong'] }), /401/, 'a wrong key is refused');
  const browser = await raw(url, { protocols: ['realtime', 'openai-insecure-api-key.sekrit-key', 'openai-beta.realtime-v1'] });
  t.teardown(() => browser.ws.close());
  t.equal(browser.ws.protocol, 'realtime', 'the server answered the `realtime` subprotocol');
  t.ok(await browser.next((e) => e.type === 'session.created'), 'session.created');
  const node = await raw(url, { headers: { Authorization: 'Bearer sekrit-key' } });
  t.teardown(() => node.ws.close());
  t.ok(await node.next((e) => e.type === 'session.created'), 'Authorization: Bearer works');
});
