// The PeerOptions of one call on this node: the addresses it offers (loopback plus EVA_ICE_HOSTS), the UDP ports it
// may bind (EVA_RTP_PORTS) and the STUN/TURN servers it gathers from (EVA_ICE_SERVERS, with credentials minted
// from EVA_TURN_SECRET). Called once per call, so every call gets its own TURN credential.
import type { PeerOptions } from '../media/peer.js';
import type { EvaConfig } from './config.js';
import { connectionId, iceServersFor } from './turn-credentials.js';

export function peerOptionsFor(config: EvaConfig, workerIndex = 0): PeerOptions {
  const opts: PeerOptions = {};
  if (config.iceHosts.length) opts.additionalHosts = ['127.0.0.1', ...config.iceHosts];
  // In a worker (EVA_WORKERS > 1) config.rtpPorts is already that worker's own slice (rtpSlice, set in main.ts).
  if (config.rtpPorts) opts.portRange = config.rtpPorts;
  // EVA's side of a relayed call: with a TURN server it also offers a relay candidate, so a caller whose own
  // TURN is missing or blocked still meets it there.
  const iceServers = iceServersFor(config.iceServers, config.turnSecret, connectionId(`eva${workerIndex}`));
  if (iceServers.length) opts.iceServers = iceServers;
  return opts;
}

/**
 * Worker `index` of `count`'s part of EVA_RTP_PORTS: consecutive, disjoint slices as even as the range allows,
 * so that no two workers ever bind the same UDP port. The range must hold at least `count` ports.
 */
export function rtpSlice(range: [number, number], index: number, count: number): [number, number] {
  const size = range[1] - range[0] + 1;
  if (!(count >= 1 && index >= 0 && index < count) || size < count) throw new RangeError(`cannot give worker ${index} of ${count} a slice of ${range.join('-')}`);
  const lo = range[0] + Math.floor((index * size) / count);
  const hi = range[0] + Math.floor(((index + 1) * size) / count) - 1;
  return [lo, hi];
}
