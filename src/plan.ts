/**
 * The plan file (`"format": "moe-placer.plan/1"`, PlanSchema in schemas.ts): build it from a
 * placement, write it atomically, read it back (full plans, or a minimal `{ "phy2log": ... }` when
 * the model and cluster come from elsewhere) into a validated Placement.
 *
 * Serialisation is canonical: object keys in PlanSchema order, string-keyed records (options,
 * digests, GPU sources) sorted, 2-space indentation with every array of numbers on one line. The
 * same plan therefore always gives the same bytes, and read -> write reproduces a file exactly.
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Evaluation } from './cost.js';
import { InputError, type InputLocation } from './errors.js';
import { dispatchOf, log2phyOf, logcntOf, validatePlacement } from './placement.js';
import { PlanSchema, type Cluster, type Model, type PlanFile } from './schemas.js';
import { makeShape, type Placement, type Shape } from './types.js';
import { parseWith } from './validate.js';

export const PLAN_FORMAT = 'moe-placer.plan/1' as const;

export type PlanMetrics = NonNullable<PlanFile['metrics']>;
export type PlanBounds = NonNullable<PlanFile['bounds']>;
export type PlanProvenance = NonNullable<PlanFile['provenance']>;

export interface BuildPlanArgs {
  model: Model;
  cluster: Cluster;
  placement: Placement;
  /** Evaluation of the placement on the workload it was fitted on. */
  metrics?: Evaluation;
  /** Lower bounds; gaps are filled in from `metrics` when not given. */
  bounds?: PlanBounds;
  provenance?: PlanProvenance;
  migration?: PlanFile['migration'];
  /** The caller has just run `validatePlacement` on `placement`: not checked again. */
  placementValidated?: boolean;
}

/**
 * The plan file of a placement: model and cluster echo, phy2log [L][P], log2phy [L][E][maxR]
 * (padded -1), logcnt [L][E], the full dispatch [L][NG][E] (the default rule where the placement
 * has none), metrics, bounds and provenance. The placement is validated first (InputError).
 */
export function buildPlanFile(args: BuildPlanArgs): PlanFile {
  const { model, cluster, placement } = args;
  checkPlacementFits(placement, model, shapeOfCluster(cluster));
  if (!args.placementValidated) validatePlacement(placement);
  const E = placement.numExperts;
  const NG = placement.shape.numGpus;
  const phy2log: number[][] = [];
  const log2phy: number[][][] = [];
  const logcnt: number[][] = [];
  const dispatch: number[][][] = [];
  for (let l = 0; l < placement.numLayers; l++) {
    const row = placement.phy2log[l];
    phy2log.push(numbersOf(row, 0, row.length));
    log2phy.push(log2phyOf(row, E));
    const cnt = logcntOf(row, E);
    logcnt.push(numbersOf(cnt, 0, E));
    const d = dispatchOf(placement, l);
    const table: number[][] = [];
    for (let g = 0; g < NG; g++) table.push(numbersOf(d, g * E, (g + 1) * E));
    dispatch.push(table);
  }
  const metrics = args.metrics ? planMetrics(args.metrics) : undefined;
  const plan: PlanFile = {
    format: PLAN_FORMAT,
    model,
    cluster: {
      name: cluster.name,
      nodes: cluster.nodes,
      gpusPerNode: cluster.gpusPerNode,
      slotsPerGpu: cluster.slotsPerGpu,
      gpu: cluster.gpu,
      expertMemoryBytes: cluster.expertMemoryBytes,
    },
    slotsPerGpu: cluster.slotsPerGpu,
    phy2log,
    log2phy,
    logcnt,
    dispatch,
    metrics,
    bounds: args.bounds ? withGaps(args.bounds, metrics) : undefined,
    provenance: args.provenance,
    migration: args.migration,
  };
  // The tables were just built here of a valid placement's integers: the plan file keeps them
  // (not checked again).
  return canonicalOf(plan, false, false);
}

/** a[from..to) as a plain array (a loop: ~4x faster than Array.from on a typed array). */
function numbersOf(a: Int32Array, from: number, to: number): number[] {
  const out = new Array<number>(to - from);
  for (let i = from; i < to; i++) out[i - from] = a[i];
  return out;
}

/** The plan's metrics block from an Evaluation (per-GPU loads and traffic matrices are not stored). */
export function planMetrics(ev: Evaluation): PlanMetrics {
  return {
    estimated: ev.estimated,
    mode: ev.mode,
    interNodeBytes: ev.interNodeBytes,
    intraNodeBytes: ev.intraNodeBytes,
    maxLoad: ev.maxLoad,
    meanLoad: ev.meanLoad,
    balancedness: ev.balancedness,
    maxOverMean: ev.maxOverMean,
    remoteNodesPerToken: ev.remoteNodesPerToken,
    timeSeconds: ev.timeSeconds,
    perLayer: ev.perLayer.map((m) => ({
      layer: m.layer,
      interNodeBytes: m.interNodeBytes,
      intraNodeBytes: m.intraNodeBytes,
      maxLoad: m.maxLoad,
      meanLoad: m.meanLoad,
      balancedness: m.balancedness,
      timeSeconds: m.timeSeconds,
    })),
  };
}

/** Relative gap (value - bound) / value as plan files report it (MIP convention), 0 when value is 0. */
export function relativeGap(value: number, bound: number): number {
  return value > 0 ? Math.max(0, (value - bound) / value) : 0;
}

function withGaps(b: PlanBounds, m: PlanMetrics | undefined): PlanBounds {
  const out: PlanBounds = { ...b };
  if (m && out.maxLoadLowerBound !== undefined && out.maxLoadGap === undefined) out.maxLoadGap = relativeGap(m.maxLoad, out.maxLoadLowerBound);
  if (m && out.interNodeBytesLowerBound !== undefined && out.interNodeBytesGap === undefined) {
    out.interNodeBytesGap = relativeGap(m.interNodeBytes, out.interNodeBytesLowerBound);
  }
  return out;
}

/** Sorted copy of a string-keyed record. */
function sortedRecord<T>(r: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k];
  return out;
}

/**
 * The integer tables of a plan and how deep their arrays nest: checked and copied by `intTable`
 * instead of PlanSchema's intMatrix (the same rule: arrays of safe integers), because zod is slow
 * on millions of numbers (DeepSeek-V3 at EP144: dispatch [58][144][256] = 2.1M; PlanSchema took
 * ~0.3 s on the plan, the loop ~10 ms).
 */
const PLAN_TABLES: readonly (readonly ['phy2log' | 'log2phy' | 'logcnt' | 'dispatch', number])[] = [
  ['phy2log', 2],
  ['log2phy', 3],
  ['logcnt', 2],
  ['dispatch', 3],
];

/**
 * `v` if it is arrays nested `depth` deep with safe integers inside (a copy with `copy`), else
 * null.
 */
function intTable(v: unknown, depth: number, copy: boolean): unknown[] | null {
  if (!Array.isArray(v)) return null;
  const out: unknown[] = copy ? new Array(v.length) : v;
  if (depth === 1) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (!Number.isSafeInteger(x)) return null;
      if (copy) out[i] = x;
    }
    return out;
  }
  for (let i = 0; i < v.length; i++) {
    const row = intTable(v[i], depth - 1, copy);
    if (row === null) return null;
    if (copy) out[i] = row;
  }
  return out;
}

/**
 * `parseWith(PlanSchema, value, 'plan', location)`, the integer tables checked by `intTable` and
 * the rest by PlanSchema; any problem sends the whole value through PlanSchema, for its messages.
 * The tables are copied, as PlanSchema would, unless `copyTables` is false (the caller's own
 * arrays, not shared with anyone: they are then used as they are).
 */
export function parsePlan(value: unknown, location: Omit<InputLocation, 'field'> = {}, copyTables = true): PlanFile {
  return parsePlanWith(value, location, copyTables, true);
}

/** `parsePlan`; with `checkTables` false the tables are taken as they are (arrays the caller built of integers). */
function parsePlanWith(value: unknown, location: Omit<InputLocation, 'field'>, copyTables: boolean, checkTables: boolean): PlanFile {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const rest: Record<string, unknown> = { ...obj };
    const tables: Record<string, unknown[]> = {};
    let ok = true;
    for (const [key, depth] of PLAN_TABLES) {
      if (obj[key] === undefined) continue;
      const t = checkTables || !Array.isArray(obj[key]) ? intTable(obj[key], depth, copyTables) : (obj[key] as unknown[]);
      if (t === null) {
        ok = false;
        break;
      }
      tables[key] = t;
      rest[key] = [];
    }
    const r = ok ? PlanSchema.safeParse(rest) : null;
    // Assigning the (already present) keys keeps PlanSchema's key order.
    if (r?.success) return Object.assign(r.data, tables);
  }
  return parseWith(PlanSchema, value, 'plan', location);
}

/** The plan re-parsed with PlanSchema (keys in schema order, unknown keys dropped) and records sorted. */
export function canonicalPlan(plan: PlanFile): PlanFile {
  return canonicalOf(plan, true);
}

/** `canonicalPlan`, sharing the integer tables of `plan` unless `copyTables`; `checkTables` as parsePlanWith. */
function canonicalOf(plan: PlanFile, copyTables: boolean, checkTables = true): PlanFile {
  const p = parsePlanWith(plan, {}, copyTables, checkTables);
  if (p.cluster.gpu.sources) p.cluster.gpu.sources = sortedRecord(p.cluster.gpu.sources);
  if (p.provenance) {
    p.provenance.options = sortedRecord(p.provenance.options);
    p.provenance.inputDigests = sortedRecord(p.provenance.inputDigests);
  }
  return p;
}

/** The decimal digits of 0..999 as bytes (first digit lowest) with their count in the top byte. */
const SMALL_INTS = Uint32Array.from({ length: 1000 }, (_, x) => {
  const d = String(x);
  let t = d.length << 24;
  for (let i = 0; i < d.length; i++) t |= d.charCodeAt(i) << (8 * i);
  return t;
});

/** Writes the decimal digits of the int32 x into b at `at` (room for 11 bytes); returns the end. */
function writeInt(b: Uint8Array, at: number, x: number): number {
  // Most numbers of a plan are small (slots, experts, GPUs): one to three digits directly.
  if (x >= 0 && x < 1000) {
    if (x < 10) {
      b[at] = 48 + x;
      return at + 1;
    }
    const q = (x / 10) | 0;
    if (x < 100) {
      b[at] = 48 + q;
      b[at + 1] = 48 + x - 10 * q;
      return at + 2;
    }
    const h = (q / 10) | 0;
    b[at] = 48 + h;
    b[at + 1] = 48 + q - 10 * h;
    b[at + 2] = 48 + x - 10 * q;
    return at + 3;
  }
  let v = x; // -0 arrives as 0 (x | 0), as JSON.stringify writes it
  if (v < 0) {
    b[at++] = 45; // '-'
    v = -v;
  }
  let end = at + 1;
  for (let t = v; t >= 10; t = (t / 10) | 0) end++;
  let i = end;
  do {
    const q = (v / 10) | 0;
    b[--i] = 48 + v - 10 * q;
    v = q;
  } while (v > 0);
  return end;
}

/**
 * Canonical JSON text of a plan (see the module comment), ending with a newline. Throws on
 * non-finite numbers (JSON cannot carry them).
 */
export function stringifyPlan(plan: PlanFile): string {
  return planBytes(plan).toString('utf8');
}

/** `stringifyPlan` as UTF-8 bytes (of `plan` as it is when `asBuilt`: see writePlanFile). */
function planBytes(plan: PlanFile, asBuilt = false): Buffer {
  const out = new JsonWriter();
  // The canonical plan is only formatted: its tables need no copy.
  out.value(asBuilt ? plan : canonicalOf(plan, false), '');
  out.ascii('\n');
  return out.bytes();
}

/**
 * Deterministic pretty JSON: objects and arrays of non-primitives indented by 2, arrays of
 * primitives on one line, keys in insertion order, undefined members skipped.
 */
export function formatJson(value: unknown, indent: string): string {
  const out = new JsonWriter();
  out.value(value, indent);
  return out.bytes().toString('utf8');
}

/**
 * The writer behind formatJson: UTF-8 into one growing buffer, integers digit by digit (a plan's
 * tables are millions of small integers: ~3x faster than joining strings for V3 at EP144).
 */
class JsonWriter {
  private buf = new Uint8Array(1 << 16);
  private len = 0;

  bytes(): Buffer {
    return Buffer.from(this.buf.buffer, 0, this.len);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(2 * this.buf.length, this.len + n));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  /** A string of ASCII characters (brackets, indentation, numbers' text). */
  ascii(s: string): void {
    this.room(s.length);
    const b = this.buf;
    let at = this.len;
    for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i);
    this.len = at;
  }

  /** Any string, as UTF-8 (keys and string values, already JSON-quoted). */
  text(s: string): void {
    this.room(3 * s.length);
    this.len += Buffer.from(this.buf.buffer).write(s, this.len, 'utf8');
  }

  /** A finite number as JSON.stringify writes it. */
  number(x: number): void {
    if (!Number.isFinite(x)) throw new Error(`formatJson: non-finite number ${x}`);
    if (Number.isInteger(x) && x > -2147483648 && x < 2147483648) {
      this.room(12);
      this.len = writeInt(this.buf, this.len, x | 0);
    } else this.ascii(JSON.stringify(x));
  }

  /**
   * `[a,b,...]` of an array of int32 numbers, the most common array of a plan (one pass: checks
   * as it writes); false, with nothing written, when an element is not one.
   */
  private ints(a: readonly unknown[]): boolean {
    const mark = this.len;
    this.room(2 + 12 * a.length);
    const b = this.buf;
    let at = mark;
    b[at++] = 91; // '['
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      if (typeof x !== 'number' || !(Number.isInteger(x) && x > -2147483648 && x < 2147483648)) {
        this.len = mark;
        return false;
      }
      if (x >= 0 && x < 1000) {
        // The digits from a table, written whole (the room covers the bytes past the number,
        // which what follows overwrites).
        const t = SMALL_INTS[x];
        b[at] = t;
        b[at + 1] = t >>> 8;
        b[at + 2] = t >>> 16;
        at += t >>> 24;
      } else at = writeInt(b, at, x | 0);
      b[at++] = 44; // ','
    }
    if (a.length > 0) at--; // the last comma
    b[at++] = 93; // ']'
    this.len = at;
    return true;
  }

  /** `[a,b,...]` of an array of numbers. */
  numbers(a: readonly number[]): void {
    this.room(2 + 12 * a.length);
    const b = this.buf;
    let at = this.len;
    b[at++] = 91; // '['
    for (let i = 0; i < a.length; i++) {
      if (i > 0) b[at++] = 44; // ','
      const x = a[i];
      if (Number.isInteger(x) && x > -2147483648 && x < 2147483648) at = writeInt(b, at, x | 0);
      else {
        // Its text may be longer than the room taken: the rest goes the checked way.
        this.len = at;
        this.number(x);
        return this.numbersFrom(a, i + 1);
      }
    }
    b[at++] = 93; // ']'
    this.len = at;
  }

  /** The rest of `numbers` from element i on, each with its own room check. */
  private numbersFrom(a: readonly number[], i: number): void {
    for (; i < a.length; i++) {
      this.ascii(',');
      this.number(a[i]);
    }
    this.ascii(']');
  }

  value(value: unknown, indent: string): void {
    if (value === null) return this.ascii('null');
    switch (typeof value) {
      case 'number':
        return this.number(value);
      case 'string':
        return this.text(JSON.stringify(value));
      case 'boolean':
        return this.ascii(value ? 'true' : 'false');
      case 'object':
        break;
      default:
        throw new Error(`formatJson: cannot serialise a ${typeof value}`);
    }
    const inner = indent + '  ';
    if (ArrayBuffer.isView(value)) value = Array.from(value as unknown as ArrayLike<number>);
    if (Array.isArray(value)) {
      if (value.length === 0) return this.ascii('[]');
      if (this.ints(value)) return;
      if (allNumbers(value)) return this.numbers(value as number[]);
      if (value.every((v) => v === null || typeof v !== 'object')) {
        // Primitives on one line.
        this.ascii('[');
        for (let i = 0; i < value.length; i++) {
          if (i > 0) this.ascii(',');
          const v: unknown = value[i];
          if (typeof v === 'number') this.number(v);
          else this.value(v, inner);
        }
        return this.ascii(']');
      }
      this.ascii('[\n');
      for (let i = 0; i < value.length; i++) {
        if (i > 0) this.ascii(',\n');
        this.ascii(inner);
        this.value(value[i], inner);
      }
      this.ascii('\n');
      this.ascii(indent);
      return this.ascii(']');
    }
    const obj = value as Record<string, unknown>;
    let first = true;
    for (const k of Object.keys(obj)) {
      const v = obj[k];
      if (v === undefined) continue;
      this.ascii(first ? '{\n' : ',\n');
      first = false;
      this.ascii(inner);
      this.text(JSON.stringify(k));
      this.ascii(': ');
      this.value(v, inner);
    }
    if (first) return this.ascii('{}');
    this.ascii('\n');
    this.ascii(indent);
    this.ascii('}');
  }
}

/** Whether every element is a number (a loop: faster than `every` before V8 optimizes it). */
function allNumbers(a: readonly unknown[]): boolean {
  for (let i = 0; i < a.length; i++) if (typeof a[i] !== 'number') return false;
  return true;
}

/**
 * Write `text` to `path` atomically: to `path.tmp-<pid>` first, then rename over `path`. On any
 * failure the temporary file is removed and an InputError naming the path is thrown.
 */
export function writeFileAtomic(path: string, text: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing left to clean
    }
    if (err instanceof InputError) throw err;
    throw new InputError(`cannot write: ${(err as Error).message}`, { file: path });
  }
}

/**
 * Write a plan file atomically in canonical form. With `asBuilt`, `plan` is as buildPlanFile (or
 * `plan()`) returned it, unchanged, hence canonical already: it is written without being parsed
 * again (the same bytes, less work on a large plan).
 */
export function writePlanFile(path: string, plan: PlanFile, asBuilt = false): void {
  writeFileAtomic(path, planBytes(plan, asBuilt));
}

/** The cluster a plan file echoes (expert memory = its slots when the echo has none). */
export function clusterOfPlan(p: PlanFile): Cluster {
  return {
    name: p.cluster.name ?? `${p.cluster.nodes}x${p.cluster.gpusPerNode}`,
    nodes: p.cluster.nodes,
    gpusPerNode: p.cluster.gpusPerNode,
    slotsPerGpu: p.cluster.slotsPerGpu,
    gpu: p.cluster.gpu,
    expertMemoryBytes: p.cluster.expertMemoryBytes ?? p.cluster.slotsPerGpu * p.model.moeLayerIds.length * p.model.expertBytes,
  };
}

export interface ReadPlanOverrides {
  /** Use this model instead of the plan's echo (it must have the same layers and experts). */
  model?: Model;
  /** Use this cluster instead of the plan's echo (it must have the same shape). */
  cluster?: Cluster;
}

export interface ReadPlanResult {
  plan: PlanFile;
  placement: Placement;
  model: Model;
  cluster: Cluster;
}

/**
 * Read a plan file: a full plan (validated with PlanSchema) or a minimal
 * `{ "phy2log": [[...]], "dispatch"?: [[[...]]] }`, which needs `overrides.model` and
 * `overrides.cluster`. The placement is checked with `validatePlacement`; log2phy / logcnt, when
 * present, must agree with phy2log. Every problem is an InputError naming the file and field.
 */
export function readPlanFile(path: string, overrides: ReadPlanOverrides = {}): ReadPlanResult {
  const json = readJson(path);
  const loc: InputLocation = { file: path };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new InputError('a plan must be a JSON object', loc);
  }
  const obj = json as Record<string, unknown>;
  if (!('format' in obj)) {
    if (!('phy2log' in obj)) throw new InputError(`not a plan: expected "format": "${PLAN_FORMAT}" or a "phy2log" field`, loc);
    if (!overrides.model || !overrides.cluster) {
      throw new InputError('a minimal plan (phy2log only) needs the model and the cluster (--model, --cluster)', loc);
    }
    const model = overrides.model;
    const cluster = overrides.cluster;
    const placement = placementFromJson(obj, model, shapeOfCluster(cluster), path);
    const plan = withLocation(() => buildPlanFile({ model, cluster, placement }), loc);
    return { plan, placement, model, cluster };
  }
  const plan = parsePlan(obj, loc);
  const problems: string[] = [];
  if (plan.slotsPerGpu !== plan.cluster.slotsPerGpu) {
    problems.push(`plan.slotsPerGpu: ${plan.slotsPerGpu} differs from plan.cluster.slotsPerGpu ${plan.cluster.slotsPerGpu}`);
  }
  const model = overrides.model ?? plan.model;
  if (overrides.model) {
    if (model.experts !== plan.model.experts) problems.push(`plan.model.experts: ${plan.model.experts}, but the given model ${model.name} has ${model.experts}`);
    if (model.moeLayerIds.length !== plan.model.moeLayerIds.length) {
      problems.push(`plan.model.moeLayerIds: ${plan.model.moeLayerIds.length} MoE layers, but the given model ${model.name} has ${model.moeLayerIds.length}`);
    }
  }
  const cluster: Cluster = overrides.cluster ?? clusterOfPlan(plan);
  if (overrides.cluster) {
    const c = overrides.cluster;
    if (c.nodes !== plan.cluster.nodes || c.gpusPerNode !== plan.cluster.gpusPerNode || c.slotsPerGpu !== plan.cluster.slotsPerGpu) {
      problems.push(
        `plan.cluster: shape ${plan.cluster.nodes}x${plan.cluster.gpusPerNode}x${plan.cluster.slotsPerGpu} (nodes x GPUs x slots) differs from the given cluster ${c.nodes}x${c.gpusPerNode}x${c.slotsPerGpu}`,
      );
    }
  }
  if (problems.length > 0) throw new InputError(problems, loc);
  const placement = placementFromJson(plan, model, shapeOfCluster(cluster), path, 'plan.');
  checkDerived(plan, placement, path);
  return { plan, placement, model, cluster };
}

/**
 * A Placement from the `phy2log` ([L][P]) and optional `dispatch` ([L][NG][E]) fields of a JSON
 * object, checked against the model and shape and with `validatePlacement`. Errors name the file
 * and the field (`phy2log[3][17]`).
 */
export function placementFromJson(json: unknown, model: Model, shape: Shape, file?: string, prefix = ''): Placement {
  const loc: InputLocation = file !== undefined ? { file } : {};
  const obj = json as Record<string, unknown>;
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const P = shape.numSlots;
  const NG = shape.numGpus;
  const phy2log = intMatrix(obj?.phy2log, `${prefix}phy2log`, L, P, -1, E - 1, loc, `${L} MoE layers of ${model.name}`, `${P} slots (${shape.numGpus} GPUs x ${shape.slotsPerGpu})`);
  let dispatch: Int32Array[] | null = null;
  if (obj.dispatch !== undefined) {
    const d = obj.dispatch;
    if (!Array.isArray(d) || d.length !== L) throw new InputError(`expected ${L} layers, got ${Array.isArray(d) ? d.length : typeof d}`, { ...loc, field: `${prefix}dispatch` });
    dispatch = d.map((layer, l) => {
      const rows = intMatrix(layer, `${prefix}dispatch[${l}]`, NG, E, 0, P - 1, loc, `${NG} source GPUs`, `${E} experts`);
      const flat = new Int32Array(NG * E);
      rows.forEach((r, g) => flat.set(r, g * E));
      return flat;
    });
  }
  const placement: Placement = { numLayers: L, numExperts: E, shape, phy2log, dispatch };
  withLocation(() => validatePlacement(placement, prefix === '' ? 'plan' : prefix.slice(0, -1)), loc);
  return placement;
}

/** [rows][cols] integers in [min, max] as Int32Arrays; errors name `field[i][j]`. */
function intMatrix(v: unknown, field: string, rows: number, cols: number, min: number, max: number, loc: InputLocation, rowsWhat: string, colsWhat: string): Int32Array[] {
  if (!Array.isArray(v)) throw new InputError(`expected an array of ${rowsWhat}`, { ...loc, field });
  if (v.length !== rows) throw new InputError(`${v.length} rows, expected ${rows} (${rowsWhat})`, { ...loc, field });
  const out: Int32Array[] = [];
  for (let i = 0; i < rows; i++) {
    const row = v[i];
    if (!Array.isArray(row)) throw new InputError('expected an array of integers', { ...loc, field: `${field}[${i}]` });
    if (row.length !== cols) throw new InputError(`${row.length} entries, expected ${cols} (${colsWhat})`, { ...loc, field: `${field}[${i}]` });
    const a = new Int32Array(cols);
    for (let j = 0; j < cols; j++) {
      const x = row[j];
      if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) {
        throw new InputError(`${JSON.stringify(x)} is not an integer in ${min}..${max}`, { ...loc, field: `${field}[${i}][${j}]` });
      }
      a[j] = x;
    }
    out.push(a);
  }
  return out;
}

/** log2phy and logcnt of a full plan, when given, must be those of its phy2log. */
function checkDerived(plan: PlanFile, placement: Placement, file: string): void {
  const E = placement.numExperts;
  const problems: string[] = [];
  for (let l = 0; l < placement.numLayers && problems.length < 20; l++) {
    const row = placement.phy2log[l];
    if (plan.logcnt) {
      const want = logcntOf(row, E);
      const got = plan.logcnt[l];
      if (!got || got.length !== E) problems.push(`plan.logcnt[${l}]: expected ${E} counts`);
      else for (let e = 0; e < E; e++) if (got[e] !== want[e]) {
        problems.push(`plan.logcnt[${l}][${e}]: ${got[e]}, but phy2log holds ${want[e]} replicas of expert ${e}`);
        break;
      }
    }
    if (plan.log2phy) {
      const want = log2phyOf(row, E);
      const got = plan.log2phy[l];
      if (!got || got.length !== E) problems.push(`plan.log2phy[${l}]: expected ${E} rows`);
      else for (let e = 0; e < E; e++) {
        const a = (got[e] ?? []).filter((p) => p !== -1).sort((x, y) => x - y);
        const b = want[e].filter((p) => p !== -1);
        if (a.length !== b.length || a.some((p, i) => p !== b[i])) {
          problems.push(`plan.log2phy[${l}][${e}]: slots [${a.join(', ')}], but phy2log puts expert ${e} in [${b.join(', ')}]`);
          break;
        }
      }
    }
  }
  if (problems.length > 0) throw new InputError(problems, { file });
}

/** The integer shape of a resolved cluster. */
export function shapeOfCluster(cluster: Pick<Cluster, 'nodes' | 'gpusPerNode' | 'slotsPerGpu'>): Shape {
  return makeShape(cluster.nodes, cluster.gpusPerNode, cluster.slotsPerGpu);
}

function checkPlacementFits(placement: Placement, model: Model, shape: Shape): void {
  const problems: string[] = [];
  const s = placement.shape;
  if (s.nodes !== shape.nodes || s.gpusPerNode !== shape.gpusPerNode || s.slotsPerGpu !== shape.slotsPerGpu) {
    problems.push(`placement shape ${s.nodes}x${s.gpusPerNode}x${s.slotsPerGpu} differs from cluster ${shape.nodes}x${shape.gpusPerNode}x${shape.slotsPerGpu} (nodes x GPUs x slots)`);
  }
  if (placement.numExperts !== model.experts) problems.push(`placement has ${placement.numExperts} experts, model ${model.name} has ${model.experts}`);
  if (placement.numLayers !== model.moeLayerIds.length) problems.push(`placement has ${placement.numLayers} MoE layers, model ${model.name} has ${model.moeLayerIds.length}`);
  if (problems.length > 0) throw new InputError(problems);
}

/** Run `f`; an InputError without a file gets `loc`'s file. */
function withLocation<T>(f: () => T, loc: InputLocation): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof InputError && loc.file !== undefined && !err.message.startsWith(loc.file)) {
      throw new InputError(err.problems.slice(), loc);
    }
    throw err;
  }
}

/** Read and parse a JSON file; problems are InputErrors naming the file and, for syntax errors, the line. */
function readJson(path: string): unknown {
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw new InputError('is a folder, expected a plan JSON file', { file: path });
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? 'no such file' : `cannot read: ${(err as Error).message}`, { file: path });
  }
  return parseJsonText(text, path);
}

/** JSON.parse with an InputError naming the file and the line of the first syntax error. */
export function parseJsonText(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    const m = /position (\d+)/.exec(msg);
    const at = m ? Number(m[1]) : jsonErrorOffset(text);
    const line = at >= 0 ? lineAt(text, at) : undefined;
    throw new InputError(`invalid JSON: ${msg}`, { file, line });
  }
}

function lineAt(text: string, pos: number): number {
  let line = 1;
  for (let i = 0; i < pos && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * Offset of the first JSON syntax error in `text`, or -1 when it parses (V8 does not always
 * report a position). A small recursive-descent checker; only run after JSON.parse failed.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const n = text.length;
  const fail = (): never => {
    throw i;
  };
  const ws = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const NUM = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail();
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail();
      }
    } else if (c === '"') str();
    else if (text.startsWith('true', i)) i += 4;
    else if (text.startsWith('false', i)) i += 5;
    else if (text.startsWith('null', i)) i += 4;
    else {
      NUM.lastIndex = i;
      if (!NUM.test(text)) fail();
      i = NUM.lastIndex;
    }
  };
  const str = (): void => {
    i++;
    while (i < n && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= n) fail();
    i++;
  };
  try {
    value();
    ws();
    return i < n ? i : -1;
  } catch (e) {
    return typeof e === 'number' ? Math.min(e, n) : -1;
  }
}
