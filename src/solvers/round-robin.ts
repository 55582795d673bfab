/**
 * Round-robin baseline: replica counts by greedy load per replica (as EPLB), then experts taken
 * by descending load, each expert's replicas one after another, dealt to GPUs 0, 1, ..., NG-1,
 * 0, 1, ... (the i-th replica dealt goes to GPU i mod NG, slot floor(i / NG) of that GPU). The
 * hottest experts therefore land on different GPUs, and the replicas of one expert land on
 * consecutive, distinct GPUs whenever it has at most NG replicas. No node awareness.
 */
import type { Placement, Shape } from '../types.js';
import { layerLoads, replicateExperts } from './eplb.js';
import type { SolveInput, SolveResult, Solver } from './types.js';

/**
 * Round-robin placement of one layer.
 * @param load [E] expert loads
 * @returns [P] phy2log
 */
export function roundRobinLayer(load: Float64Array, shape: Shape): Int32Array {
  const E = load.length;
  const { numGpus, slotsPerGpu, numSlots } = shape;
  const { logcnt } = replicateExperts(load, numSlots);
  const order = new Int32Array(E);
  for (let e = 0; e < E; e++) order[e] = e;
  order.sort((a, b) => load[b] - load[a] || a - b);
  const phy2log = new Int32Array(numSlots);
  let i = 0;
  for (let k = 0; k < E; k++) {
    const e = order[k];
    for (let r = 0; r < logcnt[e]; r++, i++) phy2log[(i % numGpus) * slotsPerGpu + Math.floor(i / numGpus)] = e;
  }
  return phy2log;
}

/** Round-robin placement of every layer. @param loads [L][E] */
export function roundRobinPlacement(loads: Float64Array[], numExperts: number, shape: Shape): Placement {
  return { numLayers: loads.length, numExperts, shape, phy2log: loads.map((w) => roundRobinLayer(w, shape)), dispatch: null };
}

export const roundRobinSolver: Solver = {
  name: 'round-robin',
  description: 'Replicas by load per replica, dealt round robin over GPUs with the hottest experts first (no node awareness).',
  async solve(input: SolveInput): Promise<SolveResult> {
    return { placement: roundRobinPlacement(layerLoads(input), input.model.experts, input.shape) };
  },
};
