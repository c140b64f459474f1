import t from 'tap';
import { DEFAULT_EOU_CONFIG, PACE_MARGIN_MS, RETRACTION_PENALTY_MS, answerAfter, decide, textCue, type Contour, type EouDecision, type TextCue } from './eou.js';

const cues: [string | null, TextCue, string][] = [
  [null, 'unknown', 'STT has not answered'],
  ['', 'empty', 'empty transcript'],
  ['Um.', 'empty', 'a filler alone'],
  ['What is the capital of France?', 'question', 'question mark'],
  ['Who are we?', 'question', 'a question mark even after a pronoun'],
  ['Can you tell me the time.', 'question_form', 'question word order with a full stop (Whisper)'],
  ['How far is it.', 'question_form', 'wh-question with a full stop'],
  ['When does the train leave.', 'question_form', '"when" + auxiliary is a question'],
  ['I need a taxi to the airport.', 'complete', 'a finished statement'],
  ['Tell me a joke!', 'complete', 'exclamation'],
  ['Yes.', 'short', 'one word'],
  ['No, thanks.', 'short', 'two words'],
  ['I would like to order a large pizza,', 'open', 'trailing comma'],
  ['I was wondering if you could', 'open', 'trailing modal'],
  ['I was wondering if you could.', 'open', 'trailing modal, even with a full stop'],
  ['I want to go to the.', 'open', 'trailing article'],
  ['Can you help me with.', 'open', 'trailing preposition'],
  ['Sure, go on.', 'complete', 'a phrasal verb ends on its particle'],
  ['Please turn the lights off.', 'complete', 'a particle at the end'],
  ['So I was thinking, um.', 'open', 'trailing filler'],
  ['Let me think...', 'open', 'trailing off'],
  ['Let me think…', 'open', 'ellipsis character'],
  ['If you could.', 'open', 'a subordinate clause without its main clause'],
  ['When I get to the station.', 'open', '"when" + subject opens a clause'],
  ['If it rains, we stay home.', 'complete', 'subordinate clause followed by its main clause'],
  ['I would like to order a large pizza', 'unpunctuated', 'no end punctuation, last word can end'],
  ['"Stop right there."', 'complete', 'closing quote after the full stop'],
];
for (const [text, want, why] of cues) {
  t.equal(textCue(text), want, `textCue(${JSON.stringify(text)}) is ${want}: ${why}`);
}

const base = { paceMs: null, retractions: 0 };
const { finishedMs, likelyMs, fallbackMs, maxMs } = DEFAULT_EOU_CONFIG;

// transcript × contour × silence → decision, and the silence at which it would answer.
const table: [string | null, Contour, number, EouDecision, number, string][] = [
  // Clearly finished: text and prosody agree → answered after ~120 ms.
  ['I need a taxi to the airport.', 'falling', 64, 'wait', finishedMs, 'a finished statement, too early yet'],
  ['I need a taxi to the airport.', 'falling', 128, 'answer', finishedMs, 'a finished statement with a falling end'],
  ['Is it going to rain tomorrow?', 'rising', 128, 'answer', finishedMs, 'a yes/no question rises and is finished'],
  ['What is the difference between a virus and a bacterium?', 'falling', 128, 'answer', finishedMs, 'a wh-question falls'],
  ['Yes.', 'falling', 128, 'answer', finishedMs, 'a short answer with a falling end'],
  // The hard case: Whisper puts a full stop at a pause; the level pitch of a comma says the person goes on.
  ['I would like to order a large pizza.', 'level', 128, 'wait', fallbackMs, 'a full stop said with a level pitch'],
  ['I would like to order a large pizza.', 'level', 400, 'wait', fallbackMs, 'still inside a 400 ms pause'],
  ['I would like to order a large pizza.', 'level', 480, 'answer', fallbackMs, 'the fallback window'],
  ['How far is it.', 'level', 300, 'wait', fallbackMs, 'question word order said with a level pitch'],
  // Half agreement: the old early-end rule's 240 ms.
  ['I need a taxi to the airport.', 'unknown', 128, 'wait', likelyMs, 'no pitch to go on'],
  ['I need a taxi to the airport.', 'unknown', 240, 'answer', likelyMs, 'no pitch: answer at 240 ms'],
  ['I need a taxi to the airport.', 'rising', 600, 'not_done', maxMs, "a full stop said with a comma's rise"],
  ['I need to book a flight to Berlin', 'rising', 600, 'not_done', maxMs, "no punctuation and a comma's rise"],
  ['Is it going to rain today', 'rising', 300, 'wait', fallbackMs, 'no punctuation, a rise, question word order: maybe a question'],
  ['Is it going to rain today', 'rising', 480, 'answer', fallbackMs, '… answered at the fallback'],
  ['Can we move the meeting to Friday.', 'rising', 400, 'wait', fallbackMs, "question word order + full stop + a comma's rise"],
  ['Can we move the meeting to Friday?', 'rising', 128, 'answer', finishedMs, 'a question mark + a rise: a yes/no question'],
  ['How far is it from the earth to the moon.', 'falling', 256, 'answer', likelyMs, 'question word order + full stop + a fall'],
  ['Is it going to rain tomorrow?', 'unknown', 256, 'answer', likelyMs, 'a question with no pitch measured'],
  // Clearly unfinished: wait up to the maximum.
  ['I was wondering if you could', 'level', 480, 'not_done', maxMs, 'an open ending with a level pitch'],
  ['I was wondering if you could.', 'level', 900, 'not_done', maxMs, 'open ending + full stop'],
  ['I was wondering if you could', 'level', 1000, 'answer', maxMs, 'the maximum'],
  ['I would like to order a large pizza,', 'unknown', 600, 'not_done', maxMs, 'a trailing comma'],
  ['I would like to order a large pizza', 'level', 600, 'not_done', maxMs, 'no punctuation and a level pitch'],
  ['I was wondering if you could', 'falling', 480, 'answer', fallbackMs, 'an open ending that trails off with a fall'],
  // Nothing known yet.
  [null, 'falling', 300, 'wait', fallbackMs, 'no transcript: wait for it or the fallback'],
  [null, 'unknown', 480, 'answer', fallbackMs, 'no transcript at the fallback'],
  ['', 'falling', 200, 'wait', fallbackMs, 'noise: no early answer'],
];
for (const [text, contour, silenceMs, decision, afterMs, why] of table) {
  const v = decide({ ...base, transcript: text, contour, silenceMs });
  t.same({ decision: v.decision, afterMs: v.afterMs }, { decision, afterMs }, `${JSON.stringify(text)} × ${contour} × ${silenceMs} ms → ${decision} (${why}; ${v.reason})`);
}

t.test('each early answer taken back in a call makes the next ones wait longer, never past the fallback', async (t) => {
  const input = { transcript: 'I need a taxi to the airport.', contour: 'falling' as const, paceMs: null };
  t.equal(answerAfter({ ...input, retractions: 1 }).afterMs, finishedMs + RETRACTION_PENALTY_MS);
  t.equal(answerAfter({ ...input, retractions: 2 }).afterMs, finishedMs + 2 * RETRACTION_PENALTY_MS);
  t.equal(answerAfter({ ...input, retractions: 50 }).afterMs, fallbackMs);
});

t.test("a slow speaker's uncertain pauses wait for their usual pause plus a margin, up to the maximum", async (t) => {
  const input = { transcript: 'I would like to order a large pizza.', contour: 'level' as const, retractions: 0 };
  t.equal(answerAfter({ ...input, paceMs: 200 }).afterMs, fallbackMs, 'a short usual pause changes nothing');
  t.equal(answerAfter({ ...input, paceMs: 500 }).afterMs, 500 + PACE_MARGIN_MS, 'a long usual pause is waited out');
  t.equal(answerAfter({ ...input, paceMs: 2000 }).afterMs, maxMs, 'never past the maximum');
  t.equal(decide({ ...input, paceMs: 500, silenceMs: 500 }).decision, 'not_done', 'past the fallback: the detector must wait longer');
  const finished = answerAfter({ transcript: 'I need a taxi to the airport.', contour: 'falling', retractions: 0, paceMs: 500 });
  t.equal(finished.afterMs, finishedMs, 'a clearly finished turn is not slowed by the pace');
});

t.test('finishedMs 0 turns early answers off: every turn waits for the fallback', async (t) => {
  const config = { ...DEFAULT_EOU_CONFIG, finishedMs: 0 };
  const v = decide({ ...base, transcript: 'I need a taxi to the airport.', contour: 'falling', silenceMs: 300 }, config);
  t.equal(v.decision, 'wait');
  t.equal(v.afterMs, fallbackMs);
});
