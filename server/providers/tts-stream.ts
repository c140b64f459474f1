// Turn an HTTP body of WAV or raw PCM16 into TtsChunks as the bytes arrive, so the first audio plays while the
// engine is still sending the rest. Shared by the network TTS adapters.
import { WavStreamDecoder } from '../../media/wav.js';
import { ProviderError } from '../errors.js';
import { abortError, providerError } from './http-util.js';
import type { TtsChunk } from './types.js';

export type BodyFormat = { type: 'wav' } | { type: 'pcm'; sampleRate: number };

export async function* audioChunks(provider: string, body: ReadableStream<Uint8Array> | null, format: BodyFormat, signal: AbortSignal): AsyncGenerator<TtsChunk> {
  if (!body) throw new ProviderError(provider, 'provider_error', 'reply has no body', { retryable: true });
  const reader = body.getReader();
  const wav = format.type === 'wav' ? new WavStreamDecoder() : null;
  let odd: Uint8Array | null = null; // a byte left over from an odd-sized PCM chunk
  let done = false;
  try {
    for (;;) {
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch (err) {
        throw providerError(provider, err, signal);
      }
      if (signal.aborted) throw abortError(signal);
      if (r.done) break;
      let samples: Int16Array;
      let sampleRate: number;
      if (wav) {
        try {
          samples = wav.push(r.value);
        } catch (err) {
          throw new ProviderError(provider, 'provider_error', `bad audio: ${(err as Error).message}`, { retryable: false, cause: err });
        }
        sampleRate = wav.sampleRate;
      } else {
        const bytes: Uint8Array = odd ? concat(odd, r.value) : r.value;
        const even = bytes.length & ~1;
        odd = even < bytes.length ? bytes.slice(even) : null;
        samples = new Int16Array(even / 2);
        Buffer.from(samples.buffer).set(bytes.subarray(0, even));
        sampleRate = (format as { sampleRate: number }).sampleRate;
      }
      if (samples.length > 0) yield { type: 'audio', samples, sampleRate };
    }
    done = true;
    try {
      wav?.end();
    } catch (err) {
      throw new ProviderError(provider, 'provider_error', `bad audio: ${(err as Error).message}`, { retryable: true, cause: err });
    }
  } finally {
    // Leaving early (abort, error, the caller's break) closes the HTTP request.
    if (!done) {
      try {
        await reader.cancel();
      } catch {
        // the stream had already failed: nothing left to close
      }
    }
    reader.releaseLock();
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
