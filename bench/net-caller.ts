// One caller for the network tests (test/net/), run as its own process inside a network namespace:
//   node dist/bench/net-caller.js call --ws ws://10.77.2.1:8080/ws [--ice hello|none] [--relay] [--clip F.wav]
//        [--session ID] [--text "typed turn"] [--timeout-ms 20000]
//   node dist/bench/net-caller.js chat --url http://10.77.1.2:8080 --message "hi" [--session ID]
// `call` asks EVA for its ICE servers (`hello`, as the page does), calls with a real werift peer, says the clip and
// waits for audio back (or sends a typed turn and waits for the answer), then prints one JSON line: which
// candidate pair carried the call, what was heard, the events. `chat` is one POST /chat. Exit 0 when it worked,
// 1 with {"ok":false,"error"} when not.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import type { IceServerConfig } from '../server/config.js';
import type { ServerMessage } from '../server/signaling.js';
import { decodeWav } from '../media/wav.js';
import { ProbeCall } from './probe-client.js';

export interface CallArgs {
  ws: string;
  ice: 'hello' | 'none';
  relay: boolean;
  clip?: string;
  session?: string;
  text?: string;
  timeoutMs: number;
}

export interface SelectedPair {
  local: { type: string; address: string; port: number };
  remote: { type: string; address: string; port: number };
}

export interface CallResult {
  ok: true;
  connectMs: number;
  iceServers: IceServerConfig[];
  pair: SelectedPair | null;
  session: string;
  echoMs: number;
  reply?: string;
  events: string[];
}

const USAGE = 'usage: net-caller.js call --ws URL [--ice hello|none] [--relay] [--clip F.wav] [--session ID] [--text T] [--timeout-ms N] | chat --url URL --message T [--session ID]';

function flags(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
    if (a === '--relay') out.set('relay', 'true');
    else if (argv[i + 1] === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
    else out.set(a.slice(2), argv[++i]!);
  }
  return out;
}

/** The ICE servers EVA gives this connection: what the page does before it builds its peer connection. */
export async function askIceServers(wsUrl: string, timeoutMs = 5000): Promise<IceServerConfig[]> {
  const ws = new WebSocket(wsUrl);
  try {
    return await new Promise<IceServerConfig[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no hello from ${wsUrl} within ${timeoutMs} ms`)), timeoutMs);
      ws.once('error', (err) => (clearTimeout(timer), reject(err)));
      ws.once('open', () => ws.send(JSON.stringify({ type: 'hello' })));
      ws.on('message', (data) => {
        const msg = JSON.parse(String(data)) as ServerMessage;
        if (msg.type !== 'hello') return;
        clearTimeout(timer);
        resolve(msg.ice_servers);
      });
    });
  } finally {
    ws.close();
  }
}

/** The nominated pair, from werift's standard getStats (the ProbeCall keeps its peer private). */
async function selectedPair(call: ProbeCall): Promise<SelectedPair | null> {
  const pc = (call as unknown as { peer: { pc: { getStats(): Promise<Map<string, Record<string, unknown>>> } } }).peer.pc;
  const stats = [...(await pc.getStats()).values()];
  const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  const pair = stats.find((s) => s.id === transport?.selectedCandidatePairId);
  const side = (id: unknown) => {
    const c = stats.find((s) => s.id === id);
    return c ? { type: String(c.candidateType), address: String(c.address), port: Number(c.port) } : null;
  };
  const local = side(pair?.localCandidateId);
  const remote = side(pair?.remoteCandidateId);
  return local && remote ? { local, remote } : null;
}

export async function runCall(a: CallArgs): Promise<CallResult> {
  const iceServers = a.ice === 'hello' ? await askIceServers(a.ws) : [];
  const call = await ProbeCall.connect(a.ws, {
    timeoutMs: a.timeoutMs,
    config: a.session ? { session: a.session } : {},
    // Every local candidate (this namespace's address), or the relay's only: a caller that must go through TURN.
    peer: { iceServers, iceTransportPolicy: a.relay ? 'relay' : 'all', additionalHosts: [] },
  });
  try {
    const ready = await call.waitFor((m) => m.type === 'ready', a.timeoutMs);
    const pair = await selectedPair(call);
    let echoMs = 0;
    let reply: string | undefined;
    if (a.clip) {
      const wav = decodeWav(readFileSync(a.clip));
      if (wav.sampleRate !== 16000) throw new Error(`${a.clip} must be 16 kHz mono, is ${wav.sampleRate} Hz`);
      const sent = await call.play(wav.samples);
      const end = performance.now() + a.timeoutMs;
      while (performance.now() < end && call.audibleMs(sent.lastVoicedAt) < 200) await new Promise((r) => setTimeout(r, 50));
      echoMs = call.audibleMs(sent.lastVoicedAt);
    }
    if (a.text) {
      const since = performance.now();
      call.send({ type: 'text', text: a.text });
      const end = await call.waitFor((m) => m.type === 'reply_end', a.timeoutMs, since);
      if (end.type === 'reply_end') reply = end.text;
      // The turn is complete (and stored) once its spoken answer has played: hanging up earlier interrupts it.
      const endAt = call.events.find((e) => e.msg === end)?.at ?? since;
      await call.waitFor((m) => m.type === 'state' && m.state === 'listening', a.timeoutMs, endAt);
    }
    call.hangup();
    return {
      ok: true,
      connectMs: Math.round(call.connectMs),
      iceServers,
      pair,
      session: ready.type === 'ready' ? ready.session : '',
      echoMs,
      ...(reply !== undefined ? { reply } : {}),
      events: call.events.map((e) => e.msg.type),
    };
  } finally {
    await call.close();
  }
}

export async function runChat(url: string, message: string, session?: string): Promise<{ ok: true; status: number; body: unknown }> {
  const res = await fetch(`${url}/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message, ...(session ? { session_id: session } : {}) }),
    signal: AbortSignal.timeout(20_000),
  });
  return { ok: true, status: res.status, body: await res.json() };
}

export async function main(argv: readonly string[]): Promise<unknown> {
  const [mode, ...rest] = argv;
  const f = flags(rest);
  const need = (k: string): string => {
    const v = f.get(k);
    if (!v) throw new Error(`--${k} is required\n${USAGE}`);
    return v;
  };
  if (mode === 'chat') return runChat(need('url'), need('message'), f.get('session'));
  if (mode !== 'call') throw new Error(USAGE);
  const ice = f.get('ice') ?? 'hello';
  if (ice !== 'hello' && ice !== 'none') throw new Error(`--ice must be hello or none\n${USAGE}`);
  const timeoutMs = Number(f.get('timeout-ms') ?? 20_000);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout-ms must be a positive number\n${USAGE}`);
  return runCall({ ws: need('ws'), ice, relay: f.has('relay'), clip: f.get('clip'), session: f.get('session'), text: f.get('text'), timeoutMs });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stdout.write(`${JSON.stringify({ ok: false, error: err instanceof Error ? err.message : String(err) })}\n`);
      process.exit(1);
    },
  );
}
