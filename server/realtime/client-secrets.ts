// `POST /v1/realtime/client_secrets`: short-lived `ek_` keys for browsers (OpenAI's name for them), each made of
// one of EVA's signed tokens (http/tokens.ts), so every worker and node sharing the secret accepts it. The
// session settings it was minted with are kept here, in this process, until it expires, and become the
// session's first settings when a call or socket opens with it. A process keeps at most MAX_SECRETS of them.
import type { Token } from '../http/tokens.js';

export const CLIENT_SECRET_PREFIX = 'ek_';
/** OpenAI's bounds for `expires_after.seconds`; its default is 600. */
export const MIN_TTL_S = 10;
export const MAX_TTL_S = 7200;
export const DEFAULT_TTL_S = 600;
const MAX_SECRETS = 10_000;

/** The token inside an `ek_` key ('' for anything else). */
export function tokenOfClientSecret(secret: string): string {
  return secret.startsWith(CLIENT_SECRET_PREFIX) ? secret.slice(CLIENT_SECRET_PREFIX.length) : '';
}

export class ClientSecrets {
  /** Insertion order is expiry order for one TTL; the sweep on mint drops what has expired. */
  private readonly sessions = new Map<string, { session: Record<string, unknown>; expiresAt: number }>();

  constructor(
    private readonly mintToken: (ttlMs: number) => Token,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new `ek_` key valid for `ttlS` seconds, remembering `session` for it. */
  mint(session: Record<string, unknown>, ttlS: number): { value: string; expiresAt: number } {
    const { token, expiresAt } = this.mintToken(ttlS * 1000);
    const now = this.now();
    for (const [k, v] of this.sessions) {
      if (v.expiresAt > now && this.sessions.size < MAX_SECRETS) break;
      this.sessions.delete(k);
    }
    this.sessions.set(token, { session, expiresAt });
    return { value: CLIENT_SECRET_PREFIX + token, expiresAt };
  }

  /** The settings a presented key was minted with (undefined: not an `ek_` key of this process, or expired). */
  sessionFor(secret: string): Record<string, unknown> | undefined {
    const entry = this.sessions.get(tokenOfClientSecret(secret));
    return entry && entry.expiresAt > this.now() ? entry.session : undefined;
  }

  get size(): number {
    return this.sessions.size;
  }
}
