// TURN credentials the coturn "TURN REST API" way (coturn `use-auth-secret` + `static-auth-secret`,
// draft-uberti-behave-turn-rest): username `<expiry-epoch>:<id>`, password base64(HMAC-SHA1(secret, username)).
// The TURN server checks the HMAC and the expiry itself, so EVA hands each socket its own short-lived pair
// instead of one long-lived TURN password, and no shared state is needed between EVA and coturn but the secret.
import { createHmac, randomBytes } from 'node:crypto';
import type { IceServerConfig } from './config.js';

/**
 * Lifetime of a minted credential. coturn checks the expiry on every authenticated request, allocation refreshes
 * included, so a call whose credential expires loses its relay: a day covers any call, as the draft suggests.
 */
export const TURN_CREDENTIAL_TTL_S = 24 * 3600;

export interface TurnCredential {
  username: string;
  credential: string;
  /** Unix seconds after which the TURN server refuses it. */
  expiresAt: number;
}

/** One credential for `id` (no `:` in it: coturn splits the username at the first one). */
export function mintTurnCredential(secret: string, id: string, opts: { ttlS?: number; nowMs?: number } = {}): TurnCredential {
  if (secret === '') throw new Error('the TURN secret is empty');
  if (id.includes(':')) throw new Error(`a TURN user id may not contain ":" (got ${JSON.stringify(id)})`);
  const expiresAt = Math.floor((opts.nowMs ?? Date.now()) / 1000) + (opts.ttlS ?? TURN_CREDENTIAL_TTL_S);
  const username = `${expiresAt}:${id}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64'), expiresAt };
}

/** A fresh random id for one connection's credential (log lines in coturn show it). */
export function connectionId(prefix = 'eva'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

const isTurn = (url: string): boolean => /^turns?:/i.test(url);

/**
 * The ICE servers one connection gets. TURN entries that carry a credential pass as they are; with a secret, the
 * others get a minted one (an entry's `username`, when it has one, is the id); without a secret they are left
 * out, since a TURN URL without a credential makes a browser's RTCPeerConnection constructor throw. STUN entries
 * always pass.
 */
export function iceServersFor(servers: readonly IceServerConfig[], secret: string | undefined, id: string, nowMs = Date.now()): IceServerConfig[] {
  const out: IceServerConfig[] = [];
  for (const s of servers) {
    if (!s.urls.some(isTurn) || s.credential !== undefined) {
      out.push({ ...s, urls: [...s.urls] });
    } else if (secret) {
      const { username, credential } = mintTurnCredential(secret, (s.username ?? id).replaceAll(':', '_'), { nowMs });
      out.push({ urls: [...s.urls], username, credential });
    } else if (s.urls.some((u) => !isTurn(u))) {
      out.push({ urls: s.urls.filter((u) => !isTurn(u)) });
    }
  }
  return out;
}

/** TURN entries that no connection can use (no credential, no EVA_TURN_SECRET): worth a warning at start-up. */
export function unusableTurnServers(servers: readonly IceServerConfig[], secret: string | undefined): string[] {
  if (secret) return [];
  return servers.filter((s) => s.credential === undefined).flatMap((s) => s.urls.filter(isTurn));
}
