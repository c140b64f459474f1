import t from 'tap';
import { decodeWav, encodeWav } from './wav.js';

t.test('encode then decode gives the samples back', async (t) => {
  const s = Int16Array.from([0, 1, -1, 32767, -32768, 1234]);
  const wav = encodeWav(s, 16000);
  t.equal(wav.length, 44 + 12);
  t.equal(wav.toString('ascii', 0, 4), 'RIFF');
  const d = decodeWav(wav);
  t.same(Array.from(d.samples), Array.from(s));
  t.equal(d.sampleRate, 16000);
});

t.test('stereo is mixed down to mono and unknown chunks are skipped', async (t) => {
  const body = Buffer.alloc(8);
  body.writeInt16LE(100, 0);
  body.writeInt16LE(300, 2);
  body.writeInt16LE(-50, 4);
  body.writeInt16LE(-150, 6);
  const fmt = Buffer.alloc(16);
  fmt.writeUInt16LE(1, 0);
  fmt.writeUInt16LE(2, 2);
  fmt.writeUInt32LE(48000, 4);
  fmt.writeUInt16LE(16, 14);
  const chunk = (id: string, b: Buffer) => Buffer.concat([Buffer.from(id, 'ascii'), Buffer.from(Uint32Array.of(b.length).buffer), b]);
  const wav = Buffer.concat([Buffer.from('RIFF\0\0\0\0WAVE', 'ascii'), chunk('fmt ', fmt), chunk('LIST', Buffer.from('abc\0')), chunk('data', body)]);
  const d = decodeWav(wav);
  t.same(Array.from(d.samples), [200, -100]);
  t.equal(d.channels, 2);
});

t.test('garbage and non-PCM files are clear errors', async (t) => {
  t.throws(() => decodeWav(Buffer.from('hello world, not a wav')), /not a WAV/);
  const w = encodeWav(new Int16Array(4), 8000);
  w.writeUInt16LE(3, 20); // float
  t.throws(() => decodeWav(w), /16-bit PCM only/);
  t.throws(() => decodeWav(encodeWav(new Int16Array(4), 8000).subarray(0, 30)), /no data chunk|too short/);
});
