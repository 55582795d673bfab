/**
 * Lower bounds on the largest GPU load of any placement of ONE MoE layer (counting arguments on the
 * per-expert loads; no token sets needed), and the gap of a plan to them.
 *
 * Loads are weighted (token, expert) pairs, as in the cost model.
 */
import { InfeasibleError, InputError } from '../errors.js';

/** The parts of `maxLoadLowerBound`, each a valid bound on its own. */
export interface MaxLoadBound {
  /** max of the three below. */
  bound: number;
  /** total load / NG. */
  average: number;
  /** min over replica counts of max_e load[e] / cnt[e] (greedy water-filling). */
  replicated: number;
  /** best pigeonhole bound over the experts that cannot all be replicated (0 if none applies). */
  pigeonhole: number;
  /** [E] replica counts reaching `replicated` (a good start for `replicate`). */
  replicaCounts: Int32Array;
}

/**
 * Lower bound on the largest GPU load of any placement of one layer with `numGpus` GPUs of
 * `slotsPerGpu` slots (P = NG * S), whatever the replica counts and the dispatch table.
 *
 * @param loads [E] weighted (token, expert) pairs per logical expert (>= 0).
 *
 * Proof. Take any placement with replica counts c (c[e] >= 1, sum c <= P) and any dispatch.
 * 1. `average`: the GPU loads sum to the total load, so the largest is >= total / NG.
 * 2. `replicated`: the replicas of e share its load w[e] (each token's pair goes to one replica),
 *    so one replica serves >= w[e] / c[e], and the GPU holding it carries at least that. Hence
 *    max load >= max_e w[e] / c[e] >= min over feasible c of max_e w[e] / c[e] =: t*. Giving each
 *    extra replica (P - E of them) to the expert with the largest current w/c reaches t*: the
 *    greedy keeps the invariant "no c' with sum c' <= sum c has max w/c' < current max" (an
 *    expert at the current max needs one more replica in any better c', the others cannot lose one).
 * 3. `pigeonhole`: let R = P - E (extra slots). At most R experts have >= 2 replicas, so the set U
 *    of single-replica experts has |U| >= E - R and, with w sorted descending (1-based), the i-th
 *    largest load in U is >= w[R+i] (at most R of the R+i largest experts are outside U). A
 *    single-replica expert's whole load lands on its GPU. A GPU holds <= S experts, so among the
 *    j*NG+1 largest experts of U (needs R + j*NG + 1 <= E) some GPU holds j+1 (j >= 0), whose loads
 *    sum to at least the j+1 smallest of them: >= w[R+j*NG-j+1] + ... + w[R+j*NG+1]. Moreover only
 *    P - |U| <= 2R slots hold no U expert (empty, or a replica of a split expert, whose share may be
 *    tiny), so that GPU's other S-j-1 slots hold at least q = S-j-1-2R more U experts, distinct, each
 *    carrying its whole load: add the q smallest loads of all experts. (j = 1, R = 0, S = 2 is the
 *    classic "two of the NG+1 largest jobs share a machine"; j = 0, R = 0 says the hottest expert's
 *    GPU is filled with S-1 others.)
 * Throws InfeasibleError when E > P (no placement exists).
 */
export function maxLoadLowerBoundDetail(loads: Float64Array, numGpus: number, slotsPerGpu: number): MaxLoadBound {
  const E = loads.length;
  const NG = numGpus;
  const S = slotsPerGpu;
  if (!(Number.isInteger(NG) && NG >= 1 && Number.isInteger(S) && S >= 1)) {
    throw new InputError(`numGpus ${NG} and slotsPerGpu ${S} must be positive integers`, { field: 'cluster' });
  }
  const P = NG * S;
  if (E > P) throw new InfeasibleError(`${E} experts do not fit in ${P} slots (${NG} GPUs x ${S}); at least ${Math.ceil(E / NG)} slots per GPU are needed`, { field: 'slotsPerGpu' });
  let total = 0;
  for (let e = 0; e < E; e++) {
    const w = loads[e];
    if (!(w >= 0 && Number.isFinite(w))) throw new InputError(`load ${w} of expert ${e} is not a finite non-negative number`, { field: `loads[${e}]` });
    total += w;
  }
  const average = total / NG;
  const { value: replicated, counts } = minMaxReplicaShare(loads, P);
  // Pigeonhole over single-replica experts.
  const sorted = Float64Array.from(loads).sort().reverse();
  const smallest = new Float64Array(E + 1); // smallest[q] = sum of the q smallest loads
  for (let q = 1; q <= E; q++) smallest[q] = smallest[q - 1] + sorted[E - q];
  const R = P - E;
  let pigeonhole = 0;
  for (let j = 0; R + j * NG + 1 <= E; j++) {
    let s = 0;
    // 1-based positions R + j*NG - j + 1 .. R + j*NG + 1 -> 0-based R + j*NG - j .. R + j*NG
    for (let i = R + j * NG - j; i <= R + j * NG; i++) s += sorted[i];
    const q = S - j - 1 - 2 * R;
    if (q > 0) s += smallest[Math.min(q, E)];
    if (s > pigeonhole) pigeonhole = s;
  }
  return { bound: Math.max(average, replicated, pigeonhole), average, replicated, pigeonhole, replicaCounts: counts };
}

/** `maxLoadLowerBoundDetail(...).bound`. */
export function maxLoadLowerBound(loads: Float64Array, numGpus: number, slotsPerGpu: number): number {
  return maxLoadLowerBoundDetail(loads, numGpus, slotsPerGpu).bound;
}

/**
 * min over replica counts (c[e] >= 1, sum c <= numSlots) of max_e loads[e] / c[e], and the counts:
 * start at one replica each, give each extra slot to the expert with the largest load / count
 * (binary max-heap; ties to the lower expert id). O(E + (P - E) log E).
 */
export function minMaxReplicaShare(loads: Float64Array, numSlots: number): { value: number; counts: Int32Array } {
  const E = loads.length;
  const counts = new Int32Array(E).fill(1);
  if (E === 0) return { value: 0, counts };
  const heap = new Int32Array(E);
  for (let e = 0; e < E; e++) heap[e] = e;
  const key = (e: number): number => loads[e] / counts[e];
  const above = (a: number, b: number): boolean => {
    const ka = key(a);
    const kb = key(b);
    return ka > kb || (ka === kb && a < b);
  };
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      if (l >= E) return;
      let c = l;
      if (l + 1 < E && above(heap[l + 1], heap[l])) c = l + 1;
      if (!above(heap[c], heap[i])) return;
      const t = heap[c];
      heap[c] = heap[i];
      heap[i] = t;
      i = c;
    }
  };
  for (let i = (E >> 1) - 1; i >= 0; i--) down(i);
  for (let extra = numSlots - E; extra > 0; extra--) {
    if (loads[heap[0]] === 0) break; // every share is already 0
    counts[heap[0]]++;
    down(0);
  }
  return { value: key(heap[0]), counts };
}

/** Relative gap (achieved - bound) / bound; 0 when both are 0, Infinity when only the bound is 0. */
export function maxLoadGap(achieved: number, bound: number): number {
  if (bound > 0) return Math.max(0, (achieved - bound) / bound);
  return achieved > 0 ? Infinity : 0;
}
