import t from 'tap';
import { statSync } from 'node:fs';
import { attenuate, loadUtterances, overPhaseMs, parseArgs, partialTranscript, pieceTranscript, planTrials, recordReceived, transcriptFor, wordsHeard } from './run.js';

t.test('the committed utterances match their manifest and stay small', async (t) => {
  const u = loadUtterances();
  t.ok(u.length >= 8);
  let bytes = 0;
  for (const clip of u) {
    bytes += statSync(clip.path).size;
    t.ok(Math.abs((clip.pcm.length / 16) - clip.durationMs) <= 1, `${clip.file} lasts ${clip.durationMs} ms`);
    for (const p of clip.pauses) t.ok(p.startMs > 0 && p.endMs - p.startMs >= 250 && p.endMs - p.startMs <= 450 && p.endMs < clip.voicedEndMs, `${clip.file} pause ${p.startMs}–${p.endMs}`);
    for (const p of clip.pauses) t.ok(p.words! > 0 && p.words! < clip.text.split(' ').length, `${clip.file}: ${p.words} words before the pause`);
  }
  // ~60 s of 16 kHz speech: every class with several clips, 8 paused ones.
  t.ok(bytes < 2 * 1024 * 1024, `${bytes} bytes in all`);
  for (const kind of ['short', 'long', 'pause', 'backchannel']) t.ok(u.some((c) => c.kind === kind), `has a ${kind} clip`);
  for (const cls of ['short', 'statement', 'question', 'paused', 'backchannel']) t.ok(u.some((c) => c.class === cls), `has a ${cls} clip`);
  const level = u.filter((c) => c.pauses.some((p) => p.intonation === 'level'));
  t.ok(level.length >= 6, `${level.length} paused clips said with continuation intonation`);
  for (const c of level) t.match(c.text, new RegExp(`^(\\S+ ){${c.pauses[0]!.words! - 1}}\\S+, `), `${c.file}: the words before the pause end in a comma`);
});

t.test('options: quick defaults, profiles, overrides', async (t) => {
  const q = parseArgs(['--quick']);
  t.equal(q.quick, true);
  t.same(q.profiles.map((p) => p.label), ['instant', 'groq', 'ollama-gpu', 'local-stream']);
  t.equal(q.turns, 2);
  t.equal(q.pause, 2, 'a quick run tries a pause both ways (with and without a full stop)');
  t.equal(parseArgs([]).pause, 20, 'a full run: 20 pause trials per profile');
  t.equal(q.load, false, 'no load ramp in a quick run unless asked');
  t.equal(parseArgs(['--quick', '--load']).load, true);
  t.equal(parseArgs([]).load, true);
  t.same(parseArgs([]).workers, [1], 'the load ramp runs one EVA process unless told');
  t.same(parseArgs(['--workers', '2']).workers, [2], '--workers N sets EVA_WORKERS for it');
  t.same(parseArgs(['--workers', '1,2']).workers, [1, 2], '--workers 1,2: one ramp each, in order');
  t.throws(() => parseArgs(['--workers', '0']), /--workers needs an integer ≥ 1/);
  t.throws(() => parseArgs(['--workers', '1,x']), /--workers needs an integer ≥ 1/);
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
      ['turn', false, 'long', null],
      ['turn', false, 'long', null],
      ['turn', false, 'short', null],
      ['barge', false, 'long', 'short'],
      ['barge', false, 'long', 'short'],
      ['backchannel', false, 'long', 'backchannel'],
      ['echo', false, 'long', null],
      ['pause', false, 'pause', null],
      ['pause', false, 'pause', null],
    ],
  );
  t.same(plan.filter((p) => p.kind === 'turn').map((p) => p.clip.class), ['short', 'statement', 'question', 'short'], 'turns take the classes in turn');
  t.same(plan.filter((p) => p.kind === 'barge').map((p) => p.overOffsetMs), [0, 12.4], 'talk-over trials spread over the frame grid');
  t.equal(plan.find((p) => p.kind === 'backchannel')!.overOffsetMs, 0);
  t.notOk(plan.some((p) => (p.kind === 'echo' || p.kind === 'turn' || p.kind === 'pause') && p.overOffsetMs !== undefined), 'only talk-over trials');
});

t.test('talk-over offsets: 0–20 ms, and any run of trials covers the frame grid evenly', async (t) => {
  const offsets = Array.from({ length: 10 }, (_, n) => overPhaseMs(n));
  t.same(offsets.slice(0, 5), [0, 12.4, 4.7, 17.1, 9.4]);
  t.ok(offsets.every((o) => o >= 0 && o < 20));
  for (const n of [5, 6, 10]) {
    const sorted = offsets.slice(0, n).sort((a, b) => a - b);
    const gaps = sorted.map((o, i) => (i === 0 ? o + 20 - sorted.at(-1)! : o - sorted[i - 1]!));
    t.ok(Math.max(...gaps) <= 2.2 * (20 / n), `${n} trials: largest gap ${Math.max(...gaps).toFixed(1)} ms of a 20 ms grid`);
  }
});

t.test('pause trials: clips said with continuation intonation, every other one with a full stop in the partial', async (t) => {
  const u = loadUtterances();
  const plan = planTrials({ turns: 0, barge: 0, backchannel: 0, pause: 20 }, u).filter((p) => p.kind === 'pause');
  t.equal(plan.length, 20);
  t.ok(plan.every((p) => p.clip.pauses[0]!.intonation === 'level'), 'no falling-pitch pauses');
  t.equal(plan.filter((p) => p.partialFullStop).length, 10, 'half of them end the partial in "."');
  t.same(plan.slice(0, 4).map((p) => p.partialFullStop), [true, false, true, false], 'alternating, by trial index');
  const clips = new Set(plan.map((p) => p.clip.file));
  t.ok(clips.size >= 6, `${clips.size} distinct clips`);
  for (const f of clips) {
    const ways = new Set(plan.filter((p) => p.clip.file === f).map((p) => p.partialFullStop));
    if (plan.filter((p) => p.clip.file === f).length >= 2) t.equal(ways.size, 2, `${f} is tried with and without the full stop`);
  }
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

t.test('part of a clip ends in a full stop on the trials that ask for it, never the whole clip', async (t) => {
  const text = 'I would like to order a large pizza, with extra cheese and mushrooms.';
  const pauses = [{ startMs: 1919, endMs: 2269, words: 8, intonation: 'level' as const }];
  // EVA sends the turn from 200 ms before its onset to 100 ms after the end of speech it saw.
  t.equal(partialTranscript(text, 4147, 1919 + 300, true, pauses), 'I would like to order a large pizza.', 'the words before the pause, a full stop for the comma');
  t.equal(partialTranscript(text, 4147, 1919 + 300, false, pauses), 'I would like to order a large pizza', 'or no end punctuation at all');
  t.equal(partialTranscript(text, 4147, 1850 + 300, true, pauses), 'I would like to order a large pizza.', 'a VAD that ends the speech a little early still hears the whole of part A');
  t.equal(partialTranscript(text, 4147, 2100 + 300, true, pauses), 'I would like to order a large pizza.', 'audio ending inside the pause: part A');
  t.equal(partialTranscript(text, 4147, 4147 + 300, true, pauses), text, 'the whole clip keeps its own punctuation');
  t.equal(partialTranscript('Yes.', 400, 50, true), '', 'nothing said: no lone full stop');
  t.equal(wordsHeard(12, 4147, 2269 + (4147 - 2269) / 2, pauses), 10, 'after the pause, words spread over part B');
});

t.test('the stand-ins transcribe no more than has left the client', async (t) => {
  const expect = { text: 'My favourite colour is blue, but I also like green.', voicedMs: 3177, pauses: [{ startMs: 1503, endMs: 1803, words: 5 }], fullStop: true, startAt: 10_000 };
  // A segment of 5 s (it would be the whole clip) uploaded 1.6 s after the clip began: only part A was sent.
  t.equal(transcriptFor(expect, 5000, 10_000 + 1600), 'My favourite colour is blue.');
  t.equal(transcriptFor(expect, 3177 + 300, 10_000 + 4000), expect.text);
  t.equal(transcriptFor({ ...expect, startAt: undefined }, 3177 + 300), expect.text, 'without a start time the audio decides');
  // The first turn of a call came without its lead-in: 460 ms of audio for the 403 ms "Yes.", sent 572 ms after it began.
  t.equal(transcriptFor({ text: 'Yes.', voicedMs: 403, startAt: 0 }, 460, 572), 'Yes.');
  t.equal(transcriptFor({ text: 'Yes.', voicedMs: 403, startAt: 0 }, 460, 150), '', 'nothing of it had been said yet');
});

t.test('a streamed piece gets the words said during its audio: after a pause, only the rest', async (t) => {
  const expect = { text: 'My favourite colour is blue, but I also like green.', voicedMs: 3177, pauses: [{ startMs: 1503, endMs: 1803, words: 5 }], fullStop: false, startAt: 0 };
  // EVA streams from 200 ms before the onset and commits at the pause (here 60 ms into it): piece one.
  t.equal(pieceTranscript(expect, 1563 + 200, 1563), 'My favourite colour is blue');
  t.equal(pieceTranscript({ ...expect, fullStop: true }, 1563 + 200, 1563), 'My favourite colour is blue.');
  // The person went on; the next commit is at the end of turn, 150 ms after the clip: the rest of the words.
  t.equal(pieceTranscript(expect, 3177 + 150 - 1563, 3177 + 150), 'but I also like green.');
  // One commit for the whole clip.
  t.equal(pieceTranscript(expect, 3177 + 350, 3177 + 150), expect.text);
});
