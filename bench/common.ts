/**
 * Shared helpers of the benchmarks: where the real data lives, table printing, JSON results.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
