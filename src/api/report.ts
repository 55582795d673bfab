/**
 * Reports: an evaluation as plain JSON-ready numbers (what `--json` prints).
 */
import { type Evaluation } from '../cost.js';
import { planMetrics, relativeGap } from '../plan.js';
import type { Mode, Model } from '../schemas.js';


export interface LayerReport {
  /** MoE layer index l. */
  layer: number;
  /** Engine layer id (model.moeLayerIds[l]). */
  engineLayer: number;
  tokens: number;
  interNodeBytes: number;
  intraNodeBytes: number;
  maxLoad: number;
  meanLoad: number;
  maxOverMean: number;
  balancedness: number;
  remoteNodesPerToken: number;
  dispatchSeconds: number;
  computeSeconds: number;
  combineSeconds: number;
  timeSeconds: number;
  maxLoadLowerBound: number;
}

export interface MetricsReport {
  /** Traffic estimated on tokens sampled from counts (no co-activation recorded). */
  estimated: boolean;
  mode: Mode;
  interNodeBytes: number;
  intraNodeBytes: number;
  maxLoad: number;
  meanLoad: number;
  maxOverMean: number;
  balancedness: number;
  remoteNodesPerToken: number;
  timeSeconds: number;
  maxLoadLowerBound: number;
  /** (maxLoad - bound) / maxLoad. */
  maxLoadGap: number;
  perLayer: LayerReport[];
}

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
