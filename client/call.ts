// One voice call: microphone, signaling socket, peer connection, remote playback and level probes. It owns all
// of them and frees them in one idempotent `close()`, whichever way the call ends (hang-up, socket closed, ICE
// failed, an error while connecting).
import { LevelProbe } from './meter.js';
import { AUDIBLE_LEVEL, TalkspurtDetector, pushBounded, type SpurtEvent, type Talkspurt } from './levels.js';
import type { CallConfig, ClientMessage, IceCandidateJson, ServerMessage } from './protocol.js';
import { Signaling } from './signaling.js';

/** Chrome gathers host candidates on loopback in ~125 ms; past this cap the offer goes and the rest trickle. */
const GATHER_CAP_MS = 1000;
/** Microphone granted → `connected`; a fresh server's first call measured 340–890 ms, so this only catches a hang. */
const CONNECT_TIMEOUT_MS = 15000;
/** How long the page waits for the server's `hello` (its ICE servers); an EVA that predates it answers at once. */
const HELLO_TIMEOUT_MS = 2000;
/** Level poll period; matches the analyser window (meter.ts) and one Opus frame. */
const POLL_MS = 20;
const MAX_SPURTS = 200;

export type CallPhase = 'connecting' | 'connected' | 'closed' | 'failed';

export interface CallStats {
  micLevel: number;
  micPeak: number;
  micAudibleMs: number;
  remoteLevel: number;
  remotePeak: number;
  /** Total ms the remote level was at or above AUDIBLE_LEVEL. */
  remoteAudibleMs: number;
  /** performance.now() of the last poll that found remote audio audible. */
  lastRemoteAudibleAt: number | null;
  audibleLevel: number;
  /** performance.now() marks of the call set-up. */
  startedAt: number;
  offerSentAt: number | null;
  answerAt: number | null;
  connectedAt: number | null;
  /** Offer sent → `connectionState` connected. */
  connectMs: number | null;
  /** Local (mic) and remote talkspurts, by start time; the last MAX_SPURTS. */
  talkspurts: Talkspurt[];
}

export type CallEvent =
  | { type: 'phase'; phase: CallPhase; reason?: string }
  | { type: 'received'; msg: ServerMessage | null; raw: string }
  | { type: 'sent'; msg: ClientMessage }
  | { type: 'note'; text: string }
  | { type: 'spurt'; event: SpurtEvent }
  /** The call failed; `code` is the server's error code when the server refused the offer. */
  | { type: 'failure'; message: string; code?: string };

export interface CallOptions {
  wsUrl: string;
  config: CallConfig;
  /** Plays the remote stream; headless Chrome only decodes remote audio attached to a media element. */
  audio: HTMLAudioElement;
  onEvent(e: CallEvent): void;
  /** Called on every level poll (the page's meters). */
  onLevels?(stats: CallStats): void;
}

export class Call {
  readonly stats: CallStats;
  private phaseNow: CallPhase = 'connecting';
  private ws: Signaling | null = null;
  private pc: RTCPeerConnection | null = null;
  private mic: MediaStream | null = null;
  private ctx: AudioContext | null = null;
  private micProbe: LevelProbe | null = null;
  private remoteProbe: LevelProbe | null = null;
  private remoteStream: MediaStream | null = null;
  private readonly micSpurts = new TalkspurtDetector('mic');
  private readonly remoteSpurts = new TalkspurtDetector('remote');
  private poll: ReturnType<typeof setInterval> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private lastPollAt = 0;
  private pendingCandidates: IceCandidateJson[] = [];
  private helloWaiter: ((servers: RTCIceServer[]) => void) | null = null;
  private helloTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly opts: CallOptions) {
    this.stats = {
      micLevel: 0, micPeak: 0, micAudibleMs: 0,
      remoteLevel: 0, remotePeak: 0, remoteAudibleMs: 0, lastRemoteAudibleAt: null,
      audibleLevel: AUDIBLE_LEVEL,
      startedAt: performance.now(), offerSentAt: null, answerAt: null, connectedAt: null, connectMs: null,
      talkspurts: [],
    };
  }

  get phase(): CallPhase {
    return this.phaseNow;
  }

  get ended(): boolean {
    return this.phaseNow === 'closed' || this.phaseNow === 'failed';
  }

  /** What the call still holds; empty once it has ended and everything is released (the tests check it). */
  get held(): string[] {
    const held: string[] = [];
    if (this.mic?.getTracks().some((t) => t.readyState === 'live')) held.push('microphone');
    if (this.pc && this.pc.connectionState !== 'closed') held.push('peer connection');
    if (this.ws?.open) held.push('signaling socket');
    if (this.ctx && this.ctx.state !== 'closed') held.push('audio context');
    if (this.poll) held.push('level poll');
    if (this.remoteStream && this.opts.audio.srcObject === this.remoteStream) held.push('audio element');
    return held;
  }

  /** Sets the call up; resolves once the offer is sent (the connection completes later, see `phase`). */
  async start(): Promise<void> {
    try {
      // The microphone first: with media permission granted, Chrome offers plain host candidates instead of
      // mDNS `.local` names (which make werift open an mDNS socket per call).
      this.mic = await navigator.mediaDevices
        .getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } })
        .catch((err: unknown) => {
          throw new Error(`microphone unavailable (${describe(err)})`);
        });
      if (this.ended) return this.releaseMedia();
      // Timed from here, not from the click: a permission prompt may wait on the person for as long as it likes.
      this.connectTimer = setTimeout(() => this.fail(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`), CONNECT_TIMEOUT_MS);
      this.ctx = new AudioContext();
      this.ctx.resume().catch((err: unknown) => this.note(`audio context could not start (${describe(err)}); levels read 0`));
      this.micProbe = new LevelProbe(this.ctx, this.mic);
      this.poll = setInterval(() => this.tick(), POLL_MS);

      this.ws = await Signaling.open(this.opts.wsUrl, {
        message: (msg, raw) => this.onMessage(msg, raw),
        closed: (code, reason) => this.fail(`the signaling socket closed (${code}${reason ? ` ${reason}` : ''})`),
      });
      if (this.ended) return this.ws.close();

      // STUN/TURN servers come from EVA (EVA_ICE_SERVERS), TURN ones with a credential minted for this socket.
      const iceServers = await this.askIceServers();
      if (this.ended) return;
      const pc = new RTCPeerConnection({ iceServers });
      this.pc = pc;
      for (const track of this.mic.getAudioTracks()) pc.addTrack(track, this.mic);
      pc.ontrack = (e) => this.onTrack(e);
      pc.onconnectionstatechange = () => this.onConnectionState(pc.connectionState);
      pc.onicecandidate = (e) => {
        // Before the offer is sent its SDP carries the candidates; after it (gathering past the cap) they trickle.
        if (e.candidate && this.stats.offerSentAt !== null) this.send({ type: 'candidate', candidate: e.candidate.toJSON() as IceCandidateJson });
      };
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringComplete(pc, GATHER_CAP_MS);
      if (this.ended) return;
      const sdp = pc.localDescription?.sdp;
      if (!sdp) throw new Error('the browser produced no local description');
      const offer: ClientMessage = { type: 'offer', sdp };
      if (Object.keys(this.opts.config).length > 0) offer.config = this.opts.config;
      this.stats.offerSentAt = performance.now();
      this.send(offer);
    } catch (err) {
      this.fail(describe(err));
    }
  }

  /** Resolves with the server's ICE servers, or none when it does not know `hello` or says nothing in time. */
  private askIceServers(): Promise<RTCIceServer[]> {
    return new Promise((resolve) => {
      const done = (servers: RTCIceServer[]): void => {
        if (this.helloTimer) clearTimeout(this.helloTimer);
        this.helloTimer = null;
        this.helloWaiter = null;
        resolve(servers);
      };
      this.helloWaiter = done;
      this.helloTimer = setTimeout(() => {
        this.note(`no ICE servers from the server within ${HELLO_TIMEOUT_MS / 1000} s; calling with host candidates only`);
        done([]);
      }, HELLO_TIMEOUT_MS);
      if (!this.send({ type: 'hello' })) done([]);
    });
  }

  /** Sends a typed turn; false when there is no open call to send it on. */
  sendText(text: string): boolean {
    if (this.ended || !this.ws?.open) return false;
    return this.send({ type: 'text', text });
  }

  /** Hangs up: tells the server, then frees everything. */
  hangup(): void {
    if (this.ended) return;
    this.send({ type: 'hangup' });
    this.close('closed', 'hang-up');
  }

  private fail(message: string, code?: string): void {
    if (this.ended) return;
    this.opts.onEvent(code ? { type: 'failure', message, code } : { type: 'failure', message });
    this.close('failed', message);
  }

  /** Idempotent: frees every resource whatever state set-up reached. */
  private close(phase: 'closed' | 'failed', reason: string): void {
    if (this.ended) return;
    this.phaseNow = phase;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.helloWaiter?.([]);
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
    for (const d of [this.micSpurts, this.remoteSpurts]) {
      const ev = d.flush();
      if (ev) this.opts.onEvent({ type: 'spurt', event: ev });
    }
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.onicecandidate = null;
      this.pc.close();
    }
    this.ws?.close();
    this.releaseMedia();
    this.stats.micLevel = 0;
    this.stats.remoteLevel = 0;
    this.opts.onLevels?.(this.stats);
    this.opts.onEvent({ type: 'phase', phase, reason });
  }

  private releaseMedia(): void {
    for (const track of this.mic?.getTracks() ?? []) track.stop();
    this.micProbe?.close();
    this.remoteProbe?.close();
    this.micProbe = this.remoteProbe = null;
    if (this.opts.audio.srcObject === this.remoteStream) this.opts.audio.srcObject = null;
    if (this.ctx && this.ctx.state !== 'closed') this.ctx.close().catch((err: unknown) => this.note(`audio context did not close: ${describe(err)}`));
  }

  private send(msg: ClientMessage): boolean {
    const ok = this.ws?.send(msg) ?? false;
    if (ok) this.opts.onEvent({ type: 'sent', msg });
    return ok;
  }

  private note(text: string): void {
    this.opts.onEvent({ type: 'note', text });
  }

  private onMessage(msg: ServerMessage | null, raw: string): void {
    this.opts.onEvent({ type: 'received', msg, raw });
    if (!msg || this.ended) return;
    switch (msg.type) {
      case 'hello':
        this.helloWaiter?.(msg.ice_servers);
        break;
      case 'answer':
        this.stats.answerAt = performance.now();
        this.applyAnswer(msg.sdp).catch((err: unknown) => this.fail(`could not apply the answer: ${describe(err)}`));
        break;
      case 'candidate':
        if (this.pc?.remoteDescription) this.addCandidate(msg.candidate);
        else this.pendingCandidates.push(msg.candidate);
        break;
      case 'bye':
        this.close('closed', `server ended the call: ${msg.reason}`);
        break;
      case 'error':
        // An EVA that predates `hello` refuses it: call with host candidates, as before.
        if (msg.code === 'unknown_type' && this.helloWaiter) {
          this.helloWaiter([]);
          break;
        }
        // Before the answer an error is the server refusing the offer (bad SDP, at its call limit …): the call
        // cannot start, so it fails now instead of waiting out the connect timeout. Later errors (no STT, a
        // failed turn) leave the call up; the page shows them as notices.
        if (this.stats.answerAt === null) this.fail(msg.message, msg.code);
        break;
      default:
        break; // the page (main.ts) renders the rest
    }
  }

  private async applyAnswer(sdp: string): Promise<void> {
    const pc = this.pc;
    if (!pc) return;
    await pc.setRemoteDescription({ type: 'answer', sdp });
    for (const c of this.pendingCandidates.splice(0)) this.addCandidate(c);
  }

  private addCandidate(c: IceCandidateJson): void {
    this.pc?.addIceCandidate(c).catch((err: unknown) => this.note(`remote candidate refused: ${describe(err)}`));
  }

  private onTrack(e: RTCTrackEvent): void {
    if (e.track.kind !== 'audio' || !this.ctx) return;
    const stream = e.streams[0] ?? new MediaStream([e.track]);
    if (stream === this.remoteStream) return; // the same track again on renegotiation
    this.remoteStream = stream;
    this.opts.audio.srcObject = stream;
    this.opts.audio.play().catch((err: unknown) => this.note(`remote audio did not autoplay (${describe(err)}); click the page to hear it`));
    this.remoteProbe?.close();
    this.remoteProbe = new LevelProbe(this.ctx, stream);
    this.note('remote audio track');
  }

  private onConnectionState(state: RTCPeerConnectionState): void {
    this.note(`peer connection ${state}`);
    if (state === 'connected' && this.phaseNow === 'connecting') {
      const now = performance.now();
      this.stats.connectedAt = now;
      if (this.stats.offerSentAt !== null) this.stats.connectMs = now - this.stats.offerSentAt;
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.phaseNow = 'connected';
      this.opts.onEvent({ type: 'phase', phase: 'connected' });
    } else if (state === 'failed') {
      this.fail('the media connection failed (ICE/DTLS)');
    }
  }

  private tick(): void {
    const now = performance.now();
    const dt = this.lastPollAt ? Math.min(now - this.lastPollAt, 100) : POLL_MS;
    this.lastPollAt = now;
    const s = this.stats;
    s.micLevel = this.micProbe?.read() ?? 0;
    s.micPeak = Math.max(s.micPeak, s.micLevel);
    if (s.micLevel >= AUDIBLE_LEVEL) s.micAudibleMs += dt;
    s.remoteLevel = this.remoteProbe?.read() ?? 0;
    s.remotePeak = Math.max(s.remotePeak, s.remoteLevel);
    if (s.remoteLevel >= AUDIBLE_LEVEL) {
      s.remoteAudibleMs += dt;
      s.lastRemoteAudibleAt = now;
    }
    for (const [d, level] of [[this.micSpurts, s.micLevel], [this.remoteSpurts, s.remoteLevel]] as const) {
      const ev = d.step(level, now);
      if (!ev) continue;
      if (ev.type === 'start') pushBounded(s.talkspurts, ev.spurt, MAX_SPURTS);
      this.opts.onEvent({ type: 'spurt', event: ev });
    }
    this.opts.onLevels?.(s);
  }
}

/** Resolves when ICE gathering completes or after `capMs`, whichever is first. */
function gatheringComplete(pc: RTCPeerConnection, capMs: number): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = (): void => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, capMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function describe(err: unknown): string {
  if (err instanceof DOMException) return `${err.name}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
