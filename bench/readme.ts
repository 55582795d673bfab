/**
 * README figures from bench/results/*.json: rewrites every README.md region between
 * `<!-- results:NAME -->` and `<!-- /results:NAME -->` with a block generated from a result file
 * (Markdown tables plus a line naming the source file, the date in the JSON, the split and how many
 * runs the times are), so that no benchmark figure in the README is typed by hand.
 *
 *     npm run build && npm run readme                # rewrite README.md
 *     npm run readme -- --check                      # exit 1 when README.md is out of date
 *     node dist/bench/readme.js [--readme FILE] [--results DIR] [--check]
 *
 * One generic renderer (rows -> Markdown table) driven by the VIEWS table below: per marker name the
 * result file, which rows, which columns and how each number is formatted. A result whose rows gain
 * rows or columns still renders: rows are taken as they come, only the configured columns are
 * shown, a cell a row lacks is '-', and a configured column that no row has is left out. Rows that
 * share the configured key columns are repeated runs: numbers are their median ("median of N").
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { flag, fmt, median, PARITY_SPLIT, ROOT, SPLITS } from './common.js';

/** Parsed result files by name (the file name without `.json`). */
export type Results = Record<string, unknown>;

/**
 * A column: [key, header?, format?]. The key is a row field (exact, else case-insensitive), a dotted
 * path (`plan.indexSeconds`, `loadAverage.0`, `speed[what=x].wall s`) or, when it holds `{`, a
 * template over the row (`{nodes}x{gpusPerNode}`). Formats: see `formatValue`.
 */
export type Column = [key: string, header?: string, format?: string];

export interface TableSpec {
  /** Path of the rows array in the JSON, or label -> path of one row object (a label column first). */
  rows: string | Record<string, string>;
  /** Header of the label column when `rows` is a record. */
  label?: string;
  /** Identity columns: rows with equal values are repeated runs of one measurement (median). */
  key?: string[];
  columns: Column[];
  /** Keep only the rows for which this holds. */
  where?: (row: Record<string, unknown>) => boolean;
  /** Template (over the JSON) printed above the table. */
  title?: string;
  /**
   * The table has times: how many runs each row's times are. A number, or a JSON path to the count
   * (times already the median of that many runs); repeated rows (see `key`) count as runs too.
   */
  runs?: number | string;
}

export interface ViewSpec {
  /** Result file name (bench/results/<file>.json); default the marker name. */
  file?: string;
  /**
   * Values used when the JSON lacks them, read off the bench source (`split` above all: the label
   * when a result predates the bench recording it, or when the bench is not ours to edit).
   */
  defaults?: Record<string, unknown>;
  /** Template (over the JSON) printed under the source line. */
  note?: string;
  tables: TableSpec[];
}

const TRAFFIC_COLUMNS: Column[] = [
  ['shape', 'shape (nodes x GPUs x slots)'],
  ['mode'],
  ['method'],
  ['inter-node GB', 'inter-node GB', '2'],
  ['vs eplb %', 'inter-node vs EPLB', '+1%'],
  ['balancedness', 'balancedness', '3'],
  ['bal - eplb', 'balancedness - EPLB', '+3'],
  ['gap to bound %', 'gap to bound', '1%'],
  ['wall s', 'wall s', '2'],
];

/** Marker name -> what to render. */
export const VIEWS: Record<string, ViewSpec> = {
  balance: {
    defaults: { split: SPLITS.balance, workers: 1 },
    note: 'EP32 = 4 nodes x 8 GPUs x 9 slots, EP144 = 18 x 8 x 2 (bench/balance.ts); every MoE layer of every counts file; over bound = max GPU load / the max-load lower bound - 1. Solver times: mean over the files of one run each, {workers} worker.',
    tables: [
      {
        rows: 'rows',
        key: ['shape'],
        runs: 1,
        columns: [
          ['shape'],
          ['files'],
          ['layers'],
          ['ours median over bound %', 'ours over bound, median (in-sample)', '2%'],
          ['eplb median over bound %', 'EPLB over bound, median (in-sample)', '1%'],
          ['ours worst / bound', 'ours worst layer / bound (in-sample)', '3x'],
          ['eplb worst / bound', 'EPLB worst layer / bound (in-sample)', '2x'],
          ['layers worse than eplb', 'layers ours > EPLB (in-sample)', '0'],
          ['held-out balancedness ours', 'balancedness ours, median (held-out)', '3'],
          ['held-out balancedness eplb', 'balancedness EPLB, median (held-out)', '3'],
          ['held-out layers worse', 'layers ours > EPLB (held-out)', '0'],
          ['solver s / file', 'ours s per file', '2'],
          ['eplb s / file', 'EPLB s per file', '3'],
        ],
      },
    ],
  },
  'balance-speed': {
    defaults: { split: SPLITS.none },
    note:
      'The CLI writing a `--objective balance` plan for {workload} (58 MoE layers x 256 experts) in fresh processes, default workers; beyond start-up = median plan - median `moe-placer presets` (node and the CLI modules); plan() wall = the plan file\'s provenance wall time (solve, evaluate, bounds; not reading the counts or writing the file). ' +
      'Target under {targetSeconds|1} s beyond start-up. Load average {loadAverage.0|1} -> {loadAverage.1|1} on {cpus} CPUs.',
    tables: [
      {
        rows: 'rows',
        key: ['scenario'],
        runs: 'runs',
        columns: [
          ['scenario'],
          ['cluster'],
          ['presets s', 'presets s', '2'],
          ['plan s', 'plan s', '2'],
          ['beyond start-up s', 'beyond start-up s', '2'],
          ['plan() wall s', 'plan() wall s', '2'],
          ['target met', 'under the target'],
        ],
      },
    ],
  },
  search: {
    defaults: { split: PARITY_SPLIT },
    note: 'Real DeepSeek-V2-Lite traces: fitted on {fitTokens} tokens, scored on {heldTokens}; {workers} workers; METIS at ufactor {metisFactors}. Default = `optimize` at eps 0.02 (seed 1; over seeds = seeds {seeds}, which change its validation split and starts). Frontier dominated = every METIS point has one of ours with fewer held-out inter-node bytes and at least its balancedness. Lower bound = inter-node bytes no placement of the shape can go below on the held-out tokens.',
    tables: [
      {
        rows: 'summary',
        key: ['shape', 'mode'],
        runs: 1,
        columns: [
          ['shape', 'shape (nodes x GPUs x slots)'],
          ['mode'],
          ['default vs eplb %', 'default: inter-node vs EPLB', '+1%'],
          ['default bal - eplb', 'default: balancedness - EPLB', '+3'],
          ['default wall s', 'default: wall s', '1'],
          ['seeds vs eplb % median', 'default over seeds: inter-node vs EPLB, median', '+1%'],
          ['seeds bal - eplb worst', 'default over seeds: balancedness - EPLB, worst', '+3'],
          ['best within 0.01 of eplb bal %', 'ours best within 0.01 of EPLB balancedness', '+1%'],
          ['best metis vs eplb %', 'METIS best', '+1%'],
          ['metis frontier dominated', 'METIS frontier dominated'],
          ['lower bound GB', 'lower bound GB', '2'],
        ],
      },
      { rows: 'rows', key: ['shape', 'mode', 'method'], runs: 1, columns: TRAFFIC_COLUMNS },
    ],
  },
  'v3-scale': {
    defaults: { split: PARITY_SPLIT, workers: 2 },
    note: 'Synthetic DeepSeek-V3 trace of 2 x {tokens} tokens (marginals: {marginals}); solvers of the first table with {workers} workers; MoE time = the cost model estimate.',
    tables: [
      {
        rows: 'rows',
        key: ['scenario', 'method'],
        runs: 1,
        columns: [
          ['scenario'],
          ['method'],
          ['inter-node GB', 'inter-node GB', '1'],
          ['vs eplb %', 'inter-node vs EPLB', '+1%'],
          ['balancedness', 'balancedness', '3'],
          ['bal - eplb', 'balancedness - EPLB', '+3'],
          ['MoE time ms', 'MoE time ms', '1'],
          ['time vs eplb %', 'MoE time vs EPLB', '+1%'],
          ['gap to bound %', 'gap to bound', '1%'],
          ['solver wall s', 'solver wall s', '1'],
        ],
      },
      {
        title: 'Solver speed on the EP32 fit half; speed-up of the traffic objective with 2 workers over 1: {speed[what=speed-up 2 vs 1 workers].wall s|2x}.',
        rows: 'speed',
        key: ['what'],
        runs: 1,
        where: (r) => !String(r.what).startsWith('speed-up'),
        columns: [['what'], ['wall s', 'wall s', '1']],
      },
    ],
  },
  replay: {
    note: 'DeepSeek-V3 counts files {windows} as windows in this order; EP32 = h800-4x8 normal mode, EP144 = h800-18x8 low-latency; every policy starts from EPLB fitted on the first file; budget = `plan --from` with at most the given share of the plan\'s slots copied per rebalance; 2 workers.',
    tables: [
      {
        rows: 'summary',
        key: ['shape', 'budget % of slots'],
        runs: 1,
        columns: [
          ['shape'],
          ['budget % of slots', 'budget (% of slots)', '0'],
          ['share of re-plan balance gain %', 'share of the re-plan\'s balance gain', '1%'],
          ['target >= 90% (10% budget)', 'target >= 90% (10% budget)'],
          ['EPLB bytes / budget bytes', 'EPLB bytes / budget bytes', '1x'],
          ['budget bal - EPLB bal', 'balancedness - EPLB', '+3'],
          ['target 5x at >= EPLB bal', 'target 5x at >= EPLB balancedness'],
          ['wall s', 'replay wall s', '0'],
        ],
      },
      {
        rows: 'rows',
        key: ['shape', 'policy'],
        runs: 1,
        columns: [
          ['shape'],
          ['policy'],
          ['mean balancedness', 'mean balancedness', '3'],
          ['mean MoE time ms', 'mean MoE time ms', '0'],
          ['GB moved per rebalance', 'GB moved per rebalance', '1'],
          ['moved % of slots', 'moved (% of slots)', '1'],
          ['plan s', 'planning s (all rebalances)', '1'],
        ],
      },
    ],
  },
  compare: {
    note:
      'DeepSeek-V3 from the real SGLang counts (bench/compare.ts): EPLB and `optimize` (objective time, {timeLimitSeconds} s per plan, {workers} workers) plan every slots level. ' +
      'Times are the cost model\'s estimate for one step of {scenarios.0.tokensPerGpu} prefill / {scenarios.1.tokensPerGpu} decode tokens per GPU, routed experts only (no attention, dense layers or shared expert); tok/s/GPU = step tokens / MoE time / GPUs. ' +
      'Expert memory budgets: h800 presets the whole 80 GB, h20-4x8 32 GB of the 96 GB card, h20-18x8 (GPU-NODESxGPUS) the whole 96 GB.',
    tables: [
      {
        title: 'Best row per scenario and cluster (most tok/s/GPU on the held-out counts), against the first (H800) cluster, against the fewest slots with the same solver, and against EPLB at the same slots.',
        rows: 'summary',
        key: ['scenario', 'cluster'],
        columns: [
          ['scenario'],
          ['cluster'],
          ['best solver'],
          ['slots', 'slots / GPU'],
          ['redundant', 'redundant experts'],
          ['expert GB / GPU', 'expert GB / GPU', '1'],
          ['tok/s/GPU', 'tok/s/GPU', '0'],
          ['vs first cluster', 'vs H800', '2x'],
          ['vs fewest slots %', 'vs fewest slots', '+1%'],
          ['vs eplb same slots %', 'vs EPLB, same slots', '+1%'],
          ['binds', 'binds (share of MoE time)'],
        ],
      },
      {
        title: 'Every plan: time per MoE layer (mean over the 58 MoE layers) split into dispatch / compute / combine, MoE time of the step (all layers), balancedness and inter-node bytes on the held-out counts (balancedness on the fitted counts for comparison).',
        rows: 'rows',
        key: ['scenario', 'cluster', 'slots', 'solver'],
        runs: 1,
        columns: [
          ['scenario'],
          ['cluster'],
          ['slots', 'slots / GPU'],
          ['redundant'],
          ['expert GB / GPU', 'expert GB / GPU', '1'],
          ['solver'],
          ['dispatch ms', 'dispatch ms', '3'],
          ['compute ms', 'compute ms', '3'],
          ['combine ms', 'combine ms', '3'],
          ['MoE ms', 'MoE ms / step', '1'],
          ['tok/s/GPU', 'tok/s/GPU', '0'],
          ['balancedness', 'balancedness', '3'],
          ['fit balancedness', 'balancedness (fitted)', '3'],
          ['inter-node GB', 'inter-node GB / step', '1'],
          ['binds'],
          ['plan s', 'plan s', '1'],
        ],
      },
    ],
  },
  bounds: {
    defaults: { split: SPLITS.bounds },
    tables: [
      {
        title: 'Max load, DeepSeek-V3 SGLang counts: EPLB max load / lower bound - 1 (EPLB with the model\'s groups and with 1 group), and which part of the bound binds.',
        rows: 'maxLoad',
        key: ['shape', 'eplbGroups'],
        columns: [
          ['shape', 'shape (nodes x GPUs x slots)'],
          ['eplbGroups', 'EPLB groups'],
          ['layers'],
          ['eplbGapMedian', 'EPLB gap median', '1%*100'],
          ['eplbGapP90', 'EPLB gap p90', '1%*100'],
          ['eplbGapMax', 'EPLB gap max', '1%*100'],
          ['evenSplitGapMedian', 'EPLB even-split gap median', '1%*100'],
          ['bindsAverage', 'binds: average'],
          ['bindsReplicated', 'binds: replica share'],
          ['bindsPigeonhole', 'binds: pigeonhole'],
        ],
      },
      {
        title: 'Max load at EP144, DeepSeek-V3 SGLang counts on 18 x 8 GPUs x 2 slots: max load / lower bound - 1, median over layers, for EPLB and for our `balance` plan, against the bound without the two-slot pairing part (old: average, replica share, pigeonhole) and with it (new); pairing raises = layers where the pairing part raises the bound. Bound time {ep144.boundMsPerLayer|1} ms per layer.',
        rows: 'ep144.rows',
        key: ['file'],
        runs: 1,
        columns: [
          ['file', 'counts file'],
          ['layers'],
          ['eplbOverOldMedian', 'EPLB / old bound', '1%*100'],
          ['eplbOverNewMedian', 'EPLB / new bound', '1%*100'],
          ['oursOverOldMedian', 'ours / old bound', '1%*100'],
          ['oursOverNewMedian', 'ours / new bound', '1%*100'],
          ['pairingBinds', 'pairing raises'],
        ],
      },
      {
        title: 'Inter-node traffic, one DeepSeek-V2-Lite layer, normal mode, one replica per expert: lower bound against EPLB.',
        rows: 'traffic',
        key: ['shape', 'method'],
        runs: 1,
        columns: [
          ['shape', 'shape (nodes x GPUs x slots)'],
          ['method'],
          ['status'],
          ['setsUsed', 'token sets used'],
          ['sets', 'token sets'],
          ['boundGB', 'bound GB', '3'],
          ['eplbGB', 'EPLB GB', '3'],
          ['boundOverEplb', 'bound / EPLB', '3'],
          ['seconds', 'solve s', '2'],
        ],
      },
    ],
  },
  scale: {
    defaults: { split: SPLITS.scale },
    note: 'Each phase in its own process; peak RSS of that process. Objective traffic, normal mode.',
    tables: [
      {
        rows: 'runs',
        key: ['scenario.name'],
        runs: 1,
        columns: [
          ['scenario.model', 'model'],
          ['{scenario.nodes}x{scenario.gpusPerNode}x{scenario.slotsPerGpu}', 'shape (nodes x GPUs x slots)'],
          ['tokens'],
          ['fileBytes', 'trace file GB', '2/1e9'],
          ['plan.indexSeconds', 'index s', '1'],
          ['plan.optimizeSeconds', 'optimize s', '1'],
          ['plan.planPeakMiB', 'plan peak MiB', '0'],
          ['evaluate.evaluateSeconds', 'evaluate s', '1'],
          ['evaluate.evaluatePeakMiB', 'evaluate peak MiB', '0'],
          ['evaluate.balancedness', 'balancedness', '3'],
          ['evaluate.remoteNodesPerToken', 'remote nodes / token', '2'],
        ],
      },
    ],
  },
  'evaluator-throughput': {
    defaults: { split: SPLITS.none },
    note:
      'Random DeepSeek-V3-shaped trace: {config.tokens} tokens x {config.layers} layers x top-{config.topK} of {config.experts} experts, {config.nodes} x {config.gpusPerNode} GPUs x {config.slotsPerGpu} slots; one core; load average {loadAverage|1} during the run. ' +
      'Target {targetTokenLayersPerSecond|0/1e6} M token-layers/s for `evaluate(trace)` in its slower mode: met in CPU time: {targetMetCpu}; in wall time: {targetMetWall}.',
    tables: [
      {
        rows: 'rows',
        key: ['what', 'mode'],
        runs: 'config.reps',
        where: (r) => String(r.what).includes('evaluate') || String(r.what).includes('accumulateLayer'),
        columns: [
          ['what'],
          ['mode'],
          ['tokenLayersPerCpuSecond', 'M token-layers / CPU s', '2/1e6'],
          ['tokenLayersPerSecond', 'M token-layers / wall s', '2/1e6'],
          ['seconds', 'wall s', '3'],
        ],
      },
    ],
  },
  'trace-load': {
    defaults: { split: SPLITS.none },
    note: 'Uniform random DeepSeek-V3-shaped trace ({shape.numLayers} MoE layers, top-{shape.topK} of {shape.numExperts}), written then loaded back; load average {loadAverage.0|1} on {cpus} CPUs.',
    tables: [
      {
        rows: 'rows',
        key: ['variant'],
        runs: 1,
        columns: [
          ['variant', 'format'],
          ['tokens'],
          ['fileBytes', 'file MB', '0/1e6'],
          ['writeSeconds', 'write s', '2'],
          ['loadSeconds', 'load s', '2'],
          ['loadCpuSeconds', 'load CPU s', '2'],
          ['tokenLayersPerSecond', 'load M token-layers / s', '1/1e6'],
        ],
      },
    ],
  },
  'generator-fidelity': {
    defaults: { split: SPLITS.generator },
    tables: [
      {
        title: 'DeepSeek-V3: {tokens} synthetic tokens per SGLang counts file, fitted to its per-layer marginals; total variation distance of the marginals to the counts over the MoE layers, with and without the final marginal repair.',
        rows: 'deepseekV3',
        key: ['file'],
        runs: 1,
        columns: [
          ['file'],
          ['tvdMedian', 'TVD median', '2e'],
          ['tvdMax', 'TVD max', '2e'],
          ['unrepairedTvdMedian', 'unrepaired TVD median', '4'],
          ['cpuSeconds', 'generate CPU s', '1'],
        ],
      },
      {
        title:
          'DeepSeek-V2-Lite: {deepseekV2Lite.tokens} synthetic tokens in {deepseekV2Lite.requests} requests against the real traces, medians over the MoE layers; pair lift = P(a and b) / (P(a) P(b)).',
        rows: { real: 'deepseekV2Lite.real.medianOfLayers', generated: 'deepseekV2Lite.generated.medianOfLayers' },
        label: 'trace',
        columns: [
          ['q50', 'pair lift q50', '2'],
          ['q90', 'q90', '2'],
          ['q99', 'q99', '2'],
          ['max', 'max', '1'],
          ['fracAbove2', 'pairs with lift > 2', '1%*100'],
          ['fracBelowHalf', 'pairs with lift < 0.5', '1%*100'],
          ['successor20', 'successor coverage (top 20%)', '3'],
          ['requestAffinity', 'request affinity', '2'],
        ],
      },
    ],
  },
};

// ------------------------------------------------------------------------------------------------
// Values

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object';

/** A field of `o`: the exact key, else a case-insensitive match. */
function field(o: unknown, key: string): unknown {
  if (Array.isArray(o) && /^\d+$/.test(key)) return o[Number(key)];
  if (!isObj(o)) return undefined;
  if (key in o) return o[key];
  const lower = key.toLowerCase();
  const k = Object.keys(o).find((x) => x.toLowerCase() === lower);
  return k === undefined ? undefined : o[k];
}

/** `a.b.0`, `a[k=v].b`: fields, array indices and "the element whose k is v". */
export function lookup(o: unknown, path: string): unknown {
  const direct = field(o, path);
  if (direct !== undefined) return direct;
  let cur: unknown = o;
  for (const seg of path.split(/\.(?![^[]*\])/)) {
    const m = /^([^[]*)(?:\[([^=\]]+)=([^\]]*)\])?$/.exec(seg);
    if (!m) return undefined;
    if (m[1] !== '') cur = field(cur, m[1]);
    if (m[2] !== undefined) cur = Array.isArray(cur) ? cur.find((el) => String(field(el, m[2])) === m[3]) : undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

/**
 * Format spec `[+]D[suffix][*k|/k]`: D decimals, '+' signs positive values, suffix appended
 * ('%', 'x', ...; 'e' = exponential notation), the value multiplied or divided by k first.
 * No spec: integers as they are, other numbers with 4 significant-ish decimals (bench/common fmt).
 */
export function formatValue(v: unknown, spec?: string): string {
  if (v === undefined || v === null || (typeof v === 'number' && !Number.isFinite(v))) return '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v !== 'number') return typeof v === 'string' ? v : JSON.stringify(v);
  if (!spec) return fmt(v);
  const m = /^(\+)?(\d+)([^*/\d]*)(?:([*/])(.+))?$/.exec(spec);
  if (!m) throw new Error(`bad number format "${spec}"`);
  const k = m[5] === undefined ? 1 : Number(m[5]);
  const x = m[4] === '*' ? v * k : m[4] === '/' ? v / k : v;
  const d = Number(m[2]);
  if (m[3] === 'e') return x.toExponential(d);
  let s = x.toFixed(d);
  if (/^-0(\.0*)?$/.test(s)) s = s.slice(1);
  const zero = /^0(\.0*)?$/.test(s);
  return `${m[1] && x > 0 && !zero ? '+' : ''}${s}${m[3]}`;
}

/** `{path}` or `{path|format}` replaced by values of `o` (else of `fallback`); '-' when absent. */
export function fillTemplate(tpl: string, o: unknown, fallback: Obj = {}): string {
  return tpl.replace(/\{([^{}|]+)(?:\|([^{}]+))?\}/g, (_, path: string, spec?: string) => {
    const v = lookup(o, path);
    return formatValue(v === undefined ? lookup(fallback, path) : v, spec);
  });
}

const cellValue = (row: Obj, key: string): unknown => (key.includes('{') ? fillTemplate(key, row) : lookup(row, key));

// ------------------------------------------------------------------------------------------------
// Tables

const escapeCell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** Rows -> Markdown table over `columns` (numbers right-aligned); a column no row has is left out. */
export function markdownTable(rows: Obj[], columns: Column[], extra: { header: string; values: string[] } | null = null): string {
  const cols = columns.filter(([key]) => rows.some((r) => cellValue(r, key) !== undefined && cellValue(r, key) !== '-'));
  const cells = rows.map((r) => cols.map(([key, , spec]) => escapeCell(formatValue(cellValue(r, key), spec))));
  const headers = cols.map(([key, header]) => escapeCell(header ?? key));
  const numeric = cols.map(([key]) => rows.some((r) => typeof cellValue(r, key) === 'number'));
  if (extra) {
    headers.push(extra.header);
    numeric.push(false);
    cells.forEach((c, i) => c.push(extra.values[i]));
  }
  const line = (xs: string[]): string => `| ${xs.join(' | ')} |`;
  return [line(headers), line(numeric.map((n) => (n ? '---:' : '---'))), ...cells.map(line)].join('\n');
}

/** Rows with equal `key` values merged: numbers -> median, other fields -> the first; with counts. */
export function mergeRepeats(rows: Obj[], key: string[] | undefined): { row: Obj; count: number }[] {
  if (!key || key.length === 0) return rows.map((row) => ({ row, count: 1 }));
  const groups = new Map<string, Obj[]>();
  for (const r of rows) {
    const id = JSON.stringify(key.map((k) => cellValue(r, k) ?? null));
    const g = groups.get(id);
    if (g) g.push(r);
    else groups.set(id, [r]);
  }
  return [...groups.values()].map((g) => ({ row: g.length === 1 ? g[0] : mergeObjects(g), count: g.length }));
}

function mergeObjects(objs: Obj[]): Obj {
  const out: Obj = {};
  for (const k of new Set(objs.flatMap((o) => Object.keys(o)))) {
    const vs = objs.map((o) => o[k]).filter((v) => v !== undefined);
    if (vs.length > 0 && vs.every((v) => typeof v === 'number')) out[k] = median(vs as number[]);
    else if (vs.length > 0 && vs.every(isObj)) out[k] = mergeObjects(vs as Obj[]);
    else out[k] = vs[0];
  }
  return out;
}

/** How many runs a time is: for the source line ("Times: 1 run each.") and for a per-row column. */
const runsPhrase = (n: number): string => (n === 1 ? '1 run each' : `median of ${n} runs`);
const runsCell = (n: number): string => (n === 1 ? '1 run' : `median of ${n}`);

interface RenderedTable {
  title: string | null;
  table: string;
  /** The runs phrase when the same for every row, null when the table has no times. */
  runs: string | null;
}

function renderTable(spec: TableSpec, json: unknown, defaults: Obj): RenderedTable {
  const title = spec.title ? fillTemplate(spec.title, json, defaults) : null;
  let rows: Obj[];
  let columns = spec.columns;
  let missing: string;
  if (typeof spec.rows === 'string') {
    const v = lookup(json, spec.rows);
    rows = Array.isArray(v) ? v.filter(isObj) : [];
    missing = spec.rows;
  } else {
    const label = spec.label ?? '';
    rows = Object.entries(spec.rows).flatMap(([name, path]) => {
      const v = lookup(json, path);
      return isObj(v) ? [{ ...v, [label]: name }] : [];
    });
    columns = [[label], ...columns];
    missing = Object.values(spec.rows).join(', ');
  }
  if (spec.where) rows = rows.filter(spec.where);
  if (rows.length === 0) return { title, table: `_No rows: \`${missing}\` is absent or empty in this result._`, runs: null };
  const merged = mergeRepeats(rows, spec.key);
  let runs: string | null = null;
  let extra: { header: string; values: string[] } | null = null;
  if (spec.runs !== undefined) {
    const base = typeof spec.runs === 'number' ? spec.runs : Number(lookup(json, spec.runs));
    const per = merged.map(({ count }) => (count > 1 ? count : Number.isFinite(base) && base > 0 ? base : 1));
    if (per.every((n) => n === per[0])) runs = runsPhrase(per[0]);
    else extra = { header: 'times', values: per.map(runsCell) };
  }
  return {
    title,
    table: markdownTable(
      merged.map((m) => m.row),
      columns,
      extra,
    ),
    runs,
  };
}

/** The date part of the JSON's `date`, or a plain statement that it has none. */
function dateOf(json: unknown): string {
  const d = lookup(json, 'date');
  if (typeof d !== 'string') return 'no date recorded in the file';
  const m = /^\d{4}-\d{2}-\d{2}/.exec(d);
  return `dated ${m ? m[0] : d}`;
}

/** The generated block for marker `name` (without the markers). */
export function renderBlock(name: string, results: Results): string {
  const view = VIEWS[name] ?? genericView(name, results);
  const file = view.file ?? name;
  const src = `bench/results/${file}.json`;
  const json = results[file];
  if (json === undefined) return `_No result yet: \`${src}\` is absent (run \`npm run bench -- ${file}\`)._`;
  const defaults: Obj = view.defaults ?? {};
  const split = lookup(json, 'split') ?? defaults.split;
  const tables = view.tables.map((t) => renderTable(t, json, defaults));
  const phrases = [...new Set(tables.map((t) => t.runs).filter((r): r is string => r !== null))];
  const shared = phrases.length === 1 ? phrases[0] : null;
  const head =
    `_Source: [\`${src}\`](${src}), ${dateOf(json)}. Split: ${typeof split === 'string' ? split : 'not recorded'}.` +
    (shared ? ` Times: ${shared}.` : '') +
    '_';
  const parts = [head];
  if (view.note) parts.push(fillTemplate(view.note, json, defaults));
  for (const t of tables) {
    const title = [t.title, !shared && t.runs ? `Times: ${t.runs}.` : null].filter(Boolean).join(' ');
    if (title) parts.push(title);
    parts.push(t.table);
  }
  return parts.join('\n\n');
}

/** A marker with no view: every column of the result's `rows`. */
function genericView(name: string, results: Results): ViewSpec {
  const json = results[name];
  if (json === undefined) throw new Error(`README marker results:${name}: no view configured in bench/readme.ts and no bench/results/${name}.json`);
  const rows = lookup(json, 'rows');
  const keys = Array.isArray(rows) ? [...new Set(rows.filter(isObj).flatMap((r) => Object.keys(r)))] : [];
  return { tables: [{ rows: 'rows', columns: keys.map((k): Column => [k]) }] };
}

// ------------------------------------------------------------------------------------------------
// README regions

const REGION = /<!-- results:([A-Za-z0-9._-]+) -->\n?([\s\S]*?)<!-- \/results:([A-Za-z0-9._-]+) -->/g;

/** Marker name -> content of each marked region of `text`, in order. */
export function markedRegions(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(REGION)) {
    if (m[1] !== m[3]) throw new Error(`README: <!-- results:${m[1]} --> is closed by <!-- /results:${m[3]} -->`);
    if (out.has(m[1])) throw new Error(`README: marker results:${m[1]} appears twice`);
    out.set(m[1], m[2]);
  }
  const opens = [...text.matchAll(/<!-- results:([A-Za-z0-9._-]+) -->/g)].length;
  const closes = [...text.matchAll(/<!-- \/results:([A-Za-z0-9._-]+) -->/g)].length;
  if (opens !== out.size || closes !== out.size) throw new Error(`README: ${opens} opening and ${closes} closing results markers, ${out.size} matched pairs`);
  return out;
}

/** `readme` with every marked region replaced by its generated block (pure). */
export function renderReadme(readme: string, results: Results): string {
  markedRegions(readme); // validates the markers
  return readme.replace(REGION, (_, name: string) => `<!-- results:${name} -->\n${renderBlock(name, results)}\n<!-- /results:${name} -->`);
}

/** Every bench/results/*.json of `dir`, parsed, by name. */
export function loadResults(dir: string): Results {
  const out: Results = {};
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
    const path = join(dir, f);
    try {
      out[f.slice(0, -5)] = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    } catch (err) {
      throw new Error(`${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return out;
}

function main(): number {
  const readmePath = resolve(flag('readme', join(ROOT, 'README.md')));
  const resultsDir = resolve(flag('results', join(ROOT, 'bench', 'results')));
  const check = process.argv.includes('--check');
  const results = loadResults(resultsDir);
  const before = readFileSync(readmePath, 'utf8');
  const after = renderReadme(before, results);
  const was = markedRegions(before);
  const now = markedRegions(after);
  for (const name of Object.keys(results)) if (!now.has(name) && !Object.values(VIEWS).some((v) => v.file === name)) console.error(`note: bench/results/${name}.json has no <!-- results:${name} --> block in README`);
  const stale = [...now.keys()].filter((k) => was.get(k) !== now.get(k));
  if (check) {
    if (before === after) {
      console.log(`${readmePath}: ${now.size} results blocks up to date`);
      return 0;
    }
    console.error(`${readmePath} is out of date with ${resultsDir} (blocks: ${stale.join(', ')}); run npm run readme`);
    return 1;
  }
  if (before !== after) writeFileSync(readmePath, after);
  console.log(before === after ? `${readmePath}: up to date` : `${readmePath}: rewrote ${stale.join(', ')}`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    process.exitCode = main();
  } catch (err) {
    console.error(`readme: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 2;
  }
}
