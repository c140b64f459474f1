import t, { type Test } from 'tap';
import { RealtimeError, applySessionUpdate, defaultSession, evaVoice, parseClientEvent, sessionJson } from './protocol.js';
import { VirtualPlayout } from './playout.js';
import { tagAt } from './items.js';
import type { FrameTag } from '../../media/pacer.js';

const parse = (ev: unknown) => parseClientEvent(JSON.stringify(ev));
const fails = (t: Test, ev: unknown, code: string, param?: string) => {
  try {
    parseClientEvent(typeof ev === 'string' ? ev : JSON.stringify(ev));
    t.fail(`expected ${code}`);
  } catch (err) {
    t.ok(err instanceof RealtimeError, 'a RealtimeError');
    t.match(err, { code, type: 'invalid_request_error', ...(param && { param }) }, code);
  }
};
const base = () => defaultSession({ id: 'sess_1', model: 'm', instructions: 'Be brief.', endOfTurnMs: 480, threshold: 0.5 });

t.test('every client event shape parses, with its fields', async (t) => {
  t.match(parse({ type: 'session.update', event_id: 'e1', session: { type: 'realtime' } }), { type: 'session.update', event_id: 'e1', session: { type: 'realtime' } });
  const pcm = Buffer.from(new Int16Array([1, -2, 3]).buffer);
  const append = parse({ type: 'input_audio_buffer.append', audio: pcm.toString('base64') });
  t.ok(append.type === 'input_audio_buffer.append' && append.audio.equals(pcm), 'append decodes its base64');
  t.match(parse({ type: 'input_audio_buffer.commit' }), { type: 'input_audio_buffer.commit' });
  t.match(parse({ type: 'input_audio_buffer.clear' }), { type: 'input_audio_buffer.clear' });
  t.match(parse({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } }), {
    item: { role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
    previous_item_id: null,
  });
  t.match(parse({ type: 'conversation.item.retrieve', item_id: 'i' }), { item_id: 'i' });
  t.match(parse({ type: 'conversation.item.delete', item_id: 'i' }), { item_id: 'i' });
  t.match(parse({ type: 'conversation.item.truncate', item_id: 'i', content_index: 0, audio_end_ms: 1234.7 }), { item_id: 'i', content_index: 0, audio_end_ms: 1234 });
  t.match(parse({ type: 'response.create' }), { type: 'response.create', response: {} });
  t.match(parse({ type: 'response.cancel', response_id: 'r' }), { response_id: 'r' });
  t.match(parse({ type: 'output_audio_buffer.clear', event_id: 'e2' }), { type: 'output_audio_buffer.clear', event_id: 'e2' }, 'the WebRTC clear');
});

t.test('malformed client events are invalid_request_error with a code and the offending param', async (t) => {
  fails(t, '{"type":', 'invalid_json');
  fails(t, [1, 2], 'invalid_json');
  fails(t, { event_id: 'x' }, 'missing_required_parameter', 'type');
  fails(t, { type: 'response.audio.delta' }, 'invalid_value', 'type');
  fails(t, { type: 'input_audio_buffer.append', audio: '***' }, 'invalid_value', 'audio');
  fails(t, { type: 'input_audio_buffer.append', audio: 'AAE' }, 'invalid_value', 'audio');
  fails(t, { type: 'input_audio_buffer.append', audio: 'AAEC' }, 'invalid_value', 'audio'); // 3 bytes: not PCM16
  fails(t, { type: 'input_audio_buffer.append' }, 'missing_required_parameter', 'audio');
  fails(t, { type: 'session.update' }, 'missing_required_parameter', 'session');
  fails(t, { type: 'conversation.item.truncate', item_id: 'i', audio_end_ms: -1 }, 'invalid_value', 'audio_end_ms');
  fails(t, { type: 'conversation.item.create', item: { type: 'function_call_output', output: '{}' } }, 'unsupported_item_type');
  fails(t, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_image' }] } }, 'unsupported_content_type');
  fails(t, { type: 'conversation.item.create', item: { type: 'message', role: 'robot', content: [] } }, 'invalid_value', 'item.role');
  fails(t, { type: 'conversation.item.retrieve', item_id: 7 }, 'invalid_type', 'item_id');
});

t.test('session.update: GA fields, the beta flat ones, formats, and what is ignored', async (t) => {
  const s = applySessionUpdate(base(), {
    type: 'realtime',
    instructions: 'Talk like a pirate.',
    output_modalities: ['text'],
    tracing: 'auto',
    tools: [{ type: 'function', name: 'f' }],
    audio: {
      input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: { type: 'server_vad', threshold: 0.7, silence_duration_ms: 800, create_response: false } },
      output: { voice: 'en-gb' },
    },
  });
  t.match(s, { instructions: 'Talk like a pirate.', output_modalities: ['text'], voice: 'en-gb', tracing: 'auto' });
  t.match(s.turn_detection, { type: 'server_vad', threshold: 0.7, silence_duration_ms: 800, create_response: false, interrupt_response: true });
  t.equal(applySessionUpdate(s, { audio: { input: { turn_detection: null } } }).turn_detection, null, 'null turns detection off');
  t.match(applySessionUpdate(base(), { audio: { input: { turn_detection: { type: 'semantic_vad', eagerness: 'high' } } } }).turn_detection, { type: 'semantic_vad', eagerness: 'high' });
  t.match(applySessionUpdate(base(), { voice: 'coral', turn_detection: { type: 'server_vad', silence_duration_ms: 300 } }), { voice: 'coral', turn_detection: { silence_duration_ms: 300 } }, 'the beta flat names');
  t.throws(() => applySessionUpdate(base(), { audio: { output: { format: { type: 'audio/pcmu' } } } }), { code: 'unsupported_audio_format' });
  t.throws(() => applySessionUpdate(base(), { audio: { input: { turn_detection: { type: 'push_to_talk' } } } }), { code: 'invalid_value' });
  t.throws(() => applySessionUpdate(base(), { type: 'transcription' }), { code: 'invalid_value' }, 'transcription sessions are not served');
  t.throws(() => applySessionUpdate(base(), { audio: { input: { turn_detection: { threshold: 2 } } } }), { code: 'invalid_value' });
  t.match(sessionJson(base()), { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } }, output: { voice: 'alloy' } }, tracing: null });
});

t.test("OpenAI's voice names mean EVA's default voice; EVA's own names pass", async (t) => {
  t.equal(evaVoice('alloy'), null);
  t.equal(evaVoice('Marin'), null);
  t.equal(evaVoice('en-gb'), 'en-gb');
});

t.test("a client's audio_end_ms becomes the played position in the item's segments", async (t) => {
  const spans = [
    { segment: 1000, segStartMs: 0, atMs: 0, durMs: 500 },
    { segment: 1000, segStartMs: 500, atMs: 500, durMs: 500 },
    { segment: 1001, segStartMs: 0, atMs: 1000, durMs: 800 },
  ];
  t.equal(tagAt(spans, 0), null, 'nothing heard');
  t.same(tagAt(spans, 700), { segment: 1000, endMs: 700 });
  t.same(tagAt(spans, 1200), { segment: 1001, endMs: 200 });
  t.same(tagAt(spans, 5000), { segment: 1001, endMs: 800 }, 'past the end: all of it');
});

t.test('the virtual playout plays back to back at real time from the first delta', async (t) => {
  let now = 1000;
  const events: string[] = [];
  const played: FrameTag[] = [];
  const sent: number[] = [];
  const p = new VirtualPlayout({
    sampleRate: 24000,
    send: (pcm) => sent.push(pcm.length),
    events: { talkStart: () => events.push('start'), talkEnd: () => events.push('end'), played: (tag) => played.push(tag), level: () => undefined },
    now: () => now,
  });
  t.teardown(() => p.close());
  p.enqueue(new Int16Array(24000), 7); // 1 s
  p.enqueue(new Int16Array(12000), 7); // 0.5 s
  t.same(sent, [24000, 12000], 'audio leaves at once');
  t.ok(p.speaking);
  t.equal(p.queuedMs, 1500);
  now += 600;
  await new Promise((r) => setTimeout(r, 30));
  t.same(events, ['start']);
  t.same(played.at(-1), { segment: 7, endMs: 600 }, 'the played position follows the clock');
  now += 1000;
  await new Promise((r) => setTimeout(r, 60));
  t.same(played.at(-1), { segment: 7, endMs: 1500 });
  t.same(events, ['start', 'end'], 'talk ends when the audio has played');
  t.notOk(p.speaking);
  p.enqueue(new Int16Array(24000), 8);
  now += 250;
  t.equal(p.clear(), 750, 'clear: the rest will not play');
  t.same(played.at(-1), { segment: 8, endMs: 250 });
  p.muted = true;
  p.enqueue(new Int16Array(2400), 9);
  t.equal(sent.length, 3, 'a text-only session sends no audio');
});
