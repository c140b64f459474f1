import t from 'tap';
import { framesDue, MAX_CATCH_UP } from './pacer-core.js';
import { OpusDecoder, OpusEncoder } from './opus.js';
import { Pacer, PacerScheduler, type FrameTag } from './pacer.js';
import type { OutgoingHeader } from './rtp.js';

t.test('framesDue counts slots from t0, not ticks', async (t) => {
  t.same(framesDue({ t0: 0, sent: 0 }, 0), { send: 1, skip: 0, nextAt: 20 }, 'the first frame is due at t0');
  t.same(framesDue({ t0: 0, sent: 1 }, 19.9), { send: 0, skip: 0, nextAt: 20 });
  t.same(framesDue({ t0: 0, sent: 1 }, 20), { send: 1, skip: 0, nextAt: 40 });
  t.same(framesDue({ t0: 0, sent: 1 }, 43), { send: 2, skip: 0, nextAt: 60 }, 'a late tick catches up');
  // 1000 ticks that each fire 3 ms late still send exactly one frame per 20 ms slot.
  const c = { t0: 0, sent: 0 };
  for (let slot = 0; slot < 1000; slot++) {
    const d = framesDue(c, slot * 20 + 3);
    c.sent += d.send + d.skip;
  }
  t.equal(c.sent, 1000, 'no drift');
});

t.test('after a long stall it sends a bounded burst and skips the rest', async (t) => {
  const d = framesDue({ t0: 0, sent: 1 }, 500);
  t.equal(d.send, MAX_CATCH_UP);
  t.equal(d.skip, 25 - MAX_CATCH_UP);
  t.equal(d.nextAt, 520);
});

/** A scheduler on a fake clock, driven by hand. */
function fakeScheduler() {
  let now = 0;
  const sched = new PacerScheduler(() => now);
  return {
    sched,
    advance(ms: number, pacer: Pacer) {
      const end = now + ms;
      while (pacer.nextAt <= end) {
        now = pacer.nextAt;
        pacer.tick(now);
      }
      now = end;
    },
  };
}

function setup(opts: { dtx?: boolean } = {}) {
  const enc = new OpusEncoder({ sampleRate: 24000 });
  const sent: { payload: Buffer; header: OutgoingHeader }[] = [];
  const played: FrameTag[] = [];
  const log: string[] = [];
  const { sched, advance } = fakeScheduler();
  const pacer = new Pacer({
    encoder: enc,
    scheduler: sched,
    maxQueueMs: 200,
    dtx: opts.dtx,
    send: (payload, header) => sent.push({ payload, header }),
    events: { talkStart: (at) => log.push(`start@${at}`), talkEnd: (at) => log.push(`end@${at}`), played: (tag) => played.push(tag) },
  });
  return { enc, pacer, sent, played, log, advance: (ms: number) => advance(ms, pacer), sched };
}

t.test('an idle pacer sends one silence frame every 20 ms with continuous RTP numbering', async (t) => {
  const { enc, pacer, sent, advance } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  advance(1000);
  t.equal(sent.length, 51, 'frames at 0, 20, …, 1000 ms');
  for (let i = 1; i < sent.length; i++) {
    t.equal((sent[i]!.header.sequenceNumber - sent[i - 1]!.header.sequenceNumber) & 0xffff, 1);
    t.equal((sent[i]!.header.timestamp - sent[i - 1]!.header.timestamp) >>> 0, 960);
  }
  t.notOk(sent.some((s) => s.header.marker), 'silence never sets the marker');
  const dec = new OpusDecoder();
  const pcm = dec.decode(sent[10]!.payload);
  dec.close();
  t.ok(pcm.every((v) => Math.abs(v) < 50), 'the silence frame decodes to silence');
});

t.test('with DTX a quiet pacer sends one silence frame every 400 ms; talkspurts stay continuous and open with the marker', async (t) => {
  const { enc, pacer, sent, played, advance } = setup({ dtx: true });
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  advance(1000);
  t.same(sent.map((s) => s.header.timestamp - sent[0]!.header.timestamp), [0, 19200, 38400], 'silence at 0, 400 and 800 ms: the timestamp follows the clock');
  t.same(sent.map((s) => (s.header.sequenceNumber - sent[0]!.header.sequenceNumber) & 0xffff), [0, 1, 2], 'sequence numbers stay consecutive (nothing looks lost)');
  t.equal(pacer.stats.dtxSlots, 48, 'the other 48 slots sent nothing');
  const before = sent.length;
  pacer.enqueue(new Int16Array(24000 * 0.1).map((_, i) => Math.round(6000 * Math.sin(i / 5))), 3); // 5 frames
  pacer.flush();
  await new Promise((r) => setImmediate(r)); // the reply starts at once
  advance(400);
  const spurt = sent.slice(before);
  t.ok(spurt[0]!.header.marker, 'the first speech frame after DTX carries the marker');
  t.equal(((spurt[0]!.header.timestamp - sent[before - 1]!.header.timestamp) >>> 0) % 960, 0, 'on the 20 ms timestamp grid');
  t.same(played.map((p) => p.endMs), [20, 40, 60, 80, 100], 'every speech frame played');
  // 5 speech frames and 3 encoded zero frames (the codec's tail), every 20 ms; then DTX again from the next slot.
  const run = spurt.slice(0, 8);
  for (let i = 1; i < run.length; i++) t.equal((run[i]!.header.timestamp - run[i - 1]!.header.timestamp) >>> 0, 960, `frame ${i} of the talkspurt and its tail 20 ms after the one before`);
  t.equal(spurt.length, 9, 'then one silence packet opens the DTX period and the rest of the 400 ms sends nothing');
  const dec = new OpusDecoder();
  const pcm = dec.decode(spurt[8]!.payload);
  dec.close();
  t.ok(pcm.every((v) => Math.abs(v) < 50), 'the keep-alive frame decodes to silence');
});

t.test('queued speech is sent in order, tagged, with talkStart/talkEnd and the marker on the first frame', async (t) => {
  const { enc, pacer, sent, played, log, advance } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  advance(40); // 3 silence frames (0, 20, 40)
  const tone = new Int16Array(24000 * 0.1).map((_, i) => Math.round(6000 * Math.sin(i / 5)));
  pacer.enqueue(tone, 7); // 100 ms = 5 frames
  pacer.flush();
  t.equal(pacer.queuedMs, 100);
  t.ok(pacer.speaking);
  advance(200);
  const speech = sent.slice(3, 8);
  t.ok(speech[0]!.header.marker, 'marker on the first speech frame');
  t.notOk(speech.slice(1).some((s) => s.header.marker));
  t.same(played.map((p) => p.segment), [7, 7, 7, 7, 7]);
  t.same(played.map((p) => p.endMs), [20, 40, 60, 80, 100]);
  t.same(log, ['start@60', 'end@160'], 'talk starts with the first speech frame and ends with the next silence slot');
  t.notOk(pacer.speaking);
});

t.test('a reply queued between slots starts at once, and the slot grid follows it', async (t) => {
  const { enc, pacer, sent, log, advance } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  advance(47); // silence at 0, 20, 40; now 47, next slot 60
  pacer.enqueue(new Int16Array(24000 * 0.06).fill(3000), 1); // 3 frames
  await new Promise((r) => setImmediate(r));
  t.same(log, ['start@47'], 'the first reply frame left at 47, not at the 60 ms slot');
  t.equal(sent.length, 4);
  t.ok(sent[3]!.header.marker, 'it opens the talkspurt');
  t.equal((sent[3]!.header.timestamp - sent[2]!.header.timestamp) >>> 0, 960, 'RTP timestamps stay continuous (20 ms on the 48 kHz Opus clock)');
  t.equal(pacer.nextAt, 67, 'later frames follow every 20 ms from there');
  advance(60);
  t.same(log, ['start@47', 'end@107']);
});

t.test('a partial frame is padded on flush and tagged with the true segment length', async (t) => {
  const { enc, pacer, played, advance } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  pacer.enqueue(new Int16Array(600).fill(1000), 1); // 25 ms
  pacer.flush();
  advance(100);
  t.same(played, [{ segment: 1, endMs: 20 }, { segment: 1, endMs: 25 }]);
});

t.test('clear() drops the queue at once and the next slot is silence', async (t) => {
  const { enc, pacer, sent, advance, log } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  pacer.enqueue(new Int16Array(24000).fill(3000), 1); // 1 s
  advance(60);
  const before = sent.length;
  const dropped = pacer.clear();
  t.ok(dropped >= 900, `dropped ${dropped} ms`);
  advance(20);
  t.equal(sent.length, before + 1);
  t.same(log, ['start@0', 'end@80']);
});

t.test('hold() pauses a reply without dropping it: silence goes out, nothing is played, resume goes on', async (t) => {
  const { enc, pacer, sent, advance, log, played } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  pacer.enqueue(new Int16Array(4800).fill(3000), 1); // 200 ms
  advance(60);
  const playedBefore = played.length;
  pacer.hold(true);
  const queued = pacer.queuedMs;
  advance(200);
  t.equal(pacer.queuedMs, queued, 'nothing is dropped or played while held');
  t.equal(played.length, playedBefore, 'no frame is tagged played while held');
  t.ok(pacer.speaking, 'still speaking: the reply is only paused');
  t.ok(sent.slice(-10).every((p) => !p.header.marker), 'the held slots carry silence packets');
  pacer.hold(false);
  advance(300);
  t.equal(pacer.queuedMs, 0, 'the rest plays after the resume');
  t.equal(played.at(-1)?.endMs, 200, 'up to the end of the segment');
  t.equal(log.filter((l) => l.startsWith('end')).length, 1, 'one talkspurt: the hold did not end it');
});

t.test('writers wait for room above maxQueueMs and are released as frames go out, or by clear/close', async (t) => {
  const { enc, pacer, advance } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  pacer.enqueue(new Int16Array(24000 * 0.3), 1); // 300 ms > 200 ms cap
  let released = false;
  const p = pacer.waitForRoom().then(() => { released = true; });
  await Promise.resolve();
  t.notOk(released, 'blocked while over the cap');
  advance(120);
  await p;
  t.ok(released, 'released once below the cap');
  pacer.enqueue(new Int16Array(24000 * 0.3), 2);
  const q = pacer.waitForRoom();
  pacer.close();
  await q;
  t.pass('close releases waiters');
});

t.test('a stall skips slots: timestamps jump with the clock and stale audio is dropped', async (t) => {
  const { enc, pacer, sent, sched } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  pacer.tick(0);
  pacer.enqueue(new Int16Array(24000).fill(2000), 1); // 50 frames
  pacer.tick(1000); // 49 slots overdue: send MAX_CATCH_UP, skip the rest
  t.equal(sent.length, 1 + MAX_CATCH_UP);
  t.equal(pacer.stats.skipped, 50 - MAX_CATCH_UP);
  t.equal((sent.at(-1)!.header.timestamp - sent[0]!.header.timestamp) >>> 0, 960 * 50, 'the newest frame carries the timestamp of now');
  t.ok(pacer.queuedMs <= 1000 - MAX_CATCH_UP * 20, 'skipped slots took their audio with them');
  t.equal(sched.size, 1);
  pacer.close();
  t.equal(sched.size, 0, 'close removes it from the scheduler');
});

t.test('a clip whose end falls in a stall is still reported played to its end', async (t) => {
  const { enc, pacer, played } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  pacer.tick(0);
  pacer.enqueue(new Int16Array(24000 * 0.2).fill(2000), 7); // 10 frames, 200 ms
  pacer.flush();
  pacer.tick(1000); // every one of them overdue: some sent, the rest skipped
  t.ok(pacer.stats.skipped > 0, 'the stall skipped frames of the clip');
  t.equal(played.at(-1)?.segment, 7);
  t.equal(played.at(-1)?.endMs, 200, 'the clip’s last position was reported, though its frame was dropped');
});

t.test('silence after speech decodes to silence, even when speech was queued before the first tick', async (t) => {
  const { enc, pacer, sent, advance } = setup();
  const dec = new OpusDecoder(24000);
  t.teardown(() => { pacer.close(); enc.close(); dec.close(); });
  const loud = Int16Array.from({ length: 24000 * 0.2 }, (_, i) => Math.round(12000 * Math.sin(i / 3)));
  pacer.enqueue(loud, 1);
  pacer.flush();
  pacer.start();
  advance(1000);
  const levels = sent.map((s) => {
    const pcm = dec.decode(s.payload);
    let e = 0;
    for (const v of pcm) e += v * v;
    return Math.sqrt(e / pcm.length);
  });
  t.ok(levels.slice(0, 10).every((l) => l > 1000), 'speech frames are loud');
  t.ok(levels.slice(20).every((l) => l < 30), `silence frames are silent (max ${Math.max(...levels.slice(20)).toFixed(1)})`);
});

t.test('the shared scheduler serves the pacers due within its lookahead in one go, each at its own slot', async (t) => {
  const sched = new PacerScheduler(() => 0);
  const encs: OpusEncoder[] = [];
  const sent: { pacer: number; at: number }[] = [];
  const pacers = Array.from({ length: 10 }, (_, i) => {
    const enc = new OpusEncoder({ sampleRate: 24000 });
    encs.push(enc);
    let at = 0;
    const p = new Pacer({ encoder: enc, scheduler: sched, send: () => void sent.push({ pacer: i, at }), now: () => at });
    p.start();
    // Ten calls whose slots fall 2 ms apart (phases 0, 2, … 18 ms).
    (p as unknown as { clock: { t0: number; sent: number } }).clock = { t0: i * 2, sent: 0 };
    p.nextAt = i * 2;
    const tick = p.tick.bind(p);
    p.tick = (now: number) => ((at = now), tick(now));
    return p;
  });
  t.teardown(() => {
    for (const p of pacers) p.close();
    for (const e of encs) e.close();
  });
  // Drive it as its timer would: fire at the earliest slot, serve, repeat, for 200 ms.
  let fires = 0;
  for (let now = 0; now < 200; ) {
    sched.runDue(now);
    fires++;
    now = Math.min(...pacers.map((p) => p.nextAt));
  }
  const early = sent.filter((s) => s.at < 200); // the last callback may serve slots just past 200
  t.equal(early.length, 100, 'every pacer sent one frame per 20 ms');
  t.ok(fires <= 40, `${fires} timer callbacks for 100 frames (one per pacer slot would be 100)`);
  for (let i = 0; i < 10; i++) {
    const mine = early.filter((s) => s.pacer === i).map((s) => s.at);
    t.same(mine, Array.from({ length: 10 }, (_, k) => i * 2 + k * 20), `pacer ${i} sent at its own slots, none late`);
  }
});

t.test('more audio than the queue bound at once: every frame is played, in order, with its tag', async (t) => {
  // maxQueueMs 200 in setup(): the ring starts with 10 + 8 slots; 1 s is 50 frames, so it has to grow twice.
  const { enc, pacer, sent, played, advance } = setup();
  t.teardown(() => { pacer.close(); enc.close(); });
  pacer.start();
  advance(20);
  const before = sent.length;
  // Each 20 ms frame a 600 Hz tone whose amplitude names it (frame k at 200 + 200 k): decoded, the order shows.
  const pcm = new Int16Array(24000).map((_, i) => Math.round((200 + 200 * Math.floor(i / 480)) * Math.sin((2 * Math.PI * 600 * i) / 24000)));
  pacer.enqueue(pcm.subarray(0, 7000), 1);
  pacer.enqueue(pcm.subarray(7000), 1);
  pacer.flush();
  t.equal(pacer.queuedMs, 1000);
  advance(1200);
  t.same(played.map((p) => p.endMs), Array.from({ length: 50 }, (_, k) => (k + 1) * 20), 'all 50 tags, in order');
  const dec = new OpusDecoder();
  const levels = sent.slice(before, before + 50).map((s) => {
    const out = dec.decode(s.payload);
    return Math.sqrt(out.reduce((a, v) => a + v * v, 0) / out.length);
  });
  dec.close();
  // The codec smooths the steps; what matters is that the level climbs frame by frame, never back.
  const rising = levels.slice(5).every((v, k) => v > levels[k + 4]!);
  t.ok(rising, `decoded levels rise frame after frame (${levels.slice(0, 6).map((v) => v.toFixed(0)).join(', ')} …)`);
});
