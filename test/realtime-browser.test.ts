// Browser end-to-end for the OpenAI Realtime API over WebRTC: headless Debian Chromium runs a page bundled with
// OpenAI's own `@openai/agents-realtime` (test/pages/realtime-sdk.mjs), whose OpenAIRealtimeWebRTC transport is
// pointed at EVA's `/v1/realtime/calls` with an ephemeral `ek_` key minted by EVA's `/v1/realtime/client_secrets`.
// The page is served from another origin (a CORS preflight, `Location` exposed), its fake microphone loops a
// spoken question, and the page measures EVA's voice on the track. EVA runs in-process with its runtime: the real
// VAD and turn detector, groq-sdk against the Groq stand-in (STT + LLM on 127.0.0.1), eSpeak NG for the reply.
import t from 'tap';
import { build } from 'esbuild';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { start as startGroq } from '../bench/standins/groq.js';
import { launchChromium } from './helpers/chromium.js';
import { sleep, startEva } from './helpers/eva.js';

interface PageEvent {
  at: number;
  type: string;
  ev: Record<string, unknown>;
}
interface Level {
  at: number;
  rms: number;
}
interface PageState {
  state: string;
  error: string | null;
  events: PageEvent[];
  mic: Level[];
  remote: Level[];
  interrupted: number;
}
declare const window: { rt: PageState; startRealtime(opts: { baseUrl: string; key: string; instructions: string }): Promise<void> };

const QUESTION = 'What is the capital of France?';
const ANSWER = 'Paris is the capital of France.';
const KEY = 'browser-test-key';
/** "What is the capital of France?" with 1 s of silence before and 3 s after, looped by the fake microphone. */
const MIC = fileURLToPath(new URL('./fixtures/question-48k.wav', import.meta.url));
/** The analyser's linear RMS: speech from the fixtures and eSpeak reads 0.05–0.3, Opus silence 0. */
const SPEECH_LEVEL = 0.02;

t.test('@openai/agents-realtime in Chromium over WebRTC: an ek_ key, a spoken question, a spoken answer', async (t) => {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL('./pages/realtime-sdk.mjs', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'warning',
  });
  const js = bundle.outputFiles[0]!.contents;
  const page = createServer((req, res) => {
    if (req.url === '/app.js') res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(js);
    else res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><meta charset="utf-8"><title>realtime</title><script type="module" src="/app.js"></script>');
  });
  await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => page.close(() => resolve())));
  const pageOrigin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;

  const groq = await startGroq({ profile: 'instant', transcript: QUESTION, reply: () => ANSWER });
  t.teardown(() => groq.close());
  const eva = await startEva(t, { runtime: true, env: { GROQ_API_KEY: 'test-key', GROQ_BASE_URL: groq.url, EVA_API_KEY: KEY, EVA_ALLOWED_ORIGINS: pageOrigin } });

  // The app's server mints the browser's key with the real one, as OpenAI's docs have it.
  const minted = await fetch(`${eva.httpUrl}/v1/realtime/client_secrets`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ session: { type: 'realtime', model: 'gpt-realtime' } }),
  });
  t.equal(minted.status, 200);
  const { value: ek } = (await minted.json()) as { value: string };

  const browser = await launchChromium(t, { fakeAudio: MIC });
  await browser.page.goto(`${pageOrigin}/`);
  await browser.page.waitForFunction(() => typeof window.startRealtime === 'function', undefined, { timeout: 15_000 });
  await browser.page.evaluate(
    (opts) => window.startRealtime(opts),
    { baseUrl: `${eva.httpUrl}/v1/realtime/calls`, key: ek, instructions: 'You are a terse geography tutor.' },
  );
  const state = async (): Promise<PageState> => browser.page.evaluate(() => window.rt);
  let s = await state();
  if (s.state !== 'connected') t.comment(browser.logs.join('\n'));
  t.equal(s.state, 'connected', `the SDK connected (${s.error ?? 'no error'})`);
  t.equal(eva.server.calls.size, 1, 'EVA holds one call');

  const answered = async (): Promise<boolean> => {
    s = await state();
    return s.events.some((e) => e.type === 'response.done');
  };
  let done = false;
  for (let i = 0; i < 60 && !done; i++) {
    done = await answered();
    if (!done) await new Promise((r) => setTimeout(r, 500));
  }
  if (!done) t.comment(browser.logs.slice(-30).join('\n'));
  const types = s.events.map((e) => e.type);
  t.ok(done, `a response finished (events: ${[...new Set(types)].join(', ')})`);
  t.ok(types.includes('session.created') && types.includes('session.updated'), 'session.created, then the SDK’s session.update acknowledged');
  const transcription = s.events.find((e) => e.type === 'conversation.item.input_audio_transcription.completed');
  t.equal(transcription?.ev.transcript, QUESTION, 'the spoken question was transcribed');
  t.ok(types.includes('output_audio_buffer.started'), 'output_audio_buffer.started');
  const response = s.events.find((e) => e.type === 'response.done')!;
  t.match(response.ev, { response: { status: 'completed', output: [{ content: [{ transcript: ANSWER }] }] } }, 'the answer’s transcript');
  t.notOk(types.includes('response.output_audio.delta'), 'no audio in the events: it is on the track');
  t.notOk(types.includes('error'), `no error events${types.includes('error') ? `: ${JSON.stringify(s.events.find((e) => e.type === 'error')!.ev)}` : ''}`);

  // Heard: EVA's voice on the track, after the person stopped.
  const stoppedAt = s.events.find((e) => e.type === 'input_audio_buffer.speech_stopped')?.at ?? 0;
  await sleep(1500); // the tail of the voice may still be playing when response.done arrives
  s = await state();
  const loud = s.remote.filter((l) => l.at > stoppedAt && l.rms > SPEECH_LEVEL);
  t.ok(loud.length * 20 >= 600, `EVA's voice was heard in the page: ${loud.length * 20} ms above the speech level`);
  const micSpeech = s.mic.filter((l) => l.rms > SPEECH_LEVEL && l.at < (loud[0]?.at ?? Infinity));
  const micEnd = micSpeech.at(-1)?.at;
  if (micEnd !== undefined && loud[0]) t.comment(`first audible answer ${(loud[0].at - micEnd).toFixed(0)} ms after the microphone's speech ended (as the page measures both)`);
  t.ok(groq.requests.some((r) => r.path.endsWith('/chat/completions')), 'the LLM stand-in was asked');
});
