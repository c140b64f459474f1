// Things EVA signs with its secret (docs/security.md): short-lived browser tokens (`POST /session-token`, the
// page's cookie) and session ids. Pure apart from the random bytes; the clock is passed in.
//
// One secret per data directory (`<EVA_DATA_DIR>/secret.key`, 32 random bytes, mode 0600), so ids made before a
// restart, or by another worker on the same directory, still verify. Each use gets its own key derived from it
// (HMAC-SHA256 of a label); tokens also mix in the API key, so changing EVA_API_KEY voids every token and cookie.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SECRET_BYTES = 32;
/** Session ids: 16 random bytes (128 bits, unguessable) + a 12-byte MAC, base64url: 38 characters of SESSION_ID_RE. */
const SESSION_RANDOM = 16;
const SESSION_MAC = 12;
const SESSION_ID_LENGTH = 38;
/** Tokens: `v1.<expiry, unix seconds, base 36>.<12 random bytes>.<16-byte MAC>`, all subprotocol-safe characters. */
const TOKEN_RE = /^v1\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22})$/;

const b64 = (b: Buffer): string => b.toString('base64url');
const mac = (key: Buffer, text: string, bytes: number): Buffer => createHmac('sha256', key).update(text).digest().subarray(0, bytes);

/** Compares two secrets in time independent of where they differ (both are hashed first, so lengths leak nothing). */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHmac('sha256', 'eva-compare').update(a).digest();
  const hb = createHmac('sha256', 'eva-compare').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** Reads `<dir>/secret.key`, creating it (0600) when missing; a race with another worker reads the winner's. */
export function loadSecret(dir: string): Buffer {
  const path = join(dir, 'secret.key');
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(path, randomBytes(SECRET_BYTES), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') throw err;
  }
  const secret = readFileSync(path);
  if (secret.length < SECRET_BYTES) throw new Error(`${path} is shorter than ${SECRET_BYTES} bytes; delete it to make a new one`);
  return secret;
}

export interface Token {
  token: string;
  /** Unix ms. */
  expiresAt: number;
}

export class Signer {
  private readonly sessionKey: Buffer;
  private readonly tokenKey: Buffer;

  constructor(secret: Buffer, apiKey = '') {
    this.sessionKey = createHmac('sha256', secret).update('eva session id v1').digest();
    this.tokenKey = createHmac('sha256', secret).update(`eva token v1\0${apiKey}`).digest();
  }

  /** A fresh session id that only this server (its secret) could have made. */
  mintSessionId(): string {
    const rand = b64(randomBytes(SESSION_RANDOM));
    return rand + b64(mac(this.sessionKey, rand, SESSION_MAC));
  }

  /** Whether `id` was made by `mintSessionId` with this secret. */
  isSessionId(id: string): boolean {
    if (id.length !== SESSION_ID_LENGTH) return false;
    const rand = id.slice(0, 22);
    const given = Buffer.from(id.slice(22), 'base64url');
    return given.length === SESSION_MAC && timingSafeEqual(given, mac(this.sessionKey, rand, SESSION_MAC));
  }

  mintToken(ttlMs: number, nowMs: number): Token {
    const exp = Math.ceil((nowMs + ttlMs) / 1000);
    const body = `v1.${exp.toString(36)}.${b64(randomBytes(12))}`;
    return { token: `${body}.${b64(mac(this.tokenKey, body, 16))}`, expiresAt: exp * 1000 };
  }

  /** Whether `token` was minted here and has not expired at `nowMs`. */
  verifyToken(token: string, nowMs: number): boolean {
    const m = TOKEN_RE.exec(token);
    if (!m) return false;
    const body = token.slice(0, token.length - 23);
    const given = Buffer.from(m[3]!, 'base64url');
    if (given.length !== 16 || !timingSafeEqual(given, mac(this.tokenKey, body, 16))) return false;
    return parseInt(m[1]!, 36) * 1000 > nowMs;
  }
}
