import t from 'tap';
import { GapHistogram, StallLog, cpuPercent, idleLagOffset, parseCpuStat, parseLagQuantiles, parseProcStat, parseRssMb, parseWorkerLag, rampLevels, splitGaps, stealPercent, stepProblem } from './load.js';

t.test('the server lag quantiles come from EVA’s Prometheus text, in ms', async (t) => {
  const text = [
    '# HELP eva_event_loop_lag_seconds Event-loop delay since the previous scrape, by quantile (1 = the maximum).',
    '# TYPE eva_event_loop_lag_seconds gauge',
    'eva_event_loop_lag_seconds{quantile="0.5"} 0.0101',
    'eva_event_loop_lag_seconds{quantile="0.99"} 0.0123',
    'eva_event_loop_lag_seconds{quantile="1"} 0.05',
    'eva_calls_open 3',
  ].join('\n');
  const q = parseLagQuantiles(text);
  t.equal(Math.round(q['0.99']! * 10) / 10, 12.3);
  t.equal(q['1'], 50);
  t.same(parseLagQuantiles('eva_calls_open 3\n'), {});
});

t.test('with EVA_WORKERS > 1 each worker\'s lag is read apart, and the step is judged by the worst', async (t) => {
  const text = [
    '# TYPE eva_event_loop_lag_seconds gauge',
    'eva_event_loop_lag_seconds{quantile="0.99",worker="0"} 0.004',
    'eva_event_loop_lag_seconds{quantile="1",worker="0"} 0.03',
    'eva_event_loop_lag_seconds{quantile="0.99",worker="1"} 0.025',
    'eva_event_loop_lag_seconds{quantile="1",worker="1"} 0.02',
  ].join('\n');
  t.same(parseWorkerLag(text), { '0': { '0.99': 4, '1': 30 }, '1': { '0.99': 25, '1': 20 } });
  t.same(parseLagQuantiles(text), { '0.99': 25, '1': 30 }, 'the worst worker per quantile');
  t.same(Object.keys(parseWorkerLag('eva_event_loop_lag_seconds{quantile="0.5"} 0.01\n')), [''], 'one process: no worker label');
});

t.test('/proc readings: utime + stime ticks (names with spaces and parentheses) and VmRSS', async (t) => {
  const stat = '1234 (node (eva) x) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 11 0 100 1000000 5000 18446744073709551615';
  t.equal(parseProcStat(stat), 300);
  t.equal(parseRssMb('Name:\tnode\nVmRSS:\t  204800 kB\nVmSwap:\t0 kB\n'), 200);
  t.equal(parseRssMb('Name:\tnode\n'), undefined);
  t.equal(cpuPercent(100, 150, 1000), 50, '50 ticks of 10 ms in 1 s = half a core');
  t.equal(cpuPercent(0, 10, 0), 0);
});

t.test('a step fails on lag over the limit, underruns, drops or calls that did not connect', async (t) => {
  const ok = { calls: 10, connected: 10, dropped: 0, underruns: 0, lagP99Ms: 12, jitterP99Ms: 3 };
  t.equal(stepProblem(ok), undefined);
  t.match(stepProblem({ ...ok, lagP99Ms: 25 }), /p99 event-loop lag 25\.0 ms > 20 ms/);
  t.match(stepProblem({ ...ok, lagP99Ms: undefined, jitterP99Ms: 30 }), /30\.0 ms > 20 ms/, 'client jitter stands in without /metrics');
  t.match(stepProblem({ ...ok, underruns: 2 }), /2 audio underruns/);
  t.match(stepProblem({ ...ok, connected: 8 }), /2 of 10 calls did not connect/);
  t.match(stepProblem({ ...ok, dropped: 1 }), /EVA ended 1 calls/);
});

t.test('the ramp doubles up to the maximum', async (t) => {
  t.same(rampLevels(10, 80), [10, 20, 40, 80]);
  t.same(rampLevels(10, 100), [10, 20, 40, 80, 100]);
  t.same(rampLevels(4, 4), [4]);
});

t.test('the gap histogram gives nearest-rank percentiles in 1 ms buckets and merges', async (t) => {
  const h = new GapHistogram();
  for (let i = 0; i < 98; i++) h.add(20);
  h.add(45);
  h.add(3000);
  t.equal(h.percentile(50), 20);
  t.equal(h.percentile(99), 45);
  t.equal(h.percentile(100), 2000, 'clamped at 2 s');
  const m = new GapHistogram();
  m.merge({ counts: Array.from(h.counts), total: h.total });
  t.equal(m.total, 100);
  t.equal(new GapHistogram().percentile(99), 0);
});

t.test('an idle reading of ~10 ms is Node’s sampling interval and is subtracted', async (t) => {
  t.equal(idleLagOffset(10.1), 10);
  t.equal(idleLagOffset(0.2), 0);
  t.equal(idleLagOffset(undefined), 0);
  t.equal(idleLagOffset(30), 0, 'a busy idle reading is not an offset');
});

t.test('a ramp by steps instead of doublings', async (t) => {
  t.same(rampLevels(10, 60, 10), [10, 20, 30, 40, 50, 60]);
  t.same(rampLevels(10, 45, 10), [10, 20, 30, 40, 45], 'the maximum closes the ramp');
  t.same(rampLevels(10, 80), [10, 20, 40, 80], 'doubling without a step');
});

t.test("the clients' own stalls: a late tick marks the time since the previous one, less a tick, as stalled", async (t) => {
  const log = new StallLog(10, 1000, 0);
  for (let at = 10; at <= 100; at += 10) log.tick(at); // on time: nothing stalled
  t.equal(log.overlap(0, 100), 0);
  log.tick(180); // 80 ms after the previous tick: 110–180 stalled
  t.equal(log.overlap(0, 1000), 70);
  t.equal(log.overlap(150, 200), 30, 'only the part inside the asked span');
  log.tick(195); // 15 ms late is within two ticks: not a stall
  t.equal(log.overlap(0, 1000), 70);
  log.tick(2000); // a stall at 205-2000; the one at 110-180 ended more than 1 s before: forgotten
  t.equal(log.overlap(0, 200), 0);
  t.equal(log.overlap(1900, 2000), 100);
});

t.test("a gap is EVA's underrun only when it is still over the limit with the clients' stall inside it taken out", async (t) => {
  const log = new StallLog(10, 60_000, 0);
  for (let at = 10; at <= 1000; at += 10) log.tick(at);
  log.tick(1100); // clients stalled 1010–1100
  const gaps = [
    { endMs: 500, gapMs: 90 }, // no client stall inside: EVA's
    { endMs: 1105, gapMs: 100 }, // 90 ms of it the clients' stall: theirs
    { endMs: 1100, gapMs: 160 }, // 940–1100: 90 ms stalled, 70 ms left over the limit: EVA's
    { endMs: 300, gapMs: 40 }, // under the limit: no underrun at all
  ];
  t.same(splitGaps(gaps, log, 60), { eva: 2, client: 1 });
  t.same(splitGaps([], log, 60), { eva: 0, client: 0 });
});

t.test('stolen CPU: the steal ticks of /proc/stat over all ticks between two readings', async (t) => {
  // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user and nice already)
  const a = parseCpuStat('cpu  1000 10 200 5000 20 0 10 60 40 0\ncpu0 500 5 100 2500 10 0 5 30 20 0\nintr 1 2 3\n');
  const b = parseCpuStat('cpu  1300 10 260 5340 20 0 10 160 90 0\ncpu0 650 5 130 2650 10 0 5 80 45 0\n');
  t.same(a, { total: 6300, steal: 60 }, 'the aggregate line, eight values, guest not counted twice');
  t.equal(stealPercent(a!, b!), 12.5, '100 of 800 ticks stolen');
  t.equal(stealPercent(a!, a!), 0, 'no time passed');
  t.equal(parseCpuStat('intr 1 2 3\n'), undefined, 'no cpu line');
  t.equal(parseCpuStat('cpu  1 2 3\n'), undefined, 'a kernel too old to report steal');
});
