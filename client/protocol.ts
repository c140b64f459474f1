// The `/ws` signaling messages as the page sees them (docs/protocol.md). The page keeps its own copy of the
// contract instead of importing server code: it is type-checked with the DOM lib, the server with Node's.

export interface CallConfig {
  voice?: string;
  system?: string;
  language?: string;
}

export interface IceCandidateJson {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
}

export type ClientMessage =
  | { type: 'offer'; sdp: string; config?: CallConfig }
  | { type: 'candidate'; candidate: IceCandidateJson }
  | { type: 'text'; text: string }
  | { type: 'hangup' }
  | { type: 'hello' };

export type EvaState = 'listening' | 'thinking' | 'speaking';

export interface MetricsMessage {
  type: 'metrics';
  turn: number;
  eou_ms?: number;
  stt_ms?: number;
  llm_ttft_ms?: number;
  first_sentence_ms?: number;
  tts_first_audio_ms?: number;
  first_audio_ms?: number;
}

export type ServerMessage =
  | { type: 'hello'; ice_servers: RTCIceServer[] }
  | { type: 'answer'; sdp: string }
  | { type: 'candidate'; candidate: IceCandidateJson }
  | { type: 'ready'; session: string; call?: string; providers: { stt: string; llm: string; tts: string } }
  | { type: 'state'; state: EvaState }
  | { type: 'vad'; speaking: boolean }
  | { type: 'transcript'; turn: number; text: string; final: boolean }
  | { type: 'reply'; turn: number; delta: string }
  | { type: 'reply_end'; turn: number; text: string }
  | { type: 'interrupted'; turn: number; heard: string }
  | MetricsMessage
  | { type: 'error'; code: string; message: string }
  | { type: 'bye'; reason: string };

/** The stage fields of `metrics`, in pipeline order, with the labels the page shows. */
export const METRIC_STAGES = [
  ['eou_ms', 'end of turn'],
  ['stt_ms', 'STT'],
  ['llm_ttft_ms', 'LLM first token'],
  ['first_sentence_ms', 'first sentence'],
  ['tts_first_audio_ms', 'TTS first audio'],
] as const satisfies ReadonlyArray<readonly [keyof MetricsMessage, string]>;

const KNOWN = new Set([
  'hello', 'answer', 'candidate', 'ready', 'state', 'vad', 'transcript', 'reply', 'reply_end', 'interrupted', 'metrics', 'error', 'bye',
]);

/**
 * A server frame as a typed message, or null for anything that is not a JSON object with a known `type`
 * (the page logs and ignores those: a newer server may send more). Field shapes are trusted once the type is known.
 */
export function parseServerMessage(data: unknown): ServerMessage | null {
  if (typeof data !== 'string') return null;
  let msg: unknown;
  try {
    msg = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return null;
  const type = (msg as { type?: unknown }).type;
  return typeof type === 'string' && KNOWN.has(type) ? (msg as ServerMessage) : null;
}
