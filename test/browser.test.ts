// Browser end-to-end: headless Debian Chromium opens the served page, which calls the zero-config server (the
// echo agent) over real WebRTC with a fake microphone looping test/fixtures/hello-48k.wav (1 s silence, 1.7 s
// of speech, 3 s silence). Everything measured here is measured by the page itself (window.eva).
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './helpers/chromium.js';
import { spawnEva } from './helpers/server.js';

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
  error: { code: string; message: string } | null;
  events: PageEvent[];
  stats: PageStats | null;
  resources: string[];
  connect(): Promise<void>;
  hangup(): void;
  sendText(text: string): boolean;
}
declare const window: { eva: PageHook };

/**
 * Speech level for the page's linear RMS over 21 ms windows (−26 dBFS): the fixture's loudest windows read
 * ~0.3 in the page, both from the mic (after Chrome's AGC) and from EVA's echo; Opus silence reads 0.
 */
const SPEECH_LEVEL = 0.05;
const FAKE_MIC = fileURLToPath(new URL('./fixtures/hello-48k.wav', import.meta.url));
/** The fixture's speech, for "the echo is about as long as what was said". */
const UTTERANCE_MS = 1720;

/** Each mic talkspurt that ended, paired with the first remote talkspurt that started after it. */
function echoLatencies(spurts: Talkspurt[]): { micEnd: number; remoteStart: number; ms: number }[] {
  const pairs = [];
  const mics = spurts.filter((s) => s.source === 'mic' && s.end !== null);
  for (const [i, mic] of mics.entries()) {
    const nextMic = mics[i + 1]?.start ?? Infinity;
    const reply = spurts.find((s) => s.source === 'remote' && s.start > mic.end! && s.start < nextMic);
    if (reply) pairs.push({ micEnd: mic.end!, remoteStart: reply.start, ms: reply.start - mic.end! });
  }
  return pairs;
}

t.test('the page calls EVA, hears its echo at speech level, and logs the call events', async (t) => {
  const eva = await spawnEva(t);
  const browser = await launchChromium(t, { fakeAudio: FAKE_MIC });
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
  await page.waitForFunction(() => window.eva.connection !== 'connecting', null, { timeout: 15000 });
  const afterConnect = await page.evaluate(() => ({ connection: window.eva.connection, error: window.eva.error, stats: window.eva.stats }));
  t.equal(afterConnect.connection, 'connected', `the call connects${afterConnect.error ? ` (error: ${afterConnect.error.message})` : ''}`);
  const connectMs = afterConnect.stats?.connectMs;
  t.type(connectMs, 'number', 'the page measured offer → connected');
  t.comment(`connect (offer sent → pc connected), measured in the page: ${connectMs?.toFixed(0)} ms`);
  t.same(
    (await page.evaluate(() => window.eva.resources)).sort(),
    ['audio context', 'audio element', 'level poll', 'microphone', 'peer connection', 'signaling socket'],
    'a live call holds the mic, the peer connection, the socket, the audio context and element',
  );

  // The fake mic says the utterance 1 s after getUserMedia; EVA echoes it after its end-of-turn wait.
  await page
    .waitForFunction((level) => (window.eva.stats?.remotePeak ?? 0) >= level, SPEECH_LEVEL, { timeout: 10000 })
    .catch(() => undefined);
  let stats = (await page.evaluate(() => window.eva.stats))!;
  t.ok(stats.remotePeak >= SPEECH_LEVEL, `EVA's audio reaches speech level in the page within 10 s (level ${stats.remotePeak.toFixed(3)})`);

  // Let the echo play out, then look at the talkspurts.
  await page
    .waitForFunction(() => (window.eva.stats?.talkspurts ?? []).some((s) => s.source === 'remote' && s.end !== null), null, { timeout: 8000 })
    .catch(() => undefined);
  stats = (await page.evaluate(() => window.eva.stats))!;
  t.comment(`levels (linear RMS of 21 ms windows): mic peak ${stats.micPeak.toFixed(3)}, remote peak ${stats.remotePeak.toFixed(3)}`);
  const remote = stats.talkspurts.filter((s) => s.source === 'remote' && s.end !== null);
  t.ok(remote.length >= 1, 'a whole remote talkspurt was heard');
  const echoedMs = remote.reduce((sum, s) => sum + (s.end! - s.start), 0);
  t.ok(echoedMs >= 0.5 * UTTERANCE_MS, `the echo lasts about as long as the utterance (${echoedMs.toFixed(0)} ms of ${UTTERANCE_MS} ms)`);
  t.ok(stats.remoteAudibleMs >= 0.5 * UTTERANCE_MS, `remote audio audible for ${stats.remoteAudibleMs.toFixed(0)} ms in all`);
  const latencies = echoLatencies(stats.talkspurts);
  t.ok(latencies.length >= 1, 'a local talkspurt is followed by EVA\'s audio');
  const firstAudio = (await page.evaluate(() => window.eva.events))
    .filter((e) => e.type === 'metrics')
    .map((e) => e.msg?.first_audio_ms);
  t.comment(
    `echo latency (local speech end → remote audio start), measured in the page: ${latencies.map((l) => `${l.ms.toFixed(0)} ms`).join(', ')}` +
      ` (includes the server's 480 ms end-of-turn wait); server first_audio_ms: ${firstAudio.join(', ') || 'none'}`,
  );

  // A typed turn: the echo agent answers in text.
  t.ok(await page.evaluate(() => window.eva.sendText('typed hello')), 'sendText sends on the open call');
  await page
    .waitForFunction(() => window.eva.events.some((e) => e.type === 'reply_end'), null, { timeout: 5000 })
    .catch(() => undefined);
  t.match(await page.locator('#transcript').innerText(), /typed hello/, 'the typed turn shows in the transcript');

  const events = await page.evaluate(() => window.eva.events);
  const received = new Set(events.filter((e) => e.dir === 'in').map((e) => e.type));
  for (const type of ['answer', 'ready', 'state', 'vad', 'reply_end']) t.ok(received.has(type), `the event log has ${type}`);
  t.ok(events.some((e) => e.dir === 'out' && e.type === 'offer'), 'the event log has the offer sent');
  t.ok(events.length <= 200, 'the event log is bounded');
  const logItems = await page.locator('#log li').count();
  t.ok(logItems > 0 && logItems <= 200, `the page shows the event log (${logItems} entries)`);
  t.equal(await page.evaluate(() => window.eva.error), null, 'no error was shown');

  // Hang-up frees the call on both ends.
  await page.evaluate(() => window.eva.hangup());
  t.equal(await page.evaluate(() => window.eva.connection), 'closed', 'the page is back to no call');
  await page.waitForFunction(() => window.eva.resources.length === 0, null, { timeout: 2000 }).catch(() => undefined);
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
});

t.test('when the server goes away mid-call, the page ends the call and says why', async (t) => {
  const eva = await spawnEva(t);
  const { page } = await launchChromium(t, { fakeAudio: FAKE_MIC });
  await page.goto(eva.url);
  await page.evaluate(() => window.eva.connect());
  await page.waitForFunction(() => window.eva.connection === 'connected', null, { timeout: 15000 });
  eva.child.kill('SIGKILL');
  await page.waitForFunction(() => window.eva.connection === 'failed', null, { timeout: 5000 }).catch(() => undefined);
  const after = await page.evaluate(() => ({ connection: window.eva.connection, error: window.eva.error, state: window.eva.state }));
  t.equal(after.connection, 'failed', 'the call is over');
  t.match(after.error?.message ?? '', /signaling socket closed/, 'the error says the signaling socket closed');
  t.equal(after.state, null, 'no EVA state is shown for a call that ended');
  t.ok(await page.locator('#error').isVisible(), 'the error is shown on the page');
  t.equal(await page.locator('#connect').innerText(), 'Connect', 'the button offers a new call');
  await page.waitForFunction(() => window.eva.resources.length === 0, null, { timeout: 2000 }).catch(() => undefined);
  t.same(await page.evaluate(() => window.eva.resources), [], 'the page released the microphone, peer connection, socket and audio');
});
