// A headless WebRTC caller for EVA: speaks the `/ws` protocol, sends audio in real time through the real Opus
// codec and werift, and records what it hears with arrival times. The bench measures latency with it from the
// client's side, and the integration tests use it as "a person on the phone".
import WebSocket from 'ws';
import { rmsOf } from '../media/level.js';
import { OpusDecoder, OpusEncoder, enableFec } from '../media/opus.js';
import { DTX_HANGOVER_FRAMES, Pacer, PacerScheduler } from '../media/pacer.js';
import { Peer, answerAsksDtx, type PeerOptions } from '../media/peer.js';
import type { CallConfig, ServerMessage } from '../server/signaling.js';
import { audibleOnsetMs } from './latency.js';

export interface TimedEvent {
  at: number;
  msg: ServerMessage;
}

export interface HeardFrame {
  /** performance.now() when the packet arrived (before it was decoded). */
  at: number;
  /** RMS of the decoded 20 ms frame. */
  rms: number;
  /** Opus payload size: EVA's silence packets are a few bytes, speech is ≥ 20 (load.ts classifies by it too). */
  bytes?: number;
  /**
   * Where in the frame audible sound starts, ms from the frame's first sample: the first ONSET_WINDOW (2 ms)
   * whose RMS reaches AUDIBLE_RMS (latency.ts `audibleOnsetMs`). Unset when no part of the frame is audible. A frame that starts quietly but
   * ends audible has rms < AUDIBLE_RMS as a whole and yet is heard from `at + onsetMs`.
   */
  onsetMs?: number;
}

export interface PlayResult {
  /** performance.now() when the first frame of the clip left the client. */
  startAt: number;
  /** When the frame holding the clip's last voiced sample left the client. */
  lastVoicedAt: number;
  endAt: number;
}

/** RMS (of 16-bit samples) above which a received frame counts as audible: ~ −50 dBFS. */
export const AUDIBLE_RMS = 100;

const CLIENT_RATE = 16000;
/** A clip that has not left this long after its own length rejects (a dead call, a stopped sender). */
const PLAY_GRACE_MS = 15_000;

export class ProbeCall {
  readonly events: TimedEvent[] = [];
  readonly heard: HeardFrame[] = [];
  /** Everything received, decoded at 16 kHz (bounded to 120 s). */
  readonly pcm: Int16Array[] = [];
  connectMs = 0;
  private readonly ws: WebSocket;
  private readonly peer: Peer;
  private readonly enc = new OpusEncoder({ sampleRate: CLIENT_RATE, application: 'voip', complexity: 5 });
  private readonly dec = new OpusDecoder(CLIENT_RATE);
  private readonly pacer: Pacer;
  private waiters: { pred: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  private played: ((endMs: number, at: number) => void) | null = null;
  private pcmSamples = 0;
  /** Decoded audio is kept (in `pcm`, aligned with `heard`) for this long from the start of the call. */
  keepPcmSeconds = 120;
  private closed = false;
  private segment = 0;
  /** Whether this caller sends DTX (the answer asked for it, see connect). */
  get dtx(): boolean {
    return this.pacer.dtx;
  }

  private constructor(ws: WebSocket, peer: PeerOptions = { onlyHosts: ['127.0.0.1'], additionalHosts: ['127.0.0.1'] }) {
    this.ws = ws;
    enableFec(this.enc);
    this.peer = new Peer(
      {
        onAudio: (payload) => this.onAudio(payload),
      },
      peer,
    );
    this.pacer = new Pacer({
      encoder: this.enc,
      scheduler: ProbeCall.scheduler,
      maxQueueMs: 60_000,
      // A browser's Opus keeps sending ~200 ms of quiet frames after speech before it goes into DTX.
      tailFrames: DTX_HANGOVER_FRAMES,
      send: (payload, header) => this.peer.sendAudio(payload, header),
      events: { played: (tag) => this.played?.(tag.endMs, performance.now()) },
    });
    ws.on('message', (data) => {
      let msg: ServerMessage;
      try {
        msg = JSON.parse(String(data)) as ServerMessage;
      } catch {
        return;
      }
      this.events.push({ at: performance.now(), msg });
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(msg)) return true;
        w.resolve(msg);
        return false;
      });
    });
  }

  static readonly scheduler = new PacerScheduler();

  /**
   * Open `/ws`, offer, and resolve once the call is connected and `ready` arrived. `peer`: the caller's own peer
   * settings (default: loopback candidates only); the test/net/ callers in other namespaces set theirs.
   */
  static async connect(
    wsUrl: string,
    opts: {
      config?: CallConfig;
      timeoutMs?: number;
      keepPcmSeconds?: number;
      peer?: PeerOptions;
      /**
       * Send Opus DTX while quiet when the answer asks for it (`usedtx=1`), as a browser does: after 200 ms of
       * silence (libopus's hangover), one silence packet every 400 ms. Default true; false: always every 20 ms.
       */
      dtx?: boolean;
    } = {},
  ): Promise<ProbeCall> {
    const ws = new WebSocket(wsUrl);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const call = new ProbeCall(ws, opts.peer);
    if (opts.keepPcmSeconds !== undefined) call.keepPcmSeconds = opts.keepPcmSeconds;
    try {
      const t0 = performance.now();
      const offer = await call.peer.offer();
      call.send({ type: 'offer', sdp: offer, config: opts.config ?? {} });
      const answer = await call.waitFor((m) => m.type === 'answer' || m.type === 'error', opts.timeoutMs ?? 10_000);
      if (answer.type === 'error') throw new Error(`offer refused: ${answer.code}: ${answer.message}`);
      if (answer.type !== 'answer') throw new Error('unreachable');
      await call.peer.accept(answer.sdp);
      call.pacer.dtx = opts.dtx !== false && answerAsksDtx(answer.sdp);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        call.peer.whenConnected,
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('WebRTC did not connect in time')), opts.timeoutMs ?? 10_000))),
      ]).finally(() => clearTimeout(timer));
      call.connectMs = performance.now() - t0;
      call.pacer.start();
      return call;
    } catch (err) {
      await call.close();
      throw err;
    }
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  /** Wait for a server message; rejects after timeoutMs. Looks at messages already received first. */
  waitFor(pred: (m: ServerMessage) => boolean, timeoutMs = 10_000, since = 0): Promise<ServerMessage> {
    const seen = this.events.find((e) => e.at >= since && pred(e.msg));
    if (seen) return Promise.resolve(seen.msg);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (m: ServerMessage) => (clearTimeout(timer), resolve(m)) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a server message; got: ${this.events.map((e) => e.msg.type).join(',')}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /**
   * Send a 16 kHz clip in real time (20 ms frames). `voicedEndMs` is where the clip's speech ends (default: its
   * length); the result says when that sample left. Silence frames go on after the clip.
   */
  play(pcm16k: Int16Array, voicedEndMs = (pcm16k.length * 1000) / CLIENT_RATE): Promise<PlayResult> {
    const seg = ++this.segment;
    const totalMs = (pcm16k.length * 1000) / CLIENT_RATE;
    let startAt = 0;
    let lastVoicedAt = 0;
    return new Promise((resolve, reject) => {
      // A call that ended under the clip (its sender stops) must not leave the caller waiting for ever.
      const limitMs = totalMs + PLAY_GRACE_MS;
      const timer = setTimeout(() => {
        if (this.played === onPlayed) this.played = null;
        reject(new Error(`ProbeCall: a ${Math.round(totalMs)} ms clip did not finish playing within ${Math.round(limitMs)} ms (did the call end? ${this.events.some((e) => e.msg.type === 'bye') ? 'a bye came' : 'no bye'})`));
      }, limitMs);
      timer.unref();
      const onPlayed = (endMs: number, at: number): void => {
        if (!startAt) startAt = at;
        if (!lastVoicedAt && endMs >= voicedEndMs) lastVoicedAt = at;
        if (endMs >= totalMs) {
          this.played = null;
          clearTimeout(timer);
          resolve({ startAt, lastVoicedAt: lastVoicedAt || at, endAt: at });
        }
      };
      this.played = onPlayed;
      this.pacer.enqueue(pcm16k, seg);
      this.pacer.flush();
    });
  }

  /** Stop sending audio mid-clip (the person stops talking). */
  stopPlaying(): void {
    this.pacer.clear();
    this.played = null;
  }

  private onAudio(payload: Buffer): void {
    if (this.closed) return;
    // The arrival, not the end of the decode: what a frame holds is heard from when it arrives.
    const at = performance.now();
    let pcm: Int16Array;
    try {
      pcm = this.dec.decode(payload);
    } catch {
      return;
    }
    const frame: HeardFrame = { at, rms: rmsOf(pcm), bytes: payload.length };
    const onset = audibleOnsetMs(pcm);
    if (onset !== undefined) frame.onsetMs = onset;
    this.heard.push(frame);
    if (this.pcmSamples < CLIENT_RATE * this.keepPcmSeconds) {
      this.pcm.push(pcm);
      this.pcmSamples += pcm.length;
    }
  }

  /** First received frame at or after `since` that is audible. */
  firstAudible(since: number, rms = AUDIBLE_RMS): HeardFrame | undefined {
    return this.heard.find((f) => f.at >= since && f.rms >= rms);
  }

  /** Last audible frame at or after `since`. */
  lastAudible(since: number, rms = AUDIBLE_RMS): HeardFrame | undefined {
    for (let i = this.heard.length - 1; i >= 0 && this.heard[i]!.at >= since; i--) if (this.heard[i]!.rms >= rms) return this.heard[i];
    return undefined;
  }

  /** Total audible ms received at or after `since`. */
  audibleMs(since: number, rms = AUDIBLE_RMS): number {
    return this.heard.filter((f) => f.at >= since && f.rms >= rms).length * 20;
  }

  hangup(): void {
    this.send({ type: 'hangup' });
  }

  /** Stop sending RTP but keep everything else open: a frozen or vanished browser, as the server sees it. */
  stopSending(): void {
    this.pacer.close();
  }

  /** Drop the signaling connection without a close frame (a killed tab). */
  terminateSocket(): void {
    this.ws.terminate();
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pacer.close();
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
    await this.peer.close();
    this.enc.close();
    this.dec.close();
  }
}
