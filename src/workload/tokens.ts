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
 * of the cost model is unchanged.
 */
export function compressTokenSets(ts: TokenSets): TokenSets {
  const { n, k } = ts;
  const key = new Uint16Array(k + 1);
  const map = new Map<string, number>();
  const outExperts: number[] = [];
  const outSource: number[] = [];
  const outWeight: number[] = [];
  for (let i = 0; i < n; i++) {
    key[0] = ts.source[i];
    for (let j = 0; j < k; j++) key[j + 1] = ts.experts[i * k + j];
    key.subarray(1).sort();
    const s = String.fromCharCode.apply(null, key as unknown as number[]);
    const found = map.get(s);
    if (found !== undefined) {
      outWeight[found] += ts.weight[i];
      continue;
    }
    map.set(s, outSource.length);
    outSource.push(key[0]);
    outWeight.push(ts.weight[i]);
    for (let j = 1; j <= k; j++) outExperts.push(key[j]);
  }
  return {
    n: outSource.length,
    k,
    experts: Uint16Array.from(outExperts),
    source: Uint16Array.from(outSource),
    weight: Float64Array.from(outWeight),
  };
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

/** Keep only the tokens of the given requests (e.g. a train/test split by request parity). */
export function filterRequests(trace: Trace, keep: (request: number) => boolean): Trace {
  const idx: number[] = [];
  for (let t = 0; t < trace.numTokens; t++) if (keep(trace.request[t])) idx.push(t);
  const k = trace.topK;
  const experts = trace.experts.map((ex) => {
    const out = new Uint16Array(idx.length * k);
    for (let i = 0; i < idx.length; i++) out.set(ex.subarray(idx[i] * k, idx[i] * k + k), i * k);
    return out;
  });
  return {
    ...trace,
    numTokens: idx.length,
    request: Uint32Array.from(idx, (t) => trace.request[t]),
    rank: Int32Array.from(idx, (t) => trace.rank[t]),
    weight: trace.weight ? Float32Array.from(idx, (t) => trace.weight![t]) : null,
    experts,
  };
}
