/**
 * From the per-GPU counters of a layer to bytes, times and balance figures (DESIGN.md, "The cost
 * model"), and the types of the evaluator's results.
 */
import type { Cluster, CostOptions, Mode, Model } from '../schemas.js';
import type { LayerAccumulator } from './accumulator.js';

/** Metrics of one MoE layer. Bytes count dispatch + combine; loads are weighted (token, expert) pairs. */
export interface LayerMetrics {
  /** MoE layer index l (0..L-1, not the engine layer id). */
  layer: number;
  /** Weighted tokens of the layer. */
  tokens: number;
  /** RDMA bytes, dispatch + combine. */
  interNodeBytes: number;
  /** NVLink bytes, dispatch + combine, including the landing GPUs' forwards. */
  intraNodeBytes: number;
  dispatchSeconds: number;
  computeSeconds: number;
  combineSeconds: number;
  /**
   * Dispatch + combine seconds the busiest RDMA link (one GPU's NIC, either direction) needs on its
   * own: its messages x (dispatch + combine bytes) / RDMA bandwidth. With `nvlinkSeconds`:
   * dispatchSeconds + combineSeconds = max(rdmaSeconds, nvlinkSeconds), so the larger of the two
   * says which link binds the all-to-all.
   */
  rdmaSeconds: number;
  /** The same for the busiest NVLink port (messages x (dispatch + combine bytes) / NVLink bandwidth). */
  nvlinkSeconds: number;
  /** dispatch + compute + combine, or their max with `overlap`. */
  timeSeconds: number;
  /** Largest GPU load. */
  maxLoad: number;
  /** Mean GPU load (total load / GPUs). */
  meanLoad: number;
  /** meanLoad / maxLoad (1 when no load), vLLM's balancedness. */
  balancedness: number;
  /** maxLoad / meanLoad (1 when no load). */
  maxOverMean: number;
  /** Mean over (weighted) tokens of the number of remote nodes a token touches. */
  remoteNodesPerToken: number;
}

/** Metrics of a placement on a workload, per layer and over all layers. */
export interface Evaluation {
  /** True when traffic was estimated on sampled tokens (counts-only workload). */
  estimated: boolean;
  mode: Mode;
  perLayer: LayerMetrics[];
  /** Sum over layers. */
  interNodeBytes: number;
  /** Sum over layers. */
  intraNodeBytes: number;
  /** Max over layers of the layer's max GPU load. */
  maxLoad: number;
  /** Mean over layers of the layer's mean GPU load. */
  meanLoad: number;
  /** Mean over layers of per-layer balancedness. */
  balancedness: number;
  /** Mean over layers of per-layer max/mean load. */
  maxOverMean: number;
  /** Remote nodes touched per token-layer (weighted over all layers' tokens). */
  remoteNodesPerToken: number;
  /** Sum over layers. */
  timeSeconds: number;
  /** [L][NG] per-GPU load. */
  loads: Float64Array[];
  /** Optional [L][NG*NG] dispatch + combine bytes from GPU s (row) to GPU d (column). */
  trafficMatrix?: Float64Array[];
}

/** @internal Sum of a typed array. */
export function sum(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** Compute FLOP/s of the cluster's GPU for the model's compute dtype. */
export function gpuFlops(model: Model, cluster: Cluster): number {
  return model.computeDtype === 'fp8' ? cluster.gpu.fp8Flops : cluster.gpu.bf16Flops;
}

/**
 * Metrics of the layer accumulated in `acc` (bytes from messages, times from the GPU spec).
 * Does not modify `acc`.
 */
export function finishLayer(acc: LayerAccumulator, layer: number, model: Model, cluster: Cluster, opts: CostOptions): LayerMetrics {
  const NG = acc.shape.numGpus;
  const db = model.dispatchBytesPerToken;
  const cb = model.combineBytesPerToken;
  const rdmaBw = cluster.gpu.rdmaBandwidth;
  const nvlBw = cluster.gpu.nvlinkBandwidth;
  const { load, rdmaOut, rdmaIn, nvlOut, nvlIn } = acc;
  let maxLoad = 0;
  let totalLoad = 0;
  let worstRdma = 0; // largest per-GPU RDMA messages in either direction
  let worstNvl = 0;
  let rdmaMsgs = 0;
  let nvlMsgs = 0;
  for (let g = 0; g < NG; g++) {
    if (load[g] > maxLoad) maxLoad = load[g];
    totalLoad += load[g];
    worstRdma = Math.max(worstRdma, rdmaOut[g], rdmaIn[g]);
    worstNvl = Math.max(worstNvl, nvlOut[g], nvlIn[g]);
    rdmaMsgs += rdmaOut[g];
    nvlMsgs += nvlOut[g];
  }
  // Combine sends the same messages back: GPU d's combine out = its dispatch in, so the worst
  // direction of each link is the same and only the bytes per message change.
  const dispatchSeconds = Math.max((worstRdma * db) / rdmaBw, (worstNvl * db) / nvlBw);
  const combineSeconds = Math.max((worstRdma * cb) / rdmaBw, (worstNvl * cb) / nvlBw);
  const computeSeconds = (maxLoad * model.expertFlopsPerToken) / (gpuFlops(model, cluster) * opts.efficiency);
  const timeSeconds = opts.overlap
    ? Math.max(dispatchSeconds, computeSeconds, combineSeconds)
    : dispatchSeconds + computeSeconds + combineSeconds;
  const meanLoad = totalLoad / NG;
  const tokens = sum(acc.tokens);
  return {
    layer,
    tokens,
    interNodeBytes: rdmaMsgs * (db + cb),
    intraNodeBytes: nvlMsgs * (db + cb),
    dispatchSeconds,
    computeSeconds,
    combineSeconds,
    rdmaSeconds: (worstRdma * (db + cb)) / rdmaBw,
    nvlinkSeconds: (worstNvl * (db + cb)) / nvlBw,
    timeSeconds,
    maxLoad,
    meanLoad,
    balancedness: maxLoad > 0 ? meanLoad / maxLoad : 1,
    maxOverMean: meanLoad > 0 ? maxLoad / meanLoad : 1,
    remoteNodesPerToken: tokens > 0 ? sum(acc.remoteNodes) / tokens : 0,
  };
}

/**
 * [NG*NG] dispatch + combine bytes from GPU s (row) to GPU d (column) of the layer in `acc`
 * (which must have been built with `withMatrix`): dispatch messages s->d plus the combine replies
 * of the messages d->s.
 */
export function trafficMatrixOf(acc: LayerAccumulator, model: Model): Float64Array {
  const m = acc.matrix;
  if (m === null) throw new Error('trafficMatrixOf: accumulator was built without a matrix');
  const NG = acc.shape.numGpus;
  const out = new Float64Array(NG * NG);
  const db = model.dispatchBytesPerToken;
  const cb = model.combineBytesPerToken;
  for (let s = 0; s < NG; s++) {
    for (let d = 0; d < NG; d++) out[s * NG + d] = m[s * NG + d] * db + m[d * NG + s] * cb;
  }
  return out;
}

