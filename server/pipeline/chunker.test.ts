import t from 'tap';
import { createChunker, stripMarkdown, type ChunkerOptions } from './chunker.js';

/** A seeded PRNG (Park–Miller), so random splits are the same on every run. */
function prng(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 48271) % 2147483647) / 2147483647;
}

function feed(deltas: readonly string[], opts?: ChunkerOptions): string[] {
  const c = createChunker(opts);
  const out: string[] = [];
  for (const d of deltas) out.push(...c.push(d));
  out.push(...c.flush());
  return out;
}
const whole = (s: string, opts?: ChunkerOptions) => feed([s], opts);
const charByChar = (s: string, opts?: ChunkerOptions) => feed([...s], opts);
function randomChunks(s: string, seed: number): string[] {
  const rnd = prng(seed);
  const parts: string[] = [];
  for (let i = 0; i < s.length; ) {
    const n = 1 + Math.floor(rnd() * 12);
    parts.push(s.slice(i, i + n));
    i += n;
  }
  return parts;
}
const noSpace = (s: string) => s.replace(/\s+/g, '');

interface Case {
  name: string;
  input: string;
  want: string[];
  opts?: ChunkerOptions;
}

const CASES: Case[] = [
  // The first piece: a clause once ≥ 20 chars, without waiting for the sentence.
  {
    name: 'first piece ends at a comma once 20 chars are in',
    input: 'Sure thing, let me look that up for you right now, it will only take a moment.',
    want: ['Sure thing, let me look that up for you right now,', 'it will only take a moment.'],
  },
  {
    name: 'first piece ends at a colon',
    input: 'Here is the plan for today: we start early. Then we rest.',
    want: ['Here is the plan for today:', 'we start early.', 'Then we rest.'],
  },
  {
    name: 'first piece ends at a semicolon',
    input: 'I tried it twice already; it did not work. Sorry.',
    want: ['I tried it twice already;', 'it did not work.', 'Sorry.'],
  },
  {
    name: 'first piece ends at an em dash, and at a spaced hyphen',
    input: 'The answer is simple — just ask her. Okay.',
    want: ['The answer is simple —', 'just ask her.', 'Okay.'],
  },
  {
    name: 'a spaced hyphen is a dash; a hyphen inside a word is not',
    input: 'I would love a well-known place - but not today. Thanks!',
    want: ['I would love a well-known place -', 'but not today.', 'Thanks!'],
  },
  {
    name: 'after the first piece, whole sentences: clauses do not split',
    input: 'Okay, here we go. First, we take the road north, then we turn left at the big tree. Done.',
    want: ['Okay, here we go.', 'First, we take the road north, then we turn left at the big tree.', 'Done.'],
  },
  {
    name: 'a first sentence shorter than the clause minimum still ends the first piece',
    input: 'Hi. I am Eva. How are you doing today? Good.',
    want: ['Hi. I am Eva.', 'How are you doing today?', 'Good.'],
  },
  {
    name: 'very short sentences merge with the next',
    input: 'That is great. Yes. No. Maybe later today.',
    want: ['That is great.', 'Yes. No. Maybe later today.'],
  },
  {
    name: 'question and exclamation marks, closing quotes stay with their sentence',
    input: 'Did she really say "no way!" to him? Yes, she did. Wow!',
    want: ['Did she really say "no way!" to him?', 'Yes, she did.', 'Wow!'],
  },
  // Not boundaries.
  {
    name: 'decimals and prices',
    input: 'The value of pi is 3.14159 exactly. It costs $4.50 or 0.5 euros.',
    want: ['The value of pi is 3.14159 exactly.', 'It costs $4.50 or 0.5 euros.'],
  },
  {
    name: 'a comma between digits is not a clause boundary',
    input: 'Our little town has 1,250,000 trees and 3,000 lakes. That is a lot.',
    want: ['Our little town has 1,250,000 trees and 3,000 lakes.', 'That is a lot.'],
  },
  {
    name: 'a colon between digits is not a clause boundary',
    input: 'The meeting starts at 10:30 and ends at 11:45 sharp. Okay then.',
    want: ['The meeting starts at 10:30 and ends at 11:45 sharp.', 'Okay then.'],
  },
  {
    name: 'abbreviations',
    input:
      'Mr. Smith and Mrs. Jones met Dr. Who on Baker St. at noon. They had tea, e.g. green tea, i.e. the best. ' +
      'We saw cats, dogs, etc. and more birds vs. bees in the U.S. today.',
    want: [
      'Mr. Smith and Mrs. Jones met Dr. Who on Baker St. at noon.',
      'They had tea, e.g. green tea, i.e. the best.',
      'We saw cats, dogs, etc. and more birds vs. bees in the U.S. today.',
    ],
  },
  {
    name: 'a.m. and p.m.',
    input: 'Meet me at 10:30 a.m. tomorrow, or at 5 p.m. on Friday. Bye now, friend.',
    want: ['Meet me at 10:30 a.m. tomorrow,', 'or at 5 p.m. on Friday.', 'Bye now, friend.'],
  },
  {
    name: 'single initials',
    input: 'I just read The Hobbit by J. R. R. Tolkien last week. It was great.',
    want: ['I just read The Hobbit by J. R. R. Tolkien last week.', 'It was great.'],
  },
  {
    name: 'an ellipsis followed by a lowercase word or "I" continues; before a capital it ends',
    input: 'Well... I think we should go there. Hmm... Okay, fine then. So… maybe we could try again later.',
    want: ['Well... I think we should go there.', 'Hmm... Okay, fine then.', 'So… maybe we could try again later.'],
  },
  {
    name: 'an ellipsis before a lowercase word inside the first clause',
    input: 'It was... interesting, to say the least.',
    want: ['It was... interesting,', 'to say the least.'],
  },
  {
    name: 'URLs and emails',
    input: 'Visit example.com/docs or www.test.org for details. Email me at a.b@c.io today. Thanks a lot!',
    want: ['Visit example.com/docs or www.test.org for details.', 'Email me at a.b@c.io today.', 'Thanks a lot!'],
  },
  {
    name: 'a URL with a scheme and a query string',
    input: 'You can open the page at https://example.com/path?x=1 in your browser. Done.',
    want: ['You can open the page at https://example.com/path?x=1 in your browser.', 'Done.'],
  },
  {
    name: 'version numbers',
    input: 'Please update to version v1.2.3 before Friday. Node 20.11.1 works too.',
    want: ['Please update to version v1.2.3 before Friday.', 'Node 20.11.1 works too.'],
  },
  {
    name: 'a sentence that ends in a number or a domain still ends',
    input: 'The year was 2023. Then came example.com. And that was it.',
    want: ['The year was 2023.', 'Then came example.com.', 'And that was it.'],
  },
  // Lines and markdown.
  {
    name: 'line breaks end sentences; blank lines add nothing',
    input: 'First line without punctuation\nSecond line here\n\nThird line is last',
    want: ['First line without punctuation', 'Second line here', 'Third line is last'],
  },
  {
    name: 'markdown: bold, bullets, inline code, headings',
    input: "**Sure!** Here's a list:\n\n- **Apples** are red.\n- Pears are `green`.\n\n# Summary\nThat's all, folks.",
    want: ["Sure! Here's a list:", 'Apples are red.', 'Pears are green.', "Summary That's all, folks."],
  },
  {
    name: 'markdown: code fences and their language tag, numbered items, star bullets, quotes',
    input: 'Run this:\n```bash\nnpm test\n```\nThen check it.\n1. Open the file.\n* Save it now.\n> Quoted words here.',
    want: ['Run this: npm test', 'Then check it.', '1. Open the file.', 'Save it now.', 'Quoted words here.'],
  },
  {
    name: 'markdown: horizontal rules vanish',
    input: 'Part one is done.\n\n---\n\nPart two starts now.\n* * *\nPart three.',
    want: ['Part one is done.', 'Part two starts now.', 'Part three.'],
  },
  {
    name: 'markdown: italics go, a star between numbers stays, a hash inside text stays',
    input: 'This is *really* important to know. Our #1 rule: 2 * 3 is six.',
    want: ['This is really important to know.', 'Our #1 rule: 2 * 3 is six.'],
  },
  // Long text.
  {
    name: 'past maxChars without any boundary: cut at a word boundary',
    input: 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen',
    opts: { maxChars: 60 },
    want: ['one two three four five six seven eight nine ten eleven', 'twelve thirteen fourteen fifteen sixteen'],
  },
  {
    name: 'past maxChars: cut at the last clause boundary first',
    input: 'Okay, that is fine. The road, which is long and winding, goes on and on and on forever and ever',
    opts: { maxChars: 50, clauseAfterChars: 200 },
    want: ['Okay, that is fine.', 'The road, which is long and winding,', 'goes on and on and on forever and ever'],
  },
  {
    name: 'a long sentence is cut at its next clause boundary past clauseAfterChars',
    input: 'Okay, that is fine. We walked along the river for hours, and then we rested under a tree, and then we went home.',
    opts: { clauseAfterChars: 30 },
    want: ['Okay, that is fine.', 'We walked along the river for hours,', 'and then we rested under a tree,', 'and then we went home.'],
  },
  {
    name: 'a word longer than maxChars is cut hard',
    input: 'a'.repeat(30),
    opts: { maxChars: 20 },
    want: ['a'.repeat(20), 'a'.repeat(10)],
  },
  {
    name: 'empty and whitespace-only replies give nothing',
    input: ' \n\n  ',
    want: [],
  },
];

t.test('chunker table: whole, char by char and in seeded random chunks give the expected pieces', async (t) => {
  for (const c of CASES) {
    t.same(whole(c.input, c.opts), c.want, `${c.name} (whole)`);
    t.same(charByChar(c.input, c.opts), c.want, `${c.name} (char by char)`);
    for (const seed of [1, 2, 3]) t.same(feed(randomChunks(c.input, seed), c.opts), c.want, `${c.name} (random chunks, seed ${seed})`);
  }
});

t.test('concatenating all pieces gives the cleaned input, modulo whitespace', async (t) => {
  for (const c of CASES) t.equal(noSpace(whole(c.input, c.opts).join('')), noSpace(stripMarkdown(c.input)), c.name);
});

t.test('an ambiguous tail is held until the next character decides it', async (t) => {
  const c = createChunker();
  t.same(c.push('It costs 3.'), [], '"3." could be a decimal');
  t.same(c.push('14'), []);
  t.same(c.push(' dollars and twenty cents.'), [], 'a full stop at the end waits for what follows');
  t.same(c.push(' And'), ['It costs 3.14 dollars and twenty cents.']);
  t.same(c.flush(), ['And']);

  const d = createChunker();
  t.same(d.push('Hello there my friend,'), [], 'a comma at the end could be 1,000');
  t.same(d.push(' how'), ['Hello there my friend,'], 'released as soon as the space arrives');
  t.same(d.push(' are you?'), []);
  t.same(d.flush(), ['how are you?']);

  const e = createChunker();
  t.same(e.push('We waited for a very long time...'), []);
  t.same(e.push(' '), [], 'an ellipsis waits for the next word');
  t.same(e.push('then'), [], 'a lowercase word continues the sentence');
  t.same(e.push(' it rained. Then'), ['We waited for a very long time... then it rained.']);
  t.same(e.flush(), ['Then']);

  const f = createChunker();
  t.same(f.push('*'), [], 'a star could become bold');
  t.same(f.push('*Note'), []);
  t.same(f.push('**: this is important. More'), ['Note: this is important.']);
  t.same(f.flush(), ['More']);
});

t.test('flush() resets: the next reply starts with the first-clause rule again', async (t) => {
  const c = createChunker();
  t.same(c.push('First reply is long enough, and so on and so forth. '), ['First reply is long enough,', 'and so on and so forth.']);
  t.same(c.flush(), []);
  t.same(c.push('Second reply is long enough, and so on. '), ['Second reply is long enough,']);
  t.same(c.flush(), ['and so on.']);
});

t.test('property: random tricky text gives the same pieces whole, char by char and chunked', async (t) => {
  const TOKENS = [
    'Mr.', 'Dr.', 'e.g.', 'U.S.', 'a.m.', 'J.', 'R.', 'etc.', '3.14', '$4.50', '1,000,000', '10:30', 'v1.2.3',
    'example.com', 'a.b@c.io', 'https://x.io/a?b=1', '...', '…', 'well', 'I', 'think', 'so', 'the', 'big', 'red',
    'house', 'is', 'Here', 'It', 'We', '.', ',', ';', ':', '!', '?', '—', '-', '–', '"', ')', '\n', '\n\n', '\n- ',
    '\n# ', '**', '*', '`', '```', '\n---\n', '2', '*', 'x',
  ];
  const rnd = prng(42);
  let checked = 0;
  for (let k = 0; k < 300; k++) {
    const n = 5 + Math.floor(rnd() * 60);
    let text = '';
    for (let i = 0; i < n; i++) {
      text += TOKENS[Math.floor(rnd() * TOKENS.length)]!;
      if (rnd() < 0.7) text += ' ';
    }
    const opts = k % 3 === 0 ? { maxChars: 40, clauseAfterChars: 25 } : undefined;
    const a = whole(text, opts);
    const b = charByChar(text, opts);
    const c = feed(randomChunks(text, k + 1), opts);
    const max = opts?.maxChars ?? 220;
    if (
      JSON.stringify(a) !== JSON.stringify(b) ||
      JSON.stringify(a) !== JSON.stringify(c) ||
      noSpace(a.join('')) !== noSpace(stripMarkdown(text)) ||
      a.some((p) => p.length === 0 || p.length > max || p !== p.trim())
    ) {
      t.fail(`text ${JSON.stringify(text)}`, { whole: a, charByChar: b, chunked: c });
      return;
    }
    checked++;
  }
  t.equal(checked, 300, '300 random texts agree');
});
