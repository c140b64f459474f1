// The conversation items of a Realtime session, as the client sees them: what `conversation.item.added` /
// `done` / `retrieved` carry, in order, bounded. EVA's own history (what the model is given) is the agent's; these
// are the protocol's view of it, with each assistant item's audio spans kept for a later truncate.
import type { FrameTag } from '../../media/pacer.js';
import type { ContentPart } from './protocol.js';

export interface Item {
  id: string;
  object: 'realtime.item';
  type: 'message';
  status: 'completed' | 'incomplete' | 'in_progress';
  role: 'user' | 'assistant' | 'system';
  content: ContentPart[];
}

/** A piece of an assistant item's audio, to turn a client's `audio_end_ms` into a played position. */
export interface AudioSpan {
  segment: number;
  /** ms into the TTS segment where this span starts. */
  segStartMs: number;
  /** Where the span starts in the item's audio, ms. */
  atMs: number;
  durMs: number;
}

export interface StoredItem extends Item {
  audio?: AudioSpan[];
}

/** Items kept for retrieve/truncate: a long session forgets the oldest (bounded memory). */
export const MAX_ITEMS = 256;

type Send = (ev: Record<string, unknown> & { type: string }) => void;

export class ItemStore {
  private readonly items = new Map<string, StoredItem>();
  /** The newest item: the `previous_item_id` of the next one. */
  last: string | null = null;

  constructor(private readonly send: Send) {}

  get(id: string): StoredItem | undefined {
    return this.items.get(id);
  }

  has(id: string): boolean {
    return this.items.has(id);
  }

  delete(id: string): boolean {
    if (!this.items.delete(id)) return false;
    if (this.last === id) this.last = [...this.items.keys()].at(-1) ?? null;
    return true;
  }

  /** Append and announce (`conversation.item.added`, and `done` for an item that is complete). */
  add(item: StoredItem, phase: 'added' | 'done'): void {
    const previous = this.last;
    this.items.set(item.id, item);
    while (this.items.size > MAX_ITEMS) this.items.delete(this.items.keys().next().value!);
    this.last = item.id;
    this.send({ type: 'conversation.item.added', previous_item_id: previous, item: itemJson(item) });
    if (phase === 'done') this.send({ type: 'conversation.item.done', previous_item_id: previous, item: itemJson(item) });
  }

  previousOf(id: string): string | null {
    let prev: string | null = null;
    for (const k of this.items.keys()) {
      if (k === id) return prev;
      prev = k;
    }
    return prev;
  }
}

export function itemJson(item: Item): Record<string, unknown> {
  return { id: item.id, object: item.object, type: item.type, status: item.status, role: item.role, content: item.content.map((c) => ({ ...c })) };
}

/** The played position `audioEndMs` into an item's audio, as the pacer's frame tags give it; null = none. */
export function tagAt(spans: readonly AudioSpan[], audioEndMs: number): FrameTag | null {
  let tag: FrameTag | null = null;
  for (const s of spans) {
    if (s.atMs >= audioEndMs) break;
    tag = { segment: s.segment, endMs: s.segStartMs + Math.min(s.durMs, audioEndMs - s.atMs) };
  }
  return tag;
}
