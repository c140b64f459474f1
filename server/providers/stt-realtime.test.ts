// The Realtime transcription adapter against the stand-in on real loopback sockets: the session it asks for, audio
// up as it arrives, partials, one item per commit, segment mode, keys, and every way a socket can let it down.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { LOCAL_STREAM_STT, startRealtimeStandin, type RealtimeStandin, type RealtimeStandinOptions } from '../../bench/standins/realtime.js';
import { decodeWav } from '../../media/wav.js';
import { ProviderError, isAbort } from '../errors.js';
import { RealtimeStt, realtimeUrl, type RealtimeSttOptions } from './stt-realtime.js';
import { isStreamingStt, type SttStream } from './types.js';

const hello = decodeWav(readFileSync(new URL('../../test/fixtures/hello.wav', import.meta.url))).samples;
const helloMs = (hello.length / 16000) * 1000;
const silentLog = { debug() {}, info() {}, warn() {}, error() {}, child: () => silentLog };

async function standin(t: Test, opts: RealtimeStandinOptions = {}): Promise<RealtimeStandin> {
  const s = await startRealtimeStandin(opts);
  t.teardown(() => s.close());
  return s;
}

function adapter(t: Test, s: RealtimeStandin, opts: RealtimeSttOptions = {}): RealtimeStt {
  const stt = new RealtimeStt({ url: s.url, apiKey: 'test-key', model: 'standin-whisper', log: silentLog, ...opts });
  t.teardown(() => stt.close());
  return stt;
}

function open(t: Test, stt: RealtimeStt, signal = new AbortController().signal): SttStream {
  const stream = stt.openStream({ signal });
  t.teardown(() => stream.close());
  return stream;
}

/** Push `pcm` in 20 ms frames, `realtime`× faster than real time (Infinity: all at once). */
async function talk(stream: SttStream, pcm: Int16Array, speed = Infinity): Promise<void> {
  for (let off = 0; off < pcm.length; off += 320) {
    stream.push(pcm.subarray(off, off + 320));
    if (Number.isFinite(speed)) await sleep(20 / speed);
  }
}

async function rejection(t: Test, p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  t.fail('expected a rejection');
  return new Error('resolved');
}

async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(5);
  }
  return true;
}

t.test('realtimeUrl turns what a person writes into the transcription endpoint', async (t) => {
  t.equal(realtimeUrl('ws://127.0.0.1:8000/v1/realtime'), 'ws://127.0.0.1:8000/v1/realtime?intent=transcription');
  t.equal(realtimeUrl('http://127.0.0.1:8000'), 'ws://127.0.0.1:8000/v1/realtime?intent=transcription');
  t.equal(realtimeUrl('https://api.openai.com/v1'), 'wss://api.openai.com/v1/realtime?intent=transcription');
  t.equal(realtimeUrl('ws://h/v1/realtime?intent=x'), 'ws://h/v1/realtime?intent=x');
  t.throws(() => realtimeUrl('ftp://h'));
  t.throws(() => new RealtimeStt({ url: '' }), /EVA_STT_URL/);
});

t.test('the adapter is a streaming STT provider', async (t) => {
  const s = await standin(t);
  t.ok(isStreamingStt(adapter(t, s)));
  t.notOk(isStreamingStt({ name: 'x', transcribe: async () => ({ text: '' }), health: async () => ({ ok: true }) }));
});

t.test('a stream asks for a transcription session with 24 kHz PCM and manual commits, and sends the audio as base64 PCM16', async (t) => {
  const s = await standin(t);
  const stream = open(t, adapter(t, s, { language: 'en', prompt: 'EVA' }));
  await talk(stream, hello); // before the socket is even open: held, then sent in order
  const res = await stream.commit();
  t.equal(res.text, 'Hello, this is a test.');
  t.equal(res.language, 'en');
  const sess = s.sessions[0]!;
  t.match(sess.url, /intent=transcription/);
  t.equal(sess.headers.authorization, 'Bearer test-key');
  t.equal(sess.headers['openai-beta'], undefined, 'no beta header');
  t.same(sess.config, {
    type: 'transcription',
    audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'standin-whisper', language: 'en', prompt: 'EVA' }, turn_detection: null } },
  });
  const types = sess.events.filter((e) => e.dir === 'in').map((e) => e.type);
  t.equal(types[0], 'session.update', 'the session is configured before any audio');
  t.equal(types.at(-1), 'input_audio_buffer.commit');
  t.ok(types.slice(1, -1).every((x) => x === 'input_audio_buffer.append'), 'then appends only');
  t.ok(Math.abs(sess.items[0]!.audioMs - helloMs) < 5, `all the audio went up, resampled to 24 kHz (${sess.items[0]!.audioMs.toFixed(1)} of ${helloMs.toFixed(1)} ms)`);
  t.equal(stream.failed, false);
});

t.test('streaming audio yields growing partials, and a commit resolves with the final text within its deadline', async (t) => {
  const s = await standin(t, { profile: LOCAL_STREAM_STT });
  const stt = adapter(t, s, { commitTimeoutMs: 3000 });
  const stream = open(t, stt);
  const partials: string[] = [];
  stream.onPartial = (text) => partials.push(text);
  await talk(stream, hello, 2);
  t.ok(partials.length >= 2, `partials while talking: ${JSON.stringify(partials)}`);
  for (let i = 1; i < partials.length; i++) t.ok(partials[i]!.startsWith(partials[i - 1]!), 'each partial extends the one before');
  const t0 = performance.now();
  const res = await stream.commit();
  const ms = performance.now() - t0;
  t.equal(res.text, 'Hello, this is a test.');
  t.equal(partials.at(-1), 'Hello, this is a test.', 'the last partial is the whole text');
  t.comment(`commit → completed ${ms.toFixed(1)} ms (stand-in finalMs ${LOCAL_STREAM_STT.finalMs})`);
});

t.test('two commits in one stream give two items with their own text', async (t) => {
  const s = await standin(t, { transcript: ({ itemIndex, audioMs }) => `piece ${itemIndex} of ${Math.round(audioMs / 100) * 100} ms` });
  const stream = open(t, adapter(t, s));
  const half = hello.length >> 1;
  await talk(stream, hello.subarray(0, half));
  const first = stream.commit();
  await talk(stream, hello.subarray(half));
  const second = stream.commit();
  const [a, b] = await Promise.all([first, second]);
  t.match(a.text, /^piece 0 of/);
  t.match(b.text, /^piece 1 of/);
  t.equal(s.sessions.length, 1, 'one socket');
  t.equal(s.sessions[0]!.items.length, 2);
  t.not(s.sessions[0]!.items[0]!.itemId, s.sessions[0]!.items[1]!.itemId);
  // A third turn, after both answers, on the same socket.
  await talk(stream, hello);
  t.match((await stream.commit()).text, /^piece 2 of/);
});

t.test('clear() drops the piece so far: the next commit holds only what came after', async (t) => {
  const s = await standin(t);
  const stream = open(t, adapter(t, s));
  await talk(stream, hello);
  await until(() => (s.sessions[0]?.audioMs ?? 0) > 0); // some of it already went up
  stream.clear();
  await talk(stream, hello.subarray(0, 8000));
  await stream.commit();
  const item = s.sessions[0]!.items[0]!;
  t.ok(Math.abs(item.audioMs - 500) < 5, `only the last 500 ms were committed (${item.audioMs.toFixed(1)} ms)`);
  t.ok(s.sessions[0]!.events.some((e) => e.type === 'input_audio_buffer.clear'), 'the server was told to clear');
});

t.test('a commit of under 100 ms resolves empty without troubling the server', async (t) => {
  const s = await standin(t);
  const stream = open(t, adapter(t, s));
  stream.push(hello.subarray(0, 800));
  t.same(await stream.commit(), { text: '' });
  t.same(await stream.commit(), { text: '' }, 'nothing at all: empty too');
  await talk(stream, hello);
  t.equal((await stream.commit()).text, 'Hello, this is a test.', 'the stream still works');
  t.notOk(s.sessions[0]!.events.some((e) => e.type === 'error'), 'no error events');
});

t.test('audio held while the socket is not up is capped: the oldest is dropped', async (t) => {
  const s = await standin(t);
  const stream = open(t, adapter(t, s, { maxPendingMs: 500 }));
  stream.push(hello.subarray(0, 16000)); // 1 s in one go, before the socket opens
  await stream.commit();
  const item = s.sessions[0]!.items[0]!;
  t.ok(Math.abs(item.audioMs - 500) < 5, `500 ms kept of 1000 (${item.audioMs.toFixed(1)} ms)`);
});

t.test('segment transcribe() works and reuses one warm socket', async (t) => {
  const s = await standin(t, { transcript: ({ itemIndex }) => `segment ${itemIndex}` });
  const stt = adapter(t, s);
  const signal = new AbortController().signal;
  t.same(await stt.transcribe(hello, { signal }), { text: 'segment 0' });
  const t0 = performance.now();
  t.same(await stt.transcribe(hello, { signal, language: 'de' }), { text: 'segment 1', language: 'de' });
  t.comment(`warm segment transcribe ${(performance.now() - t0).toFixed(1)} ms`);
  t.equal(s.sessions.length, 1, 'one socket for both');
  const lang = s.sessions[0]!.config as { audio: { input: { transcription: { language?: string } } } };
  t.equal(lang.audio.input.transcription.language, 'de', 'a new language is a session.update');
  t.same(await stt.transcribe(hello.subarray(0, 100), { signal }), { text: '' }, 'too short: empty');
  stt.close();
  t.ok(await until(() => s.sessions[0]!.closed), 'close() closes the warm socket');
});

t.test('the Bearer key is checked: a wrong one makes health not ok and a commit fail, without retrying', async (t) => {
  const s = await standin(t, { apiKey: 'right' });
  t.same((await adapter(t, s, { apiKey: 'right' }).health()).ok, true);
  const wrong = adapter(t, s, { apiKey: 'wrong' });
  const h = await wrong.health();
  t.equal(h.ok, false);
  t.match(h.detail, /401.*Incorrect API key/);
  const err = await rejection(t, wrong.transcribe(hello, { signal: new AbortController().signal }));
  t.ok(err instanceof ProviderError, err.message);
  t.equal((err as ProviderError).code, 'provider_error');
  t.equal((err as ProviderError).retryable, false);
  t.equal(s.sessions.length, 1, 'only the good key got a session');
});

t.test('health is not ok when nothing listens, and a stream there fails as unavailable', async (t) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const stt = new RealtimeStt({ url: `ws://127.0.0.1:${port}/v1/realtime`, log: silentLog });
  t.teardown(() => stt.close());
  const h = await stt.health();
  t.equal(h.ok, false);
  t.match(h.detail, /refused/);
  const stream = open(t, stt);
  stream.push(hello);
  const err = await rejection(t, stream.commit());
  t.equal((err as ProviderError).code, 'provider_unavailable');
  t.equal((err as ProviderError).retryable, true);
  t.equal(stream.failed, true);
});

t.test('the socket dropping mid-turn rejects the commit, marks the stream failed, and a new stream works', async (t) => {
  const s = await standin(t, { fail: 'drop-after-append' });
  const stt = adapter(t, s);
  const stream = open(t, stt);
  await talk(stream, hello);
  const err = await rejection(t, stream.commit());
  t.ok(err instanceof ProviderError, err.message);
  t.equal((err as ProviderError).code, 'provider_unavailable');
  t.equal(stream.failed, true);
  stream.push(hello); // dropped, never throws
  t.equal((await rejection(t, stream.commit())).message, err.message, 'later commits reject at once');
  // Segment mode over the same fault, then both recover once the server does.
  const seg = await rejection(t, stt.transcribe(hello, { signal: new AbortController().signal }));
  t.ok(seg instanceof ProviderError);
  s.setFail(null);
  t.equal((await stt.transcribe(hello, { signal: new AbortController().signal })).text, 'Hello, this is a test.', 'transcribe opens a new socket');
  const again = open(t, stt);
  await talk(again, hello);
  t.equal((await again.commit()).text, 'Hello, this is a test.');
});

t.test('an error event answering the commit rejects that commit only; the stream goes on', async (t) => {
  const s = await standin(t, { fail: 'error-on-commit' });
  const stream = open(t, adapter(t, s));
  await talk(stream, hello);
  const err = await rejection(t, stream.commit());
  t.ok(err instanceof ProviderError);
  t.equal((err as ProviderError).code, 'provider_error');
  t.match(err.message, /injected/);
  t.equal(stream.failed, false);
  s.setFail(null);
  await talk(stream, hello);
  t.equal((await stream.commit()).text, 'Hello, this is a test.');
});

t.test('a failed transcription rejects the commit', async (t) => {
  const s = await standin(t, { fail: 'transcription-failed' });
  const stream = open(t, adapter(t, s));
  await talk(stream, hello);
  const err = await rejection(t, stream.commit());
  t.equal((err as ProviderError).code, 'provider_error');
  t.match(err.message, /transcription failed/);
});

t.test('a server that never answers: the commit rejects with provider_timeout after its deadline', async (t) => {
  const s = await standin(t, { fail: 'hang' });
  const stream = open(t, adapter(t, s, { commitTimeoutMs: 300 }));
  await talk(stream, hello);
  const t0 = performance.now();
  const err = await rejection(t, stream.commit());
  const ms = performance.now() - t0;
  t.equal((err as ProviderError).code, 'provider_timeout');
  t.equal((err as ProviderError).retryable, true);
  t.ok(ms >= 290, `not before the deadline (${ms.toFixed(0)} ms)`);
  t.comment(`timed out after ${ms.toFixed(0)} ms (deadline 300)`);
  t.equal(stream.failed, true, 'a hung stream is given up');
  t.ok(await until(() => s.sessions[0]!.closed), 'and its socket closed');
});

t.test('aborting the signal closes the socket and rejects the pending commit with the abort', async (t) => {
  const s = await standin(t, { fail: 'hang' });
  const stt = adapter(t, s, { commitTimeoutMs: 60_000 });
  const ac = new AbortController();
  const stream = open(t, stt, ac.signal);
  await talk(stream, hello);
  const pending = stream.commit();
  await until(() => s.sessions[0]?.events.some((e) => e.type === 'input_audio_buffer.commit') ?? false);
  ac.abort();
  const err = await rejection(t, pending);
  t.ok(isAbort(err), `an AbortError (${err.name})`);
  t.equal(stream.failed, true);
  t.ok(await until(() => s.sessions[0]!.closed), 'the server saw the socket close');
  stream.close(); // twice is harmless

  // A segment transcribe aborted mid-flight rejects with the abort too (its 60 s deadline timer is cleared by
  // close(): this file's process must exit by itself).
  const seg = new AbortController();
  const p = stt.transcribe(hello, { signal: seg.signal });
  setTimeout(() => seg.abort(), 20);
  t.ok(isAbort(await rejection(t, p)));
  stt.close();
  const before = new AbortController();
  before.abort();
  const late = stt.openStream({ signal: before.signal });
  t.equal(late.failed, true, 'a stream opened with an aborted signal is closed at once');
});

t.test('commit → completed latency over ten turns on one stream (printed, not asserted)', async (t) => {
  for (const [label, profile] of [
    ['instant', { partialEveryMs: 100, finalMs: 0 }],
    ['local-stream', LOCAL_STREAM_STT],
  ] as const) {
    const s = await standin(t, { profile });
    const stream = open(t, adapter(t, s));
    const ms: number[] = [];
    for (let i = 0; i < 10; i++) {
      await talk(stream, hello.subarray(0, 8000));
      const t0 = performance.now();
      const res = await stream.commit();
      ms.push(performance.now() - t0);
      t.equal(res.text, 'Hello, this is a test.');
    }
    ms.sort((a, b) => a - b);
    t.comment(`${label}: commit → completed p50 ${ms[5]!.toFixed(1)} ms, max ${ms[9]!.toFixed(1)} ms (server-side final delay ${profile.finalMs} ms)`);
  }
});
