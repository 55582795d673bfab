/**
 * The optimizer's work on one MoE layer, a pure function of typed arrays (it runs in a worker):
 *
 * 1. balance: replicate greedily by load/count and pack the whole cluster (pack.ts), giving the
 *    best balanced max load M.
 * 2. traffic (objectives `traffic` and `time`): node-level annealing (node-search.ts) of which
 *    nodes hold which experts, from the balanced layout and from expert communities (routing
 *    groups or Louvain) packed onto nodes, under a node load cap of about
 *    gpusPerNode * (1 + eps) * M in every load dimension, then balanced packing inside every node;
 *    the node cap is tightened until the GPU-level loads fit the cap.
 * 3. select: every candidate is scored by the evaluator of the cost model on the fitted tokens and
 *    the best one that respects the load cap is kept (the balanced plan is always a candidate).
 */
import { accumulateLayer, finishLayer, LayerAccumulator } from '../cost.js';
import { Rng } from '../rng.js';
import { CostOptionsSchema, type Cluster, type Mode, type Model, type Objective } from '../schemas.js';
import { capSets } from '../workload/indexer.js';
import { compressTokenSets } from '../workload/tokens.js';
import type { Shape, TokenSets } from '../types.js';
import { makeShape } from '../types.js';
import { defaultDispatch } from '../placement.js';
import { eplbPlacement } from '../../solvers/eplb.js';
import { coactivationGraph, louvainCommunities } from './coactivation.js';
import { NodeState, searchNodes } from './node-search.js';
import { gpuLoadsOf, packGroup, type Chunks } from './pack.js';

export interface LayerTask {
  layer: number;
  seed: number;
  numExperts: number;
  nodes: number;
  gpusPerNode: number;
  slotsPerGpu: number;
  mode: Mode;
  objective: Objective;
  /** Max-load slack of the traffic objective relative to the balanced plan. */
  eps: number;
  /** Token sets of the layer by source GPU (compressed). */
  k: number;
  experts: Uint16Array;
  source: Uint16Array;
  weight: Float64Array;
  /**
   * [E] load of each expert. Demand is planned as its expectation: every source GPU sends expert e
   * an equal share of e's load (which requests land on which source is an accident of the trace;
   * a dispatch fitted to it does not carry over to unseen tokens).
   */
  expertLoad: Float64Array;
  /**
   * [B*E] load of expert e in request sample b (LayerIndex.sampleLoad), or empty. Plans are kept
   * balanced in every sample, not only on the whole (see pack.ts).
   */
  sampleLoad: Float64Array;
  /** Annealing proposals per traffic candidate. */
  iterations: number;
  /** Independent annealing runs per candidate (the best is kept). */
  restarts: number;
  /**
   * Slots per node the node-level search leaves free, so that packing inside the node can
   * replicate its hottest experts and balance its GPUs.
   */
  slotReserve: number;
  /** Annealing start temperature as a fraction of the mean uphill step (node-search.ts). */
  temperature?: number;
  /** Token sets the node-level search works on (a seeded sample when there are more). */
  maxSearchSets: number;
  /** Extra max-load slack of the sample dimensions over `eps` (samples are noisier). */
  sampleSlack: number;
  /** Epoch ms after which searches stop early. */
  deadline?: number;
  model: Model;
  cluster: Cluster;
}

export interface LayerCandidate {
  name: string;
  maxLoad: number;
  interNodeBytes: number;
  intraNodeBytes: number;
  timeSeconds: number;
  feasible: boolean;
}

export interface LayerResult {
  layer: number;
  /** [P] */
  phy2log: Int32Array;
  /** [NG*E] */
  dispatch: Int32Array;
  chosen: string;
  balancedMaxLoad: number;
  candidates: LayerCandidate[];
  proposals: number;
}

interface Layout {
  phy2log: Int32Array;
  dispatch: Int32Array;
  /** Largest planned GPU load (dimension 0). */
  maxLoad: number;
}

/**
 * Load vectors of the layer: dimension 0 = expected load, 1..B = the request samples. Chunk (s, e)
 * carries expertLoad[e] / NG and sampleLoad[b*E+e] / NG. `mean[d]` = mean GPU load of dim d.
 */
class LoadVectors {
  readonly D: number;
  readonly mean: Float64Array;
  constructor(readonly task: LayerTask, readonly numGpus: number) {
    const E = task.numExperts;
    const B = task.sampleLoad.length / E;
    this.D = 1 + B;
    this.mean = new Float64Array(this.D);
    for (let e = 0; e < E; e++) this.mean[0] += task.expertLoad[e];
    for (let b = 0; b < B; b++) for (let e = 0; e < E; e++) this.mean[1 + b] += task.sampleLoad[b * E + e];
    for (let d = 0; d < this.D; d++) this.mean[d] /= numGpus;
  }
  /** Write chunk (s, e)'s vector to out[off..off+D) (the same for every source s). */
  write(_s: number, e: number, out: Float64Array, off: number): void {
    const E = this.task.numExperts;
    const NG = this.numGpus;
    out[off] = this.task.expertLoad[e] / NG;
    for (let d = 1; d < this.D; d++) out[off + d] = this.task.sampleLoad[(d - 1) * E + e] / NG;
  }
  /** Largest GPU load per dimension of a layout: [D]. */
  maxima(dispatch: Int32Array, S: number): Float64Array {
    const D = this.D;
    const loads = gpuLoadsOf(dispatch, this.task.numExperts, this.numGpus, S, D, (s, e, v) => this.write(s, e, v, 0));
    const max = new Float64Array(D);
    for (let h = 0; h < this.numGpus; h++) for (let d = 0; d < D; d++) max[d] = Math.max(max[d], loads[h * D + d]);
    return max;
  }
}

/** Chunks of the given (source, expert) pairs with their load vectors. */
function chunksOf(ex: Int32Array, sources: (e: number) => ArrayLike<number>, lv: LoadVectors): Chunks {
  const start = new Int32Array(ex.length + 1);
  const lists: ArrayLike<number>[] = [];
  for (let x = 0; x < ex.length; x++) {
    const l = sources(ex[x]);
    lists.push(Array.from(l));
    start[x + 1] = start[x] + l.length;
  }
  const C = start[ex.length];
  const src = new Int32Array(C);
  const load = new Float64Array(C * lv.D);
  for (let x = 0; x < ex.length; x++) {
    const l = lists[x];
    for (let i = 0; i < l.length; i++) {
      const c = start[x] + i;
      src[c] = l[i];
      lv.write(l[i], ex[x], load, c * lv.D);
    }
  }
  return { start, src, load };
}

/**
 * Balanced packing of the whole cluster (objective `balance`): minimises the largest ratio of GPU
 * load to mean load over the planned load and every sample.
 */
function balanceLayout(E: number, shape: Shape, lv: LoadVectors): Layout {
  const NG = shape.numGpus;
  const ex = Int32Array.from({ length: E }, (_, e) => e);
  const all = Int32Array.from({ length: NG }, (_, s) => s);
  const chunks = chunksOf(ex, () => all, lv);
  const phy2log = new Int32Array(shape.numSlots).fill(-1);
  const dispatch = new Int32Array(NG * E).fill(-1);
  const gpus = Int32Array.from({ length: NG }, (_, g) => g);
  const scale = lv.mean.map((m) => (m > 0 ? 1 / m : 0));
  const r = packGroup(ex, chunks, gpus, shape.slotsPerGpu, E, scale, phy2log, dispatch, shape.gpusPerNode);
  return { phy2log, dispatch, maxLoad: r.maxLoad };
}

/** GPU-level packing inside every node for a node-level layout, within the per-dimension caps. */
function packNodes(st: NodeState, E: number, shape: Shape, lv: LoadVectors, caps: Float64Array): Layout {
  const { nodes: N, gpusPerNode: G, slotsPerGpu: S } = shape;
  const phy2log = new Int32Array(shape.numSlots).fill(-1);
  const dispatch = new Int32Array(shape.numGpus * E).fill(-1);
  const scale = caps.map((c) => (c > 0 ? 1 / c : 0));
  let maxLoad = 0;
  const srcs: number[] = [];
  for (let m = 0; m < N; m++) {
    const exList: number[] = [];
    for (let e = 0; e < E; e++) if (st.has[e * N + m]) exList.push(e);
    const ex = Int32Array.from(exList);
    const chunks = chunksOf(
      ex,
      (e) => {
        srcs.length = 0;
        for (let s = 0; s < shape.numGpus; s++) if (st.srv[Math.floor(s / G) * E + e] === m) srcs.push(s);
        return srcs;
      },
      lv,
    );
    const gpus = Int32Array.from({ length: G }, (_, i) => m * G + i);
    const r = packGroup(ex, chunks, gpus, S, E, scale, phy2log, dispatch, G);
    maxLoad = Math.max(maxLoad, r.maxLoad);
  }
  return { phy2log, dispatch, maxLoad };
}

/**
 * Node-level start from expert communities ([E] community id): communities by load descending,
 * each onto the least-loaded node with room for all of it; a community that fits nowhere is dealt
 * expert by expert (heaviest first) onto the least-loaded nodes with a free slot.
 */
export function communityStart(comm: Int32Array, load: Float64Array, nodes: number, slotsPerNode: number): Uint8Array {
  const E = comm.length;
  const C = Math.max(...comm) + 1;
  const cLoad = new Float64Array(C);
  const members: number[][] = Array.from({ length: C }, () => []);
  for (let e = 0; e < E; e++) {
    cLoad[comm[e]] += load[e];
    members[comm[e]].push(e);
  }
  const nodeLoad = new Float64Array(nodes);
  const used = new Int32Array(nodes);
  const has = new Uint8Array(E * nodes);
  const order = Array.from({ length: C }, (_, c) => c).sort((a, b) => cLoad[b] - cLoad[a] || a - b);
  const place = (e: number, m: number): void => {
    has[e * nodes + m] = 1;
    used[m]++;
    nodeLoad[m] += load[e];
  };
  for (const c of order) {
    const size = members[c].length;
    let best = -1;
    for (let m = 0; m < nodes; m++) if (used[m] + size <= slotsPerNode && (best < 0 || nodeLoad[m] < nodeLoad[best])) best = m;
    if (best >= 0) {
      for (const e of members[c]) place(e, best);
      continue;
    }
    for (const e of members[c].sort((a, b) => load[b] - load[a] || a - b)) {
      let m2 = -1;
      for (let m = 0; m < nodes; m++) if (used[m] < slotsPerNode && (m2 < 0 || nodeLoad[m] < nodeLoad[m2])) m2 = m;
      place(e, m2);
    }
  }
  return has;
}

/** Expert communities of a layer: the model's routing groups, else Louvain on co-activation. */
function communities(task: LayerTask, tokens: TokenSets): Int32Array {
  const E = task.numExperts;
  const groups = task.model.groups;
  if (groups !== undefined && groups > 1) return Int32Array.from({ length: E }, (_, e) => Math.floor(e / (E / groups)));
  return louvainCommunities(coactivationGraph(tokens, E), task.seed);
}

/** The balanced layout of a task alone (the fallback for a layer an interruption left unsolved). */
export function balanceTask(task: LayerTask): { phy2log: Int32Array; dispatch: Int32Array } {
  const shape = makeShape(task.nodes, task.gpusPerNode, task.slotsPerGpu);
  return balanceLayout(task.numExperts, shape, new LoadVectors(task, shape.numGpus));
}

/** Node-level start state from a layout: has from its replicas, serving from its dispatch. */
function nodeStartFrom(layout: Layout, E: number, shape: Shape): { has: Uint8Array; srv: Int32Array } {
  const { nodes: N, gpusPerNode: G, slotsPerGpu: S } = shape;
  const has = new Uint8Array(E * N);
  for (let p = 0; p < shape.numSlots; p++) {
    const e = layout.phy2log[p];
    if (e >= 0) has[e * N + Math.floor(p / S / G)] = 1;
  }
  const srv = new Int32Array(N * E).fill(-1);
  for (let n = 0; n < N; n++) {
    for (let e = 0; e < E; e++) {
      const slot = layout.dispatch[n * G * E + e];
      if (slot >= 0) srv[n * E + e] = Math.floor(slot / S / G);
    }
  }
  return { has, srv };
}

export function solveLayer(task: LayerTask): LayerResult {
  const E = task.numExperts;
  const shape = makeShape(task.nodes, task.gpusPerNode, task.slotsPerGpu);
  const tokens: TokenSets = { n: task.source.length, k: task.k, experts: task.experts, source: task.source, weight: task.weight };
  const costOpts = CostOptionsSchema.parse({ mode: task.mode });
  const acc = new LayerAccumulator(shape);
  // A candidate is feasible when its largest GPU load is within the cap in every dimension.
  const score = (name: string, lay: Layout, [max, cap]: Float64Array[]): LayerCandidate => {
    acc.reset();
    accumulateLayer(acc, tokens, lay.phy2log, lay.dispatch, E, task.mode);
    const m = finishLayer(acc, task.layer, task.model, task.cluster, costOpts);
    return {
      name,
      maxLoad: lay.maxLoad,
      interNodeBytes: m.interNodeBytes,
      intraNodeBytes: m.intraNodeBytes,
      timeSeconds: m.timeSeconds,
      feasible: max.every((x, d) => x <= cap[d] * (1 + 1e-9)),
    };
  };

  const lv = new LoadVectors(task, shape.numGpus);
  const balanced = balanceLayout(E, shape, lv);
  const balancedMax = lv.maxima(balanced.dispatch, shape.slotsPerGpu);
  const layouts: Layout[] = [balanced];
  const candidates: LayerCandidate[] = [score('balance', balanced, [balancedMax, balancedMax])];
  if (task.objective === 'time') {
    // EPLB's layout (default dispatch) competes too, so `time` is never worse than EPLB on the
    // fitted tokens.
    const eplb = eplbPlacement([task.expertLoad], E, shape, task.model.groups ?? 1);
    if (replicasOnDistinctGpus(eplb.phy2log[0], shape.numGpus, shape.slotsPerGpu)) {
      const lay: Layout = { phy2log: eplb.phy2log[0], dispatch: defaultDispatch(eplb.phy2log[0], E, shape), maxLoad: 0 };
      const max = lv.maxima(lay.dispatch, shape.slotsPerGpu);
      lay.maxLoad = max[0];
      layouts.push(lay);
      candidates.push(score('eplb', lay, [max, max]));
    }
  }
  let proposals = 0;

  const late = task.deadline !== undefined && Date.now() >= task.deadline;
  if (task.objective !== 'balance' && shape.nodes > 1 && !late) {
    const rng = new Rng(task.seed);
    const G = shape.gpusPerNode;
    const { setSrc, setW, setEx } = nodeSets(tokens, G, task.maxSearchSets, rng.fork(99));
    const commHas = communityStart(communities(task, tokens), task.expertLoad, shape.nodes, G * shape.slotsPerGpu);
    const D = lv.D;
    const nodeLoads = new Float64Array(shape.nodes * E * D);
    const v = new Float64Array(D);
    for (let s = 0; s < shape.numGpus; s++) {
      const n = Math.floor(s / G);
      for (let e = 0; e < E; e++) {
        lv.write(s, e, v, 0);
        for (let d = 0; d < D; d++) nodeLoads[(n * E + e) * D + d] += v[d];
      }
    }
    const epsList = task.objective === 'time' ? [task.eps, 0.1, 0.3] : [task.eps];
    for (const eps of epsList) {
      const caps = balancedMax.map((x, d) => (1 + eps + (d > 0 ? task.sampleSlack : 0)) * x);
      // Starts: the balanced layout, and expert communities packed onto nodes.
      const starts = [nodeStartFrom(balanced, E, shape), { has: commHas, srv: undefined as Int32Array | undefined }];
      let start = starts[0];
      for (let attempt = 0, theta = 0.99; attempt < 4; attempt++, theta -= 0.015) {
        const st = new NodeState({
          nodes: shape.nodes,
          experts: E,
          slotsPerNode: G * shape.slotsPerGpu - Math.min(task.slotReserve, G * shape.slotsPerGpu - Math.ceil(E / shape.nodes)),
          k: task.k,
          setSrc,
          setW,
          setEx,
          lowLatency: task.mode === 'low-latency',
          dims: D,
          loads: nodeLoads,
          nodeCap: caps.map((c) => G * c * theta),
          gpuCap: caps[0],
        });
        // Runs from every start (and restarts) with their own random streams share the proposal
        // budget; the best feasible end wins. Retries continue from the previous layout under the
        // tighter cap, with a shorter search.
        const runs = attempt === 0 ? Math.max(task.restarts, starts.length) : 1;
        const iterations = attempt === 0 ? Math.ceil(task.iterations / runs) : Math.ceil(task.iterations / 4);
        let best: { has: Uint8Array; srv: Int32Array; cost: number } | null = null;
        for (let r = 0; r < runs; r++) {
          const from = attempt === 0 ? starts[r % starts.length] : start;
          st.init(from.has, from.srv);
          // Restarts beyond one run per start anneal hotter (x3 each round) for diversity.
          const temperature = (task.temperature ?? 0.3) * Math.pow(3, Math.floor(r / starts.length));
          const stats = searchNodes(st, { iterations, rng: rng.fork(attempt * 64 + r), deadline: task.deadline, temperature });
          proposals += stats.proposals;
          if (st.feasible() && (!best || st.cost < best.cost)) best = { has: st.has.slice(), srv: st.srv.slice(), cost: st.cost };
        }
        if (!best) continue;
        st.init(best.has, best.srv);
        const lay = packNodes(st, E, shape, lv, caps);
        const cand = score(`traffic eps=${eps} theta=${theta.toFixed(3)}`, lay, [lv.maxima(lay.dispatch, shape.slotsPerGpu), caps]);
        layouts.push(lay);
        candidates.push(cand);
        if (cand.feasible) break;
        start = { has: st.has.slice(), srv: st.srv.slice() };
      }
    }
  }

  // Select.
  let best = 0;
  for (let i = 1; i < candidates.length; i++) {
    const c = candidates[i];
    const b = candidates[best];
    if (task.objective === 'time') {
      if (c.timeSeconds < b.timeSeconds) best = i;
    } else if (task.objective === 'traffic') {
      if (c.feasible && (c.interNodeBytes < b.interNodeBytes || (c.interNodeBytes === b.interNodeBytes && c.intraNodeBytes < b.intraNodeBytes))) best = i;
    }
  }
  return {
    layer: task.layer,
    phy2log: layouts[best].phy2log,
    dispatch: layouts[best].dispatch,
    chosen: candidates[best].name,
    balancedMaxLoad: balanced.maxLoad,
    candidates,
    proposals,
  };
}

/** Token sets compressed by (source node, expert set), at most `maxSets` of them (capSets). */
function nodeSets(tokens: TokenSets, gpusPerNode: number, maxSets: number, rng: Rng): { setSrc: Int32Array; setW: Float64Array; setEx: Uint16Array } {
  const bySrcNode: TokenSets = {
    ...tokens,
    source: Uint16Array.from(tokens.source, (s) => Math.floor(s / gpusPerNode)),
  };
  const { sets } = capSets(compressTokenSets(bySrcNode), maxSets, rng);
  return { setSrc: Int32Array.from(sets.source), setW: sets.weight, setEx: sets.experts };
}

/** No GPU holds two replicas of one expert (EPLB may do so; moe-placer's plans never do). */
function replicasOnDistinctGpus(phy2log: Int32Array, numGpus: number, S: number): boolean {
  for (let g = 0; g < numGpus; g++) {
    for (let i = 0; i < S; i++) {
      const e = phy2log[g * S + i];
      for (let j = i + 1; j < S; j++) if (e >= 0 && phy2log[g * S + j] === e) return false;
    }
  }
  return true;
}
