// One call, one owner. The Call holds everything the call uses — werift peer, Opus decoder and encoder, VAD
// stream, turn detector, audio ring, pacer, agent — and close() releases all of it, once, whatever ended the
// call: hangup, the signaling socket closing, DTLS close, ICE failure, or the RTP watchdog (no packet for 1 s;
// werift alone would notice a vanished peer only after ~30 s).
import { randomUUID } from 'node:crypto';
import type { Agent, AgentFactory, AudioOut, TurnInfo } from './agent.js';
import { EvaError } from './errors.js';
import type { Logger } from './log.js';
import type { CallConfig, IceCandidateInit, ServerMessage } from './signaling.js';
import { OpusDecoder, OpusEncoder } from '../media/opus.js';
import { Pacer } from '../media/pacer.js';
import { Peer, SdpError, type PeerOptions } from '../media/peer.js';
import { PcmRing } from '../media/pcm-ring.js';
import { RtpReceiveTracker } from '../media/rtp.js';
import { TurnDetector, type TurnConfig, type TurnEvent } from '../media/turns.js';
import { VAD_WINDOW, VAD_WINDOW_MS, type VadEngine, type VadStream } from '../media/vad.js';
import { EchoGate } from '../media/echo-gate.js';
import { rmsOf } from '../media/level.js';

/** No RTP for this long ends a connected call (measured to fire at 1.01–1.07 s in the prototype). */
export const RTP_TIMEOUT_MS = 1000;
/** An offer that has not connected by then is abandoned. */
export const CONNECT_TIMEOUT_MS = 15_000;
/** Audio kept before a turn's first voiced window: Silero confirms speech ~1–2 windows late. */
const LEAD_IN_MS = 200;
const RATE = 16000;

export type CallEndReason = 'hangup' | 'socket_closed' | 'dtls_closed' | 'ice_failed' | 'rtp_timeout' | 'connect_timeout' | 'error' | 'shutdown';

export interface CallDeps {
  vad: VadEngine;
  turn: TurnConfig;
  agent: AgentFactory;
  emit(msg: ServerMessage): void;
  log: Logger;
  onClosed(call: Call, reason: CallEndReason): void;
  peer?: PeerOptions;
  now?: () => number;
}

export class Call {
  readonly id = randomUUID();
  readonly startedAt = Date.now();
  state: 'new' | 'connecting' | 'connected' | 'closed' = 'new';
  endReason: CallEndReason | undefined;
  config: CallConfig = {};
  /** For the watchdog: performance.now() of the last RTP packet or of the offer. */
  lastRtpAt: number;
  readonly rx = new RtpReceiveTracker();
  connectedAt: number | undefined;

  private readonly deps: CallDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  private readonly peer: Peer;
  private readonly decoder = new OpusDecoder(RATE);
  private readonly encoder = new OpusEncoder({ sampleRate: 24000 });
  private readonly pacer: Pacer;
  private readonly vad: VadStream;
  private readonly turns: TurnDetector;
  private readonly ring = new PcmRing(RATE * 20);
  private readonly echoGate = new EchoGate();
  /** VAD windows taken for EVA's own echo while she spoke (not counted towards a barge-in). */
  echoWindows = 0;
  private agent: Agent | null = null;
  private turnNo = 0;
  private turnStartSample = 0;
  private decodeErrors = 0;

  constructor(deps: CallDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
    this.log = deps.log.child(this.id.slice(0, 8));
    this.lastRtpAt = this.now();
    this.turns = new TurnDetector(deps.turn);
    this.peer = new Peer(
      {
        onAudio: (payload, seq) => this.onRtp(payload, seq),
        onConnected: () => this.onConnected(),
        onClosed: (reason) => this.close(reason === 'dtls_closed' ? 'dtls_closed' : reason === 'failed' ? 'ice_failed' : 'hangup'),
      },
      deps.peer,
    );
    this.pacer = new Pacer({
      encoder: this.encoder,
      send: (payload, header) => this.peer.sendAudio(payload, header),
      events: {
        talkStart: (at) => this.agent?.onTalkStart?.(at),
        talkEnd: (at) => this.agent?.onTalkEnd?.(at),
        played: (tag) => this.agent?.onPlayed?.(tag),
        level: (rms, at) => this.echoGate.output(rms, at),
      },
    });
    this.vad = deps.vad.createStream((prob, endSample) => this.onVad(prob, endSample));
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** The session this call's history belongs to. */
  get sessionId(): string {
    return this.config.session ?? this.id;
  }

  get providers(): Agent['providers'] | undefined {
    return this.agent?.providers;
  }

  /** Apply the browser's offer; returns the answer SDP. Throws EvaError (bad_sdp / no_audio / call_failed). */
  async start(offerSdp: string, config: CallConfig): Promise<string> {
    if (this.state !== 'new') throw new EvaError('already_in_call', 'this socket already has a call; hang up first');
    this.state = 'connecting';
    this.config = config;
    this.lastRtpAt = this.now();
    let answer: string;
    try {
      answer = await this.peer.answer(offerSdp);
    } catch (err) {
      if (err instanceof SdpError) throw new EvaError(err.code, err.message, { cause: err });
      throw new EvaError('call_failed', `could not answer the offer: ${(err as Error).message}`, { cause: err });
    }
    if ((this.state as Call['state']) === 'closed') throw new EvaError('call_failed', 'the call ended while answering');
    const out: AudioOut = {
      sampleRate: this.encoder.sampleRate,
      enqueue: (pcm, segment) => this.pacer.enqueue(pcm, segment),
      flush: () => this.pacer.flush(),
      waitForRoom: () => this.pacer.waitForRoom(),
      clear: () => this.pacer.clear(),
      get speaking() {
        return pacer.speaking;
      },
      get queuedMs() {
        return pacer.queuedMs;
      },
    };
    const pacer = this.pacer;
    this.agent = this.deps.agent({ callId: this.id, sessionId: this.sessionId, config, out, emit: (m) => this.emit(m), log: this.log, signal: this.abort.signal });
    return answer;
  }

  async addCandidate(c: IceCandidateInit): Promise<void> {
    if (this.state === 'new') throw new EvaError('no_call', 'send an offer before candidates');
    if (this.state === 'closed') return;
    try {
      await this.peer.addCandidate(c);
    } catch (err) {
      throw new EvaError('bad_message', `candidate refused: ${(err as Error).message}`, { cause: err });
    }
  }

  text(text: string): void {
    if (!this.agent || this.state === 'closed') throw new EvaError('no_call', 'no call in progress; send an offer first');
    this.agent.onText(text);
  }

  private emit(msg: ServerMessage): void {
    if (this.state !== 'closed') this.deps.emit(msg);
  }

  private onConnected(): void {
    if (this.state !== 'connecting') return;
    this.state = 'connected';
    this.connectedAt = this.now();
    this.lastRtpAt = this.now();
    this.pacer.start();
    this.log.info('connected');
    this.emit({ type: 'state', state: 'listening' });
  }

  private onRtp(payload: Buffer, seq: number): void {
    this.lastRtpAt = this.now();
    if (this.state !== 'connected') return;
    const r = this.rx.accept(seq);
    if (!r.decode || payload.length === 0) return;
    let pcm: Int16Array;
    try {
      pcm = this.decoder.decode(payload);
    } catch (err) {
      // A corrupt packet costs 20 ms of audio, not the call.
      if (this.decodeErrors++ % 100 === 0) this.log.warn('opus decode failed', { err, count: this.decodeErrors });
      return;
    }
    this.ring.write(pcm);
    this.vad.push(pcm);
  }

  private onVad(prob: number, endSample: number): void {
    if (this.state !== 'connected') return;
    const atMs = (endSample * 1000) / RATE;
    const evaSpeaking = this.pacer.speaking;
    if (evaSpeaking && prob >= this.deps.turn.offThreshold && this.echoGate.isEcho(rmsOf(this.ring.slice(endSample - VAD_WINDOW, endSample)), this.now())) {
      // Voice while EVA talks, but far quieter than her: her own voice leaking back, not the person.
      prob = 0;
      this.echoWindows++;
    }
    for (const ev of this.turns.step({ prob, atMs, windowMs: VAD_WINDOW_MS, evaSpeaking })) this.onTurnEvent(ev);
  }

  /** performance.now() at which the audio sample at `audioMs` arrived (the ring is written as packets arrive). */
  private wallOf(audioMs: number): number {
    const nowAudioMs = (this.ring.written * 1000) / RATE;
    return this.now() - Math.max(0, nowAudioMs - audioMs);
  }

  private onTurnEvent(ev: TurnEvent): void {
    const agent = this.agent;
    if (!agent) return;
    switch (ev.type) {
      case 'vad':
        this.emit({ type: 'vad', speaking: ev.speaking });
        return;
      case 'speech_start':
        this.turnStartSample = Math.max(0, ((ev.atMs - LEAD_IN_MS) * RATE) / 1000);
        return;
      case 'pause':
        agent.onPause?.(this.turnAudio(ev.speechEndMs), this.info(ev.speechEndMs, this.turnNo + 1));
        return;
      case 'resume':
        agent.onResume?.();
        return;
      case 'end_of_turn': {
        this.turnNo++;
        agent.onEndOfTurn(this.turnAudio(ev.speechEndMs), this.info(ev.speechEndMs, this.turnNo));
        return;
      }
      case 'hold':
        this.pacer.hold(true);
        return;
      case 'release':
        this.pacer.hold(false);
        return;
      case 'backchannel':
        this.log.debug('backchannel: speech over EVA too short for a barge-in', { ms: Math.round(ev.speechEndMs - ev.speechStartMs) });
        return;
      case 'barge_in': {
        const dropped = this.pacer.clear();
        this.log.info('barge-in', { droppedMs: dropped });
        agent.onBargeIn();
        return;
      }
      default: {
        const never: never = ev;
        throw new Error(`unhandled turn event ${JSON.stringify(never)}`);
      }
    }
  }

  private turnAudio(speechEndMs: number): Int16Array {
    return this.ring.slice(Math.floor(this.turnStartSample), Math.ceil(((speechEndMs + 100) * RATE) / 1000));
  }

  private info(speechEndMs: number, turn: number): TurnInfo {
    const speechEndAt = this.wallOf(speechEndMs);
    return { turn, speechEndAt, eouMs: this.now() - speechEndAt };
  }

  /** Called by the registry's sweep. */
  checkTimeouts(now: number): void {
    if (this.state === 'connected' && now - this.lastRtpAt > RTP_TIMEOUT_MS) this.close('rtp_timeout');
    else if (this.state === 'connecting' && now - this.lastRtpAt > CONNECT_TIMEOUT_MS) this.close('connect_timeout');
  }

  /** Idempotent: the first reason wins. */
  close(reason: CallEndReason): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.endReason = reason;
    this.abort.abort();
    try {
      this.agent?.close(reason);
    } catch (err) {
      this.log.warn('agent close failed', { err });
    }
    this.agent = null;
    this.pacer.close();
    this.vad.close();
    this.encoder.close();
    this.decoder.close();
    this.peer.close().catch((err: unknown) => this.log.warn('peer close failed', { err }));
    this.log.info('closed', { reason, lost: this.rx.lost, received: this.rx.received, echoWindows: this.echoWindows });
    this.deps.onClosed(this, reason);
  }
}
