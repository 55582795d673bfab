/**
 * Matching the generator's expert marginals to their targets: the target shares of a layer, the
 * analytic fit of the offsets (Rosen's approximation of inclusion probabilities), the distance of
 * observed counts to the targets, and the repair that moves surplus (token, expert) pairs to
 * experts short of their target (src/generator.ts).
 */
import { InputError } from '../errors.js';
import type { Rng } from '../rng.js';
import type { Dims, LayerBuffers } from './sampler.js';

export interface RepairScratch {
  /** [E] target counts. */
  target: Int32Array;
  /** [E] observed - target. */
  diff: Int32Array;
  frac: Float64Array;
  order: Int32Array;
  /** Experts below their target (first `n` entries used). */
  deficit: Int32Array;
  /** [G] stamp of the (token, slot) whose other experts use group g. */
  gmark: Int32Array;
  /** [E] stamp of the token holding expert e. */
  inTok: Int32Array;
}

/**
 * [E] integer counts summing to `total`, proportional to shares q (largest remainders, ties to the
 * lower id).
 */
function roundShares(q: Float64Array, total: number, target: Int32Array, frac: Float64Array, order: Int32Array): void {
  const E = q.length;
  let assigned = 0;
  for (let e = 0; e < E; e++) {
    const x = q[e] * total;
    target[e] = Math.floor(x);
    frac[e] = x - target[e];
    assigned += target[e];
    order[e] = e;
  }
  let left = total - assigned;
  if (left <= 0) return;
  const sorted = Array.from(order).sort((x, y) => frac[y] - frac[x] || x - y);
  for (let i = 0; i < sorted.length && left > 0; i++, left--) target[sorted[i]]++;
}

/**
 * Move surplus (token, expert) pairs of one layer to experts below their target so the layer's
 * counts equal round(q * T * k). Tokens are visited from a random start in order; in a token, a
 * slot holding a surplus expert e takes an expert f short of its target, not already in the
 * token, and (group-limited models) keeping the token within topKGroups groups, drawn with
 * probability proportional to `tilt[topic][f]^strength * shortfall(f)`. Fixes `buf.observed`.
 * Cost O(T k + moves * |short experts|); moves are about TVD * T * k.
 */
export function repairMarginals(
  out: Uint16Array,
  q: Float64Array,
  topic: Uint16Array,
  tiltPow: Float64Array,
  dims: Dims,
  buf: LayerBuffers,
  rep: RepairScratch,
  rng: Rng,
): void {
  const { T, E, k, grouped, groupSize, topKGroups } = dims;
  const { target, diff, deficit, gmark, inTok } = rep;
  const observed = buf.observed;
  roundShares(q, T * k, target, rep.frac, rep.order);
  let surplus = 0;
  let nd = 0;
  for (let e = 0; e < E; e++) {
    diff[e] = observed[e] - target[e];
    if (diff[e] > 0) surplus += diff[e];
    else if (diff[e] < 0) deficit[nd++] = e;
  }
  if (surplus === 0) return;
  gmark.fill(-1);
  inTok.fill(-1);
  let mark = 0;
  const start = rng.int(T);
  for (let n = 0; n < T && surplus > 0; n++) {
    const t = (start + n) % T;
    const row = t * k;
    const zb = topic[t] * E;
    let marked = false;
    for (let j = 0; j < k && surplus > 0; j++) {
      const e = out[row + j];
      if (diff[e] <= 0) continue;
      if (!marked) {
        for (let i = 0; i < k; i++) inTok[out[row + i]] = t;
        marked = true;
      }
      let used = 0;
      if (grouped) {
        mark++;
        for (let i = 0; i < k; i++) {
          if (i === j) continue;
          const g = (out[row + i] / groupSize) | 0;
          if (gmark[g] !== mark) {
            gmark[g] = mark;
            used++;
          }
        }
      }
      let sum = 0;
      for (let d = 0; d < nd; d++) {
        const f = deficit[d];
        if (inTok[f] === t || (grouped && used >= topKGroups && gmark[(f / groupSize) | 0] !== mark)) continue;
        sum += tiltPow[zb + f] * -diff[f];
      }
      if (!(sum > 0)) continue;
      let u = rng.next() * sum;
      let pick = -1;
      for (let d = 0; d < nd; d++) {
        const f = deficit[d];
        if (inTok[f] === t || (grouped && used >= topKGroups && gmark[(f / groupSize) | 0] !== mark)) continue;
        pick = d;
        u -= tiltPow[zb + f] * -diff[f];
        if (u < 0) break;
      }
      const f = deficit[pick];
      out[row + j] = f;
      inTok[e] = -1;
      inTok[f] = t;
      diff[e]--;
      diff[f]++;
      observed[e]--;
      observed[f]++;
      surplus--;
      if (diff[f] === 0) deficit[pick] = deficit[--nd];
    }
  }
}

/**
 * Rosen's successive-sampling approximation of the inclusion probabilities when k items are drawn
 * without replacement with probability proportional to p, each item first admitted with
 * probability `admit[i]` (1 when null): pi_i = admit_i (1 - exp(-lambda p_i)) with sum pi = k.
 * Writes pi into `pi[off..off+n)` (p read from `p[off..off+n)`) and returns lambda. Newton on a
 * concave increasing function, from `lambda0` (a warm start) or from the left, where it converges
 * monotonically; when k is (nearly) all the admitted mass, lambda stops at a large value and every
 * admitted item gets pi ~ admit.
 */
export function rosenInclusion(
  p: Float64Array,
  off: number,
  n: number,
  k: number,
  admit: Float64Array | null,
  pi: Float64Array,
  lambda0 = 0,
): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += (admit ? admit[i] : 1) * p[off + i];
  if (k === 1 && admit === null) {
    // One draw: the inclusion probability is exactly the normalised weight.
    for (let i = 0; i < n; i++) pi[off + i] = sum > 0 ? p[off + i] / sum : 1 / n;
    return 1;
  }
  let lambda = lambda0 > 0 ? lambda0 : sum > 0 ? k / sum : 0;
  for (let iter = 0; iter < 60 && sum > 0; iter++) {
    let f = -k;
    let df = 0;
    for (let i = 0; i < n; i++) {
      const ad = admit ? admit[i] : 1;
      const x = Math.exp(-lambda * p[off + i]);
      f += ad * (1 - x);
      df += ad * p[off + i] * x;
    }
    if (Math.abs(f) <= 1e-12 * k || df <= 0) break;
    const step = f / df;
    lambda -= step;
    // A warm start right of the root can overshoot to the left of zero: restart from the left.
    if (!(lambda > 0)) lambda = k / sum;
    else if (Math.abs(step) <= 1e-10 * lambda) break;
  }
  for (let i = 0; i < n; i++) pi[off + i] = (admit ? admit[i] : 1) * (1 - Math.exp(-lambda * p[off + i]));
  return lambda;
}

/** [E] target shares of layer l (sum 1), each capped at 1/k (an expert cannot be in a token twice). */
export function targetShares(row: ArrayLike<number>, E: number, k: number, where: string): Float64Array {
  const q = new Float64Array(E);
  let sum = 0;
  for (let e = 0; e < E; e++) {
    const v = row[e];
    if (!(v >= 0) || !Number.isFinite(v)) throw new InputError(`${where}[${e}]: count must be a finite non-negative number, got ${v}`);
    q[e] = v;
    sum += v;
  }
  if (!(sum > 0)) throw new InputError(`${where}: all counts are zero`);
  for (let e = 0; e < E; e++) q[e] /= sum;
  // Water-fill: shares above 1/k are infeasible for k distinct experts per token.
  const cap = 1 / k;
  for (let iter = 0; iter < E; iter++) {
    let excess = 0;
    let freeMass = 0;
    for (let e = 0; e < E; e++) {
      if (q[e] > cap) {
        excess += q[e] - cap;
        q[e] = cap;
      } else if (q[e] < cap) freeMass += q[e];
    }
    if (excess <= 1e-15 || freeMass <= 0) break;
    for (let e = 0; e < E; e++) if (q[e] < cap) q[e] += (excess * q[e]) / freeMass;
  }
  return q;
}

/** Total variation distance between a count vector (normalised here) and shares q (sum 1). */
export function tvdToShares(observed: Float64Array, q: Float64Array): number {
  let sum = 0;
  for (let e = 0; e < q.length; e++) sum += observed[e];
  if (sum === 0) return 1;
  let d = 0;
  for (let e = 0; e < q.length; e++) d += Math.abs(observed[e] / sum - q[e]);
  return d / 2;
}
