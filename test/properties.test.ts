/**
 * Property-based tests (fast-check, fixed seeds) of the input boundary: the workload readers, the
 * library `plan` and the CLI's `main` (called in-process, its stdout / stderr captured) on
 * generated malformed and edge-case inputs: empty rows and layers, one expert, top-k = experts,
 * experts = slots, zero counts, duplicated and out-of-range ids, negative / non-finite / non-number
 * counts, workloads of another model, truncated gzip, corrupted binary traces, random bytes and
 * random flag values.
 *
 * The contract checked on every case: either a valid plan (validatePlacement, and readPlanFile of
 * the written file), or an InputError (exit code 2) whose single line names the file, line or
 * field at fault; never another exception, never a stack trace, never an output file on failure.
 * Where the reader's rules are simple enough, an independent oracle decides which of the two must
 * happen and where the first problem is.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { evaluatePlan, loadPlacement, plan, type PlanOutcome } from '../src/api.js';
import { main } from '../src/cli.js';
import { InputError } from '../src/errors.js';
import { exportPlan } from '../src/formats/export.js';
import { validatePlacement } from '../src/placement.js';
import { readPlanFile, stringifyPlan, writePlanFile } from '../src/plan.js';
import { resolveCluster } from '../src/presets.js';
import { ModelSchema, type Cluster, type Model, type Objective } from '../src/schemas.js';
import type { Workload } from '../src/types.js';
import { loadWorkload, writeTrace } from '../src/workload/index.js';
import { traceDims, uniformTrace } from './workload-helpers.js';

const COMMON = { hiddenSize: 16, expertBytes: 1000, dispatchBytesPerToken: 10, combineBytesPerToken: 20, expertFlopsPerToken: 1e6 };
/** 3 engine layers, MoE on 1 and 2, 4 experts, top-2. */
const M_A = ModelSchema.parse({ name: 'pa', numHiddenLayers: 3, moeLayerIds: [1, 2], experts: 4, topK: 2, ...COMMON });
/** One layer, one expert, top-1. */
const M_ONE = ModelSchema.parse({ name: 'pone', numHiddenLayers: 1, moeLayerIds: [0], experts: 1, topK: 1, ...COMMON });
/** Every layer MoE, top-k = experts = 3. */
const M_ALL = ModelSchema.parse({ name: 'pall', numHiddenLayers: 2, moeLayerIds: [0, 1], experts: 3, topK: 3, ...COMMON });
const MODELS = [M_A, M_ONE, M_ALL];

const SOLVER_NAMES = ['optimize', 'eplb', 'round-robin', 'contiguous'] as const;
const OBJECTIVES: Objective[] = ['balance', 'traffic', 'time'];

let dir: string;
let fileNo = 0;
/** A fresh file name in the temp folder (cases never share files). */
const fresh = (ext: string): string => join(dir, `f${fileNo++}${ext}`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'moe-placer-props-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A cluster for `model`: nodes x gpus, slots = the fewest that fit (experts = slots when it divides) plus `extra`. */
function clusterFor(model: Model, nodes: number, gpus: number, extra: number): Cluster {
  const slots = Math.ceil(model.experts / (nodes * gpus)) + extra;
  return resolveCluster('tiny-2x2', model, { nodes, gpusPerNode: gpus, slotsPerGpu: slots });
}

const arbCluster = fc.record({ nodes: fc.integer({ min: 1, max: 2 }), gpus: fc.integer({ min: 1, max: 2 }), extra: fc.integer({ min: 0, max: 1 }) });
const arbPlanOpts = fc.record({
  solver: fc.constantFrom(...SOLVER_NAMES),
  objective: fc.constantFrom(...OBJECTIVES),
  seed: fc.integer({ min: 0, max: 1000 }),
  cluster: arbCluster,
});
type PlanOpts = { solver: string; objective: Objective; seed: number; cluster: { nodes: number; gpus: number; extra: number } };

/** An InputError with one line that names `file` (and `where`, when given). */
function expectInputError(err: unknown, file: string, where?: string): void {
  if (!(err instanceof InputError)) throw new Error(`expected an InputError naming ${file}, got ${(err as Error)?.stack ?? String(err)}`);
  expect(err.problems).toHaveLength(1);
  const line = err.problems[0];
  expect(line).not.toContain('\n');
  expect(line).toContain(file);
  if (where !== undefined) expect(line).toContain(where);
}

/** Plan `workload` and check the result is a valid plan whose loads add up to the workload's. */
async function planAndCheck(model: Model, workload: Workload, o: PlanOpts, totalPerLayer: number[]): Promise<PlanOutcome> {
  const cluster = clusterFor(model, o.cluster.nodes, o.cluster.gpus, o.cluster.extra);
  const r = await plan({ model, cluster, workload, solver: o.solver, objective: o.objective, seed: o.seed, workers: 1 });
  validatePlacement(r.result.placement, o.solver, false);
  expect(r.plan.phy2log).toHaveLength(model.moeLayerIds.length);
  // Every expert has a replica, in every layer.
  for (const row of r.plan.phy2log) for (let e = 0; e < model.experts; e++) expect(row).toContain(e);
  // Loads are exact (counts and traces alike): each layer's GPU loads add up to its routed pairs.
  r.evaluation.loads.forEach((loads, l) => {
    const sum = loads.reduce((a, b) => a + b, 0);
    expect(Math.abs(sum - totalPerLayer[l])).toBeLessThanOrEqual(1e-6 * Math.max(1, totalPerLayer[l]));
  });
  expect(r.evaluation.maxLoad).toBeGreaterThanOrEqual(0);
  expect(Number.isFinite(r.evaluation.interNodeBytes)).toBe(true);
  // The plan file round-trips: written, read back (schema, placement, derived maps) to the same slots.
  const file = fresh('.plan.json');
  writePlanFile(file, r.plan);
  expect(readPlanFile(file).plan.phy2log).toEqual(r.plan.phy2log);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Counts matrices: JSON (EPLB weight / SGLang logical_count) and CSV

/** One count cell as JSON text and as CSV text; `value` is the count, or null when it is invalid. */
interface Cell {
  json: string;
  csv: string;
  value: number | null;
}
const good = (n: number): Cell => ({ json: String(n), csv: String(n), value: n });
const BAD_CELLS: Cell[] = [
  { json: '-1', csv: '-1', value: null },
  { json: '1e999', csv: '1e999', value: null }, // Infinity
  { json: 'null', csv: 'null', value: null },
  { json: '"7"', csv: 'x', value: null },
  { json: '2.5', csv: '2.5', value: 2.5 }, // fractional counts are fine
  { json: '1e17', csv: '1e17', value: 1e17 }, // a valid count, but a layer holding it adds up to more than 2^53
];
const arbCell: fc.Arbitrary<Cell> = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 60 }).map(good) },
  { weight: 2, arbitrary: fc.constant(good(0)) },
  { weight: 1, arbitrary: fc.constantFrom(...BAD_CELLS) },
);

/** `arb` most of the time, else null. */
const sometimes = <T>(arb: fc.Arbitrary<T>, weight = 1, of = 4): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: of - weight, arbitrary: fc.constant(null) }, { weight, arbitrary: arb });

/**
 * rows x cols of cells, rows biased to L or numHiddenLayers, cols to E; half the matrices have
 * only valid cells; sometimes one row is cut or extended, or set to zeros.
 */
function arbMatrix(model: Model): fc.Arbitrary<Cell[][]> {
  const L = model.moeLayerIds.length;
  const H = model.numHiddenLayers;
  const E = model.experts;
  return fc
    .record({
      rows: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(L, H) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 }) }),
      cols: fc.oneof({ weight: 5, arbitrary: fc.constant(E) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 5 }) }),
      clean: fc.boolean(),
      ragged: sometimes(fc.record({ row: fc.nat(), delta: fc.constantFrom(-1, 1) }), 1, 6),
      zeroRow: sometimes(fc.nat()),
    })
    .chain(({ rows, cols, clean, ragged, zeroRow }) =>
      fc.array(fc.array(clean ? fc.integer({ min: 0, max: 60 }).map(good) : arbCell, { minLength: cols + 1, maxLength: cols + 1 }), { minLength: rows, maxLength: rows }).map((m) => {
        const out = m.map((r) => r.slice(0, cols));
        if (out.length > 0 && zeroRow !== null) out[zeroRow % out.length] = out[zeroRow % out.length].map(() => good(0));
        if (out.length > 0 && ragged !== null) {
          const i = ragged.row % out.length;
          out[i] = ragged.delta < 0 ? out[i].slice(0, Math.max(0, cols - 1)) : m[i];
        }
        return out;
      }),
    );
}

type Expect = { ok: true; counts: number[][] } | { ok: false; where?: string };

/** Map validated rows (all of length E) to MoE layers, as documented in counts.ts. */
function mapRows(rows: number[][], model: Model, loc: (i: number) => string): Expect {
  const L = model.moeLayerIds.length;
  const E = model.experts;
  for (let i = 0; i < rows.length; i++) if (rows[i].length !== E) return { ok: false, where: loc(i) };
  let picked: number[][];
  if (rows.length === model.numHiddenLayers) {
    for (let i = 0; i < rows.length; i++) {
      if (!model.moeLayerIds.includes(i) && rows[i].some((v) => v !== 0)) return { ok: false, where: loc(i) };
    }
    picked = model.moeLayerIds.map((id) => rows[id]);
  } else if (rows.length === L) picked = rows;
  else return { ok: false };
  for (let l = 0; l < L; l++) {
    if (picked[l].reduce((a, b) => a + b, 0) > Number.MAX_SAFE_INTEGER) return { ok: false, where: loc(rows.indexOf(picked[l])) };
  }
  if (picked.every((r) => r.every((v) => v === 0))) return { ok: false };
  return { ok: true, counts: picked };
}

/** What reading a JSON matrix must give; `name` = the field holding it ('' for a plain matrix). */
function jsonOracle(m: Cell[][], model: Model, name: string): Expect {
  if (m.length === 0) return { ok: false };
  const rows: number[][] = [];
  for (let i = 0; i < m.length; i++) {
    if (i > 0 && m[i].length !== m[0].length) return { ok: false, where: `${name}[${i}]` };
    for (let e = 0; e < m[i].length; e++) if (m[i][e].value === null) return { ok: false, where: `${name}[${i}][${e}]` };
    rows.push(m[i].map((c) => c.value!));
  }
  return mapRows(rows, model, (i) => `${name}[${i}]`);
}

const numericCsv = (r: Cell[]): boolean => r.length > 0 && r.every((c) => c.csv.trim() !== '' && !Number.isNaN(Number(c.csv)));

/** What reading the CSV form (one line per row, empty rows are blank lines) must give. */
function csvOracle(m: Cell[][], model: Model): Expect {
  const nonBlank = m.map((r, i) => (r.length > 0 ? i : -1)).filter((i) => i >= 0);
  if (nonBlank.length === 0) return { ok: false };
  let data = nonBlank;
  const first = nonBlank[0];
  if (!numericCsv(m[first])) {
    // A header line, recognised only when the next line is a numeric row.
    const next = m[first + 1];
    if (!(m[first].length > 1 && next !== undefined && numericCsv(next))) return { ok: false };
    data = nonBlank.slice(1);
  }
  const rows: number[][] = [];
  const lineOf: number[] = [];
  for (const i of data) {
    for (let c = 0; c < m[i].length; c++) if (m[i][c].value === null) return { ok: false, where: `:${i + 1}: column ${c + 1}` };
    if (rows.length > 0 && m[i].length !== rows[0].length) return { ok: false, where: `:${i + 1}` };
    rows.push(m[i].map((c) => c.value!));
    lineOf.push(i + 1);
  }
  if (rows.length === 0) return { ok: false };
  return mapRows(rows, model, (j) => `:${lineOf[j]}`);
}

describe('counts readers against an oracle', () => {
  it('JSON and CSV count matrices: exact counts and a valid plan, or one InputError at the first bad row or cell', async () => {
    const arb = fc
      .constantFrom(...MODELS)
      .chain((model) => fc.record({ model: fc.constant(model), m: arbMatrix(model), form: fc.constantFrom('eplb', 'sglang', 'csv'), gzip: fc.boolean(), o: arbPlanOpts }));
    let valid = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ model, m, form, gzip, o }) => {
        const text =
          form === 'csv'
            ? m.map((r) => r.map((c) => c.csv).join(',')).join('\n')
            : form === 'sglang'
              ? `{"logical_count": [${m.map((r) => `[${r.map((c) => c.json).join(', ')}]`).join(', ')}]}`
              : `[${m.map((r) => `[${r.map((c) => c.json).join(',')}]`).join(',\n')}]`;
        const file = fresh(form === 'csv' ? '.csv' : '.json');
        writeFileSync(file, gzip ? gzipSync(text) : text);
        const want = form === 'csv' ? csvOracle(m, model) : jsonOracle(m, model, form === 'sglang' ? 'logical_count' : '');
        let w: Workload;
        try {
          w = await loadWorkload(file, model);
        } catch (err) {
          if (want.ok) throw new Error(`expected ${JSON.stringify(want.counts)} from ${JSON.stringify(text)}, got ${String(err)}`);
          expectInputError(err, file, want.where);
          return;
        }
        if (!want.ok) throw new Error(`expected an error${want.where ? ` at ${want.where}` : ''} for ${JSON.stringify(text)}, read ${w.kind}`);
        valid++;
        expect(w.kind).toBe('counts');
        if (w.kind !== 'counts') return;
        expect(w.counts.counts.map((r) => Array.from(r))).toEqual(want.counts);
        await planAndCheck(model, w, o, want.counts.map((r) => r.reduce((a, b) => a + b, 0)));
      }),
      { seed: 101, numRuns: 60 },
    );
    // The generator must reach both outcomes often enough for the property to mean something.
    expect(valid).toBeGreaterThanOrEqual(10);
  });
});

describe('numeric extremes', () => {
  it('counts adding up past 2^53 and weights past float32 are InputErrors at the row or line; 2^53 - 1 plans with finite metrics', async () => {
    const model = M_A;
    const cases: [string, string, string][] = [
      ['.json', '[[1e308, 1e308, 0, 0], [1, 1, 1, 1]]', ': [0]: '], // the sum overflows to Infinity
      ['.json', '{"logical_count": [[0, 0, 0, 0], [1, 1, 1, 1], [1e300, 0, 0, 0]]}', ': logical_count[2]: '],
      ['.csv', '1,1,1,1\n1e17,0,0,0\n', ':2: '],
      ['.jsonl', '{"experts": [[0, 1], [2, 3]]}\n{"weight": 1e39, "experts": [[0, 1], [2, 3]]}\n', ':2: weight: '],
    ];
    for (const [ext, text, where] of cases) {
      const file = fresh(ext);
      writeFileSync(file, text);
      const err = await loadWorkload(file, model).then(
        () => null,
        (e: unknown) => e,
      );
      expectInputError(err, file, `${file}${where}`);
    }
    const edge = fresh('.json');
    writeFileSync(edge, JSON.stringify([[2 ** 52, 2 ** 52 - 1, 0, 0], [1, 2, 3, 4]]));
    const w = await loadWorkload(edge, model);
    const r = await planAndCheck(model, w, { solver: 'optimize', objective: 'traffic', seed: 1, cluster: { nodes: 2, gpus: 2, extra: 0 } }, [2 ** 53 - 1, 10]);
    for (const v of [r.evaluation.interNodeBytes, r.evaluation.intraNodeBytes, r.evaluation.timeSeconds, r.evaluation.balancedness]) expect(Number.isFinite(v)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Per-token traces in the JSON-lines form

/** One token line: experts per layer (ids as JSON values), optional request / rank / weight, maybe a stray key. */
interface TokenLine {
  experts: unknown[][];
  request?: unknown;
  rank?: unknown;
  weight?: unknown;
  /** Add a key the format does not know. */
  stray?: boolean;
}

function arbTokenLine(model: Model, clean: boolean): fc.Arbitrary<TokenLine> {
  const L = model.moeLayerIds.length;
  const k = model.topK;
  const E = model.experts;
  const distinct = fc.shuffledSubarray(Array.from({ length: E }, (_, e) => e), { minLength: k, maxLength: k });
  if (clean) {
    return fc.record(
      {
        experts: fc.array(distinct, { minLength: L, maxLength: L }),
        request: fc.integer({ min: 0, max: 3 }),
        rank: fc.integer({ min: -1, max: 3 }),
        weight: fc.constantFrom<unknown>(0, 1, 2.5),
      },
      { requiredKeys: ['experts'] },
    );
  }
  // Mostly distinct in-range ids; sometimes a duplicate, an id out of range or not an integer.
  const arbLayer = fc.oneof(
    { weight: 8, arbitrary: distinct },
    {
      weight: 1,
      arbitrary: fc.array(fc.oneof(fc.integer({ min: -1, max: E }), fc.constantFrom<unknown>(1.5, '2', null)), { minLength: k, maxLength: k }),
    },
    { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: E - 1 }), { minLength: Math.max(0, k - 1), maxLength: k + 1 }) },
  );
  return fc.record(
    {
      experts: fc.oneof(
        { weight: 12, arbitrary: fc.array(arbLayer, { minLength: L, maxLength: L }) },
        { weight: 1, arbitrary: fc.array(arbLayer, { minLength: 0, maxLength: L + 1 }) },
      ),
      request: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, 0.5, 'r') }),
      rank: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: -1, max: 3 }) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(-2, 1.5) }),
      weight: fc.oneof({ weight: 12, arbitrary: fc.constantFrom<unknown>(0, 1, 2.5) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, '1', 1e39) }),
      stray: fc.oneof({ weight: 20, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant(true) }),
    },
    { requiredKeys: ['experts'] },
  );
}

/** Field at fault in `t` (or null when the line is a valid token), in the documented check order. */
function tokenProblem(t: TokenLine, model: Model): string | null {
  const L = model.moeLayerIds.length;
  const k = model.topK;
  const E = model.experts;
  const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
  if (t.stray) return 'colour';
  if (t.request !== undefined && !(isInt(t.request) && t.request >= 0)) return 'request';
  if (t.rank !== undefined && !(isInt(t.rank) && t.rank >= -1)) return 'rank';
  // Weights are stored as float32: 1e39 is a finite number but not a finite weight.
  if (t.weight !== undefined && !(typeof t.weight === 'number' && Number.isFinite(Math.fround(t.weight)) && t.weight >= 0)) return 'weight';
  if (t.experts.length !== L) return 'experts';
  for (let l = 0; l < L; l++) {
    const ids = t.experts[l];
    if (ids.length !== k) return `experts[${l}]`;
    for (let j = 0; j < k; j++) if (!isInt(ids[j]) || (ids[j] as number) < 0 || (ids[j] as number) >= E) return `experts[${l}][${j}]`;
    for (let j = 1; j < k; j++) if (ids.indexOf(ids[j]) < j) return `experts[${l}][${j}]`;
  }
  return null;
}

describe('JSON-lines trace reader against an oracle', () => {
  it('a valid trace plans with exact loads; else one InputError naming the file, the first bad line and its field', async () => {
    const arb = fc.constantFrom(...MODELS).chain((model) =>
      fc.record({
        model: fc.constant(model),
        // null = a blank line
        lines: fc.boolean().chain((clean) => fc.array(fc.option(arbTokenLine(model, clean), { freq: 12 }), { minLength: 0, maxLength: 14 })),
        gzip: fc.boolean(),
        o: arbPlanOpts,
      }),
    );
    let valid = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ model, lines, gzip, o }) => {
        const text = lines.map((t) => (t === null ? '' : JSON.stringify({ request: t.request, rank: t.rank, weight: t.weight, experts: t.experts, colour: t.stray ? 'red' : undefined }))).join('\n');
        const file = fresh('.jsonl');
        writeFileSync(file, gzip ? gzipSync(text) : text);
        // Oracle: the first line with a problem, or (no token at all) an empty-file error.
        let want: { line: number; field: string } | 'empty' | null = null;
        for (let i = 0; i < lines.length && want === null; i++) {
          const t = lines[i];
          const field = t === null ? null : tokenProblem(t, model);
          if (field !== null) want = { line: i + 1, field };
        }
        if (want === null && lines.every((t) => t === null)) want = 'empty';
        let w: Workload;
        try {
          w = await loadWorkload(file, model);
        } catch (err) {
          if (want === null) throw new Error(`expected a trace from ${JSON.stringify(text)}, got ${String(err)}`);
          expectInputError(err, file, want === 'empty' ? undefined : `${file}:${want.line}: ${want.field}`);
          return;
        }
        if (want !== null) throw new Error(`expected an error (${JSON.stringify(want)}) for ${JSON.stringify(text)}`);
        valid++;
        expect(w.kind).toBe('trace');
        if (w.kind !== 'trace') return;
        const tokens = lines.filter((t): t is TokenLine => t !== null);
        expect(w.trace.numTokens).toBe(tokens.length);
        const k = model.topK;
        const total = tokens.reduce((s, t) => s + (t.weight === undefined ? 1 : (t.weight as number)) * k, 0);
        for (let l = 0; l < model.moeLayerIds.length; l++) {
          expect(Array.from(w.trace.experts[l])).toEqual(tokens.flatMap((t) => t.experts[l] as number[]));
        }
        await planAndCheck(model, w, o, model.moeLayerIds.map(() => total));
      }),
      { seed: 202, numRuns: 60 },
    );
    expect(valid).toBeGreaterThanOrEqual(10);
  });
});

// ---------------------------------------------------------------------------------------------
// Per-request CSV traces (v2lite-csv): folders of files, quoted token texts

/** One CSV row: the engine layer id, batch number, token text and expert ids as written. */
interface CsvRow {
  layer: string;
  batch: string;
  token: string;
  ids: string;
  /** The row is valid on its own (a MoE layer id, a k-list of distinct ids in range). */
  ok: boolean;
  /** MoE layer index (when ok). */
  l: number;
  /** Parsed ids (when ok). */
  parsed: number[];
}

const HEADER = 'Layer ID,Batch Number,Token,Activated Expert IDs';
/** CSV-quote a token text when it holds a comma, a quote or a line break. */
const quote = (t: string): string => (/[",\n]/.test(t) || t === '' ? `"${t.replace(/"/g, '""')}"` : t);

function arbCsvFile(model: Model): fc.Arbitrary<{ header: string | null; rows: CsvRow[]; batch: number }> {
  const L = model.moeLayerIds.length;
  const k = model.topK;
  const E = model.experts;
  const token = fc.string({ unit: fc.constantFrom('a', 'b', ' ', ',', '"', '\n', 'é'), maxLength: 5 });
  const goodIds = fc.shuffledSubarray(Array.from({ length: E }, (_, e) => e), { minLength: k, maxLength: k });
  // Built, not filtered (a filter that cannot pass would loop forever).
  const badIds = fc.oneof(
    fc.array(fc.integer({ min: 0, max: E - 1 }), { minLength: k - 1, maxLength: k - 1 }).map((a) => [a[0] ?? 0, ...a]), // duplicate (k >= 2 here)
    fc.array(fc.integer({ min: 0, max: E - 1 }), { minLength: k - 1, maxLength: k - 1 }).map((a) => [...a, E]), // out of range
    fc.array(fc.integer({ min: 0, max: E - 1 }), { minLength: k + 1, maxLength: k + 1 }), // too wide
    fc.constantFrom<unknown[]>([-1], ['x'], [1.5]),
  );
  /** `common` mostly, `odd` once in `1 + w` (never when clean). */
  const mostly = <T>(clean: boolean, common: fc.Arbitrary<T>, odd: fc.Arbitrary<T>, w = 20): fc.Arbitrary<T> =>
    clean ? common : fc.oneof({ weight: w, arbitrary: common }, { weight: 1, arbitrary: odd });
  // Engine layer ids that are no MoE layer of the model (a dense one when there is one).
  const dense = Array.from({ length: model.numHiddenLayers }, (_, i) => i).filter((i) => !model.moeLayerIds.includes(i));
  const notMoe = [...dense.map(String), 'x', String(model.numHiddenLayers + 3)];
  const row = (l: number, batch: number, clean: boolean): fc.Arbitrary<CsvRow> =>
    fc
      .record({
        token,
        ids: mostly(clean, goodIds.map((a) => ({ a: a as unknown[], ok: true })), badIds.map((a) => ({ a, ok: false })), 6),
        layer: mostly(clean, fc.constant<string | null>(null), fc.constantFrom<string | null>(...notMoe)),
        batch: mostly(clean, fc.constant<string | null>(null), fc.constantFrom<string | null>(String(batch + 1), '-1')),
      })
      .map(({ token: t, ids, layer, batch: b }) => ({
        layer: layer ?? String(model.moeLayerIds[l]),
        batch: b ?? String(batch),
        token: t,
        ids: `"[${ids.a.join(', ')}]"`,
        ok: ids.ok && layer === null && b === null,
        l,
        parsed: ids.a as number[],
      }));
  const file = fc.record({
    T: fc.integer({ min: 1, max: 3 }),
    batch: fc.nat(5),
    clean: fc.boolean(),
    // A layer with one row fewer than the others.
    uneven: mostly(false, fc.constant(-1), fc.integer({ min: 0, max: L - 1 }), 8),
    header: mostly(false, fc.constant<string | null>(HEADER), fc.constantFrom<string | null>(null, 'Layer ID,Batch Number,Text,Activated Expert IDs')),
  });
  return file.chain(({ T, batch, clean, uneven, header }) =>
    fc
      .tuple(...Array.from({ length: L }, (_, l) => fc.array(row(l, batch, clean), { minLength: l === uneven ? T - 1 : T, maxLength: l === uneven ? T - 1 : T })))
      .map((layers) => ({ header, rows: layers.flat(), batch })),
  );
}

/** Line of the first bad line of a file (0 = no line: a file-level problem), or null when it reads. */
function csvFileProblem(f: { header: string | null; rows: CsvRow[] }, model: Model): number | null {
  if (f.header !== HEADER) return 1;
  let line = 2;
  const perLayer = new Array<number>(model.moeLayerIds.length).fill(0);
  for (const r of f.rows) {
    if (!r.ok) return line;
    perLayer[r.l]++;
    line += 1 + (r.token.match(/\n/g)?.length ?? 0);
  }
  const T = Math.max(...perLayer);
  return T === 0 || perLayer.some((n) => n !== T) ? 0 : null;
}

describe('per-request CSV trace folders against an oracle', () => {
  it('a valid folder plans with one request per file in natural order; else one InputError naming the first bad file (and line)', async () => {
    const arb = fc.constantFrom(M_A, M_ALL).chain((model) =>
      fc.record({ model: fc.constant(model), files: fc.array(arbCsvFile(model), { minLength: 1, maxLength: 3 }), gzip: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), o: arbPlanOpts }),
    );
    let valid = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ model, files, gzip, o }) => {
        const folder = fresh('');
        // Names r0, r5, r10: natural order, not the plain string order (r0, r10, r5).
        const paths = files.map((f, i) => {
          const text = [...(f.header === null ? [] : [f.header]), ...f.rows.map((r) => `${r.layer},${r.batch},${quote(r.token)},${r.ids}`)].join('\n') + '\n';
          const path = join(folder, `r${i * 5}.csv`);
          mkdirSync(folder, { recursive: true });
          writeFileSync(path, gzip[i] ? gzipSync(text) : text);
          return path;
        });
        let want: { file: string; line: number } | null = null;
        for (let i = 0; i < files.length && want === null; i++) {
          const line = csvFileProblem(files[i], model);
          if (line !== null) want = { file: paths[i], line };
        }
        let w: Workload;
        try {
          w = await loadWorkload(folder, model);
        } catch (err) {
          if (want === null) throw new Error(`expected a trace, got ${String(err)}`);
          expectInputError(err, want.file, want.line > 0 ? `${want.file}:${want.line}` : undefined);
          return;
        }
        if (want !== null) throw new Error(`expected an error in ${want.file} at line ${want.line}`);
        valid++;
        if (w.kind !== 'trace') throw new Error('expected a trace');
        const tr = w.trace;
        const T = files.map((f) => f.rows.length / model.moeLayerIds.length);
        expect(tr.numRequests).toBe(files.length);
        expect(Array.from(tr.request)).toEqual(T.flatMap((n, i) => new Array<number>(n).fill(i)));
        // Row i of layer l in a file is token i of that file's request.
        for (let l = 0; l < model.moeLayerIds.length; l++) {
          expect(Array.from(tr.experts[l])).toEqual(files.flatMap((f) => f.rows.filter((r) => r.l === l).flatMap((r) => r.parsed)));
        }
        await planAndCheck(model, w, o, model.moeLayerIds.map(() => tr.numTokens * model.topK));
      }),
      { seed: 606, numRuns: 40 },
    );
    expect(valid).toBeGreaterThanOrEqual(8);
  });
});

// ---------------------------------------------------------------------------------------------
// Per-request JSON step traces (maverick-json)

/** One step: the object written, whether it is valid, and its tokens' ids per MoE layer. */
interface Step {
  obj: Record<string, unknown>;
  ok: boolean;
  ids: number[][];
}

function arbStep(model: Model, clean: boolean): fc.Arbitrary<Step> {
  const L = model.moeLayerIds.length;
  const k = model.topK;
  const E = model.experts;
  const tok = fc.shuffledSubarray(Array.from({ length: E }, (_, e) => e), { minLength: k, maxLength: k });
  // (Built, not filtered: with k = 1 a filter for duplicates would never pass.)
  const dup: unknown[] = k > 1 ? [0, 0, ...Array.from({ length: k - 2 }, (_, j) => j + 1)] : [E];
  const badTok = fc.constantFrom<unknown>(dup, [E, ...Array.from({ length: k - 1 }, (_, j) => j)], 'x', [0.5], []);
  type Fault = 'none' | 'badToken' | 'missingLayer' | 'unevenLayer' | 'denseRouted' | 'badKey' | 'noTokens';
  const fault: fc.Arbitrary<Fault> = clean
    ? fc.constant('none')
    : fc.oneof({ weight: 6, arbitrary: fc.constant<Fault>('none') }, { weight: 1, arbitrary: fc.constantFrom<Fault>('badToken', 'missingLayer', 'unevenLayer', 'denseRouted', 'badKey', 'noTokens') });
  return fc
    .record({
      T: fc.integer({ min: 1, max: 3 }),
      fault,
      which: fc.nat(),
      // A key of a layer that is not MoE, holding null, is fine even beyond the model's layers.
      spare: fc.boolean(),
    })
    .chain(({ T, fault, which, spare }) =>
      fc.tuple(fc.array(fc.array(tok, { minLength: T, maxLength: T }), { minLength: L, maxLength: L }), badTok).map(([layers, bad]) => {
        const obj: Record<string, unknown> = {};
        for (let id = 0; id < model.numHiddenLayers; id++) if (!model.moeLayerIds.includes(id)) obj[String(id)] = null;
        const l = which % L;
        const rows: unknown[][] = layers.map((r) => r.slice());
        let ok = true;
        if (fault === 'badToken') rows[l][which % T] = bad;
        if (fault === 'unevenLayer' && L > 1) rows[l] = rows[l].concat([rows[l][0]]);
        if (fault === 'noTokens') for (const r of rows) r.length = 0;
        model.moeLayerIds.forEach((id, i) => (obj[String(id)] = rows[i]));
        if (fault === 'missingLayer') delete obj[String(model.moeLayerIds[l])];
        if (fault === 'denseRouted') obj[String(model.numHiddenLayers)] = [[0]];
        if (fault === 'badKey') obj.x = null;
        if (spare) obj[String(model.numHiddenLayers + 5)] = null;
        ok = fault === 'none' || (fault === 'unevenLayer' && L === 1);
        return { obj, ok, ids: layers.map((r) => r.flat()) };
      }),
    );
}

describe('per-request JSON step traces against an oracle', () => {
  it('valid step files plan with their tokens appended step by step; else one InputError naming the bad file', async () => {
    const arb = fc.constantFrom(...MODELS).chain((model) =>
      fc.record({
        model: fc.constant(model),
        files: fc.boolean().chain((clean) => fc.array(fc.array(arbStep(model, clean), { minLength: 0, maxLength: 3 }), { minLength: 1, maxLength: 2 })),
        gzip: fc.boolean(),
        o: arbPlanOpts,
      }),
    );
    let valid = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ model, files, gzip, o }) => {
        const folder = fresh('');
        mkdirSync(join(folder, 'sub'), { recursive: true });
        // Nested: the second file sits in a sub-folder that sorts after the first file.
        const paths = files.map((steps, i) => {
          const path = join(folder, i === 0 ? 'a.json' : 'sub/b.json');
          const text = JSON.stringify(steps.map((s) => s.obj));
          writeFileSync(path, gzip ? gzipSync(text) : text);
          return path;
        });
        const bad = files.findIndex((steps) => steps.length === 0 || steps.some((s) => !s.ok));
        let w: Workload;
        try {
          w = await loadWorkload(folder, model);
        } catch (err) {
          if (bad < 0) throw new Error(`expected a trace, got ${String(err)}`);
          // `[]` first decides the folder's format from content: a counts matrix, not step traces.
          expectInputError(err, bad === 0 && files[0].length === 0 ? folder : paths[bad]);
          return;
        }
        if (bad >= 0) throw new Error(`expected an error naming ${paths[bad]}`);
        valid++;
        if (w.kind !== 'trace') throw new Error('expected a trace');
        expect(w.trace.numRequests).toBe(files.length);
        for (let l = 0; l < model.moeLayerIds.length; l++) {
          expect(Array.from(w.trace.experts[l])).toEqual(files.flatMap((steps) => steps.flatMap((s) => s.ids[l])));
        }
        await planAndCheck(model, w, o, model.moeLayerIds.map(() => w.kind === 'trace' ? w.trace.numTokens * model.topK : 0));
      }),
      { seed: 707, numRuns: 40 },
    );
    expect(valid).toBeGreaterThanOrEqual(8);
  });
});

// ---------------------------------------------------------------------------------------------
// Binary traces: corruption, truncation, garbage

describe('binary traces: corrupted, truncated, garbage', () => {
  it('truncation is always an InputError; byte flips and appended bytes give a valid plan or an InputError', async () => {
    const arb = fc.record({
      model: fc.constantFrom(...MODELS),
      T: fc.integer({ min: 0, max: 40 }),
      seed: fc.nat(),
      rank: fc.boolean(),
      weight: fc.boolean(),
      gzip: fc.boolean(),
      damage: fc.oneof(
        fc.record({ kind: fc.constant('none' as const) }),
        fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }) }),
        fc.record({ kind: fc.constant('flip' as const), at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), byte: fc.integer({ min: 0, max: 255 }) }),
        fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
      ),
      o: arbPlanOpts,
    });
    let planned = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ model, T, seed, rank, weight, gzip, damage, o }) => {
        const src = fresh(gzip ? '.mpt.gz' : '.mpt');
        await writeTrace(src, uniformTrace(traceDims(model), T, seed, { blocks: Math.min(T, 3), rank: rank ? 4 : 0, weight: weight ? 32 : undefined }), model, { gzip });
        const bytes = readFileSync(src);
        let bad: Buffer;
        if (damage.kind === 'none') bad = bytes;
        else if (damage.kind === 'truncate') bad = bytes.subarray(0, Math.floor(damage.at * bytes.length));
        else if (damage.kind === 'flip') {
          bad = Buffer.from(bytes);
          // Half the flips land in the token data (after the header), where more of them stay valid.
          const from = gzip || damage.byte % 2 === 0 ? 0 : Math.min(bad.length - 1, 8 + bytes.readUInt32LE(4));
          bad[from + Math.floor(damage.at * (bad.length - from))] = damage.byte;
        } else bad = Buffer.concat([bytes, damage.bytes]);
        const file = fresh('.bin');
        writeFileSync(file, bad);
        let w: Workload;
        try {
          w = await loadWorkload(file, model);
        } catch (err) {
          if (damage.kind === 'none') throw err;
          expectInputError(err, file);
          return;
        }
        // A shortened file must never be taken for a complete trace; an intact one always reads.
        expect(damage.kind).not.toBe('truncate');
        if (damage.kind === 'none') expect(w.kind === 'trace' && w.trace.numTokens).toBe(T);
        if (w.kind !== 'trace') return; // a flip may turn the bytes into another format
        planned++;
        const tr = w.trace;
        const per = model.moeLayerIds.map(() => {
          let s = 0;
          for (let t = 0; t < tr.numTokens; t++) s += (tr.weight ? tr.weight[t] : 1) * model.topK;
          return s;
        });
        await planAndCheck(model, w, o, per);
      }),
      { seed: 303, numRuns: 60 },
    );
    expect(planned).toBeGreaterThanOrEqual(5);
  });

  it('random bytes (raw or gzipped, with or without a known format prefix) never escape as anything but an InputError', async () => {
    const prefixes = ['', 'MPT1', '{', '[', '{"experts":', 'Layer ID,Batch Number,Token,Activated Expert IDs\n', '1,2,3,4\n', '\x1f\x8b'];
    const arb = fc.record({
      model: fc.constantFrom(...MODELS),
      prefix: fc.constantFrom(...prefixes),
      body: fc.uint8Array({ minLength: 0, maxLength: 120 }),
      gzip: fc.constantFrom('none', 'whole', 'truncated'),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ model, prefix, body, gzip }) => {
        const raw = Buffer.concat([Buffer.from(prefix, 'latin1'), body]);
        const z = gzipSync(raw);
        const bytes = gzip === 'none' ? raw : gzip === 'whole' ? z : z.subarray(0, Math.max(2, z.length - 1 - (body.length % 8)));
        const file = fresh('.dat');
        writeFileSync(file, bytes);
        try {
          await loadWorkload(file, model);
        } catch (err) {
          expectInputError(err, file);
          return;
        }
        // Readable content (e.g. a numeric CSV prefix) is fine; a cut gzip stream never is.
        expect(gzip).not.toBe('truncated');
      }),
      { seed: 404, numRuns: 60 },
    );
  });

  it('a trace of another model (layers, experts or top-k differ) is an InputError naming the file', async () => {
    const A = M_A;
    const others = [
      ModelSchema.parse({ ...A, name: 'more-layers', numHiddenLayers: 4, moeLayerIds: [1, 2, 3] }),
      ModelSchema.parse({ ...A, name: 'fewer-layers', moeLayerIds: [1] }),
      ModelSchema.parse({ ...A, name: 'more-experts', experts: 5 }),
      ModelSchema.parse({ ...A, name: 'top-3', topK: 3 }),
    ];
    const mpt = fresh('.mpt');
    await writeTrace(mpt, uniformTrace(traceDims(A), 20, 1, { blocks: 2 }), A);
    const jsonl = fresh('.jsonl');
    await writeTrace(jsonl, uniformTrace(traceDims(A), 20, 1, { blocks: 2 }), A, { format: 'mpt-jsonl' });
    const counts = fresh('.json');
    writeFileSync(counts, JSON.stringify([[1, 2, 3, 4], [4, 3, 2, 1]]));
    for (const m of others) {
      for (const file of [mpt, jsonl, counts]) {
        // Counts carry no top-k, JSON lines no expert count: those files are valid for such models.
        if ((file === counts && m.name === 'top-3') || (file === jsonl && m.name === 'more-experts')) continue;
        const err = await loadWorkload(file, m).then(
          () => null,
          (e: unknown) => e,
        );
        expectInputError(err, file);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Placement files: plans and engine files, mutated

/** Paths to the number leaves (and all nodes) of a JSON value. */
function jsonPaths(v: unknown, path: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(path);
  if (Array.isArray(v)) v.forEach((x, i) => jsonPaths(x, [...path, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) jsonPaths(x, [...path, k], out);
  return out;
}

describe('placement files (plan, sglang, eplb, trtllm, vllm-ascend) with random damage', () => {
  it('a damaged file loads as a valid placement or is one InputError naming it', async () => {
    const model = M_A;
    const cluster = clusterFor(model, 2, 2, 1); // 2 x 2 GPUs x 2 slots: 8 slots for 4 experts
    const trace = uniformTrace(traceDims(model), 60, 4, { blocks: 3 });
    const workload: Workload = { kind: 'trace', trace, meta: { format: 'mpt' } };
    const r = await plan({ model, cluster, workload, solver: 'eplb', seed: 1, workers: 1 });
    const texts: Record<string, string> = { plan: stringifyPlan(r.plan) };
    for (const f of ['sglang', 'eplb', 'trtllm', 'vllm-ascend'] as const) texts[f] = exportPlan(r.plan, f);
    const arb = fc.record({
      format: fc.constantFrom('plan', 'sglang', 'eplb', 'trtllm', 'vllm-ascend'),
      damage: fc.oneof(
        fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }) }),
        fc.record({ kind: fc.constant('char' as const), at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), c: fc.constantFrom('0', '9', '-', 'x', ']', '"', ' ', '\n') }),
        fc.record({
          kind: fc.constant('value' as const),
          at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
          value: fc.constantFrom<unknown>(-2, -1, 0, 3, 4, 8, 1e9, 1.5, 'x', null, [], {}),
        }),
        fc.record({ kind: fc.constant('delete' as const), at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }) }),
      ),
    });
    let loaded = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ format, damage }) => {
        const text = texts[format];
        let bad = text;
        if (damage.kind === 'truncate') bad = text.slice(0, Math.floor(damage.at * text.length));
        else if (damage.kind === 'char') {
          const i = Math.floor(damage.at * text.length);
          bad = text.slice(0, i) + damage.c + text.slice(i + 1);
        } else if (format !== 'trtllm') {
          // Tree damage: replace or delete one node of the JSON document (not the root).
          const doc = JSON.parse(text) as unknown;
          const paths = jsonPaths(doc).slice(1);
          const path = paths[Math.floor(damage.at * paths.length)];
          let parent = doc as Record<string | number, unknown>;
          for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
          const last = path[path.length - 1];
          if (damage.kind === 'value') parent[last] = damage.value;
          else if (Array.isArray(parent)) parent.splice(last as number, 1);
          else delete parent[last];
          bad = JSON.stringify(doc);
        }
        const file = fresh(format === 'trtllm' ? '.yaml' : '.json');
        writeFileSync(file, bad);
        let got;
        try {
          got = loadPlacement(file, format === 'plan' ? {} : { model, cluster });
        } catch (err) {
          expectInputError(err, file);
          return;
        }
        loaded++;
        // Whatever loads is a placement the evaluator can score.
        validatePlacement(got.placement, file, false);
        const ev = evaluatePlan({ model: got.model, cluster: got.cluster, placement: got.placement, workload });
        expect(Number.isFinite(ev.evaluation.maxLoad)).toBe(true);
        // A cut JSON document never loads.
        if (damage.kind === 'truncate' && format !== 'trtllm' && bad.trim() !== text.trim()) throw new Error(`a truncated ${format} file loaded: ${JSON.stringify(bad.slice(-40))}`);
      }),
      { seed: 808, numRuns: 80 },
    );
    expect(loaded).toBeGreaterThanOrEqual(5);
  });
});

// ---------------------------------------------------------------------------------------------
// The CLI in-process: random flags

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `main(argv)` with stdout and stderr captured (progress off). */
async function runMain(argv: string[]): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const prev = { progress: process.env.MOE_PLACER_PROGRESS, debug: process.env.MOE_PLACER_DEBUG };
  process.env.MOE_PLACER_PROGRESS = '0';
  process.env.MOE_PLACER_DEBUG = '0';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(((s: string | Uint8Array) => {
    stdout += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  }) as typeof process.stdout.write);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(((s: string | Uint8Array) => {
    stderr += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  }) as typeof process.stderr.write);
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.env.MOE_PLACER_PROGRESS = prev.progress;
    process.env.MOE_PLACER_DEBUG = prev.debug;
    if (prev.progress === undefined) delete process.env.MOE_PLACER_PROGRESS;
    if (prev.debug === undefined) delete process.env.MOE_PLACER_DEBUG;
  }
}

/** A flag value: the text given, and whether the flag accepts it. */
interface FlagValue {
  text: string;
  ok: boolean;
}
const v = (text: string, ok: boolean): FlagValue => ({ text, ok });

describe('the CLI (main in-process) on random flags', () => {
  beforeAll(async () => {
    const p = (name: string): string => join(dir, name);
    writeFileSync(p('model.json'), JSON.stringify(M_A));
    writeFileSync(p('cluster.json'), JSON.stringify({ name: 'c', nodes: 2, gpusPerNode: 2, slotsPerGpu: 1, gpu: 'H100' }));
    // Bad model / cluster files: each names a field (or the file) when read.
    writeFileSync(p('model-zero-experts.json'), JSON.stringify({ ...M_A, experts: 0 }));
    writeFileSync(p('model-topk.json'), JSON.stringify({ ...M_A, topK: 9 }));
    writeFileSync(p('model-layers.json'), JSON.stringify({ ...M_A, moeLayerIds: [1, 7] }));
    writeFileSync(p('model-trunc.json'), JSON.stringify(M_A).slice(0, 40));
    writeFileSync(p('cluster-nodes.json'), JSON.stringify({ nodes: 0, gpusPerNode: 2, slotsPerGpu: 1, gpu: 'H100' }));
    writeFileSync(p('cluster-gpu.json'), JSON.stringify({ nodes: 2, gpusPerNode: 2, slotsPerGpu: 1, gpu: 'X100' }));
    await writeTrace(p('trace.mpt'), uniformTrace(traceDims(M_A), 200, 9, { blocks: 4, rank: 4 }), M_A);
    writeFileSync(p('trace-trunc.gz'), gzipSync(JSON.stringify([[1, 2, 3, 4], [4, 3, 2, 1]])).subarray(0, 20));
  });

  it('valid flags give exit 0 and a valid plan; any bad one gives exit 2, one line per problem naming a culprit, no output file', async () => {
    const p = (name: string): string => join(dir, name);
    const bad = ['x', '', '-1', '1.5', '1e3', '0x10', '99999999999999999999'];
    /** Mostly one of `goods`, sometimes one of `bads`. */
    const flag = (goods: readonly string[], bads: readonly string[]): fc.Arbitrary<FlagValue> =>
      fc.oneof({ weight: 16, arbitrary: fc.constantFrom(...goods).map((s) => v(s, true)) }, { weight: 1, arbitrary: fc.constantFrom(...bads).map((s) => v(s, false)) });
    const arb = fc.record(
      {
        model: fc.oneof(
          { weight: 16, arbitrary: fc.constant(v(p('model.json'), true)) },
          { weight: 1, arbitrary: fc.constantFrom('model-zero-experts.json', 'model-topk.json', 'model-layers.json', 'model-trunc.json', 'nope.json').map((f) => v(p(f), false)) },
          { weight: 1, arbitrary: fc.constantFrom(v('no-such-model', false), v('', false)) },
        ),
        cluster: fc.oneof(
          { weight: 16, arbitrary: fc.constantFrom(v(p('cluster.json'), true), v('tiny-2x2', true)) },
          { weight: 1, arbitrary: fc.constantFrom('cluster-nodes.json', 'cluster-gpu.json').map((f) => v(p(f), false)) },
        ),
        workload: fc.oneof(
          { weight: 16, arbitrary: fc.constant(v(p('trace.mpt'), true)) },
          { weight: 1, arbitrary: fc.constantFrom(v(p('trace-trunc.gz'), false), v(p('missing.mpt'), false), v(dir, false)) },
        ),
        nodes: flag(['1', '2'], [...bad, '0']),
        'gpus-per-node': flag(['1', '2'], [...bad, '0']),
        'slots-per-gpu': flag(['2', '4'], [...bad, '0']),
        solver: flag([...SOLVER_NAMES], ['eplbb', 'optimise', '', 'OPTIMIZE']),
        objective: flag(OBJECTIVES, ['trafic', 'speed', '']),
        mode: flag(['normal', 'low-latency'], ['decode', 'lowlatency', '']),
        seed: flag(['0', '7', '4294967295'], ['-1', '4294967296', '1.5', 'x', '']),
        'time-limit': flag(['0.5', '30', '1e-9'], ['0', '-1', 'NaN', 'Infinity', 'x', '']),
        workers: flag(['1'], ['0', '-2', '1.5', 'x', '']),
        eps: flag(['0', '0.3'], ['-0.1', 'NaN', 'x', '']),
        out: fc.oneof(
          { weight: 16, arbitrary: fc.constant(v('<fresh>', true)) },
          { weight: 1, arbitrary: fc.constantFrom(v(p('no/such/dir/plan.json'), false), v(dir, false)) },
        ),
        json: flag(['', '=true'], ['=yes']),
      },
      { requiredKeys: ['model', 'cluster', 'workload', 'out', 'workers'] },
    );
    const extras = fc.oneof({ weight: 16, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.tuple(fc.constantFrom('--nodez', 'stray', '--seed')) });
    const drop = sometimes(fc.constantFrom('model', 'cluster', 'workload', 'out'), 1, 16);
    let ok = 0;
    let failed = 0;
    await fc.assert(
      fc.asyncProperty(arb, extras, drop, async (flags, extra, dropped) => {
        const out = fresh('.plan.json');
        const argv = ['plan'];
        const culprits: string[] = [];
        let valid = true;
        for (const [name, val] of Object.entries(flags) as [string, FlagValue][]) {
          if (name === dropped) continue;
          const text = val.text === '<fresh>' ? out : val.text;
          if (name === 'json') argv.push(`--json${text}`);
          else argv.push(`--${name}`, text);
          if (!val.ok) {
            valid = false;
            culprits.push(`--${name}`);
            if (text !== '') culprits.push(text);
          }
        }
        if (dropped !== null) {
          valid = false;
          culprits.push(`--${dropped}`);
        }
        for (const e of extra) {
          if (e === '--seed' && flags.seed === undefined) continue; // not a repeat then
          argv.push(e === '--seed' ? '--seed' : e, ...(e === '--seed' ? ['3'] : []));
          valid = false;
          culprits.push(e === 'stray' ? 'stray' : e);
        }
        // Feasibility: at least one slot per expert (the only shape rule these tiny inputs can break).
        const base = flags.cluster.text.endsWith('cluster.json') ? { n: 2, g: 2, s: 1 } : { n: 2, g: 2, s: 2 };
        const n = flags.nodes?.ok ? Number(flags.nodes.text) : base.n;
        const g = flags['gpus-per-node']?.ok ? Number(flags['gpus-per-node'].text) : base.g;
        const s = flags['slots-per-gpu']?.ok ? Number(flags['slots-per-gpu'].text) : base.s;
        if (flags.model.ok && flags.cluster.ok && n * g * s < M_A.experts) {
          valid = false;
          culprits.push('slots');
        }
        const r = await runMain(argv);
        const leftovers = readdirSync(dir).filter((f) => f.includes('.tmp'));
        expect(leftovers).toEqual([]);
        expect(r.stderr).not.toMatch(/^\s+at /m); // never a stack trace
        if (valid) {
          if (r.code !== 0) throw new Error(`expected success for ${argv.join(' ')}\n${r.stderr}`);
          ok++;
          const { plan: pf } = readPlanFile(out);
          expect(pf.provenance?.solver).toBe(flags.solver?.text ?? 'optimize');
          expect(r.stdout.length).toBeGreaterThan(0);
          if (flags.json !== undefined) JSON.parse(r.stdout);
          return;
        }
        failed++;
        if (r.code !== 2) throw new Error(`expected exit 2 for ${argv.join(' ')}, got ${r.code}\n${r.stderr}`);
        expect(r.stdout).toBe('');
        expect(existsSync(out)).toBe(false);
        const lines = r.stderr.trimEnd().split('\n');
        for (const line of lines) expect(line).toMatch(/^moe-placer: \S/);
        expect(lines[0]).not.toMatch(/expected an? [a-z],/); // e.g. `--model: expected a m` (one-letter metavar)
        // One line per problem: several only when several required flags are missing at once.
        if (!lines[0].includes('missing --')) expect(lines).toHaveLength(1);
        const named = culprits.some((c) => lines[0].includes(c));
        if (!named) throw new Error(`${JSON.stringify(lines[0])} names none of ${JSON.stringify(culprits)} (argv ${argv.join(' ')})`);
      }),
      { seed: 505, numRuns: 60 },
    );
    expect(ok).toBeGreaterThanOrEqual(10);
    expect(failed).toBeGreaterThanOrEqual(20);
  });

  /** The run's outcome against its oracle: exit 0, or exit 2 with lines naming one of `culprits`, and no `out`. */
  function expectOutcome(r: Captured, argv: string[], valid: boolean, culprits: string[], out: string): void {
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
    if (valid) {
      if (r.code !== 0) throw new Error(`expected success for ${argv.join(' ')}\n${r.stderr}`);
      return;
    }
    if (r.code !== 2) throw new Error(`expected exit 2 for ${argv.join(' ')}, got ${r.code}\n${r.stderr}`);
    expect(r.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
    const lines = r.stderr.trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^moe-placer: \S/);
    if (!lines[0].includes('missing --')) expect(lines).toHaveLength(1);
    if (!culprits.some((c) => lines[0].includes(c))) throw new Error(`${JSON.stringify(lines[0])} names none of ${JSON.stringify(culprits)} (argv ${argv.join(' ')})`);
  }

  it('generate and export: the same contract on their flags', async () => {
    const p = (name: string): string => join(dir, name);
    const planFile = p('for-export.plan.json');
    expect(await runMain(['plan', '--model', p('model.json'), '--cluster', 'tiny-2x2', '--workload', p('trace.mpt'), '--solver', 'eplb', '--workers', '1', '--out', planFile]).then((r) => r.code)).toBe(0);
    const pick = <T>(good: T[], bad: T[]): fc.Arbitrary<{ v: T; ok: boolean }> =>
      fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...good).map((v) => ({ v, ok: true })) }, { weight: 1, arbitrary: fc.constantFrom(...bad).map((v) => ({ v, ok: false })) });
    const gen = fc.record({
      cmd: fc.constant('generate' as const),
      model: pick([p('model.json')], [p('model-topk.json'), 'no-such-model']),
      tokens: pick(['1', '40'], ['0', '-3', 'x', '1e2']),
      requests: fc.option(pick(['1', '2'], ['0', 'x']), { nil: undefined }),
      seed: fc.option(pick(['0', '9'], ['-1', 'y']), { nil: undefined }),
      ext: pick(['.mpt', '.jsonl', '.mpt.gz', '.jsonl.gz'], ['/no/such/dir/t.mpt']),
    });
    const exp = fc.record({
      cmd: fc.constant('export' as const),
      plan: pick([planFile], [p('trace.mpt'), p('missing.plan.json')]),
      format: pick(['sglang', 'eplb', 'trtllm', 'vllm-ascend', 'traffic-csv'], ['csv', 'SGLang', '']),
      workload: fc.option(pick([p('trace.mpt')], [p('trace-trunc.gz')]), { nil: undefined }),
      mode: fc.option(pick(['normal', 'low-latency'], ['fast']), { nil: undefined }),
    });
    let ok = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(gen, exp), async (c) => {
        const culprits: string[] = [];
        let valid = true;
        const use = (flag: string, x: { v: string; ok: boolean } | undefined, argv: string[]): void => {
          if (x === undefined) return;
          argv.push(`--${flag}`, x.v);
          if (!x.ok) {
            valid = false;
            culprits.push(`--${flag}`);
            if (x.v !== '') culprits.push(x.v);
          }
        };
        let argv: string[];
        let out: string;
        if (c.cmd === 'generate') {
          out = c.ext.ok ? fresh(c.ext.v) : c.ext.v;
          argv = ['generate', '--out', out];
          if (!c.ext.ok) {
            valid = false;
            culprits.push('--out');
          }
          use('model', c.model, argv);
          use('tokens', c.tokens, argv);
          use('requests', c.requests, argv);
          use('seed', c.seed, argv);
          if (c.tokens.ok && c.requests?.ok && Number(c.requests.v) > Number(c.tokens.v)) {
            valid = false;
            culprits.push('--requests');
          }
        } else {
          out = fresh('.out');
          argv = ['export', '--out', out];
          use('plan', c.plan, argv);
          use('format', c.format, argv);
          use('workload', c.workload, argv);
          use('mode', c.mode, argv);
          // traffic-csv needs a workload; the other formats take neither a workload nor a mode.
          const csv = c.format.v === 'traffic-csv';
          if (c.format.ok && ((csv && c.workload === undefined) || (!csv && (c.workload !== undefined || c.mode !== undefined)))) {
            valid = false;
            culprits.push('--workload', '--mode');
          }
        }
        const r = await runMain(argv);
        expectOutcome(r, argv, valid, culprits, out);
        if (!valid) return;
        ok++;
        if (c.cmd === 'generate') {
          const w = await loadWorkload(out, M_A);
          expect(w.kind === 'trace' && w.trace.numTokens).toBe(Number(c.tokens.v));
        } else {
          expect(readFileSync(out, 'utf8').length).toBeGreaterThan(0);
        }
      }),
      { seed: 909, numRuns: 40 },
    );
    expect(ok).toBeGreaterThanOrEqual(8);
  });
});
