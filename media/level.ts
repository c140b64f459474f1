// Signal level of 16-bit PCM, shared by the echo gate, the pacer, the probe client and the tests.

/** Root mean square of the samples (0 for none), in sample units (full scale 32768). */
export function rmsOf(pcm: Int16Array): number {
  let s = 0;
  for (let i = 0; i < pcm.length; i++) s += pcm[i]! * pcm[i]!;
  return Math.sqrt(s / Math.max(1, pcm.length));
}
