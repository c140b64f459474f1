// The seeds' text probes, kept so numbers stay comparable with the project this one replaced: 10 unique
// `POST /chat` messages (whole-reply latency), `/ws/chat` time to first token, and `POST /tts` time to the whole
// WAV. Each endpoint that answers 404 (not wired in this build) is skipped with a line saying so.
import WebSocket from 'ws';
import { summarize, type Summary } from './latency.js';

export interface TextProbeResult {
  name: string;
  /** Why the probe did not run (404, connection refused …). */
  skipped?: string;
  /** Client-measured ms per request (request sent → reply complete, or → first token). */
  values: number[];
  /** What the server reported for the same requests (`latency_ms`, `ttft_ms`), when it did. */
  serverValues: number[];
  summary?: Summary;
  errors: number;
}

/** Unique messages so no cache can answer (the seeds' probe used the same idea). */
export function probeMessages(n: number, salt = Date.now()): string[] {
  const topics = ['the weather', 'a good book', 'coffee', 'the moon', 'trains', 'music', 'the sea', 'cooking', 'running', 'chess', 'gardens', 'bicycles'];
  return Array.from({ length: n }, (_, i) => `Probe ${salt}-${i}: tell me one short thing about ${topics[i % topics.length]}.`);
}

const TIMEOUT_MS = 20_000;

function finish(r: TextProbeResult): TextProbeResult {
  if (r.values.length) r.summary = summarize(r.values);
  return r;
}

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
}

/** `POST /chat` for each message, one after another. */
export async function probeChat(httpUrl: string, messages: readonly string[]): Promise<TextProbeResult> {
  const r: TextProbeResult = { name: 'POST /chat (whole reply)', values: [], serverValues: [], errors: 0 };
  for (const message of messages) {
    const t0 = performance.now();
    let res: Response;
    try {
      res = await post(`${httpUrl}/chat`, { message });
    } catch (err) {
      return finish({ ...r, skipped: `request failed: ${(err as Error).message}` });
    }
    const body = (await res.json().catch(() => null)) as { latency_ms?: number } | null;
    const ms = performance.now() - t0;
    if (res.status === 404) return finish({ ...r, skipped: 'POST /chat answered 404 (not wired in this build)' });
    if (!res.ok) {
      r.errors++;
      continue;
    }
    r.values.push(ms);
    if (typeof body?.latency_ms === 'number') r.serverValues.push(body.latency_ms);
  }
  return finish(r);
}

/** `/ws/chat`: one socket, the messages one after another; time to the first `token` event. */
export async function probeWsChat(wsUrl: string, messages: readonly string[]): Promise<TextProbeResult> {
  const r: TextProbeResult = { name: '/ws/chat (time to first token)', values: [], serverValues: [], errors: 0 };
  let ws: WebSocket;
  try {
    ws = await new Promise<WebSocket>((resolve, reject) => {
      const s = new WebSocket(`${wsUrl}/ws/chat`);
      s.once('open', () => resolve(s));
      s.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      s.once('error', reject);
    });
  } catch (err) {
    const msg = (err as Error).message;
    return finish({ ...r, skipped: msg === 'HTTP 404' ? '/ws/chat answered 404 (not wired in this build)' : `cannot connect: ${msg}` });
  }
  try {
    for (const content of messages) {
      const t0 = performance.now();
      const outcome = await new Promise<{ first?: number; ttft?: number | null; error?: string }>((resolve) => {
        let first: number | undefined;
        const timer = setTimeout(() => done({ first, error: 'timeout' }), TIMEOUT_MS);
        const onMessage = (data: WebSocket.RawData): void => {
          let m: { type?: string; ttft_ms?: number | null; code?: string };
          try {
            m = JSON.parse(String(data)) as typeof m;
          } catch {
            return;
          }
          if (m.type === 'token' && first === undefined) first = performance.now() - t0;
          else if (m.type === 'end') done({ first: first ?? performance.now() - t0, ttft: m.ttft_ms });
          else if (m.type === 'error') done({ first, error: m.code ?? 'error' });
        };
        const done = (o: { first?: number; ttft?: number | null; error?: string }): void => {
          clearTimeout(timer);
          ws.off('message', onMessage);
          resolve(o);
        };
        ws.on('message', onMessage);
        ws.send(JSON.stringify({ type: 'message', content }));
      });
      if (outcome.error || outcome.first === undefined) {
        r.errors++;
        continue;
      }
      r.values.push(outcome.first);
      if (typeof outcome.ttft === 'number') r.serverValues.push(outcome.ttft);
    }
  } finally {
    ws.close();
  }
  return finish(r);
}

/** `POST /tts` for each text: request → the whole WAV received. */
export async function probeTts(httpUrl: string, texts: readonly string[]): Promise<TextProbeResult> {
  const r: TextProbeResult = { name: 'POST /tts (whole WAV)', values: [], serverValues: [], errors: 0 };
  for (const text of texts) {
    const t0 = performance.now();
    let res: Response;
    try {
      res = await post(`${httpUrl}/tts`, { text });
    } catch (err) {
      return finish({ ...r, skipped: `request failed: ${(err as Error).message}` });
    }
    await res.arrayBuffer().catch(() => null);
    const ms = performance.now() - t0;
    if (res.status === 404) return finish({ ...r, skipped: 'POST /tts answered 404 (not wired in this build)' });
    if (!res.ok || !(res.headers.get('content-type') ?? '').includes('audio/wav')) {
      r.errors++;
      continue;
    }
    r.values.push(ms);
  }
  return finish(r);
}

/** All three probes against one EVA, `n` requests each. */
export async function runTextProbes(httpUrl: string, n = 10): Promise<TextProbeResult[]> {
  const wsUrl = httpUrl.replace(/^http/, 'ws');
  const salt = Date.now();
  return [
    await probeChat(httpUrl, probeMessages(n, salt)),
    await probeWsChat(wsUrl, probeMessages(n, salt + 1)),
    await probeTts(httpUrl, probeMessages(n, salt + 2).map((m) => m.replace(/^Probe [^:]+: /, 'Here is '))),
  ];
}
