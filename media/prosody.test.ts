import t from 'tap';
import { createEspeakTts, type EspeakTts } from '../server/providers/tts-espeak.js';
import { contourOf, medianInPlace, prosodyOf, type ProsodyFeatures } from './prosody.js';
import { createResampler } from './resample.js';

const RATE = 16000;

/** eSpeak NG's audio for `text`, at its own rate. */
async function speak(tts: EspeakTts, text: string): Promise<Int16Array> {
  const parts: Int16Array[] = [];
  for await (const c of tts.synthesize(text, { signal: new AbortController().signal })) if (c.type === 'audio') parts.push(c.samples);
  return concat(parts);
}

async function to16k(pcm: Int16Array, rate: number): Promise<Int16Array> {
  const rs = await createResampler(rate, RATE);
  try {
    return concat([rs.process(pcm), rs.flush()]);
  } finally {
    rs.destroy();
  }
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/** A 1 s sine: held at f1 for 0.4 s, then gliding (evenly in semitones) to f2; 10 ms fades. */
function glide(f1: number, f2: number, rate = RATE): Int16Array {
  const n = rate;
  const hold = 0.4 * n;
  const out = new Int16Array(n);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    phase += (2 * Math.PI * f1 * (f2 / f1) ** Math.max(0, (i - hold) / (n - hold))) / rate;
    out[i] = Math.round(8000 * Math.min(1, i / (rate / 100), (n - i) / (rate / 100)) * Math.sin(phase));
  }
  return out;
}

function show(f: ProsodyFeatures): string {
  const v = (x: number | null) => (x === null ? '–' : x.toFixed(2));
  return `slope ${v(f.pitchSlopeSt)} st, drop ${v(f.finalDropSt)} st, rise ${v(f.finalRiseSt)} st, energy ${v(f.energyDropDb)} dB, lengthening ${v(f.finalLengthening)}, voiced ${f.voicedMs} ms, pitched ${f.pitchedMs} ms → ${contourOf(f)}`;
}

t.test('a synthetic tone', async (t) => {
  await t.test('gliding 200→150 Hz is falling, 150→200 Hz rising, held at 150 Hz level', async (t) => {
    const down = prosodyOf(glide(200, 150));
    const up = prosodyOf(glide(150, 200));
    const flat = prosodyOf(glide(150, 150));
    for (const [name, f] of [['200→150', down], ['150→200', up], ['150', flat]] as const) t.comment(`${name} Hz: ${show(f)}`);
    t.equal(contourOf(down), 'falling');
    t.equal(contourOf(up), 'rising');
    t.equal(contourOf(flat), 'level');
    // 5 semitones over 0.6 s: 2.9 st per 350 ms.
    t.ok(Math.abs(down.pitchSlopeSt! + 2.9) < 0.3, `slope ${down.pitchSlopeSt}`);
    t.ok(Math.abs(up.pitchSlopeSt! - 2.9) < 0.3, `slope ${up.pitchSlopeSt}`);
    t.ok(Math.abs(flat.pitchSlopeSt!) < 0.1 && Math.abs(flat.finalDropSt!) < 0.1);
    t.equal(flat.finalLengthening, null, 'one steady tone has no syllable nuclei');
  });

  await t.test('at another sample rate reads the same', async (t) => {
    const f = prosodyOf(glide(200, 150, 22050), { sampleRate: 22050 });
    t.comment(`200→150 Hz at 22050 Hz: ${show(f)}`);
    t.equal(contourOf(f), 'falling');
    t.ok(Math.abs(f.pitchSlopeSt! + 2.9) < 0.3);
  });

  await t.test('silence has no pitch and an unknown contour', async (t) => {
    for (const pcm of [new Int16Array(RATE), new Int16Array(0), new Int16Array(100)]) {
      const f = prosodyOf(pcm);
      t.same(f, { pitchSlopeSt: null, finalDropSt: null, finalRiseSt: null, energyDropDb: 0, finalLengthening: null, voicedMs: 0, pitchedMs: 0 });
      t.equal(contourOf(f), 'unknown');
    }
  });

  await t.test('an invalid sample rate throws a RangeError', async (t) => {
    t.throws(() => prosodyOf(new Int16Array(10), { sampleRate: 0 }), RangeError);
  });
});

t.test('eSpeak NG speech', async (t) => {
  const tts = await createEspeakTts();
  t.teardown(() => tts.close());
  const clips = new Map<string, Int16Array>();
  const clip = async (text: string): Promise<Int16Array> => {
    let pcm = clips.get(text);
    if (!pcm) clips.set(text, (pcm = await to16k(await speak(tts, text), tts.sampleRate)));
    return pcm;
  };
  const measure = async (text: string): Promise<ProsodyFeatures> => {
    const f = prosodyOf(await clip(text));
    t.comment(`${JSON.stringify(text)}: ${show(f)}`);
    return f;
  };

  const pairs = [
    'I would like to order a large pizza',
    'My favourite colour is blue',
    'I need a table for two',
    'We could meet on Tuesday',
    'The meeting is at noon',
    'Let me think about it',
  ];

  await t.test('a full stop falls and ends lower than the same words with a comma', async (t) => {
    for (const words of pairs) {
      const comma = await measure(`${words},`);
      const stop = await measure(`${words}.`);
      t.equal(contourOf(stop), 'falling', `"${words}." falls`);
      t.not(contourOf(comma), 'falling', `"${words}," does not fall`);
      // Measured: the full stop's drop is 1.3–3.6 st below the comma's.
      if (stop.finalDropSt !== null && comma.finalDropSt !== null) {
        t.ok(stop.finalDropSt < comma.finalDropSt - 1, `drop ${stop.finalDropSt} (.) vs ${comma.finalDropSt} (,)`);
      } else {
        // Too few pitched frames in the reference stretch (seen once on a loaded machine): the slope must say it.
        t.ok(stop.pitchSlopeSt! < comma.pitchSlopeSt! - 1, `slope ${stop.pitchSlopeSt} (.) vs ${comma.pitchSlopeSt} (,), drop unmeasured`);
      }
      // A full stop ends at its low point (rise 0–0.4 st); eSpeak's comma rises from a dip at the end (1.8–3.9).
      t.ok(stop.finalRiseSt! < 1 && comma.finalRiseSt! > stop.finalRiseSt! + 1, `rise ${stop.finalRiseSt} (.) vs ${comma.finalRiseSt} (,)`);
    }
  });

  await t.test('a yes/no question rises', async (t) => {
    for (const text of ['Is it going to rain tomorrow?', 'Do you want some coffee?', 'Can you hear me?', 'Are you open on Sunday?']) {
      const f = await measure(text);
      t.equal(contourOf(f), 'rising', text);
    }
  });

  await t.test('trailing silence and a quiet line are trimmed: the features are those of the voice', async (t) => {
    const pcm = await clip('I would like to order a large pizza.');
    const bare = prosodyOf(pcm);
    const padded = new Int16Array(pcm.length + 0.6 * RATE);
    padded.set(pcm);
    t.same(prosodyOf(padded), bare, '0.6 s of digital silence');
    let seed = 1;
    const noisy = padded.map((s) => s + (((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) % 61) - 30); // ≈ −67 dBFS
    const f = prosodyOf(noisy);
    t.comment(`with −67 dBFS noise: ${show(f)}`);
    t.equal(contourOf(f), 'falling');
    t.ok(Math.abs(f.finalDropSt! - bare.finalDropSt!) < 0.5 && Math.abs(f.voicedMs - bare.voicedMs) <= 20);
  });

  await t.test('endSample says where the voice ended', async (t) => {
    const pcm = await clip('My favourite colour is blue,');
    const padded = new Int16Array(pcm.length + RATE);
    padded.set(pcm);
    padded.fill(3000, pcm.length + 0.3 * RATE); // loud, but after the end that the caller gives
    const f = prosodyOf(padded, { endSample: pcm.length });
    t.comment(`with endSample: ${show(f)}`);
    t.equal(contourOf(f), contourOf(prosodyOf(pcm)));
    t.ok(Math.abs(f.finalRiseSt! - prosodyOf(pcm).finalRiseSt!) < 0.5);
  });

  await t.test('the native 22050 Hz audio gives the same contours', async (t) => {
    for (const text of ['My favourite colour is blue,', 'My favourite colour is blue.', 'Is it going to rain tomorrow?']) {
      const native = prosodyOf(await speak(tts, text), { sampleRate: tts.sampleRate });
      t.comment(`${JSON.stringify(text)} at 22050 Hz: ${show(native)}`);
      t.equal(contourOf(native), contourOf(prosodyOf(await clip(text))), text);
    }
  });

  await t.test('one call costs a couple of milliseconds, whatever the length of the audio', async (t) => {
    const speech = concat(await Promise.all([...pairs.map((w) => clip(`${w},`)), clip('Is it going to rain tomorrow?')]));
    for (const [name, pcm] of [
      ['1 s', speech.subarray(speech.length - RATE)],
      ['5 s', speech.subarray(speech.length - 5 * RATE)],
      ['all', speech],
    ] as const) {
      for (let i = 0; i < 20; i++) prosodyOf(pcm);
      const ms: number[] = [];
      for (let i = 0; i < 100; i++) {
        const t0 = performance.now();
        prosodyOf(pcm);
        ms.push(performance.now() - t0);
      }
      ms.sort((a, b) => a - b);
      t.comment(`${name} (${(pcm.length / RATE).toFixed(1)} s): median ${ms[50]!.toFixed(2)} ms, p90 ${ms[90]!.toFixed(2)} ms`);
    }
    t.pass('timings are in the comments');
  });
});

t.test('the in-place median matches a plain sort, odd and even counts, by insertion and by typed sort', async (t) => {
  let seed = 11;
  const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const scratch = new Float64Array(64);
  let wrong = 0;
  for (let n = 1; n <= 40; n++) {
    for (let round = 0; round < 20; round++) {
      // Repeated values too: medians of pitch frames often tie.
      const v = Array.from({ length: n }, () => Math.round(rnd() * 20) / 4 - 2.5);
      scratch.set(v);
      const s = [...v].sort((a, b) => a - b);
      const want = n % 2 ? s[n >> 1]! : (s[(n >> 1) - 1]! + s[n >> 1]!) / 2;
      if (medianInPlace(scratch, n) !== want) wrong++;
    }
  }
  t.equal(wrong, 0, '800 arrays of 1–40 values');
  t.ok(Number.isNaN(medianInPlace(scratch, 0)), 'no values: NaN');
});
