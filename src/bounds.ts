/**
 * Lower bounds for the placement of ONE MoE layer, and exact optima of tiny instances.
 *
 * - `maxLoadLowerBound`: a counting bound on the largest GPU load any placement can reach.
 * - `exactMinTraffic`: the least inter-node bytes (then intra-node bytes) over every placement of a
 *   tiny instance, by branch and bound; scored with the evaluator of src/cost.ts.
 * - `minTrafficMip`: the same optimum (inter-node bytes, one replica per expert) as a MIP.
 * - `trafficLowerBound`: a valid lower bound on inter-node bytes for any size (LP relaxation of a
 *   node-level MIP, or the MIP's dual bound), on at most a budget of token sets.
 * - `coverageTrafficBound`: a valid lower bound on inter-node bytes from every token in one or a
 *   few linear passes, no LP (the bound `plan` writes into every plan fitted on a trace).
 *
 * Loads are weighted (token, expert) pairs, as in the cost model. Bytes count dispatch + combine.
 */
import { accumulateLayer, LayerAccumulator } from './cost.js';
import { InfeasibleError, InputError, SolverError } from './errors.js';
import { LpModel, solveLp } from './lp/index.js';
import type { LpBackend, LpStatus } from './lp/index.js';
import { defaultDispatch } from './placement.js';
import type { Mode, Model } from './schemas.js';
import type { Shape, TokenSets } from './types.js';
import { loadsOfSets } from './workload/tokens.js';

// ---------------------------------------------------------------------------------------------
// Max load

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

// ---------------------------------------------------------------------------------------------
// Traffic: shared instance description

/** A one-layer traffic instance. */
export interface TrafficInstance {
  /** Tokens (or weighted token sets) of the layer with their source GPU. */
  tokens: TokenSets;
  numExperts: number;
  shape: Shape;
  /** Only the byte sizes are read. */
  model: Pick<Model, 'dispatchBytesPerToken' | 'combineBytesPerToken'>;
  mode: Mode;
  /** Largest GPU load allowed (weighted (token, expert) pairs); default no limit. */
  maxLoadCap?: number;
  /**
   * `one`: exactly one replica per expert (P - E slots stay empty). `any` (default): every expert
   * has >= 1 replica, no GPU holds an expert twice, the default dispatch rule
   * (`defaultDispatch` of src/placement.ts) picks replicas. With P == E both are the same.
   */
  replicas?: 'one' | 'any';
}

function checkInstance(inst: TrafficInstance): void {
  const { tokens, numExperts: E, shape } = inst;
  if (E > shape.numSlots) throw new InfeasibleError(`${E} experts do not fit in ${shape.numSlots} slots`, { field: 'slotsPerGpu' });
  if (shape.numGpus * shape.slotsPerGpu !== shape.numSlots || shape.nodes * shape.gpusPerNode !== shape.numGpus) {
    throw new InputError('inconsistent shape', { field: 'shape' });
  }
  const { n, k } = tokens;
  for (let i = 0; i < n; i++) {
    if (tokens.source[i] >= shape.numGpus) throw new InputError(`token ${i} has source GPU ${tokens.source[i]}, cluster has ${shape.numGpus}`, { field: `tokens.source[${i}]` });
    if (!(tokens.weight[i] >= 0)) throw new InputError(`token ${i} has weight ${tokens.weight[i]}`, { field: `tokens.weight[${i}]` });
    for (let j = 0; j < k; j++) {
      const e = tokens.experts[i * k + j];
      if (e >= E) throw new InputError(`token ${i} uses expert ${e}, model has ${E}`, { field: `tokens.experts[${i * k + j}]` });
      for (let q = 0; q < j; q++) {
        if (tokens.experts[i * k + q] === e) throw new InputError(`token ${i} lists expert ${e} twice`, { field: `tokens.experts[${i * k + j}]` });
      }
    }
  }
}

/** Token sets merged by (source NODE, expert set): inter-node bytes depend on the node only. */
interface NodeSets {
  n: number;
  k: number;
  /** [n*k] experts, ascending within a set. */
  experts: Int32Array;
  /** [n] source node. */
  node: Int32Array;
  /** [n] weight. */
  weight: Float64Array;
}

function nodeSets(tokens: TokenSets, shape: Shape): NodeSets {
  const { n, k } = tokens;
  const map = new Map<string, number>();
  const ex: number[] = [];
  const node: number[] = [];
  const weight: number[] = [];
  const key = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    if (tokens.weight[i] === 0) continue;
    for (let j = 0; j < k; j++) key[j] = tokens.experts[i * k + j];
    key.sort();
    const m = Math.floor(tokens.source[i] / shape.gpusPerNode);
    const s = `${m}:${key.join(',')}`;
    const at = map.get(s);
    if (at !== undefined) {
      weight[at] += tokens.weight[i];
      continue;
    }
    map.set(s, node.length);
    node.push(m);
    weight.push(tokens.weight[i]);
    for (let j = 0; j < k; j++) ex.push(key[j]);
  }
  return { n: node.length, k, experts: Int32Array.from(ex), node: Int32Array.from(node), weight: Float64Array.from(weight) };
}

function capTolerance(cap: number): number {
  return Number.isFinite(cap) ? 1e-9 * Math.max(1, Math.abs(cap)) : 0;
}

/** Traffic and load of a placement under the default dispatch rule, from the evaluator of src/cost.ts. */
export interface TrafficScore {
  /** RDMA bytes, dispatch + combine. */
  interNodeBytes: number;
  /** NVLink bytes, dispatch + combine. */
  intraNodeBytes: number;
  /** Largest GPU load. */
  maxLoad: number;
}

/** Scores `phy2log` [P] with the default dispatch rule (reuses `acc`, which it resets). */
export function scorePlacement(inst: TrafficInstance, phy2log: Int32Array, acc = new LayerAccumulator(inst.shape)): TrafficScore {
  acc.reset();
  const dispatch = defaultDispatch(phy2log, inst.numExperts, inst.shape);
  accumulateLayer(acc, inst.tokens, phy2log, dispatch, inst.numExperts, inst.mode);
  const bytes = inst.model.dispatchBytesPerToken + inst.model.combineBytesPerToken;
  let rdma = 0;
  let nvl = 0;
  let maxLoad = 0;
  for (let g = 0; g < inst.shape.numGpus; g++) {
    rdma += acc.rdmaOut[g];
    nvl += acc.nvlOut[g];
    if (acc.load[g] > maxLoad) maxLoad = acc.load[g];
  }
  return { interNodeBytes: rdma * bytes, intraNodeBytes: nvl * bytes, maxLoad };
}

// ---------------------------------------------------------------------------------------------
// Exact optimum by enumeration

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

function placementFromGpus(gpuOf: Int32Array, shape: Shape): Int32Array {
  const S = shape.slotsPerGpu;
  const phy2log = new Int32Array(shape.numSlots).fill(-1);
  const fill = new Int32Array(shape.numGpus);
  for (let e = 0; e < gpuOf.length; e++) {
    const g = gpuOf[e];
    phy2log[g * S + fill[g]++] = e;
  }
  return phy2log;
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

/** Inter-node bytes of a one-replica node assignment `nodeOfExpert [E]` (any dispatch). */
function interOfNodes(sets: NodeSets, nodeOfExpert: Int32Array, N: number, bytes: number, mode: Mode): number {
  const { k } = sets;
  const stamp = new Int32Array(N).fill(-1);
  let total = 0;
  for (let a = 0; a < sets.n; a++) {
    let msgs = 0;
    for (let j = 0; j < k; j++) {
      const m = nodeOfExpert[sets.experts[a * k + j]];
      if (m === sets.node[a]) continue;
      if (mode === 'low-latency') msgs++;
      else if (stamp[m] !== a) {
        stamp[m] = a;
        msgs++;
      }
    }
    total += sets.weight[a] * bytes * msgs;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Traffic lower bound

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

export interface TrafficBound {
  /** A lower bound on the inter-node bytes of every placement of the instance. */
  bound: number;
  /** True when `bound` is the optimum itself. */
  exact: boolean;
  method: 'lp' | 'mip' | 'lagrangian' | 'coverage' | 'trivial';
  /** Status of the solve ('optimal' for trivial bounds and for `lagrangian`). */
  status: LpStatus;
  /** Merged (source node, expert set) token sets in the model, and in the instance. */
  setsUsed: number;
  setsTotal: number;
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

// ---------------------------------------------------------------------------------------------
// Traffic lower bound without an LP: the coverage bound

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
