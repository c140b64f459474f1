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
