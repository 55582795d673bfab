/**
 * The engines' default placement: slot p holds logical expert p mod E in every layer (SGLang's
 * `init_trivial`, vLLM and TensorRT-LLM without a load balancer). Ignores the workload.
 */
import { InfeasibleError } from '../errors.js';
import type { Placement, Shape } from '../types.js';
import type { SolveInput, SolveResult, Solver } from './types.js';

/** [L][P] phy2log with slot p -> expert p mod E. */
export function contiguousPlacement(numLayers: number, numExperts: number, shape: Shape): Placement {
  if (shape.numSlots < numExperts) {
    throw new InfeasibleError(
      `${shape.numSlots} slots (${shape.numGpus} GPUs x ${shape.slotsPerGpu}) cannot hold ${numExperts} experts: give at least ${Math.ceil(numExperts / shape.numGpus)} slots per GPU`,
    );
  }
  const row = new Int32Array(shape.numSlots);
  for (let p = 0; p < shape.numSlots; p++) row[p] = p % numExperts;
  const phy2log: Int32Array[] = [];
  for (let l = 0; l < numLayers; l++) phy2log.push(row.slice());
  return { numLayers, numExperts, shape, phy2log, dispatch: null };
}

export const contiguousSolver: Solver = {
  name: 'contiguous',
  description: "The engines' default: slot p holds expert p mod E (no load information used).",
  async solve(input: SolveInput): Promise<SolveResult> {
    return { placement: contiguousPlacement(input.model.moeLayerIds.length, input.model.experts, input.shape) };
  },
};
