// One WebRTC call on EVA's own `/ws` signaling, one owner. The Call holds the media leg (media-leg.ts: werift
// peer, Opus decoder and encoder, the real-time pacer) around the transport-independent SessionCore
// (session-core.ts: VAD stream, turn detector, echo gate, audio ring, agent), and close() releases all of it,
// once, whatever ended the call: hangup, the signaling socket closing, DTLS close, ICE failure, or the RTP
// watchdog (no packet for 1 s, 2 s with DTX; werift alone would notice a vanished peer only after ~30 s).
import { randomUUID } from 'node:crypto';
import type { Agent, AgentFactory } from './agent.js';
import { EvaError } from './errors.js';
import type { Logger } from './log.js';
import type { RegisteredCall } from './calls.js';
import { MediaLeg, type CallMedia } from './media-leg.js';
import { SessionCore } from './session-core.js';
import type { CallConfig, IceCandidateInit, ServerMessage } from './signaling.js';
import type { PeerOptions } from '../media/peer.js';
import type { PacketRateCap, RtpReceiveTracker } from '../media/rtp.js';
import type { TurnConfig } from '../media/turns.js';
import type { VadEngine } from '../media/vad.js';

/** No RTP for this long ends a connected call (measured to fire at 1.01–1.07 s in the prototype). */
export const RTP_TIMEOUT_MS = 1000;
/**
 * The same with Opus DTX: a quiet caller sends one packet per 400 ms (Chrome, and EVA's own keep-alive), so 1 s
 * is only 600 ms of slack for jitter or a stalled sender; 2 s allows five missed keep-alives.
 */
export const RTP_TIMEOUT_DTX_MS = 2000;
/** An offer that has not connected by then is abandoned. */
export const CONNECT_TIMEOUT_MS = 15_000;

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
  /** Opus DTX both ways (EVA_OPUS_DTX; server/media-leg.ts). */
  dtx?: boolean;
  /** A limit was hit: at most once per second per call for `rtp_pps`. */
  onLimit?(limit: 'rtp_pps'): void;
}

export class Call implements RegisteredCall {
  readonly id = randomUUID();
  readonly startedAt = Date.now();
  state: 'new' | 'connecting' | 'connected' | 'closed' = 'new';
  endReason: CallEndReason | undefined;
  config: CallConfig = {};
  connectedAt: number | undefined;

  private readonly deps: CallDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  private readonly leg: CallMedia;
  private readonly core: SessionCore;
  private agent: Agent | null = null;

  constructor(deps: CallDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
    this.log = deps.log.child(this.id.slice(0, 8));
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
    this.leg = new MediaLeg({
      log: this.log,
      now: this.now,
      peer: deps.peer,
      rtpMaxPps: deps.rtpMaxPps,
      dtx: deps.dtx,
      onLimit: deps.onLimit,
      guard: (what, fn) => this.core.guard(what, fn),
      onAudio: (pcm) => this.core.pushAudio(pcm),
      events: this.core.sinkEvents,
      onConnected: () => this.onConnected(),
      onClosed: (reason) => this.close(reason),
    });
  }

  /** For the watchdog: performance.now() of the last RTP packet or of the offer. */
  get lastRtpAt(): number {
    return this.leg.lastRtpAt;
  }

  get dtx(): boolean {
    return this.leg.dtx;
  }

  set lastRtpAt(at: number) {
    this.leg.lastRtpAt = at;
  }

  get rx(): RtpReceiveTracker {
    return this.leg.rx;
  }

  get rxCap(): PacketRateCap {
    return this.leg.rxCap;
  }

  /** 16 kHz samples of the caller's silence that never arrived (DTX) and went to the VAD as zeros. */
  get rxFilledSamples(): number {
    return this.leg.filledSamples;
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
    const answer = await this.leg.answer(offerSdp);
    if ((this.state as Call['state']) === 'closed') throw new EvaError('call_failed', 'the call ended while answering');
    this.agent = this.core.start(
      this.leg.sink,
      { callId: this.id, sessionId: this.sessionId, config, emit: (m) => this.emit(m), log: this.log, signal: this.abort.signal },
      this.deps.agent,
    );
    return answer;
  }

  async addCandidate(c: IceCandidateInit): Promise<void> {
    if (this.state === 'new') throw new EvaError('no_call', 'send an offer before candidates');
    if (this.state === 'closed') return;
    try {
      await this.leg.addCandidate(c);
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
    this.leg.start();
    this.log.info('connected');
    this.emit({ type: 'state', state: 'listening' });
  }

  /** Idempotent: the first reason wins. */
  close(reason: CallEndReason): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.endReason = reason;
    this.abort.abort();
    this.core.close(reason);
    this.agent = null;
    this.leg.close();
    this.log.info('closed', { reason, lost: this.rx.lost, received: this.rx.received, rtpCapped: this.rxCap.dropped, echoWindows: this.echoWindows });
    this.deps.onClosed(this, reason);
  }
}
