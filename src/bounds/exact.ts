/**
 * Exact optima of tiny one-layer traffic instances, the references the bounds and the search are
 * tested against.
 *
 * - `exactMinTraffic`: the least inter-node bytes (then intra-node bytes) over every placement, by
 *   branch and bound; scored with the evaluator of src/cost.ts.
 * - `minTrafficMip`: the same optimum (inter-node bytes, one replica per expert) as a MIP.
 */
import { LayerAccumulator } from '../cost.js';
import { InputError, SolverError } from '../errors.js';
import { LpModel, solveLp } from '../lp/index.js';
import type { LpBackend, LpStatus } from '../lp/index.js';
import { loadsOfSets } from '../workload/tokens.js';
import { capTolerance, checkInstance, interOfNodes, nodeSets, placementFromGpus, scorePlacement, type TrafficInstance, type TrafficScore } from './instance.js';

export interface ExactTrafficResult extends TrafficScore {
  /** [P] an optimal placement (slots of a GPU: its experts ascending, then -1). */
  phy2log: Int32Array;
  /** Complete placements scored (branch-and-bound leaves). */
  leaves: number;
}

export interface ExactTrafficOptions {
  /** Refuse instances whose search space exceeds this many placements (default 5e6). */
  maxLeaves?: number;
}

/**
 * The exact optimum of a tiny instance: over all placements allowed by `inst.replicas` whose
 * largest GPU load (default dispatch rule) is <= `maxLoadCap`, the least inter-node bytes, ties
 * broken by the least intra-node bytes. Returns null when no placement meets the cap. Meant for
 * E <= ~10 experts on a few GPUs (e.g. 2 nodes x 2 GPUs); larger spaces throw InputError.
 *
 * `one` replica: depth-first over experts (each to a GPU with a free slot), so slot order inside a
 * GPU is never enumerated; experts that occur in exactly the same token sets are interchangeable
 * and are kept in non-decreasing GPU order (symmetry breaking); a branch is cut when its load
 * exceeds the cap or when (inter bytes of the remote nodes touched so far, intra bytes of the
 * token sets already complete), both non-decreasing along a branch, is no better than the best.
 * Each improving leaf is re-scored with the evaluator of src/cost.ts and must agree.
 * `any` replicas: depth-first over GPUs, each taking a set of <= S distinct experts, every expert
 * covered; every leaf is scored with the evaluator (no traffic pruning: with replicas the dispatch
 * of a partial placement is not known).
 */
export function exactMinTraffic(inst: TrafficInstance, options: ExactTrafficOptions = {}): ExactTrafficResult | null {
  checkInstance(inst);
  const { numExperts: E, shape } = inst;
  const maxLeaves = options.maxLeaves ?? 5e6;
  const one = inst.replicas === 'one' || E === shape.numSlots;
  return one ? exactOne(inst, maxLeaves) : exactAny(inst, maxLeaves);
}

function lexLess(a1: number, a2: number, b1: number, b2: number, tol: number): boolean {
  return a1 < b1 - tol || (a1 <= b1 + tol && a2 < b2 - tol);
}

/** Number of ways to put E labelled experts on NG GPUs with at most S per GPU (float). */
export function countAssignments(E: number, NG: number, S: number): number {
  // ways[c]: ways to place c chosen experts on the GPUs seen so far; a GPU taking i of them
  // multiplies by C(c + i, i) (which of the c + i experts are its own).
  let ways = new Float64Array(E + 1);
  ways[0] = 1;
  for (let g = 0; g < NG; g++) {
    const next = new Float64Array(E + 1);
    for (let c = 0; c <= E; c++) {
      if (ways[c] === 0) continue;
      let binom = 1;
      for (let i = 0; i <= S && c + i <= E; i++) {
        if (i > 0) binom = (binom * (c + i)) / i;
        next[c + i] += ways[c] * binom;
      }
    }
    ways = next;
  }
  return ways[E];
}

function exactOne(inst: TrafficInstance, maxLeaves: number): ExactTrafficResult | null {
  const { tokens, numExperts: E, shape, mode } = inst;
  const { numGpus: NG, gpusPerNode: G, slotsPerGpu: S, nodes: N } = shape;
  const bytes = inst.model.dispatchBytesPerToken + inst.model.combineBytesPerToken;
  const cap = inst.maxLoadCap ?? Infinity;
  const capTol = capTolerance(cap);
  const { n, k } = tokens;
  const space = countAssignments(E, NG, S);
  if (space > maxLeaves) {
    throw new InputError(`exactMinTraffic: ${space.toExponential(2)} assignments of ${E} experts to ${NG} GPUs x ${S} slots exceed maxLeaves ${maxLeaves}; use minTrafficMip or trafficLowerBound`, { field: 'numExperts' });
  }
  const load = loadsOfSets(tokens, E);
  // Expert -> token sets (CSR).
  const setStart = new Int32Array(E + 1);
  for (let i = 0; i < n * k; i++) setStart[tokens.experts[i] + 1]++;
  for (let e = 0; e < E; e++) setStart[e + 1] += setStart[e];
  const setList = new Int32Array(n * k);
  const fillPos = setStart.slice(0, E);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) setList[fillPos[tokens.experts[i * k + j]]++] = i;
  // Symmetry classes: experts with identical token-set membership.
  const sig = new Map<string, number>();
  const cls = new Int32Array(E);
  for (let e = 0; e < E; e++) {
    const s = Array.from(setList.subarray(setStart[e], setStart[e + 1])).join(',');
    let c = sig.get(s);
    if (c === undefined) {
      c = sig.size;
      sig.set(s, c);
    }
    cls[e] = c;
  }
  // Order: by class (classes by first member's degree, descending; unused experts last), members adjacent.
  const classDeg = new Float64Array(sig.size);
  for (let e = 0; e < E; e++) classDeg[cls[e]] = setStart[e + 1] - setStart[e] + load[e] * 1e-12;
  const order = Int32Array.from({ length: E }, (_, e) => e).sort((a, b) => classDeg[cls[b]] - classDeg[cls[a]] || cls[a] - cls[b] || a - b);
  const pos = new Int32Array(E);
  for (let d = 0; d < E; d++) pos[order[d]] = d;
  // Token sets completed at each depth.
  const doneStart = new Int32Array(E + 1);
  const lastPos = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let last = -1;
    for (let j = 0; j < k; j++) last = Math.max(last, pos[tokens.experts[i * k + j]]);
    lastPos[i] = last;
    doneStart[last + 1]++;
  }
  for (let d = 0; d < E; d++) doneStart[d + 1] += doneStart[d];
  const doneList = new Int32Array(n);
  const donePos = doneStart.slice(0, E);
  for (let i = 0; i < n; i++) doneList[donePos[lastPos[i]]++] = i;

  const gpuOf = new Int32Array(E).fill(-1);
  const gpuCnt = new Int32Array(NG);
  const gpuLoad = new Float64Array(NG);
  const nodeCnt = new Int32Array(n * N); // normal mode: assigned experts of set i on node m
  const srcNode = Int32Array.from(tokens.source, (s) => Math.floor(s / G));
  const dests = new Int32Array(k);
  let total = 0;
  for (let i = 0; i < n; i++) total += tokens.weight[i] * k;
  const tol = 1e-9 * Math.max(1, total * bytes * Math.max(1, N));

  /** Intra-node messages of complete set i (normal or low-latency), per the cost model. */
  const intraOf = (i: number): number => {
    const s = tokens.source[i];
    const ns = srcNode[i];
    let msgs = 0;
    if (mode === 'low-latency') {
      for (let j = 0; j < k; j++) {
        const d = gpuOf[tokens.experts[i * k + j]];
        if (d !== s && Math.floor(d / G) === ns) msgs++;
      }
      return msgs;
    }
    let nd = 0;
    for (let j = 0; j < k; j++) {
      const d = gpuOf[tokens.experts[i * k + j]];
      let seen = false;
      for (let q = 0; q < nd; q++) if (dests[q] === d) seen = true;
      if (!seen) dests[nd++] = d;
    }
    const local = s - ns * G;
    for (let q = 0; q < nd; q++) {
      const d = dests[q];
      if (d === s) continue;
      const m = Math.floor(d / G);
      if (m === ns || d !== m * G + local) msgs++;
    }
    return msgs;
  };

  let inter = 0; // bytes, over all sets, of remote nodes touched so far (final for complete sets)
  let intra = 0; // bytes of complete sets
  let bestInter = Infinity;
  let bestIntra = Infinity;
  let best: Int32Array | null = null;
  let leaves = 0;
  const acc = new LayerAccumulator(shape);

  const place = (e: number, g: number, sign: 1 | -1): void => {
    const m = Math.floor(g / G);
    for (let t = setStart[e]; t < setStart[e + 1]; t++) {
      const i = setList[t];
      if (srcNode[i] === m) continue;
      const w = tokens.weight[i] * bytes;
      if (mode === 'low-latency') inter += sign * w;
      else if (sign === 1) {
        if (nodeCnt[i * N + m]++ === 0) inter += w;
      } else if (--nodeCnt[i * N + m] === 0) inter -= w;
    }
  };

  const dfs = (d: number): void => {
    if (d === E) {
      leaves++;
      if (!lexLess(inter, intra, bestInter, bestIntra, tol)) return;
      const phy2log = placementFromGpus(gpuOf, shape);
      const sc = scorePlacement(inst, phy2log, acc);
      if (Math.abs(sc.interNodeBytes - inter) > tol || Math.abs(sc.intraNodeBytes - intra) > tol) {
        throw new SolverError('exactMinTraffic: incremental traffic disagrees with the evaluator', { inter, intra, evaluator: sc });
      }
      bestInter = sc.interNodeBytes;
      bestIntra = sc.intraNodeBytes;
      best = phy2log;
      return;
    }
    const e = order[d];
    const prev = d > 0 && cls[order[d - 1]] === cls[e] ? gpuOf[order[d - 1]] : 0;
    for (let g = prev; g < NG; g++) {
      if (gpuCnt[g] >= S || gpuLoad[g] + load[e] > cap + capTol) continue;
      gpuOf[e] = g;
      gpuCnt[g]++;
      gpuLoad[g] += load[e];
      place(e, g, 1);
      let added = 0;
      for (let t = doneStart[d]; t < doneStart[d + 1]; t++) added += tokens.weight[doneList[t]] * bytes * intraOf(doneList[t]);
      intra += added;
      if (lexLess(inter, intra, bestInter, bestIntra, tol) || best === null) dfs(d + 1);
      intra -= added;
      place(e, g, -1);
      gpuLoad[g] -= load[e];
      gpuCnt[g]--;
      gpuOf[e] = -1;
    }
  };
  dfs(0);
  if (best === null) return null;
  const sc = scorePlacement(inst, best, acc);
  return { ...sc, phy2log: best, leaves };
}

function exactAny(inst: TrafficInstance, maxLeaves: number): ExactTrafficResult | null {
  const { numExperts: E, shape } = inst;
  const { numGpus: NG, slotsPerGpu: S } = shape;
  const cap = inst.maxLoadCap ?? Infinity;
  const capTol = capTolerance(cap);
  // Subsets of <= S distinct experts, as sorted arrays.
  const subsets: Int32Array[] = [];
  const cur: number[] = [];
  const gen = (from: number): void => {
    subsets.push(Int32Array.from(cur));
    if (cur.length === S) return;
    for (let e = from; e < E; e++) {
      cur.push(e);
      gen(e + 1);
      cur.pop();
    }
  };
  gen(0);
  if (Math.pow(subsets.length, NG) > maxLeaves) {
    throw new InputError(`exactMinTraffic: ${subsets.length}^${NG} placements exceed maxLeaves ${maxLeaves}; use replicas 'one' or trafficLowerBound`, { field: 'numExperts' });
  }
  const covered = new Int32Array(E);
  let uncovered = E;
  const phy2log = new Int32Array(shape.numSlots).fill(-1);
  const acc = new LayerAccumulator(shape);
  let best: ExactTrafficResult | null = null;
  let leaves = 0;
  const dfs = (g: number): void => {
    if (g === NG) {
      if (uncovered > 0) return;
      leaves++;
      const sc = scorePlacement(inst, phy2log, acc);
      if (sc.maxLoad > cap + capTol) return;
      const tol = 1e-9 * Math.max(1, sc.interNodeBytes + sc.intraNodeBytes);
      if (best === null || lexLess(sc.interNodeBytes, sc.intraNodeBytes, best.interNodeBytes, best.intraNodeBytes, tol)) {
        best = { ...sc, phy2log: phy2log.slice(), leaves: 0 };
      }
      return;
    }
    for (const sub of subsets) {
      let gain = 0;
      for (let i = 0; i < sub.length; i++) if (covered[sub[i]] === 0) gain++;
      if (uncovered - gain > (NG - g - 1) * S) continue;
      for (let i = 0; i < sub.length; i++) {
        phy2log[g * S + i] = sub[i];
        if (covered[sub[i]]++ === 0) uncovered--;
      }
      dfs(g + 1);
      for (let i = 0; i < sub.length; i++) {
        phy2log[g * S + i] = -1;
        if (--covered[sub[i]] === 0) uncovered++;
      }
    }
  };
  dfs(0);
  if (best === null) return null;
  const out: ExactTrafficResult = best;
  out.leaves = leaves;
  return out;
}

// ---------------------------------------------------------------------------------------------
// MIP (one replica per expert)

export interface MipTrafficOptions {
  /** Default `highs` (jsls' plain branch and bound is slow on this model beyond a few experts). */
  backend?: LpBackend;
  timeLimitSeconds?: number;
}

export interface MipTrafficResult {
  status: LpStatus;
  /** Inter-node bytes of the placement found (NaN without one). Optimal when status is `optimal`. */
  interNodeBytes: number;
  /** [P] the placement found, or null. */
  phy2log: Int32Array | null;
  /** Proved lower bound on the optimum, when known. */
  lowerBound?: number;
}

/**
 * Least inter-node bytes with exactly one replica per expert, subject to the load cap, as a MIP:
 * x[e][g] binary (expert e on GPU g), sum_g x[e][g] = 1, sum_e x[e][g] <= S,
 * sum_e load[e] x[e][g] <= cap. Token sets are merged by (source node, expert set) into weights w_a.
 * - normal: y[a][m] in [0,1] for every node m other than a's source node, y[a][m] >=
 *   sum_{g in m} x[e][g] for each e in a; minimise sum_a w_a bytes sum_m y[a][m] (= bytes times
 *   remote nodes touched: y is the node indicator at the optimum).
 * - low-latency: minimise sum_a w_a bytes sum_{e in a} (1 - sum_{g in node(a)} x[e][g]).
 * Symmetry breaking: local GPU q of a node only takes experts e >= q (order a node's GPUs by their
 * smallest expert). With one replica the dispatch is forced, so this is the exact inter-node
 * optimum for any dispatch rule (intra-node bytes are not optimised here).
 */
export async function minTrafficMip(inst: TrafficInstance, options: MipTrafficOptions = {}): Promise<MipTrafficResult> {
  checkInstance(inst);
  const { numExperts: E, shape, mode } = inst;
  const { numGpus: NG, gpusPerNode: G, slotsPerGpu: S, nodes: N } = shape;
  const bytes = inst.model.dispatchBytesPerToken + inst.model.combineBytesPerToken;
  const cap = inst.maxLoadCap ?? Infinity;
  const load = loadsOfSets(inst.tokens, E);
  const sets = nodeSets(inst.tokens, shape);
  const lp = new LpModel('min');
  const x = (e: number, g: number): number => e * NG + g;
  // GPUs of one node are interchangeable (same slots, same cap, the objective sees nodes only), so
  // GPUs can be ordered by their smallest expert: then local GPU q only holds experts e >= q.
  for (let e = 0; e < E; e++) for (let g = 0; g < NG; g++) lp.addVar(undefined, { ub: g % G > e ? 0 : 1, integer: true });
  for (let e = 0; e < E; e++) lp.addConstraint(Int32Array.from({ length: NG }, (_, g) => x(e, g)), new Float64Array(NG).fill(1), { lb: 1, ub: 1 });
  for (let g = 0; g < NG; g++) {
    const idx = Int32Array.from({ length: E }, (_, e) => x(e, g));
    lp.addConstraint(idx, new Float64Array(E).fill(1), { ub: S });
    if (Number.isFinite(cap)) lp.addConstraint(idx, load, { ub: cap + capTolerance(cap) });
  }
  const { k } = sets;
  if (mode === 'low-latency') {
    let offset = 0;
    const cost = new Float64Array(E * NG);
    for (let a = 0; a < sets.n; a++) {
      const w = sets.weight[a] * bytes;
      offset += w * k;
      const m = sets.node[a];
      for (let j = 0; j < k; j++) for (let g = m * G; g < (m + 1) * G; g++) cost[x(sets.experts[a * k + j], g)] -= w;
    }
    lp.objectiveOffset = offset;
    for (let j = 0; j < E * NG; j++) if (cost[j] !== 0) lp.setObjective(j, cost[j]);
  } else {
    const idx = new Int32Array(G + 1);
    const val = new Float64Array(G + 1).fill(-1);
    val[0] = 1;
    for (let a = 0; a < sets.n; a++) {
      for (let m = 0; m < N; m++) {
        if (m === sets.node[a]) continue;
        const y = lp.addVar(undefined, { ub: 1, obj: sets.weight[a] * bytes });
        idx[0] = y;
        for (let j = 0; j < k; j++) {
          const e = sets.experts[a * k + j];
          for (let q = 0; q < G; q++) idx[q + 1] = x(e, m * G + q);
          lp.addConstraint(idx, val, { lb: 0 });
        }
      }
    }
  }
  const r = await solveLp(lp, { backend: options.backend ?? 'highs', ...(options.timeLimitSeconds !== undefined ? { timeLimitSeconds: options.timeLimitSeconds } : {}) });
  const out: MipTrafficResult = { status: r.status, interNodeBytes: NaN, phy2log: null };
  if (r.bestBound !== undefined) out.lowerBound = r.bestBound;
  if ((r.status === 'optimal' || r.status === 'time-limit') && r.feasible && r.integral) {
    const gpuOf = new Int32Array(E);
    for (let e = 0; e < E; e++) {
      let bestG = 0;
      for (let g = 1; g < NG; g++) if (r.x[x(e, g)] > r.x[x(e, bestG)]) bestG = g;
      gpuOf[e] = bestG;
    }
    out.phy2log = placementFromGpus(gpuOf, shape);
    out.interNodeBytes = interOfNodes(sets, Int32Array.from(gpuOf, (g) => Math.floor(g / G)), N, bytes, mode);
  }
  return out;
}
