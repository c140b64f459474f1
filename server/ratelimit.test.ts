import t from 'tap';
import { RateLimiter, TEXT_API_LIMIT, rateLimitedError } from './ratelimit.js';

function fakeClock(start = 0): { now: () => number; advance(ms: number): void } {
  let at = start;
  return { now: () => at, advance: (ms) => void (at += ms) };
}

t.test('a fresh client gets its burst, then is refused with the time until the next token', async (t) => {
  const clock = fakeClock();
  const rl = new RateLimiter({ ...TEXT_API_LIMIT, now: clock.now });
  for (let i = 0; i < 20; i++) t.same(rl.take('1.2.3.4'), { ok: true, retryAfterMs: 0 }, `request ${i + 1} of the burst`);
  t.same(rl.take('1.2.3.4'), { ok: false, retryAfterMs: 100 }, '10/s: the next token is 100 ms away');
  clock.advance(40);
  t.same(rl.take('1.2.3.4'), { ok: false, retryAfterMs: 60 });
  clock.advance(60);
  t.equal(rl.take('1.2.3.4').ok, true, 'one token after 100 ms');
  t.equal(rl.take('1.2.3.4').ok, false, 'and only one');
});

t.test('clients are limited independently', async (t) => {
  const clock = fakeClock();
  const rl = new RateLimiter({ ratePerSec: 1, burst: 2, now: clock.now });
  t.ok(rl.take('a').ok);
  t.ok(rl.take('a').ok);
  t.notOk(rl.take('a').ok);
  t.ok(rl.take('b').ok, 'b is not affected by a');
});

t.test('the sustained rate is honoured and the bucket never holds more than the burst', async (t) => {
  const clock = fakeClock();
  const rl = new RateLimiter({ ratePerSec: 10, burst: 20, now: clock.now });
  let allowed = 0;
  // 10 s of a client asking every 10 ms (100/s): burst + 10/s.
  for (let i = 0; i < 1000; i++) {
    if (rl.take('greedy').ok) allowed++;
    clock.advance(10);
  }
  t.ok(allowed >= 119 && allowed <= 121, `${allowed} allowed ≈ 20 + 10 × 10 s`);
  clock.advance(3_600_000);
  let burst = 0;
  while (rl.take('greedy').ok) burst++;
  t.equal(burst, 20, 'an hour idle refills to the burst, not beyond');
});

t.test('idle keys are forgotten and the number of keys is capped', async (t) => {
  const clock = fakeClock();
  const rl = new RateLimiter({ ratePerSec: 10, burst: 20, maxKeys: 100, now: clock.now });
  for (let i = 0; i < 50; i++) rl.take(`10.0.0.${i}`);
  t.equal(rl.size, 50);
  clock.advance(2000); // 20 tokens at 10/s: full again, so nothing to remember
  rl.take('fresh');
  t.equal(rl.size, 1, 'buckets refilled by idleness are dropped');

  for (let i = 0; i < 1000; i++) rl.take(`flood-${i}`);
  t.equal(rl.size, 100, 'a flood of new keys stays within maxKeys');

  for (let i = 0; i < 25; i++) rl.take('busy');
  for (let i = 0; i < 200; i++) rl.take(`flood2-${i}`);
  t.equal(rl.size, 100);
  rl.clear();
  t.equal(rl.size, 0);
});

t.test('a recently used key survives eviction of older ones', async (t) => {
  const clock = fakeClock();
  const rl = new RateLimiter({ ratePerSec: 1, burst: 1, maxKeys: 3, now: clock.now });
  rl.take('a');
  rl.take('b');
  rl.take('c');
  t.equal(rl.take('a').ok, false, 'a is limited (and now most recent)');
  rl.take('d'); // evicts b, the least recently used
  t.equal(rl.take('a').ok, false, 'a is still remembered and still limited');
  t.equal(rl.take('b').ok, true, 'b was evicted, so it starts afresh');
});

t.test('bad options are refused at construction', async (t) => {
  t.throws(() => new RateLimiter({ ratePerSec: 0, burst: 1 }), RangeError);
  t.throws(() => new RateLimiter({ ratePerSec: 1, burst: 0 }), RangeError);
  t.throws(() => new RateLimiter({ ratePerSec: 1, burst: 1, maxKeys: 0 }), RangeError);
  t.doesNotThrow(() => new RateLimiter(), 'the default is the text API limit');
});

t.test('the refusal error is rate_limited with status 429 and retryable', async (t) => {
  const err = rateLimitedError(250);
  t.equal(err.code, 'rate_limited');
  t.equal(err.status, 429);
  t.equal(err.retryable, true);
  t.match(err.message, /retry in 250 ms/);
});
