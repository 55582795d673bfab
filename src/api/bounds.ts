/**
 * Per-layer lower bounds filled into plans: max GPU load and inter-node bytes.
 */
import { coverageTrafficBound } from '../bounds/coverage.js';
import { maxLoadLowerBound } from '../bounds/max-load.js';
import type { Mode, Model } from '../schemas.js';
import type { Shape, TokenSets, Workload, WorkloadIndex } from '../types.js';
import { concatSets, expertLoadsOfLayer, tokenSetsOfLayer } from '../workload/tokens.js';
import { workloadShape } from './feasibility.js';


/**
 * [L] lower bound on the largest GPU load of layer l for any placement on `shape`
 * (`maxLoadLowerBound` of bounds/max-load.ts on the layer's expert loads).
 */
export function layerMaxLoadBounds(workload: Workload, shape: Shape): Float64Array {
  const L = workloadShape(workload).layers;
  const out = new Float64Array(L);
  for (let l = 0; l < L; l++) out[l] = maxLoadLowerBound(expertLoadsOfLayer(workload, l), shape.numGpus, shape.slotsPerGpu);
  return out;
}

/** Above this many (token, expert) pairs over all layers, `layerTrafficBounds` makes one pass per layer instead of two. */
const TRAFFIC_BOUND_TWO_PASS_PAIRS = 5e7;

/**
 * [L] lower bound on the inter-node bytes (dispatch + combine, in `mode`) of MoE layer l for ANY
 * placement on `shape` - any replica counts, any dispatch table (one replica each when P == E) -
 * from `coverageTrafficBound` of bounds/coverage.ts on every token of the layer; NaN where the exact tokens
 * are not known, and no bound is claimed: every layer of a counts-only workload (its traffic is
 * estimated on sampled tokens) and, with `index` (a streamed trace), the layers it kept only as a
 * sample. Traffic is never negative, so the sum of the finite entries bounds the total from below.
 *
 * With `index`, its exact token sets are used (they must be for `shape.numGpus` sources); else
 * the trace itself, with the sources of the cost model (`tokenSetsOfLayer`). Normal mode tries two
 * multiplier families (one when the trace has more than 5e7 (token, expert) pairs in all), so the
 * cost is one or two linear passes over the tokens per layer (~0.2 s for DeepSeek-V2-Lite's 26
 * layers x 94k tokens); low-latency mode one pass.
 */
export function layerTrafficBounds(workload: Workload, model: Model, shape: Shape, mode: Mode, index?: WorkloadIndex): Float64Array {
  const E = model.experts;
  const layerSets: (TokenSets | null)[] = [];
  if (index) {
    for (const layer of index.layers) {
      const exact = !index.estimated && !layer.sampled && index.numGpus === shape.numGpus;
      layerSets.push(exact ? (layer.valSets ? concatSets(layer.sets, layer.valSets) : layer.sets) : null);
    }
  } else if (workload.kind === 'trace') {
    const t = workload.trace;
    if (t.numLayers > 0) {
      const base = tokenSetsOfLayer(t, 0, shape.numGpus);
      for (let l = 0; l < t.numLayers; l++) layerSets.push({ ...base, experts: t.experts[l] });
    }
  } else {
    for (let l = 0; l < workload.counts.numLayers; l++) layerSets.push(null);
  }
  let pairs = 0;
  for (const ts of layerSets) if (ts) pairs += ts.n * ts.k;
  const families = pairs > TRAFFIC_BOUND_TWO_PASS_PAIRS ? 1 : 2;
  return Float64Array.from(layerSets, (tokens) =>
    tokens ? coverageTrafficBound({ tokens, numExperts: E, shape, model, mode }, { families }).bound : NaN,
  );
}
