/**
 * The one-layer traffic instance that the exact solvers (exact.ts) and the traffic bounds
 * (traffic.ts, coverage.ts) take, its checks, the token sets merged by source node that they share,
 * and the score of a placement under the default dispatch rule (the evaluator of src/cost.ts).
 *
 * Bytes count dispatch + combine.
 */
import { accumulateLayer, LayerAccumulator } from '../cost.js';
import { InfeasibleError, InputError } from '../errors.js';
import type { LpStatus } from '../lp/index.js';
import { defaultDispatch } from '../placement.js';
import type { Mode, Model } from '../schemas.js';
import type { Shape, TokenSets } from '../types.js';
import { SetCompressor } from '../workload/tokens.js';

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

/** Shape and token ids, sources and weights in range (InfeasibleError, InputError naming the field). */
export function checkInstance(inst: TrafficInstance): void {
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
export interface NodeSets {
  n: number;
  k: number;
  /** [n*k] experts, ascending within a set. */
  experts: Int32Array;
  /** [n] source node. */
  node: Int32Array;
  /** [n] weight. */
  weight: Float64Array;
}

export function nodeSets(tokens: TokenSets, shape: Shape): NodeSets {
  const { n, k } = tokens;
  // Tokens of positive weight, their source GPU replaced by its node, merged by SetCompressor.
  const ids = new Uint16Array(n * k);
  const node = new Uint16Array(n);
  const weight = new Float64Array(n);
  let m = 0;
  for (let i = 0; i < n; i++) {
    if (tokens.weight[i] === 0) continue;
    ids.set(tokens.experts.subarray(i * k, i * k + k), m * k);
    node[m] = Math.floor(tokens.source[i] / shape.gpusPerNode);
    weight[m++] = tokens.weight[i];
  }
  const c = new SetCompressor(k, Infinity, m);
  c.add(ids, node, weight, m);
  const sets = c.sets();
  return { n: sets.n, k, experts: Int32Array.from(sets.experts), node: Int32Array.from(sets.source), weight: sets.weight };
}

/** Absolute slack added to a load cap in LP rows, for solver tolerances. */
export function capTolerance(cap: number): number {
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

/** [P] the one-replica placement with expert e on GPU gpuOf[e] (a GPU's experts ascending, then -1). */
export function placementFromGpus(gpuOf: Int32Array, shape: Shape): Int32Array {
  const S = shape.slotsPerGpu;
  const phy2log = new Int32Array(shape.numSlots).fill(-1);
  const fill = new Int32Array(shape.numGpus);
  for (let e = 0; e < gpuOf.length; e++) {
    const g = gpuOf[e];
    phy2log[g * S + fill[g]++] = e;
  }
  return phy2log;
}

/** Inter-node bytes of a one-replica node assignment `nodeOfExpert [E]` (any dispatch). */
export function interOfNodes(sets: NodeSets, nodeOfExpert: Int32Array, N: number, bytes: number, mode: Mode): number {
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
