// A token bucket per client key (an IP address): `ratePerSec` tokens a second, up to `burst` saved. Pure and
// synchronous: no timers, the clock is injected, and memory is bounded by `maxKeys`.
//
// Memory: the Map is kept in least-recently-used order (a key is re-inserted on each take). A bucket idle long
// enough to have refilled to `burst` carries no information, so each take first drops such buckets from the
// old end (amortized O(1)). When the Map is still full, the least recently used key is evicted even if it is
// not idle: at worst that client gets a fresh full bucket; a flood of new keys cannot grow memory.
import { EvaError } from './errors.js';

export interface RateLimitOptions {
  /** Sustained requests per second per key. */
  ratePerSec: number;
  /** Requests a key may make at once after being idle. */
  burst: number;
  /** Most keys tracked at once. Default 10,000 (~1 MB). */
  maxKeys?: number;
  /** Milliseconds, monotonic. Default performance.now. */
  now?: () => number;
}

export interface RateDecision {
  ok: boolean;
  /** 0 when ok; else how long until the request would be allowed (for a Retry-After header). */
  retryAfterMs: number;
}

/** The text API's default: 10 requests/s, bursts of 20, per client. */
export const TEXT_API_LIMIT: Readonly<RateLimitOptions> = { ratePerSec: 10, burst: 20 };

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly ratePerMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  /** How long a bucket takes to refill from empty; after that much idleness it can be forgotten. */
  private readonly idleMs: number;
  private readonly now: () => number;

  constructor(opts: RateLimitOptions = TEXT_API_LIMIT) {
    if (!(opts.ratePerSec > 0) || !Number.isFinite(opts.ratePerSec)) throw new RangeError(`ratePerSec must be a positive number, got ${opts.ratePerSec}`);
    if (!(opts.burst >= 1) || !Number.isFinite(opts.burst)) throw new RangeError(`burst must be at least 1, got ${opts.burst}`);
    const maxKeys = opts.maxKeys ?? 10_000;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    this.ratePerMs = opts.ratePerSec / 1000;
    this.burst = opts.burst;
    this.maxKeys = maxKeys;
    this.idleMs = opts.burst / this.ratePerMs;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Keys tracked now. */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token for `key`; `ok: false` means refuse the request. */
  take(key: string): RateDecision {
    const t = this.now();
    this.sweep(t);
    const b = this.buckets.get(key);
    let tokens = this.burst;
    if (b) {
      tokens = Math.min(this.burst, b.tokens + Math.max(0, t - b.at) * this.ratePerMs);
      this.buckets.delete(key);
    } else if (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
    const ok = tokens >= 1;
    if (ok) tokens -= 1;
    this.buckets.set(key, { tokens, at: t });
    return { ok, retryAfterMs: ok ? 0 : Math.ceil((1 - tokens) / this.ratePerMs) };
  }

  /** Forgets every key. */
  clear(): void {
    this.buckets.clear();
  }

  private sweep(t: number): void {
    for (const [key, b] of this.buckets) {
      if (t - b.at < this.idleMs) return;
      this.buckets.delete(key);
    }
  }
}

/** The error for a refused request: HTTP 429 / WS `rate_limited`; it carries `retryAfterMs`, which the HTTP front sends as `Retry-After` (whole seconds, at least 1). */
export function rateLimitedError(retryAfterMs: number): EvaError & { retryAfterMs: number } {
  const err = new EvaError('rate_limited', `too many requests; retry in ${Math.max(1, Math.ceil(retryAfterMs))} ms`, {
    status: 429,
    retryable: true,
  });
  return Object.assign(err, { retryAfterMs });
}
