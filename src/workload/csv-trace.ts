/**
 * Per-request CSV routing traces (format `v2lite-csv`, as recorded from DeepSeek-V2-Lite): one
 * (optionally gzipped) CSV file per request with the header
 *
 *     Layer ID,Batch Number,Token,Activated Expert IDs
 *
 * and one row per (MoE layer, token): the engine layer id, a batch number (must be the same on
 * every row of a file), the token text (CSV-quoted when needed) and the JSON list of the k expert
 * ids in gate order, quoted, e.g. `1,0,How,"[8, 22, 43, 46, 63, 7]"`. Rows are grouped by layer,
 * then token position: row i of a layer is token i of the request. Every MoE layer of the model
 * must list the same number of tokens T; engine layer ids map to MoE layers by `model.moeLayerIds`.
 *
 * Each file is one request (request ids 0.. in the order the files are read); no rank is recorded.
 */
import { InputError } from '../errors.js';
import type { Model } from '../schemas.js';
import { IdChecker, TraceBuilder } from './builder.js';
import { formatIds } from './counts.js';

export const V2LITE_HEADER = 'Layer ID,Batch Number,Token,Activated Expert IDs';
const FIELD_IDS = 'Activated Expert IDs';

/**
 * Streaming parser of one file at a time; rows are parsed straight into per-layer scratch arrays
 * (reused across files) and appended to the builder when the file ends.
 */
export class V2LiteCsvParser {
  private readonly L: number;
  private readonly k: number;
  private readonly E: number;
  /** engine layer id -> MoE layer index, -1 = not MoE */
  private readonly layerOf: Int32Array;
  /** [L] scratch ids of the current file, [T*k] used */
  private scratch: Uint16Array[];
  /** [L] tokens seen in the current file */
  private readonly rows: Int32Array;
  /** [L] line of the first row of each layer (for messages) */
  private readonly firstLine: Int32Array;
  private readonly tok: Uint16Array;
  private readonly checker: IdChecker;
  private file = '';
  private batch = -1;
  private pending: Buffer | null = null;
  private pendingLine = 0;
  private sawHeader = false;

  constructor(
    readonly model: Model,
    readonly builder: TraceBuilder,
  ) {
    this.L = model.moeLayerIds.length;
    this.k = model.topK;
    this.E = model.experts;
    this.layerOf = new Int32Array(Math.max(model.numHiddenLayers, ...model.moeLayerIds) + 1).fill(-1);
    model.moeLayerIds.forEach((id, l) => (this.layerOf[id] = l));
    this.scratch = [];
    for (let l = 0; l < this.L; l++) this.scratch.push(new Uint16Array(256 * this.k));
    this.rows = new Int32Array(this.L);
    this.firstLine = new Int32Array(this.L);
    this.tok = new Uint16Array(this.k);
    this.checker = new IdChecker(this.E, this.k);
  }

  beginFile(file: string): void {
    this.file = file;
    this.rows.fill(0);
    this.batch = -1;
    this.pending = null;
    this.sawHeader = false;
  }

  private fail(msg: string, line: number, field?: string): never {
    throw new InputError(msg, { file: this.file, line, field });
  }

  /** Feed one line, bytes `buf[s, e)` without terminator (1-based number). */
  line(buf: Buffer, s: number, e: number, lineNo: number): void {
    if (!this.sawHeader) {
      const text = buf.toString('utf8', s, e).trim();
      if (text === '') return;
      if (text !== V2LITE_HEADER) this.fail(`expected the header "${V2LITE_HEADER}", got ${JSON.stringify(text.slice(0, 80))}`, lineNo);
      this.sawHeader = true;
      return;
    }
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, NEWLINE, buf.subarray(s, e)]);
      s = 0;
      e = buf.length;
      lineNo = this.pendingLine;
      this.pending = null;
    } else if (e === s) {
      return;
    }
    // Layer ID
    const c0 = indexOf(buf, 44, s, e);
    if (c0 < 0) this.fail('expected 4 comma-separated fields', lineNo);
    const layerId = parseUint(buf, s, c0);
    if (layerId < 0) this.fail(`must be a non-negative integer, got ${JSON.stringify(buf.toString('utf8', s, c0))}`, lineNo, 'Layer ID');
    const l = layerId < this.layerOf.length ? this.layerOf[layerId] : -1;
    if (l < 0) {
      this.fail(
        `engine layer ${layerId} is not a MoE layer of model ${this.model.name} (MoE layers ${formatIds(this.model.moeLayerIds)})`,
        lineNo,
        'Layer ID',
      );
    }
    // Batch Number
    const c1 = indexOf(buf, 44, c0 + 1, e);
    if (c1 < 0) this.fail('expected 4 comma-separated fields', lineNo);
    const batch = parseUint(buf, c0 + 1, c1);
    if (batch < 0) this.fail(`must be a non-negative integer, got ${JSON.stringify(buf.toString('utf8', c0 + 1, c1))}`, lineNo, 'Batch Number');
    if (this.batch < 0) this.batch = batch;
    else if (batch !== this.batch) {
      this.fail(`batch number ${batch} differs from ${this.batch} on earlier rows: one file must hold one request`, lineNo, 'Batch Number');
    }
    // Token (skipped; quoted fields may hold commas, doubled quotes and line breaks)
    let p = c1 + 1;
    if (buf[p] === 34 && p < e) {
      let q = indexOf(buf, 34, p + 1, e);
      while (q >= 0 && q + 1 < e && buf[q + 1] === 34) q = indexOf(buf, 34, q + 2, e);
      if (q < 0) {
        this.pending = Buffer.from(buf.subarray(s, e));
        this.pendingLine = lineNo;
        return;
      }
      p = q + 1;
    } else {
      p = indexOf(buf, 44, p, e);
      if (p < 0) this.fail('expected 4 comma-separated fields', lineNo);
    }
    if (p >= e || buf[p] !== 44) this.fail('expected a comma after the quoted token', lineNo, 'Token');
    // Activated Expert IDs: [a, b, ...], quoted or not
    let a = p + 1;
    let z = e;
    if (a < z && buf[a] === 34) {
      if (buf[z - 1] !== 34 || z - 1 <= a) this.fail('unterminated quoted field', lineNo, FIELD_IDS);
      a++;
      z--;
    }
    this.parseIds(buf, a, z, l, lineNo);
  }

  private parseIds(buf: Buffer, s: number, e: number, l: number, lineNo: number): void {
    while (s < e && buf[s] === 32) s++;
    while (e > s && buf[e - 1] === 32) e--;
    if (e - s < 2 || buf[s] !== 91 || buf[e - 1] !== 93) {
      this.fail(`expected a list like [1, 2], got ${JSON.stringify(buf.toString('utf8', s, Math.min(e, s + 60)))}`, lineNo, FIELD_IDS);
    }
    const k = this.k;
    const E = this.E;
    const tok = this.tok;
    let n = 0;
    let i = s + 1;
    const end = e - 1;
    for (;;) {
      while (i < end && buf[i] === 32) i++;
      if (i >= end) break;
      const from = i;
      let v = 0;
      let c = buf[i];
      while (i < end && c >= 48 && c <= 57) {
        v = v * 10 + (c - 48);
        c = buf[++i];
      }
      const digits = i - from;
      while (i < end && buf[i] === 32) i++;
      if (digits === 0 || (i < end && buf[i] !== 44)) {
        let j = i;
        while (j < end && buf[j] !== 44) j++;
        this.fail(`expert id must be a non-negative integer, got ${JSON.stringify(buf.toString('utf8', from, j).trim())}`, lineNo, `${FIELD_IDS}[${n}]`);
      }
      if (n < k) {
        if (v >= E) this.fail(`expert id ${v} out of range 0..${E - 1}`, lineNo, `${FIELD_IDS}[${n}]`);
        tok[n] = v;
      }
      n++;
      if (i < end) i++; // comma
    }
    if (n !== k) this.fail(`wrong top-k width: ${n} expert ids, model ${this.model.name} has top-${k}`, lineNo, FIELD_IDS);
    const bad = this.checker.checkRange(tok, 0, 1);
    if (bad >= 0) this.fail(this.checker.describe(tok[bad]), lineNo, `${FIELD_IDS}[${bad}]`);
    const t = this.rows[l];
    if (t === 0) this.firstLine[l] = lineNo;
    let out = this.scratch[l];
    if ((t + 1) * k > out.length) {
      const grown = new Uint16Array(out.length * 2);
      grown.set(out);
      this.scratch[l] = out = grown;
    }
    out.set(tok, t * k);
    this.rows[l] = t + 1;
  }

  /** Finish the current file: check every MoE layer has the same tokens, append as `request`. */
  endFile(request: number, lines: number): number {
    if (lines === 0) throw new InputError('empty file', { file: this.file });
    if (!this.sawHeader) throw new InputError('empty file (only blank lines)', { file: this.file });
    if (this.pending !== null) this.fail('unterminated quoted field at end of file', this.pendingLine, 'Token');
    const L = this.L;
    const k = this.k;
    let T = 0;
    for (let l = 0; l < L; l++) T = Math.max(T, this.rows[l]);
    if (T === 0) throw new InputError('no token rows after the header', { file: this.file });
    for (let l = 0; l < L; l++) {
      if (this.rows[l] !== T) {
        const missing = this.rows[l] === 0;
        throw new InputError(
          missing
            ? `MoE layer ${l} (engine layer ${this.model.moeLayerIds[l]}) has no rows; other layers have ${T} tokens`
            : `engine layer ${this.model.moeLayerIds[l]} has ${this.rows[l]} token rows (from line ${this.firstLine[l]}), other layers have ${T}`,
          { file: this.file, field: 'Layer ID' },
        );
      }
    }
    const b = this.builder;
    const start = b.reserve(T);
    for (let l = 0; l < L; l++) b.experts[l].set(this.scratch[l].subarray(0, T * k), start * k);
    b.request.fill(request, start, start + T);
    b.commit(T);
    return T;
  }
}

const NEWLINE = Buffer.from('\n');

/** Index of byte `c` in buf[s, e), or -1. */
function indexOf(buf: Buffer, c: number, s: number, e: number): number {
  for (let i = s; i < e; i++) if (buf[i] === c) return i;
  return -1;
}

/** Non-negative integer in the ASCII bytes buf[s, e) (spaces around allowed), or -1. */
function parseUint(buf: Buffer, s: number, e: number): number {
  while (s < e && buf[s] === 32) s++;
  while (e > s && buf[e - 1] === 32) e--;
  if (s >= e || e - s > 9) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}
