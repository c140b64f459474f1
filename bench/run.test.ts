import t from 'tap';
import { statSync } from 'node:fs';
import { attenuate, loadUtterances, parseArgs, partialTranscript, planTrials, recordReceived } from './run.js';

t.test('the committed utterances match their manifest and stay small', async (t) => {
  const u = loadUtterances();
  t.ok(u.length >= 8);
  let bytes = 0;
  for (const clip of u) {
    bytes += statSync(clip.path).size;
    t.ok(Math.abs((clip.pcm.length / 16) - clip.durationMs) <= 1, `${clip.file} lasts ${clip.durationMs} ms`);
    for (const p of clip.pauses) t.ok(p.startMs > 0 && p.endMs - p.startMs >= 300 && p.endMs < clip.voicedEndMs, `${clip.file} pause ${p.startMs}–${p.endMs}`);
  }
  t.ok(bytes < 1024 * 1024, `${bytes} bytes in all`);
  for (const kind of ['short', 'long', 'pause', 'backchannel']) t.ok(u.some((c) => c.kind === kind), `has a ${kind} clip`);
});

t.test('options: quick defaults, profiles, overrides', async (t) => {
  const q = parseArgs(['--quick']);
  t.equal(q.quick, true);
  t.same(q.profiles.map((p) => p.label), ['instant', 'groq', 'ollama-gpu']);
  t.equal(q.turns, 2);
  t.equal(q.load, false, 'no load ramp in a quick run unless asked');
  t.equal(parseArgs(['--quick', '--load']).load, true);
  t.equal(parseArgs([]).load, true);
  const a = parseArgs(['--profile', 'groq,ttftMs=200', '--profile=instant', '--turns', '5', '--load-only', '--load-max=40']);
  t.same(a.profiles.map((p) => p.label), ['groq+ttftMs=200', 'instant']);
  t.equal(a.turns, 5);
  t.equal(a.latency, false);
  t.equal(a.load, true);
  t.equal(a.loadMax, 40);
  t.equal(parseArgs(['--no-load']).load, false);
  t.throws(() => parseArgs(['--turns', 'x']), /--turns needs an integer/);
  t.throws(() => parseArgs(['--bogus']), /unknown option "--bogus"/);
  t.throws(() => parseArgs(['--profile', 'nope']), /unknown latency profile "nope"/);
});

t.test('the trial plan: a warm-up, then turns, barge-ins over questions, backchannels and pauses', async (t) => {
  const plan = planTrials({ turns: 3, barge: 2, backchannel: 1, echo: 1, pause: 2 }, loadUtterances());
  t.same(
    plan.map((p) => [p.kind, p.warmup ?? false, p.clip.kind, (p.over && 'kind' in p.over ? p.over.kind : null) ?? null]),
    [
      ['turn', true, 'short', null],
      ['turn', false, 'short', null],
      ['turn', false, 'short', null],
      ['turn', false, 'long', null],
      ['barge', false, 'long', 'short'],
      ['barge', false, 'long', 'short'],
      ['backchannel', false, 'long', 'backchannel'],
      ['echo', false, 'long', null],
      ['pause', false, 'pause', null],
      ['pause', false, 'pause', null],
    ],
  );
});

t.test('an echo is the audible part of what was received, made quieter', async (t) => {
  const heard = [0, 20, 40, 60, 80].map((at, i) => ({ at, rms: i === 0 || i === 4 ? 0 : 1000 }));
  const pcm = [0, 1, 2, 3, 4].map((v) => new Int16Array(320).fill(v * 1000));
  const rec = recordReceived(heard, pcm, 0, 100)!;
  t.equal(rec.length, 3 * 320, 'frames 1–3');
  t.equal(rec[0], 1000);
  t.equal(rec[rec.length - 1], 3000);
  t.equal(recordReceived(heard, pcm.slice(0, 2), 0, 100), null, 'PCM no longer kept');
  t.equal(recordReceived(heard, pcm, 90, 100), null, 'nothing audible');
  t.same(Array.from(attenuate(Int16Array.of(1000, -2000), 20)), [100, -200]);
});

t.test('the stand-in STT hears only what was sent: part of a clip gives its first words, unpunctuated', async (t) => {
  const text = 'How far is it from the earth to the moon?';
  t.equal(partialTranscript(text, 2400, 2400 + 300), text, 'the whole clip (with EVA\'s lead-in and tail) gives the whole text');
  t.equal(partialTranscript(text, 2400, 800 + 300), 'How far is', 'a third of it gives a third of the words, no question mark');
  t.equal(partialTranscript('Hello, there', 1000, 500 + 300), 'Hello', 'no trailing comma either');
  t.equal(partialTranscript(text, undefined, 100), text, 'without a clip length, the whole text');
  t.equal(partialTranscript(text, 2400, 100), '', 'nothing heard, nothing said');
});
