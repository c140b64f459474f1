import t from 'tap';
import dns from 'node:dns';
import { Peer } from './peer.js';
import { unrefWeriftRetransmits } from '../test/helpers/handles.js';

// werift's DTLS retransmission sleeps outlive a closed peer by ~30 s; they must not hold this test's process.
unrefWeriftRetransmits();

t.test("a call looks up no STUN server: werift's stun.l.google.com fallback is removed before gathering", async (t) => {
  const looked: string[] = [];
  const lookup = dns.promises.lookup;
  (dns.promises as { lookup: unknown }).lookup = (host: string, ...rest: unknown[]) => {
    looked.push(host);
    return (lookup as (...a: unknown[]) => unknown)(host, ...rest);
  };
  t.teardown(() => {
    (dns.promises as { lookup: unknown }).lookup = lookup;
  });
  const caller = new Peer({ onAudio() {} });
  const callee = new Peer({ onAudio() {} });
  t.teardown(() => Promise.all([caller.close(), callee.close()]));
  const answer = await callee.answer(await caller.offer());
  await caller.accept(answer);
  await caller.whenConnected;
  t.same(looked, [], 'no name was looked up (werift 0.25 looks up stun.l.google.com four times per call pair without the fix)');
});

t.test("werift carries EVA's patch (patches/): RTP header bits parsed by arithmetic, RFC 3550 NTP timestamps", async (t) => {
  const { RtpHeader, ntpTime } = (await import('werift')) as unknown as {
    RtpHeader: { deSerialize(b: Buffer): { version: number; padding: boolean; extension: boolean; csrcLength: number; marker: boolean; payloadType: number; sequenceNumber: number } };
    ntpTime(): bigint;
  };
  // Every combination of the first two header bytes that werift would accept (version 2, no CSRCs/extension so
  // the rest of the header is fixed), against the bit layout of RFC 3550 §5.1.
  let wrong = 0;
  for (const b0 of [0x80, 0xa0]) {
    for (let b1 = 0; b1 < 256; b1++) {
      const raw = Buffer.alloc(12 + 8);
      raw[0] = b0;
      raw[1] = b1;
      raw.writeUInt16BE(4242, 2);
      const h = RtpHeader.deSerialize(raw);
      if (h.version !== 2 || h.padding !== (b0 === 0xa0) || h.extension || h.csrcLength !== 0 || h.marker !== b1 >= 128 || h.payloadType !== (b1 & 0x7f) || h.sequenceNumber !== 4242) wrong++;
    }
  }
  t.equal(wrong, 0, 'version, padding, marker and payload type read right for all 512 first-byte pairs');
  // The unpatched ntpTime put the decimal digits of the seconds' fraction into the 32-bit fraction field: the
  // timestamp then lagged the wall clock by that fraction (0–1000 ms). Ten readings over 100 ms must each fall
  // between the wall clock read just before and just after it (2 ms either side: Date.now() is whole ms, and
  // ntpTime reads performance.timeOrigin + now(), a clock Node keeps apart from it).
  const NTP_EPOCH_OFFSET_S = 2_208_988_800;
  const outside: string[] = [];
  for (let i = 0; i < 10; i++) {
    const before = Date.now();
    const ntp = ntpTime();
    const after = Date.now();
    const ms = (Number(ntp >> 32n) - NTP_EPOCH_OFFSET_S) * 1000 + (Number(ntp & 0xffff_ffffn) / 2 ** 32) * 1000;
    if (ms < before - 2 || ms > after + 2) outside.push(`${(ms - before).toFixed(2)} ms from ${after - before} ms`);
    await new Promise((r) => setTimeout(r, 11));
  }
  t.same(outside, [], 'every NTP timestamp lies between the wall-clock readings around it');
});
