// The OpenAI Realtime API (GA) as EVA speaks it, pure: client events parsed and checked, the `session` object
// and how `session.update` changes it, items, and the error shape. No sockets, no timers (realtime/session.ts is
// the stateful adapter). Field names follow OpenAI's API reference; what EVA does not use is accepted and
// ignored, because stock clients send it (`tracing`, `tools`, `prompt`) and break on an `error` for it.

/** The one audio format EVA speaks on the WebSocket: 24 kHz mono PCM16 little-endian. */
export const REALTIME_RATE = 24000;

/** OpenAI's voice names: none is an EVA voice, so each means EVA's default voice (docs/realtime.md). */
export const OPENAI_VOICES = new Set(['alloy', 'ash', 'ballad', 'coral', 'echo', 'sage', 'shimmer', 'verse', 'marin', 'cedar', 'fable', 'onyx', 'nova']);

export interface TurnDetection {
  type: 'server_vad' | 'semantic_vad';
  threshold: number;
  prefix_padding_ms: number;
  silence_duration_ms: number;
  create_response: boolean;
  interrupt_response: boolean;
  /** semantic_vad only: accepted, EVA's end-of-turn predictor decides. */
  eagerness?: string;
  idle_timeout_ms: number | null;
}

export interface RealtimeSessionConfig {
  type: 'realtime';
  object: 'realtime.session';
  id: string;
  model: string;
  output_modalities: ('audio' | 'text')[];
  instructions: string;
  /** The voice as the client named it (EVA maps OpenAI's names to its default). */
  voice: string;
  turn_detection: TurnDetection | null;
  transcription: { model: string; language?: string; prompt?: string } | null;
  noise_reduction: unknown;
  speed: number;
  tools: unknown[];
  tool_choice: unknown;
  tracing: unknown;
  max_output_tokens: number | 'inf';
}

export class RealtimeError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly type: 'invalid_request_error' | 'server_error' = 'invalid_request_error',
  ) {
    super(message);
  }
}

export function defaultSession(opts: { id: string; model: string; instructions: string; endOfTurnMs: number; threshold: number }): RealtimeSessionConfig {
  return {
    type: 'realtime',
    object: 'realtime.session',
    id: opts.id,
    model: opts.model,
    output_modalities: ['audio'],
    instructions: opts.instructions,
    voice: 'alloy',
    turn_detection: {
      type: 'server_vad',
      threshold: opts.threshold,
      prefix_padding_ms: 200,
      silence_duration_ms: opts.endOfTurnMs,
      create_response: true,
      interrupt_response: true,
      idle_timeout_ms: null,
    },
    transcription: { model: 'eva' },
    noise_reduction: null,
    speed: 1,
    tools: [],
    tool_choice: 'auto',
    tracing: null,
    max_output_tokens: 'inf',
  };
}

const FORMAT = { type: 'audio/pcm', rate: REALTIME_RATE } as const;

/** The `session` object of `session.created` / `session.updated`. */
export function sessionJson(s: RealtimeSessionConfig): Record<string, unknown> {
  return {
    type: s.type,
    object: s.object,
    id: s.id,
    model: s.model,
    output_modalities: s.output_modalities,
    instructions: s.instructions,
    tools: s.tools,
    tool_choice: s.tool_choice,
    max_output_tokens: s.max_output_tokens,
    tracing: s.tracing,
    prompt: null,
    expires_at: 0,
    include: null,
    audio: {
      input: { format: FORMAT, transcription: s.transcription, noise_reduction: s.noise_reduction, turn_detection: s.turn_detection },
      output: { format: FORMAT, voice: s.voice, speed: s.speed },
    },
  };
}

// ---- client events -----------------------------------------------------------------------------------------

export type ContentPart = { type: 'input_text' | 'output_text' | 'text'; text: string } | { type: 'input_audio' | 'output_audio'; transcript: string | null; audio?: string };

export interface ItemInput {
  id?: string;
  type: 'message';
  role: 'user' | 'assistant' | 'system';
  content: ContentPart[];
}

export type ClientEvent =
  | { type: 'session.update'; event_id?: string; session: Record<string, unknown> }
  | { type: 'input_audio_buffer.append'; event_id?: string; audio: Buffer }
  | { type: 'input_audio_buffer.commit'; event_id?: string }
  | { type: 'input_audio_buffer.clear'; event_id?: string }
  | { type: 'conversation.item.create'; event_id?: string; previous_item_id?: string | null; item: ItemInput }
  | { type: 'conversation.item.retrieve'; event_id?: string; item_id: string }
  | { type: 'conversation.item.truncate'; event_id?: string; item_id: string; content_index: number; audio_end_ms: number }
  | { type: 'conversation.item.delete'; event_id?: string; item_id: string }
  | { type: 'response.create'; event_id?: string; response: Record<string, unknown> }
  | { type: 'response.cancel'; event_id?: string; response_id?: string }
  /** WebRTC only: stop the audio playing on the track (the agents SDK sends it with every interrupt()). */
  | { type: 'output_audio_buffer.clear'; event_id?: string };

/** Client frames above this get an `error` (the socket itself refuses frames over WS_MAX_PAYLOAD). */
export const MAX_EVENT_BYTES = 8 * 1024 * 1024;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(m: Record<string, unknown>, key: string, required: true): string;
function str(m: Record<string, unknown>, key: string, required?: false): string | undefined;
function str(m: Record<string, unknown>, key: string, required = false): string | undefined {
  const v = m[key];
  if (v === undefined || v === null) {
    if (required) throw new RealtimeError('missing_required_parameter', `Missing required parameter: '${key}'.`, key);
    return undefined;
  }
  if (typeof v !== 'string') throw new RealtimeError('invalid_type', `Invalid type for '${key}': expected a string.`, key);
  return v;
}

/** The client's `event_id` of a frame that failed to parse, when it can be found (for the error's `event_id`). */
export function eventIdOf(text: string): string | undefined {
  try {
    const m = JSON.parse(text) as unknown;
    return isObject(m) && typeof m.event_id === 'string' ? m.event_id : undefined;
  } catch {
    return undefined;
  }
}

export function decodeFrame(data: ArrayBuffer | string): string {
  try {
    return typeof data === 'string' ? data : utf8.decode(data);
  } catch {
    throw new RealtimeError('invalid_json', 'The frame is not valid UTF-8.');
  }
}

export function parseClientEvent(text: string): ClientEvent {
  if (Buffer.byteLength(text) > MAX_EVENT_BYTES) throw new RealtimeError('message_too_large', `Events are limited to ${MAX_EVENT_BYTES} bytes.`);
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new RealtimeError('invalid_json', "The server could not parse the event: it is not valid JSON.");
  }
  if (!isObject(msg)) throw new RealtimeError('invalid_json', 'An event must be a JSON object.');
  const type = str(msg, 'type', true);
  const event_id = str(msg, 'event_id');
  switch (type) {
    case 'session.update': {
      if (!isObject(msg.session)) throw new RealtimeError('missing_required_parameter', "Missing required parameter: 'session'.", 'session');
      return { type, event_id, session: msg.session };
    }
    case 'input_audio_buffer.append': {
      const audio = str(msg, 'audio', true);
      if (audio.length % 4 !== 0 || !BASE64_RE.test(audio)) throw new RealtimeError('invalid_value', "Invalid 'audio': not valid base64.", 'audio');
      const pcm = Buffer.from(audio, 'base64');
      if (pcm.length % 2 !== 0) throw new RealtimeError('invalid_value', "Invalid 'audio': PCM16 needs an even number of bytes.", 'audio');
      return { type, event_id, audio: pcm };
    }
    case 'input_audio_buffer.commit':
    case 'input_audio_buffer.clear':
      return { type, event_id };
    case 'conversation.item.create':
      return { type, event_id, previous_item_id: str(msg, 'previous_item_id') ?? null, item: parseItem(msg.item) };
    case 'conversation.item.retrieve':
    case 'conversation.item.delete':
      return { type, event_id, item_id: str(msg, 'item_id', true) };
    case 'conversation.item.truncate': {
      const item_id = str(msg, 'item_id', true);
      const ms = msg.audio_end_ms;
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new RealtimeError('invalid_value', "Invalid 'audio_end_ms': expected a number ≥ 0.", 'audio_end_ms');
      const ci = msg.content_index ?? 0;
      if (typeof ci !== 'number') throw new RealtimeError('invalid_type', "Invalid type for 'content_index'.", 'content_index');
      return { type, event_id, item_id, content_index: ci, audio_end_ms: Math.floor(ms) };
    }
    case 'response.create': {
      const response = msg.response ?? {};
      if (!isObject(response)) throw new RealtimeError('invalid_type', "Invalid type for 'response': expected an object.", 'response');
      return { type, event_id, response };
    }
    case 'response.cancel':
      return { type, event_id, response_id: str(msg, 'response_id') };
    case 'output_audio_buffer.clear':
      return { type, event_id };
    default:
      throw new RealtimeError('invalid_value', `Invalid value: '${type.slice(0, 80)}'. Supported values are: session.update, input_audio_buffer.append, input_audio_buffer.commit, input_audio_buffer.clear, conversation.item.create, conversation.item.retrieve, conversation.item.truncate, conversation.item.delete, response.create, response.cancel, output_audio_buffer.clear.`, 'type');
  }
}

function parseItem(v: unknown): ItemInput {
  if (!isObject(v)) throw new RealtimeError('missing_required_parameter', "Missing required parameter: 'item'.", 'item');
  const type = v.type ?? 'message';
  if (type !== 'message') throw new RealtimeError('unsupported_item_type', `EVA supports only 'message' items (not '${String(type).slice(0, 40)}').`, 'item.type');
  const role = v.role;
  if (role !== 'user' && role !== 'assistant' && role !== 'system') throw new RealtimeError('invalid_value', "Invalid 'item.role': expected user, assistant or system.", 'item.role');
  if (!Array.isArray(v.content)) throw new RealtimeError('missing_required_parameter', "Missing required parameter: 'item.content'.", 'item.content');
  const content: ContentPart[] = [];
  for (const c of v.content as unknown[]) {
    if (!isObject(c)) throw new RealtimeError('invalid_type', "Invalid type for 'item.content[]'.", 'item.content');
    if (c.type === 'input_text' || c.type === 'output_text' || c.type === 'text') {
      content.push({ type: c.type, text: typeof c.text === 'string' ? c.text : '' });
    } else if (c.type === 'input_audio' || c.type === 'output_audio') {
      content.push({ type: c.type, transcript: typeof c.transcript === 'string' ? c.transcript : null });
    } else {
      throw new RealtimeError('unsupported_content_type', `EVA does not support '${String(c.type).slice(0, 40)}' content.`, 'item.content');
    }
  }
  const id = typeof v.id === 'string' ? v.id : undefined;
  return { ...(id !== undefined && { id }), type: 'message', role, content };
}

/** The text of an item's content (text parts, or transcripts of audio parts). */
export function contentText(content: readonly ContentPart[]): string {
  return content
    .map((c) => ('text' in c ? c.text : (c.transcript ?? '')))
    .join(' ')
    .trim();
}

function num(v: unknown, name: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw new RealtimeError('invalid_value', `Invalid '${name}': expected a number from ${lo} to ${hi}.`, name);
  return v;
}

function checkFormat(f: unknown, name: string): void {
  if (f === undefined || f === null) return;
  const type = typeof f === 'string' ? f : isObject(f) ? f.type : undefined;
  const rate = isObject(f) ? (f.rate ?? REALTIME_RATE) : REALTIME_RATE;
  if ((type !== 'audio/pcm' && type !== 'pcm16') || rate !== REALTIME_RATE) {
    throw new RealtimeError('unsupported_audio_format', `EVA speaks only {type:'audio/pcm', rate:24000} (24 kHz PCM16); '${name}' asked for ${JSON.stringify(f).slice(0, 60)}.`, name);
  }
}

/**
 * `session.update`: the new session, or a RealtimeError (nothing applied). Unknown and unused fields are ignored.
 * The old flat beta fields (`voice`, `turn_detection`, `input_audio_transcription`, `modalities`) are read too.
 */
export function applySessionUpdate(cur: RealtimeSessionConfig, u: Record<string, unknown>): RealtimeSessionConfig {
  const next: RealtimeSessionConfig = { ...cur, turn_detection: cur.turn_detection && { ...cur.turn_detection } };
  if (u.type !== undefined && u.type !== 'realtime') {
    throw new RealtimeError('invalid_value', `Invalid 'session.type': '${String(u.type).slice(0, 40)}' (EVA serves 'realtime' sessions).`, 'session.type');
  }
  if (typeof u.model === 'string') next.model = u.model;
  if (u.instructions !== undefined) {
    if (typeof u.instructions !== 'string') throw new RealtimeError('invalid_type', "Invalid type for 'session.instructions'.", 'session.instructions');
    next.instructions = u.instructions;
  }
  const modalities = u.output_modalities ?? u.modalities;
  if (modalities !== undefined) {
    if (!Array.isArray(modalities) || modalities.length === 0 || !modalities.every((m) => m === 'audio' || m === 'text')) {
      throw new RealtimeError('invalid_value', "Invalid 'session.output_modalities': expected ['audio'] or ['text'].", 'session.output_modalities');
    }
    next.output_modalities = modalities.includes('audio') ? ['audio'] : ['text'];
  }
  if (u.tools !== undefined) next.tools = Array.isArray(u.tools) ? u.tools : [];
  if (u.tool_choice !== undefined) next.tool_choice = u.tool_choice;
  if (u.tracing !== undefined) next.tracing = u.tracing;
  if (u.max_output_tokens !== undefined) next.max_output_tokens = u.max_output_tokens === 'inf' ? 'inf' : num(u.max_output_tokens, 'session.max_output_tokens', 1, 1e6);
  const audio = isObject(u.audio) ? u.audio : {};
  const input = isObject(audio.input) ? audio.input : {};
  const output = isObject(audio.output) ? audio.output : {};
  checkFormat(input.format ?? u.input_audio_format, 'session.audio.input.format');
  checkFormat(output.format ?? u.output_audio_format, 'session.audio.output.format');
  const voice = output.voice ?? u.voice;
  if (voice !== undefined) {
    if (typeof voice !== 'string' || voice.length > 100) throw new RealtimeError('invalid_type', "Invalid 'session.audio.output.voice'.", 'session.audio.output.voice');
    next.voice = voice;
  }
  if (output.speed !== undefined) next.speed = num(output.speed, 'session.audio.output.speed', 0.25, 4);
  if ('noise_reduction' in input) next.noise_reduction = input.noise_reduction;
  const transcription = 'transcription' in input ? input.transcription : u.input_audio_transcription;
  if (transcription === null) next.transcription = null;
  else if (isObject(transcription)) {
    next.transcription = {
      model: typeof transcription.model === 'string' ? transcription.model : 'eva',
      ...(typeof transcription.language === 'string' && { language: transcription.language }),
      ...(typeof transcription.prompt === 'string' && { prompt: transcription.prompt }),
    };
  }
  const td = 'turn_detection' in input ? input.turn_detection : u.turn_detection;
  if (td === null) next.turn_detection = null;
  else if (isObject(td)) next.turn_detection = turnDetection(cur.turn_detection, td);
  else if (td !== undefined) throw new RealtimeError('invalid_type', "Invalid type for 'session.audio.input.turn_detection'.", 'session.audio.input.turn_detection');
  return next;
}

function turnDetection(cur: TurnDetection | null, td: Record<string, unknown>): TurnDetection {
  const type = td.type ?? cur?.type ?? 'server_vad';
  if (type !== 'server_vad' && type !== 'semantic_vad') {
    throw new RealtimeError('invalid_value', "Invalid 'turn_detection.type': expected 'server_vad' or 'semantic_vad'.", 'session.audio.input.turn_detection.type');
  }
  const base: TurnDetection = cur ?? {
    type,
    threshold: 0.5,
    prefix_padding_ms: 200,
    silence_duration_ms: 480,
    create_response: true,
    interrupt_response: true,
    idle_timeout_ms: null,
  };
  const bool = (v: unknown, name: string, dflt: boolean): boolean => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw new RealtimeError('invalid_type', `Invalid type for 'turn_detection.${name}': expected a boolean.`, `session.audio.input.turn_detection.${name}`);
    return v;
  };
  const out: TurnDetection = {
    type,
    threshold: td.threshold === undefined ? base.threshold : num(td.threshold, 'turn_detection.threshold', 0, 1),
    prefix_padding_ms: td.prefix_padding_ms === undefined ? base.prefix_padding_ms : num(td.prefix_padding_ms, 'turn_detection.prefix_padding_ms', 0, 2000),
    silence_duration_ms: td.silence_duration_ms === undefined ? base.silence_duration_ms : num(td.silence_duration_ms, 'turn_detection.silence_duration_ms', 64, 10_000),
    create_response: bool(td.create_response, 'create_response', base.create_response),
    interrupt_response: bool(td.interrupt_response, 'interrupt_response', base.interrupt_response),
    idle_timeout_ms: typeof td.idle_timeout_ms === 'number' ? td.idle_timeout_ms : null,
  };
  if (type === 'semantic_vad') out.eagerness = typeof td.eagerness === 'string' ? td.eagerness : 'auto';
  return out;
}

/** The EVA voice for a client's voice name: OpenAI's names mean EVA's default (null). */
export function evaVoice(voice: string): string | null {
  return OPENAI_VOICES.has(voice.toLowerCase()) ? null : voice;
}
