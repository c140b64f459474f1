// Opus codec for one call, over opusscript (libopus compiled to WASM). Costs measured here:
// decode straight to 16 kHz 58 µs per 20 ms frame; encode AUDIO at complexity 5 119 µs vs 244 µs for VOIP and
// 443 µs at complexity 10 — for TTS speech at 32 kbit/s the CELT path at complexity 5 is clean and the cheapest
// full-band option. EVA's voice uses RESTRICTED_LOWDELAY (REPLY_ENCODER): the same CELT path without the 4 ms
// look-ahead that AUDIO and VOIP keep for their SILK/CELT mode decision, so each reply frame is heard 4 ms sooner
// (algorithmic delay 2.5 ms instead of 6.5) and costs ~18 % less to encode (82 vs 100 µs a frame on eSpeak speech
// here), at the same bitrate and signal-to-noise ratio. Both objects live on the WASM heap: close() frees them,
// and the call's owner must call it (idempotent).
import { createRequire } from 'node:module';

export type OpusRate = 8000 | 12000 | 16000 | 24000 | 48000;

const OPUS_SET_BITRATE = 4002;
const OPUS_SET_COMPLEXITY = 4010;
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;
const APPLICATION_VOIP = 2048;
const APPLICATION_AUDIO = 2049;
const APPLICATION_RESTRICTED_LOWDELAY = 2051;
/** Largest frame libopus decodes (120 ms at 48 kHz), in samples. */
const MAX_FRAME_SAMPLES = 5760;
/** opusscript's native handler writes at most this many bytes per packet. */
const MAX_PACKET_BYTES = 1276 * 3;

/**
 * opusscript's native module (libopus + a small C++ handler, compiled to WASM), used without opusscript's JS
 * wrapper. That wrapper keeps `HEAPU16.subarray(ptr, …)` views made with a *byte* pointer as a 16-bit index: it
 * reads and writes at twice the allocated address, over other objects' memory, and once the WASM memory grows
 * its cached views are detached — with ~40 encoder/decoder pairs alive, encode() threw "offset is out of
 * bounds". Here every call takes fresh views of the current heap at the right offsets.
 *
 * The handler's byte protocol: `_encode(in, n, out, frameSize)` reads n 16-bit slots that each hold ONE byte of
 * the little-endian PCM (it repacks them in place); `_decode(in, n, out)` writes each byte of the decoded PCM
 * into its own 16-bit slot. Both return the packet length / samples per channel, or a negative libopus error.
 */
interface NativeHandler {
  _encode(input: number, bytes: number, output: number, frameSize: number): number;
  _decode(input: number, bytes: number, output: number): number;
  _encoder_ctl(ctl: number, arg: number): number;
}
interface NativeModule {
  HEAPU8: Uint8Array;
  HEAPU16: Uint16Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  OpusScriptHandler: { new (rate: number, channels: number, application: number): NativeHandler; destroy_handler(h: NativeHandler): void };
}

let native: NativeModule | null = null;
function opusNative(): NativeModule {
  if (!native) {
    const require = createRequire(import.meta.url);
    const factory = require('opusscript/build/opusscript_native_wasm.js') as () => NativeModule;
    native = factory();
  }
  return native;
}

const ERRORS: Record<number, string> = { [-1]: 'bad argument', [-2]: 'buffer too small', [-3]: 'internal error', [-4]: 'invalid packet', [-5]: 'unimplemented', [-6]: 'invalid state', [-7]: 'memory allocation failed' };
const opusError = (what: string, code: number) => new Error(`Opus ${what} failed: ${ERRORS[code] ?? code}`);

/** One native handler and its buffers on the WASM heap; free() releases all of them, once. */
class NativeCodec {
  readonly mod = opusNative();
  readonly handler: NativeHandler;
  /** Byte-per-slot input (encode: 2 slots per sample; decode: the packet bytes). */
  readonly inPtr: number;
  /** Encode: the packet; decode: byte-per-slot PCM. */
  readonly outPtr: number;
  private freed = false;

  constructor(rate: OpusRate, application: number, inBytes: number, outBytes: number) {
    this.handler = new this.mod.OpusScriptHandler(rate, 1, application);
    this.inPtr = this.mod._malloc(inBytes);
    this.outPtr = this.mod._malloc(outBytes);
  }

  ctl(ctl: number, arg: number): void {
    const r = this.handler._encoder_ctl(ctl, arg);
    if (r < 0) throw opusError(`encoder ctl ${ctl}`, r);
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.mod.OpusScriptHandler.destroy_handler(this.handler);
    this.mod._free(this.inPtr);
    this.mod._free(this.outPtr);
  }
}

export interface EncoderOptions {
  sampleRate?: OpusRate;
  bitrate?: number;
  complexity?: number;
  /** libopus's application: 'audio' (the default), 'voip', or 'lowdelay' (RESTRICTED_LOWDELAY: CELT only). */
  application?: 'audio' | 'voip' | 'lowdelay';
}

/** EVA's voice to the caller: 24 kHz, CELT only (RESTRICTED_LOWDELAY), complexity 5, 32 kbit/s. */
export const REPLY_ENCODER: Readonly<EncoderOptions> = { sampleRate: 24000, application: 'lowdelay', complexity: 5, bitrate: 32000 };

export class OpusEncoder {
  readonly sampleRate: OpusRate;
  /** Samples in one 20 ms frame at this encoder's rate. */
  readonly frameSamples: number;
  private codec: NativeCodec | null;

  constructor(opts: EncoderOptions = {}) {
    this.sampleRate = opts.sampleRate ?? 24000;
    this.frameSamples = this.sampleRate / 50;
    const app = opts.application === 'voip' ? APPLICATION_VOIP : opts.application === 'lowdelay' ? APPLICATION_RESTRICTED_LOWDELAY : APPLICATION_AUDIO;
    // Input: one 16-bit slot per PCM byte = 4 bytes per sample.
    this.codec = new NativeCodec(this.sampleRate, app, this.frameSamples * 4, MAX_PACKET_BYTES);
    this.codec.ctl(OPUS_SET_BITRATE, opts.bitrate ?? 32000);
    this.codec.ctl(OPUS_SET_COMPLEXITY, opts.complexity ?? 5);
  }

  /** Set an encoder option (OPUS_SET_* request code). */
  ctl(request: number, value: number): void {
    if (!this.codec) throw new Error('OpusEncoder used after close()');
    this.codec.ctl(request, value);
  }

  /** Encode exactly one 20 ms frame of mono PCM. */
  encode(frame: Int16Array): Buffer {
    if (!this.codec) throw new Error('OpusEncoder used after close()');
    if (frame.length !== this.frameSamples) {
      throw new RangeError(`Opus frame must be ${this.frameSamples} samples, got ${frame.length}`);
    }
    const { mod, handler, inPtr, outPtr } = this.codec;
    // Views are taken per call: a grown WASM memory detaches the old ones.
    mod.HEAPU16.set(new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength), inPtr >>> 1);
    const len = handler._encode(inPtr, frame.byteLength, outPtr, this.frameSamples);
    if (len < 0) throw opusError('encode', len);
    return Buffer.from(mod.HEAPU8.subarray(outPtr, outPtr + len));
  }

  close(): void {
    this.codec?.free();
    this.codec = null;
  }
}

export class OpusDecoder {
  readonly sampleRate: OpusRate;
  private codec: NativeCodec | null;

  /** Decode at 16 kHz by default: that is what VAD and STT consume, so no 48→16 kHz resampler is needed. */
  constructor(sampleRate: OpusRate = 16000) {
    this.sampleRate = sampleRate;
    // Output: one 16-bit slot per PCM byte = 4 bytes per sample.
    this.codec = new NativeCodec(sampleRate, APPLICATION_VOIP, MAX_PACKET_BYTES, MAX_FRAME_SAMPLES * 4);
  }

  /** Decode one Opus packet to mono PCM (a copy the caller owns). Throws on a corrupt packet. */
  decode(packet: Uint8Array): Int16Array {
    if (!this.codec) throw new Error('OpusDecoder used after close()');
    if (packet.length > MAX_PACKET_BYTES) throw new RangeError(`Opus packet of ${packet.length} bytes is larger than ${MAX_PACKET_BYTES}`);
    const { mod, handler, inPtr, outPtr } = this.codec;
    mod.HEAPU8.set(packet, inPtr);
    const samples = handler._decode(inPtr, packet.length, outPtr);
    if (samples < 0) throw opusError('decode', samples);
    // Each 16-bit slot holds one byte of the PCM: narrow them into a fresh, aligned Int16Array.
    const pcm = new Int16Array(samples);
    new Uint8Array(pcm.buffer).set(mod.HEAPU16.subarray(outPtr >>> 1, (outPtr >>> 1) + samples * 2));
    return pcm;
  }

  close(): void {
    this.codec?.free();
    this.codec = null;
  }
}

/** Encoder for a sender that wants in-band FEC (the test client; the browser already does this on its side). */
export function enableFec(enc: OpusEncoder, lossPercent = 10): void {
  enc.ctl(OPUS_SET_INBAND_FEC, 1);
  enc.ctl(OPUS_SET_PACKET_LOSS_PERC, lossPercent);
}
