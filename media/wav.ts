// RIFF/WAVE for 16-bit PCM: what STT services take, what /tts returns, and the test fixtures' format.

export interface Wav {
  samples: Int16Array;
  sampleRate: number;
  channels: number;
}

export function encodeWav(samples: Int16Array, sampleRate: number): Buffer {
  const data = samples.byteLength;
  const buf = Buffer.alloc(44 + data);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + data, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(sampleRate, 24);
  buf.writeUInt32LE(sampleRate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(data, 40);
  Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength).copy(buf, 44);
  return buf;
}

/** Decode a 16-bit PCM WAV (any channel count, mixed down to mono). Throws a clear error on anything else. */
export function decodeWav(buf: Uint8Array): Wav {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 12 || b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a WAV file (no RIFF/WAVE header)');
  }
  let off = 12;
  let fmt: { format: number; channels: number; rate: number; bits: number } | null = null;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    let size = b.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > b.length) throw new Error('WAV fmt chunk is too short');
      fmt = { format: b.readUInt16LE(body), channels: b.readUInt16LE(body + 2), rate: b.readUInt32LE(body + 4), bits: b.readUInt16LE(body + 14) };
      if (fmt.format === 0xfffe && size >= 26) fmt.format = b.readUInt16LE(body + 24); // WAVE_FORMAT_EXTENSIBLE
    } else if (id === 'data') {
      if (!fmt) throw new Error('WAV data chunk before fmt chunk');
      if (fmt.format !== 1 || fmt.bits !== 16) throw new Error(`unsupported WAV encoding (format ${fmt.format}, ${fmt.bits} bits); 16-bit PCM only`);
      if (fmt.channels < 1) throw new Error('WAV has no channels');
      // Streamed WAVs (e.g. from TTS servers) may carry 0 or 0xFFFFFFFF as the data size: take what is there.
      if (size === 0 || size === 0xffffffff || body + size > b.length) size = b.length - body;
      const frames = Math.floor(size / (2 * fmt.channels));
      const samples = new Int16Array(frames);
      for (let i = 0; i < frames; i++) {
        let acc = 0;
        for (let c = 0; c < fmt.channels; c++) acc += b.readInt16LE(body + (i * fmt.channels + c) * 2);
        samples[i] = Math.round(acc / fmt.channels);
      }
      return { samples, sampleRate: fmt.rate, channels: fmt.channels };
    }
    off = body + size + (size & 1);
  }
  throw new Error('WAV has no data chunk');
}
