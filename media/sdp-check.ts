// What an offer must look like before werift sees it, pure. werift throws odd errors (or none) on garbage, and
// builds a transceiver per m-line, so an offer with thousands of m-lines would cost thousands of objects: the
// shape is checked here first, in one linear pass over at most MAX_SDP_BYTES.
//
// The rules (README "Limits"): exactly one audio m-line, offering Opus; optionally one `application` m-line (a
// data channel); nothing else; and `a=group:BUNDLE` naming every m-line's mid, since EVA answers on one
// transport (one ICE and DTLS session per call). Chromium and werift offers always bundle.

/** The signaling frame cap is 128 KiB; an offer is 2-6 KiB. */
export const MAX_SDP_BYTES = 64 * 1024;

export class SdpError extends Error {
  constructor(
    readonly code: 'bad_sdp' | 'no_audio',
    message: string,
  ) {
    super(message);
  }
}

interface Section {
  kind: string;
  mid: string | undefined;
  opus: boolean;
}

/** Throws SdpError (`bad_sdp` naming the rule broken, `no_audio` without Opus audio); returns the SDP. */
export function checkOfferSdp(sdp: unknown): string {
  if (typeof sdp !== 'string' || !sdp.startsWith('v=0')) throw new SdpError('bad_sdp', 'sdp must be an SDP string starting with v=0');
  if (sdp.length > MAX_SDP_BYTES) throw new SdpError('bad_sdp', `sdp is larger than ${MAX_SDP_BYTES / 1024} KiB`);
  const sections: Section[] = [];
  let bundle: string[] | null = null;
  let audio = 0;
  let application = 0;
  for (const raw of sdp.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith('m=')) {
      const kind = line.slice(2, line.indexOf(' ') > 2 ? line.indexOf(' ') : undefined);
      // Stops at the first m-line too many: an offer with thousands of them costs no more than one with three.
      if (kind === 'audio' && ++audio > 1) throw new SdpError('bad_sdp', 'exactly one audio m-line is accepted; the offer has more');
      if (kind === 'application' && ++application > 1) throw new SdpError('bad_sdp', 'at most one application (data channel) m-line is accepted; the offer has more');
      if (sections.length >= 2) throw new SdpError('bad_sdp', 'an offer has one audio m-line and at most one application (data channel) m-line; this one has more m-lines');
      sections.push({ kind, mid: undefined, opus: false });
      continue;
    }
    const current = sections.at(-1);
    if (!current) {
      if (line.startsWith('a=group:BUNDLE')) bundle = line.slice('a=group:BUNDLE'.length).trim().split(/\s+/).filter(Boolean);
    } else if (line.startsWith('a=mid:')) {
      current.mid = line.slice('a=mid:'.length).trim();
    } else if (current.kind === 'audio' && /^a=rtpmap:\d+ opus\/48000/i.test(line)) {
      current.opus = true;
    }
  }
  const audioSection = sections.find((s) => s.kind === 'audio');
  if (!audioSection) throw new SdpError('no_audio', 'the offer has no audio m-line');
  const other = sections.find((s) => s.kind !== 'audio' && s.kind !== 'application');
  if (other) throw new SdpError('bad_sdp', `only one audio m-line and an optional application (data channel) m-line are accepted; the offer has m=${other.kind.slice(0, 20)}`);
  if (!audioSection.opus) throw new SdpError('no_audio', 'the offer does not offer Opus audio');
  if (!bundle) throw new SdpError('bad_sdp', 'BUNDLE is required: the offer has no a=group:BUNDLE line (EVA answers on one transport)');
  for (const s of sections) {
    if (!s.mid) throw new SdpError('bad_sdp', `BUNDLE is required: the ${s.kind} m-line has no a=mid`);
    if (!bundle.includes(s.mid)) throw new SdpError('bad_sdp', `BUNDLE is required: a=group:BUNDLE does not include the ${s.kind} m-line (mid ${s.mid.slice(0, 32)})`);
  }
  return sdp;
}
