// Browser end-to-end: headless Debian Chromium opens the served page, which calls EVA (dist/server/main.js) over
// real WebRTC with a fake microphone that loops a fixture from getUserMedia on (1 s of silence, the speech, 3 s of
// silence, again and again). Everything about audio is measured by the page itself (window.eva).
//   1. zero-config EVA (no STT, `echo` LLM, eSpeak): the voice turn is echoed back, a `no_stt` notice shows and
//      the call stays up; a typed turn gets a spoken answer.
//   2. the server dies mid-call: the page ends the call and says why.
//   3. STT and LLM on the Groq stand-in (bench/standins/groq.ts, the real wire protocol on 127.0.0.1): a spoken
//      question gets a transcript, a streamed reply and a spoken answer.
import t, { type Test } from 'tap';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { start as startGroq } from '../bench/standins/groq.js';
import { launchChromium } from './helpers/chromium.js';
import { spawnEva, type SpawnedEva } from './helpers/server.js';

// Only the type of the page's hook: the page is bundled separately and type-checked with the DOM lib.
interface Talkspurt {
  source: 'mic' | 'remote';
  start: number;
  end: number | null;
  peak: number;
}
interface PageStats {
  micPeak: number;
  remoteLevel: number;
  remotePeak: number;
  remoteAudibleMs: number;
  lastRemoteAudibleAt: number | null;
  connectMs: number | null;
  talkspurts: Talkspurt[];
}
interface PageEvent {
  at: number;
  dir: 'in' | 'out' | 'local';
  type: string;
  text: string;
  msg?: Record<string, unknown>;
}
interface PageHook {
  connection: string;
  state: string | null;
  providers: { stt: string; llm: string; tts: string } | null;
  error: { code: string; message: string } | null;
  notices: { at: number; code: string; message: string }[];
  events: PageEvent[];
  stats: PageStats | null;
  resources: string[];
  connect(): Promise<void>;
  hangup(): void;
  sendText(text: string): boolean;
}
declare const window: { eva: PageHook };

/**
 * Speech level for the page's linear RMS over 21 ms windows (−26 dBFS): the fixtures' loudest windows read
 * ~0.3 in the page, both from the mic (after Chrome's AGC) and from EVA's voice; Opus silence reads 0.
 */
const SPEECH_LEVEL = 0.05;
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
/** "Hello EVA, how are you today?": 1.72 s of speech, looped every 5.72 s. */
const HELLO_MIC = fixture('hello-48k.wav');
const HELLO_MS = 1720;
/** "What is the capital of France?": 1.62 s of speech, looped every 5.62 s. */
const QUESTION_MIC = fixture('question-48k.wav');
const QUESTION = 'What is the capital of France?';
const ANSWER = 'Paris is the capital of France.';
/** Nothing listens here: auto-detection must not find an Ollama that happens to run on this machine. */
const NO_OLLAMA = 'http://127.0.0.1:1';

/** Each mic talkspurt that ended, paired with the first remote talkspurt that started after it (before the next). */
function replyPairs(spurts: Talkspurt[]): { micEnd: number; remote: Talkspurt; ms: number }[] {
  const pairs = [];
  const mics = spurts.filter((s) => s.source === 'mic' && s.end !== null);
  for (const [i, mic] of mics.entries()) {
    const nextMic = mics[i + 1]?.start ?? Infinity;
    const remote = spurts.find((s) => s.source === 'remote' && s.start > mic.end! && s.start < nextMic);
    if (remote) pairs.push({ micEnd: mic.end!, remote, ms: remote.start - mic.end! });
  }
  return pairs;
}

/** Waits for a condition in the page; false (not a throw) when it does not come, so the test can say what failed. */
function until<A>(page: Page, fn: (arg: A) => unknown, arg: A, timeout: number): Promise<boolean> {
  return page.waitForFunction(fn as (arg: unknown) => unknown, arg, { timeout }).then(
    () => true,
    () => false,
  );
}

function stageLine(m: Record<string, unknown> | undefined): string {
  if (!m) return 'none';
  return Object.entries(m)
    .filter(([k, v]) => k.endsWith('_ms') && typeof v === 'number')
    .map(([k, v]) => `${k.replace(/_ms$/, '')} ${Math.round(v as number)}`)
    .join(', ') + ' ms';
}

/** Serves the page from a fresh EVA, opens it in Chromium with the fake mic and connects; checks it connected. */
async function openCall(
  t: Test,
  opts: { fakeAudio: string; env: Record<string, string> },
): Promise<{ eva: SpawnedEva; page: Page; connectMs: number | null | undefined }> {
  const eva = await spawnEva(t, { env: opts.env });
  const browser = await launchChromium(t, { fakeAudio: opts.fakeAudio });
  const { page } = browser;
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`page console:\n${browser.logs.join('\n') || '(empty)'}`);
    t.comment(`server stderr:\n${eva.stderr().slice(-4000) || '(empty)'}`);
  });
  await page.goto(eva.url);
  t.equal(await page.title(), 'EVA — real-time voice', 'the server serves the page');
  t.equal(await page.evaluate(() => window.eva.connection), 'idle');
  await page.evaluate(() => window.eva.connect());
  await until(page, () => window.eva.connection !== 'connecting', null, 15000);
  const after = await page.evaluate(() => ({ connection: window.eva.connection, error: window.eva.error, stats: window.eva.stats }));
  t.equal(after.connection, 'connected', `the call connects${after.error ? ` (error: ${after.error.message})` : ''}`);
  const connectMs = after.stats?.connectMs;
  t.type(connectMs, 'number', 'the page measured offer → connected');
  t.comment(`connect (offer sent → pc connected), measured in the page: ${connectMs?.toFixed(0)} ms`);
  return { eva, page, connectMs };
}

/** Hangs up and checks both ends let go of the call. */
async function hangUp(t: Test, page: Page, eva: SpawnedEva): Promise<void> {
  await page.evaluate(() => window.eva.hangup());
  t.equal(await page.evaluate(() => window.eva.connection), 'closed', 'the page is back to no call');
  await until(page, () => window.eva.resources.length === 0, null, 2000);
  t.same(await page.evaluate(() => window.eva.resources), [], 'the page released the microphone, peer connection, socket and audio');
  const deadline = Date.now() + 3000;
  let calls: unknown;
  while (Date.now() < deadline) {
    const health = (await fetch(`${eva.url}/health`).then((r) => r.json())) as { calls?: unknown };
    calls = health.calls;
    if (calls === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(calls, 0, 'the server ended the call');
}

t.test('zero-config: the voice turn is echoed, no STT is a notice not an error, a typed turn is answered aloud', async (t) => {
  const { eva, page } = await openCall(t, { fakeAudio: HELLO_MIC, env: { OLLAMA_HOST: NO_OLLAMA } });
  t.same(
    (await page.evaluate(() => window.eva.resources)).sort(),
    ['audio context', 'audio element', 'level poll', 'microphone', 'peer connection', 'signaling socket'],
    'a live call holds the mic, the peer connection, the socket, the audio context and element',
  );
  t.same(await page.evaluate(() => window.eva.providers), { stt: 'none', llm: 'echo', tts: 'espeak' }, 'ready names the zero-config providers');

  // The fake mic says the utterance 1 s after getUserMedia; EVA echoes it after its end-of-turn wait.
  await until(page, (level) => (window.eva.stats?.remotePeak ?? 0) >= level, SPEECH_LEVEL, 10000);
  let stats = (await page.evaluate(() => window.eva.stats))!;
  t.ok(stats.remotePeak >= SPEECH_LEVEL, `EVA's audio reaches speech level in the page within 10 s (level ${stats.remotePeak.toFixed(3)})`);

  // The first voice turn brings one `no_stt` error event: a notice in the page, the call goes on.
  await until(page, () => window.eva.notices.some((n) => n.code === 'no_stt'), null, 3000);
  const after = await page.evaluate(() => ({ connection: window.eva.connection, error: window.eva.error, notices: window.eva.notices }));
  t.match(after.notices, [{ code: 'no_stt', message: /speech-to-text/ }], 'no_stt is a notice');
  t.equal(after.error, null, 'no_stt is not an error');
  t.equal(after.connection, 'connected', 'the call stays connected');
  t.ok(await page.locator('#notices').isVisible(), 'the notice is shown on the page');
  t.match(await page.locator('#notices').innerText(), /speech-to-text/, 'the notice says why the voice turn was echoed');
  t.notOk(await page.locator('#error').isVisible(), 'the error box stays hidden');
  const logged = (await page.evaluate(() => window.eva.events)).find((e) => e.type === 'error');
  t.match(logged, { dir: 'in', msg: { code: 'no_stt' }, text: /^notice error no_stt/ }, 'the event log has the notice');

  // Let the echo play out (the remote talkspurt ends), then look at the talkspurts.
  await until(
    page,
    () => {
      const remote = (window.eva.stats?.talkspurts ?? []).filter((s) => s.source === 'remote');
      return remote.length > 0 && remote.at(-1)!.end !== null;
    },
    null,
    8000,
  );
  stats = (await page.evaluate(() => window.eva.stats))!;
  t.comment(`levels (linear RMS of 21 ms windows): mic peak ${stats.micPeak.toFixed(3)}, remote peak ${stats.remotePeak.toFixed(3)}`);
  const remote = stats.talkspurts.filter((s) => s.source === 'remote' && s.end !== null);
  t.ok(remote.length >= 1, 'a whole remote talkspurt was heard');
  const echoedMs = remote.reduce((sum, s) => sum + (s.end! - s.start), 0);
  t.ok(echoedMs >= 0.5 * HELLO_MS, `the echo lasts about as long as the utterance (${echoedMs.toFixed(0)} ms of ${HELLO_MS} ms)`);
  const pairs = replyPairs(stats.talkspurts);
  t.ok(pairs.length >= 1, "a local talkspurt is followed by EVA's audio");
  const echoMetrics = (await page.evaluate(() => window.eva.events)).filter((e) => e.type === 'metrics').map((e) => e.msg);
  t.comment(
    `echo latency (local speech end → remote audio start), measured in the page: ${pairs.map((p) => `${p.ms.toFixed(0)} ms`).join(', ')}` +
      ` (includes the server's 480 ms end-of-turn wait); server metrics: ${echoMetrics.map(stageLine).join('; ') || 'none'}`,
  );

  // A typed turn, sent in the quiet after the echo (the mic speaks again ~1.7 s later): the echo LLM answers it
  // in text and eSpeak says it. Audio starting within 1.5 s of the send is the answer: the next echo is ≥ 2 s off.
  const sentAt = await page.evaluate(() => (window.eva.sendText('typed hello') ? performance.now() : null));
  t.type(sentAt, 'number', 'sendText sends on the open call');
  await until(page, () => window.eva.events.some((e) => e.type === 'reply_end' && e.msg?.text === 'You said: typed hello'), null, 5000);
  await until(
    page,
    ([at, level]) => (window.eva.stats?.talkspurts ?? []).some((s) => s.source === 'remote' && s.start > at && (s.peak >= level || s.end !== null)),
    [sentAt ?? 0, SPEECH_LEVEL] as const,
    3000,
  );
  const text = await page.locator('#transcript').innerText();
  t.match(text, /typed hello/, 'the typed turn shows in the transcript');
  t.match(text, /You said: typed hello/, "EVA's reply text shows in the transcript");
  const events = await page.evaluate(() => window.eva.events);
  const replyEnd = events.find((e) => e.type === 'reply_end' && e.at > sentAt!);
  t.match(replyEnd?.msg, { text: 'You said: typed hello' }, 'reply_end carries the echo answer');
  const spoken = (await page.evaluate(() => window.eva.stats))!.talkspurts.find((s) => s.source === 'remote' && s.start > sentAt!);
  t.ok(spoken && spoken.start - sentAt! < 1500, `EVA starts speaking the answer ${spoken ? `${(spoken.start - sentAt!).toFixed(0)} ms` : 'never'} after the send`);
  t.ok(spoken && spoken.peak >= SPEECH_LEVEL, `the spoken answer reaches speech level (${spoken?.peak.toFixed(3) ?? '-'})`);
  const typedMetrics = events.find((e) => e.type === 'metrics' && e.at > sentAt! && typeof e.msg?.first_audio_ms === 'number');
  t.ok(typedMetrics, 'the typed turn has metrics with first_audio_ms');
  t.comment(`typed turn: send → remote audio start in the page ${spoken ? (spoken.start - sentAt!).toFixed(0) : '-'} ms; server metrics: ${stageLine(typedMetrics?.msg)}`);

  const received = new Set(events.filter((e) => e.dir === 'in').map((e) => e.type));
  for (const type of ['answer', 'ready', 'state', 'vad', 'transcript', 'reply', 'reply_end', 'metrics']) t.ok(received.has(type), `the event log has ${type}`);
  t.ok(events.some((e) => e.dir === 'out' && e.type === 'offer'), 'the event log has the offer sent');
  t.ok(events.length <= 200, 'the event log is bounded');
  const logItems = await page.locator('#log li').count();
  t.ok(logItems > 0 && logItems <= 200, `the page shows the event log (${logItems} entries)`);
  t.ok((await page.locator('#latency > li').count()) >= 1, 'the page shows per-turn latency');
  const final = await page.evaluate(() => ({ connection: window.eva.connection, error: window.eva.error }));
  t.same(final, { connection: 'connected', error: null }, 'the call is still up, with no error');

  await hangUp(t, page, eva);
});

t.test('when the server goes away mid-call, the page ends the call and says why', async (t) => {
  const eva = await spawnEva(t, { env: { OLLAMA_HOST: NO_OLLAMA } });
  const { page } = await launchChromium(t, { fakeAudio: HELLO_MIC });
  await page.goto(eva.url);
  await page.evaluate(() => window.eva.connect());
  await page.waitForFunction(() => window.eva.connection === 'connected', null, { timeout: 15000 });
  eva.child.kill('SIGKILL');
  await until(page, () => window.eva.connection === 'failed', null, 5000);
  const after = await page.evaluate(() => ({ connection: window.eva.connection, error: window.eva.error, state: window.eva.state }));
  t.equal(after.connection, 'failed', 'the call is over');
  t.match(after.error?.message ?? '', /signaling socket closed/, 'the error says the signaling socket closed');
  t.equal(after.state, null, 'no EVA state is shown for a call that ended');
  t.ok(await page.locator('#error').isVisible(), 'the error is shown on the page');
  t.equal(await page.locator('#connect').innerText(), 'Connect', 'the button offers a new call');
  await until(page, () => window.eva.resources.length === 0, null, 2000);
  t.same(await page.evaluate(() => window.eva.resources), [], 'the page released the microphone, peer connection, socket and audio');
});

t.test('a spoken question gets a spoken answer (Groq stand-in for STT and LLM, eSpeak for TTS)', async (t) => {
  const groq = await startGroq({ profile: 'groq', transcript: QUESTION, reply: () => ANSWER });
  t.teardown(() => groq.close());
  const { eva, page } = await openCall(t, { fakeAudio: QUESTION_MIC, env: { GROQ_API_KEY: 'test', GROQ_BASE_URL: groq.url } });
  t.same(await page.evaluate(() => window.eva.providers), { stt: 'groq', llm: 'groq', tts: 'espeak' }, 'ready names Groq for STT and LLM');

  // The question ends ~2.6 s after getUserMedia and again every 5.6 s: everything below holds for its first
  // turn, whichever loop the waits happen to end in.
  await until(page, (answer) => window.eva.events.some((e) => e.type === 'reply_end' && e.msg?.text === answer), ANSWER, 15000);
  await until(page, () => window.eva.events.some((e) => e.type === 'metrics' && typeof e.msg?.first_audio_ms === 'number'), null, 5000);
  await until(
    page,
    (level) => {
      const spurts = window.eva.stats?.talkspurts ?? [];
      const mic = spurts.find((s) => s.source === 'mic' && s.end !== null);
      return !!mic && spurts.some((s) => s.source === 'remote' && s.start > mic.end! && s.peak >= level);
    },
    SPEECH_LEVEL,
    8000,
  );

  const transcript = page.locator('#transcript');
  t.match(await transcript.locator('li.user .text').first().innerText(), QUESTION, 'the page shows the transcript of the question');
  t.match(await transcript.locator('li.eva .text').first().innerText(), ANSWER, "the page shows EVA's reply text");
  const events = await page.evaluate(() => window.eva.events);
  const firstTurn = events.find((e) => e.type === 'transcript')?.msg?.turn;
  t.match(events.find((e) => e.type === 'transcript')?.msg, { text: QUESTION, final: true }, 'a final transcript event');
  const deltas = events.filter((e) => e.type === 'reply' && e.msg?.turn === firstTurn);
  t.ok(deltas.length > 1, `the reply streamed in ${deltas.length} deltas`);

  const stats = (await page.evaluate(() => window.eva.stats))!;
  const pairs = replyPairs(stats.talkspurts);
  const heard = pairs.find((p) => p.remote.peak >= SPEECH_LEVEL);
  t.ok(heard, `EVA's spoken answer reaches speech level after the question ends (remote peak ${stats.remotePeak.toFixed(3)})`);

  const metrics = events.filter((e) => e.type === 'metrics').map((e) => e.msg!);
  const first = metrics.find((m) => typeof m.first_audio_ms === 'number');
  t.ok(first, 'a metrics event carries first_audio_ms');
  t.comment(
    `question end → answer audible, measured in the page: ${pairs.map((p) => `${p.ms.toFixed(0)} ms`).join(', ') || 'none'}` +
      ` (includes the 480 ms end-of-turn wait and the stand-in's groq profile)`,
  );
  t.comment(`server metrics: ${metrics.map((m) => `turn ${String(m.turn)}: ${stageLine(m)}`).join('; ')}`);

  const stt = groq.requests.filter((r) => r.path.endsWith('/audio/transcriptions'));
  const chat = groq.requests.filter((r) => r.path.endsWith('/chat/completions'));
  t.ok(stt.length >= 1, `the stand-in got a transcription request (${stt.length})`);
  t.match(stt[0]?.form, { file: { type: /wav/ } }, 'with the audio as a WAV upload');
  t.ok(chat.length >= 1, `the stand-in got a chat completion request (${chat.length})`);
  const messages = (chat[0]?.body as { messages?: { role: string; content: string }[] } | undefined)?.messages;
  t.match(messages?.at(-1), { role: 'user', content: QUESTION }, 'the chat request asks the transcribed question');

  const after = await page.evaluate(() => ({ connection: window.eva.connection, error: window.eva.error, notices: window.eva.notices }));
  t.same(after, { connection: 'connected', error: null, notices: [] }, 'the call is still up, with no error and no notice');
  t.ok((await page.locator('#latency .measured').count()) >= 1, 'the page shows its own latency measurement');
  t.comment(`page latency rows: ${(await page.locator('#latency').innerText()).replace(/\n/g, ' | ')}`);

  await hangUp(t, page, eva);
});
