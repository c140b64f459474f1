// Streaming resampling with the Speex resampler (WASM, SIMD build where the CPU allows). Measured here
// (AUDIO-NOTES): 22.05→48 kHz 47 µs and 24→48 kHz 20 µs per 20 ms at quality 3, with −86 dB alias rejection
// where a 16-tap JS polyphase gets −14 dB. Linear interpolation is audibly worse; this is the cheap real filter.
// The WASM module is loaded once per process; each Resampler owns a speex state on its heap: destroy() it.

interface SpeexModule {
  _speex_resampler_init(ch: number, inRate: number, outRate: number, quality: number, errPtr: number): number;
  _speex_resampler_process_int(st: number, ch: number, inPtr: number, inLenPtr: number, outPtr: number, outLenPtr: number): number;
  _speex_resampler_skip_zeros(st: number): number;
  _speex_resampler_get_input_latency(st: number): number;
  _speex_resampler_destroy(st: number): void;
  _malloc(n: number): number;
  _free(p: number): void;
  HEAP16: Int16Array;
  HEAPU32: Uint32Array;
  HEAP32: Int32Array;
}

let modulePromise: Promise<SpeexModule> | null = null;

function loadModule(): Promise<SpeexModule> {
  modulePromise ??= (async () => {
    try {
      return (await (await import('@echogarden/speex-resampler-wasm/simd')).default()) as SpeexModule;
    } catch {
      // CPUs without WASM SIMD
      return (await (await import('@echogarden/speex-resampler-wasm')).default()) as SpeexModule;
    }
  })();
  return modulePromise;
}

export interface Resampler {
  readonly inRate: number;
  readonly outRate: number;
  /** Resample the next chunk (state carries across chunks: no clicks at the seams). */
  process(input: Int16Array): Int16Array;
  /** Drain the filter's tail at the end of a stream. */
  flush(): Int16Array;
  /** Free the WASM state. Idempotent. */
  destroy(): void;
}

/** Largest chunk handled in one WASM call (1 s at 48 kHz); longer inputs are processed in pieces. */
const MAX_IN = 48000;

export async function createResampler(inRate: number, outRate: number, opts: { quality?: number } = {}): Promise<Resampler> {
  if (!(inRate > 0 && outRate > 0 && Number.isInteger(inRate) && Number.isInteger(outRate))) {
    throw new RangeError(`invalid sample rates ${inRate} → ${outRate}`);
  }
  if (inRate === outRate) {
    return { inRate, outRate, process: (x) => x.slice(), flush: () => new Int16Array(0), destroy: () => undefined };
  }
  const m = await loadModule();
  const errPtr = m._malloc(4);
  const st = m._speex_resampler_init(1, inRate, outRate, opts.quality ?? 3, errPtr);
  const err = m.HEAP32[errPtr >> 2]!;
  m._free(errPtr);
  if (!st || err !== 0) throw new Error(`speex resampler init failed (${err})`);
  m._speex_resampler_skip_zeros(st); // align output with input: no leading filter delay
  const maxOut = Math.ceil((MAX_IN * outRate) / inRate) + 64;
  const inPtr = m._malloc(MAX_IN * 2);
  const outPtr = m._malloc(maxOut * 2);
  const lenPtr = m._malloc(8);
  let alive = true;

  const run = (input: Int16Array): Int16Array => {
    if (!alive) throw new Error('Resampler used after destroy()');
    const parts: Int16Array[] = [];
    let total = 0;
    for (let off = 0; off < input.length; off += MAX_IN) {
      const chunk = input.subarray(off, Math.min(input.length, off + MAX_IN));
      m.HEAP16.set(chunk, inPtr >> 1);
      m.HEAPU32[lenPtr >> 2] = chunk.length;
      m.HEAPU32[(lenPtr >> 2) + 1] = maxOut;
      const rc = m._speex_resampler_process_int(st, 0, inPtr, lenPtr, outPtr, lenPtr + 4);
      if (rc !== 0) throw new Error(`speex resampler failed (${rc})`);
      const n = m.HEAPU32[(lenPtr >> 2) + 1]!;
      parts.push(m.HEAP16.slice(outPtr >> 1, (outPtr >> 1) + n));
      total += n;
    }
    if (parts.length === 1) return parts[0]!;
    const out = new Int16Array(total);
    let o = 0;
    for (const p of parts) (out.set(p, o), (o += p.length));
    return out;
  };

  return {
    inRate,
    outRate,
    process: run,
    flush: () => run(new Int16Array(m._speex_resampler_get_input_latency(st))),
    destroy() {
      if (!alive) return;
      alive = false;
      m._speex_resampler_destroy(st);
      m._free(inPtr);
      m._free(outPtr);
      m._free(lenPtr);
    },
  };
}
