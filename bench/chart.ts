// Hand-written SVG charts for the bench report: a waterfall (horizontal bars on a time axis) and a histogram.
// Pure string building, no DOM and no chart library; the output opens in any browser and diffs as text.

export interface WaterfallRow {
  label: string;
  /** ms from the origin (the last voiced sample). */
  start: number;
  end: number;
  color: string;
  /** Drawn after the bar, e.g. "152 ms". Default: the bar's length. */
  note?: string;
}

export interface Marker {
  label: string;
  value: number;
  color?: string;
  dashed?: boolean;
}

export const COLORS = {
  wait: '#9aa5b1',
  stt: '#4c78a8',
  llm: '#72b7b2',
  llm2: '#54a24b',
  tts: '#f58518',
  eva: '#e45756',
  net: '#b279a2',
  total: '#333333',
  bar: '#4c78a8',
  p50: '#54a24b',
  p95: '#e45756',
  target: '#888888',
} as const;

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

/** Escape text for SVG/XML content and attributes. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Numbers in SVG: at most one decimal, no "-0". */
export function n(x: number): string {
  const r = Math.round(x * 10) / 10;
  return String(Object.is(r, -0) ? 0 : r);
}

/** A 1/2/5 × 10^k step giving about `target` intervals over `range`. */
export function niceStep(range: number, target = 8, integer = false): number {
  if (!(range > 0)) return 1;
  const raw = range / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return integer ? Math.max(1, Math.round(m * mag)) : m * mag;
  return 10 * mag;
}

/** Tick values from 0 (or the step below min) to at least max; `integer` keeps steps whole (counts). */
export function ticks(min: number, max: number, target = 8, integer = false): number[] {
  const step = niceStep(max - min, target, integer);
  const out: number[] = [];
  const from = Math.floor(min / step) * step;
  for (let v = from; v <= max + step * 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  if (out[out.length - 1]! < max) out.push(out[out.length - 1]! + step);
  return out;
}

function doc(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="22" font-size="15" font-weight="600">${esc(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Vertical marker lines with their labels; a label near the right edge goes to the left of its line. */
function markerLines(markers: readonly Marker[], x: (v: number) => number, top: number, bottom: number, rightEdge = Infinity): string[] {
  const out: string[] = [];
  markers.forEach((m, i) => {
    const px = x(m.value);
    const color = m.color ?? COLORS.total;
    const flip = px > rightEdge - 90;
    out.push(`<line x1="${n(px)}" y1="${n(top)}" x2="${n(px)}" y2="${n(bottom)}" stroke="${color}" stroke-width="1.5"${m.dashed ? ' stroke-dasharray="5 4"' : ''}/>`);
    out.push(`<text x="${n(flip ? px - 3 : px + 3)}" y="${n(top + 12 + i * 13)}" fill="${color}" font-size="11" stroke="#ffffff" stroke-width="3" paint-order="stroke"${flip ? ' text-anchor="end"' : ''}>${esc(m.label)}</text>`);
  });
  return out;
}

/**
 * A waterfall: one bar per row on a shared ms axis, rows top to bottom. `subtitle` goes under the title
 * (what the chart shows and how it was measured).
 */
export function waterfallSvg(rows: readonly WaterfallRow[], opts: { title: string; subtitle?: string; markers?: readonly Marker[]; width?: number }): string {
  const width = opts.width ?? 760;
  const labelW = 190;
  const noteW = 70;
  const rowH = 24;
  const top = opts.subtitle ? 56 : 40;
  const plotW = width - labelW - noteW - 16;
  const maxV = Math.max(1, ...rows.map((r) => r.end), ...(opts.markers ?? []).map((m) => m.value));
  const axis = ticks(0, maxV, 8);
  const axisMax = axis[axis.length - 1]!;
  const x = (v: number): number => labelW + (Math.max(0, v) / axisMax) * plotW;
  const bottom = top + rows.length * rowH + 8;
  const body: string[] = [];
  if (opts.subtitle) body.push(`<text x="16" y="40" fill="#555" font-size="11">${esc(opts.subtitle)}</text>`);
  for (const t of axis) {
    body.push(`<line x1="${n(x(t))}" y1="${top - 4}" x2="${n(x(t))}" y2="${n(bottom)}" stroke="#e6e6e6"/>`);
    body.push(`<text x="${n(x(t))}" y="${n(bottom + 14)}" text-anchor="middle" fill="#555" font-size="11">${n(t)}</text>`);
  }
  body.push(`<text x="${n(labelW + plotW / 2)}" y="${n(bottom + 30)}" text-anchor="middle" fill="#555" font-size="11">ms after the last voiced sample left the client</text>`);
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const x0 = x(r.start);
    const w = Math.max(1, x(r.end) - x0);
    body.push(`<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${esc(r.label)}</text>`);
    body.push(`<rect x="${n(x0)}" y="${y + 4}" width="${n(w)}" height="${rowH - 8}" fill="${r.color}" rx="2"/>`);
    body.push(`<text x="${n(x0 + w + 4)}" y="${y + 16}" fill="#333" font-size="11">${esc(r.note ?? `${n(r.end - r.start)} ms`)}</text>`);
  });
  body.push(...markerLines(opts.markers ?? [], x, top - 4, bottom, width));
  return doc(width, bottom + 40, opts.title, body);
}

/** Bin width for a histogram of `values`: a nice step giving ~12 bins, at least `minBin`. */
export function binWidth(values: readonly number[], minBin = 5): number {
  if (values.length === 0) return minBin;
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return Math.max(minBin, niceStep(hi - lo || minBin, 12));
}

/** Counts per bin: bins start at floor(min / w) × w. */
export function bins(values: readonly number[], w: number): { from: number; count: number }[] {
  if (values.length === 0) return [];
  const lo = Math.floor(Math.min(...values) / w) * w;
  const hi = Math.max(...values);
  const count = Math.floor((hi - lo) / w) + 1;
  const out = Array.from({ length: count }, (_, i) => ({ from: lo + i * w, count: 0 }));
  for (const v of values) out[Math.min(count - 1, Math.floor((v - lo) / w))]!.count++;
  return out;
}

/** A histogram of ms values with optional marker lines (p50, p95, targets). */
export function histogramSvg(values: readonly number[], opts: { title: string; subtitle?: string; markers?: readonly Marker[]; width?: number; xLabel?: string }): string {
  const width = opts.width ?? 760;
  const height = 320;
  const left = 48;
  const right = 20;
  const top = opts.subtitle ? 60 : 44;
  const bottom = height - 48;
  const body: string[] = [];
  if (opts.subtitle) body.push(`<text x="16" y="40" fill="#555" font-size="11">${esc(opts.subtitle)}</text>`);
  if (values.length === 0) {
    body.push(`<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#555">no values</text>`);
    return doc(width, height, opts.title, body);
  }
  const w = binWidth(values);
  const hist = bins(values, w);
  const lo = hist[0]!.from;
  // One empty bin of room on the right, and room for every marker.
  const hi = Math.max(hist[hist.length - 1]!.from + 2 * w, ...(opts.markers ?? []).map((m) => m.value + w));
  const maxCount = Math.max(...hist.map((b) => b.count));
  const yTicks = ticks(0, maxCount, Math.min(5, maxCount), true);
  const yMax = yTicks[yTicks.length - 1]!;
  const plotW = width - left - right;
  const x = (v: number): number => left + ((v - lo) / (hi - lo)) * plotW;
  const y = (c: number): number => bottom - (c / yMax) * (bottom - top);
  for (const t of yTicks) {
    body.push(`<line x1="${left}" y1="${n(y(t))}" x2="${width - right}" y2="${n(y(t))}" stroke="#eeeeee"/>`);
    body.push(`<text x="${left - 6}" y="${n(y(t) + 4)}" text-anchor="end" fill="#555" font-size="11">${n(t)}</text>`);
  }
  for (const b of hist) {
    if (b.count === 0) continue;
    body.push(`<rect x="${n(x(b.from) + 1)}" y="${n(y(b.count))}" width="${n(Math.max(1, x(b.from + w) - x(b.from) - 2))}" height="${n(bottom - y(b.count))}" fill="${COLORS.bar}"><title>${n(b.from)}–${n(b.from + w)} ms: ${b.count}</title></rect>`);
  }
  for (const t of ticks(lo, hi, 8)) {
    if (t < lo || t > hi) continue;
    body.push(`<line x1="${n(x(t))}" y1="${bottom}" x2="${n(x(t))}" y2="${bottom + 4}" stroke="#555"/>`);
    body.push(`<text x="${n(x(t))}" y="${bottom + 16}" text-anchor="middle" fill="#555" font-size="11">${n(t)}</text>`);
  }
  body.push(`<line x1="${left}" y1="${bottom}" x2="${width - right}" y2="${bottom}" stroke="#555"/>`);
  body.push(`<text x="${n(left + plotW / 2)}" y="${bottom + 34}" text-anchor="middle" fill="#555" font-size="11">${esc(opts.xLabel ?? `ms (bins of ${n(w)} ms)`)}</text>`);
  body.push(`<text x="14" y="${n((top + bottom) / 2)}" transform="rotate(-90 14 ${n((top + bottom) / 2)})" text-anchor="middle" fill="#555" font-size="11">turns</text>`);
  body.push(...markerLines(opts.markers ?? [], x, top, bottom, width - right));
  return doc(width, height, opts.title, body);
}

export interface LinePoint {
  x: number;
  y: number;
}

/** A small line chart with points (load: lag or CPU against calls). */
export function lineSvg(series: readonly { label: string; color: string; points: readonly LinePoint[] }[], opts: { title: string; xLabel: string; yLabel: string; markers?: readonly Marker[]; width?: number }): string {
  const width = opts.width ?? 760;
  const height = 320;
  const left = 56;
  const right = 140;
  const top = 44;
  const bottom = height - 48;
  const all = series.flatMap((s) => s.points);
  const body: string[] = [];
  if (all.length === 0) {
    body.push(`<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#555">no values</text>`);
    return doc(width, height, opts.title, body);
  }
  const xt = ticks(0, Math.max(...all.map((p) => p.x)), 8, true);
  const yt = ticks(0, Math.max(1e-9, ...all.map((p) => p.y), ...(opts.markers ?? []).map((m) => m.value)), 5);
  const xMax = xt[xt.length - 1]!;
  const yMax = yt[yt.length - 1]!;
  const x = (v: number): number => left + (v / xMax) * (width - left - right);
  const y = (v: number): number => bottom - (v / yMax) * (bottom - top);
  for (const t of yt) {
    body.push(`<line x1="${left}" y1="${n(y(t))}" x2="${width - right}" y2="${n(y(t))}" stroke="#eeeeee"/>`);
    body.push(`<text x="${left - 6}" y="${n(y(t) + 4)}" text-anchor="end" fill="#555" font-size="11">${n(t)}</text>`);
  }
  for (const t of xt) body.push(`<text x="${n(x(t))}" y="${bottom + 16}" text-anchor="middle" fill="#555" font-size="11">${n(t)}</text>`);
  body.push(`<line x1="${left}" y1="${bottom}" x2="${width - right}" y2="${bottom}" stroke="#555"/>`);
  body.push(`<text x="${n((left + width - right) / 2)}" y="${bottom + 34}" text-anchor="middle" fill="#555" font-size="11">${esc(opts.xLabel)}</text>`);
  body.push(`<text x="14" y="${n((top + bottom) / 2)}" transform="rotate(-90 14 ${n((top + bottom) / 2)})" text-anchor="middle" fill="#555" font-size="11">${esc(opts.yLabel)}</text>`);
  for (const m of opts.markers ?? []) {
    body.push(`<line x1="${left}" y1="${n(y(m.value))}" x2="${width - right}" y2="${n(y(m.value))}" stroke="${m.color ?? COLORS.target}" stroke-dasharray="5 4"/>`);
    body.push(`<text x="${left + 4}" y="${n(y(m.value) - 4)}" fill="${m.color ?? COLORS.target}" font-size="11">${esc(m.label)}</text>`);
  }
  series.forEach((s, i) => {
    const pts = s.points.map((p) => `${n(x(p.x))},${n(y(p.y))}`).join(' ');
    body.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of s.points) body.push(`<circle cx="${n(x(p.x))}" cy="${n(y(p.y))}" r="3" fill="${s.color}"/>`);
    body.push(`<rect x="${width - right + 8}" y="${top + i * 18}" width="10" height="10" fill="${s.color}"/>`);
    body.push(`<text x="${width - right + 22}" y="${top + i * 18 + 9}" font-size="11">${esc(s.label)}</text>`);
  });
  return doc(width, height, opts.title, body);
}
