/**
 * `coverageTrafficBound`: a valid lower bound on the inter-node bytes of every placement of one
 * layer from every token in one or a few linear passes, no LP (the bound `plan` writes into every
 * plan fitted on a trace).
 */
import { InfeasibleError, InputError } from '../errors.js';
import type { TokenSets } from '../types.js';
import type { TrafficBound, TrafficInstance } from './instance.js';

export interface CoverageBoundOptions {
  /**
   * Normal mode: multiplier families tried (1..4, default 2), each one pass over the tokens: the
   * uniform one, then the reweightings theta = 1, 0.5, 2 in this order (see
   * `coverageTrafficBound`). Low-latency mode makes one pass whatever this says. (On the
   * DeepSeek-V2-Lite traces theta = 1 gives the best bound on every layer and shape tried.)
   */
  families?: number;
  /** Coordinate-descent rounds on the dual of the inner problem, per family (default 40). */
  rounds?: number;
}

const COVERAGE_THETAS = [1, 0.5, 2] as const;

/**
 * A valid lower bound on the inter-node bytes (dispatch + combine) of EVERY placement of the
 * instance - any replica counts and any dispatch table with `replicas: 'any'` (the default), one
 * replica per expert with `replicas: 'one'` or P == E - from every token, in O(n k) per pass and
 * without an LP. The load cap is ignored (a relaxation). Notation: B = dispatch + combine bytes per
 * message, token i has weight w_i, source node n_i and k listed experts e_ij; X_m = the experts
 * with a replica on node m (|X_m| <= C = G*S distinct experts; every expert in some X_m; disjoint
 * with one replica); z[e][m] = [e in X_m].
 *
 * Proof.
 * - low-latency: a pair (token i, expert e) with e outside X_{n_i} is served on another node under
 *   any dispatch, one RDMA message. So inter >= B (Pi - sum_{e,m} p[e][m] z[e][m]) with p[e][m] the
 *   weight of the pairs (token of node m, expert e) and Pi = sum p.
 * - normal: a token with a listed expert outside X_{n_i} touches at least one remote node under any
 *   dispatch, one RDMA message. For any mu_ij >= 0 with sum_j mu_ij <= 1 that indicator is
 *   >= sum_j mu_ij [e_ij not in X_{n_i}], so again inter >= B (Pi - sum p z) with now
 *   p[e][m] = sum of w_i mu_ij over tokens i of node m and listings e_ij = e, Pi = sum p.
 *   Families of mu tried, the best bound kept: uniform 1/k (= the low-latency bound / k), then
 *   mu_ij proportional to exp(-theta r[e_ij][n_i]), r = p - beta of the uniform family in units of
 *   the mean entry of p (theta = 1, 0.5, 2): weight moves to the experts a node is least likely to
 *   hold. (On DeepSeek-V2-Lite traces theta = 1 adds ~4%, about what 200 subgradient steps of the
 *   `lagrangian` method give.)
 * - In both, sum p z <= M(p) = max over z in [0,1]^{E x N} with sum_e z[e][m] <= C and
 *   sum_m z[e][m] >= 1 (`any`) or = 1 (`one`); by weak duality M(p) <= D(beta) for every beta >= 0:
 *     `one`: D = C sum_m beta_m + sum_e max_m (p[e][m] - beta_m);
 *     `any`: D = C sum_m beta_m + sum_e h_e, h_e = sum_m (p[e][m] - beta_m)^+ when some term is
 *            positive, else max_m (p[e][m] - beta_m) (the covering row's multiplier at its best).
 *   beta comes from coordinate descent on D, each beta_m set to its exact 1-D minimum (the
 *   (C+1)-th largest of p[e][m] - t_e over e, floored at 0; r_e = max over the other nodes of
 *   p[e][.] - beta, t_e = r_e for `one`, min(r_e, 0) for `any`). Whatever beta it stops at, D(beta)
 *   bounds M(p) from above, so the bound is valid even if the descent is not optimal (only weaker;
 *   on the DeepSeek-V2-Lite traces it ends within 0.5% of the LP value of M, on tiny random
 *   instances within a few %).
 * The result is lowered by 1e-9 * B * Pi for rounding. The reweighted mu are rounded down to
 * multiples of 2^-20 from integer relative weights, so with integer token weights every sum is
 * exact: the bound does not depend on the order of the tokens or of a token's experts, nor on
 * whether equal tokens were merged (a loaded and a streamed trace give the same plan).
 * Every token counts at most once (normal) or once per listed expert (low-latency), so with many
 * nodes, where a token touches several remote nodes, this bound is far below the optimum; it is a
 * certificate, not an estimate. Duplicate expert ids within a token are allowed (every step above
 * still holds). Throws InfeasibleError when E > P and InputError for token ids, sources or
 * weights out of range.
 */
export function coverageTrafficBound(inst: TrafficInstance, options: CoverageBoundOptions = {}): TrafficBound {
  const { tokens, numExperts: E, shape, mode } = inst;
  const { nodes: N, gpusPerNode: G, slotsPerGpu: S, numGpus: NG } = shape;
  if (E > shape.numSlots) throw new InfeasibleError(`${E} experts do not fit in ${shape.numSlots} slots`, { field: 'slotsPerGpu' });
  if (NG * S !== shape.numSlots || N * G !== NG) throw new InputError('inconsistent shape', { field: 'shape' });
  const { n, k, experts, source, weight } = tokens;
  if (experts.length < n * k || source.length < n || weight.length < n) {
    throw new InputError(`token sets: ${n} tokens x top-${k} need experts[${n * k}], source[${n}], weight[${n}]`, { field: 'tokens' });
  }
  checkCoverageTokens(tokens, E, NG);
  if (N === 1 || n === 0) return { bound: 0, exact: true, method: 'trivial', status: 'optimal', setsUsed: n, setsTotal: n };
  const one = inst.replicas === 'one' || E === shape.numSlots;
  const C = Math.min(G * S, E);
  const bytes = inst.model.dispatchBytesPerToken + inst.model.combineBytesPerToken;
  const rounds = options.rounds ?? 40;
  const families = Math.max(1, Math.min(1 + COVERAGE_THETAS.length, Math.floor(options.families ?? 2)));
  const nodeOf = new Int32Array(n);
  for (let i = 0; i < n; i++) nodeOf[i] = Math.floor(source[i] / G);
  const scratch = new DualScratch(E, N);
  const beta = new Float64Array(N);
  const p = new Float64Array(E * N);
  /** max(0, Pi - D(beta)) after the descent, in messages, lowered for rounding. */
  const boundOf = (): number => {
    let pi = 0;
    for (let q = 0; q < E * N; q++) pi += p[q];
    const d = coverageDual(p, E, N, C, one, beta, rounds, scratch);
    return Math.max(0, pi - d - 1e-9 * pi);
  };
  let best: number;
  if (mode === 'low-latency') {
    uniformPass(p, experts, weight, nodeOf, n, k, N, 1);
    best = boundOf();
  } else {
    uniformPass(p, experts, weight, nodeOf, n, k, N, 1 / k);
    best = boundOf();
    const p0 = p.slice();
    const beta0 = beta.slice();
    let mean = 0;
    for (let q = 0; q < E * N; q++) mean += p0[q];
    mean /= E * N;
    const g = new Float64Array(E * N);
    for (let f = 1; f < families && mean > 0; f++) {
      const theta = COVERAGE_THETAS[f - 1];
      // Relative weights as integers in [1, 2^40] (exact sums: the same for a token in any order).
      let top = -Infinity;
      for (let q = 0; q < E * N; q++) {
        g[q] = (-theta * (p0[q] - beta0[q % N])) / mean;
        if (g[q] > top) top = g[q];
      }
      for (let q = 0; q < E * N; q++) g[q] = Math.max(1, Math.round(2 ** 40 * Math.exp(Math.max(-40, g[q] - top))));
      reweightedPass(p, g, experts, weight, nodeOf, n, k, N);
      beta.set(beta0);
      best = Math.max(best, boundOf());
    }
  }
  return { bound: best * bytes, exact: false, method: 'coverage', status: 'optimal', setsUsed: n, setsTotal: n };
}

/** Source GPUs, weights and expert ids of `coverageTrafficBound`'s tokens in range (InputError). */
function checkCoverageTokens(tokens: TokenSets, E: number, NG: number): void {
  const { n, k, experts, source, weight } = tokens;
  let badSource = -1;
  let badWeight = -1;
  for (let i = 0; i < n; i++) {
    if (source[i] >= NG && badSource < 0) badSource = i;
    const w = weight[i];
    if (!(w >= 0 && w < Infinity) && badWeight < 0) badWeight = i;
  }
  if (badSource >= 0) throw new InputError(`token ${badSource} has source GPU ${source[badSource]}, cluster has ${NG}`, { field: `tokens.source[${badSource}]` });
  if (badWeight >= 0) throw new InputError(`token ${badWeight} has weight ${weight[badWeight]}`, { field: `tokens.weight[${badWeight}]` });
  // The OR of all ids bounds their maximum: the exact search runs only when it reaches E.
  let or = 0;
  let q0 = 0;
  if ((experts.byteOffset & 3) === 0) {
    const words = new Int32Array(experts.buffer, experts.byteOffset, (n * k) >>> 1);
    for (let i = 0; i < words.length; i++) or |= words[i];
    or = (or | (or >>> 16)) & 0xffff;
    q0 = words.length * 2;
  }
  for (let q = q0; q < n * k; q++) or |= experts[q];
  if (or >= E) {
    const q = experts.subarray(0, n * k).findIndex((e) => e >= E);
    if (q >= 0) throw new InputError(`token ${Math.floor(q / k)} uses expert ${experts[q]}, model has ${E}`, { field: `tokens.experts[${q}]` });
  }
}

/**
 * p[e*N + node] += weight for every listed (token, expert) pair, then p *= scale. Integer weights
 * (below 2^53 in total) sum exactly, so p is the same whatever the order of the tokens and
 * whether equal tokens were merged (`compressTokenSets`, the streamed index): plans made from a
 * loaded and from a streamed trace carry the same bound. (The loops over a token's experts are
 * unrolled by two: V8 runs them about 1.5x faster than the plain loop.)
 */
function uniformPass(p: Float64Array, experts: Uint16Array, weight: Float64Array, nodeOf: Int32Array, n: number, k: number, N: number, scale: number): void {
  p.fill(0);
  const k2 = k & ~1;
  for (let i = 0, at = 0; i < n; i++, at += k) {
    const m = nodeOf[i];
    const w = weight[i];
    let j = 0;
    for (; j < k2; j += 2) {
      p[experts[at + j] * N + m] += w;
      p[experts[at + j + 1] * N + m] += w;
    }
    if (j < k) p[experts[at + j] * N + m] += w;
  }
  if (scale !== 1) for (let q = 0; q < p.length; q++) p[q] *= scale;
}

/** mu of `reweightedPass` are multiples of 1 / MU_GRID. */
const MU_GRID = 2 ** 20;

/**
 * p[q] += weight * mu for every pair, q = e*N + node, mu = g[q] / (sum of g over the token's
 * pairs) rounded DOWN to a multiple of 2^-20 (so a token's mu still sum to <= 1). g holds integers:
 * the sums, mu and (for integer weights) the products and p are exact, hence independent of token
 * order and merging, as in `uniformPass` (unrolled the same way).
 */
function reweightedPass(p: Float64Array, g: Float64Array, experts: Uint16Array, weight: Float64Array, nodeOf: Int32Array, n: number, k: number, N: number): void {
  p.fill(0);
  const k2 = k & ~1;
  for (let i = 0, at = 0; i < n; i++, at += k) {
    const m = nodeOf[i];
    let s = 0;
    let j = 0;
    for (; j < k2; j += 2) s += g[experts[at + j] * N + m] + g[experts[at + j + 1] * N + m];
    if (j < k) s += g[experts[at + j] * N + m];
    const w = weight[i] / MU_GRID;
    const f = MU_GRID / s;
    for (j = 0; j < k2; j += 2) {
      const q0 = experts[at + j] * N + m;
      const q1 = experts[at + j + 1] * N + m;
      const a = Math.floor(g[q0] * f) * w;
      const b = Math.floor(g[q1] * f) * w;
      p[q0] += a;
      p[q1] += b;
    }
    if (j < k) {
      const q = experts[at + j] * N + m;
      p[q] += Math.floor(g[q] * f) * w;
    }
  }
}

/** Scratch arrays of `coverageDual`. */
class DualScratch {
  readonly v1: Float64Array;
  readonly v2: Float64Array;
  readonly a1: Int32Array;
  readonly d: Float64Array;
  constructor(E: number, N: number) {
    this.v1 = new Float64Array(E);
    this.v2 = new Float64Array(E);
    this.a1 = new Int32Array(E);
    this.d = new Float64Array(E + N);
  }
}

/**
 * D(beta) of `coverageTrafficBound` (an upper bound on M(p) for any beta >= 0) after at most
 * `rounds` rounds of exact coordinate descent from the given `beta` [N] (updated in place). Stops
 * when a round lowers D by less than 1e-12 relative. N >= 2. O(rounds N (E N + E log E)).
 */
function coverageDual(p: Float64Array, E: number, N: number, C: number, one: boolean, beta: Float64Array, rounds: number, s: DualScratch): number {
  const { v1, v2, a1 } = s;
  const d = s.d.subarray(0, E);
  const top2 = (): void => {
    for (let e = 0; e < E; e++) {
      let b1 = -Infinity;
      let b2 = -Infinity;
      let at = 0;
      for (let m = 0; m < N; m++) {
        const v = p[e * N + m] - beta[m];
        if (v > b1) {
          b2 = b1;
          b1 = v;
          at = m;
        } else if (v > b2) b2 = v;
      }
      v1[e] = b1;
      v2[e] = b2;
      a1[e] = at;
    }
  };
  const value = (): number => {
    let D = 0;
    for (let m = 0; m < N; m++) D += C * beta[m];
    for (let e = 0; e < E; e++) {
      let mx = -Infinity;
      let pos = 0;
      for (let m = 0; m < N; m++) {
        const v = p[e * N + m] - beta[m];
        if (v > mx) mx = v;
        if (v > 0) pos += v;
      }
      D += one || mx <= 0 ? mx : pos;
    }
    return D;
  };
  let prev = value();
  for (let r = 0; r < rounds; r++) {
    for (let m = 0; m < N; m++) {
      top2();
      if (C >= E) {
        beta[m] = 0;
        continue;
      }
      for (let e = 0; e < E; e++) {
        const rest = a1[e] === m ? v2[e] : v1[e];
        d[e] = p[e * N + m] - (one ? rest : rest > 0 ? 0 : rest);
      }
      d.sort();
      beta[m] = Math.max(0, d[E - 1 - C]);
    }
    const D = value();
    const done = D >= prev - 1e-12 * Math.abs(prev);
    prev = Math.min(prev, D);
    if (done) break;
  }
  return value();
}
