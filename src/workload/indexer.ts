/**
 * The index stage: a validated workload -> per layer the exact expert loads, the loads of request
 * samples, and the weighted token hypergraph (compressed token sets by source GPU) the search and
 * the candidate scoring work on.
 */
import { deriveSeed, Rng } from '../rng.js';
import type { LayerIndex, TokenSets, Workload, WorkloadIndex } from '../types.js';
import { sampleTokensFromCounts } from './sample.js';
import { compressTokenSets, tokenSetsOfLayer } from './tokens.js';

export interface IndexOptions {
  /** Request samples B (request mod B) for robust balance (see LayerIndex.sampleLoad); default 4. */
  samples?: number;
  /** Tokens drawn per layer for counts-only workloads; default 16384 (0 = no sets). */
  sampleTokens?: number;
  /** At most this many compressed sets per layer are kept (a seeded uniform sample beyond); 0 = none. */
  maxSets?: number;
  seed?: number;
}

export const DEFAULT_INDEX = { samples: 4, sampleTokens: 16384, maxSets: 262144 } as const;

/** Index an in-memory workload for `numGpus` source GPUs. */
export function indexWorkload(workload: Workload, topK: number, numGpus: number, opts: IndexOptions = {}): WorkloadIndex {
  const seed = opts.seed ?? 0;
  const maxSets = opts.maxSets ?? DEFAULT_INDEX.maxSets;
  const layers: LayerIndex[] = [];
  if (workload.kind === 'counts') {
    const n = opts.sampleTokens ?? DEFAULT_INDEX.sampleTokens;
    for (let l = 0; l < workload.counts.numLayers; l++) {
      const counts = workload.counts.counts[l];
      let total = 0;
      for (let e = 0; e < counts.length; e++) total += counts[e];
      const drawn = n > 0 && total > 0 ? sampleTokensFromCounts(counts, topK, n, numGpus, new Rng(deriveSeed(seed, l, 1))) : emptySets(topK);
      drawn.weight.fill(drawn.n > 0 ? total / topK / drawn.n : 0);
      layers.push({ expertLoad: Float64Array.from(counts), sampleLoad: new Float64Array(0), sets: compressTokenSets(drawn), sampled: true });
    }
    return { numGpus, samples: 0, estimated: true, layers };
  }
  const tr = workload.trace;
  const E = tr.numExperts;
  const k = tr.topK;
  const B = opts.samples ?? DEFAULT_INDEX.samples;
  for (let l = 0; l < tr.numLayers; l++) {
    const expertLoad = new Float64Array(E);
    const sampleLoad = new Float64Array(B * E);
    const ex = tr.experts[l];
    for (let t = 0; t < tr.numTokens; t++) {
      const w = tr.weight ? tr.weight[t] : 1;
      const r = tr.request[t];
      for (let j = 0; j < k; j++) {
        const e = ex[t * k + j];
        expertLoad[e] += w;
        if (B > 0) sampleLoad[(r % B) * E + e] += w;
      }
    }
    const { sets, sampled } =
      maxSets > 0 ? capSets(compressTokenSets(tokenSetsOfLayer(tr, l, numGpus)), maxSets, new Rng(deriveSeed(seed, l, 2))) : { sets: emptySets(k), sampled: true };
    layers.push({ expertLoad, sampleLoad, sets, sampled });
  }
  return { numGpus, samples: B, estimated: false, layers };
}

function emptySets(k: number): TokenSets {
  return { n: 0, k, experts: new Uint16Array(0), source: new Uint16Array(0), weight: new Float64Array(0) };
}

/**
 * At most `max` of the sets: a seeded uniform sample (in original order) with weights scaled so
 * the total weight is unchanged.
 */
export function capSets(ts: TokenSets, max: number, rng: Rng): { sets: TokenSets; sampled: boolean } {
  if (ts.n <= max) return { sets: ts, sampled: false };
  const pick = rng.shuffle(Int32Array.from({ length: ts.n }, (_, i) => i)).subarray(0, max).sort();
  let total = 0;
  let kept = 0;
  for (let i = 0; i < ts.n; i++) total += ts.weight[i];
  for (const i of pick) kept += ts.weight[i];
  const k = ts.k;
  const experts = new Uint16Array(max * k);
  pick.forEach((i, j) => experts.set(ts.experts.subarray(i * k, i * k + k), j * k));
  return {
    sets: {
      n: max,
      k,
      experts,
      source: Uint16Array.from(pick, (i) => ts.source[i]),
      weight: Float64Array.from(pick, (i) => (kept > 0 ? (ts.weight[i] * total) / kept : 0)),
    },
    sampled: true,
  };
}
