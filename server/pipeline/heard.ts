// What the person actually heard of a reply when they cut it off, from the pacer's played-frame tags and the
// TTS word timings: to the word where the engine gives word timing, else to the last whole sentence played.

export interface SpokenSegment {
  id: number;
  /** The text this segment speaks (one chunker piece). */
  text: string;
  /** Word start times (ms into the segment's audio) with their spans in `text`. */
  words: { audioMs: number; start: number; end: number }[];
  /** Total audio ms queued for the segment; undefined while synthesis is still running. */
  totalMs?: number;
}

/**
 * `played` is the last frame tag sent before the stop: segment id and ms of it played. Segments before it were
 * heard whole; in it, every word that had started playing counts as heard.
 */
export function heardText(segments: readonly SpokenSegment[], played: { segment: number; endMs: number } | null): string {
  if (!played) return '';
  const parts: string[] = [];
  for (const seg of segments) {
    if (seg.id < played.segment) {
      parts.push(seg.text);
      continue;
    }
    if (seg.id > played.segment) break;
    if (seg.totalMs !== undefined && played.endMs >= seg.totalMs - 1) {
      parts.push(seg.text);
    } else if (seg.words.length > 0) {
      const started = seg.words.filter((w) => w.audioMs < played.endMs);
      if (started.length > 0) parts.push(seg.text.slice(0, started.at(-1)!.end));
    }
    break;
  }
  return parts.join(' ').replace(/\s+/g, ' ').trim();
}
