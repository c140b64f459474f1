// The `response.*` sequence of a Realtime session: one response at a time, opened by `response.create` or by
// the agent's first words or audio, announced item and content part, deltas, and the closing `…done` events
// with `response.done` (completed, cancelled with its reason, failed). Audio spans are recorded per response so
// that a client's truncate can be mapped back onto the TTS segments.
import { randomBytes } from 'node:crypto';
import { REALTIME_RATE, type ContentPart, type RealtimeSessionConfig } from './protocol.js';
import { itemJson, type AudioSpan, type ItemStore, type StoredItem } from './items.js';

export interface Response {
  id: string;
  itemId: string;
  text: string;
  audioMs: number;
  spans: AudioSpan[];
  /** The output item and its content part were announced. */
  open: boolean;
  segMs: Map<number, number>;
  cancelReason: 'turn_detected' | 'client_cancelled';
}

type Send = (ev: Record<string, unknown> & { type: string }) => void;

export const newId = (prefix: string): string => `${prefix}_${randomBytes(12).toString('base64url')}`;

export class Responses {
  current: Response | null = null;
  /** false (WebRTC): audio is recorded for truncation but not sent as `response.output_audio.delta`. */
  audioEvents = true;
  /** Told after each `response.done` (the WebRTC session's output_audio_buffer bookkeeping). */
  onFinished: ((id: string) => void) | null = null;

  constructor(
    private readonly send: Send,
    private readonly items: ItemStore,
    private readonly session: () => RealtimeSessionConfig,
    private readonly conversationId: string,
  ) {}

  private get audio(): boolean {
    return this.session().output_modalities.includes('audio');
  }

  /** A new response (`response.created`); its output is announced when it has some. */
  create(): Response {
    const r: Response = { id: newId('resp'), itemId: newId('item'), text: '', audioMs: 0, spans: [], open: false, segMs: new Map(), cancelReason: 'turn_detected' };
    this.current = r;
    this.send({ type: 'response.created', response: this.json(r, 'in_progress', null, []) });
    return r;
  }

  /** The response in progress with its output item announced (opened on its first text or audio). */
  open(): Response {
    const r = this.current ?? this.create();
    if (r.open) return r;
    r.open = true;
    const item: StoredItem = { id: r.itemId, object: 'realtime.item', type: 'message', status: 'in_progress', role: 'assistant', content: [] };
    this.send({ type: 'response.output_item.added', response_id: r.id, output_index: 0, item: itemJson(item) });
    this.items.add(item, 'added');
    const part = this.audio ? { type: 'audio', transcript: '' } : { type: 'text', text: '' };
    this.send({ type: 'response.content_part.added', response_id: r.id, item_id: r.itemId, output_index: 0, content_index: 0, part });
    return r;
  }

  text(delta: string): void {
    const r = this.open();
    r.text += delta;
    const where = { response_id: r.id, item_id: r.itemId, output_index: 0, content_index: 0 };
    this.send({ type: this.audio ? 'response.output_audio_transcript.delta' : 'response.output_text.delta', ...where, delta });
  }

  audioDelta(pcm: Int16Array, segment: number): void {
    const r = this.open();
    const durMs = (pcm.length * 1000) / REALTIME_RATE;
    const segStartMs = r.segMs.get(segment) ?? 0;
    r.segMs.set(segment, segStartMs + durMs);
    r.spans.push({ segment, segStartMs, atMs: r.audioMs, durMs });
    r.audioMs += durMs;
    if (!this.audioEvents) return;
    const bytes = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    this.send({ type: 'response.output_audio.delta', response_id: r.id, item_id: r.itemId, output_index: 0, content_index: 0, delta: bytes.toString('base64') });
  }

  /** Close the response in progress; a cancelled one keeps `heard` (what was played) as its transcript. */
  finish(status: 'completed' | 'cancelled' | 'failed', heard?: string, error?: Record<string, unknown>): void {
    const r = this.current;
    if (!r) return;
    this.current = null;
    const output: unknown[] = [];
    if (r.open) {
      const text = status === 'cancelled' && heard !== undefined ? heard : r.text.trim();
      const where = { response_id: r.id, item_id: r.itemId, output_index: 0, content_index: 0 };
      const content: ContentPart[] = this.audio ? [{ type: 'output_audio', transcript: text }] : [{ type: 'output_text', text }];
      if (this.audio) {
        this.send({ type: 'response.output_audio.done', ...where });
        this.send({ type: 'response.output_audio_transcript.done', ...where, transcript: text });
        this.send({ type: 'response.content_part.done', ...where, part: { type: 'audio', transcript: text } });
      } else {
        this.send({ type: 'response.output_text.done', ...where, text });
        this.send({ type: 'response.content_part.done', ...where, part: { type: 'text', text } });
      }
      const item: StoredItem = this.items.get(r.itemId) ?? { id: r.itemId, object: 'realtime.item', type: 'message', role: 'assistant', status: 'completed', content };
      Object.assign(item, { status: status === 'completed' ? 'completed' : 'incomplete', content, audio: r.spans });
      const json = itemJson(item);
      output.push(json);
      this.send({ type: 'response.output_item.done', response_id: r.id, output_index: 0, item: json });
      this.send({ type: 'conversation.item.done', previous_item_id: this.items.previousOf(r.itemId), item: json });
    }
    const details = status === 'completed' ? null : status === 'cancelled' ? { type: 'cancelled', reason: r.cancelReason } : { type: 'failed', error: error ?? null };
    this.send({ type: 'response.done', response: this.json(r, status, details, output) });
    this.onFinished?.(r.id);
  }

  private json(r: Response, status: string, details: unknown, output: unknown[]): Record<string, unknown> {
    const s = this.session();
    return {
      object: 'realtime.response',
      id: r.id,
      status,
      status_details: details,
      output,
      conversation_id: this.conversationId,
      output_modalities: s.output_modalities,
      max_output_tokens: s.max_output_tokens,
      audio: { output: { format: { type: 'audio/pcm', rate: REALTIME_RATE }, voice: s.voice } },
      // EVA's providers report no token counts here.
      usage:
        status === 'in_progress'
          ? null
          : { total_tokens: 0, input_tokens: 0, output_tokens: 0, input_token_details: { text_tokens: 0, audio_tokens: 0, cached_tokens: 0 }, output_token_details: { text_tokens: 0, audio_tokens: 0 } },
      metadata: null,
    };
  }
}
