/**
 * Counts-only workloads: per-layer token counts per logical expert, `[L][E]`.
 *
 * Accepted shapes (rows are layers):
 * - SGLang expert-distribution recorder output `{"logical_count": [L_engine][E]}` (also with a
 *   leading step axis `[S][L_engine][E]`, summed over steps as SGLang's EPLB does);
 * - DeepSeek EPLB's plain `weight` matrix as JSON `[[..],..]` or CSV (one row per layer, numbers
 *   separated by commas, optional header line);
 * - `{"expert_usage_by_layer": {"<engine layer>": {"<expert>": count}}}` (switch-base dumps).
 *
 * Engine rows map to MoE layers through `model.moeLayerIds`: a matrix with `numHiddenLayers` rows
 * keeps rows `moeLayerIds` (the others, dense layers, must be all zero); a matrix with exactly
 * `L = moeLayerIds.length` rows is taken as is; any other row count is an InputError naming the
 * shape. Every count must be a finite non-negative number.
 */
import { InputError } from '../errors.js';
import type { Model } from '../schemas.js';
import type { Counts } from '../types.js';

/** Compact text for a list of ascending ids: `3..60`, `1,3,5`. Long lists are cut. */
export function formatIds(ids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length; ) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    parts.push(j > i + 1 ? `${ids[i]}..${ids[j]}` : j === i + 1 ? `${ids[i]},${ids[j]}` : `${ids[i]}`);
    i = j + 1;
  }
  const s = parts.join(',');
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Result of turning engine-layer rows into MoE-layer counts. */
export interface CountsResult {
  counts: Counts;
  notes: string[];
}

/**
 * Map `rows` (engine or MoE layer rows, each `[E]`, values already validated) onto the model's
 * MoE layers. `shapeText` describes the input (e.g. `logical_count [61][256]`) for messages;
 * `rowField(i)` names row i (e.g. `logical_count[4]`, or a CSV line through `rowLine`).
 */
export function mapRowsToMoeLayers(
  rows: Float64Array[],
  model: Model,
  file: string,
  shapeText: string,
  rowLoc: (i: number) => { line?: number; field?: string },
): CountsResult {
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const notes: string[] = [];
  for (let i = 0; i < rows.length; i++) {
    if (rows[i].length !== E) {
      throw new InputError(
        `row has ${rows[i].length} experts, model ${model.name} has ${E} (input shape ${shapeText})`,
        { file, ...rowLoc(i) },
      );
    }
  }
  let picked: Float64Array[];
  /** Row of `rows` behind MoE layer l (for messages). */
  let rowOf = (l: number): number => l;
  if (rows.length === model.numHiddenLayers) {
    rowOf = (l) => model.moeLayerIds[l];
    const isMoe = new Uint8Array(rows.length);
    for (const id of model.moeLayerIds) isMoe[id] = 1;
    const dropped: number[] = [];
    for (let i = 0; i < rows.length; i++) {
      if (isMoe[i]) continue;
      let total = 0;
      for (let e = 0; e < E; e++) total += rows[i][e];
      if (total !== 0) {
        throw new InputError(
          `engine layer ${i} is not a MoE layer of model ${model.name} (MoE layers ${formatIds(model.moeLayerIds)}) but has ${total} routed tokens`,
          { file, ...rowLoc(i) },
        );
      }
      dropped.push(i);
    }
    picked = model.moeLayerIds.map((id) => rows[id]);
    if (dropped.length > 0) {
      notes.push(`engine layers ${formatIds(dropped)} (not MoE, all zero) dropped; rows ${formatIds(model.moeLayerIds)} -> MoE layers 0..${L - 1}`);
    }
  } else if (rows.length === L) {
    picked = rows;
  } else {
    throw new InputError(
      `shape ${shapeText} does not fit model ${model.name}: expected ${model.numHiddenLayers} engine layers or ${L} MoE layers of ${E} experts`,
      { file },
    );
  }
  // Per-layer totals (they should match for a trace; SGLang prefill dumps are known to differ).
  let minT = Infinity;
  let maxT = -Infinity;
  let minL = 0;
  let maxL = 0;
  for (let l = 0; l < L; l++) {
    let t = 0;
    for (let e = 0; e < E; e++) t += picked[l][e];
    // Finite counts can still add up to Infinity (or near it): the cost model multiplies them by
    // bytes per token, so totals are held to the range of exact integers.
    if (!(t <= Number.MAX_SAFE_INTEGER)) {
      throw new InputError(`counts of this layer add up to ${t}, more than 2^53 - 1: not token counts`, { file, ...rowLoc(rowOf(l)) });
    }
    if (t < minT) [minT, minL] = [t, l];
    if (t > maxT) [maxT, maxL] = [t, l];
  }
  if (maxT === 0) throw new InputError(`all counts are zero (input shape ${shapeText})`, { file });
  if (maxT !== minT) notes.push(`per-layer totals differ: min ${minT} (MoE layer ${minL}), max ${maxT} (MoE layer ${maxL})`);
  return { counts: { numLayers: L, numExperts: E, counts: picked }, notes };
}

function checkCount(v: unknown, file: string, field: string, line?: number): number {
  if (typeof v !== 'number') throw new InputError(`count must be a number, got ${describe(v)}`, { file, line, field });
  if (!Number.isFinite(v) || v < 0) throw new InputError(`count must be finite and non-negative, got ${v}`, { file, line, field });
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}...` : v)}`;
  return typeof v;
}

/** `[R][E]` (or `[S][R][E]`, summed over S) JSON matrix -> validated rows. */
function matrixRows(m: unknown, file: string, name: string): { rows: Float64Array[]; shape: string; notes: string[] } {
  if (!Array.isArray(m) || m.length === 0) throw new InputError(`expected a non-empty list of layer rows, got ${describe(m)}`, { file, field: name });
  const notes: string[] = [];
  if (Array.isArray(m[0]) && Array.isArray((m[0] as unknown[])[0])) {
    // [S][R][E]: sum over the step axis.
    let acc: Float64Array[] | null = null;
    let shape = '';
    for (let s = 0; s < m.length; s++) {
      const r = matrixRows(m[s], file, `${name}[${s}]`);
      if (acc === null) {
        acc = r.rows;
        shape = r.shape;
      } else {
        if (r.rows.length !== acc.length || r.rows[0].length !== acc[0].length) {
          throw new InputError(`step shape ${r.shape} differs from step 0 shape ${shape}`, { file, field: `${name}[${s}]` });
        }
        for (let i = 0; i < acc.length; i++) for (let e = 0; e < acc[i].length; e++) acc[i][e] += r.rows[i][e];
      }
    }
    notes.push(`summed ${m.length} recording steps of shape ${shape}`);
    return { rows: acc!, shape: `[${m.length}]${shape}`, notes };
  }
  const rows: Float64Array[] = [];
  for (let i = 0; i < m.length; i++) {
    const row = m[i];
    if (!Array.isArray(row)) throw new InputError(`layer row must be a list of counts, got ${describe(row)}`, { file, field: `${name}[${i}]` });
    if (i > 0 && row.length !== rows[0].length) {
      throw new InputError(`row has ${row.length} entries, row 0 has ${rows[0].length}`, { file, field: `${name}[${i}]` });
    }
    const out = new Float64Array(row.length);
    for (let e = 0; e < row.length; e++) out[e] = checkCount(row[e], file, `${name}[${i}][${e}]`);
    rows.push(out);
  }
  return { rows, shape: `[${rows.length}][${rows[0].length}]`, notes };
}

/** SGLang `{"logical_count": ...}` document (already parsed). */
export function countsFromSglang(doc: Record<string, unknown>, model: Model, file: string): CountsResult {
  const { rows, shape, notes } = matrixRows(doc.logical_count, file, 'logical_count');
  const r = mapRowsToMoeLayers(rows, model, file, `logical_count ${shape}`, (i) => ({ field: `logical_count[${i}]` }));
  return { counts: r.counts, notes: [...notes, ...r.notes] };
}

/** EPLB `[[..],..]` JSON matrix (already parsed). */
export function countsFromJsonMatrix(doc: unknown[], model: Model, file: string): CountsResult {
  const { rows, shape, notes } = matrixRows(doc, file, '');
  const r = mapRowsToMoeLayers(rows, model, file, shape, (i) => ({ field: `[${i}]` }));
  return { counts: r.counts, notes: [...notes, ...r.notes] };
}

/** `{"expert_usage_by_layer": {"<engine layer>": {"<expert>": count}}}` (already parsed). */
export function countsFromUsageByLayer(doc: Record<string, unknown>, model: Model, file: string): CountsResult {
  const usage = doc.expert_usage_by_layer;
  const base = 'expert_usage_by_layer';
  if (usage === null || typeof usage !== 'object' || Array.isArray(usage)) {
    throw new InputError(`expected an object of layers, got ${describe(usage)}`, { file, field: base });
  }
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const layerOf = new Map<number, number>();
  model.moeLayerIds.forEach((id, l) => layerOf.set(id, l));
  const counts: Float64Array[] = [];
  const seen = new Uint8Array(L);
  for (let l = 0; l < L; l++) counts.push(new Float64Array(E));
  for (const [key, per] of Object.entries(usage as Record<string, unknown>)) {
    const field = `${base}.${key}`;
    const id = /^\d+$/.test(key) ? Number(key) : NaN;
    if (!Number.isInteger(id)) throw new InputError('layer key must be an engine layer id (integer)', { file, field });
    const l = layerOf.get(id);
    if (l === undefined) {
      throw new InputError(`engine layer ${id} is not a MoE layer of model ${model.name} (MoE layers ${formatIds(model.moeLayerIds)})`, { file, field });
    }
    if (per === null || typeof per !== 'object' || Array.isArray(per)) {
      throw new InputError(`expected an object of expert counts, got ${describe(per)}`, { file, field });
    }
    seen[l] = 1;
    for (const [ek, v] of Object.entries(per as Record<string, unknown>)) {
      const e = /^\d+$/.test(ek) ? Number(ek) : NaN;
      if (!(e >= 0 && e < E)) throw new InputError(`expert id ${ek} out of range 0..${E - 1}`, { file, field: `${field}.${ek}` });
      counts[l][e] = checkCount(v, file, `${field}.${ek}`);
    }
  }
  const missing = model.moeLayerIds.filter((_, l) => !seen[l]);
  if (missing.length > 0) {
    throw new InputError(`MoE layers ${formatIds(missing)} of model ${model.name} are missing`, { file, field: base });
  }
  const r = mapRowsToMoeLayers(counts, model, file, `${base} {${L}}{${E}}`, (l) => ({ field: `${base}.${model.moeLayerIds[l]}` }));
  return r;
}

/**
 * CSV counts: one row per layer, comma-separated numbers, an optional header line (a first line
 * that is not all numbers). Blank lines are ignored. Fed line by line.
 */
export class CountsCsvParser {
  private rows: Float64Array[] = [];
  private lines: number[] = [];
  private sawLine = false;
  header = false;

  constructor(
    readonly file: string,
    readonly model: Model,
  ) {}

  line(text: string, lineNo: number): void {
    if (text.trim() === '') return;
    const cells = text.split(',');
    const first = !this.sawLine;
    this.sawLine = true;
    if (first && !looksNumeric(cells)) {
      this.header = true;
      return;
    }
    const row = new Float64Array(cells.length);
    for (let c = 0; c < cells.length; c++) {
      const cell = cells[c].trim();
      const v = cell === '' ? NaN : Number(cell);
      if (cell === '' || Number.isNaN(v)) {
        throw new InputError(`count must be a number, got ${JSON.stringify(cell)}`, { file: this.file, line: lineNo, field: `column ${c + 1}` });
      }
      if (!Number.isFinite(v) || v < 0) {
        throw new InputError(`count must be finite and non-negative, got ${cell}`, { file: this.file, line: lineNo, field: `column ${c + 1}` });
      }
      row[c] = v;
    }
    if (this.rows.length > 0 && row.length !== this.rows[0].length) {
      throw new InputError(`row has ${row.length} columns, the first row has ${this.rows[0].length}`, { file: this.file, line: lineNo });
    }
    this.rows.push(row);
    this.lines.push(lineNo);
  }

  finish(): CountsResult {
    if (this.rows.length === 0) throw new InputError('no count rows', { file: this.file });
    const shape = `[${this.rows.length}][${this.rows[0].length}] (CSV rows x columns)`;
    const r = mapRowsToMoeLayers(this.rows, this.model, this.file, shape, (i) => ({ line: this.lines[i] }));
    if (this.header) r.notes.unshift('header line skipped');
    return r;
  }
}

/** True when every cell parses as a number. */
export function looksNumeric(cells: string[]): boolean {
  for (const c of cells) {
    const t = c.trim();
    if (t === '' || Number.isNaN(Number(t))) return false;
  }
  return cells.length > 0;
}
