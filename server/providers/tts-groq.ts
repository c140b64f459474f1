// TTS on Groq (PlayAI voices) through groq-sdk. The reply is a WAV; its PCM is yielded as the bytes arrive.
import { createGroqClient, groqError, groqHealth, type Groq } from './groq-client.js';
import { throwIfAborted } from './http-util.js';
import { audioChunks } from './tts-stream.js';
import type { ProviderHealth, TtsChunk, TtsOptions, TtsProvider, Voice } from './types.js';

export interface GroqTtsOptions {
  /** Default: GROQ_API_KEY (the constructor throws a ProviderError when there is none). */
  apiKey?: string;
  /** Default: GROQ_BASE_URL, else https://api.groq.com. */
  baseURL?: string;
  /** Default 'playai-tts' (English; 'playai-tts-arabic' for Arabic voices). */
  model?: string;
  /** Default 'Fritz-PlayAI'. */
  voice?: string;
  /** Ask for this rate (8000-48000); unset = the engine's own. */
  sampleRate?: 8000 | 16000 | 22050 | 24000 | 32000 | 44100 | 48000;
  /** Time to the response headers, ms. Default 15 000. */
  timeoutMs?: number;
  /** health() deadline, ms. Default 2000. */
  healthTimeoutMs?: number;
  /** Adapter name in errors and metrics. Default 'groq'. */
  name?: string;
}

export const GROQ_DEFAULT_TTS_MODEL = 'playai-tts';
export const GROQ_DEFAULT_VOICE = 'Fritz-PlayAI';

/** The English PlayAI voices Groq documents for playai-tts. */
export const GROQ_VOICES: readonly Voice[] = [
  'Arista', 'Atlas', 'Basil', 'Briggs', 'Calum', 'Celeste', 'Cheyenne', 'Chip', 'Cillian', 'Deedee',
  'Fritz', 'Gail', 'Indigo', 'Mamaw', 'Mason', 'Mikail', 'Mitch', 'Quinn', 'Thunder',
].map((n) => ({ id: `${n}-PlayAI`, name: n, language: 'en' }));

export class GroqTts implements TtsProvider {
  readonly name: string;
  readonly model: string;
  private readonly client: Groq;
  private readonly opts: GroqTtsOptions;

  constructor(opts: GroqTtsOptions = {}) {
    this.name = opts.name ?? 'groq';
    this.model = opts.model ?? GROQ_DEFAULT_TTS_MODEL;
    this.opts = opts;
    this.client = createGroqClient(this.name, { ...opts, timeoutMs: opts.timeoutMs ?? 15_000 });
  }

  async *synthesize(text: string, { signal, voice }: TtsOptions): AsyncIterable<TtsChunk> {
    throwIfAborted(signal);
    if (text.trim() === '') return;
    let res: Response;
    try {
      res = await this.client.audio.speech.create(
        {
          model: this.model,
          voice: voice ?? this.opts.voice ?? GROQ_DEFAULT_VOICE,
          input: text,
          response_format: 'wav',
          ...(this.opts.sampleRate ? { sample_rate: this.opts.sampleRate } : {}),
        },
        { signal },
      );
    } catch (err) {
      throw groqError(this.name, err, signal);
    }
    yield* audioChunks(this.name, res.body, { type: 'wav' }, signal);
  }

  async voices(): Promise<Voice[]> {
    return GROQ_VOICES.map((v) => ({ ...v }));
  }

  health(signal?: AbortSignal): Promise<ProviderHealth> {
    return groqHealth(this.name, this.client, this.model, this.opts.healthTimeoutMs ?? 2000, signal);
  }
}
