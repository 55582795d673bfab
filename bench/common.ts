/**
 * Shared helpers of the benchmarks: where the real data lives, argv flags, the fit / score split
 * by request parity, table printing, JSON results.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Trace } from '../src/types.js';
import { filterRequests } from '../src/workload/tokens.js';

/** Repository root (bench files run from dist/bench/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The shared real-data folder, next to the repository, or null when absent. */
export const DATA = ((): string | null => {
  const p = process.env.MOE_PLACER_DATA ?? resolve(ROOT, '..', 'shared', 'data');
  return existsSync(p) ? p : null;
})();

export function dataPath(...parts: string[]): string | null {
  if (!DATA) return null;
  const p = join(DATA, ...parts);
  return existsSync(p) ? p : null;
}

/** The value of `--name value` on the command line, else `def` (also when the value is missing). */
export function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

/** Whether the switch `--name` is on the command line. */
export function hasFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/**
 * Split labels: the `split` field of a result says whether its figures are scored on the data the
 * plans were fitted on (in-sample) or on data they never saw (held-out); bench/readme.ts prints it.
 */
export const SPLITS = {
  /** fitScoreSplit: even-numbered requests fitted, odd-numbered ones scored */
  parity: 'held-out: fitted on the even-numbered requests, scored on the odd-numbered ones',
  balance: 'in-sample (fitted and scored on the same counts file), except the held-out columns: fitted on one file, scored on another file of the same phase',
  bounds: 'in-sample: the bounds and EPLB are computed on the same counts or trace',
  scale: 'in-sample: each plan is evaluated on the trace it was fitted on (the figures are times and memory)',
  generator: 'in-sample: each synthetic trace is compared with the real data whose marginals it was fitted to',
  none: 'not applicable: no plan is fitted (speed of one component)',
  replay: 'held-out: every window is served by a plan fitted on earlier windows only',
} as const;
export const PARITY_SPLIT = SPLITS.parity;

/**
 * The fit / score split by request parity: `fit` = the even-numbered requests, `held` = the odd ones
 * (each renumbered 0.. by filterRequests), and the split label to record in the result.
 */
export function fitScoreSplit(trace: Trace): { fit: Trace; held: Trace; label: string } {
  return {
    fit: filterRequests(trace, (r) => r % 2 === 0),
    held: filterRequests(trace, (r) => r % 2 === 1),
    label: PARITY_SPLIT,
  };
}

/** Print rows as an aligned text table. */
export function printTable(title: string, rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  const cell = (v: string | number): string => (typeof v === 'number' ? fmt(v) : v);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c] ?? '').length)));
  console.log(`\n${title}`);
  console.log(cols.map((c, i) => c.padEnd(width[i])).join('  '));
  console.log(width.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => cell(r[c] ?? '').padEnd(width[i])).join('  '));
}

export function fmt(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(2) : v.toFixed(4);
}

/** Write bench/results/<name>.json. */
export function writeResult(name: string, data: unknown): string {
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ bench: name, date: new Date().toISOString(), node: process.version, ...((data as object) ?? {}) }, null, 2) + '\n');
  return path;
}

export function median(xs: ArrayLike<number>): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The q-quantile of xs as the element at rank floor(q n) of the sorted values (NaN when empty). */
export function quantile(xs: ArrayLike<number>, q: number): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
