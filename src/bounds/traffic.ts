/**
 * `trafficLowerBound`: a valid lower bound on the inter-node bytes of every placement of one layer,
 * for any size, from a node-level model: its LP relaxation, the MIP's dual bound, or a Lagrangian
 * relaxation over every token set; on at most a budget of token sets.
 */
import { LpModel, solveLp } from '../lp/index.js';
import type { LpBackend, LpStatus } from '../lp/index.js';
import type { Shape } from '../types.js';
import { loadsOfSets } from '../workload/tokens.js';
import { coverageTrafficBound } from './coverage.js';
import { capTolerance, checkInstance, interOfNodes, nodeSets, type NodeSets, type TrafficBound, type TrafficInstance } from './instance.js';

export interface TrafficBoundOptions {
  /**
   * `auto` (default): `lp` when the LP with every token set fits in `maxNonzeros`, else
   * `lagrangian`. `lp`: LP relaxation (heaviest sets only, if too big). `mip`: the node-level MIP;
   * its dual bound is used. `lagrangian`: every token set, the "one remote node at least" relaxation
   * solved by subgradient ascent (normal mode; low-latency always uses `lp`, which is compact).
   * `coverage`: `coverageTrafficBound` (every token, no LP; the load cap is ignored).
   */
  method?: 'auto' | 'lp' | 'mip' | 'lagrangian' | 'coverage';
  /** Largest LP/MIP to build, in constraint-matrix nonzeros (default 100k); heavier sets are kept first. */
  maxNonzeros?: number;
  backend?: LpBackend;
  /** Limit per LP/MIP solve, and the budget of the subgradient loop (default 5 s there). */
  timeLimitSeconds?: number;
  /** Subgradient iterations of `lagrangian` (default 30). */
  iterations?: number;
}

/**
 * A valid lower bound on the inter-node bytes (normal or low-latency mode) of every placement of
 * the instance, from a node-level model. z[e][m] in [0,1] stands for "e has a replica on node m";
 * a = token sets merged by (source node n_a, expert set), weight w_a; B = dispatch + combine bytes.
 *
 * `one` replica: sum_m z[e][m] = 1, sum_e z[e][m] <= G*S, and with a cap,
 * sum_e load[e] z[e][m] <= G*cap. normal: y[a][m] >= z[e][m] (e in a, m != n_a), objective
 * sum w_a B y[a][m]; low-latency: objective sum_a w_a B sum_{e in a} (1 - z[e][n_a]).
 * Validity: any one-replica placement gives a 0/1 point (z = node of each expert, y = node touched)
 * of the same objective, and node-level capacity / load rows are sums of the GPU-level ones.
 *
 * `any` replicas: sum_m z[e][m] >= 1, sum_e z[e][m] <= G*S. normal: u[a] >= 1 - z[e][n_a] for e in a,
 * objective sum w_a B u[a]; low-latency: as above. Validity: a token's expert without a replica on
 * its own node costs an RDMA message under any dispatch, and a token with such an expert touches
 * at least one remote node; the load cap is dropped (a relaxation).
 *
 * Which placements it bounds: with `replicas: 'one'` (or P == E) only one-replica placements; with
 * the default `any`, every placement (any replica counts, any dispatch table) - use that one for a
 * plan with redundant experts.
 *
 * The LP optimum (or the MIP dual bound, valid even after a time-out) bounds the model's optimum
 * from below; it is reduced by 1e-7 relative for solver tolerances. `lagrangian` (normal mode) uses
 * every set with the weaker "at least one remote node" rows and needs no big model (see
 * `lagrangianBound`); `auto` picks it when the LP would exceed the budget. If the model would exceed
 * `maxNonzeros`, only the heaviest token sets are kept: costs are non-negative sums over sets, so
 * the optimum over fewer sets is still a lower bound. `exact` holds only for the MIP method solved
 * to optimality with every set, one replica and no cap (then GPU slots within a node are
 * interchangeable and the node-level optimum is reachable); the bound is then the optimum's value.
 */
export async function trafficLowerBound(inst: TrafficInstance, options: TrafficBoundOptions = {}): Promise<TrafficBound> {
  checkInstance(inst);
  if (options.method === 'coverage') return coverageTrafficBound(inst);
  const { numExperts: E, shape, mode } = inst;
  const { gpusPerNode: G, slotsPerGpu: S, nodes: N } = shape;
  const one = inst.replicas === 'one' || E === shape.numSlots;
  const bytes = inst.model.dispatchBytesPerToken + inst.model.combineBytesPerToken;
  const cap = inst.maxLoadCap ?? Infinity;
  const sets = nodeSets(inst.tokens, shape);
  const { k } = sets;
  if (N === 1 || sets.n === 0) return { bound: 0, exact: true, method: 'trivial', status: 'optimal', setsUsed: sets.n, setsTotal: sets.n };
  // Heaviest sets first, within the nonzero budget.
  const budget = options.maxNonzeros ?? 100_000;
  const base = E * N * 2 + (one && Number.isFinite(cap) ? E * N : 0);
  const perSet = mode === 'low-latency' ? 0 : one ? k * (N - 1) * 2 : k * 2 + 1;
  let method = options.method ?? 'auto';
  if (mode === 'low-latency' && method === 'lagrangian') method = 'lp';
  if (method === 'auto') method = base + perSet * sets.n <= budget ? 'lp' : 'lagrangian';
  if (method === 'lagrangian') return lagrangianBound(sets, E, shape, one, bytes, options);
  const orderSets = Int32Array.from({ length: sets.n }, (_, a) => a).sort((a, b) => sets.weight[b] - sets.weight[a] || a - b);
  let used = sets.n;
  if (perSet > 0 && base + perSet * sets.n > budget) used = Math.max(0, Math.floor((budget - base) / perSet));
  if (used === 0) return { bound: 0, exact: false, method: 'trivial', status: 'optimal', setsUsed: 0, setsTotal: sets.n };

  const lp = new LpModel('min');
  const integer = method === 'mip';
  const z = (e: number, m: number): number => e * N + m;
  for (let e = 0; e < E; e++) for (let m = 0; m < N; m++) lp.addVar(undefined, { ub: 1, integer });
  const ones = new Float64Array(Math.max(E, N)).fill(1);
  for (let e = 0; e < E; e++) lp.addConstraint(Int32Array.from({ length: N }, (_, m) => z(e, m)), ones.subarray(0, N), one ? { lb: 1, ub: 1 } : { lb: 1 });
  const load = loadsOfSets(inst.tokens, E);
  for (let m = 0; m < N; m++) {
    const idx = Int32Array.from({ length: E }, (_, e) => z(e, m));
    lp.addConstraint(idx, ones.subarray(0, E), { ub: G * S });
    if (one && Number.isFinite(cap)) lp.addConstraint(idx, load, { ub: G * (cap + capTolerance(cap)) });
  }
  if (mode === 'low-latency') {
    let offset = 0;
    const cost = new Float64Array(E * N);
    for (let t = 0; t < used; t++) {
      const a = orderSets[t];
      const w = sets.weight[a] * bytes;
      offset += w * k;
      for (let j = 0; j < k; j++) cost[z(sets.experts[a * k + j], sets.node[a])] -= w;
    }
    lp.objectiveOffset = offset;
    for (let j = 0; j < E * N; j++) if (cost[j] !== 0) lp.setObjective(j, cost[j]);
  } else if (one) {
    for (let t = 0; t < used; t++) {
      const a = orderSets[t];
      for (let m = 0; m < N; m++) {
        if (m === sets.node[a]) continue;
        const y = lp.addVar(undefined, { ub: 1, obj: sets.weight[a] * bytes });
        for (let j = 0; j < k; j++) lp.addConstraint([[y, 1], [z(sets.experts[a * k + j], m), -1]], { lb: 0 });
      }
    }
  } else {
    for (let t = 0; t < used; t++) {
      const a = orderSets[t];
      const u = lp.addVar(undefined, { ub: 1, obj: sets.weight[a] * bytes });
      // u + z[e][n_a] >= 1
      for (let j = 0; j < k; j++) lp.addConstraint([[u, 1], [z(sets.experts[a * k + j], sets.node[a]), 1]], { lb: 1 });
    }
  }
  const r = await solveLp(lp, { backend: options.backend ?? 'highs', ...(options.timeLimitSeconds !== undefined ? { timeLimitSeconds: options.timeLimitSeconds } : {}) });
  const complete = used === sets.n;
  if (integer && r.status === 'optimal' && r.integral && r.feasible && one && !Number.isFinite(cap) && complete) {
    const nodeOfExpert = new Int32Array(E);
    for (let e = 0; e < E; e++) {
      let best = 0;
      for (let m = 1; m < N; m++) if (r.x[z(e, m)] > r.x[z(e, best)]) best = m;
      nodeOfExpert[e] = best;
    }
    return { bound: interOfNodes(sets, nodeOfExpert, N, bytes, mode), exact: true, method, status: r.status, setsUsed: used, setsTotal: sets.n };
  }
  let raw = NaN;
  if (r.bestBound !== undefined) raw = r.bestBound;
  else if (!integer && r.status === 'optimal') raw = r.objective;
  if (r.status === 'infeasible') {
    // The relaxation has no point only when no placement meets the cap: any bound is valid.
    return { bound: Infinity, exact: false, method, status: r.status, setsUsed: used, setsTotal: sets.n };
  }
  if (!Number.isFinite(raw)) return { bound: 0, exact: false, method: 'trivial', status: r.status, setsUsed: used, setsTotal: sets.n };
  const bound = Math.max(0, raw - 1e-7 * Math.abs(raw));
  return { bound, exact: false, method, status: r.status, setsUsed: used, setsTotal: sets.n };
}

/**
 * The `lagrangian` method of `trafficLowerBound` (normal mode, every token set).
 *
 * Relaxation: a set a whose experts are not all on its source node n_a touches at least one remote
 * node, under any dispatch, so with z[e][m] = [e has a replica on node m] and W_a = weight * bytes,
 *   inter >= sum_a W_a max_{e in a} (1 - z[e][n_a]).
 * For any mu_a in the simplex over a's experts the max is >= sum_e mu_ae (1 - z[e][n_a]), hence
 *   inter >= LB(mu) = sum_a W_a - max_{z in T} sum_{e,m} p[e][m] z[e][m],
 *   p[e][m] = sum over sets a with n_a = m containing e of W_a mu_ae,
 * with T the node-level polytope (one replica: sum_m z[e][m] = 1; any: sum_m z[e][m] >= 1, z <= 1;
 * both: sum_e z[e][m] <= G*S). The inner maximum is a small LP (E*N variables), solved to
 * optimality; its value is raised by 1e-7 relative for solver tolerances, so every iteration gives
 * a valid bound and the best one is kept. mu ascends along the subgradient (1 - z*[e][n_a])_e,
 * projected on the simplex, step 0.5 / sqrt(t + 1). With 2 nodes only one remote node exists, so
 * this is as strong as the LP relaxation of `lp` (with every set), at O(n k) per iteration.
 */
async function lagrangianBound(sets: NodeSets, E: number, shape: Shape, one: boolean, bytes: number, options: TrafficBoundOptions): Promise<TrafficBound> {
  const { n, k } = sets;
  const N = shape.nodes;
  const C = shape.gpusPerNode * shape.slotsPerGpu;
  const W = new Float64Array(n);
  let sumW = 0;
  for (let a = 0; a < n; a++) {
    W[a] = sets.weight[a] * bytes;
    sumW += W[a];
  }
  const mu = new Float64Array(n * k).fill(1 / k);
  const inner = new LpModel('max');
  for (let e = 0; e < E; e++) for (let m = 0; m < N; m++) inner.addVar(undefined, { ub: 1 });
  const ones = new Float64Array(Math.max(E, N)).fill(1);
  for (let e = 0; e < E; e++) inner.addConstraint(Int32Array.from({ length: N }, (_, m) => e * N + m), ones.subarray(0, N), one ? { lb: 1, ub: 1 } : { lb: 1 });
  for (let m = 0; m < N; m++) inner.addConstraint(Int32Array.from({ length: E }, (_, e) => e * N + m), ones.subarray(0, E), { ub: C });
  const p = new Float64Array(E * N);
  const u = new Float64Array(k);
  const scratch = new Float64Array(k);
  const iterations = options.iterations ?? 30;
  const budgetMs = (options.timeLimitSeconds ?? 5) * 1000;
  const t0 = performance.now();
  let best = 0;
  let status: LpStatus = 'optimal';
  for (let it = 0; it < iterations && (it === 0 || performance.now() - t0 < budgetMs); it++) {
    p.fill(0);
    for (let a = 0; a < n; a++) {
      const m = sets.node[a];
      for (let j = 0; j < k; j++) p[sets.experts[a * k + j] * N + m] += W[a] * mu[a * k + j];
    }
    for (let j = 0; j < E * N; j++) inner.setObjective(j, p[j]);
    const r = await solveLp(inner, { backend: options.backend ?? 'auto' });
    if (r.status !== 'optimal') {
      status = r.status;
      break;
    }
    const v = r.objective + 1e-7 * Math.max(1, Math.abs(r.objective));
    best = Math.max(best, sumW - v);
    // Subgradient step on every mu_a, then projection on the simplex.
    const step = 0.5 / Math.sqrt(it + 1);
    for (let a = 0; a < n; a++) {
      const m = sets.node[a];
      for (let j = 0; j < k; j++) u[j] = mu[a * k + j] + step * (1 - Math.min(1, Math.max(0, r.x[sets.experts[a * k + j] * N + m])));
      projectSimplex(u, k, scratch);
      for (let j = 0; j < k; j++) mu[a * k + j] = u[j];
    }
  }
  return { bound: best, exact: false, method: 'lagrangian', status, setsUsed: n, setsTotal: n };
}

/** Euclidean projection of u[0..k) onto the probability simplex, in place; `scratch` has >= k entries. */
function projectSimplex(u: Float64Array, k: number, scratch: Float64Array): void {
  // Sort a copy descending (insertion sort: k is the top-k, a handful).
  for (let i = 0; i < k; i++) {
    const v = u[i];
    let j = i;
    while (j > 0 && scratch[j - 1] < v) {
      scratch[j] = scratch[j - 1];
      j--;
    }
    scratch[j] = v;
  }
  let acc = 0;
  let theta = 0;
  for (let i = 0; i < k; i++) {
    acc += scratch[i];
    const t = (acc - 1) / (i + 1);
    if (scratch[i] - t > 0) theta = t;
  }
  for (let i = 0; i < k; i++) u[i] = Math.max(0, u[i] - theta);
}
