/**
 * Reports: an evaluation as plain JSON-ready numbers (what `--json` prints).
 */
import { type Evaluation } from '../cost.js';
import { planMetrics, relativeGap, type PlanMetrics } from '../plan.js';
import type { Model } from '../schemas.js';


/** One MoE layer: the plan file's per-layer metrics and more. */
export type LayerReport = PlanMetrics['perLayer'][number] & {
  /** Engine layer id (model.moeLayerIds[layer]). */
  engineLayer: number;
  tokens: number;
  maxOverMean: number;
  remoteNodesPerToken: number;
  dispatchSeconds: number;
  computeSeconds: number;
  combineSeconds: number;
  maxLoadLowerBound: number;
};

/** The plan file's metrics block (`estimated`: traffic estimated on tokens sampled from counts) with the bounds. */
export type MetricsReport = Omit<PlanMetrics, 'perLayer'> & {
  maxLoadLowerBound: number;
  /** (maxLoad - bound) / maxLoad. */
  maxLoadGap: number;
  perLayer: LayerReport[];
};

/**
 * An evaluation as plain numbers (no typed arrays), with the max-load bounds: the plan file's
 * metrics block (`planMetrics`) with more per-layer fields and the bounds.
 */
export function metricsReport(ev: Evaluation, layerBounds: ArrayLike<number>, model: Model): MetricsReport {
  let bound = 0;
  for (let l = 0; l < layerBounds.length; l++) bound = Math.max(bound, layerBounds[l]);
  const { perLayer, ...totals } = planMetrics(ev);
  return {
    ...totals,
    maxLoadLowerBound: bound,
    maxLoadGap: relativeGap(ev.maxLoad, bound),
    perLayer: ev.perLayer.map((m, i) => ({
      ...perLayer[i],
      engineLayer: model.moeLayerIds[m.layer],
      tokens: m.tokens,
      maxOverMean: m.maxOverMean,
      remoteNodesPerToken: m.remoteNodesPerToken,
      dispatchSeconds: m.dispatchSeconds,
      computeSeconds: m.computeSeconds,
      combineSeconds: m.combineSeconds,
      maxLoadLowerBound: layerBounds[m.layer] ?? 0,
    })),
  };
}
