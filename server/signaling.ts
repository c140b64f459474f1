// The `/ws` signaling protocol (docs/protocol.md): parsing and validation of client frames, pure. Anything the
// page or an outside client can send ends here as a typed message or an EvaError with a stable code.
import type { IceServerConfig } from './config.js';
import { EvaError } from './errors.js';

/** Frames above this are refused with `too_large` (an SDP offer is ~2–6 KiB). uWS itself drops > 1 MiB. */
export const MAX_FRAME_BYTES = 128 * 1024;
export const MAX_TEXT_CHARS = 4000;

export interface CallConfig {
  voice?: string;
  system?: string;
  language?: string;
  /** Continue a stored session (its history), e.g. one started with `POST /chat` or an earlier call. */
  session?: string;
}

/** Session ids, shared by `/ws` offers and the text API. */
export const SESSION_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export interface IceCandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
}

export type ClientMessage =
  | { type: 'offer'; sdp: string; config: CallConfig }
  | { type: 'candidate'; candidate: IceCandidateInit }
  | { type: 'text'; text: string }
  | { type: 'hangup' }
  /** Asks for the ICE servers to build the peer connection with (answered by `hello`); any time, any number. */
  | { type: 'hello' };

export type ServerMessage =
  /** The STUN/TURN servers for this socket's calls, TURN ones with a credential minted for this socket. */
  | { type: 'hello'; ice_servers: IceServerConfig[] }
  | { type: 'answer'; sdp: string }
  | { type: 'candidate'; candidate: IceCandidateInit }
  | { type: 'ready'; session: string; call: string; providers: { stt: string; llm: string; tts: string } }
  | { type: 'state'; state: 'listening' | 'thinking' | 'speaking' }
  | { type: 'vad'; speaking: boolean }
  | { type: 'transcript'; turn: number; text: string; final: boolean }
  | { type: 'reply'; turn: number; delta: string }
  | { type: 'reply_end'; turn: number; text: string }
  | { type: 'interrupted'; turn: number; heard: string }
  | MetricsMessage
  | { type: 'error'; code: string; message: string }
  | { type: 'bye'; reason: string };

/** Per-turn stage times in ms (docs/protocol.md); a stage that did not run is absent. */
export interface MetricsMessage {
  type: 'metrics';
  turn: number;
  eou_ms?: number;
  stt_ms?: number;
  llm_ttft_ms?: number;
  first_sentence_ms?: number;
  tts_first_audio_ms?: number;
  first_audio_ms?: number;
  /** How sure the end-of-turn predictor was: finished / likely / uncertain / unfinished (voice turns it decided). */
  eou_class?: string;
  /** Answered before the end-of-turn window closed (retractable if the person went on). */
  eou_early?: boolean;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function optString(v: unknown, name: string, max: number): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new EvaError('bad_message', `${name} must be a string`);
  if (v.length > max) throw new EvaError('too_large', `${name} is longer than ${max} characters`);
  return v;
}

export function parseClientMessage(data: ArrayBuffer | string, isBinary = false): ClientMessage {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  if (size > MAX_FRAME_BYTES) throw new EvaError('too_large', `frame of ${size} bytes exceeds ${MAX_FRAME_BYTES}`);
  if (isBinary) throw new EvaError('bad_message', 'binary frames are not part of the protocol; send JSON text');
  let text: string;
  try {
    text = typeof data === 'string' ? data : decoder.decode(data);
  } catch {
    throw new EvaError('bad_message', 'frame is not valid UTF-8');
  }
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new EvaError('bad_message', 'frame is not valid JSON');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new EvaError('bad_message', 'a message must be a JSON object with a "type"');
  const m = msg as Record<string, unknown>;
  if (typeof m.type !== 'string') throw new EvaError('bad_message', 'a message must have a string "type"');
  switch (m.type) {
    case 'offer': {
      if (typeof m.sdp !== 'string' || m.sdp.length === 0) throw new EvaError('bad_message', 'offer needs an "sdp" string');
      const c = m.config;
      if (c !== undefined && (typeof c !== 'object' || c === null || Array.isArray(c))) throw new EvaError('bad_message', 'offer.config must be an object');
      const cfg = (c ?? {}) as Record<string, unknown>;
      const config: CallConfig = {};
      const voice = optString(cfg.voice, 'config.voice', 100);
      const system = optString(cfg.system, 'config.system', 4000);
      const language = optString(cfg.language, 'config.language', 16);
      if (voice !== undefined) config.voice = voice;
      if (system !== undefined) config.system = system;
      if (language !== undefined) config.language = language;
      if (cfg.session !== undefined && cfg.session !== null) {
        if (typeof cfg.session !== 'string' || !SESSION_ID_RE.test(cfg.session)) {
          throw new EvaError('bad_message', 'config.session must be 1-64 characters of A-Z, a-z, 0-9, "_" or "-"');
        }
        config.session = cfg.session;
      }
      return { type: 'offer', sdp: m.sdp, config };
    }
    case 'candidate': {
      const c = m.candidate;
      if (typeof c !== 'object' || c === null || typeof (c as { candidate?: unknown }).candidate !== 'string') {
        throw new EvaError('bad_message', 'candidate needs a "candidate" object with a "candidate" string');
      }
      const cc = c as Record<string, unknown>;
      return {
        type: 'candidate',
        candidate: {
          candidate: cc.candidate as string,
          sdpMid: typeof cc.sdpMid === 'string' ? cc.sdpMid : null,
          sdpMLineIndex: typeof cc.sdpMLineIndex === 'number' ? cc.sdpMLineIndex : null,
        },
      };
    }
    case 'text': {
      const t = optString(m.text, 'text', MAX_TEXT_CHARS);
      if (!t || t.trim() === '') throw new EvaError('bad_message', 'text needs a non-empty "text" string');
      return { type: 'text', text: t.trim() };
    }
    case 'hangup':
      return { type: 'hangup' };
    case 'hello':
      return { type: 'hello' };
    default:
      throw new EvaError('unknown_type', `unknown message type ${JSON.stringify(m.type).slice(0, 60)}; expected offer, candidate, text or hangup (or hello)`);
  }
}
