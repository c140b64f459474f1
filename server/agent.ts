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
  /**
   * The person is clearly not done: the current silence ends the turn only after the detector's maximum
   * (EVA_MAX_EOU_MS) instead of the usual window. Cleared when speech resumes or the turn ends.
   */
  extendTurn(): void;
  /**
   * The voice now is a new turn, not the answered one going on (e.g. a reaction to EVA's early answer): the
   * detector starts a turn at its onset, over EVA's voice, so the barge-in and backchannel rules apply.
   */
  splitTurn?(): void;
}

export interface SpeechInfo {
  /** The speech began over EVA's voice (it may become a barge-in, or stay a backchannel). */
  overlap: boolean;
}

export interface SilenceInfo {
  /** Silence since the end of speech, ms of call audio. */
  silenceMs: number;
  /** performance.now() when the last voiced sample arrived. */
  speechEndAt: number;
}

export interface AgentUpdate {
  system?: string;
  /** A TTS voice name; null = the configured default. */
  voice?: string | null;
  language?: string | null;
  /** The end-of-turn window when the predictor has no opinion, ms. */
  endOfTurnMs?: number;
  /** false: answer in text only, with no speech synthesis (the Realtime API's text modality). */
  speak?: boolean;
}

export interface Agent {
  readonly providers: { stt: string; llm: string; tts: string };
  /**
   * A turn's speech began: the audio from just before its onset until now (16 kHz). From here until the end of
   * turn (or `onTurnDropped`), every decoded packet also goes to `onAudio`, for streaming STT.
   */
  onSpeechStart?(leadIn16k: Int16Array, info: SpeechInfo): void;
  onAudio?(pcm16k: Int16Array): void;
  /** Speech ended without a turn to answer (a backchannel over EVA, or the call's audio was reset). */
  onTurnDropped?(): void;
  /** Each VAD window of silence after the pause, until the end of turn: the end-of-turn predictor decides on it. */
  onSilence?(info: SilenceInfo): void;
  /** The first silent window after speech: the audio so far (16 kHz). Work may start, and be thrown away on resume. */
  onPause?(audio16k: Int16Array, info: TurnInfo): void;
  /** The person went on after a pause; `onsetAt` is performance.now() when that voice arrived. */
  onResume?(info?: { onsetAt: number }): void;
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
  /** Settings changed mid-session (the Realtime API's `session.update`); absent fields stay as they are. */
  configure?(update: AgentUpdate): void;
  /**
   * The client reports it played the last reply only up to `played` (the Realtime API's
   * `conversation.item.truncate`; null = none of it): the history keeps what was heard. Returns that text.
   */
  truncate?(played: FrameTag | null): string | undefined;
  /** A message leaves the model's history (the Realtime API's `conversation.item.delete`); false if it was not there. */
  forget?(message: { role: 'user' | 'assistant'; text: string }): boolean;
  /** The call ended (`reason` as in the `bye` event). */
  close(reason?: string): void;
}

export type AgentFactory = (ctx: AgentContext) => Agent;
