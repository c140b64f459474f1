import t from 'tap';
import { heardText, type SpokenSegment } from './heard.js';

const words = (text: string, msPerWord: number) => {
  const out: SpokenSegment['words'] = [];
  const re = /\S+/g;
  let m: RegExpExecArray | null;
  let i = 0;
  while ((m = re.exec(text))) out.push({ audioMs: i++ * msPerWord, start: m.index, end: m.index + m[0].length });
  return out;
};

const a = 'Once upon a time,';
const b = 'there was a clever fox.';
const segs: SpokenSegment[] = [
  { id: 1, text: a, words: words(a, 200), totalMs: 800 },
  { id: 2, text: b, words: words(b, 200), totalMs: 1000 },
];

t.test('cut inside a segment keeps the whole earlier segments and the words already started', async (t) => {
  t.equal(heardText(segs, { segment: 2, endMs: 250 }), 'Once upon a time, there was');
  t.equal(heardText(segs, { segment: 1, endMs: 10 }), 'Once');
  t.equal(heardText(segs, { segment: 2, endMs: 1000 }), 'Once upon a time, there was a clever fox.');
});

t.test('nothing played means nothing heard', async (t) => {
  t.equal(heardText(segs, null), '');
});

t.test('without word timing it keeps whole sentences only', async (t) => {
  const plain = segs.map((s) => ({ ...s, words: [] }));
  t.equal(heardText(plain, { segment: 2, endMs: 500 }), 'Once upon a time,');
  t.equal(heardText(plain, { segment: 1, endMs: 300 }), '');
});
