// One OpenAI Realtime session: the protocol adapter around the same SessionCore and agent EVA's own calls use,
// on either of the API's transports.
// - WebSocket: in, base64 PCM16 at 24 kHz, resampled to the core's 16 kHz; out, the agent's 24 kHz voice as
//   `response.output_audio.delta`, through the virtual playout (playout.ts).
// - WebRTC (`media`, realtime/webrtc-call.ts): audio arrives decoded from the call's Opus track (pushAudio) and
//   leaves through the call's pacer; events travel on the `oai-events` data channel, with no audio in them and
//   `output_audio_buffer.started` / `stopped` / `cleared` instead, as OpenAI's server sends.
// The core's turn events become the `input_audio_buffer.*` events and user items; the agent's messages
// (transcript, reply deltas, interrupted, state) become the `conversation.item.*` / `response.*` sequence.
// Every server event gets an `event_id`.
import { randomBytes } from 'node:crypto';
import type { Agent, AgentFactory } from '../agent.js';
import type { Logger } from '../log.js';
import { SessionCore, type AudioSink } from '../session-core.js';
import type { ServerMessage } from '../signaling.js';
import { createResampler, type Resampler } from '../../media/resample.js';
import type { TurnConfig, TurnEvent } from '../../media/turns.js';
import type { VadEngine } from '../../media/vad.js';
import { ItemStore, itemJson, tagAt, type Item } from './items.js';
import { VirtualPlayout, type PlayoutEvents } from './playout.js';
import {
  REALTIME_RATE,
  RealtimeError,
  applySessionUpdate,
  contentText,
  defaultSession,
  evaVoice,
  sessionJson,
  type ClientEvent,
  type ContentPart,
  type RealtimeSessionConfig,
} from './protocol.js';
import { Responses, newId } from './responses.js';

export type RealtimeEvent = Record<string, unknown> & { type: string };

export interface RealtimeSessionDeps {
  vad: VadEngine;
  turn: TurnConfig;
  agent: AgentFactory;
  log: Logger;
  /** The default instructions (EVA's system prompt). */
  instructions: string;
  model: string;
  /** Serialises and sends one event (the route owns the socket). */
  send(event: RealtimeEvent): void;
  /** A handler threw: the route closes the socket. */
  onFault(err: unknown): void;
  now?: () => number;
  /**
   * WebRTC: the call's outgoing audio (its pacer). The call feeds `playoutEvents` from that pacer and decoded
   * 16 kHz audio to `pushAudio`. Absent: the WebSocket transport (base64 audio events, the virtual playout).
   */
  media?: { sink: AudioSink };
  /** The session's first settings (from the client secret it was opened with); applied before session.created. */
  initial?: Record<string, unknown>;
}

/** A manual commit needs this much audio (OpenAI's own minimum). */
const MIN_COMMIT_MS = 100;

export class RealtimeSession {
  readonly id = newId('sess');
  config: RealtimeSessionConfig;
  private readonly deps: RealtimeSessionDeps;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private readonly core: SessionCore;
  /** The agent's voice goes here: the virtual playout (WebSocket) or the call's pacer (WebRTC). */
  private readonly sink: AudioSink;
  private readonly playout: VirtualPlayout | null = null;
  /** WebRTC: the response whose audio is on the track (for output_audio_buffer.* events). */
  private playingResponse: string | null = null;
  /** Text-only sessions: the agent's audio is dropped (WebRTC; the virtual playout has its own flag). */
  private muted = false;
  /** The sink's playout events; a WebRTC call feeds its pacer's here. */
  readonly playoutEvents: PlayoutEvents;
  private resampler: Resampler | null = null;
  private agent: Agent | null = null;
  private readonly ready: Promise<void>;
  private chain: Promise<void>;
  private eventNo = 0;
  private readonly eventBase = randomBytes(6).toString('base64url');
  private readonly items: ItemStore;
  private readonly responses: Responses;
  /** Speech started (and announced), not yet committed. */
  private speech: { itemId: string; startMs: number } | null = null;
  /** Speech over EVA's voice: announced only once it is a barge-in (a backchannel never is). */
  private overlapStartMs: number | null = null;
  private turnOpen = false;
  private committedThisTurn = false;
  private awaitingTranscript: string[] = [];
  /** A committed user turn waiting for `response.create` (manual commits, `create_response: false`). */
  private pending: { kind: 'audio'; audio: Int16Array } | { kind: 'text'; text: string } | null = null;
  /** Manual mode: the ring position of the last commit or clear. */
  private bufferFrom = 0;
  private closed = false;

  constructor(deps: RealtimeSessionDeps) {
    this.deps = deps;
    this.log = deps.log.child(this.id.slice(5, 13));
    this.config = defaultSession({ id: this.id, model: deps.model, instructions: deps.instructions, endOfTurnMs: deps.turn.endOfTurnMs, threshold: deps.turn.onThreshold });
    const send = (ev: RealtimeEvent) => this.send(ev);
    this.items = new ItemStore(send);
    this.responses = new Responses(send, this.items, () => this.config, `conv_${this.id.slice(5)}`);
    // Over WebRTC the audio is on the track: the response records its spans but sends no audio deltas.
    this.responses.audioEvents = !deps.media;
    this.responses.onFinished = (id) => {
      if (id === this.playingResponse && !this.sink.speaking) this.bufferStopped();
    };
    this.core = new SessionCore({
      vad: deps.vad,
      turn: deps.turn,
      log: this.log,
      now: deps.now,
      onTurnEvent: (ev) => this.onTurnEvent(ev),
      onFault: (what, err) => {
        this.log.error(`${what} handler threw; ending the session`, { err });
        deps.onFault(err);
      },
    });
    // WebRTC: the output buffer is the response's. It starts with the response's first audio and stops when the
    // response is done and its audio has played; a pause in the middle (the TTS behind the track) is not a stop.
    this.playoutEvents = {
      talkStart: (at) => {
        this.core.sinkEvents.talkStart(at);
        if (!deps.media || this.playingResponse !== null) return;
        this.playingResponse = this.responses.current?.id ?? null;
        this.send({ type: 'output_audio_buffer.started', response_id: this.playingResponse });
      },
      talkEnd: (at) => {
        this.core.sinkEvents.talkEnd(at);
        if (this.playingResponse !== null && this.responses.current?.id !== this.playingResponse) this.bufferStopped();
      },
      played: this.core.sinkEvents.played,
      level: this.core.sinkEvents.level,
    };
    if (deps.media) {
      this.sink = this.trackSink(deps.media.sink);
    } else {
      this.playout = new VirtualPlayout({ sampleRate: REALTIME_RATE, send: (pcm, segment) => this.onAudioOut(pcm, segment), events: this.playoutEvents, now: deps.now });
      this.sink = this.playout;
    }
    this.ready = this.start();
    // A session that failed to start is closed by the route (whenReady); its queued events are dropped.
    this.chain = this.ready.catch(() => {
      this.closed = true;
    });
  }

  get providers(): Agent['providers'] | undefined {
    return this.agent?.providers;
  }

  /**
   * WebRTC: the pacer, with the response's audio spans recorded as it is queued (what a truncate maps back onto)
   * and `output_audio_buffer.cleared` when queued audio is dropped.
   */
  private trackSink(inner: AudioSink): AudioSink {
    const session = this;
    return {
      sampleRate: inner.sampleRate,
      enqueue(pcm, segment) {
        if (session.muted) return;
        session.onAudioOut(pcm, segment);
        inner.enqueue(pcm, segment);
      },
      flush: () => inner.flush(),
      waitForRoom: () => inner.waitForRoom(),
      clear() {
        const playing = session.playingResponse;
        const dropped = inner.clear();
        if (playing !== null) {
          session.playingResponse = null;
          session.send({ type: 'output_audio_buffer.cleared', response_id: playing });
        }
        return dropped;
      },
      hold: (on) => inner.hold(on),
      get speaking() {
        return inner.speaking;
      },
      get queuedMs() {
        return inner.queuedMs;
      },
    };
  }

  private async start(): Promise<void> {
    if (!this.deps.media) {
      this.resampler = await createResampler(REALTIME_RATE, 16000);
      if (this.closed) {
        this.resampler.destroy();
        return;
      }
    }
    this.agent = this.core.start(
      this.sink,
      { callId: this.id, sessionId: this.id, config: {}, emit: (m) => this.core.guard('agent event', () => this.onAgentMessage(m)), log: this.log, signal: this.abort.signal },
      this.deps.agent,
    );
    if (this.deps.initial) this.update(this.deps.initial, false);
    this.send({ type: 'session.created', session: sessionJson(this.config) });
  }

  /** Client events are handled in order, after the session is ready. */
  handle(ev: ClientEvent): void {
    this.chain = this.chain.then(() => {
      if (this.closed) return;
      try {
        this.dispatch(ev);
      } catch (err) {
        if (err instanceof RealtimeError) this.error(err, ev.event_id);
        else this.deps.onFault(err);
      }
    });
  }

  /** An error event answering a client event (or a frame that never became one). */
  error(err: RealtimeError, clientEventId?: string): void {
    this.send({ type: 'error', error: { type: err.type, code: err.code, message: err.message, param: err.param, event_id: clientEventId ?? null } });
  }

  private send(ev: RealtimeEvent): void {
    if (this.closed) return;
    this.deps.send({ ...ev, event_id: `event_${this.eventBase}${(++this.eventNo).toString(36)}` });
  }

  // ---- client events --------------------------------------------------------------------------------------
  private dispatch(ev: ClientEvent): void {
    switch (ev.type) {
      case 'session.update':
        this.update(ev.session);
        return;
      case 'input_audio_buffer.append': {
        if (this.deps.media) throw new RealtimeError('unsupported_over_webrtc', 'This is a WebRTC session: its audio comes from the call\'s audio track, not from input_audio_buffer.append.');
        const bytes = ev.audio;
        const pcm24 = new Int16Array(bytes.length >> 1);
        for (let i = 0; i < pcm24.length; i++) pcm24[i] = bytes.readInt16LE(i * 2);
        this.core.pushAudio(this.resampler!.process(pcm24));
        return;
      }
      case 'input_audio_buffer.commit':
        this.commit();
        return;
      case 'input_audio_buffer.clear':
        this.bufferFrom = this.core.ring.written;
        if (this.speech || this.turnOpen) this.core.resetTurn();
        this.speech = null;
        this.overlapStartMs = null;
        this.turnOpen = false;
        this.send({ type: 'input_audio_buffer.cleared' });
        return;
      case 'conversation.item.create':
        this.createItem(ev.item, ev.previous_item_id ?? null);
        return;
      case 'conversation.item.retrieve': {
        const item = this.items.get(ev.item_id);
        if (!item) throw notFound(ev.item_id);
        this.send({ type: 'conversation.item.retrieved', item: itemJson(item) });
        return;
      }
      case 'conversation.item.delete': {
        const item = this.items.get(ev.item_id);
        if (!item || !this.items.delete(ev.item_id)) throw notFound(ev.item_id);
        // The model stops seeing it too: the next answer's history no longer holds its words.
        const text = contentText(item.content);
        if (text && (item.role === 'user' || item.role === 'assistant')) this.agent?.forget?.({ role: item.role, text });
        this.send({ type: 'conversation.item.deleted', item_id: ev.item_id });
        return;
      }
      case 'conversation.item.truncate':
        this.truncate(ev.item_id, ev.content_index, ev.audio_end_ms);
        return;
      case 'response.create':
        this.createResponse();
        return;
      case 'output_audio_buffer.clear': {
        if (!this.deps.media) throw new RealtimeError('unsupported_over_websocket', 'output_audio_buffer.clear is a WebRTC event: over WebSocket the client owns its audio buffer (use response.cancel and conversation.item.truncate).');
        const r = this.responses.current;
        if (r) r.cancelReason = 'client_cancelled';
        const playing = this.playingResponse;
        this.core.interruptNow();
        this.responses.finish('cancelled');
        // interruptNow clears the sink, which announces `cleared` while audio was on the track; else say it here.
        if (playing === null) this.send({ type: 'output_audio_buffer.cleared', response_id: r?.id ?? null });
        return;
      }
      case 'response.cancel': {
        const r = this.responses.current;
        if (!r || (ev.response_id !== undefined && ev.response_id !== r.id)) {
          throw new RealtimeError('response_cancel_not_active', 'Cancellation failed: no active response found.');
        }
        r.cancelReason = 'client_cancelled';
        this.core.interruptNow();
        this.responses.finish('cancelled'); // a no-op when the agent's `interrupted` closed it already
        return;
      }
      default: {
        const never: never = ev;
        throw new Error(`unhandled client event ${JSON.stringify(never)}`);
      }
    }
  }

  private update(u: Record<string, unknown>, announce = true): void {
    const before = this.config;
    const next = applySessionUpdate(before, u);
    this.config = next;
    const agent = this.agent;
    if (next.instructions !== before.instructions) agent?.configure?.({ system: next.instructions });
    if (next.voice !== before.voice) agent?.configure?.({ voice: evaVoice(next.voice) });
    const lang = next.transcription?.language ?? null;
    if (lang !== (before.transcription?.language ?? null)) agent?.configure?.({ language: lang });
    const muted = !next.output_modalities.includes('audio');
    if (muted !== this.muted) agent?.configure?.({ speak: !muted });
    this.muted = muted;
    if (this.playout) this.playout.muted = muted;
    const td = next.turn_detection;
    if (td === null) {
      if (this.core.turnDetection) {
        this.core.turnDetection = false;
        this.core.resetTurn();
        this.bufferFrom = this.core.ring.written;
        this.speech = null;
        this.turnOpen = false;
      }
    } else {
      this.core.turnDetection = true;
      this.core.autoRespond = td.create_response;
      this.core.interrupt = td.interrupt_response;
      this.core.leadInMs = td.prefix_padding_ms;
      const base = this.deps.turn;
      const endOfTurnMs = td.type === 'semantic_vad' ? base.endOfTurnMs : Math.max(base.pauseMs, Math.round(td.silence_duration_ms));
      const onThreshold = td.type === 'semantic_vad' ? base.onThreshold : td.threshold;
      const cfg: TurnConfig = {
        ...base,
        onThreshold,
        // Hysteresis: 0.15 below the onset, never above EVA's own offset nor the onset itself.
        offThreshold: Math.min(onThreshold, Math.max(0.05, Math.min(base.offThreshold, onThreshold - 0.15))),
        endOfTurnMs,
        maxEndOfTurnMs: Math.max(base.maxEndOfTurnMs, endOfTurnMs),
      };
      const cur = this.core.turnConfig;
      if (cur.onThreshold !== cfg.onThreshold || cur.offThreshold !== cfg.offThreshold || cur.endOfTurnMs !== cfg.endOfTurnMs || cur.maxEndOfTurnMs !== cfg.maxEndOfTurnMs) {
        this.core.setTurnConfig(cfg);
        agent?.configure?.({ endOfTurnMs });
      }
    }
    if (announce) this.send({ type: 'session.updated', session: sessionJson(next) });
  }

  /** WebRTC: the response's audio has all played. */
  private bufferStopped(): void {
    this.send({ type: 'output_audio_buffer.stopped', response_id: this.playingResponse });
    this.playingResponse = null;
  }

  /** WebRTC: one decoded frame from the call's track, 16 kHz. */
  pushAudio(pcm16k: Int16Array): void {
    if (!this.closed && this.agent) this.core.pushAudio(pcm16k);
  }

  /** Runs a callback so that a throw ends this session only. */
  guard(what: string, fn: () => void): void {
    this.core.guard(what, fn);
  }

  private commit(): void {
    let audio: Int16Array;
    if (!this.core.turnDetection) {
      audio = this.core.ring.slice(this.bufferFrom, this.core.ring.written);
      if ((audio.length * 1000) / 16000 < MIN_COMMIT_MS) {
        throw new RealtimeError('input_audio_buffer_commit_empty', `Error committing input audio buffer: buffer too small. Expected at least ${MIN_COMMIT_MS}ms of audio.`);
      }
      this.bufferFrom = this.core.ring.written;
      this.openSpeech(this.core.audioMs - (audio.length * 1000) / 16000, false);
    } else {
      if (!this.speech) throw new RealtimeError('input_audio_buffer_commit_empty', 'Error committing input audio buffer: no speech in the buffer.');
      audio = this.core.turnAudio(this.core.audioMs);
      this.core.resetTurn();
      this.turnOpen = false;
    }
    this.commitSpeech(this.core.audioMs);
    if (this.core.turnDetection && this.core.autoRespond) this.core.answer(audio);
    else this.pending = { kind: 'audio', audio };
  }

  private createItem(input: { id?: string; role: Item['role']; content: ContentPart[] }, previous: string | null): void {
    const id = input.id ?? newId('item');
    if (this.items.has(id)) throw new RealtimeError('duplicate_item_id', `Item with id '${id}' already exists.`, 'item.id');
    if (previous !== null && !this.items.has(previous)) throw notFound(previous, 'previous_item_id');
    const item: Item = { id, object: 'realtime.item', type: 'message', status: 'completed', role: input.role, content: input.content };
    this.items.add(item, 'done');
    if (input.role === 'user') {
      const text = contentText(input.content);
      if (text) this.pending = this.pending?.kind === 'text' ? { kind: 'text', text: `${this.pending.text}\n${text}` } : { kind: 'text', text };
    } else if (input.role === 'system') {
      this.agent?.configure?.({ system: `${this.config.instructions}\n\n${contentText(input.content)}`.trim() });
    }
  }

  private createResponse(): void {
    const active = this.responses.current;
    if (active) throw new RealtimeError('conversation_already_has_active_response', `Conversation already has an active response in progress: ${active.id}. Wait until the response is finished before creating a new one.`);
    const pending = this.pending;
    this.pending = null;
    this.responses.create();
    if (!pending) {
      // EVA answers the person: with nothing new from them there is nothing to say.
      this.responses.finish('failed', undefined, { type: 'invalid_request_error', code: 'no_input', message: 'EVA answers a user turn: commit audio or create a user message item first.' });
      return;
    }
    if (pending.kind === 'audio') this.core.answer(pending.audio);
    else this.core.text(pending.text);
  }

  private truncate(itemId: string, contentIndex: number, audioEndMs: number): void {
    const item = this.items.get(itemId);
    if (!item) throw notFound(itemId);
    if (item.role !== 'assistant') throw new RealtimeError('invalid_value', 'Only assistant message items can be truncated.', 'item_id');
    const playing = this.responses.current?.itemId === itemId ? this.responses.current : null;
    const spans = playing ? playing.spans : (item.audio ?? []);
    const total = spans.reduce((ms, s) => ms + s.durMs, 0);
    if (audioEndMs > total + 1) throw new RealtimeError('invalid_value', `Audio content of ${Math.floor(total)}ms is already shorter than ${audioEndMs}ms.`, 'audio_end_ms');
    if (playing) {
      // Still playing as far as EVA knows: the client stopped it, so EVA stops too.
      this.core.interruptNow();
      this.responses.finish('cancelled');
    }
    const heard = this.agent?.truncate?.(tagAt(spans, audioEndMs)) ?? '';
    item.content = [{ type: 'output_audio', transcript: heard }];
    item.status = 'incomplete';
    item.audio = spans.filter((s) => s.atMs < audioEndMs);
    this.send({ type: 'conversation.item.truncated', item_id: itemId, content_index: contentIndex, audio_end_ms: audioEndMs });
  }

  // ---- the core's turn events -------------------------------------------------------------------------------
  private onTurnEvent(ev: TurnEvent): void {
    switch (ev.type) {
      case 'speech_start':
        this.turnOpen = true;
        this.committedThisTurn = false;
        if (this.speech) return; // announced already (a resume just before the agent split the turn)
        if (ev.overlap) this.overlapStartMs = ev.atMs;
        else this.openSpeech(ev.atMs);
        return;
      case 'barge_in':
        // Announced with interrupt_response false too: the client decides (the agents SDK then cancels itself).
        if (!this.speech) this.openSpeech(this.overlapStartMs ?? ev.onsetMs);
        this.overlapStartMs = null;
        return;
      case 'backchannel':
        this.overlapStartMs = null;
        this.turnOpen = false;
        return;
      case 'resume':
        // An early answer was committed and the person went on: their further words are a new user item.
        if (this.turnOpen && !this.speech && this.committedThisTurn) this.openSpeech(ev.atMs);
        return;
      case 'end_of_turn':
        this.turnOpen = false;
        if (!this.speech) return;
        if (!this.core.autoRespond) this.pending = { kind: 'audio', audio: this.core.turnAudio(ev.speechEndMs) };
        this.commitSpeech(ev.speechEndMs);
        return;
      case 'vad':
      case 'pause':
      case 'silence':
      case 'hold':
      case 'release':
        return;
      default: {
        const never: never = ev;
        throw new Error(`unhandled turn event ${JSON.stringify(never)}`);
      }
    }
  }

  private openSpeech(startMs: number, announce = true): void {
    const itemId = newId('item');
    this.speech = { itemId, startMs };
    if (announce) this.send({ type: 'input_audio_buffer.speech_started', audio_start_ms: Math.max(0, Math.round(startMs)), item_id: itemId });
  }

  private commitSpeech(endMs: number): void {
    const speech = this.speech;
    if (!speech) return;
    this.speech = null;
    this.committedThisTurn = this.turnOpen;
    if (this.core.turnDetection) this.send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: Math.round(endMs), item_id: speech.itemId });
    this.send({ type: 'input_audio_buffer.committed', previous_item_id: this.items.last, item_id: speech.itemId });
    const item: Item = { id: speech.itemId, object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_audio', transcript: null }] };
    this.items.add(item, 'done');
    this.awaitingTranscript.push(item.id);
  }

  // ---- the agent's messages ---------------------------------------------------------------------------------
  private onAgentMessage(m: ServerMessage): void {
    switch (m.type) {
      case 'transcript': {
        this.commitAnswered();
        const itemId = this.awaitingTranscript.shift();
        const item = itemId ? this.items.get(itemId) : undefined;
        if (!item || !itemId) return; // a typed turn: its item holds its text already
        item.content = [{ type: 'input_audio', transcript: m.text }];
        if (this.config.transcription !== null) {
          this.send({ type: 'conversation.item.input_audio_transcription.completed', item_id: itemId, content_index: 0, transcript: m.text });
        }
        return;
      }
      case 'reply':
        this.commitAnswered();
        this.responses.text(m.delta);
        return;
      case 'interrupted':
        this.responses.finish('cancelled', m.heard);
        return;
      case 'state':
        if (m.state === 'thinking') this.commitAnswered();
        if (m.state === 'listening') this.responses.finish('completed');
        return;
      case 'error':
        this.send({ type: 'error', error: { type: 'server_error', code: m.code, message: m.message, param: null, event_id: null } });
        this.responses.finish('failed', undefined, { type: 'server_error', code: m.code, message: m.message });
        return;
      default:
        return; // vad, metrics, reply_end (the response ends when its audio has played): nothing to tell
    }
  }

  /**
   * The agent is answering the speech in progress before the turn detector's window closed (an early answer: its
   * transcript, reply and 'thinking' come first): commit the user item now, so it precedes its response.
   */
  private commitAnswered(): void {
    if (this.speech && this.overlapStartMs === null) this.commitSpeech(this.core.audioMs);
  }

  private onAudioOut(pcm: Int16Array, segment: number): void {
    this.commitAnswered();
    this.responses.audioDelta(pcm, segment);
  }

  /** Idempotent: the agent, the core, the playout and the resampler are released. */
  close(reason = 'socket_closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.core.close(reason);
    this.playout?.close();
    this.resampler?.destroy();
    this.resampler = null;
  }

  /** Resolves once the session is ready (session.created sent). */
  whenReady(): Promise<void> {
    return this.ready;
  }
}

function notFound(id: string, param = 'item_id'): RealtimeError {
  return new RealtimeError('item_not_found', `Item with item_id '${id.slice(0, 80)}' not found.`, param);
}
