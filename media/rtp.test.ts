import t from 'tap';
import { FRAME_TICKS, RtpReceiveTracker, RtpSequencer, seqDiff } from './rtp.js';

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
