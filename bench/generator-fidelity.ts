/**
 * How close synthetic traces come to real routing.
 *
 * 1. DeepSeek-V3: for each SGLang counts file in `<data>/deepseek-v3-sglang`, generate a trace
 *    fitted to its counts (MoE layers 3..60) and report the per-layer marginal TVD (median, max),
 *    the same without the final marginal repair (`raw`: analytic pre-fit and sampling noise), and
 *    the CPU seconds of one generation.
 * 2. DeepSeek-V2-Lite: generate a trace with the real traces' token and request counts, fitted to
 *    their per-layer marginals, and compare co-activation (pair-lift quantiles, fraction of pairs
 *    with lift > 2 and < 0.5), cross-layer successor coverage and request affinity, layer by layer.
 *
 * Usage: `node dist/bench/generator-fidelity.js [--tokens N] [--seed N] [--topics K ...]`; any
 * `--<knob> <value>` of `GenerateOptions` overrides the generator default (for tuning). The data
 * folder is `$MOE_PLACER_DATA`, else `../shared/data`; missing parts are skipped.
 * Prints a table and writes `bench/results/generator-fidelity.json`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GENERATOR_DEFAULTS, generateTrace, type GenerateOptions } from '../src/generator.js';
import { marginalTvd, pairLiftQuantiles, requestAffinity, successorCoverage } from '../src/generator/fidelity.js';
import { resolveModel } from '../src/presets.js';
import type { Trace } from '../src/types.js';
import { loadWorkload } from '../src/workload/index.js';
import { countsOfTrace } from '../src/workload/tokens.js';
import { DATA, flag, median, SPLITS, writeResult } from './common.js';

type Knobs = Partial<Omit<GenerateOptions, 'model' | 'tokens' | 'seed' | 'counts' | 'requests'>>;

/** Flags (`--tokens N --seed N --<knob> V`, bench/common.ts); an unknown `--name` is an error. */
function parseArgs(argv: string[]): { tokens: number; seed: number; knobs: Knobs } {
  const known = ['tokens', 'seed', ...Object.keys(GENERATOR_DEFAULTS)];
  for (const a of argv) {
    if (a.startsWith('--') && !known.includes(a.slice(2))) throw new Error(`unknown flag ${a}; known: ${known.join(', ')}`);
  }
  const num = (name: string, def: number): number => {
    const v = Number(flag(name, String(def)));
    if (!Number.isFinite(v)) throw new Error(`--${name} needs a number`);
    return v;
  };
  const knobs: Record<string, number | boolean> = {};
  for (const [name, def] of Object.entries(GENERATOR_DEFAULTS)) {
    if (!argv.includes(`--${name}`)) continue;
    knobs[name] = typeof def === 'boolean' ? num(name, 1) !== 0 : num(name, def);
  }
  return { tokens: num('tokens', 65536), seed: num('seed', 1), knobs: knobs as Knobs };
}

function maxOf(xs: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, xs[i]);
  return m;
}

const QS = [0.5, 0.9, 0.99] as const;

interface CoactRow {
  q50: number;
  q90: number;
  q99: number;
  max: number;
  fracAbove2: number;
  fracBelowHalf: number;
  successor20: number;
  requestAffinity: number;
  maxOverMean: number;
}

/** Co-activation figures of one layer. */
function coact(trace: Trace, l: number): CoactRow {
  const lift = pairLiftQuantiles(trace, l, QS);
  const loads = new Float64Array(trace.numExperts);
  const ex = trace.experts[l];
  for (let i = 0; i < ex.length; i++) loads[ex[i]]++;
  const mean = ex.length / trace.numExperts;
  return {
    q50: lift.quantiles[0],
    q90: lift.quantiles[1],
    q99: lift.quantiles[2],
    max: lift.max,
    fracAbove2: lift.fracAbove2,
    fracBelowHalf: lift.fracBelowHalf,
    successor20: l + 1 < trace.numLayers ? successorCoverage(trace, l, 0.2) : Number.NaN,
    requestAffinity: requestAffinity(trace, l),
    maxOverMean: maxOf(loads) / mean,
  };
}

/** Median over layers of each field. */
function summarise(rows: CoactRow[]): CoactRow {
  const keys = Object.keys(rows[0]) as (keyof CoactRow)[];
  const out = {} as CoactRow;
  for (const key of keys) out[key] = median(rows.map((r) => r[key]).filter((v) => Number.isFinite(v)));
  return out;
}

const f = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : '-');
const pad = (s: string, n: number): string => s.padStart(n);

async function main(): Promise<void> {
  const { tokens, seed, knobs } = parseArgs(process.argv.slice(2));
  const dataDir = DATA ?? resolve('../shared/data');
  const result: Record<string, unknown> = { split: SPLITS.generator, tokens, seed, knobs: { ...GENERATOR_DEFAULTS, ...knobs }, dataDir };

  // 1. DeepSeek-V3 marginals against the SGLang counts.
  const v3 = resolveModel('deepseek-v3');
  const sglangDir = join(dataDir, 'deepseek-v3-sglang');
  const v3Rows: Record<string, unknown>[] = [];
  if (existsSync(sglangDir)) {
    console.log(`DeepSeek-V3: ${tokens} tokens x ${v3.moeLayerIds.length} MoE layers x top-${v3.topK}, fitted to each SGLang counts file`);
    console.log(`${'file'.padEnd(28)} ${pad('tvd med', 8)} ${pad('tvd max', 8)} ${pad('raw med', 8)} ${pad('raw max', 8)} ${pad('cpu s', 8)}`);
    for (const name of readdirSync(sglangDir).filter((n) => n.endsWith('.json')).sort()) {
      const w = await loadWorkload(join(sglangDir, name), v3);
      if (w.kind !== 'counts') throw new Error(`${name}: expected counts, got ${w.meta.format}`);
      const c0 = process.cpuUsage();
      const trace = generateTrace({ model: v3, tokens, seed, counts: w.counts, ...knobs });
      const cpu = process.cpuUsage(c0);
      const seconds = (cpu.user + cpu.system) / 1e6;
      const tvd = marginalTvd(trace, w.counts);
      // Without the final repair: analytic pre-fit plus sampling noise only.
      const raw = marginalTvd(generateTrace({ model: v3, tokens, seed, counts: w.counts, ...knobs, matchMarginals: false }), w.counts);
      const row = { file: name, tvdMedian: median(tvd), tvdMax: maxOf(tvd), unrepairedTvdMedian: median(raw), unrepairedTvdMax: maxOf(raw), cpuSeconds: seconds };
      v3Rows.push(row);
      console.log(
        `${name.padEnd(28)} ${pad(f(row.tvdMedian, 5), 8)} ${pad(f(row.tvdMax, 5), 8)} ${pad(f(row.unrepairedTvdMedian, 4), 8)} ${pad(f(row.unrepairedTvdMax, 4), 8)} ${pad(f(seconds, 2), 8)}`,
      );
    }
  } else console.log(`skipped DeepSeek-V3: ${sglangDir} not found`);
  result.deepseekV3 = v3Rows;

  // 2. DeepSeek-V2-Lite co-activation against the real traces.
  const lite = resolveModel('deepseek-v2-lite');
  const liteDir = join(dataDir, 'deepseek-v2-lite-traces');
  if (existsSync(liteDir)) {
    const t0 = performance.now();
    const w = await loadWorkload(liteDir, lite);
    if (w.kind !== 'trace') throw new Error('expected the V2-Lite traces to read as a trace');
    const real = w.trace;
    const readSeconds = (performance.now() - t0) / 1000;
    const counts = countsOfTrace(real);
    const c1 = process.cpuUsage();
    const gen = generateTrace({ model: lite, tokens: real.numTokens, requests: real.numRequests, seed, counts, ...knobs });
    const cpu1 = process.cpuUsage(c1);
    const genSeconds = (cpu1.user + cpu1.system) / 1e6;
    const tvd = marginalTvd(gen, counts);
    const realRows: CoactRow[] = [];
    const genRows: CoactRow[] = [];
    for (let l = 0; l < lite.moeLayerIds.length; l++) {
      realRows.push(coact(real, l));
      genRows.push(coact(gen, l));
    }
    const mid = 12; // engine layer 13, the "middle layer" of the data README
    console.log(
      `\nDeepSeek-V2-Lite: ${real.numTokens} tokens in ${real.numRequests} requests (read in ${f(readSeconds, 1)} s); generated in ${f(genSeconds, 2)} s CPU, marginal TVD median ${f(median(tvd), 4)} max ${f(maxOf(tvd), 4)}`,
    );
    const cols: (keyof CoactRow)[] = ['q50', 'q90', 'q99', 'max', 'fracAbove2', 'fracBelowHalf', 'successor20', 'requestAffinity', 'maxOverMean'];
    console.log(`${'pair lift / locality'.padEnd(26)} ${cols.map((c) => pad(c.replace('fraction', ''), 11)).join(' ')}`);
    const line = (label: string, r: CoactRow): void => console.log(`${label.padEnd(26)} ${cols.map((c) => pad(f(r[c]), 11)).join(' ')}`);
    line('real, layer 13', realRows[mid]);
    line('generated, layer 13', genRows[mid]);
    line('real, median of layers', summarise(realRows));
    line('generated, median of layers', summarise(genRows));
    result.deepseekV2Lite = {
      tokens: real.numTokens,
      requests: real.numRequests,
      generateCpuSeconds: genSeconds,
      marginalTvdMedian: median(tvd),
      marginalTvdMax: maxOf(tvd),
      real: { layer13: realRows[mid], medianOfLayers: summarise(realRows), perLayer: realRows },
      generated: { layer13: genRows[mid], medianOfLayers: summarise(genRows), perLayer: genRows },
    };
  } else console.log(`skipped DeepSeek-V2-Lite: ${liteDir} not found`);

  console.log(`\nwrote ${writeResult('generator-fidelity', result)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
