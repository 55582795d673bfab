/**
 * Hand-made SVG charts for the HTML report (no dependency): stacked columns, stacked horizontal
 * bars, lines and a scatter plot, each a string of inline SVG. Every chart has an `id`, and every
 * mark (bar, point) carries `data-series`, `data-index` and `data-value` (the exact number, as
 * `String(value)`) so that a test can check a chart against the data it was drawn from; a `<title>`
 * inside each mark is its tooltip. Charts scale with the page (`viewBox`, width 100%).
 */

/** Category colours (Tableau 10), in series order. */
export const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** Colours of the three parts of a layer's time. */
export const PART_COLORS = { dispatch: '#4e79a7', compute: '#f28e2b', combine: '#59a14f' } as const;

/** Text escaped for XML / HTML content and attribute values. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A number rounded for SVG coordinates (2 decimals). */
const r2 = (x: number): string => String(Math.round(x * 100) / 100);

/** About `count` round tick values covering [lo, hi] (lo <= hi), steps of 1, 2, 2.5 or 5 x 10^k. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) hi = lo + (lo === 0 ? 1 : Math.abs(lo));
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  const start = Math.floor(lo / step + 1e-9) * step;
  for (let v = start; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  if (out[out.length - 1] < hi - step * 1e-9) out.push(out[out.length - 1] + step);
  return out;
}

export interface Series {
  name: string;
  color: string;
  /** One value per category (null = no value). */
  values: readonly (number | null)[];
}

interface Box {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"';

function open(id: string, kind: string, box: Box, label: string): string {
  return (
    `<svg id="${esc(id)}" class="chart" data-chart="${kind}" viewBox="0 0 ${box.width} ${box.height}" width="100%" ` +
    `preserveAspectRatio="xMidYMid meet" role="img" aria-label="${esc(label)}" ${FONT} font-size="12">`
  );
}

/** Legend items in one row at the top of a chart. */
function legendSvg(items: readonly { name: string; color: string; dashed?: boolean }[], x: number, y: number): string {
  let cx = x;
  const parts: string[] = [];
  for (const it of items) {
    parts.push(
      it.dashed
        ? `<line x1="${r2(cx)}" y1="${y - 4}" x2="${r2(cx + 14)}" y2="${y - 4}" stroke="${it.color}" stroke-width="2.5" stroke-dasharray="4 2"/>`
        : `<rect x="${r2(cx)}" y="${y - 10}" width="12" height="12" rx="2" fill="${it.color}"/>`,
    );
    parts.push(`<text x="${r2(cx + 18)}" y="${y}" fill="#333">${esc(it.name)}</text>`);
    cx += 30 + it.name.length * 6.6;
  }
  return `<g class="legend">${parts.join('')}</g>`;
}

/** Horizontal grid lines and labels of a value axis on the left. */
function yAxis(box: Box, ticks: number[], y: (v: number) => number, format: (v: number) => string, label: string): string {
  const parts: string[] = [];
  for (const t of ticks) {
    const py = y(t);
    parts.push(`<line x1="${box.left}" x2="${box.width - box.right}" y1="${r2(py)}" y2="${r2(py)}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${box.left - 6}" y="${r2(py + 4)}" text-anchor="end" fill="#555">${esc(format(t))}</text>`);
  }
  const midY = (box.top + box.height - box.bottom) / 2;
  parts.push(`<text x="14" y="${r2(midY)}" transform="rotate(-90 14 ${r2(midY)})" text-anchor="middle" fill="#333">${esc(label)}</text>`);
  return `<g class="axis y">${parts.join('')}</g>`;
}

/** Labels of category slots along the bottom, every `every`-th one. */
function xCategories(box: Box, labels: readonly string[], x: (i: number) => number, every: number, label: string): string {
  const parts: string[] = [];
  const base = box.height - box.bottom;
  parts.push(`<line x1="${box.left}" x2="${box.width - box.right}" y1="${base}" y2="${base}" stroke="#999"/>`);
  labels.forEach((l, i) => {
    if (i % every !== 0) return;
    // Labels at the edges stay inside the chart (about 6.6 px per character at 12 px).
    const half = (l.length * 6.6) / 2;
    const px = x(i);
    const anchor = px + half > box.width - 2 ? 'end' : px - half < 2 ? 'start' : 'middle';
    const at = anchor === 'end' ? Math.min(px + 8, box.width - 2) : anchor === 'start' ? Math.max(px - 8, 2) : px;
    parts.push(`<text x="${r2(at)}" y="${base + 16}" text-anchor="${anchor}" fill="#555">${esc(l)}</text>`);
  });
  if (label) parts.push(`<text x="${r2((box.left + box.width - box.right) / 2)}" y="${box.height - 6}" text-anchor="middle" fill="#333">${esc(label)}</text>`);
  return `<g class="axis x">${parts.join('')}</g>`;
}

/** What the category charts (columns, lines) share: ids, categories along x, a value axis. */
interface CategoryChartOptions {
  id: string;
  /** Category labels along x (e.g. engine layer ids). */
  categories: readonly string[];
  series: readonly Series[];
  yLabel: string;
  xLabel?: string;
  format: (v: number) => string;
  /** Top of the value axis (default: the largest value drawn). */
  yMax?: number;
  width?: number;
  height?: number;
}

export interface ColumnsOptions extends CategoryChartOptions {
  /** Stacked bottom to top in this order. */
  series: readonly Series[];
  /** Drawn as a dashed line over the columns (e.g. another placement's total). */
  overlay?: Series;
}

/** Stacked vertical columns, one per category; marks are the stacked `rect`s. */
export function stackedColumns(o: ColumnsOptions): string {
  const box: Box = { width: o.width ?? 1200, height: o.height ?? 300, left: 84, right: 16, top: 30, bottom: 42 };
  const n = o.categories.length;
  const totals = o.categories.map((_, i) => o.series.reduce((s, se) => s + (se.values[i] ?? 0), 0));
  const maxV = o.yMax ?? Math.max(0, ...totals, ...(o.overlay?.values.map((v) => v ?? 0) ?? []));
  const ticks = niceTicks(0, maxV > 0 ? maxV : 1);
  const top = ticks[ticks.length - 1];
  const plotW = box.width - box.left - box.right;
  const plotH = box.height - box.top - box.bottom;
  const slot = plotW / Math.max(1, n);
  const barW = Math.max(1, slot * 0.78);
  const xc = (i: number): number => box.left + slot * (i + 0.5);
  const y = (v: number): number => box.top + plotH * (1 - v / top);
  const parts: string[] = [open(o.id, 'stacked-columns', box, o.yLabel)];
  parts.push(yAxis(box, ticks, y, o.format, o.yLabel));
  parts.push(xCategories(box, o.categories, xc, Math.max(1, Math.ceil(n / 30)), o.xLabel ?? ''));
  const marks: string[] = [];
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (const se of o.series) {
      const v = se.values[i];
      if (v === null || v === undefined) continue;
      const y0 = y(acc);
      const y1 = y(acc + v);
      acc += v;
      marks.push(
        `<rect class="mark" x="${r2(xc(i) - barW / 2)}" y="${r2(y1)}" width="${r2(barW)}" height="${r2(Math.max(0, y0 - y1))}" fill="${se.color}" ` +
          `data-series="${esc(se.name)}" data-index="${i}" data-value="${v}"><title>${esc(`${o.categories[i]}: ${se.name} ${o.format(v)}`)}</title></rect>`,
      );
    }
  }
  parts.push(`<g class="marks">${marks.join('')}</g>`);
  if (o.overlay) parts.push(overlayLine(o.overlay, xc, y, o.categories, o.format));
  const legend = [...o.series.map((s) => ({ name: s.name, color: s.color })), ...(o.overlay ? [{ name: o.overlay.name, color: o.overlay.color, dashed: true }] : [])];
  parts.push(legendSvg(legend, box.left, 16));
  parts.push('</svg>');
  return parts.join('');
}

function overlayLine(se: Series, x: (i: number) => number, y: (v: number) => number, categories: readonly string[], format: (v: number) => string): string {
  const pts: string[] = [];
  const dots: string[] = [];
  se.values.forEach((v, i) => {
    if (v === null || v === undefined) return;
    pts.push(`${pts.length === 0 ? 'M' : 'L'}${r2(x(i))},${r2(y(v))}`);
    dots.push(
      `<circle class="mark" cx="${r2(x(i))}" cy="${r2(y(v))}" r="2.5" fill="${se.color}" data-series="${esc(se.name)}" data-index="${i}" data-value="${v}">` +
        `<title>${esc(`${categories[i]}: ${se.name} ${format(v)}`)}</title></circle>`,
    );
  });
  return `<g class="overlay"><path d="${pts.join('')}" fill="none" stroke="${se.color}" stroke-width="2" stroke-dasharray="5 3"/>${dots.join('')}</g>`;
}

export interface LinesOptions extends CategoryChartOptions {
  yMin?: number;
}

/** One line per series over the categories; marks are the points (`circle`). */
export function lineChart(o: LinesOptions): string {
  const box: Box = { width: o.width ?? 1200, height: o.height ?? 280, left: 84, right: 16, top: 30, bottom: 42 };
  const n = o.categories.length;
  const all = o.series.flatMap((s) => s.values.filter((v): v is number => v !== null && v !== undefined));
  let lo = o.yMin ?? Math.min(0, ...all);
  let hi = o.yMax ?? Math.max(...all, lo + 1e-12);
  if (o.yMin === undefined && all.length > 0) {
    // Lines near a level (balancedness ~0.9) read better on a zoomed axis.
    const mn = Math.min(...all);
    if (mn > 0 && mn > 0.5 * hi) lo = mn - (hi - mn) * 0.25;
  }
  if (hi <= lo) hi = lo + 1;
  const ticks = niceTicks(lo, hi);
  lo = ticks[0];
  hi = ticks[ticks.length - 1];
  const plotW = box.width - box.left - box.right;
  const plotH = box.height - box.top - box.bottom;
  const x = (i: number): number => box.left + (n <= 1 ? plotW / 2 : (plotW * i) / (n - 1));
  const y = (v: number): number => box.top + plotH * (1 - (v - lo) / (hi - lo));
  const parts: string[] = [open(o.id, 'lines', box, o.yLabel)];
  parts.push(yAxis(box, ticks, y, o.format, o.yLabel));
  parts.push(xCategories(box, o.categories, x, Math.max(1, Math.ceil(n / 30)), o.xLabel ?? ''));
  for (const se of o.series) {
    const pts: string[] = [];
    const dots: string[] = [];
    se.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      pts.push(`${pts.length === 0 ? 'M' : 'L'}${r2(x(i))},${r2(y(v))}`);
      dots.push(
        `<circle class="mark" cx="${r2(x(i))}" cy="${r2(y(v))}" r="${n > 80 ? 1.6 : 3}" fill="${se.color}" data-series="${esc(se.name)}" data-index="${i}" data-value="${v}">` +
          `<title>${esc(`${o.categories[i]}: ${se.name} ${o.format(v)}`)}</title></circle>`,
      );
    });
    parts.push(`<g class="series" data-series="${esc(se.name)}"><path d="${pts.join('')}" fill="none" stroke="${se.color}" stroke-width="2"/>${dots.join('')}</g>`);
  }
  parts.push(legendSvg(o.series.map((s) => ({ name: s.name, color: s.color })), box.left, 16));
  parts.push('</svg>');
  return parts.join('');
}

export interface BarsOptions {
  id: string;
  /** One bar per category, top to bottom. */
  categories: readonly string[];
  /** Stacked left to right. */
  series: readonly Series[];
  xLabel: string;
  format: (v: number) => string;
  /** Printed at the end of each bar (default the stack total, formatted). */
  endLabel?: (i: number, total: number) => string;
  /** Colour of each category's bar when there is one series (default the series colour). */
  barColors?: readonly string[];
  width?: number;
  /** Height of one bar slot (default 22). */
  rowHeight?: number;
  /** Width of the category labels (default 260). */
  labelWidth?: number;
  legend?: readonly { name: string; color: string }[];
}

/** Stacked horizontal bars, one per category (long labels read on the left); marks are the `rect`s. */
export function stackedBars(o: BarsOptions): string {
  const n = o.categories.length;
  const rowH = o.rowHeight ?? 22;
  const box: Box = { width: o.width ?? 1200, height: 0, left: o.labelWidth ?? 260, right: 90, top: 30, bottom: 40 };
  box.height = box.top + box.bottom + rowH * n;
  const totals = o.categories.map((_, i) => o.series.reduce((s, se) => s + (se.values[i] ?? 0), 0));
  const ticks = niceTicks(0, Math.max(...totals, 0) || 1);
  const top = ticks[ticks.length - 1];
  const plotW = box.width - box.left - box.right;
  const x = (v: number): number => box.left + (plotW * v) / top;
  const parts: string[] = [open(o.id, 'bars', box, o.xLabel)];
  const base = box.height - box.bottom;
  for (const t of ticks) {
    parts.push(`<line x1="${r2(x(t))}" x2="${r2(x(t))}" y1="${box.top}" y2="${base}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${r2(x(t))}" y="${base + 16}" text-anchor="middle" fill="#555">${esc(o.format(t))}</text>`);
  }
  parts.push(`<text x="${r2(box.left + plotW / 2)}" y="${box.height - 6}" text-anchor="middle" fill="#333">${esc(o.xLabel)}</text>`);
  const marks: string[] = [];
  for (let i = 0; i < n; i++) {
    const yTop = box.top + rowH * i + rowH * 0.15;
    const h = rowH * 0.7;
    parts.push(`<text x="${box.left - 8}" y="${r2(yTop + h / 2 + 4)}" text-anchor="end" fill="#333">${esc(o.categories[i])}</text>`);
    let acc = 0;
    for (const se of o.series) {
      const v = se.values[i];
      if (v === null || v === undefined) continue;
      const color = o.series.length === 1 && o.barColors ? o.barColors[i] : se.color;
      marks.push(
        `<rect class="mark" x="${r2(x(acc))}" y="${r2(yTop)}" width="${r2(Math.max(0, x(acc + v) - x(acc)))}" height="${r2(h)}" fill="${color}" ` +
          `data-series="${esc(se.name)}" data-index="${i}" data-value="${v}"><title>${esc(`${o.categories[i]}: ${se.name} ${o.format(v)}`)}</title></rect>`,
      );
      acc += v;
    }
    const end = o.endLabel ? o.endLabel(i, totals[i]) : o.format(totals[i]);
    parts.push(`<text x="${r2(x(acc) + 6)}" y="${r2(yTop + h / 2 + 4)}" fill="#333">${esc(end)}</text>`);
  }
  parts.push(`<g class="marks">${marks.join('')}</g>`);
  const legend = o.legend ?? (o.series.length > 1 ? o.series.map((s) => ({ name: s.name, color: s.color })) : []);
  if (legend.length > 0) parts.push(legendSvg(legend, box.left, 16));
  parts.push('</svg>');
  return parts.join('');
}

export interface ScatterPoint {
  x: number;
  y: number;
  label: string;
  /** Legend group (colour). */
  group: string;
  /** Marker: circle or square. */
  marker?: 'circle' | 'square';
}

export interface ScatterOptions {
  id: string;
  points: readonly ScatterPoint[];
  xLabel: string;
  yLabel: string;
  formatX: (v: number) => string;
  formatY: (v: number) => string;
  /** Legend of the markers (e.g. solver names), after the colour groups. */
  markerLegend?: readonly { name: string; marker: 'circle' | 'square' }[];
  width?: number;
  height?: number;
}

/** Points coloured by group; marks are the points, with `data-x` / `data-y` (and `data-index`). */
export function scatterChart(o: ScatterOptions): string {
  const box: Box = { width: o.width ?? 1200, height: o.height ?? 380, left: 84, right: 24, top: 34, bottom: 44 };
  const xs = o.points.map((p) => p.x);
  const ys = o.points.map((p) => p.y);
  const pad = (lo: number, hi: number): [number, number] => {
    const d = hi - lo || Math.abs(hi) * 0.1 || 1;
    return [lo - d * 0.1, hi + d * 0.1];
  };
  const [x0, x1] = pad(Math.min(...xs), Math.max(...xs));
  const [y0, y1] = pad(Math.min(...ys), Math.max(...ys));
  const xt = niceTicks(Math.max(0, x0), x1);
  const yt = niceTicks(y0, y1);
  const xlo = xt[0];
  const xhi = xt[xt.length - 1];
  const ylo = yt[0];
  const yhi = yt[yt.length - 1];
  const plotW = box.width - box.left - box.right;
  const plotH = box.height - box.top - box.bottom;
  const x = (v: number): number => box.left + (plotW * (v - xlo)) / (xhi - xlo);
  const y = (v: number): number => box.top + plotH * (1 - (v - ylo) / (yhi - ylo));
  const groups = [...new Set(o.points.map((p) => p.group))];
  const color = (g: string): string => PALETTE[groups.indexOf(g) % PALETTE.length];
  const parts: string[] = [open(o.id, 'scatter', box, `${o.yLabel} against ${o.xLabel}`)];
  parts.push(yAxis(box, yt, y, o.formatY, o.yLabel));
  const base = box.height - box.bottom;
  for (const t of xt) {
    parts.push(`<line x1="${r2(x(t))}" x2="${r2(x(t))}" y1="${box.top}" y2="${base}" stroke="#efefef"/>`);
    parts.push(`<text x="${r2(x(t))}" y="${base + 16}" text-anchor="middle" fill="#555">${esc(o.formatX(t))}</text>`);
  }
  parts.push(`<line x1="${box.left}" x2="${box.width - box.right}" y1="${base}" y2="${base}" stroke="#999"/>`);
  parts.push(`<text x="${r2(box.left + plotW / 2)}" y="${box.height - 6}" text-anchor="middle" fill="#333">${esc(o.xLabel)}</text>`);
  const marks: string[] = [];
  o.points.forEach((p, i) => {
    const px = x(p.x);
    const py = y(p.y);
    const attrs = `class="mark" fill="${color(p.group)}" fill-opacity="0.85" stroke="#fff" data-series="${esc(p.group)}" data-index="${i}" data-x="${p.x}" data-y="${p.y}"`;
    const tip = `<title>${esc(`${p.label}: ${o.xLabel} ${o.formatX(p.x)}, ${o.yLabel} ${o.formatY(p.y)}`)}</title>`;
    marks.push(
      p.marker === 'square'
        ? `<rect ${attrs} x="${r2(px - 5.5)}" y="${r2(py - 5.5)}" width="11" height="11">${tip}</rect>`
        : `<circle ${attrs} cx="${r2(px)}" cy="${r2(py)}" r="6.5">${tip}</circle>`,
    );
  });
  parts.push(`<g class="marks">${marks.join('')}</g>`);
  const items = groups.map((g) => ({ name: g, color: color(g) }));
  parts.push(legendSvg(items, box.left, 16));
  if (o.markerLegend && o.markerLegend.length > 0) {
    let cx = box.width - box.right - o.markerLegend.reduce((s, m) => s + 34 + m.name.length * 6.6, 0);
    const ms: string[] = [];
    for (const m of o.markerLegend) {
      ms.push(
        m.marker === 'square'
          ? `<rect x="${r2(cx)}" y="6" width="11" height="11" fill="#777"/>`
          : `<circle cx="${r2(cx + 5.5)}" cy="11.5" r="6" fill="#777"/>`,
      );
      ms.push(`<text x="${r2(cx + 17)}" y="16" fill="#333">${esc(m.name)}</text>`);
      cx += 34 + m.name.length * 6.6;
    }
    parts.push(`<g class="legend markers">${ms.join('')}</g>`);
  }
  parts.push('</svg>');
  return parts.join('');
}
