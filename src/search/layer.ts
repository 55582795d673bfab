/**
 * The optimizer's work on one MoE layer, a pure function of typed arrays (it runs in a worker).
 * The pipeline, a stage a file:
 *
 * 1. replicate + pack (replicate.ts): replicas by load / count and balanced packing of the whole
 *    cluster; with EPLB's layout (eplb.ts) these are the balanced candidates, and the better one
 *    sets the reference max load M of the traffic contract.
 * 2. construct (construct.ts): node-level starts: the balanced layout, expert communities (routing
 *    groups or Louvain) packed onto nodes, greedy growing by co-activation.
 * 3. improve (improve.ts, node-search.ts): k-way FM refinement with replication moves on the exact
 *    node-level traffic, optionally after simulated annealing, under node load caps of about
 *    gpusPerNode * (1 + eps) * M.
 * 4. dispatch (dispatch.ts): a transportation LP re-chooses which replica node serves each
 *    (source node, expert) pair; then balanced packing inside every node. The node cap is
 *    tightened until the GPU-level layout keeps its evaluated max load within the contract.
 * 5. select: every candidate is scored by the cost model's evaluator on the fitted tokens and,
 *    when the index has a validation split, on the held-back requests; `traffic` keeps, among
 *    those within (1 + eps) M on the fitted tokens and within 1% of the least validation traffic,
 *    the one with the least validation max load; `time` the least validation time; `balance` the
 *    least max load.
 * Lower bounds (6. bound) are computed for the plan as a whole (src/bounds/, filled in by src/api/bounds.ts).
 */
import { accumulateLayer, finishLayer, LayerAccumulator, type LayerMetrics } from '../cost.js';
import { eplbPlacement } from '../eplb.js';
import { defaultDispatch } from '../placement.js';
import { Rng } from '../rng.js';
import { CostOptionsSchema, type Cluster, type Mode, type Model, type Objective } from '../schemas.js';
import type { Shape, TokenSets } from '../types.js';
import { makeShape } from '../types.js';
import { capSets } from '../workload/indexer.js';
import { compressTokenSets } from '../workload/tokens.js';
import { communities, communityStart, growingStart, nodeStartFrom, type NodeStart } from './construct.js';
import { chunksOf, LoadVectors, lpServe, packNodes, sourceLoads, type Layout } from './dispatch.js';
import { refineNodes } from './improve.js';
import { NodeState, searchNodes } from './node-search.js';
import { packGroup } from './replicate.js';

/** Relative validation-traffic difference below which `traffic` selects by validation max load. */
export const VALIDATION_TRAFFIC_TOLERANCE = 0.01;

/**
 * Looser load caps (as eps) the `time` objective searches besides the plan's own eps: where the
 * all-to-all dominates, a less balanced plan with less traffic can be faster (0.6 was added when
 * bench/v3-scale.ts showed DeepSeek-V3 EP32 normal faster with it on held-out tokens).
 */
export const TIME_EPS_LADDER = [0.1, 0.3, 0.6] as const;

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
  /** Token sets of the layer by source GPU (compressed), the validation requests left out. */
  k: number;
  experts: Uint16Array;
  source: Uint16Array;
  weight: Float64Array;
  /** Validation token sets (held-back requests; empty when there is no split). */
  valExperts: Uint16Array;
  valSource: Uint16Array;
  valWeight: Float64Array;
  /**
   * [E] planned load of each expert (the fitted requests less the validation ones). Demand is
   * planned as its expectation: every source GPU sends expert e an equal share of e's load.
   */
  expertLoad: Float64Array;
  /** [B*E] load of expert e in request sample b (LayerIndex.sampleLoad), or empty. */
  sampleLoad: Float64Array;
  /** Token sets were drawn from counts: loads are exact, traffic on the sets an estimate. */
  estimated: boolean;
  /** Annealing proposals per start before refinement (0 = FM only). */
  iterations: number;
  /** FM refinement passes per start (improve.ts). */
  refinePasses: number;
  /** Independent runs per candidate beyond one per start (the best is kept). */
  restarts: number;
  /** Transportation LP for node-level serving after refinement (dispatch.ts). */
  lpDispatch: boolean;
  /** Slots per node the node-level search leaves free for in-node replicas. */
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
  /** Largest GPU load of the contract: evaluated on the fitted tokens, or planned (counts). */
  maxLoad: number;
  interNodeBytes: number;
  intraNodeBytes: number;
  timeSeconds: number;
  /** The same on the validation requests (absent without a split). */
  val?: { maxLoad: number; interNodeBytes: number; intraNodeBytes: number; timeSeconds: number };
  feasible: boolean;
}

export interface LayerResult {
  layer: number;
  /** [P] */
  phy2log: Int32Array;
  /** [NG*E] */
  dispatch: Int32Array;
  chosen: string;
  /** Reference max load M of the contract (the better balanced candidate's). */
  balancedMaxLoad: number;
  candidates: LayerCandidate[];
  proposals: number;
  /** FM moves applied, and pairs the serving LP changed. */
  moves: number;
  lpChanged: number;
  /** The deadline stopped a search early or skipped it (the layer's result then depends on time). */
  cut: boolean;
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

/** The balanced layout of a task alone (the fallback for a layer an interruption left unsolved). */
export function balanceTask(task: LayerTask): { phy2log: Int32Array; dispatch: Int32Array } {
  const shape = makeShape(task.nodes, task.gpusPerNode, task.slotsPerGpu);
  return balanceLayout(task.numExperts, shape, new LoadVectors(task.expertLoad, task.sampleLoad, shape.numGpus));
}

export async function solveLayer(task: LayerTask): Promise<LayerResult> {
  const E = task.numExperts;
  const shape = makeShape(task.nodes, task.gpusPerNode, task.slotsPerGpu);
  const S = shape.slotsPerGpu;
  const tokens: TokenSets = { n: task.source.length, k: task.k, experts: task.experts, source: task.source, weight: task.weight };
  const val: TokenSets | null =
    task.valSource.length > 0 ? { n: task.valSource.length, k: task.k, experts: task.valExperts, source: task.valSource, weight: task.valWeight } : null;
  const costOpts = CostOptionsSchema.parse({ mode: task.mode });
  const acc = new LayerAccumulator(shape);
  const metricsOn = (lay: Layout, sets: (TokenSets | null)[]): LayerMetrics => {
    acc.reset();
    for (const ts of sets) if (ts) accumulateLayer(acc, ts, lay.phy2log, lay.dispatch, E, task.mode);
    return finishLayer(acc, task.layer, task.model, task.cluster, costOpts);
  };
  // Planned loads: with a trace's token sets, the fitted tokens' own per-source demand (so the
  // contract holds on them as evaluated); from counts, or with loads only (objective balance),
  // equal shares of the exact expert loads.
  const known = !task.estimated && tokens.n > 0;
  const lv = !known
    ? new LoadVectors(task.expertLoad, task.sampleLoad, shape.numGpus)
    : ((l) => new LoadVectors(l.expertLoad, task.sampleLoad, shape.numGpus, l.sourceLoad))(sourceLoads(val ? [tokens, val] : [tokens], E, shape.numGpus));
  const layouts: Layout[] = [];
  const candidates: LayerCandidate[] = [];
  const planned: Float64Array[] = [];
  const add = (name: string, lay: Layout): LayerCandidate => {
    const max = lv.maxima(lay.dispatch, S);
    lay.maxLoad = max[0];
    const fit = metricsOn(lay, [tokens, val]);
    const v = val ? metricsOn(lay, [val]) : null;
    const c: LayerCandidate = {
      name,
      // Counts-only sets are drawn tokens (and the balance objective has none): the planned
      // loads are the exact ones.
      maxLoad: known ? fit.maxLoad : max[0],
      interNodeBytes: fit.interNodeBytes,
      intraNodeBytes: fit.intraNodeBytes,
      timeSeconds: fit.timeSeconds,
      feasible: true,
    };
    if (v) c.val = { maxLoad: v.maxLoad, interNodeBytes: v.interNodeBytes, intraNodeBytes: v.intraNodeBytes, timeSeconds: v.timeSeconds };
    layouts.push(lay);
    candidates.push(c);
    planned.push(max);
    return c;
  };

  // 1. Balanced candidates: our packing, and EPLB's layout where its replicas sit on distinct GPUs.
  add('balance', balanceLayout(E, shape, lv));
  const eplb = eplbPlacement([lv.expertLoad], E, shape, task.model.groups ?? 1).phy2log[0];
  if (spreadReplicas(eplb, shape)) add('eplb', { phy2log: eplb, dispatch: defaultDispatch(eplb, E, shape), maxLoad: 0 });
  const ref = candidates.length > 1 && candidates[1].maxLoad < candidates[0].maxLoad ? 1 : 0;
  const M = candidates[ref].maxLoad;
  const balancedPlanned = planned[0].map((x, d) => Math.min(x, ...planned.map((p) => p[d])));
  let proposals = 0;
  let moves = 0;
  let lpChanged = 0;

  const late = task.deadline !== undefined && Date.now() >= task.deadline;
  let timeCut = late && task.objective !== 'balance' && shape.nodes > 1;
  if (task.objective !== 'balance' && shape.nodes > 1 && !late) {
    const rng = new Rng(task.seed);
    const G = shape.gpusPerNode;
    const { setSrc, setW, setEx } = nodeSets(tokens, G, task.maxSearchSets, rng.fork(99));
    let meanW = 0;
    for (let i = 0; i < setW.length; i++) meanW += setW[i];
    meanW = setW.length > 0 ? meanW / setW.length : 1;
    const lambda = 10 * meanW;
    // Retries keep one more slot per node free for in-node replicas (GPU-level balance).
    const slotsPerNode = (attempt: number): number => G * S - Math.min(task.slotReserve + attempt, G * S - Math.ceil(E / shape.nodes));
    const nodeLoads = lv.nodeLoads(shape.nodes, G);
    // 2. Starts.
    const starts: NodeStart[] = [
      ...layouts.map((lay) => nodeStartFrom(lay.phy2log, lay.dispatch, E, shape)),
      { has: communityStart(communities(tokens, E, task.model.groups, task.seed), lv.expertLoad, shape.nodes, slotsPerNode(0)) },
      { has: growingStart(tokens, lv.expertLoad, shape.nodes, slotsPerNode(0)) },
    ];
    const epsList = task.objective === 'time' ? [task.eps, ...TIME_EPS_LADDER] : [task.eps];
    for (const eps of epsList) {
      const caps = balancedPlanned.map((x, d) => (1 + eps + (d > 0 ? task.sampleSlack : 0)) * x);
      const limit = (1 + eps) * M;
      let from: NodeStart[] = starts;
      for (let attempt = 0, theta = 1; attempt < 4; attempt++, theta -= 0.015) {
        const st = new NodeState({
          nodes: shape.nodes,
          experts: E,
          slotsPerNode: slotsPerNode(attempt),
          k: task.k,
          setSrc,
          setW,
          setEx,
          lowLatency: task.mode === 'low-latency',
          dims: lv.D,
          loads: nodeLoads,
          nodeCap: caps.map((c) => G * c * theta),
          gpuCap: caps[0],
        });
        // 3. Improve every start (and restarts); each end is packed and scored as a candidate
        // (4.). Retries continue from the least violating end under a tighter cap, with limits
        // priced higher, when no end met the contract.
        const runs = attempt === 0 ? from.length + task.restarts : 1;
        const price = lambda * Math.pow(10, attempt);
        let retry: { has: Uint8Array; srv: Int32Array; cost: number; viol: number } | null = null;
        let met = false;
        for (let r = 0; r < runs; r++) {
          st.init(from[r % from.length].has, from[r % from.length].srv);
          if (task.iterations > 0 || r >= from.length) {
            const temperature = (task.temperature ?? 0.3) * Math.pow(3, Math.floor(r / from.length));
            const iterations = Math.max(task.iterations, r >= from.length ? 20 * E : 0);
            proposals += searchNodes(st, { iterations, rng: rng.fork(attempt * 64 + r), deadline: task.deadline, temperature }).proposals;
          }
          moves += refineNodes(st, { passes: task.refinePasses, lambda: price, deadline: task.deadline }).moves;
          // A search that returns past the deadline may have been stopped by it.
          timeCut ||= task.deadline !== undefined && Date.now() > task.deadline;
          // 4. Dispatch: serving LP, then packing inside the nodes.
          if (task.lpDispatch) lpChanged += (await lpServe(st, price)).changed;
          const viol = st.violation();
          if (!retry || viol < retry.viol || (viol === retry.viol && st.cost < retry.cost)) retry = { has: st.has.slice(), srv: st.srv.slice(), cost: st.cost, viol };
          const c = add(`traffic eps=${eps} theta=${theta.toFixed(3)} start=${r}`, packNodes(st, E, shape, lv, caps));
          c.feasible = planned[planned.length - 1].every((x, d) => x <= caps[d] * (1 + 1e-9)) && c.maxLoad <= limit * (1 + 1e-9);
          met ||= c.feasible;
        }
        if (met) break;
        from = [retry!];
      }
    }
  }

  // 5. Select.
  const within = (c: LayerCandidate): boolean => c.maxLoad <= (1 + task.eps) * M * (1 + 1e-9);
  const inter = (c: LayerCandidate): number => c.val?.interNodeBytes ?? c.interNodeBytes;
  const intra = (c: LayerCandidate): number => c.val?.intraNodeBytes ?? c.intraNodeBytes;
  let best = ref;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    const b = candidates[best];
    if (task.objective === 'time') {
      if ((c.val?.timeSeconds ?? c.timeSeconds) < (b.val?.timeSeconds ?? b.timeSeconds)) best = i;
    } else if (task.objective === 'traffic') {
      if (c.feasible && within(c) && (inter(c) < inter(b) || (inter(c) === inter(b) && intra(c) < intra(b)))) best = i;
    } else if (c.maxLoad < b.maxLoad) best = i;
  }
  if (task.objective === 'traffic') {
    // Validation traffic differences under 1% are noise: among those candidates, the one with
    // the least max load on the validation requests.
    const cut = inter(candidates[best]) * (1 + VALIDATION_TRAFFIC_TOLERANCE);
    const vmax = (c: LayerCandidate): number => c.val?.maxLoad ?? c.maxLoad;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i];
      if (c.feasible && within(c) && inter(c) <= cut && vmax(c) < vmax(candidates[best])) best = i;
    }
  }
  return {
    layer: task.layer,
    phy2log: layouts[best].phy2log,
    dispatch: layouts[best].dispatch,
    chosen: candidates[best].name,
    balancedMaxLoad: M,
    candidates,
    proposals,
    moves,
    lpChanged,
    cut: timeCut,
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

/**
 * Make a layout hold no two replicas of one expert on one GPU (EPLB may place them so; moe-placer's
 * plans never do) by swapping a duplicate with a slot of another GPU, of the same node first, that
 * can take it; in place. Node contents stay the same when the node has such a slot. Returns false
 * when some duplicate cannot be moved.
 */
function spreadReplicas(phy2log: Int32Array, shape: Shape): boolean {
  const { numGpus: NG, slotsPerGpu: S, gpusPerNode: G } = shape;
  const holds = (g: number, e: number): boolean => {
    for (let i = 0; i < S; i++) if (phy2log[g * S + i] === e) return true;
    return false;
  };
  for (let g = 0; g < NG; g++) {
    for (let i = 0; i < S; i++) {
      const e = phy2log[g * S + i];
      if (e < 0) continue;
      let dup = false;
      for (let j = 0; j < i; j++) if (phy2log[g * S + j] === e) dup = true;
      if (!dup) continue;
      let done = false;
      const node = Math.floor(g / G);
      // Other GPUs of the node first, then the rest of the cluster.
      for (let t = 1; t < G + NG && !done; t++) {
        const h = t < G ? node * G + ((g - node * G + t) % G) : (g + t - G + 1) % NG;
        if ((t >= G && Math.floor(h / G) === node) || holds(h, e)) continue;
        for (let x = 0; x < S && !done; x++) {
          const f = phy2log[h * S + x];
          if (f === e || (f >= 0 && holds(g, f))) continue;
          phy2log[h * S + x] = e;
          phy2log[g * S + i] = f;
          done = true;
        }
      }
      if (!done) return false;
    }
  }
  return true;
}
