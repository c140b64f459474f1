// Per-client and global limits (README "Configuration"): counts of what each client address holds open, and
// token buckets for what it may do per second or minute. Synchronous, with an injectable clock; every refusal
// is counted in `eva_limit_hits_total{limit}` and returned as an EvaError the routes send as 429 / an error frame.
import type { LimitsConfig } from '../config.js';
import { EvaError } from '../errors.js';
import type { LimitName, Metrics } from '../metrics.js';
import { RateLimiter } from '../ratelimit.js';
import { normalizeAddress } from './access.js';

export type LimitError = EvaError & { retryAfterMs: number };

/** Counts per key that forget a key at zero, so memory follows what is open now. */
class Counts {
  private readonly m = new Map<string, number>();
  get(k: string): number {
    return this.m.get(k) ?? 0;
  }
  add(k: string, d: number): void {
    const n = this.get(k) + d;
    if (n > 0) this.m.set(k, n);
    else this.m.delete(k);
  }
}

export class Limits {
  readonly config: LimitsConfig;
  private readonly metrics: Metrics | undefined;
  private readonly exempt: Set<string>;
  private sockets = 0;
  private readonly clientSockets = new Counts();
  private readonly clientCalls = new Counts();
  private readonly offers: RateLimiter;
  private readonly wsText: RateLimiter;
  private readonly tts: RateLimiter;

  constructor(config: LimitsConfig, metrics?: Metrics, now?: () => number) {
    this.config = config;
    this.metrics = metrics;
    this.exempt = new Set(config.exempt.map(normalizeAddress));
    // Bursts: a minute's offers at once; a second's text turns or TTS requests, at least one.
    this.offers = new RateLimiter({ ratePerSec: config.offersPerMin / 60, burst: config.offersPerMin, now });
    this.wsText = new RateLimiter({ ratePerSec: config.textTurnsPerSec, burst: Math.max(1, Math.ceil(config.textTurnsPerSec)), now });
    this.tts = new RateLimiter({ ratePerSec: config.ttsPerSec, burst: Math.max(1, Math.ceil(config.ttsPerSec)), now });
  }

  /** Sockets open now (both `/ws` and `/ws/chat`). */
  get openSockets(): number {
    return this.sockets;
  }

  /** Counts a limit hit without refusing anything here (limits enforced elsewhere, such as EVA_MAX_CALLS). */
  hit(limit: LimitName): void {
    this.metrics?.limitHit(limit);
  }

  /** Null when `client` may open one more socket; call `socketOpened` once it is open. */
  canOpenSocket(client: string): LimitError | null {
    if (this.sockets >= this.config.maxSockets) return this.refuse('max_sockets', `the server holds its limit of ${this.config.maxSockets} sockets; try again later`, 5000);
    if (!this.isExempt(client) && this.clientSockets.get(client) >= this.config.clientSockets) {
      return this.refuse('client_sockets', `this address holds its limit of ${this.config.clientSockets} open sockets; close one first`, 5000);
    }
    return null;
  }

  socketOpened(client: string): void {
    this.sockets++;
    this.clientSockets.add(client, 1);
  }

  socketClosed(client: string): void {
    this.sockets = Math.max(0, this.sockets - 1);
    this.clientSockets.add(client, -1);
  }

  /** An offer: the per-minute rate, then the calls the client holds (a pending offer counts). Null = go on. */
  offer(client: string): LimitError | null {
    if (this.isExempt(client)) return null;
    const rate = this.offers.take(client);
    if (!rate.ok) return this.refuse('client_offers', `more than ${this.config.offersPerMin} offers a minute from this address`, rate.retryAfterMs);
    if (this.clientCalls.get(client) >= this.config.clientCalls) {
      return this.refuse('client_calls', `this address holds its limit of ${this.config.clientCalls} calls; hang one up first`, 5000);
    }
    return null;
  }

  callStarted(client: string): void {
    this.clientCalls.add(client, 1);
  }

  callEnded(client: string): void {
    this.clientCalls.add(client, -1);
  }

  /** A typed turn on `/ws`. */
  textTurn(client: string): LimitError | null {
    if (this.isExempt(client)) return null;
    const rate = this.wsText.take(client);
    return rate.ok ? null : this.refuse('ws_text', `more than ${this.config.textTurnsPerSec} text turns a second`, rate.retryAfterMs);
  }

  /** A `POST /tts` request, before its body is read. */
  ttsRate(client: string): LimitError | null {
    if (this.isExempt(client)) return null;
    const rate = this.tts.take(client);
    return rate.ok ? null : this.refuse('tts_rate', `more than ${this.config.ttsPerSec} /tts requests a second`, rate.retryAfterMs);
  }

  /** The length of a `/tts` text: 413 `too_large` beyond EVA_TTS_MAX_CHARS, for every client, exempt or not. */
  ttsText(chars: number): EvaError | null {
    if (chars <= this.config.ttsMaxChars) return null;
    this.hit('tts_chars');
    return new EvaError('too_large', `text is longer than ${this.config.ttsMaxChars} characters`, { status: 413 });
  }

  private isExempt(client: string): boolean {
    return this.exempt.has(client);
  }

  private refuse(limit: LimitName, message: string, retryAfterMs: number): LimitError {
    this.hit(limit);
    const err = new EvaError('rate_limited', `${message} (retry in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s)`, { status: 429, retryable: true });
    return Object.assign(err, { retryAfterMs });
  }
}
