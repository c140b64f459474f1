import t from 'tap';
import { EvaError, ProviderError } from './errors.js';
import type { Logger } from './log.js';
import { createMetrics } from './metrics.js';
import type { ChatMessage, LlmProvider } from './providers/types.js';
import { openStore } from './store.js';
import {
  MAX_MESSAGE_CHARS,
  createTextApi,
  errorBody,
  parseChatRequest,
  parseWsChatMessage,
  type TextApiDeps,
  type WsChatEvent,
} from './textapi.js';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/**
 * A tiny in-test LLM: yields fixed deltas, advancing a fake clock by `stepMs` before each, and records the
 * messages it was given. The unit under test is textapi, not a provider.
 */
function fakeLlm(clock: { ms: number }, opts: { deltas?: string[]; stepMs?: number; fail?: unknown; failAfter?: number } = {}) {
  const calls: ChatMessage[][] = [];
  const llm: LlmProvider = {
    name: 'chain',
    // A chain names the adapter that answers each request.
    async *stream(messages, { signal, onProvider }) {
      calls.push(messages.map((m) => ({ ...m })));
      onProvider?.('fake');
      const deltas = opts.deltas ?? ['Hel', 'lo', '', ' there.'];
      for (let i = 0; i < deltas.length; i++) {
        if (opts.fail !== undefined && i === (opts.failAfter ?? 0)) throw opts.fail;
        signal.throwIfAborted();
        clock.ms += opts.stepMs ?? 10;
        await Promise.resolve();
        yield deltas[i]!;
      }
      if (opts.fail !== undefined && (opts.failAfter ?? 0) >= deltas.length) throw opts.fail;
    },
    async health() {
      return { ok: true };
    },
  };
  return { llm, calls };
}

function setup(t: { teardown(fn: () => void): void }, llmOpts: Parameters<typeof fakeLlm>[1] = {}, extra: Partial<TextApiDeps> = {}) {
  const clock = { ms: 1000 };
  const { llm, calls } = fakeLlm(clock, llmOpts);
  const store = openStore(':memory:');
  const metrics = createMetrics({ defaultMetrics: false });
  t.teardown(async () => {
    await store.close();
    metrics.close();
  });
  const api = createTextApi({ llm, store, metrics, systemPrompt: 'SYS', historyLimit: 4, log: silent, now: () => clock.ms, ...extra });
  return { api, store, metrics, calls, clock };
}

const signal = () => new AbortController().signal;

t.test('parseChatRequest accepts a message with or without a session id', async (t) => {
  t.same(parseChatRequest({ message: 'hi' }), { message: 'hi' });
  t.same(parseChatRequest({ message: 'hi', session_id: 'a_B-9' }), { message: 'hi', sessionId: 'a_B-9' });
  t.same(parseChatRequest({ message: 'hi', session_id: null }), { message: 'hi' }, 'null counts as absent');
  t.same(parseChatRequest({ message: 'é'.repeat(MAX_MESSAGE_CHARS), extra: 1 }).message.length, MAX_MESSAGE_CHARS, 'exactly the limit, extra fields ignored');
  t.equal(parseChatRequest({ message: '😀'.repeat(MAX_MESSAGE_CHARS) }).message.length, 2 * MAX_MESSAGE_CHARS, 'the limit counts characters, not UTF-16 units');
});

t.test('parseChatRequest refuses each bad input with bad_request, status 400 and a clear message', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['a body that is not an object', 'hello', /body must be a JSON object/],
    ['null', null, /body must be a JSON object/],
    ['an array', [{ message: 'hi' }], /body must be a JSON object/],
    ['no message', {}, /"message" must be a string/],
    ['a number message', { message: 42 }, /"message" must be a string/],
    ['an empty message', { message: '' }, /"message" must not be empty/],
    ['a blank message', { message: '  \n ' }, /"message" must not be empty/],
    ['a message too long', { message: 'x'.repeat(MAX_MESSAGE_CHARS + 1) }, /longer than 4000 characters/],
    ['a session id with a slash', { message: 'hi', session_id: '../etc' }, /"session_id" must be 1-64 characters/],
    ['an empty session id', { message: 'hi', session_id: '' }, /"session_id"/],
    ['a session id too long', { message: 'hi', session_id: 'a'.repeat(65) }, /"session_id"/],
    ['a numeric session id', { message: 'hi', session_id: 7 }, /"session_id"/],
  ];
  for (const [name, body, message] of cases) {
    t.throws(() => parseChatRequest(body), { code: 'bad_request', status: 400, message }, name);
  }
  t.throws(() => parseChatRequest({}), { message: /expected \{"message":string,"session_id"\?:string\}/ }, 'names the expected shape');
});

t.test('parseWsChatMessage accepts the seeds\' message frame, as text or bytes', async (t) => {
  t.same(parseWsChatMessage('{"type":"message","content":"hi"}'), { message: 'hi' });
  const bytes = new TextEncoder().encode('{"type":"message","content":"héllo","session_id":"s1"}');
  t.same(parseWsChatMessage(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer), { message: 'héllo', sessionId: 's1' });
});

t.test('parseWsChatMessage refuses anything else with bad_message naming the expected shape', async (t) => {
  const shape = 'expected {"type":"message","content":string,"session_id"?:string}';
  t.throws(() => parseWsChatMessage('{"type":"chat"}'), { code: 'bad_message', message: `${shape}; got "type":"chat"` });
  const cases: [string, string | ArrayBuffer, RegExp][] = [
    ['not JSON', '{type: message}', /^not JSON; expected/],
    ['invalid UTF-8 bytes', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]).buffer, /^not JSON; expected/],
    ['a JSON string', '"message"', /^expected/],
    ['no type', '{"content":"hi"}', /got no "type"/],
    ['no content', '{"type":"message"}', /"content" must be a string/],
    ['empty content', '{"type":"message","content":""}', /"content" must not be empty/],
    ['a bad session id', '{"type":"message","content":"hi","session_id":"a b"}', /"session_id"/],
  ];
  for (const [name, raw, message] of cases) {
    t.throws(() => parseWsChatMessage(raw), { code: 'bad_message', message }, name);
    t.throws(() => parseWsChatMessage(raw), { message: new RegExp(shape.replace(/[{}"?()[\]|*+.^$\\]/g, '\\$&')) }, `${name}: names the shape`);
  }
  t.throws(() => parseWsChatMessage('x'.repeat(70_000)), { code: 'too_large' }, 'an oversized frame');
});

t.test('handleChat answers, creates a session, and carries history into the next call', async (t) => {
  const { api, store, calls } = setup(t);
  const first = await api.handleChat({ message: 'one' }, signal());
  t.match(first, { response: 'Hello there.', provider: 'fake' });
  t.match(first.session_id, /^[0-9a-f-]{36}$/, 'a new session id when none is given');
  t.equal(first.latency_ms, 40, 'latency from the injected clock: four deltas 10 ms apart (the empty one is skipped, not its time)');
  t.ok(await store.getSession(first.session_id), 'the session is stored');

  const second = await api.handleChat({ message: 'two', sessionId: first.session_id }, signal());
  t.equal(second.session_id, first.session_id);
  t.same(calls[1], [
    { role: 'system', content: 'SYS' },
    { role: 'user', content: 'one' },
    { role: 'assistant', content: 'Hello there.' },
    { role: 'user', content: 'two' },
  ], 'the model sees system + history + the new message');
  t.same(
    (await store.history(first.session_id, 10)).map((m) => [m.turn, m.role, m.content]),
    [
      [0, 'user', 'one'],
      [0, 'assistant', 'Hello there.'],
      [1, 'user', 'two'],
      [1, 'assistant', 'Hello there.'],
    ],
  );
});

t.test('history sent to the model is bounded and starts at a user message', async (t) => {
  const { api, calls } = setup(t, {}, { historyLimit: 3 });
  for (const m of ['a', 'b', 'c']) await api.handleChat({ message: m, sessionId: 'bounded' }, signal());
  t.same(
    calls[2]!.map((m) => m.content),
    ['SYS', 'b', 'Hello there.', 'c'],
    'the last 3 messages minus a leading assistant message',
  );
});

t.test('an unknown session id is created under that id', async (t) => {
  const { api, store } = setup(t);
  const r = await api.handleChat({ message: 'hi', sessionId: 'mine-1' }, signal());
  t.equal(r.session_id, 'mine-1');
  t.equal((await store.history('mine-1', 10)).length, 2);
});

t.test('streamChat emits tokens in order, then end with latency and ttft', async (t) => {
  const { api, metrics } = setup(t, { deltas: ['A', 'B', 'C'], stepMs: 25 });
  const events: WsChatEvent[] = [];
  await api.streamChat({ message: 'go', sessionId: 's' }, signal(), (e) => events.push(e));
  t.same(events, [
    { type: 'token', content: 'A' },
    { type: 'token', content: 'B' },
    { type: 'token', content: 'C' },
    { type: 'end', response: 'ABC', latency_ms: 75, ttft_ms: 25, session_id: 's', provider: 'fake' },
  ]);
  const text = await metrics.text();
  t.match(text, /eva_turns_total\{source="text"\} 1/);
  t.match(text, /eva_stage_latency_seconds_count\{stage="text_turn"\} 1/);
});

t.test('a reply with no tokens ends with ttft_ms null', async (t) => {
  const { api } = setup(t, { deltas: [] });
  const events: WsChatEvent[] = [];
  await api.streamChat({ message: 'go' }, signal(), (e) => events.push(e));
  t.match(events, [{ type: 'end', response: '', ttft_ms: null }]);
});

t.test('a provider timeout becomes a 504 error body without a stack, and nothing is stored', async (t) => {
  const fail = new ProviderError('groq', 'provider_timeout', 'no first token within 2000 ms', { retryable: true });
  const { api, store, metrics } = setup(t, { fail, failAfter: 1 });
  let caught: unknown;
  try {
    await api.handleChat({ message: 'hi', sessionId: 'f' }, signal());
  } catch (err) {
    caught = err;
  }
  const { status, body } = errorBody(caught);
  t.equal(status, 504, 'a stalled provider is a gateway timeout');
  t.same(body, { error: { code: 'provider_timeout', message: 'groq: no first token within 2000 ms' } });
  t.notMatch(JSON.stringify(body), /at .*\.ts|stack/i, 'no stack in the body');
  t.equal(await store.getSession('f'), undefined, 'a failed turn leaves no session');
  t.match(await metrics.text(), /eva_provider_errors_total\{provider="groq",code="provider_timeout"\} 1/);

  const events: WsChatEvent[] = [];
  await api.streamChat({ message: 'hi' }, signal(), (e) => events.push(e));
  t.same(events, [
    { type: 'token', content: 'Hel' },
    { type: 'error', code: 'provider_timeout', message: 'groq: no first token within 2000 ms' },
  ], 'the stream ends with one error event');
});

t.test('an unexpected provider exception is wrapped as provider_error, hiding its message', async (t) => {
  const { api } = setup(t, { fail: new TypeError('secret internal detail at /srv/x.js:1') });
  const err = await api.handleChat({ message: 'hi' }, signal()).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, EvaError);
  const { status, body } = errorBody(err);
  t.equal(status, 502);
  t.equal(body.error.code, 'provider_error');
  t.equal(body.error.message, 'the language model (chain) failed; try again');
});

t.test('an aborted turn rejects with the abort, emits nothing more, and stores nothing', async (t) => {
  const { api, store } = setup(t);
  const ac = new AbortController();
  ac.abort();
  await t.rejects(api.handleChat({ message: 'hi', sessionId: 'ab' }, ac.signal), { name: 'AbortError' });
  const events: WsChatEvent[] = [];
  const ac2 = new AbortController();
  await api.streamChat({ message: 'hi', sessionId: 'ab' }, ac2.signal, (e) => {
    events.push(e);
    ac2.abort();
  });
  t.same(events, [{ type: 'token', content: 'Hel' }], 'no end and no error after the abort');
  t.equal(await store.getSession('ab'), undefined);
});

t.test('errorBody maps any error to a client-safe body in one place', async (t) => {
  t.same(errorBody(new EvaError('bad_request', 'nope', { status: 400 })), { status: 400, body: { error: { code: 'bad_request', message: 'nope' } } });
  t.same(errorBody(new EvaError('rate_limited', 'slow down', { status: 429 })).status, 429);
  const logged: unknown[] = [];
  const log: Logger = { ...silent, error: (_m, f) => void logged.push(f) };
  t.same(errorBody(new Error('SQLITE_CORRUPT at /data/eva.db'), log), { status: 500, body: { error: { code: 'internal', message: 'internal error' } } });
  t.same(errorBody('a string'), { status: 500, body: { error: { code: 'internal', message: 'internal error' } } });
  t.equal(logged.length, 1, 'the unexpected error is logged server-side');
});
