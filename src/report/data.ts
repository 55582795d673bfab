/**
 * The data of the HTML report, JSON-ready: what the page shows is drawn from this object, and the
 * page embeds it whole (`<script type="application/json" id="report-data">`), so every number on
 * the page can be checked against it.
 *
 * - `plan`: one placement (and a baseline, EPLB by default, side by side) scored on one workload:
 *   per layer the GPU x GPU traffic matrix (dispatch + combine bytes, from the evaluator's
 *   `trafficMatrix`; node x node above `MAX_GPU_HEATMAP` GPUs), the per-GPU loads with the layer's
 *   max-load lower bound, and the time split (dispatch / compute / combine).
 * - `compare`: the result of `compare` (compare.ts).
 * - `replay`: a `moe-placer replay --json` document (report/replay.ts).
 */
import { evaluatePlan, toolVersion } from '../api.js';
import { performanceOf, type CompareResult, type Performance } from '../compare.js';
import type { Cluster, Mode, Model } from '../schemas.js';
import type { Placement, Workload } from '../types.js';
import type { Replay } from './replay.js';

export const REPORT_FORMAT = 'moe-placer.report/1';

/** Above this many GPUs the traffic heatmap is node x node (a GPU x GPU matrix per layer would be too large to embed). */
export const MAX_GPU_HEATMAP = 64;

/** Whole-run figures of one placement on the report's workload. */
export interface PlacementSummary extends Performance {
  interNodeBytes: number;
  intraNodeBytes: number;
  remoteNodesPerToken: number;
  balancedness: number;
  maxOverMean: number;
  maxLoad: number;
}

export interface LayerView {
  interNodeBytes: number;
  intraNodeBytes: number;
  balancedness: number;
  maxLoad: number;
  meanLoad: number;
  dispatchSeconds: number;
  computeSeconds: number;
  combineSeconds: number;
  timeSeconds: number;
}

/** One placement as the report draws it. */
export interface PlacementView {
  /** e.g. `optimize`, `eplb`, a file name. */
  name: string;
  summary: PlacementSummary;
  /** [L] per MoE layer. */
  perLayer: LayerView[];
  /** [L][NG] per-GPU load (weighted token-expert pairs, 2 decimals). */
  loads: number[][];
  /** [L][U*U] dispatch + combine bytes from unit s (row) to unit d (column), integers; U = `units`. */
  traffic: number[][];
}

export interface PlanSection {
  model: string;
  cluster: { name: string; gpu: string; nodes: number; gpusPerNode: number; slotsPerGpu: number };
  mode: Mode;
  /** What the placements are scored on. */
  workload: string;
  /** Traffic estimated on tokens sampled from counts. */
  estimated: boolean;
  /** [L] MoE layer, engine layer id and the layer's max-load lower bound (any placement of the shape). */
  layers: { layer: number; engineLayer: number; maxLoadLowerBound: number }[];
  /** Traffic matrices per GPU, or per node above MAX_GPU_HEATMAP GPUs. */
  trafficUnit: 'gpu' | 'node';
  /** Rows (= columns) of each traffic matrix. */
  units: number;
  /** The layer shown first: the one with the most inter-node bytes for `plan`. */
  defaultLayer: number;
  plan: PlacementView;
  baseline: PlacementView | null;
  notes: string[];
}

export interface ReportData {
  format: typeof REPORT_FORMAT;
  title: string;
  tool: string;
  version: string;
  notes: string[];
  plan?: PlanSection;
  compare?: CompareResult;
  replay?: Replay;
}

export interface PlanSectionArgs {
  model: Model;
  cluster: Cluster;
  workload: Workload;
  /** Label of the workload (e.g. its path and split). */
  workloadLabel: string;
  mode: Mode;
  plan: { name: string; placement: Placement };
  baseline?: { name: string; placement: Placement };
  notes?: string[];
  /**
   * Show the figures for a batch of this many tokens (every scored token weighted alike; times,
   * bytes and loads scale linearly, see `performanceOf`); default the workload as recorded.
   */
  batchTokens?: number;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** [U*U] of a [NG*NG] matrix x f summed over node blocks (U = nodes), or the matrix itself x f, rounded to integers. */
function trafficView(m: Float64Array, NG: number, G: number, perNode: boolean, f: number): number[] {
  if (!perNode) return Array.from(m, (x) => Math.round(x * f));
  const N = NG / G;
  const out = new Float64Array(N * N);
  for (let s = 0; s < NG; s++) {
    const a = Math.floor(s / G);
    for (let d = 0; d < NG; d++) out[a * N + Math.floor(d / G)] += m[s * NG + d];
  }
  return Array.from(out, (x) => Math.round(x * f));
}

/** One placement evaluated on the section's workload, with traffic matrices. */
function placementView(a: PlanSectionArgs, name: string, placement: Placement, perNode: boolean): { view: PlacementView; bounds: number[] } {
  const { model, cluster } = a;
  const NG = cluster.nodes * cluster.gpusPerNode;
  const { evaluation: ev, layerBounds } = evaluatePlan({ model, cluster, placement, workload: a.workload, mode: a.mode, trafficMatrix: true });
  const perf = performanceOf(ev, NG, a.batchTokens);
  const f = perf.batchScale;
  const view: PlacementView = {
    name,
    summary: {
      ...perf,
      interNodeBytes: ev.interNodeBytes * f,
      intraNodeBytes: ev.intraNodeBytes * f,
      remoteNodesPerToken: ev.remoteNodesPerToken,
      balancedness: ev.balancedness,
      maxOverMean: ev.maxOverMean,
      maxLoad: ev.maxLoad * f,
    },
    perLayer: ev.perLayer.map((m) => ({
      interNodeBytes: m.interNodeBytes * f,
      intraNodeBytes: m.intraNodeBytes * f,
      balancedness: m.balancedness,
      maxLoad: m.maxLoad * f,
      meanLoad: m.meanLoad * f,
      dispatchSeconds: m.dispatchSeconds * f,
      computeSeconds: m.computeSeconds * f,
      combineSeconds: m.combineSeconds * f,
      timeSeconds: m.timeSeconds * f,
    })),
    loads: ev.loads.map((row) => Array.from(row, (x) => round2(x * f))),
    traffic: ev.trafficMatrix!.map((m) => trafficView(m, NG, cluster.gpusPerNode, perNode, f)),
  };
  return { view, bounds: Array.from(layerBounds, (b) => b * f) };
}

/**
 * The plan section of a report: `plan` (and `baseline`) evaluated on `workload` in `mode` with
 * traffic matrices. Pure apart from the evaluation's work; no I/O.
 */
export function planSection(a: PlanSectionArgs): PlanSection {
  const { model, cluster } = a;
  const NG = cluster.nodes * cluster.gpusPerNode;
  const perNode = NG > MAX_GPU_HEATMAP;
  const main = placementView(a, a.plan.name, a.plan.placement, perNode);
  const base = a.baseline ? placementView(a, a.baseline.name, a.baseline.placement, perNode).view : null;
  let defaultLayer = 0;
  main.view.perLayer.forEach((m, l) => {
    if (m.interNodeBytes > main.view.perLayer[defaultLayer].interNodeBytes) defaultLayer = l;
  });
  const notes = [...(a.notes ?? [])];
  if (a.workload.kind === 'counts') notes.push('per-layer counts: loads are exact; traffic (and so the heatmaps) is estimated on tokens sampled from the counts');
  if (a.batchTokens !== undefined) notes.push(`figures for a batch of ${Math.round(a.batchTokens)} tokens: every scored token weighted alike (times, bytes and loads scale linearly in the cost model)`);
  if (perNode) notes.push(`${NG} GPUs: the traffic heatmaps are node x node (bytes summed over each pair of nodes, the diagonal is NVLink traffic inside a node)`);
  return {
    model: model.name,
    cluster: { name: cluster.name, gpu: cluster.gpu.name, nodes: cluster.nodes, gpusPerNode: cluster.gpusPerNode, slotsPerGpu: cluster.slotsPerGpu },
    mode: a.mode,
    workload: a.workloadLabel,
    estimated: a.workload.kind === 'counts',
    layers: main.bounds.map((b, l) => ({ layer: l, engineLayer: model.moeLayerIds[l], maxLoadLowerBound: round2(b) })),
    trafficUnit: perNode ? 'node' : 'gpu',
    units: perNode ? cluster.nodes : NG,
    defaultLayer,
    plan: main.view,
    baseline: base,
    notes,
  };
}

/** A report around its sections. */
export function reportData(title: string, sections: { plan?: PlanSection; compare?: CompareResult; replay?: Replay }, notes: string[] = []): ReportData {
  return {
    format: REPORT_FORMAT,
    title,
    tool: 'moe-placer',
    version: toolVersion(),
    notes,
    ...(sections.plan ? { plan: sections.plan } : {}),
    ...(sections.compare ? { compare: sections.compare } : {}),
    ...(sections.replay ? { replay: sections.replay } : {}),
  };
}
