// RIFF/WAVE for 16-bit PCM: what STT services take, what /tts returns, and the test fixtures' format.
// `decodeWav` takes a whole file; `WavStreamDecoder` takes one as it arrives (TTS servers stream WAV), yielding
// samples as soon as whole frames are in.

export interface Wav {
  samples: Int16Array;
  sampleRate: number;
  channels: number;
}

/** The 44-byte header of a PCM16 WAV whose data chunk holds `dataBytes` bytes. */
export function wavHeader(dataBytes: number, sampleRate: number, channels = 1): Buffer {
  const buf = Buffer.alloc(44);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(Math.min(0xffffffff, 36 + dataBytes), 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(channels, 22);
  buf.writeUInt32LE(sampleRate, 24);
  buf.writeUInt32LE(sampleRate * 2 * channels, 28);
  buf.writeUInt16LE(2 * channels, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(Math.min(0xffffffff, dataBytes), 40);
  return buf;
}

export function encodeWav(samples: Int16Array, sampleRate: number): Buffer {
  const buf = Buffer.alloc(44 + samples.byteLength);
  wavHeader(samples.byteLength, sampleRate).copy(buf, 0);
  Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength).copy(buf, 44);
  return buf;
}

interface WavLayout {
  channels: number;
  sampleRate: number;
  /** Offset of the first sample byte. */
  dataOffset: number;
  /** Declared data size, or null when the header leaves it open (0 or 0xFFFFFFFF: a streamed WAV). */
  dataSize: number | null;
}

/** Parse the header up to the data chunk; null if `b` is too short to tell yet. Throws on anything not PCM16. */
function parseLayout(b: Buffer): WavLayout | null {
  if (b.length < 12) {
    if (!Buffer.from('RIFF').subarray(0, Math.min(4, b.length)).equals(b.subarray(0, Math.min(4, b.length)))) {
      throw new Error('not a WAV file (no RIFF/WAVE header)');
    }
    return null;
  }
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a WAV file (no RIFF/WAVE header)');
  }
  let off = 12;
  let fmt: { format: number; channels: number; rate: number; bits: number } | null = null;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      if (size < 16) throw new Error('WAV fmt chunk is too short');
      if (body + Math.min(size, 26) > b.length) return null;
      fmt = { format: b.readUInt16LE(body), channels: b.readUInt16LE(body + 2), rate: b.readUInt32LE(body + 4), bits: b.readUInt16LE(body + 14) };
      if (fmt.format === 0xfffe && size >= 26) fmt.format = b.readUInt16LE(body + 24); // WAVE_FORMAT_EXTENSIBLE
    } else if (id === 'data') {
      if (!fmt) throw new Error('WAV data chunk before fmt chunk');
      if (fmt.format !== 1 || fmt.bits !== 16) throw new Error(`unsupported WAV encoding (format ${fmt.format}, ${fmt.bits} bits); 16-bit PCM only`);
      if (fmt.channels < 1) throw new Error('WAV has no channels');
      // Streamed WAVs (e.g. from TTS servers) may carry 0 or 0xFFFFFFFF as the data size: take what is there.
      return { channels: fmt.channels, sampleRate: fmt.rate, dataOffset: body, dataSize: size === 0 || size === 0xffffffff ? null : size };
    }
    off = body + size + (size & 1);
  }
  return null;
}

function mixDown(b: Buffer, offset: number, frames: number, channels: number): Int16Array {
  const samples = new Int16Array(frames);
  if (channels === 1) {
    for (let i = 0; i < frames; i++) samples[i] = b.readInt16LE(offset + i * 2);
    return samples;
  }
  for (let i = 0; i < frames; i++) {
    let acc = 0;
    for (let c = 0; c < channels; c++) acc += b.readInt16LE(offset + (i * channels + c) * 2);
    samples[i] = Math.round(acc / channels);
  }
  return samples;
}

/** Decode a 16-bit PCM WAV (any channel count, mixed down to mono). Throws a clear error on anything else. */
export function decodeWav(buf: Uint8Array): Wav {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const layout = parseLayout(b);
  if (!layout) {
    if (b.length < 12) throw new Error('not a WAV file (no RIFF/WAVE header)');
    throw new Error('WAV has no data chunk');
  }
  let size = layout.dataSize ?? b.length - layout.dataOffset;
  if (layout.dataOffset + size > b.length) size = b.length - layout.dataOffset;
  const frames = Math.floor(size / (2 * layout.channels));
  return { samples: mixDown(b, layout.dataOffset, frames, layout.channels), sampleRate: layout.sampleRate, channels: layout.channels };
}

/** Header bytes kept while looking for the data chunk; real headers are < 1 KB, LIST/metadata chunks a few KB. */
const MAX_HEADER_BYTES = 64 * 1024;

/**
 * A WAV decoder fed in pieces as they arrive: `push` returns the whole mono frames now available (possibly
 * none), `end` checks that a header was seen. Bytes after the declared data size are ignored.
 */
export class WavStreamDecoder {
  sampleRate = 0;
  channels = 0;
  private head: Buffer | null = Buffer.alloc(0);
  private rest: Buffer = Buffer.alloc(0);
  /** Data bytes still expected, Infinity when the header left the size open. */
  private left = Infinity;

  push(chunk: Uint8Array): Int16Array {
    let data: Buffer;
    if (this.head) {
      const b = Buffer.concat([this.head, chunk]);
      const layout = parseLayout(b);
      if (!layout) {
        if (b.length > MAX_HEADER_BYTES) throw new Error(`WAV header over ${MAX_HEADER_BYTES} bytes without a data chunk`);
        this.head = b;
        return new Int16Array(0);
      }
      this.head = null;
      this.sampleRate = layout.sampleRate;
      this.channels = layout.channels;
      this.left = layout.dataSize ?? Infinity;
      data = b.subarray(layout.dataOffset);
    } else {
      data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    if (data.length > this.left) data = data.subarray(0, this.left);
    this.left -= data.length;
    const all = this.rest.length ? Buffer.concat([this.rest, data]) : data;
    const frameBytes = 2 * this.channels;
    const frames = Math.floor(all.length / frameBytes);
    // Copy the partial frame: `all` may be a view of the caller's chunk.
    this.rest = Buffer.from(all.subarray(frames * frameBytes));
    return mixDown(all, 0, frames, this.channels);
  }

  /** Throws when the stream ended before a complete header. */
  end(): void {
    if (this.head) throw new Error(this.head.length === 0 ? 'empty WAV stream' : 'WAV stream ended inside its header');
  }
}
