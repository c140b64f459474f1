// One WebRTC call, one owner. The Call holds the transport half — werift peer, Opus decoder and encoder, the
// real-time pacer — around the transport-independent SessionCore (session-core.ts: VAD stream, turn detector,
// echo gate, audio ring, agent), and close() releases all of it, once, whatever ended the call: hangup, the
// signaling socket closing, DTLS close, ICE failure, or the RTP watchdog (no packet for 1 s; werift alone would
// notice a vanished peer only after ~30 s).
import { randomUUID } from 'node:crypto';
import type { Agent, AgentFactory } from './agent.js';
import { EvaError } from './errors.js';
import type { Logger } from './log.js';
import { SessionCore, type AudioSink } from './session-core.js';
import type { CallConfig, IceCandidateInit, ServerMessage } from './signaling.js';
import { OpusDecoder, OpusEncoder } from '../media/opus.js';
import { Pacer } from '../media/pacer.js';
import { Peer, SdpError, type PeerOptions } from '../media/peer.js';
import { DEFAULT_RTP_MAX_PPS, PacketRateCap, RtpReceiveTracker } from '../media/rtp.js';
import type { TurnConfig } from '../media/turns.js';
import type { VadEngine } from '../media/vad.js';

/** No RTP for this long ends a connected call (measured to fire at 1.01–1.07 s in the prototype). */
export const RTP_TIMEOUT_MS = 1000;
/** An offer that has not connected by then is abandoned. */
export const CONNECT_TIMEOUT_MS = 15_000;
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
  /** Inbound packets per second decoded (EVA_RTP_MAX_PPS); more are dropped before decode (media/rtp.ts PacketRateCap). */
  rtpMaxPps?: number;
  /** A limit was hit: at most once per second per call for `rtp_pps`. */
  onLimit?(limit: 'rtp_pps'): void;
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
  readonly rxCap: PacketRateCap;
  connectedAt: number | undefined;

  private readonly deps: CallDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  private readonly peer: Peer;
  private readonly decoder = new OpusDecoder(RATE);
  private readonly encoder = new OpusEncoder({ sampleRate: 24000 });
  private readonly pacer: Pacer;
  private readonly core: SessionCore;
  private agent: Agent | null = null;
  private decodeErrors = 0;

  constructor(deps: CallDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
    this.log = deps.log.child(this.id.slice(0, 8));
    this.lastRtpAt = this.now();
    this.rxCap = new PacketRateCap(deps.rtpMaxPps ?? DEFAULT_RTP_MAX_PPS);
    this.core = new SessionCore({
      vad: deps.vad,
      turn: deps.turn,
      log: this.log,
      now: this.now,
      onTurnEvent: (ev) => {
        if (ev.type === 'vad') this.emit({ type: 'vad', speaking: ev.speaking });
      },
      onFault: (what, err) => {
        this.log.error(`${what} handler threw; ending the call`, { err });
        this.close('error');
      },
    });
    this.peer = new Peer(
      {
        onAudio: (payload, seq) => this.guard('RTP packet', () => this.onRtp(payload, seq)),
        onConnected: () => this.guard('connect', () => this.onConnected()),
        onClosed: (reason) => this.close(reason === 'dtls_closed' ? 'dtls_closed' : reason === 'failed' ? 'ice_failed' : 'hangup'),
      },
      deps.peer,
    );
    this.pacer = new Pacer({
      encoder: this.encoder,
      send: (payload, header) => this.peer.sendAudio(payload, header),
      events: {
        talkStart: (at) => this.core.talkStart(at),
        talkEnd: (at) => this.core.talkEnd(at),
        played: (tag) => this.core.played(tag),
        level: (rms, at) => this.core.level(rms, at),
      },
    });
  }

  /** VAD windows taken for EVA's own echo while she spoke (not counted towards a barge-in). */
  get echoWindows(): number {
    return this.core.echoWindows;
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
    const pacer = this.pacer;
    const sink: AudioSink = {
      sampleRate: this.encoder.sampleRate,
      enqueue: (pcm, segment) => pacer.enqueue(pcm, segment),
      flush: () => pacer.flush(),
      waitForRoom: () => pacer.waitForRoom(),
      clear: () => pacer.clear(),
      hold: (on) => pacer.hold(on),
      get speaking() {
        return pacer.speaking;
      },
      get queuedMs() {
        return pacer.queuedMs;
      },
    };
    this.agent = this.core.start(
      sink,
      { callId: this.id, sessionId: this.sessionId, config, emit: (m) => this.emit(m), log: this.log, signal: this.abort.signal },
      this.deps.agent,
    );
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

  /** An exception in one call's callbacks ends that call, never the process or another call. */
  private guard(what: string, fn: () => void): void {
    this.core.guard(what, fn);
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
    // Late and duplicate packets, then packets beyond the per-call rate, are dropped before decode.
    const r = this.rx.accept(seq);
    if (!r.decode || payload.length === 0) return;
    const capped = this.rxCap.take(this.lastRtpAt);
    if (capped !== 'pass') {
      if (capped === 'drop_report') {
        this.deps.onLimit?.('rtp_pps');
        this.log.warn('inbound RTP over the packet-rate cap: dropping before decode', { maxPps: this.rxCap.perSecond, dropped: this.rxCap.dropped });
      }
      return;
    }
    let pcm: Int16Array;
    try {
      pcm = this.decoder.decode(payload);
    } catch (err) {
      // A corrupt packet costs 20 ms of audio, not the call.
      if (this.decodeErrors++ % 100 === 0) this.log.warn('opus decode failed', { err, count: this.decodeErrors });
      return;
    }
    this.core.pushAudio(pcm);
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
    this.core.close(reason);
    this.agent = null;
    this.pacer.close();
    this.encoder.close();
    this.decoder.close();
    this.peer.close().catch((err: unknown) => this.log.warn('peer close failed', { err }));
    this.log.info('closed', { reason, lost: this.rx.lost, received: this.rx.received, rtpCapped: this.rxCap.dropped, echoWindows: this.echoWindows });
    this.deps.onClosed(this, reason);
  }
}
