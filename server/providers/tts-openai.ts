// TTS on any OpenAI-compatible server (`POST {base}/audio/speech`): Kokoro-FastAPI, Piper/openedai-speech,
// OpenAI itself. Plain fetch; WAV (or raw 24 kHz PCM) decoded as the bytes arrive.
import { baseUrl, fetchOk, httpHealth, throwIfAborted } from './http-util.js';
import { audioChunks } from './tts-stream.js';
import type { ProviderHealth, TtsChunk, TtsOptions, TtsProvider, Voice } from './types.js';

export interface OpenAiTtsOptions {
  /** e.g. http://127.0.0.1:8880/v1 (a full .../audio/speech URL is accepted too). Default: EVA_TTS_URL. */
  baseURL?: string;
  /** Sent as a Bearer token when set. Default: EVA_TTS_API_KEY. */
  apiKey?: string;
  /** Default 'tts-1' (Kokoro-FastAPI and most servers accept it). */
  model?: string;
  /** Default 'alloy'. */
  voice?: string;
  /** 'wav' (default) or 'pcm' (raw 16-bit mono at `pcmSampleRate`, OpenAI's streaming format). */
  format?: 'wav' | 'pcm';
  /** Rate of 'pcm' replies. Default 24000 (OpenAI's). */
  pcmSampleRate?: number;
  /** The voices to offer; default: ask GET {base}/audio/voices, else OpenAI's six. */
  voices?: Voice[];
  /** Time to the response headers, ms. Default 15 000. */
  timeoutMs?: number;
  /** health() deadline, ms. Default 2000. */
  healthTimeoutMs?: number;
  /** Adapter name in errors and metrics. Default 'openai'. */
  name?: string;
}

const ENDPOINT = '/audio/speech';
const OPENAI_VOICES: readonly Voice[] = ['alloy', 'echo', 'fable', 'onyx', 'nova', 'shimmer'].map((id) => ({ id, name: id, language: 'en' }));

export class OpenAiTts implements TtsProvider {
  readonly name: string;
  readonly model: string;
  readonly baseURL: string;
  private readonly opts: OpenAiTtsOptions;
  private voiceList: Promise<Voice[]> | null = null;

  constructor(opts: OpenAiTtsOptions = {}) {
    this.name = opts.name ?? 'openai';
    const raw = opts.baseURL ?? process.env.EVA_TTS_URL;
    if (!raw) throw new Error('tts openai: no server URL (set EVA_TTS_URL, e.g. http://127.0.0.1:8880/v1)');
    this.baseURL = baseUrl(raw, ENDPOINT);
    this.model = opts.model ?? 'tts-1';
    this.opts = opts;
  }

  private headers(): Record<string, string> {
    const key = this.opts.apiKey ?? process.env.EVA_TTS_API_KEY;
    return key ? { authorization: `Bearer ${key}` } : {};
  }

  async *synthesize(text: string, { signal, voice }: TtsOptions): AsyncIterable<TtsChunk> {
    throwIfAborted(signal);
    if (text.trim() === '') return;
    const format = this.opts.format ?? 'wav';
    const res = await fetchOk(
      this.name,
      this.baseURL + ENDPOINT,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.headers() },
        body: JSON.stringify({ model: this.model, input: text, voice: voice ?? this.opts.voice ?? 'alloy', response_format: format }),
        signal,
      },
      this.opts.timeoutMs ?? 15_000,
    );
    yield* audioChunks(this.name, res.body, format === 'wav' ? { type: 'wav' } : { type: 'pcm', sampleRate: this.opts.pcmSampleRate ?? 24000 }, signal);
  }

  voices(): Promise<Voice[]> {
    if (this.opts.voices) return Promise.resolve(this.opts.voices.map((v) => ({ ...v })));
    this.voiceList ??= this.fetchVoices();
    return this.voiceList;
  }

  /** Kokoro-FastAPI lists its voices at GET {base}/audio/voices; other servers do not, and get OpenAI's six. */
  private async fetchVoices(): Promise<Voice[]> {
    try {
      const res = await fetch(this.baseURL + '/audio/voices', { headers: this.headers(), signal: AbortSignal.timeout(2000) });
      if (res.ok) {
        const body = (await res.json()) as { voices?: unknown };
        if (Array.isArray(body.voices) && body.voices.length > 0) {
          return body.voices.slice(0, 500).flatMap((v): Voice[] => {
            if (typeof v === 'string') return [{ id: v, name: v }];
            const o = v as { id?: unknown; name?: unknown };
            const id = typeof o.id === 'string' ? o.id : typeof o.name === 'string' ? o.name : null;
            return id ? [{ id, name: typeof o.name === 'string' ? o.name : id }] : [];
          });
        }
      } else {
        await res.body?.cancel();
      }
    } catch {
      // No list from the server: offer OpenAI's standard voices (most compatible servers map them).
    }
    this.voiceList = null; // ask again next time
    return OPENAI_VOICES.map((v) => ({ ...v }));
  }

  health(signal?: AbortSignal): Promise<ProviderHealth> {
    return httpHealth(this.name, this.baseURL + '/models', this.headers(), this.opts.healthTimeoutMs ?? 2000, signal);
  }
}
