// What a call's "brain" sees. The Call (server/call.ts) owns the transport, codecs, VAD and the outgoing
// pacer; an Agent decides what to say. The zero-config audio echo (agent-echo.ts) and the STT → LLM → TTS
// pipeline both implement this, so the call's lifecycle code is written once.
import type { Logger } from './log.js';
import type { CallConfig, ServerMessage } from './signaling.js';
import type { FrameTag } from '../media/pacer.js';

/** The outgoing audio of the call, at `sampleRate` (the Opus encoder's rate). */
export interface AudioOut {
  readonly sampleRate: number;
  /** Queue PCM for `segment`; frames are tagged so `played` events say how much of it was heard. */
  enqueue(pcm: Int16Array, segment: number): void;
  /** Pad and queue a trailing partial frame. */
  flush(): void;
  /** Resolves when the bounded queue has room (backpressure for producers faster than real time). */
  waitForRoom(): Promise<void>;
  /** Drop everything queued; returns the ms dropped. */
  clear(): number;
  readonly speaking: boolean;
  readonly queuedMs: number;
}

export interface TurnInfo {
  /** Turn number within the call, from 1. */
  turn: number;
  /** performance.now() when the last voiced sample arrived at the server. */
  speechEndAt: number;
  /** End of speech → end of turn decided (the silence window plus VAD lag), ms. */
  eouMs: number;
}

export interface AgentContext {
  /** The call's id (call records, logs). */
  callId: string;
  /** The session the call's history belongs to: `config.session` when the offer named one, else the call id. */
  sessionId: string;
  /** What the offer asked for (voice, system prompt, language, session). */
  config: CallConfig;
  out: AudioOut;
  emit(msg: ServerMessage): void;
  log: Logger;
  /** Aborted when the call ends. */
  signal: AbortSignal;
}

export interface Agent {
  readonly providers: { stt: string; llm: string; tts: string };
  /** A pause in the person's speech: the audio so far (16 kHz). Work may start, and be thrown away on resume. */
  onPause?(audio16k: Int16Array, info: TurnInfo): void;
  onResume?(): void;
  /** The person finished a turn: the whole turn's audio (16 kHz, with ~200 ms of lead-in). */
  onEndOfTurn(audio16k: Int16Array, info: TurnInfo): void;
  /** A typed turn (`{type:"text"}`). */
  onText(text: string): void;
  /** The person spoke over EVA: stop at once. The call has already dropped the queued audio. */
  onBargeIn(): void;
  /** The first frame of a reply left the server. */
  onTalkStart?(at: number): void;
  /** EVA's audio queue ran dry. */
  onTalkEnd?(at: number): void;
  onPlayed?(tag: FrameTag): void;
  /** The call ended (`reason` as in the `bye` event). */
  close(reason?: string): void;
}

export type AgentFactory = (ctx: AgentContext) => Agent;
