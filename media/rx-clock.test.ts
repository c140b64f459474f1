import t from 'tap';
import { blockLoop, countingSocket, readAtLeast, udpSender } from '../test/helpers/stall.js';
import { DTX_ONSET_MS, FILL_FRAME, FILL_SLACK_MS, RxClock, RxFillScheduler, SPEECH_SLACK_MS } from './rx-clock.js';

/** A packet of 20 ms (960 ticks at 48 kHz → 320 samples at 16 kHz) stamped `ts`, handed on at `now`. */
function packet(c: RxClock, ts: number, now: number, quiet = true): number {
  const zeros = c.beforePacket(ts);
  c.afterPacket(ts, 320, now, quiet);
  return zeros;
}

/**
 * The end of a talkspurt as libopus sends it before DTX: 10 quiet packets 20 ms apart, the last stamped `ts` at
 * `now` (ts − 960·k at now − 20·k). The clock is then where a caller in DTX leaves it.
 */
function hangover(c: RxClock, ts: number, now: number): void {
  for (let k = 9; k >= 0; k--) packet(c, (ts - 960 * k) >>> 0, now - 20 * k);
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
  hangover(c, 1000, 0);
  t.equal(c.slackMs, FILL_SLACK_MS, `after ${DTX_ONSET_MS} ms of quiet packets the caller may be in DTX: the short slack`);
  const at0 = c.pos;
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
  t.equal(before + zeros, at0 + 19 * 320, 'the packet lands exactly where its timestamp says');
  t.equal(c.pos, at0 + 20 * 320);
  t.equal(c.filled, 19 * 320, '19 frames of silence were filled, none counted twice');
});

t.test('a packet later than the slack is handed on whole; the stream runs ahead by that much and no more', async (t) => {
  const c = new RxClock();
  hangover(c, 0, 0);
  const at0 = c.pos;
  // The next packet (ts 960, due at 20 ms) comes at 70 ms: the filler has already handed on its 20 ms and the next.
  t.equal(c.due(40), 320, 'its slot was filled at 40 ms (20 ms late)');
  t.equal(c.due(60), 320);
  t.equal(packet(c, 960, 70), 0, 'nothing more to fill before it');
  t.equal(c.pos, at0 + 3 * 320, 'its audio was kept: 40 ms ahead of the RTP clock');
  // Then on time again: no more filling, the lead stays as it was.
  t.equal(packet(c, 1920, 80), 0);
  t.equal(c.due(95), 0);
  t.equal(c.pos, at0 + 4 * 320);
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
  hangover(c, 0, 0);
  const at0 = c.pos;
  t.equal(c.due(40), 320);
  t.equal(c.due(60), 320, 'two frames filled while the next packets were late');
  t.ok(c.covered(960, 320), 'the packet stamped 960 lies wholly in filled time');
  c.skipPacket(960, 320, 70);
  t.ok(c.covered(1920, 320), 'and so does the next');
  c.skipPacket(1920, 320, 71);
  t.notOk(c.covered(2880, 320), 'the one after is new time');
  t.equal(packet(c, 2880, 72), 0);
  t.equal(c.pos, at0 + 3 * 320, 'no lead: silence was not counted twice');
  t.equal(c.slackMs, FILL_SLACK_MS, 'skipped quiet packets count in the quiet run');
});

t.test('while the caller talks, a late packet is jitter or a stall, not DTX: nothing is filled before SPEECH_SLACK_MS', async (t) => {
  const c = new RxClock();
  for (let i = 0; i < 5; i++) packet(c, i * 960, i * 20, false);
  t.equal(c.slackMs, SPEECH_SLACK_MS, 'speech: the long slack');
  const at0 = c.pos;
  // The next packet (due at 100 ms) comes 150 ms late with the two after it, as after a stall of the sender.
  for (let now = 100; now < 250; now += 20) t.equal(c.due(now), 0, `nothing filled at ${now} ms`);
  t.equal(packet(c, 5 * 960, 250, false), 0);
  t.equal(packet(c, 6 * 960, 251, false), 0);
  t.equal(packet(c, 7 * 960, 252, false), 0);
  t.equal(c.pos, at0 + 3 * 320, 'the speech goes on where its timestamps say: no zeros inside it');
  t.equal(c.filled, 0);
  // A caller that stops dead in mid-word (its packets lost for good) is still filled, SPEECH_SLACK_MS behind.
  t.equal(c.due(252 + SPEECH_SLACK_MS - 1), 0, 'not within SPEECH_SLACK_MS of the last packet');
  t.equal(c.due(252 + SPEECH_SLACK_MS + 200), (200 * 16) / FILL_FRAME * FILL_FRAME, 'then filled up to SPEECH_SLACK_MS behind the caller');
});

t.test('the short slack needs DTX_ONSET_MS of quiet in a row: the first quiet packets after speech keep the long one', async (t) => {
  const c = new RxClock();
  packet(c, 0, 0, false);
  const onset = DTX_ONSET_MS / 20;
  for (let i = 1; i < onset; i++) packet(c, i * 960, i * 20, true);
  t.equal(c.slackMs, SPEECH_SLACK_MS, `${onset - 1} quiet packets: still the long slack`);
  packet(c, onset * 960, onset * 20, true);
  t.equal(c.slackMs, FILL_SLACK_MS, `${onset}: the short one`);
  packet(c, (onset + 1) * 960, (onset + 1) * 20, false);
  t.equal(c.slackMs, SPEECH_SLACK_MS, 'speech again: the long one');
});

t.test("a stall of this process's loop does not fill the time of packets that arrived meanwhile: the tick runs after they are read", async (t) => {
  const sock = await countingSocket();
  // What a call's filler would see at each tick: how long since the last packet was read.
  const seenGaps: number[] = [];
  const s = new RxFillScheduler(() => performance.now(), 20);
  const target = { fillIdle: (now: number) => void seenGaps.push(now - sock.lastArrival) };
  // A packet every 10 ms for 5 s, from a process this loop's stall does not stop.
  const sender = udpSender(sock.port, 10, 5000);
  t.teardown(() => {
    sender.kill();
    s.remove(target);
    sock.close();
  });
  t.ok(await readAtLeast(sock, 10), `the sender's packets arrive (${sock.packets})`);
  s.add(target);
  await new Promise((r) => setTimeout(r, 100));
  seenGaps.length = 0;
  // Blocked for 1 s: the scheduler's interval is overdue when the loop goes on. A tick before the poll phase sees
  // the whole second as a gap; after it, only the sender's own jitter (bounded at half the stall, for a busy box).
  const blockMs = 1000;
  await blockLoop(blockMs, 5);
  await new Promise((r) => setTimeout(r, 100));
  t.ok(seenGaps.length > 0, `the scheduler ticked (${seenGaps.length} times)`);
  const worst = Math.max(...seenGaps);
  t.ok(worst < blockMs / 2, `no tick saw the stall as a gap in the packets (worst ${worst.toFixed(0)} ms since the last one read)`);
});
