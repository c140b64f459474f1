import t from 'tap';
import { WavStreamDecoder, decodeWav, encodeWav, wavHeader } from './wav.js';

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

t.test('wavHeader describes the data that follows it', async (t) => {
  const h = wavHeader(4000, 24000, 2);
  t.equal(h.length, 44);
  t.equal(h.readUInt32LE(4), 36 + 4000);
  t.equal(h.readUInt16LE(22), 2);
  t.equal(h.readUInt32LE(28), 24000 * 4);
  t.equal(h.readUInt32LE(40), 4000);
});

t.test('a streamed WAV gives the same samples whatever the chunk boundaries', async (t) => {
  const s = Int16Array.from({ length: 1001 }, (_, i) => (i * 37) % 30000 - 15000);
  const wav = encodeWav(s, 22050);
  for (const size of [1, 3, 7, 44, 45, 500, wav.length]) {
    const d = new WavStreamDecoder();
    const parts: number[] = [];
    for (let off = 0; off < wav.length; off += size) parts.push(...d.push(wav.subarray(off, off + size)));
    d.end();
    t.same(parts, Array.from(s), `chunks of ${size} bytes`);
    t.equal(d.sampleRate, 22050);
  }
});

t.test('a streamed WAV with an open data size takes everything; a declared size stops at its end', async (t) => {
  const open = encodeWav(Int16Array.from([1, 2, 3]), 8000);
  open.writeUInt32LE(0xffffffff, 40);
  const d = new WavStreamDecoder();
  t.same(Array.from(d.push(Buffer.concat([open, Buffer.from(Int16Array.from([4, 5]).buffer)]))), [1, 2, 3, 4, 5]);
  const closed = encodeWav(Int16Array.from([1, 2]), 8000);
  const d2 = new WavStreamDecoder();
  t.same(Array.from(d2.push(Buffer.concat([closed, Buffer.from('LIST\x04\x00\x00\x00abcd', 'latin1')]))), [1, 2]);
  t.same(Array.from(d2.push(Buffer.from([9, 9]))), []);
});

t.test('a streamed WAV that is not PCM16, or ends in its header, is a clear error', async (t) => {
  t.throws(() => new WavStreamDecoder().push(Buffer.from('ID3\x04garbage that is long enough')), /not a WAV/);
  const f = encodeWav(new Int16Array(4), 8000);
  f.writeUInt16LE(3, 20);
  t.throws(() => new WavStreamDecoder().push(f), /16-bit PCM only/);
  const d = new WavStreamDecoder();
  d.push(encodeWav(new Int16Array(4), 8000).subarray(0, 20));
  t.throws(() => d.end(), /inside its header/);
  t.throws(() => new WavStreamDecoder().end(), /empty WAV stream/);
});
