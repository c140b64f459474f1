// The Realtime transcription stand-in, driven by a bare ws client: the wire protocol as OpenAI's reference gives it
// (event names and fields, every server event with an event_id, errors as `error` events), partials, profiles,
// keys and close().
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { LOCAL_STREAM_STT, parseRealtimeProfile, startRealtimeStandin, type RealtimeStandin, type RealtimeStandinOptions } from './realtime.js';

type Event = Record<string, unknown> & { type: string; event_id: string };

interface Client {
  ws: WebSocket;
  events: Event[];
  send(e: Record<string, unknown>): void;
  /** The next event of `type` not yet taken (waits for it). */
  next(type: string, ms?: number): Promise<Event>;
}

async function standin(t: Test, opts: RealtimeStandinOptions = {}): Promise<RealtimeStandin> {
  const s = await startRealtimeStandin(opts);
  t.teardown(() => s.close());
  return s;
}

async function connect(t: Test, url: string, headers: Record<string, string> = {}): Promise<Client> {
  const ws = new WebSocket(url, { headers });
  t.teardown(() => ws.terminate());
  const events: Event[] = [];
  const taken = new Set<Event>();
  ws.on('message', (d) => events.push(JSON.parse(String(d)) as Event));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    events,
    send: (e) => ws.send(JSON.stringify(e)),
    async next(type, ms = 3000) {
      const end = performance.now() + ms;
      for (;;) {
        const e = events.find((x) => x.type === type && !taken.has(x));
        if (e) {
          taken.add(e);
          return e;
        }
        if (performance.now() > end) throw new Error(`no ${type} within ${ms} ms; got ${events.map((x) => x.type).join(', ')}`);
        await sleep(5);
      }
    },
  };
}

/** `ms` of a 24 kHz PCM16 tone, base64. */
function audio(ms: number): string {
  const n = Math.round((24000 * ms) / 1000);
  const pcm = new Int16Array(n);
  for (let i = 0; i < n; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 220 * i) / 24000));
  return Buffer.from(pcm.buffer).toString('base64');
}

const SESSION = { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'whisper-1' }, turn_detection: null } } };

t.test('parseRealtimeProfile reads names and overrides, and refuses the rest', async (t) => {
  t.same(parseRealtimeProfile('local-stream'), LOCAL_STREAM_STT);
  t.same(parseRealtimeProfile('local-stream,finalMs=80'), { partialEveryMs: 100, finalMs: 80 });
  t.same(parseRealtimeProfile('partialEveryMs=50,finalMs=0'), { partialEveryMs: 50, finalMs: 0 });
  t.throws(() => parseRealtimeProfile('groq'), /known: instant, local-stream/);
  t.throws(() => parseRealtimeProfile('sttMs=3'), /unknown realtime profile key/);
  t.throws(() => parseRealtimeProfile('finalMs=-1'), /out of range/);
});

t.test('the stand-in also takes the bench latency profiles: sttMs is the final delay', async (t) => {
  const s = await standin(t, { profile: { sttMs: 40, ttftMs: 0, tokensPerSec: Infinity, ttsFirstMs: 0 } });
  const c = await connect(t, s.url);
  c.send({ type: 'input_audio_buffer.append', audio: audio(200) });
  const t0 = performance.now();
  c.send({ type: 'input_audio_buffer.commit' });
  await c.next('conversation.item.input_audio_transcription.completed');
  t.ok(performance.now() - t0 >= 38, 'the final waits sttMs');
  s.setProfile('groq'); // a bench profile name: its sttMs (150)
  t.throws(() => s.setProfile('nonsense'), /unknown realtime profile/);
});

t.test('a session starts with session.created, and session.update is answered with session.updated', async (t) => {
  const s = await standin(t);
  const c = await connect(t, s.url + '?intent=transcription');
  const created = await c.next('session.created');
  t.match(created, { event_id: String, session: { type: 'transcription', object: 'realtime.transcription_session', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } });
  c.send({ type: 'session.update', session: SESSION });
  const updated = await c.next('session.updated');
  t.match(updated, { session: { audio: { input: { turn_detection: null, transcription: { model: 'whisper-1' } } } } });
  t.same(s.sessions[0]!.config, SESSION);
  t.equal(s.sessions[0]!.url, '/v1/realtime?intent=transcription');
});

t.test('bad events get error events like OpenAI sends, and the socket stays open', async (t) => {
  const s = await standin(t);
  const c = await connect(t, s.url);
  c.send({ type: 'response.create', event_id: 'e1' });
  t.match((await c.next('error')).error, { type: 'invalid_request_error', code: 'invalid_value', param: 'type', event_id: 'e1' });
  c.send({ type: 'input_audio_buffer.append', audio: 'not base64!' });
  t.match((await c.next('error')).error, { code: 'invalid_value', param: 'audio' });
  c.ws.send('{nope');
  t.match((await c.next('error')).error, { code: 'invalid_json' });
  c.send({ type: 'session.update', session: { type: 'realtime' } });
  t.match((await c.next('error')).error, { param: 'session.type' });
  c.send({ type: 'session.update', session: { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: 16000 } } } } });
  t.match((await c.next('error')).error, { param: 'session.audio.input.format' });
  c.send({ type: 'input_audio_buffer.append', audio: audio(50) });
  c.send({ type: 'input_audio_buffer.commit', event_id: 'c1' });
  t.match((await c.next('error')).error, { code: 'input_audio_buffer_commit_empty', event_id: 'c1' });
  t.equal(c.ws.readyState, WebSocket.OPEN);
  t.ok(c.events.every((e) => typeof e.event_id === 'string' && e.event_id !== ''), 'every server event has an event_id');
});

t.test('deltas stream while audio is appended; a commit is answered with committed, then completed finalMs later', async (t) => {
  const s = await standin(t, { profile: 'local-stream', transcript: 'one two three four five' });
  const c = await connect(t, s.url);
  c.send({ type: 'session.update', session: SESSION });
  for (let i = 0; i < 30; i++) {
    c.send({ type: 'input_audio_buffer.append', audio: audio(40) }); // 1.2 s at 2× real time
    await sleep(20);
  }
  const early = c.events.filter((e) => e.type === 'conversation.item.input_audio_transcription.delta');
  t.ok(early.length >= 2, `${early.length} deltas before the commit`);
  const t0 = performance.now();
  c.send({ type: 'input_audio_buffer.commit', event_id: 'c1' });
  const committed = await c.next('input_audio_buffer.committed');
  t.match(committed, { item_id: String, previous_item_id: null });
  const done = await c.next('conversation.item.input_audio_transcription.completed');
  const ms = performance.now() - t0;
  t.match(done, { item_id: committed.item_id, content_index: 0, transcript: 'one two three four five', usage: { type: 'duration' } });
  t.ok(ms >= LOCAL_STREAM_STT.finalMs - 2, `completed ${ms.toFixed(1)} ms after the commit`);
  const deltas = c.events.filter((e) => e.type === 'conversation.item.input_audio_transcription.delta');
  t.ok(deltas.every((d) => d.item_id === committed.item_id), 'the deltas name the committed item');
  t.equal(deltas.map((d) => d.delta).join(''), 'one two three four five', 'the deltas add up to the transcript');
  const item = s.sessions[0]!.items[0]!;
  t.ok(Math.abs(item.audioMs - 1200) < 1, `1200 ms counted (${item.audioMs})`);
  t.ok(item.completedAt! - item.committedAt >= LOCAL_STREAM_STT.finalMs - 1);

  // The next piece is a new item, chained to the first; clear drops audio.
  c.send({ type: 'input_audio_buffer.append', audio: audio(500) });
  c.send({ type: 'input_audio_buffer.clear' });
  await c.next('input_audio_buffer.cleared');
  c.send({ type: 'input_audio_buffer.append', audio: audio(200) });
  c.send({ type: 'input_audio_buffer.commit' });
  const second = await c.next('input_audio_buffer.committed');
  t.equal(second.previous_item_id, committed.item_id);
  t.not(second.item_id, committed.item_id);
  await c.next('conversation.item.input_audio_transcription.completed');
  t.ok(Math.abs(s.sessions[0]!.items[1]!.audioMs - 200) < 1, 'only the audio after the clear');
});

t.test('the transcript can depend on the item and its audio, and be changed live', async (t) => {
  const s = await standin(t, { transcript: ({ itemIndex, audioMs }) => `item ${itemIndex}: ${Math.round(audioMs)} ms` });
  const c = await connect(t, s.url);
  c.send({ type: 'input_audio_buffer.append', audio: audio(300) });
  c.send({ type: 'input_audio_buffer.commit' });
  t.equal((await c.next('conversation.item.input_audio_transcription.completed')).transcript, 'item 0: 300 ms');
  s.setTranscript('fixed');
  c.send({ type: 'input_audio_buffer.append', audio: audio(300) });
  c.send({ type: 'input_audio_buffer.commit' });
  t.equal((await c.next('conversation.item.input_audio_transcription.completed')).transcript, 'fixed');
});

t.test('a key, when set, is checked at the upgrade; other paths are refused', async (t) => {
  const s = await standin(t, { apiKey: 'k1' });
  const status = (url: string, headers: Record<string, string>): Promise<number> =>
    new Promise((resolve) => {
      const ws = new WebSocket(url, { headers });
      ws.on('unexpected-response', (req, res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      ws.on('error', () => undefined); // the destroyed handshake reports here; the status is what counts
      ws.on('open', () => {
        resolve(101);
        ws.terminate();
      });
    });
  t.equal(await status(s.url, { authorization: 'Bearer nope' }), 401);
  t.equal(await status(s.url, {}), 401);
  t.equal(await status(s.url.replace('/v1/realtime', '/v1/other'), { authorization: 'Bearer k1' }), 404);
  t.equal(await status(s.url, { authorization: 'Bearer k1' }), 101);
  t.equal(s.refused, 3);
});

t.test('injected failures: dropped socket, error on commit, hang', async (t) => {
  const s = await standin(t, { fail: 'drop-after-append' });
  const a = await connect(t, s.url);
  const closed = new Promise<void>((r) => a.ws.once('close', () => r()));
  a.send({ type: 'input_audio_buffer.append', audio: audio(200) });
  await closed;
  t.pass('the socket was dropped at the first append');

  s.setFail('error-on-commit');
  const b = await connect(t, s.url);
  b.send({ type: 'input_audio_buffer.append', audio: audio(200) });
  b.send({ type: 'input_audio_buffer.commit', event_id: 'c9' });
  t.match((await b.next('error')).error, { type: 'server_error', event_id: 'c9' });

  s.setFail('hang');
  b.send({ type: 'input_audio_buffer.append', audio: audio(200) });
  b.send({ type: 'input_audio_buffer.commit' });
  await sleep(100);
  t.notOk(b.events.some((e) => e.type === 'input_audio_buffer.committed'), 'a hung commit gets nothing');
  s.setFail(null);
  b.send({ type: 'input_audio_buffer.commit' });
  t.ok(await b.next('conversation.item.input_audio_transcription.completed'), 'and recovers');
});

t.test('close() is idempotent, ends open sockets and leaves no timers', async (t) => {
  const s = await startRealtimeStandin({ profile: { partialEveryMs: 50, finalMs: 10_000 } });
  const c = await connect(t, s.url);
  const closed = new Promise<void>((r) => c.ws.once('close', () => r()));
  c.send({ type: 'input_audio_buffer.append', audio: audio(400) });
  c.send({ type: 'input_audio_buffer.commit' }); // its 10 s completion timer must not hold the process
  await c.next('input_audio_buffer.committed');
  await Promise.all([s.close(), s.close()]);
  await closed;
  await s.close();
  t.pass('closed');
});
