import t from 'tap';
import type { HeardFrame, TimedEvent } from './probe-client.js';
import type { ServerMessage } from '../server/signaling.js';
import {
  analyzeTrial,
  audibleOnsetMs,
  bargeInStop,
  classBreakdown,
  countTrials,
  cutOff,
  longestSilence,
  medianTrial,
  percentile,
  perceivedLatency,
  splitStages,
  summarize,
  summarizeTrials,
  underruns,
  type TrialResult,
} from './latency.js';

/** Frames every 20 ms over [from, to), audible (rms 1000) where `loud(at)` says so, else silence (rms 0). */
function frames(from: number, to: number, loud: (at: number) => boolean): HeardFrame[] {
  const out: HeardFrame[] = [];
  for (let at = from; at < to; at += 20) out.push({ at, rms: loud(at) ? 1000 : 0 });
  return out;
}
const between = (a: number, b: number) => (at: number) => at >= a && at < b;
const ev = (at: number, msg: ServerMessage): TimedEvent => ({ at, msg });

t.test('perceived latency is last voiced sample sent → first audible frame received after it', async (t) => {
  const heard = frames(0, 3000, between(1700, 2500));
  t.equal(perceivedLatency(1000, heard), 700);
  t.equal(perceivedLatency(1000, heard, 1600), undefined, 'nothing audible before the limit');
  t.equal(perceivedLatency(2600, heard), undefined, 'no reply after the end');
  // Quiet frames below the threshold do not count.
  const quiet = [{ at: 1100, rms: 50 }, { at: 1120, rms: 150 }];
  t.equal(perceivedLatency(1000, quiet), 120);
});

t.test('a sequential turn: overhead = first_audio − eou − providers, network = perceived − first_audio', async (t) => {
  const s = splitStages(
    { type: 'metrics', turn: 1, eou_ms: 500, stt_ms: 150, llm_ttft_ms: 150, first_sentence_ms: 200, tts_first_audio_ms: 5, first_audio_ms: 862 },
    900,
  );
  t.equal(s.providersMs, 355);
  t.equal(s.overheadMs, 7);
  t.equal(s.networkMs, 38);
  t.equal(s.speculative, false);
});

t.test('a speculative turn: the provider chain started speculationLeadMs before the end of turn', async (t) => {
  // Providers 300 ms started at eou − 320 = 180 ms: they end at 480 < eou 500, so the window is the critical path.
  const hidden = splitStages({ type: 'metrics', turn: 2, eou_ms: 500, stt_ms: 100, first_sentence_ms: 150, tts_first_audio_ms: 50, first_audio_ms: 504 }, 540, 320);
  t.equal(hidden.speculative, true);
  t.equal(hidden.overheadMs, 4);
  t.equal(hidden.networkMs, 36);
  // Providers 400 ms from 180 ms end at 580 > 500: they are the critical path.
  const longer = splitStages({ type: 'metrics', turn: 3, eou_ms: 500, stt_ms: 150, first_sentence_ms: 200, tts_first_audio_ms: 50, first_audio_ms: 590 }, 640, 320);
  t.equal(longer.speculative, true);
  t.equal(longer.overheadMs, 10);
});

t.test('the first reply text, timed from the commit, decides whether a turn was speculative', async (t) => {
  const m = { type: 'metrics', turn: 4, eou_ms: 490, stt_ms: 4, llm_ttft_ms: 2, first_sentence_ms: 3, tts_first_audio_ms: 2, first_audio_ms: 505 } as const;
  // Without text timing the sequential reading (505 − 490 − 9 = 6) is taken, as it is not negative.
  t.same([splitStages(m, 540, 320).speculative, splitStages(m, 540, 320).overheadMs], [false, 6]);
  // The text came with the commit (held): speculative, overhead 505 − 490 = 15.
  const held = splitStages(m, 540, 320, -0.4);
  t.same([held.speculative, held.overheadMs], [true, 15]);
  // The text came stt + ttft after the commit: sequential.
  const seq = splitStages(m, 540, 320, 6.5);
  t.same([seq.speculative, seq.overheadMs], [false, 6]);
  // Slow providers: speculative text comes stt + ttft − lead after the commit.
  const slow = { ...m, stt_ms: 200, llm_ttft_ms: 200, first_sentence_ms: 210, first_audio_ms: 600 };
  t.equal(splitStages(slow, 640, 320, 81).speculative, true);
  t.equal(splitStages(slow, 640, 320, 399).speculative, false);
});

t.test('analyzeTrial times the first reply text from the `thinking` event', async (t) => {
  const play = { startAt: 0, lastVoicedAt: 1000, endAt: 1000 };
  const heard = frames(0, 3000, between(1520, 2500));
  const metrics = ev(1515, { type: 'metrics', turn: 1, eou_ms: 490, stt_ms: 4, llm_ttft_ms: 2, first_sentence_ms: 3, tts_first_audio_ms: 2, first_audio_ms: 505 });
  const held = [ev(1492, { type: 'reply', turn: 1, delta: 'Okay.' }), ev(1492.2, { type: 'state', state: 'thinking' }), metrics];
  t.equal(analyzeTrial({ kind: 'turn', utterance: 'yes.wav', play, heard, events: held, endAt: 3000 }).speculative, true);
  const seq = [ev(1492, { type: 'state', state: 'thinking' }), ev(1498, { type: 'reply', turn: 1, delta: 'Okay.' }), metrics];
  t.equal(analyzeTrial({ kind: 'turn', utterance: 'yes.wav', play, heard, events: seq, endAt: 3000 }).speculative, false);
});

t.test('longest silence inside an answer', async (t) => {
  const heard = frames(0, 3000, (at) => between(1000, 1500)(at) || between(1700, 2000)(at));
  t.equal(longestSilence(heard, 1000, 3000), 200);
  t.equal(longestSilence(heard, 1000, 1400), 0);
});

t.test('missing stages leave the derived figures out', async (t) => {
  t.same(splitStages(undefined, 500), {});
  const echo = splitStages({ type: 'metrics', turn: 1, eou_ms: 480, first_audio_ms: 490 }, 530);
  t.equal(echo.providersMs, undefined);
  t.equal(echo.overheadMs, undefined);
  t.equal(echo.networkMs, 40);
});

t.test('barge-in stop is the onset → the last reply frame received before the person stopped', async (t) => {
  const heard = frames(0, 5000, between(1000, 2140));
  const stop = bargeInStop(2000, heard, 3500);
  t.same(stop, { stopMs: 120, stopped: true });
  // A reply that goes on until the person stops did not stop.
  t.same(bargeInStop(2000, frames(0, 5000, between(1000, 4000)), 3500), { stopped: false });
  // Frames after `until` (EVA's answer to the new turn) are not the interrupted reply.
  const withAnswer = frames(0, 6000, (at) => between(1000, 2100)(at) || between(4200, 5000)(at));
  t.equal(bargeInStop(2000, withAnswer, 3500).stopMs, 80);
});

t.test('analyzeTrial: a barge trial measures the question’s latency and the stop, and needs the interrupted event', async (t) => {
  const play = { startAt: 0, lastVoicedAt: 1000, endAt: 1000 };
  const over = { utterance: 'weather.wav', play: { startAt: 1900, lastVoicedAt: 4900, endAt: 4900 }, voicedStartMs: 0 };
  const heard = frames(0, 9000, (at) => between(1600, 2000)(at) || between(6000, 7000)(at));
  const events = [
    ev(1590, { type: 'metrics', turn: 1, eou_ms: 480, stt_ms: 10, first_sentence_ms: 20, tts_first_audio_ms: 5, first_audio_ms: 560 }),
    ev(2050, { type: 'interrupted', turn: 1, heard: 'Sure' }),
  ];
  const r = analyzeTrial({ kind: 'barge', utterance: 'virus.wav', play, over, heard, events, endAt: 9000 });
  t.equal(r.perceivedMs, 600);
  t.equal(r.overReply, true);
  t.equal(r.bargeStopMs, 80, 'last reply frame at 1980, onset at 1900');
  t.equal(r.bargeEventMs, 150);
  t.equal(r.overheadMs, 45);
  const noEvent = analyzeTrial({ kind: 'barge', utterance: 'virus.wav', play, over, heard, events: events.slice(0, 1), endAt: 9000 });
  t.equal(noEvent.bargeStopMs, undefined);
  t.match(noEvent.note, /no interrupted event/);
});

t.test('analyzeTrial: a backchannel that stops EVA is a false barge-in', async (t) => {
  const play = { startAt: 0, lastVoicedAt: 1000, endAt: 1000 };
  const over = { utterance: 'uh-huh.wav', play: { startAt: 1900, lastVoicedAt: 2300, endAt: 2300 }, voicedStartMs: 0 };
  const heard = frames(0, 5000, between(1600, 4000));
  const kept = analyzeTrial({ kind: 'backchannel', utterance: 'virus.wav', play, over, heard, events: [], endAt: 5000 });
  t.equal(kept.falseBargeIn, false);
  t.equal(kept.overReply, true);
  const stopped = analyzeTrial({ kind: 'backchannel', utterance: 'virus.wav', play, over, heard, events: [ev(2100, { type: 'interrupted', turn: 1, heard: '' })], endAt: 5000 });
  t.equal(stopped.falseBargeIn, true);
});

t.test('a reply inside a mid-sentence pause is a false cut-off; a transcript before the end is a split turn', async (t) => {
  const play = { startAt: 0, lastVoicedAt: 2400, endAt: 2400 };
  const pauses = [{ startAt: 800, endAt: 1200 }];
  const patient = frames(0, 4000, between(2900, 3500));
  t.same(cutOff(play, pauses, patient, []), { falseCutoff: false, splitTurn: false });
  const eager = frames(0, 4000, between(1150, 1300));
  t.same(cutOff(play, pauses, eager, [ev(1100, { type: 'transcript', turn: 1, text: 'How far is it', final: true })]), { falseCutoff: true, splitTurn: true });
  const r = analyzeTrial({ kind: 'pause', utterance: 'moon.wav', play, pauses, heard: patient, events: [], endAt: 4000 });
  t.equal(r.falseCutoff, false);
  t.equal(r.perceivedMs, 500);
  t.match(r.note, /no metrics event/);
  // Answering in the pause and talking on past the end: a cut-off, and no latency to read.
  const early = analyzeTrial({ kind: 'pause', utterance: 'moon.wav', play, pauses, heard: frames(0, 4000, between(1150, 3000)), events: [], endAt: 4000 });
  t.equal(early.falseCutoff, true);
  t.equal(early.perceivedMs, undefined);
  t.match(early.note, /already talking/);
});

t.test('underruns are gaps over 60 ms between received frames', async (t) => {
  t.same(underruns([0, 20, 40, 60]), { count: 0, maxGapMs: 20 });
  t.same(underruns([0, 20, 100, 120, 200]), { count: 2, maxGapMs: 80 });
  t.same(underruns([]), { count: 0, maxGapMs: 0 });
});

t.test('percentiles are nearest-rank: always a measured value', async (t) => {
  const v = Array.from({ length: 20 }, (_, i) => i + 1); // 1..20
  t.equal(percentile(v, 50), 10);
  t.equal(percentile(v, 95), 19);
  t.equal(percentile(v, 99), 20);
  t.equal(percentile(v, 100), 20);
  t.equal(percentile(v, 0), 1);
  t.equal(percentile([7], 95), 7);
  t.ok(Number.isNaN(percentile([], 50)));
});

t.test('summarize sorts, skips missing values and reports n/min/p50/p95/p99/max/mean', async (t) => {
  const s = summarize([30, undefined, 10, 20, NaN, 40]);
  t.same(s, { n: 4, min: 10, p50: 20, p95: 40, p99: 40, max: 40, mean: 25 });
  const empty = summarize([]);
  t.equal(empty.n, 0);
  t.ok(Number.isNaN(empty.p50));
});

t.test('trial summaries skip warm-ups; counts and the median trial', async (t) => {
  const trials: TrialResult[] = [
    { kind: 'turn', utterance: 'yes.wav', perceivedMs: 5000, warmup: true },
    { kind: 'turn', utterance: 'yes.wav', perceivedMs: 300, speculative: true },
    { kind: 'turn', utterance: 'yes.wav', perceivedMs: 100 },
    { kind: 'turn', utterance: 'yes.wav', perceivedMs: 200 },
    { kind: 'pause', utterance: 'moon.wav', perceivedMs: 250, falseCutoff: true, splitTurn: false },
    { kind: 'barge', utterance: 'virus.wav', overReply: true, bargeStopMs: 90 },
    { kind: 'barge', utterance: 'virus.wav', overReply: true },
    { kind: 'backchannel', utterance: 'virus.wav', overReply: true, falseBargeIn: true },
  ];
  const s = summarizeTrials(trials);
  t.equal(s.perceivedMs.n, 4);
  t.equal(s.perceivedMs.max, 300);
  t.equal(s.bargeStopMs.n, 1);
  t.equal(medianTrial(trials)?.perceivedMs, 200);
  const c = countTrials(trials);
  t.equal(c.turns, 7);
  t.equal(c.bargeNotStopped, 1);
  t.equal(c.falseBargeIns, 1);
  t.equal(c.falseCutoffs, 1);
  t.equal(c.speculativeTurns, 1);
});

t.test('the audible onset inside a frame: the first 2 ms at RMS ≥ 100, to the sample', async (t) => {
  const frame = new Int16Array(320);
  t.equal(audibleOnsetMs(frame), undefined, 'silence has none');
  frame.fill(1000, 288); // the last 2 ms
  t.equal(audibleOnsetMs(frame), 18);
  frame.fill(0).fill(150, 80);
  t.equal(audibleOnsetMs(frame), 5);
  frame.fill(0).fill(1000, 100, 103);
  t.equal(audibleOnsetMs(frame), 100 / 16, 'a 3-sample click: from its first sample, not from the window that ends on it');
});

t.test('perceived latency counts from the onset inside the first audible frame, not from the next frame', async (t) => {
  // The reply's first frame arrives at 1200 and turns audible 18 ms in: its whole-frame RMS stays under 100.
  const heard = [
    { at: 1180, rms: 0, bytes: 3 },
    { at: 1200, rms: 40, bytes: 90, onsetMs: 18 },
    { at: 1220, rms: 1100, bytes: 70, onsetMs: 0 },
  ];
  t.equal(perceivedLatency(1000, heard), 218);
  // A frame audible as a whole but from 5 ms in is heard from 5 ms in.
  t.equal(perceivedLatency(1000, [{ at: 1200, rms: 1500, bytes: 110, onsetMs: 5 }]), 205);
  // An isolated click (audible 2 ms, nothing after) is not the reply.
  t.equal(perceivedLatency(1000, [{ at: 1200, rms: 20, bytes: 30, onsetMs: 7 }, { at: 1220, rms: 0, bytes: 3 }, { at: 1240, rms: 900, bytes: 80, onsetMs: 2 }]), 242);
  const r = analyzeTrial({ kind: 'turn', utterance: 'taxi.wav', play: { startAt: 0, lastVoicedAt: 1000, endAt: 1000 }, heard, events: [ev(1230, { type: 'metrics', turn: 1, eou_ms: 130, first_audio_ms: 190 })], endAt: 2000 });
  t.equal(r.replyPacketMs, 200, 'the first speech packet (≥ 20 bytes) arrived 200 ms after the speech');
  t.equal(r.quietStartMs, 18, 'and was quiet for its first 18 ms');
  t.equal(r.edgeTransitMs, 10, 'transit and the speech-end error: 200 − first_audio 190');
  t.equal(r.networkMs, 28, 'network+jitter is their sum');
});

t.test('the predictor’s decision comes from the metrics event when EVA sends it, and is absent otherwise', async (t) => {
  const m = { type: 'metrics', turn: 1, eou_ms: 130, first_audio_ms: 140, eou_class: 'finished', decision: 'early' } as unknown as Parameters<typeof splitStages>[0];
  t.match(splitStages(m, 180), { eouClass: 'finished', decision: 'early' });
  const early = { type: 'metrics', turn: 2, eou_ms: 130, first_audio_ms: 140, eou_class: 'finished', eou_early: true } as unknown as Parameters<typeof splitStages>[0];
  t.match(splitStages(early, 180), { eouClass: 'finished', decision: 'early' }, 'eou_early: true reads as an early answer');
  const late = { type: 'metrics', turn: 3, eou_ms: 480, first_audio_ms: 490, eou_class: 'uncertain', eou_early: false } as unknown as Parameters<typeof splitStages>[0];
  t.match(splitStages(late, 530), { decision: 'window' });
  const plain = splitStages({ type: 'metrics', turn: 1, eou_ms: 480, first_audio_ms: 490 }, 530);
  t.equal(plain.decision, undefined);
  t.equal(plain.eouClass, undefined);
});

t.test('a pause trial reads the answer after the speech, not the cut-off answer inside the pause', async (t) => {
  const play = { startAt: 0, lastVoicedAt: 3000, endAt: 3000 };
  const events = [
    ev(1700, { type: 'metrics', turn: 1, eou_ms: 120, first_audio_ms: 125 }),
    ev(3300, { type: 'metrics', turn: 2, eou_ms: 250, first_audio_ms: 260 }),
  ];
  const r = analyzeTrial({ kind: 'pause', utterance: 'pizza.wav', clipClass: 'paused', partialFullStop: true, play, pauses: [{ startAt: 1500, endAt: 1850 }], heard: frames(0, 4000, (at) => between(1640, 1800)(at) || between(3280, 3800)(at)), events, endAt: 4000 });
  t.equal(r.falseCutoff, true);
  t.equal(r.eouMs, 250);
  t.equal(r.turn, 2);
  t.equal(r.clipClass, 'paused');
  t.equal(r.partialFullStop, true);
  t.equal(r.networkMs, undefined, 'no network split after a cut-off');
  t.match(r.note, /no network split after a cut-off/);
  // A turn trial answered before its clip ended is a cut-off too.
  const turn = analyzeTrial({ kind: 'turn', utterance: 'weather.wav', play, heard: frames(0, 4000, between(2500, 3500)), events: [], endAt: 4000 });
  t.equal(turn.falseCutoff, true);
});

t.test('the breakdown by class: eou, perceived and false cut-offs, the full-stop trials apart', async (t) => {
  const trials: TrialResult[] = [
    { kind: 'turn', utterance: 'yes.wav', clipClass: 'short', warmup: true, eouMs: 900 },
    { kind: 'turn', utterance: 'okay.wav', clipClass: 'short', eouMs: 150, perceivedMs: 190, decision: 'early' },
    { kind: 'turn', utterance: 'no-thanks.wav', clipClass: 'short', eouMs: 170, perceivedMs: 200, decision: 'early' },
    { kind: 'turn', utterance: 'taxi.wav', clipClass: 'statement', eouMs: 140, perceivedMs: 180 },
    { kind: 'barge', utterance: 'weather.wav', clipClass: 'question', eouMs: 130, perceivedMs: 170 },
    { kind: 'pause', utterance: 'pizza.wav', clipClass: 'paused', partialFullStop: true, falseCutoff: true, eouMs: 240, decision: 'wait' },
    { kind: 'pause', utterance: 'pizza.wav', clipClass: 'paused', partialFullStop: false, falseCutoff: false, eouMs: 260, perceivedMs: 300, decision: 'wait' },
    { kind: 'pause', utterance: 'colour.wav', clipClass: 'paused', partialFullStop: true, falseCutoff: false, eouMs: 250, perceivedMs: 290 },
  ];
  const rows = classBreakdown(trials);
  t.same(rows.map((r) => r.clipClass), ['short', 'statement', 'question', 'paused'], 'in report order, empty classes left out');
  const short = rows[0]!;
  t.same([short.trials, short.eou.p50, short.eou.max, short.perceived.p50, short.falseCutoffs], [2, 150, 170, 190, 0], 'the warm-up is left out');
  t.same(short.decisions, { early: 2 });
  const paused = rows[3]!;
  t.same([paused.trials, paused.falseCutoffs, paused.fullStopTrials, paused.fullStopCutoffs], [3, 1, 2, 1]);
  t.equal(paused.eou.p50, 250);
  t.same(paused.decisions, { wait: 2 });
});
