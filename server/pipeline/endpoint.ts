// Whether a transcript reads like a finished turn, so that EVA may answer before the full end-of-turn silence.
// Pure and deliberately conservative: it says yes only to a sentence that ends in . ? or ! and whose last word
// does not promise more ("and", "the", "because", "um"). A wrong yes is a false cut-off, which the agent
// retracts as soon as the person goes on; a wrong no only costs the usual end-of-turn wait.

/** Words after which a sentence is almost never over, whatever the punctuation says. */
const CONTINUES = new Set(
  (
    'a an the and or but nor so yet because since although though if unless whether than that which who whom whose ' +
    'to of in on at by for from with about into onto over under between through during before after as ' +
    'my your his its our their these those some any every each not ' +
    'is are was were be been am do does did have has had will would can could should shall may might must ' +
    'i he she we they um uh er erm hmm mm'
  ).split(' '),
);
/** A question mark ends a sentence even after such a word ("Who are we?", "Is it?"). */
const QUESTION_OK = /\?\s*["')\]]*$/;

export function looksComplete(transcript: string): boolean {
  const text = transcript.trim();
  if (!/[.?!]["')\]]*$/.test(text)) return false;
  if (/\.\.\.["')\]]*$|…["')\]]*$/.test(text)) return false; // trailing off
  const words = text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
  if (words.length < 2) return false;
  const last = words[words.length - 1]!;
  // A question mark is a strong signal on its own ("Who are you?"); a full stop needs a word that can end a sentence.
  if (QUESTION_OK.test(text)) return true;
  return !CONTINUES.has(last);
}
