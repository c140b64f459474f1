// The page's views: transcript, per-turn latency, event log and meters. Each keeps a bounded number of DOM
// entries (oldest dropped) so a long call cannot grow the page without limit.
import { meterFraction } from './levels.js';
import { METRIC_STAGES, type MetricsMessage } from './protocol.js';

const MAX_TRANSCRIPT = 200;
const MAX_LATENCY = 20;
const MAX_NOTICES = 5;
export const MAX_LOG = 200;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function trim(list: HTMLElement, max: number): void {
  while (list.childElementCount > max) list.firstElementChild?.remove();
}

/** Appends to a scrolling list, following the end only if the reader was already there. */
function append(list: HTMLElement, item: HTMLElement, max: number): void {
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(item);
  trim(list, max);
  if (atEnd) list.scrollTop = list.scrollHeight;
}

export function byId<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

/** User turns (spoken or typed) and EVA's replies, in arrival order, keyed by turn. */
export class TranscriptView {
  private readonly users = new Map<number, HTMLElement>();
  private readonly replies = new Map<number, { li: HTMLElement; text: HTMLElement }>();
  private readonly typed: { text: string; li: HTMLElement }[] = [];

  constructor(private readonly list: HTMLOListElement) {}

  divider(text: string): void {
    for (const li of this.list.querySelectorAll<HTMLElement>('.streaming')) this.settle(li);
    this.users.clear();
    this.replies.clear();
    this.typed.length = 0;
    this.add(el('li', 'divider', text));
  }

  typedTurn(text: string): void {
    const li = this.entry('user', 'You (typed)', text);
    this.typed.push({ text, li });
  }

  userTurn(turn: number, text: string, final: boolean): void {
    let li = this.users.get(turn);
    if (!li) {
      // A typed turn the server echoes as a transcript keeps its one entry.
      const i = this.typed.findIndex((t) => t.text === text.trim());
      li = i >= 0 ? this.typed.splice(i, 1)[0]!.li : this.entry('user', 'You', text);
      this.users.set(turn, li);
    }
    li.querySelector('.text')!.textContent = text;
    li.classList.toggle('interim', !final);
  }

  replyDelta(turn: number, delta: string): void {
    this.reply(turn).text.textContent += delta;
  }

  replyEnd(turn: number, text: string): void {
    const r = this.reply(turn);
    r.text.textContent = text;
    this.settle(r.li);
  }

  interrupted(turn: number, heard: string): void {
    const r = this.reply(turn);
    this.settle(r.li);
    r.li.classList.add('interrupted');
    r.li.append(el('span', 'heard', `interrupted — you heard: “${heard}”`));
  }

  private reply(turn: number): { li: HTMLElement; text: HTMLElement } {
    let r = this.replies.get(turn);
    if (!r) {
      const li = this.entry('eva streaming', 'EVA', '');
      r = { li, text: li.querySelector<HTMLElement>('.text')! };
      this.replies.set(turn, r);
      // Screen readers hear the reply once it is whole, not every streamed fragment.
      this.list.setAttribute('aria-busy', 'true');
    }
    return r;
  }

  private settle(li: HTMLElement): void {
    li.classList.remove('streaming');
    if (!this.list.querySelector('.streaming')) this.list.removeAttribute('aria-busy');
  }

  private entry(kind: string, who: string, text: string): HTMLElement {
    const li = el('li', kind);
    li.append(el('span', 'who', who), el('span', 'text', text));
    this.add(li);
    return li;
  }

  private add(li: HTMLElement): void {
    append(this.list, li, MAX_TRANSCRIPT);
  }
}

/** One row per turn: first_audio_ms large, the other stages small, plus what the page itself measured. */
export class LatencyView {
  /** A page measurement that came before its turn's metrics; it goes on the next row. */
  private pending: number | null = null;

  constructor(private readonly list: HTMLOListElement) {}

  metrics(m: MetricsMessage): void {
    const li = el('li');
    li.dataset.turn = String(m.turn);
    if (m.first_audio_ms !== undefined) li.dataset.audio = '';
    const head = el('div', 'first-audio');
    head.append(
      el('span', 'value', m.first_audio_ms === undefined ? '—' : `${Math.round(m.first_audio_ms)} ms`),
      el('span', 'label', ` to first audio · turn ${m.turn}`),
    );
    const stages = el('ul', 'stages');
    for (const [key, label] of METRIC_STAGES) {
      const v = m[key];
      if (typeof v === 'number') stages.append(el('li', undefined, `${label} ${Math.round(v)} ms`));
    }
    li.append(head, stages);
    this.list.prepend(li);
    while (this.list.childElementCount > MAX_LATENCY) this.list.lastElementChild?.remove();
    if (this.pending !== null && m.first_audio_ms !== undefined) {
      this.measured(this.pending);
      this.pending = null;
    }
  }

  /** Speech end → reply audio start as heard by the page (includes EVA's end-of-turn wait and the network). */
  measured(gapMs: number): void {
    const li = this.list.firstElementChild as HTMLElement | null;
    // The newest row, if it is a turn that sent audio and has no measurement yet.
    if (!li || li.dataset.audio === undefined || li.querySelector('.measured')) {
      this.pending = gapMs;
      return;
    }
    li.append(el('div', 'measured', `measured here: your speech ended → EVA audible ${Math.round(gapMs)} ms`));
  }

  clear(): void {
    this.pending = null;
  }
}

/**
 * Things the server reports during a call that do not end it (no speech-to-text, a turn whose provider failed):
 * shown beside the call, the same notice again counted instead of repeated. Fatal errors go to the error box.
 */
export class NoticeView {
  private readonly shown = new Map<string, { li: HTMLElement; count: number }>();

  constructor(private readonly list: HTMLUListElement) {}

  add(code: string, message: string): void {
    const key = `${code}\n${message}`;
    const seen = this.shown.get(key);
    if (seen) {
      seen.count++;
      seen.li.querySelector('.count')!.textContent = `×${seen.count}`;
      this.list.append(seen.li); // the newest last
      return;
    }
    const li = el('li');
    li.dataset.code = code;
    li.append(el('span', 'text', message), el('span', 'code', code), el('span', 'count'));
    this.shown.set(key, { li, count: 1 });
    this.list.append(li);
    while (this.list.childElementCount > MAX_NOTICES) {
      const first = this.list.firstElementChild as HTMLElement;
      for (const [k, v] of this.shown) if (v.li === first) this.shown.delete(k);
      first.remove();
    }
    this.list.hidden = false;
  }

  clear(): void {
    this.shown.clear();
    this.list.replaceChildren();
    this.list.hidden = true;
  }
}

export type LogDir = 'in' | 'out' | 'local';

export class LogView {
  constructor(
    private readonly list: HTMLOListElement,
    private readonly count: HTMLElement,
  ) {}

  add(at: number, dir: LogDir, text: string, total: number): void {
    const li = el('li', dir);
    const arrow = dir === 'in' ? '←' : dir === 'out' ? '→' : '•';
    li.append(el('time', undefined, (at / 1000).toFixed(3)), el('span', 'dir', arrow), el('span', 'text', text));
    append(this.list, li, MAX_LOG);
    this.count.textContent = String(total);
  }
}

export class MeterView {
  private last = -1;

  constructor(private readonly meter: HTMLElement) {}

  set(level: number): void {
    const pct = Math.round(meterFraction(level) * 100);
    if (pct === this.last) return;
    this.last = pct;
    this.meter.style.setProperty('--level', `${pct}%`);
    this.meter.setAttribute('aria-valuenow', String(pct));
  }
}
