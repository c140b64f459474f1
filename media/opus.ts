// Opus codec for one call, over opusscript (libopus compiled to WASM). Costs measured here (AUDIO-NOTES):
// decode straight to 16 kHz 58 µs per 20 ms frame; encode AUDIO at complexity 5 119 µs vs 244 µs for VOIP and
// 443 µs at complexity 10 — for TTS speech at 32 kbit/s the CELT path at complexity 5 is clean and the cheapest
// full-band option, so that is the default. Both objects live on the WASM heap: close() frees them, and the
// call's owner must call it (idempotent).
import OpusScript from 'opusscript';

export type OpusRate = 8000 | 12000 | 16000 | 24000 | 48000;

const OPUS_SET_BITRATE = 4002;
const OPUS_SET_COMPLEXITY = 4010;
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;

function bytesOf(pcm: Int16Array): Buffer {
  // opusscript copies from a byte Buffer; an Int16Array passed directly encodes garbage.
  return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}

export interface EncoderOptions {
  sampleRate?: OpusRate;
  bitrate?: number;
  complexity?: number;
  application?: 'audio' | 'voip';
}

export class OpusEncoder {
  readonly sampleRate: OpusRate;
  /** Samples in one 20 ms frame at this encoder's rate. */
  readonly frameSamples: number;
  private codec: OpusScript | null;

  constructor(opts: EncoderOptions = {}) {
    this.sampleRate = opts.sampleRate ?? 24000;
    this.frameSamples = this.sampleRate / 50;
    const app = opts.application === 'voip' ? OpusScript.Application.VOIP : OpusScript.Application.AUDIO;
    this.codec = new OpusScript(this.sampleRate, 1, app, { wasm: true });
    this.codec.encoderCTL(OPUS_SET_BITRATE, opts.bitrate ?? 32000);
    this.codec.encoderCTL(OPUS_SET_COMPLEXITY, opts.complexity ?? 5);
  }

  /** Encode exactly one 20 ms frame of mono PCM. */
  encode(frame: Int16Array): Buffer {
    if (!this.codec) throw new Error('OpusEncoder used after close()');
    if (frame.length !== this.frameSamples) {
      throw new RangeError(`Opus frame must be ${this.frameSamples} samples, got ${frame.length}`);
    }
    return this.codec.encode(bytesOf(frame), this.frameSamples);
  }

  close(): void {
    this.codec?.delete();
    this.codec = null;
  }
}

export class OpusDecoder {
  readonly sampleRate: OpusRate;
  private codec: OpusScript | null;

  /** Decode at 16 kHz by default: that is what VAD and STT consume, so no 48→16 kHz resampler is needed. */
  constructor(sampleRate: OpusRate = 16000) {
    this.sampleRate = sampleRate;
    this.codec = new OpusScript(sampleRate, 1, OpusScript.Application.VOIP, { wasm: true });
  }

  /** Decode one Opus packet to mono PCM (a copy the caller owns). Throws on a corrupt packet. */
  decode(packet: Uint8Array): Int16Array {
    if (!this.codec) throw new Error('OpusDecoder used after close()');
    const out = this.codec.decode(Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength));
    // Copy into an aligned Int16Array (the Buffer may come from Node's pool at an odd offset).
    const pcm = new Int16Array(out.byteLength >> 1);
    new Uint8Array(pcm.buffer).set(out);
    return pcm;
  }

  close(): void {
    this.codec?.delete();
    this.codec = null;
  }
}

/** Encoder for a sender that wants in-band FEC (the test client; the browser already does this on its side). */
export function enableFec(enc: OpusEncoder, lossPercent = 10): void {
  const codec = (enc as unknown as { codec: OpusScript | null }).codec;
  codec?.encoderCTL(OPUS_SET_INBAND_FEC, 1);
  codec?.encoderCTL(OPUS_SET_PACKET_LOSS_PERC, lossPercent);
}
