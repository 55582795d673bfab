/**
 * From a workload to the per-layer views the evaluator and the solvers use: token sets with their
 * source GPU (the hypergraph of DESIGN.md) and per-expert loads.
 */
import type { Counts, TokenSets, Trace, Workload } from '../types.js';

/**
 * Source GPU of token t: its recorded rank (mod numGpus), else request id mod numGpus.
 */
export function sourceOf(trace: Trace, t: number, numGpus: number): number {
  const r = trace.rank[t];
  return (r >= 0 ? r : trace.request[t]) % numGpus;
}

/** [n] tokens of layer l as TokenSets (experts array shared with the trace, not copied). */
export function tokenSetsOfLayer(trace: Trace, layer: number, numGpus: number): TokenSets {
  const n = trace.numTokens;
  const source = new Uint16Array(n);
  const weight = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    source[t] = sourceOf(trace, t, numGpus);
    weight[t] = trace.weight ? trace.weight[t] : 1;
  }
  return { n, k: trace.topK, experts: trace.experts[layer], source, weight };
}

/**
 * Merge tokens with the same source and the same expert set (order ignored) into one weighted
 * set; experts of each set come out sorted ascending (`SetCompressor` over all the tokens). Cost is
 * linear in weight, so every metric of the cost model is unchanged.
 */
export function compressTokenSets(ts: TokenSets): TokenSets {
  const c = new SetCompressor(ts.k, Infinity, ts.n);
  c.add(ts.experts, ts.source, ts.weight, ts.n);
  return c.sets();
}

/**
 * The one token-set compressor: merges tokens with the same source and the same expert set (order
 * ignored) into one weighted set while they arrive, chunk by chunk or all at once. Sets come out in
 * order of first appearance, experts ascending, weights summed in token order, so the result is the
 * same however the tokens are chunked. Gives up (`alive = false`, storage freed) once more than
 * `max` distinct pairs appear (the streamed index then samples). Open addressing over typed arrays,
 * grown x2 from `initial` slots; O(k log k) per token.
 */
export class SetCompressor {
  n = 0;
  alive = true;
  private cap: number;
  private experts: Uint16Array;
  private source: Uint16Array;
  private weight: Float64Array;
  private table: Int32Array;
  private readonly key: Uint16Array;

  constructor(
    readonly k: number,
    readonly max = Infinity,
    initial = 1024,
  ) {
    this.cap = Math.max(1, Math.min(initial, max));
    this.experts = new Uint16Array(this.cap * k);
    this.source = new Uint16Array(this.cap);
    this.weight = new Float64Array(this.cap);
    this.table = new Int32Array(tableSize(this.cap)).fill(-1);
    this.key = new Uint16Array(k);
  }

  /** Add tokens 0..n-1 of a chunk: ids [n*k] token-major, src [n], w [n]. */
  add(ids: Uint16Array, src: Uint16Array, w: Float64Array, n: number): void {
    const k = this.k;
    const key = this.key;
    for (let t = 0; t < n; t++) {
      // the token's ids, insertion-sorted ascending (k is small)
      const base = t * k;
      for (let j = 0; j < k; j++) {
        const v = ids[base + j];
        let i = j;
        while (i > 0 && key[i - 1] > v) {
          key[i] = key[i - 1];
          i--;
        }
        key[i] = v;
      }
      const s = src[t];
      let h = Math.imul(s + 1, 0x9e3779b1) >>> 0;
      for (let j = 0; j < k; j++) h = Math.imul(h ^ (key[j] + 0x7f4a7c15), 0x85ebca6b) >>> 0;
      const table = this.table;
      const mask = table.length - 1;
      h = (h ^ (h >>> 15)) & mask;
      for (;;) {
        const at = table[h];
        if (at < 0) {
          if (this.n === this.max) {
            this.die();
            return;
          }
          if (this.n === this.cap) {
            this.grow();
            // re-probe in the new table
            t--;
            break;
          }
          const out = this.n++;
          table[h] = out;
          this.source[out] = s;
          this.weight[out] = w[t];
          this.experts.set(key, out * k);
          break;
        }
        const ex = this.experts;
        let same = this.source[at] === s;
        for (let j = 0; same && j < k; j++) same = ex[at * k + j] === key[j];
        if (same) {
          this.weight[at] += w[t];
          break;
        }
        h = (h + 1) & mask;
      }
    }
  }

  private grow(): void {
    const k = this.k;
    const cap = Math.min(this.max, this.cap * 2);
    const ex = new Uint16Array(cap * k);
    ex.set(this.experts);
    const src = new Uint16Array(cap);
    src.set(this.source);
    const w = new Float64Array(cap);
    w.set(this.weight);
    this.experts = ex;
    this.source = src;
    this.weight = w;
    this.cap = cap;
    const table = new Int32Array(tableSize(cap)).fill(-1);
    const mask = table.length - 1;
    for (let i = 0; i < this.n; i++) {
      let h = Math.imul(src[i] + 1, 0x9e3779b1) >>> 0;
      for (let j = 0; j < k; j++) h = Math.imul(h ^ (ex[i * k + j] + 0x7f4a7c15), 0x85ebca6b) >>> 0;
      h = (h ^ (h >>> 15)) & mask;
      while (table[h] >= 0) h = (h + 1) & mask;
      table[h] = i;
    }
    this.table = table;
  }

  private die(): void {
    this.alive = false;
    this.experts = new Uint16Array(0);
    this.source = new Uint16Array(0);
    this.weight = new Float64Array(0);
    this.table = new Int32Array(0);
  }

  /** The compressed sets (trimmed copies). */
  sets(): TokenSets {
    const n = this.n;
    return { n, k: this.k, experts: this.experts.slice(0, n * this.k), source: this.source.slice(0, n), weight: this.weight.slice(0, n) };
  }
}

/** Power of two >= 2 * cap. */
function tableSize(cap: number): number {
  let size = 1;
  while (size < 2 * cap) size <<= 1;
  return size;
}

/** [E] routed (token, expert) weight per logical expert in layer l. */
export function expertLoadsOfLayer(workload: Workload, layer: number): Float64Array {
  if (workload.kind === 'counts') return Float64Array.from(workload.counts.counts[layer]);
  const tr = workload.trace;
  const out = new Float64Array(tr.numExperts);
  const ex = tr.experts[layer];
  const k = tr.topK;
  for (let t = 0; t < tr.numTokens; t++) {
    const w = tr.weight ? tr.weight[t] : 1;
    for (let j = 0; j < k; j++) out[ex[t * k + j]] += w;
  }
  return out;
}

/** Per-layer expert loads of a trace as Counts. */
export function countsOfTrace(trace: Trace): Counts {
  const w: Workload = { kind: 'trace', trace, meta: { format: 'trace' } };
  const counts: Float64Array[] = [];
  for (let l = 0; l < trace.numLayers; l++) counts.push(expertLoadsOfLayer(w, l));
  return { numLayers: trace.numLayers, numExperts: trace.numExperts, counts };
}

/**
 * Keep only the tokens of the given requests (e.g. a train/test split by request parity). The kept
 * requests are renumbered 0.. in order, as if they had been read as a workload of their own, so
 * that source GPUs (request mod GPUs) spread over the whole cluster in both halves.
 */
export function filterRequests(trace: Trace, keep: (request: number) => boolean): Trace {
  const idx: number[] = [];
  const renum = new Int32Array(trace.numRequests).fill(-1);
  let numRequests = 0;
  for (let t = 0; t < trace.numTokens; t++) {
    const r = trace.request[t];
    if (!keep(r)) continue;
    if (renum[r] < 0) renum[r] = numRequests++;
    idx.push(t);
  }
  const k = trace.topK;
  const experts = trace.experts.map((ex) => {
    const out = new Uint16Array(idx.length * k);
    for (let i = 0; i < idx.length; i++) out.set(ex.subarray(idx[i] * k, idx[i] * k + k), i * k);
    return out;
  });
  return {
    ...trace,
    numTokens: idx.length,
    numRequests,
    request: Uint32Array.from(idx, (t) => renum[trace.request[t]]),
    rank: Int32Array.from(idx, (t) => trace.rank[t]),
    weight: trace.weight ? Float32Array.from(idx, (t) => trace.weight![t]) : null,
    experts,
  };
}

/** [E] weighted (token, expert) pairs per expert of token sets. */
export function loadsOfSets(ts: TokenSets, E: number): Float64Array {
  const load = new Float64Array(E);
  for (let i = 0; i < ts.n; i++) for (let j = 0; j < ts.k; j++) load[ts.experts[i * ts.k + j]] += ts.weight[i];
  return load;
}

/** The sets of a and then of b (same k). */
export function concatSets(a: TokenSets, b: TokenSets): TokenSets {
  const experts = new Uint16Array((a.n + b.n) * a.k);
  experts.set(a.experts.subarray(0, a.n * a.k));
  experts.set(b.experts.subarray(0, b.n * b.k), a.n * a.k);
  const source = new Uint16Array(a.n + b.n);
  source.set(a.source.subarray(0, a.n));
  source.set(b.source.subarray(0, b.n), a.n);
  const weight = new Float64Array(a.n + b.n);
  weight.set(a.weight.subarray(0, a.n));
  weight.set(b.weight.subarray(0, b.n), a.n);
  return { n: a.n + b.n, k: a.k, experts, source, weight };
}
