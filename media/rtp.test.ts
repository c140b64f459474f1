import t from 'tap';
import { FRAME_TICKS, PacketRateCap, RtpReceiveTracker, RtpSequencer, seqDiff } from './rtp.js';

t.test('sequence numbers and timestamps advance per frame and wrap', async (t) => {
  const s = new RtpSequencer(0xfffe, 0xffffffff - FRAME_TICKS + 1);
  const a = s.next(false);
  const b = s.next(false);
  const c = s.next(false);
  t.same([a.sequenceNumber, b.sequenceNumber, c.sequenceNumber], [0xfffe, 0xffff, 0]);
  t.equal(b.timestamp, 0, '32-bit timestamp wraps to 0');
  t.equal(c.timestamp, FRAME_TICKS);
});

t.test('the marker bit is set on the first speech frame after silence only', async (t) => {
  const s = new RtpSequencer(1, 0);
  const marks = [false, false, true, true, true, false, true].map((speech) => s.next(speech).marker);
  t.same(marks, [false, false, true, false, false, false, true]);
});

t.test('skipping slots advances the timestamp but not the sequence number', async (t) => {
  const s = new RtpSequencer(10, 1000);
  s.next(true);
  s.skip(5);
  const h = s.next(true);
  t.equal(h.sequenceNumber, 11);
  t.equal(h.timestamp, 1000 + 6 * FRAME_TICKS);
  t.equal(h.marker, true, 'a skip ends the talkspurt');
});

t.test('seqDiff handles wrap-around both ways', async (t) => {
  t.equal(seqDiff(1, 0xffff), 2);
  t.equal(seqDiff(0xffff, 1), -2);
  t.equal(seqDiff(5, 5), 0);
});

t.test('the receive tracker decodes new packets, drops late and duplicate ones, and counts loss', async (t) => {
  const r = new RtpReceiveTracker();
  const seq = [100, 101, 101, 104, 103, 105];
  const res = seq.map((s) => r.accept(s));
  t.same(res.map((x) => x.arrival), ['first', 'in_order', 'duplicate', 'gap', 'late', 'in_order']);
  t.same(res.map((x) => x.decode), [true, true, false, true, false, true]);
  t.equal(r.lost, 1, '102 lost; 103 arrived late so it is not counted');
  t.equal(r.dropped, 2);
  t.equal(r.received, 4);
});

t.test('a huge jump is a stream reset, not loss', async (t) => {
  const r = new RtpReceiveTracker();
  r.accept(10);
  r.accept(20000);
  t.equal(r.lost, 0);
});

t.test('a repeat of an older packet is a duplicate and does not reduce the loss count', async (t) => {
  const r = new RtpReceiveTracker();
  const res = [10, 11, 14, 12, 12, 11, 15].map((s) => r.accept(s));
  t.same(res.map((x) => x.arrival), ['first', 'in_order', 'gap', 'late', 'duplicate', 'duplicate', 'in_order']);
  t.same(res.map((x) => x.decode), [true, true, true, false, false, false, true]);
  t.equal(r.lost, 1, '13 is still lost: 12 arrived late once, its repeats change nothing');
  t.equal(r.dropped, 3);
});

t.test('packets are tracked across the 16-bit wrap', async (t) => {
  const r = new RtpReceiveTracker();
  const res = [0xfffe, 0xffff, 0, 0xffff, 2, 1].map((s) => r.accept(s));
  t.same(res.map((x) => x.arrival), ['first', 'in_order', 'in_order', 'duplicate', 'gap', 'late']);
  t.equal(r.lost, 0);
});

t.test('a sender that restarts with a lower sequence number is decoded, not dropped as late', async (t) => {
  const r = new RtpReceiveTracker();
  r.accept(30000);
  r.accept(30001);
  const res = [5000, 5001, 5002].map((s) => r.accept(s));
  t.same(res.map((x) => x.arrival), ['reset', 'in_order', 'in_order']);
  t.ok(res.every((x) => x.decode));
  t.equal(r.lost, 0);
});

t.test('the packet-rate cap passes a normal stream and its bursts, drops a flood, and reports once a second', async (t) => {
  const cap = new PacketRateCap(200);
  t.equal(cap.burst, 100);
  // 10 s of 20 ms Opus (50 pps), then 2 s of backlog delivered at once: all pass.
  let now = 0;
  let passed = 0;
  for (let i = 0; i < 500; i++, now += 20) passed += cap.take(now) === 'pass' ? 1 : 0;
  for (let i = 0; i < 100; i++) passed += cap.take(now) === 'pass' ? 1 : 0;
  t.equal(passed, 600, 'nothing dropped');
  // A flood: 2,000 pps for 2 s.
  const decisions: string[] = [];
  for (let i = 0; i < 4000; i++, now += 0.5) decisions.push(cap.take(now));
  const pass = decisions.filter((d) => d === 'pass').length;
  t.ok(pass >= 390 && pass <= 410, `about 200 per second pass (${pass} of 4000)`);
  t.equal(decisions.filter((d) => d === 'drop_report').length, 2, 'one report per second of flood');
  t.equal(cap.dropped, 4000 - pass);
  // After the flood a normal stream passes again.
  now += 1000;
  let after = 0;
  for (let i = 0; i < 50; i++, now += 20) after += cap.take(now) === 'pass' ? 1 : 0;
  t.equal(after, 50);
});
