// The one access layer (docs/security.md): who is asking (the client address, through trusted proxies), whether
// the request may come in (Host, Origin, credentials) and with which rights. Pure and synchronous: the routes
// copy the headers out of uWS's request into a `RequestInfo` and act on the `Decision`.
import { isIP } from 'node:net';
import type { AccessConfig } from '../config.js';
import type { ErrorCode } from '../errors.js';
import { safeEqual, Signer, type Token } from './tokens.js';

/** The subprotocol prefix a browser uses to present a token on a WebSocket upgrade (`eva-token.<token>`). */
export const TOKEN_PROTOCOL = 'eva-token.';
/** The OpenAI Realtime API's browser form of a key on `/v1/realtime` (`openai-insecure-api-key.<key>`). */
export const OPENAI_KEY_PROTOCOL = 'openai-insecure-api-key.';
/** How long the page's cookie lasts: a working day, so an open page can still reconnect in the afternoon. */
export const COOKIE_TTL_MS = 12 * 3600_000;

/** What a route needs: `open` (the page's assets), `page` (the page itself, which sets the cookie), `auth`, `key`. */
export type Need = 'open' | 'page' | 'auth' | 'key';

export interface RequestInfo {
  method: string;
  path: string;
  host: string;
  origin: string;
  authorization: string;
  cookie: string;
  /** `Sec-WebSocket-Protocol` (upgrades only). */
  protocol: string;
  /** The socket's peer address. */
  peer: string;
  forwardedFor: string;
  forwardedProto: string;
}

export type Credential = 'key' | 'token' | 'cookie' | 'none';

export interface Admitted {
  ok: true;
  /** The client address the per-client limits count. */
  client: string;
  credential: Credential;
  /**
   * Owner rights (naming any session id): the API key; or, when no key is set, a client that is not a browser
   * (sends no `Origin`). Browsers, even EVA's own page, only continue sessions the server gave them.
   */
  owner: boolean;
  /** Headers to add to the reply (CORS for an EVA_ALLOWED_ORIGINS origin). */
  headers: Record<string, string>;
  /** The subprotocol to answer an upgrade with ('' = none). */
  protocol: string;
  /** The request came over HTTPS (a trusted proxy said so): the cookie gets `Secure`. */
  secure: boolean;
}

export interface Refused {
  ok: false;
  status: 401 | 403;
  code: Extract<ErrorCode, 'forbidden_origin' | 'forbidden_host' | 'unauthorized'>;
  message: string;
  /** Ask the browser for the key (HTTP Basic), for the page only. */
  challenge: boolean;
}

export type Decision = Admitted | Refused;

/** `::ffff:1.2.3.4` → `1.2.3.4`; `[::1]` → `::1`; lower case. */
export function normalizeAddress(addr: string): string {
  let a = addr.trim().toLowerCase();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7);
  return a;
}

/**
 * The client address. With `trustProxy` = N proxies in front of EVA, the peer is the nearest proxy and each proxy
 * appends the address it saw to `X-Forwarded-For`: the client is the N-th entry from the right (entries further
 * left were written by the client itself and prove nothing). Fewer entries than N: the left-most one.
 */
export function clientAddress(peer: string, forwardedFor: string, trustProxy: number): string {
  const p = normalizeAddress(peer);
  if (trustProxy <= 0 || !forwardedFor.trim()) return p;
  const hops = forwardedFor.split(',').map((s) => normalizeAddress(s)).filter((s) => s !== '');
  if (!hops.length) return p;
  const pick = hops[Math.max(0, hops.length - trustProxy)]!;
  return isIP(pick) ? pick : p;
}

/** The host name of a `Host` header, lower case, without port or brackets; null when it is not one. */
export function hostName(host: string): string | null {
  const h = host.trim().toLowerCase();
  if (h === '') return null;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0 || (h.length > end + 1 && !/^:\d{1,5}$/.test(h.slice(end + 1)))) return null;
    const ip = h.slice(1, end);
    return isIP(ip) === 6 ? ip : null;
  }
  const m = /^([a-z0-9._-]{1,253})(?::\d{1,5})?$/.exec(h);
  return m ? m[1]!.replace(/\.$/, '') : null;
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);
const WILDCARD = new Set(['0.0.0.0', '::', '']);

export interface HostPolicy {
  /** Bound to every interface with no EVA_ALLOWED_HOSTS: any name (the Origin rule still holds). */
  any: boolean;
  names: Set<string>;
}

export function hostPolicy(bindHost: string, allowedHosts: readonly string[], iceHosts: readonly string[]): HostPolicy {
  const names = new Set<string>([...LOOPBACK_NAMES, ...allowedHosts, ...iceHosts].map((n) => normalizeAddress(n)));
  const bound = normalizeAddress(bindHost);
  if (!WILDCARD.has(bound)) names.add(bound);
  return { any: WILDCARD.has(bound) && allowedHosts.length === 0, names };
}

/**
 * DNS rebinding needs a name the attacker controls that resolves to EVA: an IP literal can never be one, so IP
 * literals pass, as do loopback names, HOST, EVA_ICE_HOSTS and EVA_ALLOWED_HOSTS (`.example.com` = any subdomain).
 * No Host header at all is a non-browser client (browsers always send one).
 */
export function hostAllowed(policy: HostPolicy, host: string): boolean {
  if (host === '') return true;
  const name = hostName(host);
  if (name === null) return false;
  if (policy.any || isIP(name) || policy.names.has(name) || name.endsWith('.localhost')) return true;
  for (const n of policy.names) if (n.startsWith('.') && name.endsWith(n)) return true;
  return false;
}

/** `own` when `origin` is `scheme://host` of this very request, `allowed` when listed, else false. */
export function originMatch(origin: string, host: string, scheme: 'http' | 'https', allowed: ReadonlySet<string>): 'own' | 'allowed' | false {
  let o: string;
  try {
    o = new URL(origin).origin;
  } catch {
    return false;
  }
  if (o === 'null') return false;
  if (host !== '') {
    try {
      if (new URL(`${scheme}://${host}`).origin === o) return 'own';
    } catch {
      // an unparsable Host is no origin of ours
    }
  }
  return allowed.has(o) ? 'allowed' : false;
}

/** The value of one cookie, or ''. */
export function cookieValue(header: string, name: string): string {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return '';
}

/** The credential in an `Authorization` header: a Bearer value, or the password of HTTP Basic (any user name). */
export function authorizationSecret(header: string): string {
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header.trim());
  if (!m) return '';
  if (m[1]!.toLowerCase() === 'bearer') return m[2]!;
  const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? '' : decoded.slice(colon + 1);
}

/**
 * The subprotocol entries of an upgrade: the token one (if any), an OpenAI-style key (`openai-insecure-api-key.`,
 * a key or a token), and the one to answer with — never a credential entry when another was offered (`realtime`).
 */
export function splitProtocols(header: string): { token: string; key: string; answer: string } {
  const entries = header.split(',').map((s) => s.trim()).filter(Boolean);
  const tokenEntry = entries.find((e) => e.startsWith(TOKEN_PROTOCOL));
  const keyEntry = entries.find((e) => e.startsWith(OPENAI_KEY_PROTOCOL));
  const other = entries.find((e) => !e.startsWith(TOKEN_PROTOCOL) && !e.startsWith(OPENAI_KEY_PROTOCOL));
  // A browser fails the upgrade unless the answer is one of the entries it offered.
  return {
    token: tokenEntry ? tokenEntry.slice(TOKEN_PROTOCOL.length) : '',
    key: keyEntry ? keyEntry.slice(OPENAI_KEY_PROTOCOL.length) : '',
    answer: other ?? tokenEntry ?? '',
  };
}

export class Access {
  readonly signer: Signer;
  private readonly config: AccessConfig;
  private readonly hosts: HostPolicy;
  private readonly origins: ReadonlySet<string>;
  private readonly now: () => number;
  /** `eva_<port>`: cookies are per host, not per port, so two EVAs on one machine must not share a name. */
  cookieName = 'eva_auth';

  constructor(opts: { access: AccessConfig; host: string; iceHosts: readonly string[]; secret: Buffer; now?: () => number }) {
    this.config = opts.access;
    this.hosts = hostPolicy(opts.host, opts.access.allowedHosts, opts.iceHosts);
    this.origins = new Set(opts.access.allowedOrigins);
    this.signer = new Signer(opts.secret, opts.access.apiKey ?? '');
    this.now = opts.now ?? Date.now;
  }

  get keyRequired(): boolean {
    return this.config.apiKey !== undefined;
  }

  setPort(port: number): void {
    this.cookieName = `eva_${port}`;
  }

  mintToken(): Token {
    return this.signer.mintToken(this.config.tokenTtlS * 1000, this.now());
  }

  /** The page's cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it). */
  cookieHeader(secure: boolean): string {
    const { token } = this.signer.mintToken(COOKIE_TTL_MS, this.now());
    return `${this.cookieName}=${token}; Path=/; Max-Age=${COOKIE_TTL_MS / 1000}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }

  /** Whether the request came over HTTPS (only a trusted proxy can say so). */
  secure(info: RequestInfo): boolean {
    return this.config.trustProxy > 0 && /^\s*https\b/i.test(info.forwardedProto);
  }

  /** The reply to a CORS preflight: headers for an EVA_ALLOWED_ORIGINS origin, else null (403). */
  preflight(info: RequestInfo): Record<string, string> | null {
    if (!hostAllowed(this.hosts, info.host) || originMatch(info.origin, info.host, this.secure(info) ? 'https' : 'http', this.origins) !== 'allowed') return null;
    return {
      'Access-Control-Allow-Origin': info.origin,
      'Access-Control-Allow-Credentials': 'true',
      'Access-Control-Allow-Methods': 'GET, POST',
      // The OpenAI SDKs add their own headers to a WebRTC call's POST (docs/realtime.md).
      'Access-Control-Allow-Headers': 'authorization, content-type, x-openai-agents-sdk, openai-beta, openai-organization, openai-project',
      'Access-Control-Expose-Headers': 'Location',
      'Access-Control-Max-Age': '600',
      Vary: 'Origin',
    };
  }

  check(info: RequestInfo, need: Need): Decision {
    if (!hostAllowed(this.hosts, info.host)) {
      return refuse(403, 'forbidden_host', `Host ${JSON.stringify(info.host.slice(0, 80))} is not a name of this server; add it to EVA_ALLOWED_HOSTS`);
    }
    const headers: Record<string, string> = {};
    // Navigations and asset loads carry no Origin that matters: the page is not a secret, its cookie is.
    if (info.origin !== '' && need !== 'open' && need !== 'page') {
      const match = originMatch(info.origin, info.host, this.secure(info) ? 'https' : 'http', this.origins);
      if (!match) return refuse(403, 'forbidden_origin', `requests from ${JSON.stringify(info.origin.slice(0, 80))} are not accepted; add it to EVA_ALLOWED_ORIGINS`);
      if (match === 'allowed') Object.assign(headers, { 'Access-Control-Allow-Origin': info.origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' });
    }
    const { token: protocolToken, key: protocolKey, answer } = splitProtocols(info.protocol);
    const credential = this.credential(info, protocolToken, protocolKey);
    if (credential === null) return refuse(401, 'unauthorized', 'the credentials given are not valid (wrong key, or an expired token)', need === 'page');
    const client = clientAddress(info.peer, info.forwardedFor, this.config.trustProxy);
    const owner = this.keyRequired ? credential === 'key' : info.origin === '';
    const admitted: Admitted = { ok: true, client, credential, owner, headers, protocol: answer, secure: this.secure(info) };
    if (!this.keyRequired || need === 'open') return admitted;
    if (need === 'key' && credential !== 'key') return refuse(401, 'unauthorized', 'this needs the API key: Authorization: Bearer <EVA_API_KEY>');
    if (credential === 'none') {
      return refuse(401, 'unauthorized', 'EVA_API_KEY is set: send Authorization: Bearer <key>, a token from POST /session-token, or open the page first', need === 'page');
    }
    return admitted;
  }

  /** null = a credential was presented and is wrong (refused, never silently ignored). */
  private credential(info: RequestInfo, protocolToken: string, protocolKey = ''): Credential | null {
    const key = this.config.apiKey;
    const now = this.now();
    if (info.authorization !== '') {
      // An OpenAI-style client secret (`ek_<token>`, POST /v1/realtime/client_secrets) is one of EVA's tokens.
      const secret = withoutClientPrefix(authorizationSecret(info.authorization));
      if (key !== undefined && secret !== '' && safeEqual(secret, key)) return 'key';
      if (secret !== '' && this.signer.verifyToken(secret, now)) return 'token';
      return key === undefined ? 'none' : null;
    }
    if (protocolToken !== '') {
      if (this.signer.verifyToken(protocolToken, now)) return 'token';
      return key === undefined ? 'none' : null;
    }
    protocolKey = withoutClientPrefix(protocolKey);
    if (protocolKey !== '') {
      if (key !== undefined && safeEqual(protocolKey, key)) return 'key';
      if (this.signer.verifyToken(protocolKey, now)) return 'token';
      return key === undefined ? 'none' : null;
    }
    const cookie = cookieValue(info.cookie, this.cookieName);
    if (cookie !== '' && this.signer.verifyToken(cookie, now)) return 'cookie';
    return 'none';
  }

  /**
   * The session a request may use: the one it named when it holds owner rights or when the server made that id;
   * otherwise (absent, made up, or from before this secret) a fresh server-made one. Never a refusal, so a seed
   * client that invents ids still gets answers, with the id to continue in the reply.
   */
  session(requested: string | undefined, owner: boolean): string {
    if (requested !== undefined && (owner || this.signer.isSessionId(requested))) return requested;
    return this.signer.mintSessionId();
  }
}

function withoutClientPrefix(secret: string): string {
  return secret.startsWith('ek_') ? secret.slice(3) : secret;
}

function refuse(status: 401 | 403, code: Refused['code'], message: string, challenge = false): Refused {
  return { ok: false, status, code, message, challenge };
}
