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
