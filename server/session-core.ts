// The transport-independent half of a conversation: 16 kHz audio in (VAD stream, turn detector, echo gate, audio
// ring), the agent, and the outgoing audio sink it speaks into. Two transports wrap it: the WebRTC Call
// (call.ts: werift peer, Opus, the real-time pacer) and the OpenAI Realtime WebSocket session (realtime/session.ts:
// base64 PCM16, a virtual playout clock). Each supplies its sink and feeds the sink's events back here, so the
// turn-taking, barge-in and "what was heard" logic exists once.
import type { Agent, AgentContext, AgentFactory, AudioOut, TurnInfo } from './agent.js';
import type { Logger } from './log.js';
import type { CallConfig } from './signaling.js';
import type { PacerEvents } from '../media/pacer.js';
import { PcmRing } from '../media/pcm-ring.js';
import { TurnDetector, type TurnConfig, type TurnEvent } from '../media/turns.js';
import { VAD_WINDOW, VAD_WINDOW_MS, type VadEngine, type VadStream } from '../media/vad.js';
import { EchoGate } from '../media/echo-gate.js';
import { rmsOf, voiceEdgeMs } from '../media/level.js';

/** Audio kept before a turn's first voiced window: Silero confirms speech ~1–2 windows late. */
export const LEAD_IN_MS = 200;
export const CORE_RATE = 16000;

/** Where the agent's voice goes: the pacer of a WebRTC call, or a WebSocket client's virtual playout. */
export interface AudioSink extends Omit<AudioOut, 'speaking' | 'queuedMs'> {
  readonly speaking: boolean;
  readonly queuedMs: number;
  /** Pause (true) or resume playback without dropping anything (voice over EVA, not yet a barge-in). */
  hold(on: boolean): void;
}

export interface SessionCoreOptions {
  vad: VadEngine;
  turn: TurnConfig;
  log: Logger;
  now?: () => number;
  /** Told every turn event before the core acts on it (the Realtime adapter turns them into protocol events). */
  onTurnEvent?(ev: TurnEvent): void;
  /** A handler threw: the owner ends the session (one session's bug never takes down the process). */
  onFault(what: string, err: unknown): void;
}

export class SessionCore {
  readonly ring = new PcmRing(CORE_RATE * 20);
  /** VAD windows taken for EVA's own echo while she spoke (not counted towards a barge-in). */
  echoWindows = 0;
  /** false: the VAD still runs but its turns are ignored (the Realtime API's `turn_detection: null`). */
  turnDetection = true;
  /** false: an end of turn is reported (onTurnEvent) but not answered; the owner calls `answer()` itself. */
  autoRespond = true;
  /** false: speech over EVA never cuts her off (the Realtime API's `interrupt_response: false`). */
  interrupt = true;
  leadInMs = LEAD_IN_MS;

  private readonly opts: SessionCoreOptions;
  private readonly now: () => number;
  private readonly vad: VadStream;
  private readonly echoGate = new EchoGate();
  private turns: TurnDetector;
  private agent: Agent | null = null;
  private sink: AudioSink | null = null;
  private turnNo = 0;
  private turnStartSample = 0;
  /** For the current silence: how long before the end of the last voiced VAD window the voice really ended. */
  private edgeMs = 0;
  /** Between a turn's speech_start and its end: incoming audio also goes to the agent (streaming STT). */
  private streaming = false;
  private closed = false;

  constructor(opts: SessionCoreOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
    this.turns = new TurnDetector(opts.turn);
    this.vad = opts.vad.createStream((prob, endSample) => this.guard('VAD result', () => this.onVad(prob, endSample)), {
      // The VAD worker was replaced (a crash or a hang): the model state is gone, so is the turn in progress.
      onReset: () => this.guard('VAD reset', () => this.onVadReset()),
    });
  }

  get turnConfig(): TurnConfig {
    return this.turns.config;
  }

  get providers(): Agent['providers'] | undefined {
    return this.agent?.providers;
  }

  get currentAgent(): Agent | null {
    return this.agent;
  }

  /** ms of 16 kHz audio received so far (the audio's own clock, as the turn events count it). */
  get audioMs(): number {
    return (this.ring.written * 1000) / CORE_RATE;
  }

  /** Build the agent, speaking into `sink`. */
  start(sink: AudioSink, ctx: Omit<AgentContext, 'out' | 'extendTurn' | 'splitTurn'> & { config: CallConfig }, factory: AgentFactory): Agent {
    this.sink = sink;
    const out: AudioOut = {
      sampleRate: sink.sampleRate,
      enqueue: (pcm, segment) => sink.enqueue(pcm, segment),
      flush: () => sink.flush(),
      waitForRoom: () => sink.waitForRoom(),
      clear: () => sink.clear(),
      get speaking() {
        return sink.speaking;
      },
      get queuedMs() {
        return sink.queuedMs;
      },
    };
    this.agent = factory({ ...ctx, out, extendTurn: () => this.turns.extend(), splitTurn: () => this.runTurnEvents(this.turns.split()) });
    return this.agent;
  }

  /** A new turn configuration (VAD thresholds, the end-of-turn window): takes effect between turns. */
  setTurnConfig(config: TurnConfig): void {
    this.turns = new TurnDetector(config);
    this.streaming = false;
    this.sink?.hold(false);
  }

  /** 16 kHz mono PCM from the transport, in arrival order. */
  pushAudio(pcm: Int16Array): void {
    if (this.closed) return;
    this.ring.write(pcm);
    this.vad.push(pcm);
    if (this.streaming) this.agent?.onAudio?.(pcm);
  }

  text(text: string): void {
    this.agent?.onText(text);
  }

  /** Answer a turn the owner ended itself (a manual commit, or `create_response: false`). */
  answer(audio16k: Int16Array, speechEndMs = this.audioMs): void {
    const agent = this.agent;
    if (!agent) return;
    this.turnNo++;
    this.streaming = false;
    agent.onEndOfTurn(audio16k, this.info(speechEndMs, this.turnNo));
  }

  /** Stop EVA now, as a barge-in does (the Realtime API's `response.cancel`, a client's truncate). */
  interruptNow(): void {
    const dropped = this.sink?.clear() ?? 0;
    this.opts.log.info('reply stopped by the client', { droppedMs: dropped });
    this.agent?.onBargeIn();
  }

  /** Forget the speech in progress (the Realtime API's `input_audio_buffer.clear`). */
  resetTurn(): void {
    this.turns.reset();
    this.streaming = false;
    this.sink?.hold(false);
    this.agent?.onResume?.();
    this.agent?.onTurnDropped?.();
  }

  // ---- the sink's events --------------------------------------------------------------------------------------
  /** What the sink reports as it plays (the WebRTC pacer, the virtual playout): given to it as its events. */
  readonly sinkEvents: PacerEvents = {
    talkStart: (at) => this.guard('talk start', () => this.agent?.onTalkStart?.(at)),
    talkEnd: (at) => this.guard('talk end', () => this.agent?.onTalkEnd?.(at)),
    played: (tag) => this.guard('played', () => this.agent?.onPlayed?.(tag)),
    level: (rms, at) => this.echoGate.output(rms, at),
  };

  /** An exception in one session's callbacks ends that session, never the process or another session. */
  guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.onFault(what, err);
    }
  }

  private onVadReset(): void {
    if (this.closed) return;
    this.resetTurn();
  }

  private onVad(prob: number, endSample: number): void {
    if (this.closed || !this.turnDetection) return;
    const atMs = (endSample * 1000) / CORE_RATE;
    const evaSpeaking = this.sink?.speaking ?? false;
    // Compare with what EVA sent just before this audio arrived, not before now: the VAD answers in batches from
    // a worker, later still on a loaded machine, and by then she may be between sentences.
    const heardAt = this.wallOf(atMs);
    if (evaSpeaking && prob >= this.turns.config.offThreshold && this.echoGate.isEcho(rmsOf(this.ring.slice(endSample - VAD_WINDOW, endSample)), heardAt)) {
      // Voice while EVA talks, but far quieter than her: her own voice leaking back, not the person.
      prob = 0;
      this.echoWindows++;
    }
    this.runTurnEvents(this.turns.step({ prob, atMs, windowMs: VAD_WINDOW_MS, evaSpeaking }));
  }

  private runTurnEvents(events: TurnEvent[]): void {
    for (const ev of events) {
      // The owner first: a protocol reports speech before the reply it cuts off is cancelled.
      this.opts.onTurnEvent?.(ev);
      this.onTurnEvent(ev);
    }
  }

  /** performance.now() at which the audio sample at `audioMs` arrived (the ring is written as audio arrives). */
  private wallOf(audioMs: number): number {
    return this.now() - Math.max(0, this.audioMs - audioMs);
  }

  private onTurnEvent(ev: TurnEvent): void {
    const agent = this.agent;
    if (!agent) return;
    switch (ev.type) {
      case 'vad':
        return; // for the page's indicator: the owner reports it (onTurnEvent)
      case 'speech_start':
        this.turnStartSample = Math.max(0, ((ev.atMs - this.leadInMs) * CORE_RATE) / 1000);
        this.streaming = true;
        agent.onSpeechStart?.(this.ring.slice(Math.floor(this.turnStartSample), this.ring.written), { overlap: ev.overlap });
        return;
      case 'pause':
        // Silero stays voiced for 0–2 windows after speech stops: count the silence from where the voice ended.
        this.edgeMs = voiceEdgeMs(this.ring, Math.round((ev.speechEndMs * CORE_RATE) / 1000), CORE_RATE);
        if (this.autoRespond) agent.onPause?.(this.turnAudio(ev.speechEndMs), this.info(ev.speechEndMs - this.edgeMs, this.turnNo + 1));
        return;
      case 'silence':
        if (this.autoRespond) {
          const silenceMs = ev.silenceMs + this.edgeMs;
          agent.onSilence?.({ silenceMs, speechEndAt: this.wallOf(ev.atMs - silenceMs) });
        }
        return;
      case 'resume':
        this.edgeMs = 0;
        agent.onResume?.({ onsetAt: this.wallOf(ev.atMs) });
        return;
      case 'end_of_turn':
        if (!this.autoRespond) return; // the owner answers it (or not) with answer()
        this.answer(this.turnAudio(ev.speechEndMs), ev.speechEndMs - this.edgeMs);
        this.edgeMs = 0;
        return;
      case 'hold':
        if (this.interrupt) this.sink?.hold(true);
        return;
      case 'release':
        this.sink?.hold(false);
        return;
      case 'backchannel':
        this.streaming = false;
        agent.onTurnDropped?.();
        this.opts.log.debug('backchannel: speech over EVA too short for a barge-in', { ms: Math.round(ev.speechEndMs - ev.speechStartMs) });
        return;
      case 'barge_in': {
        if (!this.interrupt) return;
        const dropped = this.sink?.clear() ?? 0;
        this.opts.log.info('barge-in', { droppedMs: dropped });
        agent.onBargeIn();
        return;
      }
      default: {
        const never: never = ev;
        throw new Error(`unhandled turn event ${JSON.stringify(never)}`);
      }
    }
  }

  /** This turn's audio (from its lead-in to 100 ms past the end of speech), for the owner's own commits too. */
  turnAudio(speechEndMs: number): Int16Array {
    return this.ring.slice(Math.floor(this.turnStartSample), Math.ceil(((speechEndMs + 100) * CORE_RATE) / 1000));
  }

  private info(speechEndMs: number, turn: number): TurnInfo {
    const speechEndAt = this.wallOf(speechEndMs);
    return { turn, speechEndAt, eouMs: this.now() - speechEndAt };
  }

  /** Idempotent. The agent is closed with `reason`; the sink belongs to the owner. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.agent?.close(reason);
    } catch (err) {
      this.opts.log.warn('agent close failed', { err });
    }
    this.agent = null;
    this.vad.close();
  }
}
