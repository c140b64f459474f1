// Provider contracts: one interface per stage. Each adapter lives in its own file and is the only importer of
// its SDK. Every call takes an AbortSignal: a barge-in aborts the turn, and an abort is not an error.

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ProviderHealth {
  ok: boolean;
  /** Why it is not ok (or a detail such as the model in use). */
  detail?: string;
}

export interface SttResult {
  text: string;
  /** Language reported by the engine, when it reports one. */
  language?: string;
}

export interface SttOptions {
  signal: AbortSignal;
  language?: string;
}

export interface SttProvider {
  readonly name: string;
  /** Transcribe one VAD-delimited segment of 16 kHz mono PCM. */
  transcribe(pcm16k: Int16Array, opts: SttOptions): Promise<SttResult>;
  health(signal?: AbortSignal): Promise<ProviderHealth>;
}

export interface LlmOptions {
  signal: AbortSignal;
  /** Told which adapter answers this request (a fallback chain names the one it settled on). */
  onProvider?: (name: string) => void;
}

export interface LlmProvider {
  readonly name: string;
  /** Stream the assistant's reply as text deltas. Throws a ProviderError on failure. */
  stream(messages: readonly ChatMessage[], opts: LlmOptions): AsyncIterable<string>;
  health(signal?: AbortSignal): Promise<ProviderHealth>;
}

export interface Voice {
  id: string;
  name: string;
  language?: string;
}

/** What a TTS engine yields for one piece of text, in order. */
export type TtsChunk =
  | { type: 'audio'; samples: Int16Array; sampleRate: number }
  /** Word timing: the word at [textOffset, textOffset+textLength) of the input starts at audioMs of its audio. */
  | { type: 'word'; textOffset: number; textLength: number; audioMs: number };

export interface TtsOptions {
  signal: AbortSignal;
  voice?: string;
}

export interface TtsProvider {
  readonly name: string;
  synthesize(text: string, opts: TtsOptions): AsyncIterable<TtsChunk>;
  voices(): Promise<Voice[]>;
  health(signal?: AbortSignal): Promise<ProviderHealth>;
  close?(): Promise<void> | void;
}

/**
 * A live transcription: audio is pushed as the person talks; each commit transcribes what was pushed since the
 * previous one. One stream may carry many commits (one per turn), so a call can keep one open for its length.
 */
export interface SttStream {
  /** 16 kHz mono PCM as it arrives (the adapter resamples to what the server wants). Never throws; after a failure it drops audio. */
  push(pcm16k: Int16Array): void;
  /**
   * Commit the audio pushed since the last commit and resolve with its transcript (this piece only). Rejects with a
   * ProviderError (provider_error / provider_timeout / provider_unavailable) when the socket fails, the server
   * reports a failure, or no transcript arrives within the adapter's deadline; with the abort when aborted.
   */
  commit(): Promise<SttResult>;
  /** Drop the audio pushed since the last commit. */
  clear(): void;
  /** Partial text while the server streams deltas: called with the item's text so far. */
  onPartial?: (text: string) => void;
  /** True once the socket failed or was closed: the caller falls back to segment STT. */
  readonly failed: boolean;
  /** Idempotent: closes the socket; pending commits reject with an AbortError. */
  close(): void;
}

export interface StreamingSttProvider extends SttProvider {
  /** Open a stream (connecting at once); `opts.signal` closes it, so give it the call's signal to keep it per call. */
  openStream(opts: SttOptions): SttStream;
  /** Close warm sockets held by the provider itself. Idempotent. */
  close(): void;
}

export function isStreamingStt(p: SttProvider): p is StreamingSttProvider {
  return typeof (p as Partial<StreamingSttProvider>).openStream === 'function';
}
