import t from 'tap';
import { rmsOf as rms } from './level.js';
import { OpusDecoder, OpusEncoder, REPLY_ENCODER, type EncoderOptions } from './opus.js';

function tone(n: number, rate: number, hz: number, amp = 8000, phase0 = 0): Int16Array {
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(amp * Math.sin(phase0 + (2 * Math.PI * hz * i) / rate));
  return out;
}
t.test('a tone encoded at 24 kHz decodes at 16 kHz with its level and frequency kept', async (t) => {
  const enc = new OpusEncoder({ sampleRate: 24000 });
  const dec = new OpusDecoder(16000);
  t.teardown(() => { enc.close(); dec.close(); });
  const decoded: Int16Array[] = [];
  for (let f = 0; f < 50; f++) {
    const frame = tone(480, 24000, 440, 8000, (2 * Math.PI * 440 * f * 480) / 24000);
    const pkt = enc.encode(frame);
    t.ok(pkt.length > 0 && pkt.length < 400, 'packet has a plausible size');
    const pcm = dec.decode(pkt);
    t.equal(pcm.length, 320, '20 ms at 16 kHz');
    decoded.push(pcm);
  }
  // Skip the codec's start-up frames, then check level and zero crossings (440 Hz → 8.8 per 10 ms).
  const tail = Int16Array.from(decoded.slice(10).flatMap((a) => Array.from(a)));
  const level = rms(tail);
  t.ok(level > 4000 && level < 7500, `rms ${level.toFixed(0)} close to the input's 5657`);
  let zc = 0;
  for (let i = 1; i < tail.length; i++) if ((tail[i - 1]! < 0) !== (tail[i]! < 0)) zc++;
  const hz = zc / 2 / (tail.length / 16000);
  t.ok(Math.abs(hz - 440) < 15, `frequency ${hz.toFixed(1)} Hz`);
});

t.test('several codecs at once do not disturb each other', async (t) => {
  const pairs = Array.from({ length: 6 }, () => ({ enc: new OpusEncoder(), dec: new OpusDecoder() }));
  t.teardown(() => pairs.forEach((p) => { p.enc.close(); p.dec.close(); }));
  const levels = pairs.map(() => 0);
  for (let f = 0; f < 30; f++) {
    pairs.forEach((p, i) => {
      const amp = 2000 * (i + 1);
      const pcm = p.dec.decode(p.enc.encode(tone(480, 24000, 300 + 100 * i, amp, (2 * Math.PI * (300 + 100 * i) * f * 480) / 24000)));
      if (f >= 10) levels[i] += rms(pcm) / 20;
    });
  }
  for (let i = 1; i < levels.length; i++) t.ok(levels[i]! > levels[i - 1]!, `stream ${i} louder than ${i - 1}`);
});

t.test('wrong frame sizes and use after close are clear errors; close twice is harmless', async (t) => {
  const enc = new OpusEncoder();
  t.throws(() => enc.encode(new Int16Array(100)), /480 samples/);
  enc.close();
  enc.close();
  t.throws(() => enc.encode(new Int16Array(480)), /after close/);
  const dec = new OpusDecoder();
  t.throws(() => dec.decode(new Uint8Array([0xff, 0xff, 0xff])), 'corrupt packet throws');
  dec.close();
  dec.close();
});

t.test('hundreds of codecs alive at once (as with 100+ calls) all round-trip, across WASM memory growth', async (t) => {
  // opusscript's own wrapper failed here ("offset is out of bounds" after ~40 encoder/decoder pairs).
  const pairs = Array.from({ length: 150 }, () => ({ enc: new OpusEncoder({ sampleRate: 24000 }), dec: new OpusDecoder(16000) }));
  t.teardown(() => pairs.forEach((p) => (p.enc.close(), p.dec.close())));
  let worst = Infinity;
  let badLengths = 0;
  for (let f = 0; f < 12; f++) {
    for (const [i, p] of pairs.entries()) {
      const hz = 300 + i * 5;
      const pcm = p.dec.decode(p.enc.encode(tone(480, 24000, hz, 8000, (2 * Math.PI * hz * f * 480) / 24000)));
      if (pcm.length !== 320) badLengths++;
      if (f >= 8) worst = Math.min(worst, rms(pcm));
    }
  }
  t.equal(badLengths, 0, 'every packet decodes to 20 ms');
  // A 8000-amplitude sine has an RMS of ~5657; every pair still carries its own tone, none is garbled or silent.
  t.ok(worst > 3500 && worst < 8000, `every pair decodes its tone at level (lowest RMS ${worst.toFixed(0)})`);
  // Opening and closing many more does not leak: the heap stays usable.
  for (let i = 0; i < 300; i++) {
    const e = new OpusEncoder();
    e.encode(new Int16Array(480));
    e.close();
  }
  t.ok(pairs[0]!.enc.encode(new Int16Array(480)).length > 0, 'codecs still work after 300 more opened and closed');
});

t.test("EVA's voice is encoded CELT-only without the 4 ms look-ahead: 2.5 ms of codec delay instead of AUDIO's 6.5", async (t) => {
  // A 200 Hz → 4 kHz sweep aligns with its decoded copy at one lag only: the encoder's algorithmic delay.
  const rate = 24000;
  const n = rate; // 1 s
  const sweep = new Int16Array(n);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    phase += (2 * Math.PI * (200 + (3800 * i) / n)) / rate;
    sweep[i] = Math.round(8000 * Math.sin(phase));
  }
  const delayMs = (opts: EncoderOptions): number => {
    const enc = new OpusEncoder(opts);
    const dec = new OpusDecoder(rate);
    const out = new Int16Array(n);
    for (let f = 0; f < n / 480; f++) out.set(dec.decode(enc.encode(sweep.subarray(f * 480, f * 480 + 480))), f * 480);
    enc.close();
    dec.close();
    let best = -Infinity;
    let bestLag = -1;
    for (let lag = 0; lag < 480; lag++) {
      let s = 0;
      for (let i = 2400; i < n - 480; i++) s += sweep[i]! * out[i + lag]!;
      if (s > best) [best, bestLag] = [s, lag];
    }
    return (bestLag * 1000) / rate;
  };
  t.equal(REPLY_ENCODER.application, 'lowdelay', 'the reply encoder is RESTRICTED_LOWDELAY');
  t.equal(delayMs(REPLY_ENCODER), 2.5, 'reply encoder: 2.5 ms');
  t.equal(delayMs({ ...REPLY_ENCODER, application: 'audio' }), 6.5, 'AUDIO at the same settings: 6.5 ms');
});
