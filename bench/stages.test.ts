import t from 'tap';
import { STAGE_RULES, mergeRows, median, parseRtpPackets, parseStagesArgs, parseVadCounters, stageRows, stageTimes, unitRates, type CpuProfile } from './stages.js';

const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0, columnNumber: 0 });

/**
 * A synthetic profile shaped like EVA's: a UDP datagram through werift into Call.onRtp and the Opus decoder's WASM,
 * the pacer's timer through the encoder and Peer.sendAudio into werift's SRTP, werift's own RTCP timer, the GC,
 * and idle time. Each sample lasts 1000 µs.
 */
function profile(): CpuProfile {
  const nodes: CpuProfile['nodes'] = [
    { id: 1, callFrame: frame('(root)'), children: [2, 10, 20, 30, 40, 50] },
    { id: 2, callFrame: frame('onMessage', 'node:dgram'), children: [3] },
    { id: 3, callFrame: frame('datagramReceived', 'file:///app/node_modules/werift/lib/index.mjs'), children: [4, 8] },
    { id: 4, callFrame: frame('', 'file:///app/dist/media/peer.js'), children: [5] },
    { id: 5, callFrame: frame('onRtp', 'file:///app/dist/server/media-leg.js'), children: [6] },
    { id: 6, callFrame: frame('decode', 'file:///app/dist/media/opus.js'), children: [7] },
    { id: 7, callFrame: frame('wasm-function[123]', 'wasm://wasm/0013630e') },
    { id: 8, callFrame: frame('getBit', 'file:///app/node_modules/werift/lib/index.mjs') },
    { id: 10, callFrame: frame('listOnTimeout', 'node:internal/timers'), children: [11] },
    { id: 11, callFrame: frame('tick', 'file:///app/dist/media/pacer.js'), children: [12, 14] },
    { id: 12, callFrame: frame('encode', 'file:///app/dist/media/opus.js'), children: [13] },
    { id: 13, callFrame: frame('wasm-function[61]', 'wasm://wasm/0013630e') },
    { id: 14, callFrame: frame('sendAudio', 'file:///app/dist/media/peer.js'), children: [15] },
    { id: 15, callFrame: frame('encryptRtp', 'file:///app/node_modules/werift/lib/index.mjs'), children: [16] },
    { id: 16, callFrame: frame('initiv') },
    { id: 20, callFrame: frame('processTimers', 'node:internal/timers'), children: [21] },
    { id: 21, callFrame: frame('sendRtcpReport', 'file:///app/node_modules/werift/lib/index.mjs') },
    { id: 30, callFrame: frame('(garbage collector)') },
    { id: 40, callFrame: frame('(idle)') },
    { id: 50, callFrame: frame('mystery', 'file:///elsewhere.js') },
  ];
  // leaf → samples: decode WASM 4, werift parse 2, encode WASM 3, SRTP under sendAudio 2, RTCP timer 1, GC 1, idle 5, other 1
  const counts: [number, number][] = [[7, 4], [8, 2], [13, 3], [16, 2], [21, 1], [30, 1], [40, 5], [50, 1]];
  const samples = counts.flatMap(([id, n]) => Array<number>(n).fill(id));
  return { nodes, startTime: 0, endTime: samples.length * 1000, samples, timeDeltas: samples.map(() => 1000) };
}

t.test('a sample goes to the innermost frame a stage rule matches; catch-alls only when nothing else does', async (t) => {
  const { byStage, idleMs, durationMs } = stageTimes(profile());
  const ms = (stage: string) => byStage.get(stage)?.ms ?? 0;
  t.equal(ms('opus decode'), 4, 'WASM under OpusDecoder.decode is decode, not the receive path around it');
  t.equal(ms('opus encode'), 3);
  t.equal(ms('werift receive (UDP, SRTP, RTP)'), 2, "werift's parsing under a datagram is the receive path");
  t.equal(ms('werift send (RTP, SRTP, UDP)'), 2, "werift's SRTP under Peer.sendAudio is the send path");
  t.equal(ms('werift other (ICE, DTLS, RTCP, timers)'), 1, "werift's own timer falls to the werift catch-all, not to Node's timers");
  t.equal(ms('GC'), 1);
  t.equal(ms('other'), 1);
  t.equal(idleMs, 5, 'idle time is kept apart');
  t.equal(durationMs, 19);
  t.equal(byStage.get('opus decode')!.unit, 'packet');
  t.equal(byStage.get('opus encode')!.unit, 'speech frame');
});

t.test('without samples, hit counts stand in (1 ms each)', async (t) => {
  const p = profile();
  const hits = new Map<number, number>([[7, 2], [40, 3]]);
  for (const n of p.nodes) n.hitCount = hits.get(n.id) ?? 0;
  const { byStage, idleMs } = stageTimes({ ...p, samples: undefined, timeDeltas: undefined });
  t.equal(byStage.get('opus decode')!.ms, 2);
  t.equal(idleMs, 3);
});

t.test('stage rows divide self time by the units processed and give % of a core per call', async (t) => {
  const rows = stageRows(
    new Map([
      ['opus decode', { unit: 'packet' as const, ms: 100 }],
      ['opus encode', { unit: 'speech frame' as const, ms: 400 }],
      ['GC', { unit: 'call·s' as const, ms: 50 }],
    ]),
    10_000,
    10,
    0.4,
  );
  const decode = rows.find((r) => r.stage === 'opus decode')!;
  t.equal(decode.units, 10 * 10 * 50, '10 calls × 10 s × 50 packets/s');
  t.equal(decode.usPerUnit, 20);
  t.equal(decode.pctPerCall, 0.1, '100 ms of CPU in 10 s over 10 calls = 0.1 % of a core each');
  const encode = rows.find((r) => r.stage === 'opus encode')!;
  t.equal(encode.units, 10 * 10 * 20, 'speech frames: 50/s × the share of time EVA talks');
  t.equal(encode.usPerUnit, 200);
  t.equal(rows.find((r) => r.stage === 'GC')!.usPerUnit, 500, 'per call-second');
  t.same(rows.map((r) => r.stage), ['opus encode', 'opus decode', 'GC'], 'costliest first');
  t.equal(unitRates(0.5).window, 31.25, 'a 512-sample VAD window every 32 ms');
  t.equal(unitRates(0.4, false).frame, 50, 'without DTX EVA sends a frame every 20 ms');
  t.equal(unitRates(0.4).frame, 21.5, 'with DTX: 50/s while talking (40 %), one in 20 slots while quiet');
});

t.test('the same stage on two threads adds up', async (t) => {
  const a = stageRows(new Map([['GC', { unit: 'call·s' as const, ms: 30 }]]), 1000, 2, 0.4);
  const b = stageRows(new Map([['GC', { unit: 'call·s' as const, ms: 10 }], ['other', { unit: 'call·s' as const, ms: 5 }]]), 1000, 2, 0.4);
  const merged = mergeRows([a, b], 1000, 2);
  t.equal(merged[0]!.stage, 'GC');
  t.equal(merged[0]!.selfMs, 40);
  t.equal(merged[0]!.pctPerCall, 2);
  t.equal(merged[0]!.usPerUnit, 20_000);
  t.equal(merged.length, 2);
  t.equal(a[0]!.selfMs, 30, 'the inputs are left as they were');
});

t.test('every stage rule names a script, a function or both', async (t) => {
  for (const r of STAGE_RULES) t.ok(r.url !== undefined || r.fn !== undefined, r.stage);
});

t.test('median is the nearest-rank middle value', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2);
  t.ok(Number.isNaN(median([])));
});

t.test('options: calls, window, modes; bad values are refused with the usage', async (t) => {
  const a = parseStagesArgs(['--calls', '10,20,40', '--window', '8000', '--micro-only']);
  t.same(a.calls, [10, 20, 40]);
  t.equal(a.windowMs, 8000);
  t.equal(a.profile, false);
  t.equal(a.micro, true);
  t.equal(parseStagesArgs([]).samplingUs, 250);
  t.throws(() => parseStagesArgs(['--calls', '0']), /expected an integer ≥ 1/);
  t.throws(() => parseStagesArgs(['--window', '10']), /--window: expected an integer ≥ 1000/);
  t.throws(() => parseStagesArgs(['--micro-only', '--profile-only']), /exclude each other/);
  t.throws(() => parseStagesArgs(['--bogus']), /unknown option --bogus[\s\S]*usage/);
  t.throws(() => parseStagesArgs(['--compare']), /--compare needs a value/);
  t.match(parseStagesArgs([]).evaEntry, /dist\/server\/main\.js$/, 'profiles this build by default');
  t.equal(parseStagesArgs(['--eva-entry', '/tmp/old/dist/server/main.js']).evaEntry, '/tmp/old/dist/server/main.js');
  t.throws(() => parseStagesArgs(['--eva-entry']), /--eva-entry needs a value/);
});

t.test("per-packet and per-frame units come from EVA's own packet counts when it has them", async (t) => {
  const text = '# TYPE eva_rtp_packets_total counter\neva_rtp_packets_total{direction="received"} 1200\neva_rtp_packets_total{direction="sent"} 430\n';
  t.same(parseRtpPackets(text), { received: 1200, sent: 430 });
  t.equal(parseRtpPackets('eva_calls_open 3\n'), undefined, 'an EVA without the counter');
  const vad = '# TYPE eva_vad_windows_total counter\neva_vad_windows_total{path="model"} 900\neva_vad_windows_total{path="skipped"} 2100\n# TYPE eva_vad_batches_total counter\neva_vad_batches_total 500\n';
  t.same(parseVadCounters(vad), { model: 900, batches: 500 });
  t.equal(parseVadCounters(text), undefined, 'an EVA without the VAD counters');
  const rows = stageRows(new Map([['werift send (RTP, SRTP, UDP)', { unit: 'frame' as const, ms: 100 }]]), 10_000, 10, 0.4, { packet: 20, frame: 10 });
  t.equal(rows[0]!.units, 10 * 10 * 10, '10 calls × 10 s × 10 frames a second');
  t.equal(rows[0]!.usPerUnit, 100);
  t.equal(unitRates(0.4, true, { packet: 20 }).packet, 20);
});
