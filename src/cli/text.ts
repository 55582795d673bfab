/**
 * Readable text for the CLI: aligned tables and the metrics summary of `plan` / `evaluate`.
 */
import { formatBytes as bytesText, type MetricsReport } from '../api.js';

export type Align = 'l' | 'r';

/** Rows of cells as an aligned text table (first row = header, underlined). */
export function table(rows: readonly (readonly string[])[], align: readonly Align[]): string {
  const n = Math.max(...rows.map((r) => r.length));
  const width = new Array<number>(n).fill(0);
  for (const r of rows) r.forEach((c, i) => (width[i] = Math.max(width[i], c.length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => ((align[i] ?? 'l') === 'r' ? c.padStart(width[i]) : c.padEnd(width[i])))
      .join('  ')
      .trimEnd();
  const out = [line(rows[0]), width.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows.slice(1)) out.push(line(r));
  return out.join('\n') + '\n';
}

/** x with `digits` decimals, thousands separated by commas. */
export function num(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return String(x);
  const s = Math.abs(x).toFixed(digits);
  const [int, frac] = s.split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${x < 0 ? '-' : ''}${grouped}${frac !== undefined ? `.${frac}` : ''}`;
}

export { bytesText };

/** A load (weighted token-expert pairs): integer when it is one. */
export function load(x: number): string {
  return Number.isInteger(x) ? num(x) : num(x, 1);
}

export function pct(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)}%`;
}

export function ms(seconds: number): string {
  const v = seconds * 1000;
  return num(v, v >= 100 ? 1 : 3);
}

/** Relative change b vs a as a signed percentage. */
export function change(a: number, b: number): string {
  if (a === 0) return b === 0 ? '0.0%' : 'n/a';
  const r = (b - a) / Math.abs(a);
  return `${r >= 0 ? '+' : ''}${(r * 100).toFixed(1)}%`;
}

/**
 * The metrics summary: per metric the total (or mean) over all layers and the worst layer; with
 * `traffic` (a plan's inter-node bytes lower bound and gap) one more row after the max-load bound.
 */
export function metricsTable(m: MetricsReport, traffic?: { bound: number; gap: number }): string {
  const layers = m.perLayer;
  const worst = (key: (l: MetricsReport['perLayer'][number]) => number, lowest = false): { v: number; at: string } => {
    let best = -1;
    for (let i = 0; i < layers.length; i++) {
      if (best < 0 || (lowest ? key(layers[i]) < key(layers[best]) : key(layers[i]) > key(layers[best]))) best = i;
    }
    if (best < 0) return { v: NaN, at: '' };
    return { v: key(layers[best]), at: `${layers[best].layer} (engine ${layers[best].engineLayer})` };
  };
  const rows: string[][] = [['metric', 'all layers', 'worst layer', 'at MoE layer']];
  const add = (name: string, all: string, w?: { v: number; at: string }, f?: (x: number) => string): void => {
    rows.push([name, all, w && f ? f(w.v) : '', w ? w.at : '']);
  };
  add('inter-node bytes', bytesText(m.interNodeBytes), worst((l) => l.interNodeBytes), bytesText);
  add('intra-node bytes', bytesText(m.intraNodeBytes), worst((l) => l.intraNodeBytes), bytesText);
  add('remote nodes per token', num(m.remoteNodesPerToken, 3), worst((l) => l.remoteNodesPerToken), (x) => num(x, 3));
  add('max GPU load', load(m.maxLoad), worst((l) => l.maxLoad), load);
  add('mean GPU load', load(Math.round(m.meanLoad * 10) / 10));
  add('max / mean load', num(m.maxOverMean, 3), worst((l) => l.maxOverMean), (x) => num(x, 3));
  add('balancedness (mean/max)', num(m.balancedness, 3), worst((l) => l.balancedness, true), (x) => num(x, 3));
  add('est. MoE time (ms)', ms(m.timeSeconds), worst((l) => l.timeSeconds), ms);
  rows.push(['max-load lower bound', load(Math.round(m.maxLoadLowerBound * 10) / 10), `gap ${pct(m.maxLoadGap)}`, '']);
  if (traffic) rows.push(['inter-node lower bound', bytesText(traffic.bound), `gap ${pct(traffic.gap)}`, '']);
  return table(rows, ['l', 'r', 'r', 'l']);
}
