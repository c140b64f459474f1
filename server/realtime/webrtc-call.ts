// One OpenAI Realtime call over WebRTC (`POST /v1/realtime/calls`): a media leg (werift, Opus, the pacer — the
// same as EVA's own calls) carrying a Realtime session whose events travel on the `oai-events` data channel the
// client opens. The answer is complete (every candidate in it, no trickle), as the API's clients expect. Events
// the session sends before the channel is open (session.created) wait in a bounded queue. The call ends, once,
// on hangup, the channel or DTLS closing, ICE failure, the RTP watchdog, or a fault in its own handlers.
import type { AgentFactory } from '../agent.js';
import type { CallEndReason } from '../call.js';
import type { RegisteredCall } from '../calls.js';
import type { Logger } from '../log.js';
import { MediaLeg, type CallMedia } from '../media-leg.js';
import type { DataChannel, PeerOptions } from '../../media/peer.js';
import type { TurnConfig } from '../../media/turns.js';
import type { VadEngine } from '../../media/vad.js';
import { RealtimeError, eventIdOf, parseClientEvent } from './protocol.js';
import { newId } from './responses.js';
import { RealtimeSession, type RealtimeEvent } from './session.js';

/** The label OpenAI's clients give the events channel; any other channel is closed. */
export const EVENTS_CHANNEL = 'oai-events';
/** Events held for a channel that is not open yet: a client that never opens one cannot grow this. */
const MAX_QUEUED = 256;

export interface RealtimeCallDeps {
  vad: VadEngine;
  turn: TurnConfig;
  agent: AgentFactory;
  log: Logger;
  instructions: string;
  model: string;
  /** The session's first settings (the client secret's, or the multipart form's `session` part). */
  initial?: Record<string, unknown>;
  peer?: PeerOptions;
  rtpMaxPps?: number;
  /** Opus DTX both ways (EVA_OPUS_DTX; server/media-leg.ts). */
  dtx?: boolean;
  onLimit?(limit: 'rtp_pps'): void;
  onClosed(call: RealtimeCall, reason: CallEndReason): void;
  now?: () => number;
}

export class RealtimeCall implements RegisteredCall {
  /** `rtc_…`, the last segment of the answer's Location (`/v1/realtime/calls/{id}`). */
  readonly id = newId('rtc');
  state: 'connecting' | 'connected' | 'closed' = 'connecting';
  endReason: CallEndReason | undefined;
  private readonly deps: RealtimeCallDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly leg: CallMedia;
  private readonly session: RealtimeSession;
  private channel: DataChannel | null = null;
  private queue: string[] = [];
  private dropped = 0;

  constructor(deps: RealtimeCallDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
    this.log = deps.log.child(this.id.slice(4, 12));
    let session: RealtimeSession | undefined;
    const guard = (what: string, fn: () => void): void => {
      if (session) session.guard(what, fn);
      else fn();
    };
    this.leg = new MediaLeg({
      log: this.log,
      now: this.now,
      peer: deps.peer,
      rtpMaxPps: deps.rtpMaxPps,
      dtx: deps.dtx,
      onLimit: deps.onLimit,
      guard,
      onAudio: (pcm) => this.session.pushAudio(pcm),
      events: {
        talkStart: (at) => this.session.playoutEvents.talkStart(at),
        talkEnd: (at) => this.session.playoutEvents.talkEnd(at),
        played: (tag) => this.session.playoutEvents.played(tag),
        level: (rms, at) => this.session.playoutEvents.level(rms, at),
      },
      onConnected: () => this.onConnected(),
      onClosed: (reason) => this.close(reason),
      onDataChannel: (ch) => guard('data channel', () => this.onChannel(ch)),
    });
    session = this.session = new RealtimeSession({
      vad: deps.vad,
      turn: deps.turn,
      agent: deps.agent,
      log: this.log,
      instructions: deps.instructions,
      model: deps.model,
      initial: deps.initial,
      media: { sink: this.leg.sink },
      now: deps.now,
      send: (ev) => this.send(ev),
      onFault: (err) => {
        this.log.error('realtime session handler threw; ending the call', { err });
        this.close('error');
      },
    });
  }

  get lastRtpAt(): number {
    return this.leg.lastRtpAt;
  }

  get dtx(): boolean {
    return this.leg.dtx;
  }

  /** Applies the client's offer; resolves with the complete answer. Throws EvaError (bad_sdp, no_audio, call_failed). */
  async answer(offerSdp: string): Promise<string> {
    const sdp = await this.leg.answer(offerSdp);
    await this.session.whenReady();
    return sdp;
  }

  private onChannel(ch: DataChannel): void {
    if (ch.label !== EVENTS_CHANNEL || this.channel) {
      this.log.debug('closing an unexpected data channel', { label: ch.label.slice(0, 40) });
      ch.close();
      return;
    }
    this.channel = ch;
    ch.onOpen(() => {
      const queued = this.queue;
      this.queue = [];
      for (const text of queued) ch.send(text);
    });
    ch.onMessage((text) => this.session.guard('data channel message', () => this.onEvent(text)));
    ch.onClose(() => this.close('hangup'));
  }

  private onEvent(text: string): void {
    if (this.state === 'closed') return;
    try {
      this.session.handle(parseClientEvent(text));
    } catch (err) {
      if (!(err instanceof RealtimeError)) throw err;
      this.session.error(err, eventIdOf(text));
    }
  }

  private send(ev: RealtimeEvent): void {
    if (this.state === 'closed') return;
    const text = JSON.stringify(ev);
    if (this.channel?.open) {
      this.channel.send(text);
    } else if (this.queue.length < MAX_QUEUED) {
      this.queue.push(text);
    } else if (this.dropped++ === 0) {
      this.log.warn('the events channel is not open: dropping events', { queued: MAX_QUEUED });
    }
  }

  private onConnected(): void {
    if (this.state !== 'connecting') return;
    this.state = 'connected';
    this.leg.start();
    this.log.info('connected');
  }

  /** Idempotent: the first reason wins. */
  close(reason: CallEndReason): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.endReason = reason;
    this.session.close(reason);
    this.channel?.close();
    this.leg.close();
    this.log.info('closed', { reason, lost: this.leg.rx.lost, received: this.leg.rx.received });
    this.deps.onClosed(this, reason);
  }
}
