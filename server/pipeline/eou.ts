// The end-of-turn predictor, pure: from what is known of the turn so far — the speculative transcript, the pitch
// contour of the last voiced stretch, the silence since speech ended, and how this speaker pauses — it says, at
// each VAD window of silence, "answer now", "wait", or "the person is clearly not done" (wait up to the hard
// maximum). No timers: the caller passes the silence so far; tables test it (eou.test.ts).
//
// Why both text and prosody: Whisper often ends the transcript of a paused, unfinished sentence with a full stop,
// so punctuation alone cuts people off; and pitch alone cannot tell a rising question (finished) from a rising
// list item. eSpeak NG says a comma with a level ending and a full stop with a fall of ~3 semitones over the last
// ~350 ms, and ends a comma with a small rise (measured here, media/prosody.ts); people do much the same, which
// is how they answer within ~200 ms. So a rise counts as "finished" only when the text is a question.

/** Pitch contour of the last ~350 ms of voice (media/prosody.ts). */
export type Contour = 'falling' | 'level' | 'rising' | 'unknown';

/** What the transcript so far says about the turn. */
export type TextCue =
  /** No transcript yet (STT still running). */
  | 'unknown'
  /** Nothing but noise or fillers. */
  | 'empty'
  /** A question: ends in `?`. */
  | 'question'
  /** A question's word order ("can you …", "what is …") but a full stop: Whisper's mark at a pause, or a question. */
  | 'question_form'
  /** A sentence ending in `.`/`!` whose last word can end a sentence. */
  | 'complete'
  /** One or two words with end punctuation ("Yes.", "No thanks."). */
  | 'short'
  /** No end punctuation but nothing open either (an STT that does not punctuate, or a prosody-aware one). */
  | 'unpunctuated'
  /** Clearly not over: a trailing conjunction, preposition, article or filler, a comma, a trailing "…", an open clause. */
  | 'open';

/** How sure the predictor is that the turn is over; the bench reports end-of-turn time by this class. */
export type EouClass = 'finished' | 'likely' | 'uncertain' | 'unfinished';

export type EouDecision = 'answer' | 'wait' | 'not_done';

export interface EouInput {
  /** The speculative transcript of the turn so far; null while STT has not answered. */
  transcript: string | null;
  contour: Contour;
  /** Silence since the end of speech, ms. */
  silenceMs: number;
  /** This speaker's typical pause inside a turn (median of pauses that resumed), ms; null before any. */
  paceMs: number | null;
  /** Early answers taken back in this call so far (the speaker went on after EVA started). */
  retractions: number;
}

export interface EouTiming {
  /** Silence after which to answer, ms. */
  afterMs: number;
  cls: EouClass;
  text: TextCue;
  /** A few words for logs and the bench: which rule chose `afterMs`. */
  reason: string;
}

export interface EouVerdict extends EouTiming {
  decision: EouDecision;
}

export interface EouConfig {
  /**
   * Clearly finished turns (text and prosody agree): answered after this much silence. 120 ms: the bench's
   * instant profile then hears EVA ~160 ms after the end of speech (network+jitter ~40 ms on loopback), under
   * the ~200 ms people leave; eSpeak's within-sentence gaps at a comma are 250–450 ms, so 120 ms is never one.
   * 0 turns early answers off (every turn waits for `fallbackMs`).
   */
  finishedMs: number;
  /**
   * When text and prosody half agree (a full stop and an unknown contour, a rising statement): 240 ms, the
   * early-end window EVA used before the predictor, which gave no false cut-off in the bench's paused trials
   * when the transcript had no end punctuation.
   */
  likelyMs: number;
  /** No opinion either way (no transcript yet, a full stop said with a level pitch): EVA_VAD_EOU_MS, 480 ms. */
  fallbackMs: number;
  /**
   * Clearly unfinished ("I was wondering if you could"): wait up to this long. 1000 ms: long enough for a
   * speaker to find the next word; beyond it the silence itself is the answer (LiveKit's default is 500 ms min,
   * Pipecat's fallback 3 s).
   */
  maxMs: number;
}

export const DEFAULT_EOU_CONFIG: EouConfig = { finishedMs: 120, likelyMs: 240, fallbackMs: 480, maxMs: 1000 };

/** Each early answer taken back in a call makes the next ones wait this much longer (a speaker who pauses a lot). */
export const RETRACTION_PENALTY_MS = 80;
/** A slow speaker's uncertain pauses wait for their usual pause plus this margin. */
export const PACE_MARGIN_MS = 150;

/**
 * Words after which a sentence is almost never over, whatever the punctuation says. Not the particles that end
 * phrasal verbs ("go on", "come in", "turn it off", "look it up", "take over").
 */
const CONTINUES = new Set(
  (
    'a an the and or but nor so yet because since although though if unless whether than that which who whom whose ' +
    'to of at by for from with about into onto under between through during before after as ' +
    'my your his its our their these those some any every each not ' +
    'is are was were be been am do does did have has had will would can could should shall may might must ' +
    'i he she we they um uh er erm hmm mm like'
  ).split(' '),
);
/** Fillers that say nothing about the turn on their own. */
const FILLERS = new Set('um uh er erm hmm mm ah oh'.split(' '));
/** A sentence that opens with one of these and has no comma has not reached its main clause ("If you could."). */
const SUBORDINATORS = new Set('if when whenever because although though unless while whereas since once until'.split(' '));
/** Question word order: a wh-word, or an auxiliary followed by a subject. */
const WH = new Set('what who whom whose which where when why how'.split(' '));
const AUX = new Set('can could would will shall should do does did is are was were am have has had may might must'.split(' '));
const SUBJECTS = new Set('i you he she it we they there this that'.split(' '));

function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
}

/** A question's word order: a wh-word first, or an auxiliary followed by a subject ("can you", "is it"). */
function questionOrder(text: string): boolean {
  const words = wordsOf(text);
  return words.length > 0 && (WH.has(words[0]!) || (AUX.has(words[0]!) && words.length > 1 && SUBJECTS.has(words[1]!)));
}

/** What the transcript alone says (pure, exported for its own table). */
export function textCue(transcript: string | null): TextCue {
  if (transcript === null) return 'unknown';
  const text = transcript.trim();
  const words = wordsOf(text);
  if (words.length === 0 || words.every((w) => FILLERS.has(w))) return 'empty';
  const tail = text.replace(/["')\]\s]+$/, '');
  if (/(\.\.\.|…|,|;|:|-|—)$/.test(tail)) return 'open';
  const last = words[words.length - 1]!;
  const ended = /[.?!]$/.test(tail);
  if (/\?$/.test(tail)) return 'question';
  if (CONTINUES.has(last)) return 'open';
  // "When I get there." is open; "When does it leave." is a question.
  const opensClause = SUBORDINATORS.has(words[0]!) && !(WH.has(words[0]!) && AUX.has(words[1] ?? ''));
  if (opensClause && !text.includes(',') && words.length > 1) return 'open';
  if (!ended) return 'unpunctuated';
  if (questionOrder(text)) return 'question_form';
  return words.length <= 2 ? 'short' : 'complete';
}

/**
 * The silence after which this turn should be answered, from text and prosody; `decide` compares it with the
 * silence so far. A table of (text cue × contour) → class, then the call's own pace on top.
 */
export function answerAfter(input: Omit<EouInput, 'silenceMs'>, config: EouConfig = DEFAULT_EOU_CONFIG): EouTiming {
  const text = textCue(input.transcript);
  const c = input.contour;
  let cls: EouClass;
  let reason: string;
  switch (text) {
    case 'unknown':
      cls = 'uncertain';
      reason = 'no transcript yet';
      break;
    case 'empty':
      cls = 'uncertain';
      reason = 'no words';
      break;
    case 'question':
      // A yes/no question rises, a wh-question falls; a level ending is a list or a clause going on.
      cls = c === 'level' ? 'uncertain' : c === 'unknown' ? 'likely' : 'finished';
      reason = `question, ${c} pitch`;
      break;
    case 'question_form':
      // Without the question mark a rise is as likely a comma ("Can we move it to Friday, or …") as a question:
      // eSpeak, like people, ends a comma with a small rise (1.8–3.9 st in the last ~100 ms, measured).
      cls = c === 'falling' ? 'likely' : 'uncertain';
      reason = `question word order with a full stop, ${c} pitch`;
      break;
    case 'complete':
      // A statement that ends in a rise is the comma's continuation rise, with Whisper's full stop at a pause
      // ("I need to book a flight to Berlin," 450 ms "for next Tuesday"): wait for more, up to the maximum.
      cls = c === 'falling' ? 'finished' : c === 'unknown' ? 'likely' : c === 'rising' ? 'unfinished' : 'uncertain';
      reason = `full stop, ${c} pitch`;
      break;
    case 'short':
      cls = c === 'falling' ? 'finished' : c === 'unknown' ? 'likely' : 'uncertain';
      reason = `short answer, ${c} pitch`;
      break;
    case 'unpunctuated':
      // No punctuation to go on: a rise in a question's word order may be a question; on a statement it is a comma.
      cls = c === 'level' || (c === 'rising' && !questionOrder(input.transcript ?? '')) ? 'unfinished' : 'uncertain';
      reason = `no end punctuation, ${c} pitch`;
      break;
    case 'open':
      cls = c === 'falling' ? 'uncertain' : 'unfinished';
      reason = `open ending, ${c} pitch`;
      break;
    default: {
      const never: never = text;
      throw new Error(`unknown text cue ${String(never)}`);
    }
  }
  let afterMs: number;
  if (config.finishedMs === 0) {
    afterMs = config.fallbackMs;
  } else if (cls === 'finished' || cls === 'likely') {
    const base = cls === 'finished' ? config.finishedMs : config.likelyMs;
    afterMs = Math.min(config.fallbackMs, base + RETRACTION_PENALTY_MS * input.retractions);
  } else {
    afterMs = cls === 'unfinished' ? config.maxMs : config.fallbackMs;
    if (input.paceMs !== null && input.paceMs + PACE_MARGIN_MS > afterMs) {
      afterMs = Math.min(config.maxMs, input.paceMs + PACE_MARGIN_MS);
      reason += `, slow pace (${Math.round(input.paceMs)} ms pauses)`;
    }
  }
  return { afterMs, cls, text, reason };
}

/** The verdict at `silenceMs` of silence. */
export function decide(input: EouInput, config: EouConfig = DEFAULT_EOU_CONFIG): EouVerdict {
  const t = answerAfter(input, config);
  if (input.silenceMs >= t.afterMs) return { ...t, decision: 'answer' };
  return { ...t, decision: t.afterMs > config.fallbackMs ? 'not_done' : 'wait' };
}
