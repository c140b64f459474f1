import t from 'tap';
import { BLIP_RELEASE_MS, DEFAULT_TURN_CONFIG, TurnDetector, type TurnEvent } from './turns.js';

const W = 32;
/** Runs a probability track (one value per 32 ms window) and returns the events, with their window index. */
function run(probs: number[], opts: { evaSpeaking?: (i: number) => boolean; det?: TurnDetector } = {}) {
  const det = opts.det ?? new TurnDetector();
  const out: (TurnEvent & { i: number })[] = [];
  probs.forEach((prob, i) => {
    for (const e of det.step({ prob, atMs: (i + 1) * W, windowMs: W, evaSpeaking: opts.evaSpeaking?.(i) ?? false })) out.push({ ...e, i });
  });
  return out;
}
const rep = (p: number, n: number) => Array<number>(n).fill(p);
const types = (evs: { type: string }[]) => evs.map((e) => e.type).filter((x) => x !== 'vad' && x !== 'silence');

t.test('speech then a long silence gives start, pause and end of turn in order', async (t) => {
  const evs = run([...rep(0, 5), ...rep(0.9, 20), ...rep(0, 20)]);
  t.same(types(evs), ['speech_start', 'pause', 'end_of_turn']);
  const start = evs.find((e) => e.type === 'speech_start')!;
  t.equal(start.atMs, 5 * W, 'onset is the first voiced window, not when it was confirmed');
  const end = evs.find((e) => e.type === 'end_of_turn')! as Extract<TurnEvent, { type: 'end_of_turn' }>;
  t.equal(end.speechEndMs, 25 * W);
  t.ok(end.atMs - end.speechEndMs >= DEFAULT_TURN_CONFIG.endOfTurnMs, 'end of turn waits the whole window');
  t.ok(end.atMs - end.speechEndMs < DEFAULT_TURN_CONFIG.endOfTurnMs + W, 'and not a window more');
});

t.test('a click shorter than minSpeechMs is not a turn', async (t) => {
  t.same(types(run([...rep(0, 3), 0.9, ...rep(0, 30)])), []);
});

t.test('hysteresis: probabilities between the thresholds keep the current state', async (t) => {
  const evs = run([...rep(0.9, 5), ...rep(0.4, 30), ...rep(0.1, 20)]);
  const end = evs.find((e) => e.type === 'end_of_turn') as Extract<TurnEvent, { type: 'end_of_turn' }>;
  t.equal(end.speechEndMs, 35 * W, 'the 0.4 windows counted as speech');
  t.same(types(run([...rep(0.4, 10)])), [], '0.4 never starts speech');
});

t.test('a mid-sentence pause longer than pauseMs but shorter than endOfTurnMs gives pause then resume, one turn', async (t) => {
  const evs = run([...rep(0.9, 10), ...rep(0, 8), ...rep(0.9, 10), ...rep(0, 20)]);
  t.same(types(evs), ['speech_start', 'pause', 'resume', 'pause', 'end_of_turn']);
  const end = evs.find((e) => e.type === 'end_of_turn') as Extract<TurnEvent, { type: 'end_of_turn' }>;
  t.equal(end.speechStartMs, 0, 'the turn spans both parts');
});

t.test('speech over EVA becomes a barge-in only after bargeInMs; silence while EVA speaks does nothing', async (t) => {
  const speaking = () => true;
  const short = run([...rep(0, 5), ...rep(0.9, 3), ...rep(0, 20)], { evaSpeaking: speaking });
  t.notOk(short.some((e) => e.type === 'barge_in'), '96 ms of speech is not a barge-in');
  const long = run([...rep(0, 5), ...rep(0.9, 20)], { evaSpeaking: speaking });
  const b = long.filter((e) => e.type === 'barge_in');
  t.equal(b.length, 1, 'exactly one barge-in per voiced run');
  t.equal((b[0] as Extract<TurnEvent, { type: 'barge_in' }>).onsetMs, 5 * W);
  t.equal(b[0]!.atMs - 5 * W, Math.ceil(DEFAULT_TURN_CONFIG.bargeInMs / W) * W, 'decided at the first window that reaches bargeInMs');
  t.notOk(run(rep(0, 40), { evaSpeaking: speaking }).length, 'silence gives no events');
});

t.test('speech over EVA pauses it at once; a backchannel releases it and is not a turn', async (t) => {
  const speaking = () => true;
  // "uh huh": ~300 ms of voice over EVA, then silence.
  const evs = run([...rep(0, 5), ...rep(0.9, 10), ...rep(0, 30)], { evaSpeaking: speaking });
  t.same(types(evs), ['hold', 'speech_start', 'release', 'backchannel'], 'hold, then release; no pause, no end of turn, no barge-in');
  t.equal(evs.find((e) => e.type === 'hold')!.i, 5, 'the hold comes with the first voiced window');
  t.equal(evs.find((e) => e.type === 'release')!.i, 15 + DEFAULT_TURN_CONFIG.endOfTurnMs / W - 1, 'the release comes when the backchannel ends as a turn would');
  // A blip too short to be a turn (a click, one noisy window) is released after pauseMs.
  const blip = run([...rep(0, 5), ...rep(0.9, 1), ...rep(0, 30)], { evaSpeaking: speaking });
  t.same(types(blip), ['hold', 'release']);
  t.equal(blip.find((e) => e.type === 'release')!.i, 6 + BLIP_RELEASE_MS / W - 1, 'a blip is released after BLIP_RELEASE_MS');

  // A real interruption: hold at once, barge-in at bargeInMs, then an ordinary turn (EVA is quiet after it).
  let evaTalks = true;
  const det = new TurnDetector();
  const out: TurnEvent[] = [];
  // Halting: 320 ms, a 96 ms gap, 320 ms: the voice adds up to a barge-in.
  const probs = [...rep(0.9, 10), ...rep(0, 3), ...rep(0.9, 10), ...rep(0, 20)];
  probs.forEach((prob, i) => {
    for (const e of det.step({ prob, atMs: (i + 1) * W, windowMs: W, evaSpeaking: evaTalks })) {
      out.push(e);
      if (e.type === 'barge_in') evaTalks = false;
    }
  });
  t.same(types(out), ['hold', 'speech_start', 'barge_in', 'pause', 'end_of_turn'], 'an interruption, even a halting one, is answered as a turn');

  // EVA finishes while the person goes on after a short overlap: their next run is an ordinary turn.
  evaTalks = true;
  const det2 = new TurnDetector();
  const out2: TurnEvent[] = [];
  [...rep(0.9, 5), ...rep(0, 3), ...rep(0.9, 20), ...rep(0, 20)].forEach((prob, i) => {
    if (i === 6) evaTalks = false;
    out2.push(...det2.step({ prob, atMs: (i + 1) * W, windowMs: W, evaSpeaking: evaTalks }));
  });
  t.same(types(out2), ['hold', 'speech_start', 'release', 'pause', 'end_of_turn'], 'the turn is answered once EVA is quiet');
});

t.test('vad events follow the hysteresis flips', async (t) => {
  const evs = run([...rep(0.9, 3), ...rep(0, 3)]).filter((e) => e.type === 'vad');
  t.same(evs.map((e) => (e as { speaking: boolean }).speaking), [true, false]);
});

t.test('bad configurations are refused', async (t) => {
  t.throws(() => new TurnDetector({ ...DEFAULT_TURN_CONFIG, offThreshold: 0.9 }), /offThreshold/);
  t.throws(() => new TurnDetector({ ...DEFAULT_TURN_CONFIG, pauseMs: 900 }), /pauseMs/);
});

t.test('reset forgets a turn in progress', async (t) => {
  const det = new TurnDetector();
  run(rep(0.9, 10), { det });
  t.ok(det.inTurn);
  det.reset();
  t.notOk(det.inTurn);
});

t.test('the pause comes at the first silent window, then a silence event each window until the end of turn', async (t) => {
  const evs = run([...rep(0.9, 10), ...rep(0, 20)]);
  const pause = evs.find((e) => e.type === 'pause')!;
  t.equal(pause.i, 10, 'the first silent window is the pause');
  const silences = evs.filter((e) => e.type === 'silence') as (Extract<TurnEvent, { type: 'silence' }> & { i: number })[];
  const end = evs.find((e) => e.type === 'end_of_turn')!;
  t.equal(silences.length, end.i - pause.i, 'one per window after the pause, the end-of-turn window included');
  t.same(silences.slice(0, 3).map((e) => e.silenceMs), [2 * W, 3 * W, 4 * W], 'silence so far, by the audio clock');
});

t.test('extend() makes this silence end the turn at maxEndOfTurnMs; speech resuming clears it', async (t) => {
  const det = new TurnDetector();
  const out: (TurnEvent & { i: number })[] = [];
  const probs = [...rep(0.9, 10), ...rep(0, 40), ...rep(0.9, 10), ...rep(0, 20)];
  probs.forEach((prob, i) => {
    for (const e of det.step({ prob, atMs: (i + 1) * W, windowMs: W, evaSpeaking: false })) {
      out.push({ ...e, i });
      if (e.type === 'pause' && i < 20) det.extend();
    }
  });
  const ends = out.filter((e) => e.type === 'end_of_turn') as Extract<TurnEvent, { type: 'end_of_turn' }>[];
  t.equal(ends.length, 2);
  const first = ends[0]!;
  t.ok(first.atMs - first.speechEndMs >= DEFAULT_TURN_CONFIG.maxEndOfTurnMs, 'the extended silence waits for the maximum');
  t.ok(first.atMs - first.speechEndMs < DEFAULT_TURN_CONFIG.maxEndOfTurnMs + W);
  const second = ends[1]!;
  t.ok(second.atMs - second.speechEndMs < DEFAULT_TURN_CONFIG.endOfTurnMs + W, 'the next turn is back to the usual window');
  t.throws(() => new TurnDetector({ ...DEFAULT_TURN_CONFIG, maxEndOfTurnMs: 100 }), /maxEndOfTurnMs/);
});

t.test('extend() then the person goes on: the next silence of the same turn uses the usual window', async (t) => {
  const det = new TurnDetector();
  const out: TurnEvent[] = [];
  const probs = [...rep(0.9, 10), ...rep(0, 8), ...rep(0.9, 10), ...rep(0, 20)];
  let extended = false;
  probs.forEach((prob, i) => {
    for (const e of det.step({ prob, atMs: (i + 1) * W, windowMs: W, evaSpeaking: false })) {
      out.push(e);
      if (e.type === 'pause' && !extended) {
        extended = true;
        det.extend();
      }
    }
  });
  const end = out.find((e) => e.type === 'end_of_turn') as Extract<TurnEvent, { type: 'end_of_turn' }>;
  t.ok(end.atMs - end.speechEndMs < DEFAULT_TURN_CONFIG.endOfTurnMs + W);
});
