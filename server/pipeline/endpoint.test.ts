import t from 'tap';
import { looksComplete } from './endpoint.js';

const cases: [string, boolean, string][] = [
  ['What is the capital of France?', true, 'a question'],
  ['Who are you?', true, 'a question ending in a pronoun'],
  ['Where are we?', true, 'a question ending in a subject pronoun'],
  ['Please help me.', true, 'an object pronoun can end a sentence'],
  ['Me and my brother and I.', false, 'a subject pronoun after a full stop'],
  ['Tell me a joke.', true, 'a statement'],
  ['No, thank you.', true, 'short answer'],
  ['Wow!', false, 'one word is too little to be sure'],
  ['Yes.', false, 'one word'],
  ['I was wondering if you could', false, 'no punctuation: mid-sentence'],
  ['I want to go to the.', false, 'ends on an article'],
  ['Can you help me with.', false, 'ends on a preposition'],
  ['I think that.', false, 'ends on a conjunction'],
  ['So I was thinking, um.', false, 'a filler'],
  ['Let me think...', false, 'trailing off'],
  ['Let me think…', false, 'trailing off (ellipsis character)'],
  ['"Stop right there."', true, 'closing quote after the full stop'],
  ['', false, 'empty'],
  ['   ', false, 'blank'],
  ['It costs 4.50 dollars.', true, 'decimal inside'],
  ['Play the song by U2.', true, 'ends on a number-letter word'],
];

for (const [text, want, why] of cases) {
  t.equal(looksComplete(text), want, `${JSON.stringify(text)} → ${want} (${why})`);
}
