import t from 'tap';
import { DEFAULT_EOU_CONFIG } from './eou.js';
import { DEFAULT_TURN_MACHINE, INITIAL_TURN_STATE, reduceTurn, type TurnEffect, type TurnMachineConfig, type TurnMachineEvent, type TurnState } from './turn-state.js';

/** Runs events through the reducer; returns the final state and every effect, each tagged with its event's index. */
function run(events: TurnMachineEvent[], config: TurnMachineConfig = DEFAULT_TURN_MACHINE, from: TurnState = INITIAL_TURN_STATE) {
  let state = from;
  const effects: (TurnEffect & { after: number })[] = [];
  events.forEach((ev, i) => {
    const step = reduceTurn(state, ev, config);
    state = step.state;
    for (const e of step.effects) effects.push({ ...e, after: i });
  });
  return { state, effects, kinds: effects.map((e) => e.type) };
}

const FINISHED = 'I need a taxi to the airport.';
// Speech ends at t=1000; the first silent window is at 1032.
const pause = (contour: 'falling' | 'level' | 'rising' | 'unknown' = 'falling'): TurnMachineEvent => ({ type: 'pause', at: 1032, speechEndAt: 1000, contour });
const silence = (at: number): TurnMachineEvent => ({ type: 'silence', at });
const transcript = (id: number, text: string | null, at = 1050): TurnMachineEvent => ({ type: 'transcript', at, id, text });

type Row = [string, TurnMachineEvent[], string[]];
const rows: Row[] = [
  ['a finished statement is answered early, at the first window past 120 ms', [pause(), transcript(1, FINISHED), silence(1064), silence(1096), silence(1128)], ['speculate', 'commit']],
  ['the end of turn after an early answer changes nothing', [pause(), transcript(1, FINISHED), silence(1128), { type: 'end_of_turn', at: 1480, speechEndAt: 1000 }], ['speculate', 'commit']],
  [
    'a pause that resumes within 300 ms discards the speculative turn and keeps nothing',
    [pause('level'), transcript(1, 'I would like to order a large pizza.'), silence(1128), silence(1256), { type: 'resume', at: 1300 }],
    ['speculate', 'discard'],
  ],
  [
    'a cut-off that the person talks on from before it was heard is retracted at once',
    [pause(), transcript(1, FINISHED), silence(1128), { type: 'resume', at: 1350 }],
    ['speculate', 'commit', 'retract'],
  ],
  [
    'no transcript by the end-of-turn window: the end of turn commits the speculative turn',
    [pause(), silence(1200), silence(1400), { type: 'end_of_turn', at: 1480, speechEndAt: 1000 }],
    ['speculate', 'commit'],
  ],
  [
    'a clearly unfinished sentence extends the window once',
    [pause('level'), transcript(1, 'I was wondering if you could'), silence(1064), silence(1096)],
    ['speculate', 'extend'],
  ],
  [
    'the cap on speculative STT in flight: a third pause starts none, and the end of turn starts a fresh turn',
    [
      pause('level'),
      { type: 'resume', at: 1100 },
      { type: 'pause', at: 1332, speechEndAt: 1300, contour: 'level' },
      { type: 'resume', at: 1400 },
      { type: 'pause', at: 1632, speechEndAt: 1600, contour: 'level' },
      { type: 'end_of_turn', at: 2080, speechEndAt: 1600 },
    ],
    ['speculate', 'discard', 'speculate', 'discard', 'start_audio'],
  ],
  ['a typed turn supersedes the current one', [pause(), transcript(1, FINISHED), silence(1128), { type: 'text', at: 1200 }], ['speculate', 'commit', 'stop', 'start_text']],
  ['a barge-in interrupts the current turn', [pause(), transcript(1, FINISHED), silence(1128), { type: 'barge_in', at: 3000 }], ['speculate', 'commit', 'stop']],
  ['a failed STT (no text) is never answered early', [pause(), transcript(1, null), silence(1128), silence(1300)], ['speculate']],
];
for (const [name, events, want] of rows) {
  t.same(run(events).kinds, want, name);
}

t.test('an early answer is committed with its silence and the verdict, and becomes current', async (t) => {
  const { state, effects } = run([pause(), transcript(1, FINISHED), silence(1128)]);
  const commit = effects.find((e) => e.type === 'commit') as Extract<TurnEffect, { type: 'commit' }>;
  t.match(commit, { id: 1, speechEndAt: 1000, eouMs: 128, early: true, verdict: { cls: 'finished' } });
  t.equal(state.current, 1);
  t.equal(state.early, 1, 'retractable until the end of turn');
  t.equal(state.spec, null);
});

t.test('a transcript that arrives after the threshold answers at once', async (t) => {
  const { effects } = run([pause(), silence(1200), transcript(1, FINISHED, 1210)]);
  const commit = effects.find((e) => e.type === 'commit') as Extract<TurnEffect, { type: 'commit' }>;
  t.match(commit, { eouMs: 210, early: true });
});

t.test('a streaming partial can answer before the speculative transcript is in hand', async (t) => {
  const { effects } = run([pause(), { type: 'partial', at: 1040, text: FINISHED }, silence(1128)]);
  t.same(effects.map((e) => e.type), ['speculate', 'commit']);
});

t.test('the end of turn commits a speculative turn as not early; a superseded turn is stopped', async (t) => {
  const first = run([pause(), transcript(1, FINISHED), silence(1128), { type: 'end_of_turn', at: 1480, speechEndAt: 1000 }]);
  t.equal(first.state.current, 1);
  t.equal(first.state.early, null, 'no longer retractable');
  const next = run(
    [{ type: 'pause', at: 5032, speechEndAt: 5000, contour: 'level' }, { type: 'end_of_turn', at: 5480, speechEndAt: 5000 }],
    DEFAULT_TURN_MACHINE,
    first.state,
  );
  t.match(next.effects, [{ type: 'speculate', id: 2 }, { type: 'stop', id: 1, reason: 'superseded' }, { type: 'commit', id: 2, early: false, eouMs: 480 }], 'the old turn stops before the new one is released');
});

t.test("retracted answers slow the next early answers; the speaker's pauses set the pace", async (t) => {
  const events: TurnMachineEvent[] = [pause(), transcript(1, FINISHED), silence(1128), { type: 'resume', at: 1350 }];
  const { state } = run(events);
  t.equal(state.retractions, 1);
  t.same(state.pauses, [350], 'the resumed pause is remembered');
  const again = run([{ type: 'pause', at: 2032, speechEndAt: 2000, contour: 'falling' }, transcript(2, FINISHED, 2040), silence(2128)], DEFAULT_TURN_MACHINE, state);
  t.notOk(again.effects.some((e) => e.type === 'commit'), 'not at 128 ms any more');
  const later = run([silence(2224)], DEFAULT_TURN_MACHINE, again.state);
  t.match(later.effects, [{ type: 'commit', early: true, eouMs: 224 }], `answered at ${DEFAULT_EOU_CONFIG.finishedMs + 80} ms`);
});

t.test('the STT cap counts requests until they settle, discarded ones included', async (t) => {
  const a = run([pause('level'), { type: 'resume', at: 1100 }, { type: 'pause', at: 1332, speechEndAt: 1300, contour: 'level' }, { type: 'resume', at: 1400 }]);
  t.same(a.state.sttInFlight, [1, 2]);
  const b = run([{ type: 'stt_settled', at: 1500, id: 1 }, { type: 'pause', at: 1632, speechEndAt: 1600, contour: 'level' }], DEFAULT_TURN_MACHINE, a.state);
  t.same(b.kinds, ['speculate'], 'a settled request frees a place');
  t.same(b.state.sttInFlight, [2, 3]);
});

t.test('speculation off (speculativeMax 0): every turn starts at its end; early answers off: never before the window', async (t) => {
  const off = run([pause(), silence(1128), { type: 'end_of_turn', at: 1480, speechEndAt: 1000 }], { ...DEFAULT_TURN_MACHINE, speculativeMax: 0 });
  t.same(off.kinds, ['start_audio']);
  const noEarly = run([pause(), transcript(1, FINISHED), silence(1128), silence(1400)], { ...DEFAULT_TURN_MACHINE, eou: { ...DEFAULT_EOU_CONFIG, finishedMs: 0 } });
  t.same(noEarly.kinds, ['speculate'], 'held until the end of turn');
});

t.test('finished: the current turn played out; a stale id changes nothing', async (t) => {
  const s = run([{ type: 'text', at: 0 }]).state;
  t.equal(s.current, 1);
  t.equal(reduceTurn(s, { type: 'finished', at: 10, id: 7 }).state.current, 1);
  t.equal(reduceTurn(s, { type: 'finished', at: 10, id: 1 }).state.current, null);
});

t.test('once the early answer is heard, speech is a continuation only if it lasts a barge-in; an "uh huh" lets it go on', async (t) => {
  const heard: TurnMachineEvent[] = [pause(), transcript(1, FINISHED), silence(1128), { type: 'talking', at: 1160, id: 1 }, { type: 'resume', at: 1400 }];
  const contested = run(heard);
  t.same(contested.kinds, ['speculate', 'commit'], 'no retraction yet: the detector holds her audio');
  t.equal(contested.state.contested, true);
  t.same(run([{ type: 'pause', at: 1700, speechEndAt: 1668, contour: 'falling' }, silence(1800)], DEFAULT_TURN_MACHINE, contested.state).kinds, [], 'nothing new starts while contested');
  const goesOn = run([{ type: 'barge_in', at: 2000 }], DEFAULT_TURN_MACHINE, contested.state);
  t.match(goesOn.effects, [{ type: 'retract', id: 1 }], 'a barge-in of voice: the person went on, the answer is taken back');
  t.equal(goesOn.state.current, null);
  t.equal(goesOn.state.retractions, 1);
  const backchannel = run([{ type: 'end_of_turn', at: 2200, speechEndAt: 1700 }], DEFAULT_TURN_MACHINE, contested.state);
  t.same(backchannel.kinds, [], 'the end of turn comes: it was a backchannel, the answer goes on');
  t.equal(backchannel.state.current, 1);
  t.equal(backchannel.state.early, null);
  t.equal(backchannel.state.contested, false);
});

t.test("the decision uses the audio's own silence: a VAD running behind the wall clock does not answer early", async (t) => {
  // The VAD reports 96 ms of silence at wall time 1160 (64 ms late): 96 ms is too early for a 120 ms answer.
  const late = run([pause(), transcript(1, FINISHED), { type: 'silence', at: 1160, silenceMs: 96 }]);
  t.same(late.kinds, ['speculate'], 'not yet');
  const onTime = run([{ type: 'silence', at: 1192, silenceMs: 128 }], DEFAULT_TURN_MACHINE, late.state);
  t.match(onTime.effects, [{ type: 'commit', eouMs: 192 }], 'answered at 128 ms of audio silence; eou_ms is on the wall clock');
});

t.test('voice that starts well after the early answer became audible is a turn of its own, not a continuation', async (t) => {
  const heard = run([pause(), transcript(1, FINISHED), silence(1128), { type: 'talking', at: 1160, id: 1 }]);
  const later = run([{ type: 'resume', at: 1600, onsetAt: 1500 }], DEFAULT_TURN_MACHINE, heard.state);
  t.same(later.kinds, ['split'], 'the detector starts a new turn at the onset');
  t.equal(later.state.early, null, 'the answer stands');
  t.equal(later.state.current, 1);
  t.equal(later.state.retractions, 0, 'not a false cut-off');
  t.match(run([{ type: 'barge_in', at: 2200 }], DEFAULT_TURN_MACHINE, later.state).effects, [{ type: 'stop', id: 1, reason: 'interrupted' }], 'then a barge-in interrupts as usual');
  const soon = run([{ type: 'resume', at: 1450, onsetAt: 1350 }], DEFAULT_TURN_MACHINE, heard.state);
  t.equal(soon.state.contested, true, 'within CONTEST_MS of being heard it may be the sentence going on');
});
