/**
 * The index stage over canonical `mpt` traces too large to hold in memory (a 10M-token
 * DeepSeek-V3 trace is 10M x 58 layers x 8 ids: 4.6 GB as bytes, twice that as the Uint16 arrays
 * of a `Trace`), read chunk by chunk (mpt-stream.ts).
 *
 * - `streamIndex`: the index stage (`WorkloadIndex`, as `indexWorkload` builds it) in one pass:
 *   exact `expertLoad [E]` and `sampleLoad [B*E]` per layer, and the token sets either exactly
 *   (while a layer has at most `maxSets` distinct (source, expert set) pairs) or compressed from a
 *   seeded uniform reservoir sample of `maxSets` tokens, weights scaled to the layer's true total.
 *   Memory O(L * maxSets * k) plus one chunk.
 * - `isLargeTrace`: whether a workload file is an mpt trace too large to load (the CLI then streams).
 * - `workloadOfIndex`: a counts stand-in for the `workload` field of a SolveInput / feasibility check
 *   when the solver is handed a streamed index.
 *
 * Reading and writing mpt files piece by piece (`forEachMptChunk`, `MptWriter`) is in
 * mpt-stream.ts; the streaming evaluator (`evaluateStream`) in src/cost/stream.ts.
 */
import { stat } from 'node:fs/promises';
import { deriveSeed, Rng } from '../rng.js';
import type { Model } from '../schemas.js';
import type { LayerIndex, TokenSets, Workload, WorkloadIndex, WorkloadMeta } from '../types.js';
import { DEFAULT_INDEX, isValidation, MIN_VALIDATION_REQUESTS, validationLimit, type IndexOptions } from './indexer.js';
import { fsError, peekContent } from './io.js';
import { checkInt, ChunkScratch, forEachMptChunk, type ByteProgress } from './mpt-stream.js';
import { compressTokenSets, SetCompressor } from './tokens.js';
import { MPT_MAGIC, type MptChunk, type MptHeader } from './mpt.js';

// ------------------------------------------------------------------------------------------------
// streamIndex


/** Default `maxSets` of `streamIndex` (token sets kept per layer). */
export const STREAM_MAX_SETS = 65536;

export interface StreamIndexOptions extends IndexOptions {
  /** Raw bytes read so far of the file's size. */
  onProgress?: ByteProgress;
}

/** A `WorkloadIndex` built by streaming, with what the read found. */
export interface StreamedIndex extends WorkloadIndex {
  /** Tokens T and requests R of the trace. */
  numTokens: number;
  numRequests: number;
  /** The trace's meta (format `mpt`, path, sha256 digest of the bytes, notes). */
  meta: WorkloadMeta;
}

/**
 * Seeded uniform sample of at most `m` tokens of a stream (Li's algorithm L: the gaps between
 * kept tokens are drawn, about m (1 + ln(T/m)) random draws in all, none per skipped token). A
 * kept token's expert ids of every layer, source and weight are copied in.
 */
class Reservoir {
  /** Tokens seen and kept so far. */
  seen = 0;
  size = 0;
  /** [L] of [m*k] ids; [m] source, weight and index in the trace of each kept token. */
  readonly experts: Uint16Array[];
  readonly source: Uint16Array;
  readonly weight: Float64Array;
  readonly index: Float64Array;
  private w = 1;
  /** Index of the next token to keep once the reservoir is full. */
  private next = 0;

  constructor(
    readonly m: number,
    readonly numLayers: number,
    readonly k: number,
    private readonly rng: Rng,
  ) {
    this.experts = Array.from({ length: numLayers }, () => new Uint16Array(m * k));
    this.source = new Uint16Array(m);
    this.weight = new Float64Array(m);
    this.index = new Float64Array(m);
  }

  private u(): number {
    return 1 - this.rng.next(); // (0, 1]
  }

  private advance(): void {
    this.w *= Math.exp(Math.log(this.u()) / this.m);
    this.next += Math.floor(Math.log(this.u()) / Math.log1p(-this.w)) + 1;
  }

  add(chunk: MptChunk, src: Uint16Array, wt: Float64Array): void {
    const { n, experts } = chunk;
    const first = this.seen;
    const end = first + n;
    // filling
    while (this.size < this.m && this.seen < end) {
      this.put(this.size++, this.seen - first, experts, src, wt, this.seen);
      this.seen++;
      if (this.size === this.m) {
        this.next = this.m - 1;
        this.advance();
      }
    }
    if (this.size < this.m) return;
    while (this.next < end) {
      const t = this.next - first;
      this.put(this.rng.int(this.m), t, experts, src, wt, this.next);
      this.advance();
    }
    this.seen = end;
  }

  private put(slot: number, t: number, experts: Uint16Array[], src: Uint16Array, wt: Float64Array, index: number): void {
    const k = this.k;
    for (let l = 0; l < this.numLayers; l++) {
      const from = experts[l];
      const to = this.experts[l];
      for (let j = 0; j < k; j++) to[slot * k + j] = from[t * k + j];
    }
    this.source[slot] = src[t];
    this.weight[slot] = wt[t];
    this.index[slot] = index;
  }

  /** Kept slots in trace order. */
  order(): Int32Array {
    const ord = Int32Array.from({ length: this.size }, (_, i) => i);
    const idx = this.index;
    return ord.sort((a, b) => idx[a] - idx[b]);
  }

  /** Layer l's kept tokens (in trace order) as token sets. */
  layerSets(l: number, ord: Int32Array): TokenSets {
    const k = this.k;
    const n = ord.length;
    const experts = new Uint16Array(n * k);
    const source = new Uint16Array(n);
    const weight = new Float64Array(n);
    const ids = this.experts[l];
    for (let i = 0; i < n; i++) {
      const s = ord[i];
      for (let j = 0; j < k; j++) experts[i * k + j] = ids[s * k + j];
      source[i] = this.source[s];
      weight[i] = this.weight[s];
    }
    return { n, k, experts, source, weight };
  }
}

/**
 * Per chunk: which tokens belong to validation requests (`mark`), and the tokens of one part
 * (0 = the others, 1 = validation) of a layer copied out contiguously (`take`). Buffers reused.
 */
class SplitScratch {
  isVal = new Uint8Array(0);
  ids = new Uint16Array(0);
  src = new Uint16Array(0);
  w = new Float64Array(0);

  mark(request: Uint32Array, n: number, seed: number, limit: number): void {
    if (this.isVal.length < n) this.isVal = new Uint8Array(n);
    for (let t = 0; t < n; t++) this.isVal[t] = isValidation(seed, request[t], limit) ? 1 : 0;
  }

  take(ids: Uint16Array, src: Uint16Array, w: Float64Array, n: number, k: number, part: number): number {
    if (this.src.length < n) {
      this.ids = new Uint16Array(n * k);
      this.src = new Uint16Array(n);
      this.w = new Float64Array(n);
    }
    let m = 0;
    for (let t = 0; t < n; t++) {
      if (this.isVal[t] !== part) continue;
      for (let j = 0; j < k; j++) this.ids[m * k + j] = ids[t * k + j];
      this.src[m] = src[t];
      this.w[m++] = w[t];
    }
    return m;
  }
}

/**
 * Add tokens 0..n-1 of a layer chunk to `expertLoad [E]` and to `sampleLoad` at each token's row
 * offset (`rows [n]`, -1 = none), in token order. ids [n*k], w [n].
 */
function addLoads(ids: Uint16Array, n: number, k: number, w: Float64Array, rows: Int32Array, expertLoad: Float64Array, sampleLoad: Float64Array): void {
  for (let t = 0; t < n; t++) {
    const wt = w[t];
    const base = t * k;
    const row = rows[t];
    if (row >= 0) {
      for (let j = 0; j < k; j++) {
        const e = ids[base + j];
        expertLoad[e] += wt;
        sampleLoad[row + e] += wt;
      }
    } else {
      for (let j = 0; j < k; j++) expertLoad[ids[base + j]] += wt;
    }
  }
}

/**
 * [R] offset in a layer's `sampleLoad [B*E]` of the row request r's tokens add to, -1 = none:
 * the row of sample r mod B, as `indexWorkload` adds them.
 * Keep in step with indexer.ts (test/stream.test.ts compares the two).
 */
function sampleRows(numRequests: number, numExperts: number, B: number): Int32Array {
  const out = new Int32Array(numRequests).fill(-1);
  if (B === 0) return out;
  for (let r = 0; r < numRequests; r++) out[r] = (r % B) * numExperts;
  return out;
}

/**
 * Index the mpt trace at `path` for `numGpus` source GPUs without loading it: the `WorkloadIndex`
 * `indexWorkload` gives for the loaded trace, built in one streamed pass.
 *
 * Per MoE layer l:
 * - `expertLoad [E]` and `sampleLoad [B*E]` (B = `opts.samples`, request r in sample r mod B): exact, summed in token order, so bit-identical to `indexWorkload`'s;
 * - `sets`: while the layer has at most `maxSets` distinct (source, expert set) pairs they are
 *   kept exactly (identical to `indexWorkload`'s sets, `sampled` false). Beyond that the layer's
 *   sets are `compressTokenSets` of a seeded uniform sample of `maxSets` tokens (one reservoir
 *   shared by all layers, tokens in trace order; source = rank, else request, mod numGpus), each
 *   weight scaled by (total weight of all tokens) / (weight of the kept ones), so the layer's total
 *   set weight equals its true total (`sampled` true). Same seed, same sample.
 *
 * `opts.maxSets` defaults to `STREAM_MAX_SETS` (65536), `opts.samples` and `opts.seed` to
 * `indexWorkload`'s defaults. Memory: O(L * maxSets * k) ids, O(L * B * E) loads, one chunk.
 * Errors: InputError naming the file (see `forEachMptChunk`) or the bad option.
 */
export async function streamIndex(path: string, model: Model, numGpus: number, opts: StreamIndexOptions = {}): Promise<StreamedIndex> {
  checkInt(numGpus, 1, 65536, 'numGpus');
  const maxSets = opts.maxSets ?? STREAM_MAX_SETS;
  checkInt(maxSets, 1, 1 << 26, 'maxSets');
  const B = opts.samples ?? DEFAULT_INDEX.samples;
  checkInt(B, 0, 1024, 'samples');
  const seed = opts.seed ?? 0;
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const k = model.topK;
  const NG = numGpus;

  const expertLoad = Array.from({ length: L }, () => new Float64Array(E));
  const sampleLoad = Array.from({ length: L }, () => new Float64Array(B * E));
  const tables = Array.from({ length: L }, () => new SetCompressor(k, maxSets));
  // Validation split (IndexOptions.validation): its requests' tokens go to their own tables.
  const valLimit = validationLimit(opts.validation ?? 0);
  let valTables: SetCompressor[] | null = null;
  const valLoad = Array.from({ length: valLimit > 0 ? L : 0 }, () => new Float64Array(E));
  const split = new SplitScratch();
  const reservoir = new Reservoir(maxSets, L, k, new Rng(deriveSeed(seed, 0x57e, 4)));
  const scratch = new ChunkScratch();
  /** [R] offset of each request's row in sampleLoad, -1 = none (B = 0). */
  let rowOfRequest: Int32Array | null = null;
  /** [n] that offset for each token of the chunk. */
  let rows = new Int32Array(0);
  let total = 0;

  const info = await forEachMptChunk(
    path,
    model,
    (chunk, header) => {
      const n = chunk.n;
      if (!rowOfRequest && valLimit > 0 && header.numRequests >= MIN_VALIDATION_REQUESTS) valTables = Array.from({ length: L }, () => new SetCompressor(k, maxSets));
      rowOfRequest ??= sampleRows(header.numRequests, E, B);
      scratch.fill(chunk, NG);
      const src = scratch.source;
      const wt = scratch.weight;
      for (let t = 0; t < n; t++) total += wt[t];
      if (rows.length < n) rows = new Int32Array(n);
      const req = chunk.request;
      for (let t = 0; t < n; t++) rows[t] = rowOfRequest[req[t]];
      reservoir.add(chunk, src, wt);
      if (valTables) split.mark(req, n, seed, valLimit);
      for (let l = 0; l < L; l++) {
        const ids = chunk.experts[l];
        addLoads(ids, n, k, wt, rows, expertLoad[l], sampleLoad[l]);
        const table = tables[l];
        if (!valTables) {
          if (table.alive) table.add(ids, src, wt, n);
          continue;
        }
        for (let part = 0; part < 2; part++) {
          const m = split.take(ids, src, wt, n, k, part);
          if (part === 1) for (let t = 0; t < m; t++) for (let j = 0; j < k; j++) valLoad[l][split.ids[t * k + j]] += split.w[t];
          const into = part === 0 ? table : valTables![l];
          if (into.alive) into.add(split.ids, split.src, split.w, m);
        }
      }
    },
    { onProgress: opts.onProgress },
  );

  const layers: LayerIndex[] = [];
  let order: Int32Array | null = null;
  // (assigned inside the chunk callback, which TypeScript's narrowing does not see)
  const vt = valTables as SetCompressor[] | null;
  for (let l = 0; l < L; l++) {
    if (tables[l].alive && (!vt || vt[l].alive)) {
      const li: LayerIndex = { expertLoad: expertLoad[l], sampleLoad: sampleLoad[l], sets: tables[l].sets(), sampled: false };
      if (vt) {
        li.valSets = vt[l].sets();
        li.valLoad = valLoad[l];
      }
      layers.push(li);
      continue;
    }
    // Too many distinct sets: a sample of every token (no validation split for this layer).
    order ??= reservoir.order();
    const sets = compressTokenSets(reservoir.layerSets(l, order));
    let keptWeight = 0;
    for (let i = 0; i < sets.n; i++) keptWeight += sets.weight[i];
    const scale = keptWeight > 0 ? total / keptWeight : 0;
    for (let i = 0; i < sets.n; i++) sets.weight[i] *= scale;
    layers.push({ expertLoad: expertLoad[l], sampleLoad: sampleLoad[l], sets, sampled: true });
  }
  const sampledLayers = layers.filter((x) => x.sampled).length;
  if (sampledLayers > 0) {
    info.meta.notes!.push(`token sets of ${sampledLayers} of ${L} layers from a uniform sample of ${Math.min(maxSets, info.numTokens)} tokens (seed ${seed})`);
  }
  return {
    numGpus: NG,
    samples: B,
    estimated: false,
    layers,
    numTokens: info.numTokens,
    numRequests: info.header.numRequests,
    meta: info.meta,
  };
}

/**
 * A counts workload standing in for a streamed trace where an API wants a `Workload` beside the
 * index (`SolveInput.workload`, `checkFeasibility`, `layerMaxLoadBounds`): its counts are the
 * index's exact `expertLoad`s (shared, not copied) and its meta the trace's (path, digest). Do not
 * `evaluate` it (that would estimate traffic from counts): use `evaluateStream` on the file.
 */
export function workloadOfIndex(index: StreamedIndex): Workload {
  return countsWorkloadOf(
    index.layers.map((x) => x.expertLoad),
    index.meta,
  );
}

/**
 * A counts workload of per-layer expert loads `[L][E]` (shared, not copied) with `meta` (copied):
 * the stand-in for a streamed trace (see `workloadOfIndex`; `evaluateStream` returns the loads as
 * `expertLoads`).
 */
export function countsWorkloadOf(expertLoads: Float64Array[], meta: WorkloadMeta): Workload {
  return {
    kind: 'counts',
    counts: { numLayers: expertLoads.length, numExperts: expertLoads.length > 0 ? expertLoads[0].length : 0, counts: expertLoads },
    meta: { ...meta, notes: [...(meta.notes ?? [])] },
  };
}

// ------------------------------------------------------------------------------------------------
// isLargeTrace

/** In-memory size above which `isLargeTrace` says a trace should be streamed (1 GiB). */
export const LARGE_TRACE_BYTES = 1 << 30;

/**
 * Whether the workload at `path` is an mpt trace too large to load whole: the `Trace` it would
 * become (per token 4 B request + 4 B rank + 4 B weight if any + L*k*2 B ids) exceeds `maxBytes`
 * (default `LARGE_TRACE_BYTES`, 1 GiB; DeepSeek-V3 reaches it at about 2.25M tokens). The size comes
 * from the header's `numTokens`; when the header leaves it null, from the file size (for a gzipped
 * file its compressed size, a lower bound). Anything that is not an mpt file (a folder, another
 * format, an unreadable header) gives false: the caller's ordinary loader then reads it or reports
 * the problem. A missing path throws an InputError naming it.
 */
export async function isLargeTrace(path: string, opts: { maxBytes?: number } = {}): Promise<boolean> {
  const maxBytes = opts.maxBytes ?? LARGE_TRACE_BYTES;
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw fsError(path, err);
  }
  if (!st.isFile() || st.size < 8) return false;
  const peek = await peekContent(path, 1 << 16).catch(() => null);
  if (peek === null) return false;
  const c = peek.content;
  if (c.length < 8 || c.toString('latin1', 0, 4) !== MPT_MAGIC) return false;
  const H = c.readUInt32LE(4);
  if (8 + H > c.length) return false;
  let h: Partial<MptHeader>;
  try {
    h = JSON.parse(c.toString('utf8', 8, 8 + H)) as Partial<MptHeader>;
  } catch {
    return false;
  }
  const L = Number(h.numLayers);
  const k = Number(h.topK);
  if (!(L >= 1 && k >= 1)) return false;
  const inMemory = 8 + (h.hasWeight ? 4 : 0) + L * k * 2;
  if (typeof h.numTokens === 'number') return h.numTokens * inMemory > maxBytes;
  const inFile = 4 + (h.hasRank ? 4 : 0) + (h.hasWeight ? 4 : 0) + L * k * (h.idBytes === 2 ? 2 : 1);
  return (st.size / inFile) * inMemory > maxBytes;
}
