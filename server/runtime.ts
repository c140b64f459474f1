// Everything a running EVA holds besides the media front: the provider chains chosen from the configuration
// (explicit lists, or auto-detection: README "Configuration"), the database, the metrics, the text API, and the
// factory that gives each call its conversational agent. main.ts and the tests build EVA through here, so a
// test runs the same wiring as production, only pointed at stand-in servers.
import { join } from 'node:path';
import type { AgentContext, AgentFactory } from './agent.js';
import { createPipelineAgent, type TurnOutcome } from './agent-pipeline.js';
import type { EvaConfig } from './config.js';
import { EvaError } from './errors.js';
import type { Logger } from './log.js';
import { createMetrics, STAGES, type Metrics, type Stage } from './metrics.js';
import type { ReplyTurn } from './pipeline/reply.js';
import { RateLimiter } from './ratelimit.js';
import { openStore, type Store } from './store.js';
import { openPgStore } from './store-pg.js';
import { createTextApi, type TextApi } from './textapi.js';
import { FallbackLlm, FallbackStt, FallbackTts } from './providers/fallback.js';
import { EchoLlm } from './providers/llm-echo.js';
import { GroqLlm } from './providers/llm-groq.js';
import { OllamaLlm } from './providers/llm-ollama.js';
import { GroqStt } from './providers/stt-groq.js';
import { OpenAiStt } from './providers/stt-openai.js';
import { RealtimeStt } from './providers/stt-realtime.js';
import { createEspeakTts, EspeakTts } from './providers/tts-espeak.js';
import { GroqTts } from './providers/tts-groq.js';
import { OpenAiTts } from './providers/tts-openai.js';
import { isStreamingStt, type ChatMessage, type LlmProvider, type ProviderHealth, type SttProvider, type TtsProvider } from './providers/types.js';

export interface HealthPart extends ProviderHealth {
  /** A part that is off by configuration (no STT) is reported but does not make EVA unhealthy. */
  required?: boolean;
}

export interface Runtime {
  /** Provider names per stage, as chosen (`none` for no STT). */
  readonly chosen: { stt: string; llm: string; tts: string };
  readonly stt: SttProvider | null;
  readonly llm: FallbackLlm;
  readonly tts: TtsProvider;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly text: TextApi;
  readonly limiter: RateLimiter;
  /** One pipeline agent per call, persisting its turns and counting them in the metrics. */
  readonly agent: AgentFactory;
  health(): Promise<Record<string, HealthPart>>;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  log: Logger;
  /** SQLite file; default `<EVA_DATA_DIR>/eva.db`. `:memory:` for a private one. Unused with EVA_DATABASE_URL. */
  dbPath?: string;
  /** How long auto-detection waits for Ollama's `/api/version`, ms. Default 400. */
  probeMs?: number;
  /** Export Node's process metrics too (default true; tests that start several EVAs turn it off). */
  defaultMetrics?: boolean;
  /** This process's worker index (EVA_WORKERS > 1): labels its per-process metrics (metrics.ts). */
  worker?: number;
}

/** Health answers are reused this long, so that a tight poll does not hammer the providers. */
const HEALTH_CACHE_MS = 1000;

async function ollamaAnswers(host: string, ms: number): Promise<boolean> {
  try {
    const res = await fetch(`${host}/api/version`, { signal: AbortSignal.timeout(ms) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/** The provider lists per stage: the configured ones, else what auto-detection finds (README "Configuration"). */
export async function chooseProviders(config: EvaConfig, probeMs = 400): Promise<{ stt: string[]; llm: string[]; tts: string[] }> {
  const sttServer = config.sttUrl ? (/^wss?:/i.test(config.sttUrl) ? 'realtime' : 'openai') : null;
  const stt = config.stt.length ? config.stt : [...(sttServer === 'realtime' ? ['realtime'] : []), ...(config.groqApiKey ? ['groq'] : []), ...(sttServer === 'openai' ? ['openai'] : [])];
  let llm = config.llm;
  if (!llm.length) {
    llm = [...(config.groqApiKey ? ['groq'] : []), ...((await ollamaAnswers(config.ollamaHost, probeMs)) ? ['ollama'] : [])];
    if (!llm.length) llm = ['echo'];
  }
  const tts = config.tts.length ? config.tts : [...(config.ttsUrl ? ['openai'] : []), 'espeak'];
  return { stt, llm, tts };
}

function needKey(config: EvaConfig, stage: string): string {
  if (!config.groqApiKey) throw new EvaError('bad_request', `EVA_${stage}=groq needs GROQ_API_KEY`);
  return config.groqApiKey;
}

function needUrl(url: string | undefined, stage: string): string {
  if (!url) throw new EvaError('bad_request', `EVA_${stage}=openai needs EVA_${stage}_URL (an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1)`);
  return url;
}

function buildStt(name: string, config: EvaConfig, log: Logger): SttProvider {
  if (name === 'groq') return new GroqStt({ apiKey: needKey(config, 'STT'), baseURL: config.groqBaseUrl, model: config.sttModel });
  if (name === 'realtime') {
    if (!config.sttUrl) throw new EvaError('bad_request', 'EVA_STT=realtime needs EVA_STT_URL (a Realtime transcription server, e.g. ws://127.0.0.1:8000/v1/realtime)');
    return new RealtimeStt({ url: config.sttUrl, apiKey: config.sttApiKey, model: config.sttModel, log: log.child('stt-realtime') });
  }
  return new OpenAiStt({ baseURL: needUrl(config.sttUrl, 'STT'), apiKey: config.sttApiKey, model: config.sttModel });
}

function buildLlm(name: string, config: EvaConfig, log: Logger): LlmProvider {
  if (name === 'groq') return new GroqLlm({ apiKey: needKey(config, 'LLM'), baseURL: config.groqBaseUrl, model: config.llmModel });
  if (name === 'ollama') {
    const ollama = new OllamaLlm({ host: config.ollamaHost, model: config.ollamaModel });
    // Load the model now, not on the first turn (seconds); a failure here is only logged, health tells the rest.
    ollama.warm().catch((err: unknown) => log.warn('ollama warm-up failed', { err: (err as Error).message }));
    return ollama;
  }
  return new EchoLlm();
}

async function buildTts(name: string, config: EvaConfig, log: Logger): Promise<TtsProvider> {
  if (name === 'groq') return new GroqTts({ apiKey: needKey(config, 'TTS'), baseURL: config.groqBaseUrl, voice: config.ttsVoice });
  if (name === 'openai') return new OpenAiTts({ baseURL: needUrl(config.ttsUrl, 'TTS'), apiKey: config.ttsApiKey, voice: config.ttsVoice });
  return createEspeakTts({ voice: config.ttsVoice, log: log.child('espeak'), threadNice: config.threadNice });
}

function stageOf(key: string): Stage | null {
  const stage = key.replace(/_ms$/, '');
  return (STAGES as readonly string[]).includes(stage) ? (stage as Stage) : null;
}

/** Builds the providers, opens the database and the metrics. Throws an EvaError on a configuration mistake. */
export async function createRuntime(config: EvaConfig, opts: RuntimeOptions): Promise<Runtime> {
  const { log } = opts;
  const names = await chooseProviders(config, opts.probeMs);
  const metrics = createMetrics({ defaultMetrics: opts.defaultMetrics ?? true, worker: opts.worker });
  const onFallback = (stage: string) => (from: string, to: string, error: Error) => {
    metrics.fallback(from, to);
    log.warn(`${stage} fallback`, { from, to, reason: error.message });
  };

  const sttList = names.stt.map((n) => buildStt(n, config, log));
  const stt = sttList.length ? new FallbackStt(sttList, { onFallback: onFallback('stt') }) : null;
  /** The first STT streams when it can (EVA_STT=realtime): the chain stays the segment fallback. */
  const sttStream = sttList[0] && isStreamingStt(sttList[0]) ? sttList[0] : null;
  const llm = new FallbackLlm(names.llm.map((n) => buildLlm(n, config, log)), { firstTokenMs: config.llmDeadlineMs, idleMs: config.streamIdleMs, onFallback: onFallback('llm') });
  const ttsList = await Promise.all(names.tts.map((n) => buildTts(n, config, log)));
  for (const p of ttsList) if (p instanceof EspeakTts) p.onRestart(() => metrics.workerRestart('espeak'));
  // A chain even of one: its first-audio deadline and idle timeout are what end a stalled TTS stream.
  const tts: TtsProvider = new FallbackTts(ttsList, { idleMs: config.streamIdleMs, onFallback: onFallback('tts') });
  let store: Store;
  try {
    // The store never throws a storage failure at a call or a text turn: it reports it here.
    const dbLog = log.child('db');
    const storeOpts = { retentionDays: config.retentionDays, onError: (what: string, err: unknown) => dbLog.error(`database: ${what}`, { err }) };
    store = config.databaseUrl ? await openPgStore(config.databaseUrl, storeOpts) : openStore(opts.dbPath ?? join(config.dataDir, 'eva.db'), storeOpts);
  } catch (err) {
    await tts.close?.();
    metrics.close();
    throw err;
  }
  const text = createTextApi({ llm, store, metrics, systemPrompt: config.systemPrompt, historyLimit: config.historyTurns * 2, log: log.child('text') });
  const limiter = new RateLimiter();
  const chosen = { stt: stt?.name ?? 'none', llm: llm.name, tts: tts.name };

  /**
   * Storage must never break a call: a failed write is logged and the conversation goes on. (The store reports
   * its own failures and never throws them; this catches anything else, a bug included.)
   */
  function persist(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      log.error(`database: could not ${what}`, { err });
    }
  }

  /** The session's stored history, for a call starting; resolves (never rejects) with [] when it cannot be read. */
  async function sessionHistory(sessionId: string): Promise<ChatMessage[]> {
    let history: ChatMessage[] = [];
    try {
      history = (await store.history(sessionId, config.historyTurns * 2)).filter((m) => m.content !== '').map((m) => ({ role: m.role, content: m.content }));
    } catch (err) {
      log.error('database: could not read the history', { err });
    }
    while (history.length && history[0]!.role !== 'user') history.shift();
    return history;
  }

  const agent: AgentFactory = (ctx: AgentContext) => {
    const { callId, sessionId } = ctx;
    // The session first, so that a prompt the offer gave is stored with it (an existing session keeps its own).
    if (ctx.config.system) persist('create the session', () => store.createSession({ id: sessionId, systemPrompt: ctx.config.system }));
    persist('record the call', () => store.startCall({ id: callId, sessionId, providers: chosen }));

    function onTurnDone(turn: ReplyTurn, outcome: TurnOutcome, heard?: string): void {
      if (outcome === 'discarded') return;
      if (turn.failed) {
        const provider = (turn.failed as { provider?: unknown }).provider;
        metrics.providerError(typeof provider === 'string' ? provider : 'pipeline', turn.failed.code);
        return;
      }
      metrics.turn('voice');
      for (const [key, ms] of Object.entries(turn.times)) {
        const stage = stageOf(key);
        if (stage && typeof ms === 'number') metrics.observeStage(stage, ms);
      }
      const said = outcome === 'interrupted' ? (heard ?? '') : turn.text.trim();
      if (!turn.transcript) return;
      persist('store the turn', () => {
        store.appendTurn(sessionId, [
          { role: 'user', content: turn.transcript },
          { role: 'assistant', content: said },
        ]);
        store.appendTranscript(callId, { turn: turn.turn, role: 'user', text: turn.transcript });
        store.appendTranscript(callId, { turn: turn.turn, role: 'assistant', text: said, interrupted: outcome === 'interrupted' });
        store.recordTurnMetrics(callId, turn.turn, turn.times as Record<string, number>);
      });
    }

    // The agent is made now and the session's reads land a few ms later (a database round trip), long before a
    // turn can end: the history is restored into the conversation and the stored prompt set when they arrive.
    // A turn answered before that (a database slower than the caller) goes without them.
    const inner = createPipelineAgent(
      {
        stt,
        llm,
        tts,
        systemPrompt: ctx.config.system ?? config.systemPrompt,
        historyTurns: config.historyTurns,
        sttStream,
        earlyEndMs: config.earlyEndMs,
        fallbackMs: config.turn.endOfTurnMs,
        maxEndMs: config.turn.maxEndOfTurnMs,
        speculativeMax: config.speculativeMax,
        onSttRequest: (speculative) => metrics.sttRequest(speculative),
        onEndOfTurn: (verdict, early) => metrics.endOfTurn(verdict?.cls ?? 'window', early),
        voice: ctx.config.voice ?? config.ttsVoice,
        language: ctx.config.language,
        history: sessionHistory(sessionId),
        onTurnDone,
        onBargeIn: () => metrics.bargeIn(),
      },
      ctx,
    );
    let promptSet = ctx.config.system !== undefined;
    const configureInner = inner.configure?.bind(inner);
    if (configureInner) {
      inner.configure = (update) => {
        if (update.system !== undefined) promptSet = true;
        configureInner(update);
      };
      if (!promptSet) {
        void store.getSession(sessionId).then((s) => {
          // A prompt set meanwhile (the Realtime API's session.update) wins over the stored one.
          if (s?.systemPrompt != null && !promptSet && !ctx.signal.aborted) configureInner({ system: s.systemPrompt });
        });
      }
    }
    const closeInner = inner.close;
    inner.close = (reason) => {
      closeInner(reason);
      persist('record the end of the call', () => store.endCall(callId, reason ?? 'closed'));
    };
    return inner;
  };

  let cached: { at: number; value: Promise<Record<string, HealthPart>> } | null = null;
  async function check(): Promise<Record<string, HealthPart>> {
    const signal = AbortSignal.timeout(2500);
    const wrap = (p: { health(signal?: AbortSignal): Promise<ProviderHealth> }) =>
      p.health(signal).catch((err: unknown): HealthPart => ({ ok: false, detail: (err as Error).message }));
    const [sttH, llmH, ttsH] = await Promise.all([
      stt ? wrap(stt) : Promise.resolve<HealthPart>({ ok: false, required: false, detail: 'not configured (set GROQ_API_KEY or EVA_STT_URL); voice turns are echoed' }),
      wrap(llm),
      wrap(tts),
    ]);
    // Which store, and where (a PostgreSQL URL without its password).
    let db: HealthPart;
    try {
      db = (await store.ping()) ? { ok: true, detail: `${store.kind} ${store.path}` } : { ok: false, detail: `${store.kind} ${store.path} does not answer` };
    } catch (err) {
      db = { ok: false, detail: (err as Error).message };
    }
    return { stt: sttH, llm: llmH, tts: ttsH, database: db };
  }

  return {
    chosen,
    stt,
    llm,
    tts,
    store,
    metrics,
    text,
    limiter,
    agent,
    health() {
      const now = performance.now();
      if (!cached || now - cached.at > HEALTH_CACHE_MS) cached = { at: now, value: check() };
      return cached.value;
    },
    async close() {
      for (const s of sttList) if (isStreamingStt(s)) s.close();
      await tts.close?.();
      metrics.close();
      await store.close();
    },
  };
}
