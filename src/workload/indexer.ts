/**
 * The index stage: a validated workload -> per layer the exact expert loads, the loads of request
 * samples, and the weighted token hypergraph (compressed token sets by source GPU) the search and
 * the candidate scoring work on.
 */
import { deriveSeed, Rng } from '../rng.js';
import type { LayerIndex, TokenSets, Workload, WorkloadIndex } from '../types.js';
import { sampleTokensFromCounts } from './sample.js';
import { compressTokenSets, loadsOfSets, tokenSetsOfLayer } from './tokens.js';

export interface IndexOptions {
  /** Request samples B (request mod B) for robust balance (see LayerIndex.sampleLoad); default 4. */
  samples?: number;
  /** Tokens drawn per layer for counts-only workloads; default 16384 (0 = no sets). */
  sampleTokens?: number;
  /** At most this many compressed sets per layer are kept (a seeded uniform sample beyond); 0 = none. */
  maxSets?: number;
  /**
   * Fraction of the requests (drawn by a seeded hash of the request id, so independent of the
   * source GPU) kept out of `sets` as a validation split (`valSets`, `valLoad`); default 0. Only
   * for traces of at least MIN_VALIDATION_REQUESTS requests (fewer make no useful split).
   */
  validation?: number;
  seed?: number;
}

export const DEFAULT_INDEX = { samples: 4, sampleTokens: 16384, maxSets: 262144 } as const;

/** Fraction of the fitted requests `optimize` holds back per layer to select among candidates. */
export const DEFAULT_VALIDATION = 0.25;

/**
 * Index options `optimize` uses for a solve (no request samples; a validation split for the
 * traffic and time objectives on several nodes), for an index built before the solve (streamed).
 */
export function indexOptionsFor(solver: string, objective: string, nodes: number): { samples: number; validation: number } {
  return { samples: 0, validation: solver === 'optimize' && objective !== 'balance' && nodes > 1 ? DEFAULT_VALIDATION : 0 };
}

/** Fewest requests a trace needs for a validation split. */
export const MIN_VALIDATION_REQUESTS = 100;

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
  const val = tr.numRequests >= MIN_VALIDATION_REQUESTS ? validationMask(tr.request, tr.numTokens, opts.validation ?? 0, seed) : null;
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
    const all = tokenSetsOfLayer(tr, l, numGpus);
    const [fit, held] = val ? splitSets(all, val) : [all, null];
    const { sets, sampled } = maxSets > 0 ? capSets(compressTokenSets(fit), maxSets, new Rng(deriveSeed(seed, l, 2))) : { sets: emptySets(k), sampled: true };
    const li: LayerIndex = { expertLoad, sampleLoad, sets, sampled };
    if (held && maxSets > 0) {
      li.valSets = capSets(compressTokenSets(held), maxSets, new Rng(deriveSeed(seed, l, 3))).sets;
      li.valLoad = loadsOfSets(held, E);
    }
    layers.push(li);
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

/** Hash threshold of a validation fraction (see `isValidation`). */
export function validationLimit(fraction: number): number {
  return fraction > 0 ? Math.round(Math.min(1, fraction) * 0x100000000) : 0;
}

/** Whether request r belongs to the validation split of `limit` (validationLimit). */
export function isValidation(seed: number, request: number, limit: number): boolean {
  return limit > 0 && deriveSeed(seed, request, 7) < limit;
}

/** [T] 1 for the tokens of validation requests (seeded hash of the request id), or null. */
function validationMask(request: Uint32Array, n: number, fraction: number, seed: number): Uint8Array | null {
  const limit = validationLimit(fraction);
  if (limit === 0) return null;
  const mask = new Uint8Array(n);
  let any = false;
  for (let t = 0; t < n; t++) {
    if (isValidation(seed, request[t], limit)) {
      mask[t] = 1;
      any = true;
    }
  }
  return any ? mask : null;
}

/** The tokens of `ts` outside and inside `mask`. */
function splitSets(ts: TokenSets, mask: Uint8Array): [TokenSets, TokenSets] {
  const part = (want: number): TokenSets => {
    let n = 0;
    for (let t = 0; t < ts.n; t++) if (mask[t] === want) n++;
    const out: TokenSets = { n, k: ts.k, experts: new Uint16Array(n * ts.k), source: new Uint16Array(n), weight: new Float64Array(n) };
    for (let t = 0, i = 0; t < ts.n; t++) {
      if (mask[t] !== want) continue;
      out.experts.set(ts.experts.subarray(t * ts.k, (t + 1) * ts.k), i * ts.k);
      out.source[i] = ts.source[t];
      out.weight[i++] = ts.weight[t];
    }
    return out;
  };
  return [part(0), part(1)];
}
