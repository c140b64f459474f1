// STT on Groq (Whisper large-v3-turbo) through groq-sdk: one VAD segment of 16 kHz PCM, sent as a WAV file.
import { encodeWav } from '../../media/wav.js';
import { createGroqClient, groqError, groqHealth, toFile, type Groq } from './groq-client.js';
import { throwIfAborted } from './http-util.js';
import type { ProviderHealth, SttOptions, SttProvider, SttResult } from './types.js';

export interface GroqSttOptions {
  /** Default: GROQ_API_KEY (the constructor throws a ProviderError when there is none). */
  apiKey?: string;
  /** Default: GROQ_BASE_URL, else https://api.groq.com. */
  baseURL?: string;
  /** Default 'whisper-large-v3-turbo': ~2x faster than large-v3 at nearly its accuracy. */
  model?: string;
  /** ISO-639-1 code used when a call names none; unset = Whisper detects the language. */
  language?: string;
  /** Time to the response, ms. Default 15 000. */
  timeoutMs?: number;
  /** health() deadline, ms. Default 2000. */
  healthTimeoutMs?: number;
  /** Adapter name in errors and metrics. Default 'groq'. */
  name?: string;
}

export const GROQ_DEFAULT_STT_MODEL = 'whisper-large-v3-turbo';
/** Groq refuses audio under 0.01 s; shorter segments are silence anyway. */
const MIN_SAMPLES = 160;

export class GroqStt implements SttProvider {
  readonly name: string;
  readonly model: string;
  private readonly client: Groq;
  private readonly opts: GroqSttOptions;

  constructor(opts: GroqSttOptions = {}) {
    this.name = opts.name ?? 'groq';
    this.model = opts.model ?? GROQ_DEFAULT_STT_MODEL;
    this.opts = opts;
    this.client = createGroqClient(this.name, { ...opts, timeoutMs: opts.timeoutMs ?? 15_000 });
  }

  async transcribe(pcm16k: Int16Array, { signal, language }: SttOptions): Promise<SttResult> {
    throwIfAborted(signal);
    if (pcm16k.length < MIN_SAMPLES) return { text: '' };
    const lang = language ?? this.opts.language;
    try {
      const file = await toFile(encodeWav(pcm16k, 16000), 'audio.wav', { type: 'audio/wav' });
      const res = await this.client.audio.transcriptions.create(
        { file, model: this.model, response_format: 'json', temperature: 0, ...(lang ? { language: lang as 'en' } : {}) },
        { signal },
      );
      return { text: res.text.trim(), ...(lang ? { language: lang } : {}) };
    } catch (err) {
      throw groqError(this.name, err, signal);
    }
  }

  health(signal?: AbortSignal): Promise<ProviderHealth> {
    return groqHealth(this.name, this.client, this.model, this.opts.healthTimeoutMs ?? 2000, signal);
  }
}
