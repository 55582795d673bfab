/**
 * DeepSeek EPLB (Expert Parallelism Load Balancer), written from its published description
 * (github.com/deepseek-ai/EPLB README): replicate heavy experts, pack replicas onto GPUs so GPU
 * loads are even, and, when the number of nodes divides the number of expert groups, keep each
 * expert group on one node (hierarchical policy); otherwise replicate and pack globally.
 *
 * Faithfulness to the reference (so plans and per-GPU loads match what SGLang / vLLM compute):
 * - Arithmetic is float32 like EPLB's `weight.float()`: every input load, every load/count ratio
 *   and every running pack sum is rounded with `Math.fround` (DeepSeek-V3 group and GPU sums
 *   exceed 2^24, so they do round). Group sums are summed left to right (torch may use another order; it
 *   only matters within float32 rounding of an exact tie between two groups).
 * - `weight.sort(descending=True)` ties: equal weights keep ascending index order (what a stable
 *   sort gives). Tied items have equal weight, so their order never changes a pack's load, only
 *   which of two equal-weight items goes where (for groups, that steers the later steps).
 * - `(weight / logcnt).max(dim=-1).indices` ties: the lowest index wins (torch returns the first
 *   maximal value).
 * - Python `min(packs_with_room, key=pack_weights)` ties: the lowest pack index wins.
 * - `balancedPacking` with one item per pack is the identity (EPLB's shortcut), not a sort.
 * With these rules the README's worked example is reproduced exactly (test/eplb.test.ts).
 *
 * Shapes in the doc comments: L layers, E logical experts, P physical experts (slots) per layer,
 * X = P - E + 1 (EPLB's log2phy width: at most X replicas of one expert).
 */
import { InfeasibleError, InputError } from './errors.js';
import type { Placement, Shape } from './types.js';

const f32 = Math.fround;

/**
 * Pack n weighted items into `numPacks` packs of exactly n / numPacks items each, heaviest item
 * first onto the lightest pack that still has room.
 * @param weight [n] item weights
 * @returns pack [n] pack of each item; rankInPack [n] position of the item inside its pack
 */
export function balancedPacking(weight: Float64Array, numPacks: number): { pack: Int32Array; rankInPack: Int32Array } {
  const n = weight.length;
  if (!Number.isInteger(numPacks) || numPacks <= 0 || n % numPacks !== 0) {
    throw new InputError(`balancedPacking: ${n} items do not split evenly into ${numPacks} packs`);
  }
  const perPack = n / numPacks;
  const pack = new Int32Array(n);
  const rankInPack = new Int32Array(n);
  if (perPack === 1) {
    for (let i = 0; i < n; i++) pack[i] = i;
    return { pack, rankInPack };
  }
  const order = sortDescending(weight);
  const packWeight = new Float64Array(numPacks);
  const packItems = new Int32Array(numPacks);
  for (let idx = 0; idx < n; idx++) {
    const item = order[idx];
    let best = -1;
    for (let p = 0; p < numPacks; p++) {
      if (packItems[p] < perPack && (best < 0 || packWeight[p] < packWeight[best])) best = p;
    }
    pack[item] = best;
    rankInPack[item] = packItems[best];
    packWeight[best] = f32(packWeight[best] + f32(weight[item]));
    packItems[best]++;
  }
  return { pack, rankInPack };
}

/**
 * Replicate n logical experts into numPhy physical experts: each extra replica goes to the expert
 * with the largest load per replica (float32 ratio, lowest index on ties).
 * @param weight [n] expert loads
 * @returns phy2log [numPhy] logical expert of each physical expert (phy2log[i] = i for i < n);
 *   rank [numPhy] replica rank of each physical expert; logcnt [n] replicas per expert
 */
export function replicateExperts(weight: Float64Array, numPhy: number): { phy2log: Int32Array; rank: Int32Array; logcnt: Int32Array } {
  const n = weight.length;
  if (numPhy < n) throw new InfeasibleError(`${numPhy} physical experts cannot hold ${n} logical experts`);
  const phy2log = new Int32Array(numPhy);
  const rank = new Int32Array(numPhy);
  const logcnt = new Int32Array(n).fill(1);
  const w = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    phy2log[j] = j;
    w[j] = f32(weight[j]);
  }
  for (let i = n; i < numPhy; i++) {
    let best = 0;
    let bestVal = f32(w[0] / logcnt[0]);
    for (let j = 1; j < n; j++) {
      const v = f32(w[j] / logcnt[j]);
      if (v > bestVal) {
        bestVal = v;
        best = j;
      }
    }
    phy2log[i] = best;
    rank[i] = logcnt[best];
    logcnt[best]++;
  }
  return { phy2log, rank, logcnt };
}

/** One layer of `rebalanceExperts`. */
export interface EplbLayer {
  /** [P] logical expert of each slot. */
  phy2log: Int32Array;
  /** [P] replica rank of each slot (0 = first replica). */
  rank: Int32Array;
  /** [E] replicas per logical expert. */
  logcnt: Int32Array;
}

/** True when EPLB uses its hierarchical policy (nodes divide groups). */
export function isHierarchical(numGroups: number, numNodes: number): boolean {
  return numGroups % numNodes === 0;
}

/**
 * EPLB's hierarchical policy on one layer: pack expert groups onto nodes (balanced), replicate
 * experts within each node (greedy load / count), pack each node's physical experts onto its GPUs
 * (balanced). The global policy is this with numGroups = numNodes = 1.
 * @param weight [E] expert loads of the layer
 */
export function rebalanceLayerHierarchical(
  weight: Float64Array,
  numPhysical: number,
  numGroups: number,
  numNodes: number,
  numGpus: number,
): EplbLayer {
  const E = weight.length;
  if (E % numGroups !== 0) throw new InputError(`${E} experts do not split into ${numGroups} groups`);
  if (numGroups % numNodes !== 0) throw new InputError(`${numGroups} groups do not split over ${numNodes} nodes`);
  if (numGpus % numNodes !== 0) throw new InputError(`${numGpus} GPUs do not split over ${numNodes} nodes`);
  if (numPhysical % numGpus !== 0) throw new InputError(`${numPhysical} physical experts do not split over ${numGpus} GPUs`);
  if (numPhysical < E) throw new InfeasibleError(`${numPhysical} slots cannot hold ${E} experts: give at least ${Math.ceil(E / numGpus)} slots per GPU`);
  const groupSize = E / numGroups;
  const groupsPerNode = numGroups / numNodes;
  const expertsPerNode = E / numNodes;
  const phyPerNode = numPhysical / numNodes;
  const phyPerGpu = numPhysical / numGpus;
  const gpusPerNode = numGpus / numNodes;

  // Step 1: groups -> nodes. Meta-logical id: experts renumbered node by node.
  const groupLoad = new Float64Array(numGroups);
  for (let g = 0; g < numGroups; g++) {
    let s = 0;
    for (let j = 0; j < groupSize; j++) s = f32(s + f32(weight[g * groupSize + j]));
    groupLoad[g] = s;
  }
  const groups = balancedPacking(groupLoad, numNodes);
  const log2mlog = new Int32Array(E);
  const mlog2log = new Int32Array(E);
  for (let g = 0; g < numGroups; g++) {
    const base = (groups.pack[g] * groupsPerNode + groups.rankInPack[g]) * groupSize;
    for (let j = 0; j < groupSize; j++) {
      log2mlog[g * groupSize + j] = base + j;
      mlog2log[base + j] = g * groupSize + j;
    }
  }

  const phy2log = new Int32Array(numPhysical);
  const rank = new Int32Array(numPhysical);
  const logcnt = new Int32Array(E);
  const nodeLoad = new Float64Array(expertsPerNode);
  const phyLoad = new Float64Array(phyPerNode);
  const pphy2phy = new Int32Array(phyPerNode);
  for (let node = 0; node < numNodes; node++) {
    // Step 2: replicate within the node.
    for (let i = 0; i < expertsPerNode; i++) nodeLoad[i] = f32(weight[mlog2log[node * expertsPerNode + i]]);
    const rep = replicateExperts(nodeLoad, phyPerNode);
    // Step 3: pack the node's physical experts onto its GPUs.
    for (let i = 0; i < phyPerNode; i++) phyLoad[i] = f32(nodeLoad[rep.phy2log[i]] / rep.logcnt[rep.phy2log[i]]);
    const packed = balancedPacking(phyLoad, gpusPerNode);
    for (let i = 0; i < phyPerNode; i++) pphy2phy[packed.pack[i] * phyPerGpu + packed.rankInPack[i]] = i;
    for (let j = 0; j < phyPerNode; j++) {
      const i = pphy2phy[j];
      const slot = node * phyPerNode + j;
      phy2log[slot] = mlog2log[node * expertsPerNode + rep.phy2log[i]];
      rank[slot] = rep.rank[i];
    }
    for (let i = 0; i < expertsPerNode; i++) logcnt[mlog2log[node * expertsPerNode + i]] = rep.logcnt[i];
  }
  return { phy2log, rank, logcnt };
}

/**
 * EPLB's entry point.
 * @param weight [L][E] expert loads per layer
 * @param numReplicas P physical experts per layer (a multiple of numGpus)
 * @param numGroups expert groups (1 = no group limit)
 * @param numNodes server nodes; hierarchical policy when numNodes divides numGroups, else global
 * @param numGpus GPUs in all (a multiple of numNodes)
 * @returns phy2log [L][P]; rank [L][P] replica rank of each slot; log2phy [L][E][X] slots of each
 *   expert indexed by replica rank, padded with -1 (X = P - E + 1, EPLB's width); logcnt [L][E]
 */
export function rebalanceExperts(
  weight: Float64Array[],
  numReplicas: number,
  numGroups: number,
  numNodes: number,
  numGpus: number,
): { phy2log: Int32Array[]; rank: Int32Array[]; log2phy: Int32Array[][]; logcnt: Int32Array[] } {
  const hier = isHierarchical(numGroups, numNodes);
  const out = { phy2log: [] as Int32Array[], rank: [] as Int32Array[], log2phy: [] as Int32Array[][], logcnt: [] as Int32Array[] };
  for (const w of weight) {
    const layer = hier
      ? rebalanceLayerHierarchical(w, numReplicas, numGroups, numNodes, numGpus)
      : rebalanceLayerHierarchical(w, numReplicas, 1, 1, numGpus);
    const E = w.length;
    const X = numReplicas - E + 1;
    const l2p: Int32Array[] = [];
    for (let e = 0; e < E; e++) l2p.push(new Int32Array(X).fill(-1));
    for (let p = 0; p < numReplicas; p++) l2p[layer.phy2log[p]][layer.rank[p]] = p;
    out.phy2log.push(layer.phy2log);
    out.rank.push(layer.rank);
    out.log2phy.push(l2p);
    out.logcnt.push(layer.logcnt);
  }
  return out;
}

/**
 * EPLB placement of every layer for a cluster shape: P = shape.numSlots replicas, the model's
 * expert groups (1 when it has none, i.e. the global policy).
 * @param loads [L][E] expert loads
 */
export function eplbPlacement(loads: Float64Array[], numExperts: number, shape: Shape, numGroups = 1): Placement {
  const phy2log: Int32Array[] = [];
  const hier = isHierarchical(numGroups, shape.nodes);
  for (const w of loads) {
    if (w.length !== numExperts) throw new InputError(`expert loads have ${w.length} experts, expected ${numExperts}`);
    const layer = hier
      ? rebalanceLayerHierarchical(w, shape.numSlots, numGroups, shape.nodes, shape.numGpus)
      : rebalanceLayerHierarchical(w, shape.numSlots, 1, 1, shape.numGpus);
    phy2log.push(layer.phy2log);
  }
  return { numLayers: loads.length, numExperts, shape, phy2log, dispatch: null };
}

/** Indices of `weight` sorted by descending value; ties keep ascending index (stable). */
function sortDescending(weight: Float64Array): Int32Array {
  const n = weight.length;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = f32(weight[i]);
  order.sort((a, b) => w[b] - w[a] || a - b);
  return order;
}

