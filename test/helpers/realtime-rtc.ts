// A headless OpenAI Realtime WebRTC client for tests: a werift peer with a sendrecv Opus track and the
// `oai-events` data channel, offered to `POST /v1/realtime/calls` as OpenAI's clients do (the offer as
// application/sdp, or the multipart form), then real-time 20 ms Opus frames out and decoded audio in.
import { OpusDecoder, OpusEncoder, enableFec } from '../../media/opus.js';
import { Pacer, PacerScheduler } from '../../media/pacer.js';
import { Peer, type DataChannel } from '../../media/peer.js';
import { rmsOf } from '../../media/level.js';
import { until } from './eva.js';

const RATE = 16000;
export type RtEvent = Record<string, unknown> & { type: string };

export interface OfferReply {
  status: number;
  location: string | null;
  contentType: string | null;
  body: string;
}

export class RealtimeRtcClient {
  readonly events: { at: number; ev: RtEvent }[] = [];
  /** Every received frame: arrival time and RMS. */
  readonly heard: { at: number; rms: number }[] = [];
  readonly peer: Peer;
  readonly channel: DataChannel;
  reply: OfferReply | null = null;
  private readonly enc = new OpusEncoder({ sampleRate: RATE, application: 'voip', complexity: 5 });
  private readonly dec = new OpusDecoder(RATE);
  private readonly pacer: Pacer;
  private closed = false;
  private segment = 0;
  private onPlayed: ((tag: { segment: number; endMs: number }) => void) | null = null;
  private static readonly scheduler = new PacerScheduler();

  constructor() {
    enableFec(this.enc);
    this.peer = new Peer({ onAudio: (payload) => this.onAudio(payload) }, { onlyHosts: ['127.0.0.1'], additionalHosts: ['127.0.0.1'] });
    this.channel = this.peer.createDataChannel('oai-events');
    this.channel.onMessage((text) => this.events.push({ at: performance.now(), ev: JSON.parse(text) as RtEvent }));
    this.pacer = new Pacer({
      encoder: this.enc,
      scheduler: RealtimeRtcClient.scheduler,
      maxQueueMs: 60_000,
      send: (payload, header) => this.peer.sendAudio(payload, header),
      events: { played: (tag) => this.onPlayed?.(tag) },
    });
  }

  /**
   * Offer to `url`; on 201 apply the answer and wait for the connection and the open channel. `form`: send the
   * multipart form with this `session` part instead of a bare application/sdp body.
   */
  async connect(url: string, opts: { key?: string; form?: Record<string, unknown>; timeoutMs?: number } = {}): Promise<OfferReply> {
    const offer = await this.peer.offer();
    const headers: Record<string, string> = {};
    if (opts.key) headers.Authorization = `Bearer ${opts.key}`;
    let body: string | FormData = offer;
    if (opts.form) {
      const form = new FormData();
      form.set('sdp', offer);
      form.set('session', JSON.stringify(opts.form));
      body = form;
    } else {
      headers['Content-Type'] = 'application/sdp';
    }
    const res = await fetch(url, { method: 'POST', headers, body });
    const reply: OfferReply = { status: res.status, location: res.headers.get('location'), contentType: res.headers.get('content-type'), body: await res.text() };
    this.reply = reply;
    if (res.status !== 201) return reply;
    await this.peer.accept(reply.body);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const up = await until(() => this.peer.connectionState === 'connected' && this.channel.open, timeoutMs);
    if (!up) throw new Error(`the call did not connect with an open channel within ${timeoutMs} ms (state ${this.peer.connectionState})`);
    this.pacer.start();
    return reply;
  }

  send(ev: Record<string, unknown>): void {
    if (!this.channel.send(JSON.stringify(ev))) throw new Error('the events channel is not open');
  }

  /** Waits for an event at or after `since` (events already received count). */
  async waitFor(pred: (ev: RtEvent) => boolean, timeoutMs = 15_000, since = 0): Promise<RtEvent> {
    let hit: RtEvent | undefined;
    await until(() => !!(hit = this.events.find((e) => e.at >= since && pred(e.ev))?.ev), timeoutMs);
    if (!hit) throw new Error(`no matching event in ${timeoutMs} ms; saw ${[...new Set(this.events.map((e) => e.ev.type))].join(', ')}`);
    return hit;
  }

  at(ev: RtEvent): number {
    return this.events.find((e) => e.ev === ev)?.at ?? NaN;
  }

  /** Sends a 16 kHz clip in real time; resolves (with the time its last frame left) when it has been sent. */
  play(pcm16k: Int16Array): Promise<number> {
    const seg = ++this.segment;
    const totalMs = (pcm16k.length * 1000) / RATE;
    return new Promise((resolve) => {
      this.onPlayed = (tag) => {
        if (tag.segment === seg && tag.endMs >= totalMs) resolve(performance.now());
      };
      this.pacer.enqueue(pcm16k, seg);
      this.pacer.flush();
    });
  }

  /** ms of received audio louder than `rms` at or after `since`. */
  audibleMs(since: number, rms = 100): number {
    return this.heard.filter((f) => f.at >= since && f.rms >= rms).length * 20;
  }

  firstAudible(since: number, rms = 100): number | undefined {
    return this.heard.find((f) => f.at >= since && f.rms >= rms)?.at;
  }

  private onAudio(payload: Buffer): void {
    if (this.closed) return;
    const at = performance.now();
    try {
      this.heard.push({ at, rms: rmsOf(this.dec.decode(payload)) });
    } catch {
      // a corrupt packet: not heard
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pacer.close();
    this.channel.close();
    await this.peer.close();
    this.enc.close();
    this.dec.close();
  }
}
