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
 * set; experts of each set come out sorted ascending. Cost is linear in weight, so every metric
 * of the cost model is unchanged. Open-addressing hash over typed arrays; O(n k log k).
 */
export function compressTokenSets(ts: TokenSets): TokenSets {
  const { n, k } = ts;
  const experts = new Uint16Array(n * k);
  const source = new Uint16Array(n);
  const weight = new Float64Array(n);
  let size = 1;
  while (size < 2 * n) size <<= 1;
  const table = new Int32Array(size).fill(-1);
  const mask = size - 1;
  const key = new Uint16Array(k);
  let out = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) key[j] = ts.experts[i * k + j];
    key.sort();
    const src = ts.source[i];
    let h = Math.imul(src + 1, 0x9e3779b1) >>> 0;
    for (let j = 0; j < k; j++) h = Math.imul(h ^ (key[j] + 0x7f4a7c15), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 15)) & mask;
    for (;;) {
      const at = table[h];
      if (at < 0) {
        table[h] = out;
        source[out] = src;
        weight[out] = ts.weight[i];
        experts.set(key, out * k);
        out++;
        break;
      }
      let same = source[at] === src;
      for (let j = 0; same && j < k; j++) same = experts[at * k + j] === key[j];
      if (same) {
        weight[at] += ts.weight[i];
        break;
      }
      h = (h + 1) & mask;
    }
  }
  return { n: out, k, experts: experts.slice(0, out * k), source: source.slice(0, out), weight: weight.slice(0, out) };
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
