// Tests are loopback only. werift resolves a STUN server for every peer even when given none: with
// `iceServers: []` (media/peer.ts) werift 0.25 falls back to stun.l.google.com:19302 (lib/index.mjs,
// `applyStunTurnServersFromOptions`), looks it up with `dns.promises.lookup` and sends it a binding request. On a
// machine whose resolver does not answer, a lookup takes the resolver's timeout (5 s here) and the peer's ICE
// gathering waits on it: a call setup in ~30 then took 5 s. Here every such lookup fails at once, as on a machine
// with no network, and is counted.
import dns from 'node:dns';
import { isIP } from 'node:net';

/** Host names a test process tried to resolve (and was refused), with counts. */
export const refusedLookups = new Map<string, number>();

let installed = false;
/** Refuse `dns.promises.lookup` of anything but IP literals and localhost, at once. Idempotent. */
export function keepDnsOffline(): void {
  if (installed) return;
  installed = true;
  const original = dns.promises.lookup.bind(dns.promises);
  const lookup = (host: string, opts?: unknown): Promise<unknown> => {
    if (isIP(host) || host === 'localhost' || host.endsWith('.localhost')) return original(host, opts as dns.LookupOptions);
    refusedLookups.set(host, (refusedLookups.get(host) ?? 0) + 1);
    const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${host} (tests are loopback only)`), { code: 'ENOTFOUND', hostname: host, syscall: 'getaddrinfo' });
    return Promise.reject(err);
  };
  dns.promises.lookup = lookup as typeof dns.promises.lookup;
}
