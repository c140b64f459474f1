// The WebRTC peer: the only file that imports werift. One audio m-line, Opus/48000/2 as payload type 111 with
// in-band FEC (werift's default is PT 96 without fmtp), IPv4 host candidates plus loopback, and the STUN/TURN
// servers it is given (EVA_ICE_SERVERS; none by default, and never werift's fallback to Google's STUN, which is
// unreachable offline and stalls gathering). Both roles live here: the server answers browsers; the bench and
// the tests offer as a headless client with the same settings.
//
// werift's own failure detection is slow or silent (measured here with werift 0.25 and Chromium): `failed`
// arrives 26–30 s after a peer vanishes, `disconnected` never. A page's pc.close() does close DTLS within
// ~16 ms: that is reported here as `closed`. The silent case (a killed tab) is the call's RTP watchdog's job.
import {
  MediaStream,
  MediaStreamTrack,
  RTCPeerConnection,
  type RTCRtpSender,
  RtpHeader,
  RtpPacket,
  useOPUS,
  useSdesMid,
} from 'werift';
import type { OutgoingHeader } from './rtp.js';
import { checkOfferSdp, SdpError } from './sdp-check.js';

export { checkOfferSdp, SdpError };

export const OPUS_PT = 111;

/** werift logs and swallows a failed UDP send itself; this only keeps a rejection of its own from going unhandled. */
const ignoreSendError = (): void => undefined;

export type PeerCloseReason = 'dtls_closed' | 'failed' | 'closed';

/** A data channel (SCTP over the call's DTLS), text messages only: the Realtime API's `oai-events`. */
export interface DataChannel {
  readonly label: string;
  readonly open: boolean;
  /** Dropped (false) when the channel is not open. */
  send(text: string): boolean;
  onOpen(cb: () => void): void;
  onMessage(cb: (text: string) => void): void;
  onClose(cb: () => void): void;
  close(): void;
}

type WeriftChannel = ReturnType<RTCPeerConnection['createDataChannel']>;

function wrapChannel(ch: WeriftChannel, subs: { unSubscribe(): void }[]): DataChannel {
  return {
    get label() {
      return ch.label;
    },
    get open() {
      return ch.readyState === 'open';
    },
    send(text) {
      if (ch.readyState !== 'open') return false;
      ch.send(text);
      return true;
    },
    onOpen(cb) {
      if (ch.readyState === 'open') queueMicrotask(cb);
      else subs.push(ch.stateChanged.subscribe((st) => st === 'open' && cb()));
    },
    onMessage(cb) {
      subs.push(ch.onMessage.subscribe((data) => cb(typeof data === 'string' ? data : data.toString('utf8'))));
    },
    onClose(cb) {
      subs.push(ch.stateChanged.subscribe((st) => st === 'closed' && cb()));
    },
    close() {
      // werift throws on closing a channel whose SCTP association never started (a call that never connected).
      if (ch.readyState === 'closed') return;
      try {
        ch.close();
      } catch {
        // nothing to close yet; the peer's own close releases the rest
      }
    },
  };
}

export interface PeerHandlers {
  /** One received RTP packet's Opus payload. */
  onAudio(payload: Buffer, sequenceNumber: number, timestamp: number): void;
  onConnected?(): void;
  /** The transport ended by itself (not through close()). Fires at most once. */
  onClosed?(reason: PeerCloseReason): void;
}

export interface PeerOptions {
  /** Extra host addresses to offer as candidates (loopback by default, so same-host clients connect). */
  additionalHosts?: string[];
  /** Only offer these addresses' candidates (tests on loopback). */
  onlyHosts?: string[];
  /** How long to wait for ICE gathering before sending what we have (ms). */
  gatherTimeoutMs?: number;
  /** STUN/TURN servers (EVA_ICE_SERVERS); none by default. werift uses the first STUN and the first TURN URL. */
  iceServers?: { urls: string[]; username?: string; credential?: string }[];
  /** 'relay': TURN-relayed candidates only (a caller that must go through TURN). */
  iceTransportPolicy?: 'all' | 'relay';
  /** The UDP ports to bind, inclusive (EVA_RTP_PORTS); any ephemeral port when unset. */
  portRange?: [number, number];
  /** Ask the other side for Opus DTX (`usedtx=1` in the Opus fmtp, RFC 7587): it may stop sending while quiet. */
  askDtx?: boolean;
}

function keepCandidates(sdp: string, hosts: string[] | undefined): string {
  if (!hosts) return sdp;
  return sdp
    .split('\r\n')
    .filter((l) => !l.startsWith('a=candidate:') || hosts.some((h) => l.includes(` ${h} `)))
    .join('\r\n');
}

/**
 * `usedtx=1` on every Opus payload type of a description (RFC 7587 §7: the receiver prefers that the sender use
 * DTX). werift answers with the offer's Opus parameters, so it is added to the text of the description it made.
 */
export function withUsedtx(sdp: string): string {
  const lines = sdp.split('\r\n');
  const opus = new Set(lines.map((l) => /^a=rtpmap:(\d+) opus\/48000/i.exec(l)?.[1]).filter((pt): pt is string => !!pt));
  const out: string[] = [];
  const hasFmtp = new Set(lines.map((l) => /^a=fmtp:(\d+) /.exec(l)?.[1]).filter((pt): pt is string => !!pt && opus.has(pt)));
  for (const l of lines) {
    const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(l);
    if (fmtp && opus.has(fmtp[1]!)) {
      out.push(/(^|;)\s*usedtx=/.test(fmtp[2]!) ? l.replace(/usedtx=\d/, 'usedtx=1') : `${l};usedtx=1`);
      continue;
    }
    out.push(l);
    const map = /^a=rtpmap:(\d+) /.exec(l);
    if (map && opus.has(map[1]!) && !hasFmtp.has(map[1]!)) out.push(`a=fmtp:${map[1]} usedtx=1`);
  }
  return out.join('\r\n');
}

/** Whether a description asks its peer for Opus DTX (`usedtx=1` in an Opus fmtp). */
export function answerAsksDtx(sdp: string): boolean {
  return /^a=fmtp:\d+ .*\busedtx=1/m.test(sdp);
}

export class Peer {
  private readonly pc: RTCPeerConnection;
  private readonly track = new MediaStreamTrack({ kind: 'audio' });
  /** The audio transceiver's sender: EVA's frames go to it directly (sendAudio). */
  private sender: RTCRtpSender | null = null;
  private readonly handlers: PeerHandlers;
  private readonly opts: PeerOptions;
  private closed = false;
  private connected = false;
  private receiving = false;
  private readonly subs: { unSubscribe(): void }[] = [];
  private resolveConnected!: () => void;
  /** Resolves when the transport is connected (never rejects; pair it with a timeout). */
  readonly whenConnected = new Promise<void>((resolve) => (this.resolveConnected = resolve));

  constructor(handlers: PeerHandlers, opts: PeerOptions = {}) {
    this.handlers = handlers;
    this.opts = opts;
    this.pc = new RTCPeerConnection({
      iceServers: opts.iceServers ?? [],
      iceTransportPolicy: opts.iceTransportPolicy ?? 'all',
      // One ICE transport from the start: with 'balanced' (werift's default) an offer with a data channel gathers a
      // second transport for it, and werift never closes that one once BUNDLE drops it (2 UDP sockets per call).
      bundlePolicy: 'max-bundle',
      ...(opts.portRange ? { icePortRange: opts.portRange } : {}),
      iceUseIpv6: false,
      iceAdditionalHostAddresses: opts.additionalHosts ?? ['127.0.0.1'],
      codecs: { audio: [useOPUS({ payloadType: OPUS_PT, parameters: 'minptime=10;useinbandfec=1' })] },
      // mid only: EVA reads neither abs-send-time nor the audio level, and each costs werift work on every packet
      // sent and received (~12 µs a packet together, bench/stages.ts).
      headerExtensions: { audio: [useSdesMid()] },
    });
    this.subs.push(
      this.pc.onTrack.subscribe((track) => {
        // onTrack fired again for the same track on renegotiation in werift 0.24.4: subscribe once.
        if (this.receiving || track.kind !== 'audio') return;
        this.receiving = true;
        this.subs.push(
          track.onReceiveRtp.subscribe((rtp) => {
            if (this.closed) return;
            this.handlers.onAudio(rtp.payload, rtp.header.sequenceNumber, rtp.header.timestamp);
          }),
        );
      }),
      this.pc.connectionStateChange.subscribe((state) => {
        if (state === 'connected' && !this.connected) {
          this.connected = true;
          this.watchDtls();
          this.resolveConnected();
          this.handlers.onConnected?.();
        } else if (state === 'failed' || state === 'closed') {
          this.ended(state === 'failed' ? 'failed' : 'closed');
        }
      }),
    );
  }

  /** Server role: a data channel the remote side opens (call before answer()). */
  onDataChannel(cb: (ch: DataChannel) => void): void {
    this.subs.push(this.pc.onDataChannel.subscribe((ch) => cb(wrapChannel(ch, this.subs))));
  }

  /** Client role: a data channel, created before offer() so the offer carries it. */
  createDataChannel(label: string): DataChannel {
    return wrapChannel(this.pc.createDataChannel(label), this.subs);
  }

  get connectionState(): string {
    return this.pc.connectionState;
  }

  /**
   * werift 0.25 falls back to stun.l.google.com:19302 when no STUN server is configured (ice.ts
   * DEFAULT_STUN_SERVER): every call would look up and message Google, and stall ~5 s where DNS does not answer.
   * EVA offers host candidates (and TURN, when configured) only, so the fallback is removed before gathering.
   */
  private noDefaultStun(): void {
    for (const t of this.pc.iceTransports) {
      const conn = (t as unknown as { iceGather?: { connection?: { stunServer?: unknown; options?: { stunServer?: unknown } } } }).iceGather?.connection;
      if (conn && !conn.options?.stunServer) conn.stunServer = undefined;
    }
  }

  private watchDtls(): void {
    for (const t of this.pc.dtlsTransports) {
      this.subs.push(t.onStateChange.subscribe((s) => s === 'closed' && this.ended('dtls_closed')));
    }
  }

  private ended(reason: PeerCloseReason): void {
    if (this.closed) return;
    this.handlers.onClosed?.(reason);
  }

  /** Server role: apply the browser's offer and return the complete answer (candidates included). */
  async answer(offerSdp: string): Promise<string> {
    checkOfferSdp(offerSdp);
    this.sender = this.pc.addTransceiver(this.track, { direction: 'sendrecv', streams: [new MediaStream()] } as never).sender;
    try {
      await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    } catch (err) {
      throw new SdpError('bad_sdp', `the offer was refused: ${(err as Error).message}`);
    }
    this.noDefaultStun();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    return this.localSdp();
  }

  /** Client role: make an offer with a sendrecv audio transceiver. */
  async offer(): Promise<string> {
    this.sender = this.pc.addTransceiver(this.track, { direction: 'sendrecv', streams: [new MediaStream()] } as never).sender;
    const offer = await this.pc.createOffer();
    this.noDefaultStun();
    await this.pc.setLocalDescription(offer);
    return this.localSdp();
  }

  /** Client role: apply the server's answer. */
  async accept(answerSdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
  }

  private async localSdp(): Promise<string> {
    if (this.pc.iceGatheringState !== 'complete') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.opts.gatherTimeoutMs ?? 3000);
        const sub = this.pc.iceGatheringStateChange.subscribe((s) => {
          if (s === 'complete') {
            clearTimeout(timer);
            sub.unSubscribe();
            resolve();
          }
        });
      });
    }
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new SdpError('bad_sdp', 'no local description');
    const kept = keepCandidates(sdp, this.opts.onlyHosts);
    const out = this.opts.askDtx ? withUsedtx(kept) : kept;
    if (!out.includes('a=candidate:')) throw new SdpError('bad_sdp', 'ICE gathering produced no candidates');
    return out;
  }

  /** Trickle ICE from the remote side. Bad candidates are ignored by werift; errors are surfaced. */
  async addCandidate(candidate: { candidate?: string; sdpMid?: string | null; sdpMLineIndex?: number | null }): Promise<void> {
    if (!candidate || typeof candidate.candidate !== 'string') throw new SdpError('bad_sdp', 'candidate.candidate must be a string');
    if (candidate.candidate === '') return; // end-of-candidates
    await this.pc.addIceCandidate(candidate as never);
  }

  /** Send one Opus packet. werift fills the SSRC and header extensions; sequence and timestamp are ours. */
  sendAudio(payload: Buffer, h: OutgoingHeader): void {
    if (this.closed || !this.connected || !this.sender) return;
    // To the sender, not through track.writeRtp: the track clones the packet, fans it out to its subscribers
    // (a copy of its set, a second clone, an async listener) and the sender clones it once more; the sender's
    // own clone is the one that matters (it rewrites SSRC, payload type and extensions). The packet is fresh.
    const header = new RtpHeader();
    header.payloadType = OPUS_PT;
    header.sequenceNumber = h.sequenceNumber;
    header.timestamp = h.timestamp;
    header.marker = h.marker;
    this.sender.sendRtp(new RtpPacket(header, payload)).catch(ignoreSendError);
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.subs) s.unSubscribe();
    this.subs.length = 0;
    this.track.stop();
    await this.pc.close().catch(() => undefined);
  }
}
