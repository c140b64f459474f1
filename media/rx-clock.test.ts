import t from 'tap';
import { FILL_FRAME, FILL_SLACK_MS, RxClock, RxFillScheduler } from './rx-clock.js';

/** A packet of 20 ms (960 ticks at 48 kHz → 320 samples at 16 kHz) stamped `ts`, handed on at `now`. */
function packet(c: RxClock, ts: number, now: number): number {
  const zeros = c.beforePacket(ts);
  c.afterPacket(ts, 320, now);
  return zeros;
}

t.test('a continuous stream fills nothing, however the ticks fall', async (t) => {
  const c = new RxClock();
  t.equal(c.due(1000), 0, 'nothing before the first packet');
  let ts = 0xffff_f000; // wraps past 2^32 on the way
  for (let i = 0; i < 100; i++) {
    const now = i * 20 + (i % 3) * 4; // ±4 ms of jitter
    t.equal(packet(c, ts, now), 0);
    t.equal(c.due(now + 17), 0);
    ts = (ts + 960) >>> 0;
  }
  t.equal(c.pos, 100 * 320);
  t.equal(c.filled, 0);
});

t.test('DTX: the quiet the caller did not send is handed on as it becomes due, and the next packet finds its place', async (t) => {
  const c = new RxClock();
  packet(c, 1000, 0);
  const due: number[] = [];
  // No packet for 400 ms; the scheduler ticks every 20 ms.
  for (let now = 20; now < 400; now += 20) due.push(c.due(now));
  t.equal(due.slice(0, 1).reduce((a, b) => a + b, 0), 0, 'nothing while the next packet could still come (slack)');
  const filledBy = (ms: number): number => due.slice(0, ms / 20).reduce((a, b) => a + b, 0);
  t.ok(due.every((n) => n % FILL_FRAME === 0), 'in whole 20 ms frames');
  t.equal(filledBy(380), Math.floor((380 - FILL_SLACK_MS) / 20) * FILL_FRAME, 'by 380 ms: the 18 frames up to FILL_SLACK_MS behind the caller');
  // The refresh packet 400 ms after the first (timestamp +19200): what is missing up to it goes on first.
  const before = c.pos;
  const zeros = packet(c, 1000 + 19200, 400);
  t.equal(before + zeros, 20 * 320, 'the packet lands exactly where its timestamp says');
  t.equal(c.pos, 21 * 320);
  t.equal(c.filled, 19 * 320, '19 frames of silence were filled, none counted twice');
});

t.test('a packet later than the slack is handed on whole; the stream runs ahead by that much and no more', async (t) => {
  const c = new RxClock();
  packet(c, 0, 0);
  // The next packet (ts 960, due at 20 ms) comes at 70 ms: the filler has already handed on its 20 ms and the next.
  t.equal(c.due(40), 320, 'its slot was filled at 40 ms (20 ms late)');
  t.equal(c.due(60), 320);
  t.equal(packet(c, 960, 70), 0, 'nothing more to fill before it');
  t.equal(c.pos, 4 * 320, 'its audio was kept: 40 ms ahead of the RTP clock');
  // Then on time again: no more filling, the lead stays as it was.
  t.equal(packet(c, 1920, 80), 0);
  t.equal(c.due(95), 0);
  t.equal(c.pos, 5 * 320);
});

t.test('a timestamp that jumps back or by more than 10 s is a new stream: no fill', async (t) => {
  const c = new RxClock();
  packet(c, 50_000_000, 0);
  t.equal(packet(c, 1000, 20), 0, 'backwards');
  t.equal(packet(c, (1000 + 48000 * 60) >>> 0, 40), 0, 'a minute forwards');
  t.equal(c.filled, 0);
});

t.test('the shared scheduler ticks every target, survives a throw, and stops when the last one leaves', async (t) => {
  let now = 0;
  const s = new RxFillScheduler(() => now, 5);
  const seen: number[] = [];
  const bad = { fillIdle: () => { throw new Error('boom'); } };
  const good = { fillIdle: (n: number) => void seen.push(n) };
  const warnings: string[] = [];
  const onWarn = (w: Error): void => void warnings.push(w.message);
  process.on('warning', onWarn);
  t.teardown(() => process.off('warning', onWarn));
  s.add(bad);
  s.add(good);
  now = 7;
  s.tick();
  t.same(seen, [7], 'the good target ran although the first threw');
  await new Promise((r) => setImmediate(r));
  t.ok(warnings.some((w) => w.includes('boom')), 'the failure became a warning');
  s.remove(bad);
  s.remove(good);
  t.equal(s.size, 0);
});

t.test('a late packet whose time was already filled is covered; skipping it keeps the stream on the RTP clock', async (t) => {
  const c = new RxClock();
  packet(c, 0, 0);
  t.equal(c.due(40), 320);
  t.equal(c.due(60), 320, 'two frames filled while the next packets were late');
  t.ok(c.covered(960, 320), 'the packet stamped 960 lies wholly in filled time');
  c.skipPacket(960, 320, 70);
  t.ok(c.covered(1920, 320), 'and so does the next');
  c.skipPacket(1920, 320, 71);
  t.notOk(c.covered(2880, 320), 'the one after is new time');
  t.equal(packet(c, 2880, 72), 0);
  t.equal(c.pos, 4 * 320, 'no lead: silence was not counted twice');
});
