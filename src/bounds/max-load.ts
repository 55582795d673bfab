/**
 * Lower bounds on the largest GPU load of any placement of ONE MoE layer (counting arguments on the
 * per-expert loads; no token sets needed), and the gap of a plan to them.
 *
 * Loads are weighted (token, expert) pairs, as in the cost model.
 */
import { InfeasibleError, InputError } from '../errors.js';

/** The parts of `maxLoadLowerBound`, each a valid bound on its own. */
export interface MaxLoadBound {
  /** max of the four below. */
  bound: number;
  /** total load / NG. */
  average: number;
  /** min over replica counts of max_e load[e] / cnt[e] (greedy water-filling). */
  replicated: number;
  /** best pigeonhole bound over the experts that cannot all be replicated (0 if none applies). */
  pigeonhole: number;
  /** two slots per GPU: the splittable two-per-GPU weighting bound (`pairingBound`; 0 otherwise). */
  pairing: number;
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
 * 4. `pairing` (S = 2): `pairingBound`. (With S = 1 `replicated` is already the optimum of that
 *    relaxation: every GPU serves one piece, so max load >= max_e w[e] / c[e].)
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
  const lo = Math.max(average, replicated, pigeonhole);
  const pairing = S === 2 ? pairingBound(loads, NG, lo) : 0;
  return { bound: Math.max(lo, pairing), average, replicated, pigeonhole, pairing, replicaCounts: counts };
}

/** Thresholds theta of the weightings `pairingBound` tries (each > 1/2). */
export const PAIRING_THETAS: readonly number[] = Array.from({ length: 19 }, (_, i) => 0.525 + 0.025 * i);
/** Weights a of a small piece that `pairingBound` tries (each in [0, 1/2]). */
export const PAIRING_SMALL: readonly number[] = [0.1, 0.15, 0.2, 0.25, 0.3, 1 / 3, 0.4, 0.45];
/** Halvings of the pattern search of `pairingBound` around the best grid weighting. */
const PAIRING_REFINE_STEPS = 5;
/** Best grid weightings the pattern search of `pairingBound` starts from. */
const PAIRING_STARTS = 8;
/** Loads (in units of T) above which `splitWeight` uses its linear lower bound. */
const SPLIT_ENUMERATION_LIMIT = 16;

/**
 * Least total weight of a load x >= 0 (in units of the max load T) split into pieces of size in
 * [0, 1], at least one piece, when a piece y weighs u(y) = a (y <= 1 - theta), 1/2 (1 - theta < y
 * < theta) or 1 - a (y >= theta); `pairingBound`'s v(x), or a lower bound on it.
 *
 * With s small, m medium and b big pieces, x <= s (1 - theta) + m theta + b (a medium piece is
 * < theta), so v(x) >= min a s + m / 2 + (1 - a) b over integers s, m, b >= 0 with s + m + b >= 1
 * and that capacity; enumerated over b and m for x <= SPLIT_ENUMERATION_LIMIT (s follows), and
 * for larger x the linear relaxation x * min(a / (1 - theta), 1 / (2 theta), 1 - a) (one per unit
 * of capacity at the cheapest rate), which is below the integer minimum.
 */
export function splitWeight(x: number, theta: number, a: number): number {
  if (x <= 0) return Math.min(a, 0.5, 1 - a);
  return x <= 1 ? lightSplit(x, theta, a) : heavySplit(x, theta, a);
}

// splitWeight in two small functions, which V8 inlines where pairingWeight calls them (a call it
// does not inline returns its float boxed: millions of allocations a bound).

/** `splitWeight` for 0 < x <= 1. */
function lightSplit(x: number, theta: number, a: number): number {
  const small = 1 - theta;
  // The enumeration of heavySplit for x <= 1 (b <= 1, m <= 2): small pieces only; one medium
  // (plus small ones past theta); two mediums; one big.
  const smalls = a * Math.ceil(x / small - 1e-12);
  const medium = x < theta ? 0.5 : Math.min(1, 0.5 + a * Math.ceil((x - theta) / small - 1e-12));
  return Math.min(smalls, medium, 1 - a);
}

/** `splitWeight` for x > 1. */
function heavySplit(x: number, theta: number, a: number): number {
  const small = 1 - theta;
  if (x > SPLIT_ENUMERATION_LIMIT) return x * Math.min(a / small, 1 / (2 * theta), 1 - a);
  let best = Infinity;
  const maxB = Math.ceil(x);
  for (let b = maxB; b >= 0; b--) {
    const r = x - b;
    const maxM = r > 0 ? Math.ceil(r / theta) : 0;
    const bigs = (1 - a) * b;
    for (let m = 0; m <= maxM; m++) {
      // The rest of the row weighs at least 0.5 m + (1 - a) b, in floating point too (the
      // rounded sums are monotone): none of it goes below `best`.
      if (0.5 * m + bigs >= best) break;
      const left = r - m * theta;
      let sm = left > 0 ? Math.ceil(left / small - 1e-12) : 0;
      if (b + m + sm === 0) sm = 1;
      const w = a * sm + 0.5 * m + bigs;
      if (w < best) best = w;
    }
  }
  return best;
}

/**
 * Lower bound on the largest GPU load when every GPU holds at most two slots (S = 2), whatever
 * the replica counts and the dispatch table (each expert's load may be split in any way over its
 * replicas). Returns the largest T it proves infeasible (0 when it proves nothing above `from`,
 * a value already known to be a bound).
 *
 * Proof. Take any placement with largest GPU load <= T and any dispatch. A replica serves a piece
 * of its expert's load (the pieces of e sum to w[e]: every (token, e) pair is served by one
 * replica), every piece is <= T (it lands on one GPU), and a GPU holds at most two pieces. In units
 * of T weigh a piece y by u(y) = a for y <= 1 - theta, 1/2 for 1 - theta < y < theta, 1 - a for
 * y >= theta (1/2 < theta < 1, 0 <= a <= 1/2). Two pieces on one GPU have y1 + y2 <= 1, so if one
 * is >= theta the other is <= 1 - theta (weights 1 - a + a = 1), else both are < theta and their
 * weights sum to <= 1/2 + 1/2; one piece weighs <= 1 - a <= 1. So the weights of all pieces sum to
 * <= NG. Grouped by expert, e's pieces weigh >= v(w[e] / T) (`splitWeight`, the least weight of any
 * split of w[e] / T into pieces <= 1; at least a, as every piece weighs >= a, and exactly a up to
 * w[e] <= (1 - theta) T: one small piece). Hence sum_e v(w[e] / T) <= NG for every T >= the
 * optimum: a T with sum_e v(w[e] / T) > NG (with a margin for rounding) is below the optimum, and
 * the T returned has been checked to be one, for one weighting (theta, a).
 *
 * Search. For a fixed weighting, v is non-decreasing in its argument (shrinking pieces never
 * raises their weights), so the sum is non-increasing in T and the largest T that fails,
 * T*(theta, a), is found by bisection (to 1e-9 relative). The bound is the largest T* over the
 * weightings tried: the grid PAIRING_THETAS x PAIRING_SMALL, then a pattern search from the
 * PAIRING_STARTS grid weightings with the largest sums at the frontier (the least T known not to
 * fail), climbing that sum. A weighting is bisected only when it fails where the best one so far
 * does not, so most cost one sum (`pairingWeight`, mostly runs of equal weight): ~650 sums a
 * layer for DeepSeek-V3 at EP144 (256 experts), against ~5,500 sums of every expert when every
 * bisection step tried the whole grid and a pattern search (58 layers: 1.15 s -> 0.04 s). Against
 * that search, on 294 instances (V3 counts at EP144 and EP160, random skewed loads) the bound is
 * higher on 70 and lower on 2 (by at most 0.06%).
 * (Two experts of load in (T/2, T] cannot share a GPU unsplit; a = 1/3, theta -> 1/2 gives the
 * "three such experts need two GPUs" count; large theta charges an expert near T for the light
 * piece its GPU must pair it with.)
 */
export function pairingBound(loads: Float64Array, numGpus: number, from = 0): number {
  const E = loads.length;
  if (E === 0) return 0;
  let total = 0;
  for (let e = 0; e < E; e++) total += loads[e];
  if (!(total > 0)) return 0;
  const limit = numGpus * (1 + 1e-12) + 1e-9;
  const asc = Float64Array.from(loads).sort();
  // The best weighting so far fails at br[0] = lo (a proven bound) and not at br[1] = hi (0: none
  // fails yet). A weighting raises the bound when it fails at the frontier: hi, or lo while none
  // has failed. (Plain loops and locals, no closures or arrays made per step: V8 runs these
  // loops well from their first iterations, before they are optimized.)
  const br = Float64Array.of(from > 0 ? from : total / numGpus, 0);
  const nt = PAIRING_THETAS.length;
  const ns = PAIRING_SMALL.length;
  for (let i = 0; i < nt; i++) {
    for (let j = 0; j < ns; j++) {
      const th = PAIRING_THETAS[i];
      const sa = PAIRING_SMALL[j];
      const at = frontier(br);
      if (pairingWeight(asc, at, th, sa) > limit) bracketTStar(asc, limit, th, sa, at, br);
    }
  }
  // Starts: the grid weightings with the largest sums at the frontier, by sum descending.
  const starts = new Float64Array(3 * PAIRING_STARTS).fill(-Infinity);
  for (let i = 0; i < nt; i++) {
    for (let j = 0; j < ns; j++) {
      const th = PAIRING_THETAS[i];
      const sa = PAIRING_SMALL[j];
      const w = pairingWeight(asc, frontier(br), th, sa);
      let at = PAIRING_STARTS;
      while (at > 0 && starts[3 * (at - 1)] < w) {
        if (at < PAIRING_STARTS) starts.copyWithin(3 * at, 3 * (at - 1), 3 * at);
        at--;
      }
      if (at < PAIRING_STARTS) {
        starts[3 * at] = w;
        starts[3 * at + 1] = th;
        starts[3 * at + 2] = sa;
      }
    }
  }
  // Pattern search from each start, climbing the sum at the frontier; a weighting that fails there
  // raises the bound (and moves the frontier, where the climb goes on).
  for (let s = 0; s < PAIRING_STARTS; s++) {
    let best = starts[3 * s];
    let theta = starts[3 * s + 1];
    let a = starts[3 * s + 2];
    for (let dt = 0.0125, da = 0.025, halvings = 0; halvings < PAIRING_REFINE_STEPS; ) {
      let moved = false;
      // The four neighbours of the point at the start of the round, in this order.
      const t0 = theta;
      const a0 = a;
      for (let dir = 0; dir < 4; dir++) {
        const t2 = dir === 0 ? t0 + dt : dir === 1 ? t0 - dt : t0;
        const a2 = dir === 2 ? a0 + da : dir === 3 ? a0 - da : a0;
        if (!(t2 > 0.5 && t2 < 1 && a2 >= 0 && a2 <= 0.5)) continue;
        let w = pairingWeight(asc, frontier(br), t2, a2);
        if (w > limit) {
          bracketTStar(asc, limit, t2, a2, frontier(br), br);
          w = pairingWeight(asc, br[1], t2, a2);
          best = -Infinity; // the frontier moved: compare at the new one
        }
        if (w > best) {
          best = w;
          theta = t2;
          a = a2;
          moved = true;
        }
      }
      if (!moved) {
        dt /= 2;
        da /= 2;
        halvings++;
      }
    }
  }
  return br[1] > 0 ? br[0] : 0;
}

/** The least T known not to fail: br[1], or br[0] while no weighting has failed (see pairingBound). */
function frontier(br: Float64Array): number {
  return br[1] > 0 ? br[1] : br[0];
}

/**
 * The bracket of T*(theta, a) from `at`, where (theta, a) fails: br[0] := the largest T found to
 * fail (bisection to 1e-9 relative), br[1] := a T above it that does not.
 * (Module functions, not closures of pairingBound: V8 recompiles closures made anew per call.)
 */
function bracketTStar(asc: Float64Array, limit: number, theta: number, a: number, at: number, br: Float64Array): void {
  let lo = at;
  let hi = lo * 1.0625;
  // It stops failing for large T, where every expert is one small piece: a E <= E / 2 <= NG.
  for (let grow = 0; grow < 64 && pairingWeight(asc, hi, theta, a) > limit; grow++) {
    lo = hi;
    hi *= 2;
  }
  for (let it = 0; it < 40 && hi - lo > 1e-9 * hi; it++) {
    const mid = 0.5 * (lo + hi);
    if (pairingWeight(asc, mid, theta, a) > limit) lo = mid;
    else hi = mid;
  }
  br[0] = lo;
  br[1] = hi;
}

/**
 * sum_e v(w[e] / T) for the loads `asc` (ascending) under the weighting (theta, a) of
 * `pairingBound`, or a lower bound on it. The experts of load <= (1 - theta) T weigh a each. Up to
 * load T, v takes a few values (a step function of the load), so those experts go in runs of one
 * value, found by galloping: a run from e counts v(w[e] / T) for each of its experts, at most the
 * v of each (v is non-decreasing and splitWeight below it), so the sum stays a lower bound. The
 * experts above T (pieces of several kinds, costlier to weigh) are weighed one by one.
 */
function pairingWeight(asc: Float64Array, T: number, theta: number, a: number): number {
  const E = asc.length;
  const n = countAtMost(asc, (1 - theta) * T);
  const light = Math.max(n, countAtMost(asc, T));
  let sum = n * a;
  // (T > 0: a load in ((1 - theta) T, T] is in (0, 1] in units of T, one above T at least 1.)
  for (let e = n; e < light; ) {
    const v = lightSplit(asc[e] / T, theta, a);
    // The run is e..last: gallop while the weight stays v, then bisect the last step.
    let last = e;
    let step = 1;
    while (last + step < light && lightSplit(asc[last + step] / T, theta, a) <= v) {
      last += step;
      step *= 2;
    }
    for (let out = Math.min(last + step, light); out - last > 1; ) {
      const mid = (last + out) >>> 1;
      if (lightSplit(asc[mid] / T, theta, a) <= v) last = mid;
      else out = mid;
    }
    sum += (last - e + 1) * v;
    e = last + 1;
  }
  for (let e = light; e < E; e++) {
    const x = asc[e] / T;
    sum += x <= 1 ? lightSplit(x, theta, a) : heavySplit(x, theta, a);
  }
  return sum;
}

/** The number of values <= x in `asc` (ascending). */
function countAtMost(asc: Float64Array, x: number): number {
  let n = 0;
  for (let hi = asc.length; n < hi; ) {
    const mid = (n + hi) >>> 1;
    if (asc[mid] <= x) n = mid + 1;
    else hi = mid;
  }
  return n;
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
