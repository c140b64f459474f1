// Committed audio fixtures (test/fixtures, made by make-fixtures.sh) and small signal helpers.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { decodeWav } from '../../media/wav.js';

/** A committed 16 kHz mono fixture. */
export function fixture16k(name: string): Int16Array {
  const wav = decodeWav(readFileSync(fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))));
  if (wav.sampleRate !== 16000) throw new Error(`${name} must be 16 kHz, is ${wav.sampleRate}`);
  return wav.samples;
}

export { rmsOf as rms } from '../../media/level.js';

