import t from 'tap';
import { aggregateMetrics, createMetrics, createSupervisorMetrics, STAGES, type Metrics } from './metrics.js';
import { rtpTotals } from '../media/rtp.js';
import { SETTLE_WINDOWS, VadEngine, VAD_WINDOW } from '../media/vad.js';

// A strict reader of the Prometheus text exposition format (version 0.0.4): every line is a HELP, a TYPE, or a
// sample of a family declared before it; it throws on the first line that is not.
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
// Values are what Go's strconv.ParseFloat reads (the format's definition): it takes NaN and Inf in any case,
// and prom-client writes NaN as "Nan".
const VALUE = '(?:[-+]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]?[iI][nN][fF]|[nN][aA][nN])';
const LABEL_PAIR = `${LABEL}="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL_PAIR})(?:,${LABEL_PAIR})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`);
const HELP_RE = new RegExp(`^# HELP (${NAME}) ((?:[^\\\\\\n]|\\\\[\\\\n])*)$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const PAIR_RE = new RegExp(`(${LABEL})="((?:[^"\\\\]|\\\\.)*)"`, 'g');

function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const familyOf = (sample: string): Family | undefined => {
    for (const suffix of ['', '_bucket', '_sum', '_count']) {
      if (suffix && !sample.endsWith(suffix)) continue;
      const f = families.get(sample.slice(0, sample.length - suffix.length));
      if (f && (suffix === '' ? f.type !== 'histogram' : f.type === 'histogram' || f.type === 'summary')) return f;
    }
    return undefined;
  };
  lines.forEach((line, i) => {
    const where = `line ${i + 1} ${JSON.stringify(line)}`;
    if (line === '') return;
    let m = HELP_RE.exec(line);
    if (m) {
      const f = families.get(m[1]!) ?? { name: m[1]!, type: '', help: '', samples: [] };
      if (f.help) throw new Error(`${where}: second HELP for ${f.name}`);
      f.help = m[2]!;
      families.set(f.name, f);
      return;
    }
    m = TYPE_RE.exec(line);
    if (m) {
      const f = families.get(m[1]!) ?? { name: m[1]!, type: '', help: '', samples: [] };
      if (f.type) throw new Error(`${where}: second TYPE for ${f.name}`);
      if (f.samples.length) throw new Error(`${where}: TYPE after samples`);
      f.type = m[2]!;
      families.set(f.name, f);
      return;
    }
    if (line.startsWith('#')) throw new Error(`${where}: a comment that is neither HELP nor TYPE`);
    m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`${where}: not a sample line`);
    const f = familyOf(m[1]!);
    if (!f) throw new Error(`${where}: sample of no declared family`);
    const labels: Record<string, string> = {};
    for (const p of (m[2] ?? '').matchAll(PAIR_RE)) {
      if (p[1]! in labels) throw new Error(`${where}: label ${p[1]} twice`);
      labels[p[1]!] = p[2]!;
    }
    const raw = m[3]!;
    const lower = raw.toLowerCase();
    const value = lower.endsWith('inf') ? (raw.startsWith('-') ? -Infinity : Infinity) : lower === 'nan' ? Number.NaN : Number(raw);
    f.samples.push({ name: m[1]!, labels, value });
  });
  for (const f of families.values()) {
    if (!f.type || !f.help) throw new Error(`family ${f.name} lacks ${f.type ? 'HELP' : 'TYPE'}`);
    if (f.type === 'counter' && f.samples.some((s) => s.value < 0)) throw new Error(`counter ${f.name} is negative`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

/** Per label set: buckets ascend in `le` and in count, end at +Inf, and +Inf equals _count. */
function checkHistogram(f: Family): void {
  const key = (l: Record<string, string>): string =>
    JSON.stringify(Object.entries(l).filter(([k]) => k !== 'le').sort());
  const series = new Map<string, { les: number[]; counts: number[]; count?: number }>();
  for (const s of f.samples) {
    const k = key(s.labels);
    const e = series.get(k) ?? { les: [], counts: [] };
    series.set(k, e);
    if (s.name.endsWith('_bucket')) {
      const le = s.labels.le;
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      e.les.push(le === '+Inf' ? Infinity : Number(le));
      e.counts.push(s.value);
    } else if (s.name.endsWith('_count')) e.count = s.value;
  }
  for (const [k, e] of series) {
    for (let i = 1; i < e.les.length; i++) {
      if (!(e.les[i]! > e.les[i - 1]!) || e.counts[i]! < e.counts[i - 1]!) throw new Error(`${f.name}${k}: buckets out of order`);
    }
    if (e.les.at(-1) !== Infinity) throw new Error(`${f.name}${k}: no +Inf bucket`);
    if (e.counts.at(-1) !== e.count) throw new Error(`${f.name}${k}: +Inf bucket ${e.counts.at(-1)} != _count ${e.count}`);
  }
}

function value(fams: Map<string, Family>, sample: string, labels: Record<string, string> = {}): number | undefined {
  const family = [...fams.values()].find((f) => f.samples.some((s) => s.name === sample));
  return family?.samples.find((s) => s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

function make(t: { teardown(fn: () => void): void }, defaultMetrics = true): Metrics {
  const m = createMetrics({ defaultMetrics });
  t.teardown(() => m.close());
  return m;
}

t.test('the parser itself rejects malformed exposition text', async (t) => {
  t.throws(() => parseExposition('eva_x 1\n'), /no declared family/);
  t.throws(() => parseExposition('# TYPE eva_x counter\n# HELP eva_x h\neva_x{a="1} 1\n'), /not a sample line/);
  t.throws(() => parseExposition('# TYPE eva_x counter\neva_x 1\n'), /lacks HELP/);
  t.throws(() => parseExposition('# HELP eva_x h\n# TYPE eva_x counter\neva_x one\n'), /not a sample line/);
  t.throws(() => parseExposition('# HELP eva_x h\n# TYPE eva_x counter\neva_x 1 2 3\n'), /not a sample line/);
  t.throws(() => parseExposition('# HELP eva_h h\n# TYPE eva_h histogram\neva_h_bucket{le="1"} 2\neva_h_bucket{le="+Inf"} 1\neva_h_count 1\n'), /out of order/);
  t.throws(() => parseExposition('# HELP eva_x h\n# TYPE eva_x bogus\n'), /neither HELP nor TYPE/);
  t.ok(parseExposition('# HELP eva_x h\n# TYPE eva_x gauge\neva_x{a="q\\"uote"} -1.5e-3\n').get('eva_x'));
});

t.test('the exposition text parses, with HELP and TYPE for every family, including the defaults', async (t) => {
  const m = make(t);
  m.observeStage('first_audio', 180);
  const fams = parseExposition(await m.text());
  for (const [name, type] of [
    ['eva_calls_open', 'gauge'],
    ['eva_calls_total', 'counter'],
    ['eva_turns_total', 'counter'],
    ['eva_barge_ins_total', 'counter'],
    ['eva_provider_errors_total', 'counter'],
    ['eva_fallbacks_total', 'counter'],
    ['eva_stage_latency_seconds', 'histogram'],
    ['eva_event_loop_lag_seconds', 'gauge'],
    ['eva_process_resident_memory_bytes', 'gauge'],
  ] as const) {
    t.equal(fams.get(name)?.type, type, `${name} is a ${type}`);
  }
  t.ok([...fams.keys()].every((n) => n.startsWith('eva_')), 'every family is prefixed eva_');
  t.match(m.contentType, /^text\/plain; version=0\.0\.4/);
});

t.test('counters, the open-calls gauge and stage histograms move', async (t) => {
  const m = make(t, false);
  const before = parseExposition(await m.text());
  t.equal(value(before, 'eva_turns_total', { source: 'voice' }), 0, 'known label sets start at zero');
  for (const stage of STAGES) t.equal(value(before, 'eva_stage_latency_seconds_count', { stage }), 0, `${stage} starts empty`);

  m.callOpened();
  m.callOpened();
  m.callClosed();
  m.turn('voice');
  m.turn('text');
  m.turn('text');
  m.bargeIn();
  m.providerError('groq', 'provider_timeout');
  m.fallback('groq', 'ollama');
  m.observeStage('llm_ttft', 120);
  m.observeStage('llm_ttft', 4000);
  m.observeStage('stt', Number.NaN);
  m.observeStage('stt', -5);

  const f = parseExposition(await m.text());
  t.equal(value(f, 'eva_calls_open'), 1);
  t.equal(value(f, 'eva_calls_total'), 2);
  t.equal(value(f, 'eva_turns_total', { source: 'voice' }), 1);
  t.equal(value(f, 'eva_turns_total', { source: 'text' }), 2);
  t.equal(value(f, 'eva_barge_ins_total'), 1);
  t.equal(value(f, 'eva_provider_errors_total', { provider: 'groq', code: 'provider_timeout' }), 1);
  t.equal(value(f, 'eva_fallbacks_total', { from: 'groq', to: 'ollama' }), 1);
  t.equal(value(f, 'eva_stage_latency_seconds_count', { stage: 'llm_ttft' }), 2);
  t.equal(value(f, 'eva_stage_latency_seconds_sum', { stage: 'llm_ttft' }), 4.12, 'observed in seconds');
  t.equal(value(f, 'eva_stage_latency_seconds_bucket', { stage: 'llm_ttft', le: '0.15' }), 1, '120 ms falls in the 150 ms bucket');
  t.equal(value(f, 'eva_stage_latency_seconds_bucket', { stage: 'llm_ttft', le: '5' }), 2);
  t.equal(value(f, 'eva_stage_latency_seconds_count', { stage: 'stt' }), 0, 'NaN and negative durations are ignored');

  m.callClosed();
  m.callClosed();
  t.equal(value(parseExposition(await m.text()), 'eva_calls_open'), 0, 'open calls never go below zero');
});

t.test('two metrics objects do not share counters', async (t) => {
  const a = make(t, false);
  const b = make(t, false);
  a.bargeIn();
  t.equal(value(parseExposition(await a.text()), 'eva_barge_ins_total'), 1);
  t.equal(value(parseExposition(await b.text()), 'eva_barge_ins_total'), 0);
});

t.test('event-loop lag is reported in seconds per quantile, and a blocked loop shows up', async (t) => {
  const m = make(t, false);
  await new Promise((r) => setTimeout(r, 30));
  const until = performance.now() + 60;
  while (performance.now() < until) {
    // block the loop for 60 ms
  }
  await new Promise((r) => setTimeout(r, 30));
  const f = parseExposition(await m.text());
  const max = value(f, 'eva_event_loop_lag_seconds', { quantile: '1' });
  t.ok(max !== undefined && max >= 0.04 && max < 5, `max lag ${max}s reflects the 60 ms block`);
  for (const q of ['0.5', '0.9', '0.99']) t.ok((value(f, 'eva_event_loop_lag_seconds', { quantile: q }) ?? -1) >= 0, `quantile ${q} present`);
});

t.test('workers\' registries aggregate: counters and histograms summed, open calls and loop lag kept per worker', async (t) => {
  const workers = [0, 1].map((worker) => {
    const m = createMetrics({ defaultMetrics: false, worker });
    t.teardown(() => m.close());
    return m;
  });
  workers[0]!.callOpened();
  workers[1]!.callOpened();
  workers[1]!.callOpened();
  workers[0]!.turn('text');
  workers[1]!.turn('text');
  workers[0]!.observeStage('stt', 100);
  workers[1]!.observeStage('stt', 300);
  const sup = createSupervisorMetrics(2);
  sup.workerStarted(0);
  sup.workerStarted(1);
  sup.workerRestarted(1);
  sup.setUp(2);
  const f = parseExposition(await aggregateMetrics([await sup.json(), ...(await Promise.all(workers.map((m) => m.json())))]));
  t.equal(value(f, 'eva_calls_total'), 3, 'counters are summed');
  t.equal(value(f, 'eva_turns_total', { source: 'text' }), 2);
  t.equal(value(f, 'eva_stage_latency_seconds_count', { stage: 'stt' }), 2, 'histograms are summed');
  t.equal(value(f, 'eva_stage_latency_seconds_bucket', { stage: 'stt', le: '0.1' }), 1);
  t.equal(value(f, 'eva_calls_open', { worker: '0' }), 1, 'open calls per worker');
  t.equal(value(f, 'eva_calls_open', { worker: '1' }), 2);
  for (const worker of ['0', '1']) t.type(value(f, 'eva_event_loop_lag_seconds', { quantile: '0.99', worker }), 'number', `loop lag of worker ${worker}`);
  t.equal(value(f, 'eva_worker_process_restarts_total', { worker: '1' }), 1, 'the supervisor\'s own figures are in');
  t.equal(value(f, 'eva_worker_process_restarts_total', { worker: '0' }), 0);
  t.equal(value(f, 'eva_workers_up'), 2);
});

t.test('a process of its own has no worker label (EVA_WORKERS=1 reads as before)', async (t) => {
  const m = make(t, false);
  m.callOpened();
  const text = await m.text();
  t.match(text, /^eva_calls_open 1$/m);
  t.notMatch(text, /worker="\d+"/, 'no series is labelled with a worker index');
});

t.test('loopLag() reports the delay since the previous call, apart from the scrape\'s window', async (t) => {
  const m = make(t, false);
  await new Promise((r) => setTimeout(r, 30));
  const until = performance.now() + 60;
  while (performance.now() < until) {
    // block the loop for 60 ms
  }
  await new Promise((r) => setTimeout(r, 30));
  await m.text(); // a scrape resets its own window, not this one
  const lag = m.loopLag();
  t.ok(lag.maxMs >= 40 && lag.maxMs < 5000, `max ${lag.maxMs.toFixed(1)} ms reflects the 60 ms block`);
  t.ok(lag.p99Ms >= 0 && lag.p99Ms <= lag.maxMs, 'p99 at most the max');
  await new Promise((r) => setTimeout(r, 50));
  t.ok(m.loopLag().maxMs < lag.maxMs, 'and starts again after each read');
});

t.test("the process's RTP packet counts and DTX fill are exported as counters", async (t) => {
  const m = make(t, false);
  const before = parseExposition(await m.text());
  const r0 = value(before, 'eva_rtp_packets_total', { direction: 'received' }) ?? NaN;
  const s0 = value(before, 'eva_rtp_packets_total', { direction: 'sent' }) ?? NaN;
  const f0 = value(before, 'eva_rtp_filled_seconds_total') ?? NaN;
  rtpTotals.received += 50;
  rtpTotals.sent += 21;
  rtpTotals.filledSamples += 8000;
  const after = parseExposition(await m.text());
  t.equal((value(after, 'eva_rtp_packets_total', { direction: 'received' }) ?? NaN) - r0, 50);
  t.equal((value(after, 'eva_rtp_packets_total', { direction: 'sent' }) ?? NaN) - s0, 21);
  t.equal((value(after, 'eva_rtp_filled_seconds_total') ?? NaN) - f0, 0.5, '8000 samples at 16 kHz');
  const again = parseExposition(await m.text());
  t.equal(value(again, 'eva_rtp_packets_total', { direction: 'sent' }), value(after, 'eva_rtp_packets_total', { direction: 'sent' }), 'a scrape with nothing new adds nothing');
});

t.test("the VAD's windows (through the model, or skipped as settled silence) and its model runs are exported", async (t) => {
  const m = make(t, false);
  const engine = await VadEngine.create();
  t.teardown(() => engine.close());
  const before = parseExposition(await m.text());
  const model0 = value(before, 'eva_vad_windows_total', { path: 'model' }) ?? NaN;
  const skipped0 = value(before, 'eva_vad_windows_total', { path: 'skipped' }) ?? NaN;
  const batches0 = value(before, 'eva_vad_batches_total') ?? NaN;
  // 2 s of digital silence on one stream: the first SETTLE_WINDOWS windows go through the model, the rest not.
  let probs = 0;
  const s = engine.createStream(() => void probs++);
  const windows = Math.floor(32000 / VAD_WINDOW);
  for (let i = 0; i < 100; i++) {
    s.push(new Int16Array(320));
    await new Promise((r) => setTimeout(r, 1));
  }
  for (let i = 0; i < 300 && probs < windows; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(probs, windows, 'every window answered');
  const after = parseExposition(await m.text());
  const model = (value(after, 'eva_vad_windows_total', { path: 'model' }) ?? NaN) - model0;
  const skipped = (value(after, 'eva_vad_windows_total', { path: 'skipped' }) ?? NaN) - skipped0;
  t.equal(model, engine.windows, `${model} windows through the model`);
  t.equal(skipped, engine.skipped, `${skipped} skipped`);
  t.equal(model + skipped, windows);
  t.ok(model >= SETTLE_WINDOWS && skipped > 0, 'the model settled, then was skipped');
  t.equal((value(after, 'eva_vad_batches_total') ?? NaN) - batches0, engine.batches, `${engine.batches} model runs`);
});
