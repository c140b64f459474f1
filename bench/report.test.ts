import t from 'tap';
import { bins, binWidth, esc, niceStep, ticks } from './chart.js';
import { countTrials, summarizeTrials, type TrialResult } from './latency.js';
import { classTable, decisionMarkers, formatReport, histogramChart, profileTable, reportFiles, stagesReport, stamp, sttRequestCounts, sttRequestsLine, textTable, waterfallChart, waterfallRows, type BenchResult, type ProfileResult } from './report.js';
import type { ProfileStep, StagesResult } from './stages.js';

const trials: TrialResult[] = [
  { kind: 'turn', utterance: 'yes.wav', warmup: true, perceivedMs: 2000 },
  ...[600, 620, 640, 660, 700].map(
    (p, i): TrialResult => ({
      kind: 'turn',
      utterance: 'sure-go-on.wav',
      turn: i + 2,
      perceivedMs: p,
      eouMs: 500,
      sttMs: 10,
      llmTtftMs: 5,
      firstSentenceMs: 20,
      ttsFirstAudioMs: 3,
      firstAudioMs: p - 40,
      providersMs: 33,
      networkMs: 40,
      overheadMs: p - 40 - 533,
      speculative: false,
    }),
  ),
  { kind: 'barge', utterance: 'virus.wav', overReply: true, bargeStopMs: 110, bargeEventMs: 90, perceivedMs: 650 },
  { kind: 'backchannel', utterance: 'virus.wav', overReply: true, falseBargeIn: false, perceivedMs: 640 },
  { kind: 'pause', utterance: 'moon.wav', falseCutoff: false, splitTurn: false, perceivedMs: 630 },
];

function profile(label: string, list = trials): ProfileResult {
  return {
    label,
    spec: label,
    description: 'STT 0 ms, TTFT 0 ms, tokens at once, LLM groq, TTS embedded eSpeak',
    latency: { sttMs: 0, ttftMs: 0, tokensPerSec: Infinity, ttsFirstMs: 0 },
    llm: 'groq',
    tts: 'espeak',
    providers: { stt: 'groq', llm: 'groq', tts: 'espeak' },
    trials: list,
    summary: summarizeTrials(list),
    counts: countTrials(list),
    text: [
      { name: 'POST /chat (whole reply)', values: [10, 12], serverValues: [8, 9], errors: 0, summary: { n: 2, min: 10, p50: 10, p95: 12, p99: 12, max: 12, mean: 11 } },
      { name: 'POST /tts (whole WAV)', skipped: 'POST /tts answered 404 (not wired in this build)', values: [], serverValues: [], errors: 0 },
    ],
    errors: [],
  };
}

const result: BenchResult = {
  version: 1,
  startedAt: '2025-01-31T12:00:00.123Z',
  durationS: 95,
  machine: { cpuModel: 'Test CPU', cores: 2, memoryGiB: 23.5, node: 'v20.20.2', platform: 'linux', gitCommit: '0123456789abcdef', loadAvg: [0.5, 0.4, 0.3] },
  config: {
    quick: true,
    turns: 5,
    bargeTrials: 1,
    backchannelTrials: 1,
    pauseTrials: 1,
    bargeDelayMs: 300,
    echoTrials: 0,
    echoDb: 20,
    speculationLeadMs: 320,
    audibleRms: 100,
    utterances: ['yes.wav'],
    evaEnv: {},
  },
  profiles: [profile('instant'), profile('groq+ttftMs=200')],
  load: {
    profile: 'groq',
    levels: [10, 20],
    callsHeld: 10,
    stopReason: '2 audio underruns (gaps > 60 ms)',
    notes: ['the load clients run in a child process on the same machine; their CPU is in clientCpuPct'],
    steps: [
      {
        calls: 10, connected: 10, failedConnects: 0, dropped: 0, windowS: 10, lagP99Ms: 4.2, lagMaxMs: 9, lagSource: 'server /metrics', underruns: 0, maxGapMs: 41,
        jitterP99Ms: 3, evaCpuPct: 35, clientCpuPct: 30, stealPct: 2, clientLagP99Ms: 3, evaRssMb: 140, rssPerCallMb: 1.5, talkingFraction: 0.41, turns: 20, noReply: 0,
        perceived: { n: 20, min: 600, p50: 650, p95: 700, p99: 700, max: 700, mean: 650 }, passed: true,
      },
      {
        calls: 20, connected: 20, failedConnects: 0, dropped: 0, windowS: 10, lagP99Ms: 12, lagMaxMs: 30, lagSource: 'server /metrics', underruns: 2, clientStallUnderruns: 3, maxGapMs: 90,
        jitterP99Ms: 8, evaCpuPct: 70, clientCpuPct: 60, stealPct: 12.4, clientLagP99Ms: 9, evaRssMb: 160, rssPerCallMb: 1.75, talkingFraction: 0.39, turns: 40, noReply: 0,
        perceived: { n: 40, min: 600, p50: 660, p95: 720, p99: 730, max: 730, mean: 660 }, passed: false, reason: '2 audio underruns (gaps > 60 ms)',
      },
    ],
  },
  notes: ['a note'],
};

t.test('the profile table has every measured figure with n/min/p50/p95/p99/max, skips the warm-up, and counts', async (t) => {
  const table = profileTable(result.profiles[0]!);
  t.match(table, /== instant: STT 0 ms/);
  t.match(table, /EVA providers: stt groq, llm groq, tts espeak/);
  t.match(table, /figure \(ms\)\s+n\s+min\s+p50\s+p95\s+p99\s+max\s+target/);
  // 8 perceived values (5 turns + barge + backchannel + pause), the 2000 ms warm-up left out.
  t.match(table, /perceived latency\s+8\s+600\s+640\s+700\s+700\s+700\s+p50 ≤ 200/);
  t.match(table, /EVA overhead\s+5\s+27\s+67\s+127\s+127\s+127\s+p50 ≤ 10/);
  t.match(table, /barge-in stop\s+1\s+110/);
  t.notMatch(table, /2000/);
  t.match(table, /barge-in: stopped 1\/1/);
  t.match(table, /false barge-ins on backchannels 0\/1, on EVA's own echo –/);
  t.match(table, /false cut-offs in pauses 0\/1/);
  t.match(table, /speculative STT requests per turn: n\/a \(not measured\)/);
});

t.test('speculative STT requests per turn come from EVA’s counter, summed over its other labels', async (t) => {
  const scrape = [
    '# HELP eva_stt_requests_total STT requests',
    '# TYPE eva_stt_requests_total counter',
    'eva_stt_requests_total{provider="groq",speculative="true"} 12',
    'eva_stt_requests_total{provider="realtime",speculative="true"} 3',
    'eva_stt_requests_total{speculative="false",provider="groq"} 10',
    'eva_stt_requests_totally_else{speculative="true"} 99',
  ].join('\n');
  t.same(sttRequestCounts(scrape), { speculative: 15, final: 10 });
  t.equal(sttRequestCounts('eva_turns_total 4\n'), undefined, 'no counter, no numbers');
  t.same(sttRequestCounts('# HELP eva_stt_requests_total STT requests\n# TYPE eva_stt_requests_total counter\n'), { speculative: 0, final: 0 }, 'declared, nothing counted yet: zeros');
  t.equal(sttRequestsLine({ speculative: 30, final: 20, turns: 20 }), 'speculative STT requests per turn: 1.50 (30 speculative + 20 final over 20 answered turns)');
  t.equal(sttRequestsLine({ unavailable: 'EVA exports no eva_stt_requests_total{speculative} counter' }), 'speculative STT requests per turn: n/a (EVA exports no eva_stt_requests_total{speculative} counter)');
  t.match(profileTable({ ...result.profiles[0]!, sttRequests: { speculative: 6, final: 4, turns: 4 } }), /speculative STT requests per turn: 1\.50/);
});

t.test('the class table: eou and false cut-offs by class, the pauses whose partial ended in "." apart', async (t) => {
  const table = classTable([
    { kind: 'turn', utterance: 'okay.wav', clipClass: 'short', eouMs: 150, perceivedMs: 190, decision: 'early' },
    { kind: 'turn', utterance: 'rain.wav', clipClass: 'question', eouMs: 140, perceivedMs: 185 },
    { kind: 'pause', utterance: 'pizza.wav', clipClass: 'paused', partialFullStop: true, falseCutoff: true, eouMs: 240 },
    { kind: 'pause', utterance: 'pizza.wav', clipClass: 'paused', partialFullStop: false, falseCutoff: false, eouMs: 260, perceivedMs: 300 },
  ])!;
  t.match(table, /by class \(ms\)\s+trials\s+eou p50\s+eou p95\s+perceived p50\s+perceived p95\s+false cut-offs\s+decisions/);
  t.match(table, /short answer\s+1\s+150\s+150\s+190\s+190\s+0\/1\s+early 1/);
  t.match(table, /question\s+1\s+140/);
  t.match(table, /paused \(mid-sentence\)\s+2\s+240\s+260\s+300\s+300\s+1\/2 \(1\/1 with "\."\)/);
  t.notMatch(table, /finished statement/, 'classes without trials are left out');
  t.equal(classTable([{ kind: 'turn', utterance: 'x.wav' }]), undefined, 'results without classes: no table');
});

t.test('the waterfall marks where the end-of-turn decision was made', async (t) => {
  const median = { kind: 'turn', utterance: 'x.wav', perceivedMs: 180, eouMs: 130, decision: 'early', eouClass: 'finished', firstAudioMs: 140 } as const;
  t.match(decisionMarkers(median), [{ label: 'decision at 130 ms (early, finished)', value: 130 }]);
  t.same(decisionMarkers({ kind: 'turn', utterance: 'x.wav' }), []);
  const svg = waterfallChart({ ...result.profiles[0]!, trials: [median] });
  t.match(svg, /decision at 130 ms \(early, finished\)/);
  t.match(svg, /stroke-dasharray/);
});

t.test('the full report lists the machine, each profile, the text probes and the load ramp', async (t) => {
  const text = formatReport(result);
  t.match(text, /Test CPU, 2 cores, 23\.5 GiB, Node v20\.20\.2, commit 0123456789ab \(quick\)/);
  t.match(text, /== groq\+ttftMs=200/);
  t.match(text, /POST \/chat \(whole reply\)\s+2\s+10\s+10\s+12\s+12\s+server-reported p50 8/);
  t.match(text, /POST \/tts \(whole WAV\).*skipped: POST \/tts answered 404/);
  t.match(text, /== load \(groq\): calls held 10; stopped: 2 audio underruns/);
  t.match(text, /^10\s+10\s+4\.2\s+0\s+41\s+35\s+30\s+2\s+140\s+1\.50\s+–\s+41%\s+20\/0\s+650\s+ok$/m, 'with the CPU the hypervisor stole (steal%)');
  t.match(text, /^20\s+20\s+12\.0\s+2 \(\+3\)\s+90\s/m, "EVA's underruns, and apart those the load clients' own stalls account for");
  t.match(text, /note: a note/);
});

t.test('ramps with EVA_WORKERS 1 and 2 are reported each, then side by side at the last step held', async (t) => {
  const one = result.load!;
  const two = {
    ...one,
    workers: 2,
    callsHeld: 20,
    stopReason: 'lag p99 25.0 ms > 20 ms',
    steps: one.steps.map((s) => ({ ...s, passed: true, reason: undefined, lagP99ByWorkerMs: { '0': s.lagP99Ms! - 1, '1': s.lagP99Ms! } })),
  };
  const r: BenchResult = { ...result, loads: [{ ...one, workers: 1 }, two] };
  const text = formatReport(r);
  t.match(text, /== load \(groq\): calls held 10;/, 'the one-process ramp, as before');
  t.match(text, /== load \(groq, EVA_WORKERS=2\): calls held 20; stopped: lag p99 25\.0 ms/);
  t.match(text, /== load by EVA_WORKERS \(groq\)/);
  // One process: held 10 calls at 35 % CPU (3.50 % a call); two: held 20 at 70 %, each worker's lag.
  t.match(text, /^1\s+10\s+4\.2\s+35\s+3\.50\s+1\.50\s+30\s+12\s+2 audio underruns/m, 'the worst step\'s stolen CPU, 12 % at 20 calls');
  t.match(text, /^2\s+20\s+11\.0 \/ 12\.0\s+70\s+3\.50\s+1\.75\s+60\s+12\s+lag p99 25\.0 ms/m);
  const files = Object.keys(reportFiles(r));
  t.ok(files.some((f) => f.endsWith('-load-w1.svg')) && files.some((f) => f.endsWith('-load-w2.svg')), 'a load chart per ramp');
  t.notOk(files.some((f) => f.endsWith('-load.svg')));
  t.notMatch(formatReport(result), /by EVA_WORKERS/, 'a single ramp prints no comparison');
});

t.test('text tables align columns', async (t) => {
  t.equal(textTable(['a', 'n', 'note'], [['xyz', '1', 'x'], ['q', '22', '']]), 'a     n  note\n---  --  ----\nxyz   1  x\nq    22');
});

t.test('the waterfall rows follow the median turn’s stages', async (t) => {
  const median = { kind: 'turn', utterance: 'x.wav', perceivedMs: 640, eouMs: 500, sttMs: 10, llmTtftMs: 5, firstSentenceMs: 20, ttsFirstAudioMs: 3, firstAudioMs: 600, overheadMs: 67, speculative: false } as const;
  const rows = waterfallRows(median);
  t.same(
    rows.map((r) => [r.label, r.start, r.end]),
    [
      ['end-of-turn silence', 0, 500],
      ['STT', 500, 510],
      ['LLM first token', 510, 515],
      ['LLM rest of 1st sentence', 515, 530],
      ['TTS first audio', 530, 533],
      ['EVA overhead', 533, 600],
      ['network, jitter, decode', 600, 640],
      ['perceived latency', 0, 640],
    ],
  );
  const spec = waterfallRows({ ...median, speculative: true, overheadMs: 100 }, 320);
  t.same(spec[1], { label: 'STT (speculative)', start: 180, end: 190, color: spec[1]!.color });
});

t.test('charts are self-contained SVG documents', async (t) => {
  const p = result.profiles[0]!;
  for (const svg of [waterfallChart(p), histogramChart(p), histogramChart(profile('empty', []))]) {
    t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    t.match(svg, /<\/svg>\n$/);
    t.notMatch(svg, /NaN|undefined|Infinity/);
    // Every element opened is closed.
    const opened = (svg.match(/<(?!\/)[a-z]+[^>]*[^/]>/g) ?? []).length;
    const closed = (svg.match(/<\/[a-z]+>/g) ?? []).length;
    t.equal(opened, closed);
  }
  const w = waterfallChart(p);
  t.match(w, /the median turn/);
  t.match(w, /EVA overhead/);
  t.equal((w.match(/<rect [^>]*rx="2"/g) ?? []).length, 8, 'one bar per stage');
  const h = histogramChart(p);
  t.match(h, /perceived latency over 8 turns/);
  t.match(h, /p50 640/);
  t.notMatch(h, /target p50/, 'targets are drawn for Groq-like profiles only');
  t.match(histogramChart(result.profiles[1]!), /target p50 200/);
});

t.test('reportFiles names every output after the run’s start time', async (t) => {
  const files = Object.keys(reportFiles(result)).sort();
  t.same(files, [
    '2025-01-31T12-00-00Z-groq+ttftMs=200-histogram.svg',
    '2025-01-31T12-00-00Z-groq+ttftMs=200-waterfall.svg',
    '2025-01-31T12-00-00Z-instant-histogram.svg',
    '2025-01-31T12-00-00Z-instant-waterfall.svg',
    '2025-01-31T12-00-00Z-load.svg',
    '2025-01-31T12-00-00Z.json',
    '2025-01-31T12-00-00Z.txt',
  ]);
  t.equal(stamp('2025-01-31T12:00:00Z'), '2025-01-31T12-00-00Z');
  const json = JSON.parse(reportFiles(result)['2025-01-31T12-00-00Z.json']!) as BenchResult;
  t.equal(json.profiles[0]!.trials.length, trials.length, 'raw per-trial records are kept');
});

t.test('chart helpers: nice steps, ticks, bins, escaping', async (t) => {
  t.equal(niceStep(100, 10), 10);
  t.equal(niceStep(730, 8), 100);
  t.equal(niceStep(0), 1);
  t.same(ticks(0, 640, 8), [0, 100, 200, 300, 400, 500, 600, 700]);
  t.equal(binWidth([600, 700]), 10);
  t.same(bins([600, 605, 619, 640], 10), [
    { from: 600, count: 2 },
    { from: 610, count: 1 },
    { from: 620, count: 0 },
    { from: 630, count: 0 },
    { from: 640, count: 1 },
  ]);
  t.equal(esc('a<b & "c"'), 'a&lt;b &amp; &quot;c&quot;');
});

t.test('the stage report: micro-benchmarks and each load step stage by stage, with a before/after when compared', async (t) => {
  const step = (scale: number): ProfileStep => ({
    calls: 10,
    load: { ...result.load!.steps[0]!, calls: 10, evaCpuPct: 50 * scale },
    threads: [
      { thread: 'main', durationMs: 8000, busyMs: 3000, cpuMs: 2800 * scale, rows: [] },
      { thread: 'vad-worker', durationMs: 8000, busyMs: 1200, cpuMs: 1000 * scale, rows: [] },
    ],
    rows: [
      { stage: 'VAD inference (worker)', unit: 'window', selfMs: 1000 * scale, units: 2500, usPerUnit: 400 * scale, pctPerCall: 1.25 * scale },
      { stage: 'opus decode', unit: 'packet', selfMs: 160, units: 4000, usPerUnit: 40, pctPerCall: 0.2 },
    ],
    sampledPctPerCall: 4.7 * scale,
    memory: { rssMb: 180, rssPerCallMb: 3.2 * scale, heapUsedPerCallMb: 0.7, externalPerCallMb: 1.1, arrayBuffersPerCallMb: 0.6 },
    rssAfterCloseMb: 12,
    unprofiled: { pctPerCall: 4 * scale, otherThreadsPct: 5 },
  });
  const stages: StagesResult = {
    version: 1,
    startedAt: '2025-01-31T13:00:00.000Z',
    durationS: 60,
    machine: result.machine,
    config: { samplingUs: 250, windowMs: 10000, calls: [10], loadProfile: 'groq', rates: { packet: '50/s', frame: '50/s', 'speech frame': '', window: '31.25/s', 'call·s': '' } },
    micro: [
      { stage: 'opus decode', unit: 'packet', us: 30, rounds: 15, perRound: 100, note: 'browser-like' },
      { stage: 'opus encode', unit: 'speech frame', us: 90, rounds: 15, perRound: 100 },
    ],
    profiles: [step(0.5)],
    notes: ['a note'],
  };
  const alone = stagesReport(stages);
  t.match(alone, /EVA stages 2025-01-31T13:00:00.000Z — Test CPU, 2 cores/);
  t.match(alone, /opus decode\s+packet\s+30\.0\s+browser-like/);
  t.match(alone, /== EVA under load: 10 calls — lag p99 4\.2 ms, underruns 0, EVA CPU 25% of a core/);
  t.match(alone, /main 17\.5, vad-worker 6\.3/, 'each thread’s CPU as % of a core');
  t.match(alone, /1\.60 MB per call \(JS heap 0\.70, external 1\.10 of which ArrayBuffers 0\.60\); after the calls closed: RSS \+12 MB/);
  t.match(alone, /VAD inference \(worker\)\s+window\s+200\s+0\.625\s+500/);
  t.match(alone, /all stages\s+0\.825/);
  t.match(alone, /without the profiler, right after: 2\.00% of a core per call, unprofiled threads 5\.0% of a core\n/);
  t.notMatch(alone, /before/);
  t.match(alone, /note: a note/);
  t.notMatch(alone, /per call per second/, 'no rates line without measured rates');
  const counted = stagesReport({ ...stages, profiles: [{ ...step(0.5), rates: { packet: 14.1, frame: 22.2, modelWindows: 6.04, windowsPerBatch: 1.84 } }] });
  t.match(counted, /per call per second: 14\.1 packets received, 22\.2 frames sent, 6\.0 of 31\.25 VAD windows through the model \(1\.8 a batch\)/);

  const compared = stagesReport({
    ...stages,
    before: { startedAt: '2025-01-31T12:00:00.000Z', gitCommit: 'fedcba9876543210', micro: [{ ...stages.micro[0]!, us: 40 }], profiles: [step(1)] },
  });
  t.match(compared, /before = 2025-01-31T12:00:00.000Z \(commit fedcba987654\)/);
  t.match(compared, /opus decode\s+packet\s+40\.0\s+30\.0\s+-25%/, 'micro: before, after, change');
  t.match(compared, /opus encode\s+speech frame\s+–\s+90\.0/, 'a benchmark the earlier run did not have');
  t.match(compared, /VAD inference \(worker\)\s+window\s+400\s+200\s+-50%\s+1\.250\s+0\.625/, 'stage: before µs, µs, change, before %/call, %/call');
  t.match(compared, /opus decode\s+packet\s+40\.0\s+40\.0\s+\+0%/);
  t.match(compared, /before: 4\.70% per call \(-50%\)/);
  t.match(compared, /before 3\.20 MB per call/);
  t.match(compared, /unprofiled threads 5\.0% of a core; before: 4\.00% per call \(-50%\)/);
  t.match(compared, /all stages\s+1\.450\s+0\.825/);
});
