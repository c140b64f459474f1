// Sentence chunker for streamed LLM text: a pure, synchronous core. push(delta) returns the pieces that are ready
// to speak; flush() returns the rest at the end of the reply (and resets for the next one).
//
// - The first piece of a reply goes out as soon as a clause is complete (`, ; : —` once ≥ firstClauseMinChars):
//   the TTS starts on it while the model is still writing the rest of the sentence.
// - After that, whole sentences (. ! ? … and line breaks); sentences shorter than minChars merge with the next;
//   a sentence still going at clauseAfterChars is cut at its next clause boundary, and past maxChars at a word.
// - Not boundaries: 3.14, $4.50, 1,000,000, 10:30, v1.2.3, example.com, a.b@c.io (no space after the mark),
//   Mr. Dr. e.g. U.S. a.m. and other abbreviations, initials (J. R. R. Tolkien), "Well... I think" (an ellipsis
//   followed by a lowercase word).
// - A boundary is decided only once the text after it has arrived ("3." waits for the next character): the
//   undecided tail stays in the buffer. So feeding text char by char or all at once gives the same pieces.
// - Markdown noise (**bold**, # headings, `code`, ``` fences, bullets, > quotes, --- rules) is stripped first,
//   by a streaming cleaner that likewise holds back what it cannot decide yet ("*" may become "**").

export interface ChunkerOptions {
  /** The first piece may end at a clause boundary once it is at least this long. */
  firstClauseMinChars?: number;
  /** Sentences shorter than this merge with the next one. */
  minChars?: number;
  /** A later sentence this long without an end is cut at its next clause boundary. */
  clauseAfterChars?: number;
  /** Hard cap: past this, the piece is cut at the last clause boundary or word boundary before it. */
  maxChars?: number;
}

export interface Chunker {
  push(delta: string): string[];
  flush(): string[];
}

const ABBREVIATIONS = new Set([
  'mr', 'mrs', 'ms', 'dr', 'st', 'prof', 'sr', 'jr', 'mt', 'ft', 'vs', 'etc', 'inc', 'ltd', 'corp', 'approx', 'dept', 'cf', 'al',
]);
const TERMINATORS = '.!?…';
const CLOSERS = '"\'”’)]»';
const isSpace = (c: string | undefined): boolean => c !== undefined && /\s/.test(c);

/** Whether the '.' at `dot` ends an abbreviation or an initial rather than a sentence. */
function isAbbreviation(text: string, dot: number): boolean {
  let k = dot;
  while (k > 0 && /[A-Za-z.]/.test(text[k - 1]!)) k--;
  if (k > 0 && /\d/.test(text[k - 1]!)) return false; // "5B." is not an initial
  const token = text.slice(k, dot).replace(/^\.+/, '');
  if (!token) return false;
  if (ABBREVIATIONS.has(token.toLowerCase())) return true;
  if (/^(?:[A-Za-z]\.)+[A-Za-z]$/.test(token)) return true; // e.g, i.e, U.S, a.m, p.m
  return /^[A-HJ-Z]$/.test(token); // an initial ("J. R. R."); "I." is a word
}

type Candidate = { kind: 'sentence' | 'clause'; end: number; next: number } | { kind: 'undecided'; end: number };

/** Boundary candidates of `buf` in order. With `final`, the end of the buffer decides what waits on it. */
function* candidates(buf: string, final: boolean): Generator<Candidate> {
  const n = buf.length;
  for (let i = 0; i < n; i++) {
    const c = buf[i]!;
    if (c === '\n') {
      yield { kind: 'sentence', end: i, next: i + 1 };
    } else if (TERMINATORS.includes(c)) {
      let j = i;
      while (j < n && TERMINATORS.includes(buf[j]!)) j++;
      const run = buf.slice(i, j);
      while (j < n && CLOSERS.includes(buf[j]!)) j++;
      if (j === n) {
        yield final ? { kind: 'sentence', end: n, next: n } : { kind: 'undecided', end: j };
        return;
      }
      if (isSpace(buf[j])) {
        const closed = j > i + run.length;
        if (run === '.' && !closed && isAbbreviation(buf, i)) {
          // not a boundary
        } else if ((/\.\.|…/.test(run) && !/[!?]/.test(run)) || closed) {
          // An ellipsis ends the sentence unless a lowercase word or "I" goes on: "Well... I think". So does a
          // quoted or bracketed one: 'She said "no way!" to him.'
          let m = j;
          while (m < n && isSpace(buf[m])) m++;
          if (m + 1 >= n && !final) {
            yield { kind: 'undecided', end: j }; // the next word's first two characters decide
            return;
          }
          if (!continues(buf, m)) yield { kind: 'sentence', end: j, next: j };
        } else {
          yield { kind: 'sentence', end: j, next: j };
        }
      }
      i = j - 1;
    } else if (c === ',' || c === ';' || c === ':') {
      // Only with a space after: 1,000 and 10:30 and https:// are not clause boundaries.
      if (i + 1 === n) {
        if (!final) yield { kind: 'undecided', end: n };
        return;
      }
      if (isSpace(buf[i + 1])) yield { kind: 'clause', end: i + 1, next: i + 1 };
    } else if (c === '—' || ((c === '–' || c === '-') && isSpace(buf[i - 1]))) {
      // An em dash is a break spaced or not; an en dash or hyphen only spaced ("10–20", "well-known" are not).
      let j = i;
      while (j < n && buf[j] === '-') j++;
      if (c !== '-') j = i + 1;
      if (j === n) {
        if (!final) yield { kind: 'undecided', end: n };
        return;
      }
      if (c === '—' || (isSpace(buf[i - 1]) && isSpace(buf[j]))) yield { kind: 'clause', end: j, next: j };
      i = j - 1;
    }
  }
}

/** Whether the word at `m` continues a sentence after an ellipsis: lowercase, or the pronoun "I" (I, I'm, I'll). */
function continues(buf: string, m: number): boolean {
  const c = buf[m];
  if (c === undefined) return false;
  if (/\p{Ll}/u.test(c)) return true;
  return c === 'I' && !/\p{L}/u.test(buf[m + 1] ?? '');
}

const squash = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** The splitter over clean text. */
function createSplitter(o: Required<ChunkerOptions>) {
  let buf = '';
  let first = true;

  function cut(final: boolean): { end: number; next: number } | null {
    let lastClause = -1;
    for (const cand of candidates(buf, final)) {
      if (cand.end > o.maxChars) break;
      if (cand.kind === 'undecided') return null;
      const len = squash(buf.slice(0, cand.end)).length;
      if (cand.kind === 'sentence') {
        if (len >= o.minChars) return cand;
      } else {
        if (len >= (first ? o.firstClauseMinChars : o.clauseAfterChars)) return cand;
        if (len >= o.minChars) lastClause = cand.end;
      }
    }
    if (buf.length <= o.maxChars) return null;
    // Too long without a usable boundary: the last clause boundary, else the last word boundary, else hard.
    if (lastClause > 0) return { end: lastClause, next: lastClause };
    for (let w = o.maxChars; w > 0; w--) if (isSpace(buf[w])) return { end: w, next: w };
    return { end: o.maxChars, next: o.maxChars };
  }

  function take(final: boolean): string[] {
    const out: string[] = [];
    for (let c = cut(final); c; c = cut(final)) {
      const piece = squash(buf.slice(0, c.end));
      buf = buf.slice(c.next).trimStart(); // the buffer never starts with a space: indices agree however text came
      if (piece) (out.push(piece), (first = false));
    }
    if (final) {
      const rest = squash(buf);
      if (rest) out.push(rest);
      buf = '';
      first = true;
    }
    return out;
  }

  return {
    push(text: string): string[] {
      buf = (buf + text).trimStart();
      if (!buf) return [];
      return take(false);
    },
    flush: (): string[] => take(true),
  };
}

const PLAIN = /[^\n`*_]+/y;

/** Streaming markdown stripper: returns the clean text that is decided; holds back an ambiguous tail. */
function createCleaner() {
  let raw = '';
  let lineStart = true;
  let lastChar = ''; // last non-space character emitted, for the "2 * 3" rule

  /** Past the blanks from `k`; -1 (wait) if they run to the end: more may come, and all of them go. */
  function afterBlanks(r: string, k: number, final: boolean): number {
    while (r[k] === ' ' || r[k] === '\t') k++;
    return k === r.length && !final ? -1 : k;
  }

  /** At a line start: where the line's text begins after any marker, or -1 to wait for more. */
  function lineBody(r: string, i: number, final: boolean): number {
    const j = afterBlanks(r, i, final);
    if (j < 0 || j === r.length) return j;
    const nl = r.indexOf('\n', j);
    const lineEnd = nl === -1 ? r.length : nl;
    const line = r.slice(j, lineEnd);
    const c = r[j]!;
    if (c === '`' || c === '~') {
      if (nl === -1 && !final && /^(`{1,2}|~{1,2})$/.test(line)) return -1;
      if (/^(```|~~~)/.test(line)) return nl === -1 && !final ? -1 : lineEnd; // a fence and its info string
      return j;
    }
    if (c === '#') {
      const m = /^#{1,6}/.exec(line)!;
      if (m[0].length === line.length && nl === -1 && !final) return -1;
      if (r[j + m[0].length] === ' ' || r[j + m[0].length] === '\t') return afterBlanks(r, j + m[0].length, final);
      return j; // "#1 priority"
    }
    if (c === '>') return afterBlanks(r, j + 1, final);
    if ('-*_+•'.includes(c)) {
      // A rule (--- or * * *) is only markers and spaces: wait while the line could still be one.
      if (/^[-*_ \t]*$/.test(line) && nl === -1 && !final) return -1;
      if (/^([-*_])([ \t]*\1){2,}[ \t]*$/.test(line)) return lineEnd;
      if (c !== '_' && (r[j + 1] === ' ' || r[j + 1] === '\t')) return afterBlanks(r, j + 1, final);
    }
    return j;
  }

  function run(final: boolean): string {
    const r = raw;
    let out = '';
    let i = 0;
    while (i < r.length) {
      if (lineStart) {
        const k = lineBody(r, i, final);
        if (k < 0) break;
        i = k;
        lineStart = false;
        continue;
      }
      const c = r[i]!;
      if (c === '\n') {
        out += c;
        i++;
        lineStart = true;
      } else if (c === '`') {
        i++;
      } else if (c === '*' || c === '_') {
        let j = i;
        while (j < r.length && r[j] === c) j++;
        if (j === r.length && !final) break; // the run may go on
        if (j - i >= 2 || c === '_') {
          if (j - i === 1) out += c; // a lone underscore is text (snake_case)
          i = j;
          continue;
        }
        // A lone '*' is emphasis, except between numbers: "2 * 3".
        let k = j;
        while (k < r.length && (r[k] === ' ' || r[k] === '\t')) k++;
        if (k === r.length && !final) break;
        const prev = /\S(?=\s*$)/.exec(out)?.[0] ?? lastChar;
        if (/\d/.test(prev) && /\d/.test(r[k] ?? '')) out += c;
        i = j;
      } else {
        PLAIN.lastIndex = i;
        const m = PLAIN.exec(r)![0];
        out += m;
        i += m.length;
      }
    }
    raw = r.slice(i);
    lastChar = /\S(?=\s*$)/.exec(out)?.[0] ?? lastChar;
    return out;
  }

  return {
    push(text: string): string {
      raw += text;
      return run(false);
    },
    flush(): string {
      const out = run(true);
      raw = '';
      lineStart = true;
      lastChar = '';
      return out;
    },
  };
}

/** The text a chunker speaks for `text`, before splitting: markdown noise removed. */
export function stripMarkdown(text: string): string {
  const c = createCleaner();
  return c.push(text) + c.flush();
}

export function createChunker(opts: ChunkerOptions = {}): Chunker {
  const o: Required<ChunkerOptions> = {
    firstClauseMinChars: opts.firstClauseMinChars ?? 20,
    minChars: opts.minChars ?? 12,
    clauseAfterChars: opts.clauseAfterChars ?? 120,
    maxChars: opts.maxChars ?? 220,
  };
  const cleaner = createCleaner();
  const splitter = createSplitter(o);
  return {
    push: (delta) => splitter.push(cleaner.push(delta)),
    flush: () => [...splitter.push(cleaner.flush()), ...splitter.flush()],
  };
}
