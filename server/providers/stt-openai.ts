// STT on any OpenAI-compatible server (`POST {base}/audio/transcriptions`, multipart): speaches, the whisper.cpp
// server, vLLM, OpenAI itself. Plain fetch + FormData; the segment goes up as a 16 kHz mono WAV.
import { encodeWav } from '../../media/wav.js';
import { abortError, baseUrl, fetchOk, httpHealth, providerError, throwIfAborted } from './http-util.js';
import type { ProviderHealth, SttOptions, SttProvider, SttResult } from './types.js';

export interface OpenAiSttOptions {
  /** e.g. http://127.0.0.1:8000/v1 (a full .../audio/transcriptions URL is accepted too). Default: EVA_STT_URL. */
  baseURL?: string;
  /** Sent as a Bearer token when set. Default: EVA_STT_API_KEY. */
  apiKey?: string;
  /** Default 'whisper-1' (servers that host one model ignore it). */
  model?: string;
  /** ISO-639-1 code used when a call names none. */
  language?: string;
  /** Time to the response headers, ms. Default 15 000. */
  timeoutMs?: number;
  /** health() deadline, ms. Default 2000. */
  healthTimeoutMs?: number;
  /** Adapter name in errors and metrics. Default 'openai'. */
  name?: string;
}

const ENDPOINT = '/audio/transcriptions';
const MIN_SAMPLES = 160;

export class OpenAiStt implements SttProvider {
  readonly name: string;
  readonly model: string;
  readonly baseURL: string;
  private readonly opts: OpenAiSttOptions;

  constructor(opts: OpenAiSttOptions = {}) {
    this.name = opts.name ?? 'openai';
    const raw = opts.baseURL ?? process.env.EVA_STT_URL;
    if (!raw) throw new Error('stt openai: no server URL (set EVA_STT_URL, e.g. http://127.0.0.1:8000/v1)');
    this.baseURL = baseUrl(raw, ENDPOINT);
    this.model = opts.model ?? 'whisper-1';
    this.opts = opts;
  }

  private headers(): Record<string, string> {
    const key = this.opts.apiKey ?? process.env.EVA_STT_API_KEY;
    return key ? { authorization: `Bearer ${key}` } : {};
  }

  async transcribe(pcm16k: Int16Array, { signal, language }: SttOptions): Promise<SttResult> {
    throwIfAborted(signal);
    if (pcm16k.length < MIN_SAMPLES) return { text: '' };
    const lang = language ?? this.opts.language;
    const form = new FormData();
    form.set('file', new Blob([encodeWav(pcm16k, 16000)], { type: 'audio/wav' }), 'audio.wav');
    form.set('model', this.model);
    form.set('response_format', 'json');
    form.set('temperature', '0');
    if (lang) form.set('language', lang);
    const res = await fetchOk(this.name, this.baseURL + ENDPOINT, { method: 'POST', body: form, headers: this.headers(), signal }, this.opts.timeoutMs ?? 15_000);
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw providerError(this.name, new Error(`unreadable reply: ${(err as Error).message}`), signal);
    }
    const text = (body as { text?: unknown }).text;
    if (typeof text !== 'string') throw providerError(this.name, new Error('reply has no text field'), signal);
    const detected = (body as { language?: unknown }).language;
    const out: SttResult = { text: text.trim() };
    if (typeof detected === 'string') out.language = detected;
    else if (lang) out.language = lang;
    return out;
  }

  /** GET {base}/models: any answer but a 401/403 or a 5xx means the server is up (whisper.cpp has no /models). */
  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    return httpHealth(this.name, this.baseURL + '/models', this.headers(), this.opts.healthTimeoutMs ?? 2000, signal);
  }
}
