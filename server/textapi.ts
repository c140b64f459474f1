// The seeds' text API, independent of the transport: `POST /chat` and WebSocket `/ws/chat` (docs/protocol.md,
// "HTTP API"). app.ts parses the bytes and calls these; validation, the turn, persistence and the error → reply
// mapping live here. One text turn = system prompt + bounded history + the user's message, streamed through the LLM
// (a fallback chain in production), then the user and assistant messages stored together as one turn.
import { randomUUID } from 'node:crypto';
import { EvaError, isAbort, type ErrorCode } from './errors.js';
import type { Logger } from './log.js';
import { SESSION_ID_RE } from './signaling.js';
import type { Metrics } from './metrics.js';
import type { ChatMessage, LlmProvider } from './providers/types.js';
import type { Store } from './store.js';

/** Longest accepted user message, in characters (code points). */
export const MAX_MESSAGE_CHARS = 4000;
/** Longest accepted `/ws/chat` frame; anything longer cannot be a valid message. */
export const MAX_WS_CHAT_BYTES = 64 * 1024;
const CHAT_SHAPE = '{"message":string,"session_id"?:string}';
const WS_SHAPE = '{"type":"message","content":string,"session_id"?:string}';

export interface ChatRequest {
  message: string;
  /** Absent: a new session is created. */
  sessionId?: string;
}

export interface ChatResponse {
  response: string;
  session_id: string;
  latency_ms: number;
  provider: string;
}

export type WsChatEvent =
  | { type: 'token'; content: string }
  | { type: 'end'; response: string; latency_ms: number; ttft_ms: number | null; session_id: string; provider: string }
  | { type: 'error'; code: ErrorCode; message: string };

export interface TextApiDeps {
  /** The LLM, usually a fallback chain (which names the adapter that answered each request via `onProvider`). */
  llm: LlmProvider;
  store: Store;
  metrics: Metrics;
  systemPrompt: string;
  /** Most stored messages (user and assistant, not turns) sent back to the model as context. */
  historyLimit: number;
  log: Logger;
  /** Monotonic ms clock for latencies. Default performance.now. */
  now?: () => number;
}

export interface TextApi {
  /** One text turn for `POST /chat`. Rejects with an EvaError (or an abort error when `signal` fires). */
  handleChat(req: ChatRequest, signal: AbortSignal): Promise<ChatResponse>;
  /**
   * One text turn for `/ws/chat`: `token` events as the reply streams, then `end`; a failure is one `error`
   * event. Never rejects; after an abort (the socket went away) it emits nothing more.
   */
  streamChat(req: ChatRequest, signal: AbortSignal, emit: (msg: WsChatEvent) => void): Promise<void>;
}

/** Why the fields are not acceptable, or null when they are. Shared by both transports. */
function fieldProblem(message: unknown, sessionId: unknown, messageField: string): string | null {
  if (typeof message !== 'string') return `"${messageField}" must be a string`;
  if (message.trim() === '') return `"${messageField}" must not be empty`;
  if (message.length > MAX_MESSAGE_CHARS && [...message].length > MAX_MESSAGE_CHARS) {
    return `"${messageField}" is longer than ${MAX_MESSAGE_CHARS} characters`;
  }
  if (sessionId !== undefined && sessionId !== null) {
    if (typeof sessionId !== 'string' || !SESSION_ID_RE.test(sessionId)) {
      return '"session_id" must be 1-64 characters of A-Z, a-z, 0-9, "_" or "-"';
    }
  }
  return null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function toRequest(message: string, sessionId: unknown): ChatRequest {
  return typeof sessionId === 'string' ? { message, sessionId } : { message };
}

/** Validates a parsed `POST /chat` body. `session_id: null` counts as absent (some seed clients send it). */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw new EvaError('bad_request', `the body must be a JSON object ${CHAT_SHAPE}`, { status: 400 });
  const problem = fieldProblem(body.message, body.session_id, 'message');
  if (problem) throw new EvaError('bad_request', `${problem}; expected ${CHAT_SHAPE}`, { status: 400 });
  return toRequest(body.message as string, body.session_id);
}

/** Validates one `/ws/chat` frame (text or binary holding UTF-8 JSON). */
export function parseWsChatMessage(raw: string | ArrayBuffer): ChatRequest {
  const size = typeof raw === 'string' ? raw.length : raw.byteLength;
  if (size > MAX_WS_CHAT_BYTES) throw new EvaError('too_large', `a message is at most ${MAX_WS_CHAT_BYTES} bytes; expected ${WS_SHAPE}`);
  let value: unknown;
  try {
    const text = typeof raw === 'string' ? raw : new TextDecoder('utf-8', { fatal: true }).decode(raw);
    value = JSON.parse(text);
  } catch {
    throw new EvaError('bad_message', `not JSON; expected ${WS_SHAPE}`);
  }
  if (!isObject(value)) throw new EvaError('bad_message', `expected ${WS_SHAPE}`);
  if (value.type !== 'message') {
    const got = typeof value.type === 'string' ? `"type":${JSON.stringify(value.type.slice(0, 40))}` : 'no "type"';
    throw new EvaError('bad_message', `expected ${WS_SHAPE}; got ${got}`);
  }
  const problem = fieldProblem(value.content, value.session_id, 'content');
  if (problem) throw new EvaError('bad_message', `${problem}; expected ${WS_SHAPE}`);
  return toRequest(value.content as string, value.session_id);
}

/**
 * The one place an error becomes a client reply body: an EvaError keeps its code, status and message (they are
 * written for clients); anything else is a 500 `internal` with a generic message. Never a stack.
 */
export function errorBody(err: unknown, log?: Logger): { status: number; body: { error: { code: ErrorCode; message: string } } } {
  if (err instanceof EvaError) return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  log?.error('unexpected error', { err });
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}

const round1 = (ms: number): number => Math.round(ms * 10) / 10;

interface TurnResult {
  response: string;
  sessionId: string;
  latencyMs: number;
  ttftMs: number | null;
  provider: string;
}

export function createTextApi(deps: TextApiDeps): TextApi {
  const { llm, store, metrics, log } = deps;
  const now = deps.now ?? (() => performance.now());

  /** Provider failures become a 502 EvaError with a client-safe message; aborts pass through untouched. */
  function providerFailure(err: unknown): unknown {
    if (isAbort(err)) return err;
    const provider = (err as { provider?: unknown }).provider;
    const name = typeof provider === 'string' ? provider : llm.name;
    if (err instanceof EvaError) {
      metrics.providerError(name, err.code);
      log.warn('text turn failed', { provider: name, code: err.code, message: err.message });
      return err;
    }
    metrics.providerError(name, 'provider_error');
    log.error('text turn failed with an unexpected error', { provider: name, err });
    return new EvaError('provider_error', `the language model (${name}) failed; try again`, { status: 502, retryable: true, cause: err });
  }

  async function runTurn(req: ChatRequest, signal: AbortSignal, onDelta: (delta: string) => void): Promise<TurnResult> {
    const t0 = now();
    const sessionId = req.sessionId ?? randomUUID();
    // An unknown id is taken as given, so its next request finds this session: which ids a caller may name is
    // the access layer's rule (server/http/access.ts `session`), applied before this. It is created only when
    // the turn succeeds, so failed requests leave no empty sessions behind.
    const [session, stored] = await Promise.all([store.getSession(sessionId), store.history(sessionId, deps.historyLimit)]);
    const history = stored.filter((m) => m.content !== '');
    // A cut history may start mid-turn; start it at a user message, as every provider accepts.
    while (history.length && history[0]!.role !== 'user') history.shift();
    const messages: ChatMessage[] = [
      // A session's own prompt (set by a call's config) wins; null means the server's current default.
      { role: 'system', content: session?.systemPrompt ?? deps.systemPrompt },
      ...history.map((m) => ({ role: m.role, content: m.content })),
      { role: 'user', content: req.message },
    ];

    let response = '';
    let provider = llm.name;
    let ttftMs: number | null = null;
    let sinkError: unknown;
    try {
      for await (const delta of llm.stream(messages, { signal, onProvider: (name) => (provider = name) })) {
        if (signal.aborted) break;
        if (!delta) continue;
        if (ttftMs === null) ttftMs = now() - t0;
        response += delta;
        try {
          onDelta(delta);
        } catch (err) {
          // The consumer failed, not the provider: stop the stream (break aborts it) and report it as such.
          sinkError = err;
          break;
        }
      }
    } catch (err) {
      throw providerFailure(err);
    }
    if (sinkError !== undefined) throw sinkError;
    // Some providers end quietly on abort: nothing is stored for a turn the client no longer waits for.
    signal.throwIfAborted();

    // appendTurn creates the session when it is new (in the database, so two nodes serving the first two
    // requests of one id at once share it). The store reports its own failures (never throws them); anything
    // else is logged: the answer is given.
    try {
      store.appendTurn(sessionId, [
        { role: 'user', content: req.message },
        { role: 'assistant', content: response },
      ]);
    } catch (err) {
      log.error('database: could not store the text turn', { err });
    }
    const latencyMs = now() - t0;
    metrics.observeStage('text_turn', latencyMs);
    metrics.turn('text');
    return { response, sessionId, latencyMs, ttftMs, provider };
  }

  return {
    async handleChat(req, signal) {
      const r = await runTurn(req, signal, () => {});
      return { response: r.response, session_id: r.sessionId, latency_ms: round1(r.latencyMs), provider: r.provider };
    },

    async streamChat(req, signal, emit) {
      try {
        const r = await runTurn(req, signal, (content) => emit({ type: 'token', content }));
        emit({
          type: 'end',
          response: r.response,
          latency_ms: round1(r.latencyMs),
          ttft_ms: r.ttftMs === null ? null : round1(r.ttftMs),
          session_id: r.sessionId,
          provider: r.provider,
        });
      } catch (err) {
        if (signal.aborted || isAbort(err)) return;
        emit({ type: 'error', ...errorBody(err, log).body.error });
      }
    },
  };
}
