/**
 * `eplb`: DeepSeek's EPLB (the port is src/eplb.ts) as a solver: loads of every layer from the
 * workload, then `eplbPlacement`.
 */
import { InputError } from '../errors.js';
import { eplbPlacement, isHierarchical } from '../eplb.js';
import { expertLoadsOfLayer } from '../workload/tokens.js';
import type { SolveInput, SolveResult, Solver } from './types.js';

export * from '../eplb.js';

/** [L][E] expert loads of the solve input's workload, checked against the model. */
export function layerLoads(input: SolveInput): Float64Array[] {
  const L = input.model.moeLayerIds.length;
  const E = input.model.experts;
  const wl = input.workload;
  const wlLayers = wl.kind === 'counts' ? wl.counts.numLayers : wl.trace.numLayers;
  const wlExperts = wl.kind === 'counts' ? wl.counts.numExperts : wl.trace.numExperts;
  if (wlLayers !== L || wlExperts !== E) {
    throw new InputError(`workload has ${wlLayers} MoE layers x ${wlExperts} experts, model ${input.model.name} has ${L} x ${E}`, {
      file: wl.meta.path,
    });
  }
  const out: Float64Array[] = [];
  for (let l = 0; l < L; l++) out.push(expertLoadsOfLayer(wl, l));
  return out;
}

export const eplbSolver: Solver = {
  name: 'eplb',
  description:
    'DeepSeek EPLB: greedy replication by load per replica and balanced packing; expert groups kept on nodes when the node count divides the group count (hierarchical), global otherwise. Balances load only.',
  async solve(input: SolveInput): Promise<SolveResult> {
    const t0 = performance.now();
    const groups = input.model.groups ?? 1;
    const loads = layerLoads(input);
    input.onProgress?.({ stage: 'eplb', fraction: 0 });
    const placement = eplbPlacement(loads, input.model.experts, input.shape, groups);
    input.onProgress?.({ stage: 'eplb', fraction: 1 });
    return {
      placement,
      info: {
        policy: isHierarchical(groups, input.shape.nodes) ? 'hierarchical' : 'global',
        numGroups: isHierarchical(groups, input.shape.nodes) ? groups : 1,
        wallSeconds: (performance.now() - t0) / 1000,
      },
    };
  },
};
