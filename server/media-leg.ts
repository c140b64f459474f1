// The WebRTC half of a call, whichever protocol drives it: the werift peer, the Opus decoder and encoder, the
// real-time pacer, and the receive-side guards (late/duplicate packets, the per-call packet-rate cap). EVA's own
// `/ws` call (call.ts) and the OpenAI Realtime WebRTC call (realtime/webrtc-call.ts) each own one and put their
// session on top: decoded 16 kHz audio goes up through `onAudio`, the session's voice comes down through `sink`,
// and the pacer's events (talk start/end, played positions, output level) go up through `events`.
//
// `CallMedia` is the seam for another media plane: the calls use only what it declares, so a mediasoup worker
// (a PlainTransport or DirectTransport carrying the Opus track to and from this process) can stand beside werift
// by implementing it, with the same `MediaLegDeps` callbacks. mediasoup is not added: its worker cannot be built
// or downloaded on the machines EVA is developed on (its build fetches meson subprojects and a libsrtp fork).
import type { CallEndReason } from './call.js';
import type { Logger } from './log.js';
import type { AudioSink } from './session-core.js';
import { EvaError } from './errors.js';
import { OpusDecoder, OpusEncoder, REPLY_ENCODER } from '../media/opus.js';
import { Pacer, type PacerEvents } from '../media/pacer.js';
import { Peer, SdpError, type DataChannel, type PeerOptions } from '../media/peer.js';
import { DEFAULT_RTP_MAX_PPS, PacketRateCap, RtpReceiveTracker, rtpTotals, type OutgoingHeader } from '../media/rtp.js';
import { rmsOf } from '../media/level.js';
import { QUIET_RMS } from '../media/vad.js';
import { FILL_FRAME, RX_RATE, RxClock, RxFillScheduler, type RxFillTarget } from '../media/rx-clock.js';

/** Decoded 16-bit audio this quiet holds no speech (the VAD's near-silence, QUIET_RMS of full scale). */
const QUIET_PCM_RMS = QUIET_RMS * 32768;

/** The rate of the caller's decoded audio (the VAD's and STT's), which the DTX fill counts in. */
export const LEG_RATE = RX_RATE;

export interface MediaLegDeps {
  log: Logger;
  now: () => number;
  peer?: PeerOptions;
  /** Inbound packets per second decoded (EVA_RTP_MAX_PPS); more are dropped before decode. */
  rtpMaxPps?: number;
  /**
   * Opus DTX both ways (EVA_OPUS_DTX): EVA's own silence goes out as DTX (media/pacer.ts), the answer asks the
   * caller for it (`usedtx=1`), and the silence the caller does not send is handed on as zeros on time
   * (media/rx-clock.ts). Default false.
   */
  dtx?: boolean;
  /** One decoded 20 ms frame, 16 kHz mono. Read-only: the caller's unsent silence is one shared frame of zeros. */
  onAudio(pcm: Int16Array): void;
  /** The pacer's playout events, for the session core. */
  events: PacerEvents;
  onConnected(): void;
  /** The transport ended by itself: DTLS closed, ICE failed, or the peer connection closed (a hangup). */
  onClosed(reason: CallEndReason): void;
  /** A data channel the remote side opened (the Realtime API's `oai-events`). */
  onDataChannel?(ch: DataChannel): void;
  /** A limit was hit: at most once per second per call for `rtp_pps`. */
  onLimit?(limit: 'rtp_pps'): void;
  /** Runs a callback so that a throw ends this call only (the session core's guard). */
  guard(what: string, fn: () => void): void;
}

/** What a call needs of its media plane (werift's MediaLeg today). */
export interface CallMedia {
  /** performance.now() of the last RTP packet (or of the offer): the call's watchdog reads it. */
  lastRtpAt: number;
  /** Opus DTX is asked of the caller (the watchdog then allows the gaps of its keep-alives). */
  readonly dtx: boolean;
  readonly rx: RtpReceiveTracker;
  readonly rxCap: PacketRateCap;
  /** Samples of the caller's silence handed on as zeros because it was not sent (Opus DTX; media/rx-clock.ts). */
  readonly filledSamples: number;
  /** The call's outgoing voice: 24 kHz PCM in, paced 20 ms Opus frames out. */
  readonly sink: AudioSink;
  /** Applies the remote offer; resolves with the complete answer (candidates included). */
  answer(offerSdp: string): Promise<string>;
  addCandidate(c: { candidate?: string; sdpMid?: string | null; sdpMLineIndex?: number | null }): Promise<void>;
  /** The transport is up: audio flows both ways from now on. */
  start(): void;
  close(): void;
}

/**
 * The caller's unsent silence, one 20 ms frame, shared by every call and never written: onAudio's consumers copy
 * what they keep (the ring, the VAD, a streaming STT). A new Int16Array per frame was ~30 ArrayBuffers a second
 * per listening call for the GC.
 */
const ZERO_FRAME = new Int16Array(FILL_FRAME);

export class MediaLeg implements CallMedia {
  /** For the watchdog: the time of the last RTP packet, or of the offer. */
  lastRtpAt: number;
  readonly rx = new RtpReceiveTracker();
  readonly rxCap: PacketRateCap;
  private readonly peer: Peer;
  readonly sink: AudioSink;
  private readonly deps: MediaLegDeps;
  private readonly decoder = new OpusDecoder(LEG_RATE);
  private readonly encoder = new OpusEncoder(REPLY_ENCODER);
  private readonly pacer: Pacer;
  /** With DTX: the caller's silence, handed on as zeros on time (media/rx-clock.ts). */
  private readonly rxClock: RxClock | null;
  private readonly filler: RxFillTarget = { fillIdle: (now) => this.fillIdle(now) };
  private live = false;
  private decodeErrors = 0;
  private closed = false;

  constructor(deps: MediaLegDeps) {
    this.deps = deps;
    this.lastRtpAt = deps.now();
    this.rxCap = new PacketRateCap(deps.rtpMaxPps ?? DEFAULT_RTP_MAX_PPS);
    this.peer = new Peer(
      {
        onAudio: (payload, seq, ts) => deps.guard('RTP packet', () => this.onRtp(payload, seq, ts)),
        onConnected: () => deps.guard('connect', () => deps.onConnected()),
        onClosed: (reason) => deps.onClosed(reason === 'dtls_closed' ? 'dtls_closed' : reason === 'failed' ? 'ice_failed' : 'hangup'),
      },
      { ...deps.peer, askDtx: deps.dtx },
    );
    this.rxClock = deps.dtx ? new RxClock() : null;
    if (deps.onDataChannel) this.peer.onDataChannel((ch) => deps.onDataChannel!(ch));
    const send = (payload: Buffer, header: OutgoingHeader): void => {
      rtpTotals.sent++;
      this.peer.sendAudio(payload, header);
    };
    const pacer = (this.pacer = new Pacer({ encoder: this.encoder, send, events: deps.events, dtx: deps.dtx }));
    this.sink = {
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
  }

  /** Apply the remote offer; returns the complete answer. Throws EvaError (bad_sdp / no_audio / call_failed). */
  async answer(offerSdp: string): Promise<string> {
    this.lastRtpAt = this.deps.now();
    try {
      return await this.peer.answer(offerSdp);
    } catch (err) {
      if (err instanceof SdpError) throw new EvaError(err.code, err.message, { cause: err });
      throw new EvaError('call_failed', `could not answer the offer: ${(err as Error).message}`, { cause: err });
    }
  }

  addCandidate(c: { candidate?: string; sdpMid?: string | null; sdpMLineIndex?: number | null }): Promise<void> {
    return this.peer.addCandidate(c);
  }

  /** The transport is up: audio flows both ways from now on. */
  start(): void {
    this.live = true;
    this.lastRtpAt = this.deps.now();
    this.pacer.start();
    if (this.rxClock) RxFillScheduler.shared.add(this.filler);
  }

  /** Zeros for the stretch of silence a caller in DTX did not send, frame by frame as it becomes due. */
  private fillIdle(now: number): void {
    if (!this.live || this.closed || !this.rxClock) return;
    const n = this.rxClock.due(now);
    if (n > 0) this.deps.guard('silence fill', () => this.pushZeros(n));
  }

  private pushZeros(n: number): void {
    rtpTotals.filledSamples += n;
    for (let done = 0; done < n; done += FILL_FRAME) this.deps.onAudio(n - done >= FILL_FRAME ? ZERO_FRAME : ZERO_FRAME.subarray(0, n - done));
  }

  /** Opus DTX is on: the receive clock exists only then. */
  get dtx(): boolean {
    return this.rxClock !== null;
  }

  /** Samples of the caller's silence handed on as zeros (DTX): for tests and the bench. */
  get filledSamples(): number {
    return this.rxClock?.filled ?? 0;
  }

  private onRtp(payload: Buffer, seq: number, ts: number): void {
    this.lastRtpAt = this.deps.now();
    rtpTotals.received++;
    if (!this.live || this.closed) return;
    // Late and duplicate packets, then packets beyond the per-call rate, are dropped before decode.
    const r = this.rx.accept(seq);
    if (!r.decode || payload.length === 0) return;
    const capped = this.rxCap.take(this.lastRtpAt);
    if (capped !== 'pass') {
      if (capped === 'drop_report') {
        this.deps.onLimit?.('rtp_pps');
        this.deps.log.warn('inbound RTP over the packet-rate cap: dropping before decode', { maxPps: this.rxCap.perSecond, dropped: this.rxCap.dropped });
      }
      return;
    }
    let pcm: Int16Array;
    try {
      pcm = this.decoder.decode(payload);
    } catch (err) {
      // A corrupt packet costs 20 ms of audio, not the call.
      if (this.decodeErrors++ % 100 === 0) this.deps.log.warn('opus decode failed', { err, count: this.decodeErrors });
      return;
    }
    if (this.rxClock) {
      // A late packet of silence whose time the filler already handed on as zeros would count that silence twice
      // (a stall inside a pause would lengthen the pause the VAD hears): it is dropped. Speech never is.
      const quiet = rmsOf(pcm) < QUIET_PCM_RMS;
      if (quiet && this.rxClock.covered(ts, pcm.length)) {
        this.rxClock.skipPacket(ts, pcm.length, this.lastRtpAt);
        return;
      }
      const zeros = this.rxClock.beforePacket(ts);
      if (zeros > 0) this.pushZeros(zeros);
      this.rxClock.afterPacket(ts, pcm.length, this.lastRtpAt, quiet);
    }
    this.deps.onAudio(pcm);
  }

  /** Idempotent: the pacer, the codecs and the peer are released. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.live = false;
    RxFillScheduler.shared.remove(this.filler);
    this.pacer.close();
    this.encoder.close();
    this.decoder.close();
    this.peer.close().catch((err: unknown) => this.deps.log.warn('peer close failed', { err }));
  }
}
