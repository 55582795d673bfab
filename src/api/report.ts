/**
 * Reports: an evaluation as plain JSON-ready numbers (what `--json` prints).
 */
import { type Evaluation } from '../cost.js';
import { relativeGap } from '../plan.js';
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

/** An evaluation as plain numbers (no typed arrays), with the max-load bounds. */
export function metricsReport(ev: Evaluation, layerBounds: ArrayLike<number>, model: Model): MetricsReport {
  let bound = 0;
  for (let l = 0; l < layerBounds.length; l++) bound = Math.max(bound, layerBounds[l]);
  return {
    estimated: ev.estimated,
    mode: ev.mode,
    interNodeBytes: ev.interNodeBytes,
    intraNodeBytes: ev.intraNodeBytes,
    maxLoad: ev.maxLoad,
    meanLoad: ev.meanLoad,
    maxOverMean: ev.maxOverMean,
    balancedness: ev.balancedness,
    remoteNodesPerToken: ev.remoteNodesPerToken,
    timeSeconds: ev.timeSeconds,
    maxLoadLowerBound: bound,
    maxLoadGap: relativeGap(ev.maxLoad, bound),
    perLayer: ev.perLayer.map((m) => ({
      layer: m.layer,
      engineLayer: model.moeLayerIds[m.layer],
      tokens: m.tokens,
      interNodeBytes: m.interNodeBytes,
      intraNodeBytes: m.intraNodeBytes,
      maxLoad: m.maxLoad,
      meanLoad: m.meanLoad,
      maxOverMean: m.maxOverMean,
      balancedness: m.balancedness,
      remoteNodesPerToken: m.remoteNodesPerToken,
      dispatchSeconds: m.dispatchSeconds,
      computeSeconds: m.computeSeconds,
      combineSeconds: m.combineSeconds,
      timeSeconds: m.timeSeconds,
      maxLoadLowerBound: layerBounds[m.layer] ?? 0,
    })),
  };
}
