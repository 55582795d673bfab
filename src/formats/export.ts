/**
 * Plans out to serving engines and simulators. Every format is text; `importPlacement`
 * (import.ts) reads the engine formats back.
 *
 * - `sglang`: SGLang `--init-expert-location FILE.json`: `{"physical_to_logical_map": [NL][P]}`
 *   with one row per decoder layer of the engine (model.numHiddenLayers; SGLang's
 *   `ModelConfigForExpertLocation.num_layers` is `config.num_hidden_layers`, e.g. 61 for
 *   DeepSeek-V3) and P = all slots of the EP group. Dense layers have no experts and SGLang never
 *   reads their rows, but the tensor must be rectangular with valid ids, so they get SGLang's own
 *   trivial map `p mod E` (what `init_trivial` builds). SGLang derives its logical -> physical
 *   maps itself; its `static` dispatch picks a replica on the source GPU when there is one, else a
 *   seeded random replica, so dispatch tables of a plan are not conveyed.
 * - `eplb`: DeepSeek EPLB's output tensors as JSON, also vLLM's EPLB state layout
 *   (`physical_to_logical_map`, `logical_to_physical_map`, `logical_replica_count` over MoE
 *   layers): `{"phy2log": [L][P], "log2phy": [L][E][P-E+1] (slots ascending, padded -1),
 *   "logcnt": [L][E]}`.
 * - `trtllm`: TensorRT-LLM wide-EP `moe_load_balancer.yaml` (see yaml.ts): `num_slots: P`,
 *   `initial_global_assignments: {<engine layer id>: [P expert ids]}`, `layer_updates_per_iter: 0`.
 * - `vllm-ascend`: vllm-ascend `expert_map` JSON: `{"moe_layer_count": L, "layer_list": [{"layer_id":
 *   l (MoE layer index), "device_count": NG, "device_list": [{"device_id": g, "device_expert":
 *   [the S expert ids on device g, slot order]}]}]}`.
 * - `traffic-csv`: a tidy CSV for simulators, header
 *   `kind,layer,engine_layer,src_gpu,dst_gpu,src_node,dst_node,bytes,load`. Per MoE layer, one
 *   `traffic` row per ordered GPU pair (s, d), s != d, with non-zero bytes = dispatch + combine
 *   bytes sent from s to d under the cost model (bytes filled, load empty), then one `load` row
 *   per GPU g (src_gpu = g, dst_gpu empty, load = expert load in (token, expert) pairs, bytes
 *   empty). Needs an evaluation made with `trafficMatrix: true`.
 *
 * Engines need every slot to hold an expert: a plan with an empty slot (-1) is refused for the
 * engine formats (InputError naming the slot).
 */
import type { Evaluation } from '../cost.js';
import { InputError } from '../errors.js';
import { formatJson } from '../plan.js';
import type { Model, PlanFile } from '../schemas.js';
import { writeTrtllmYaml } from './yaml.js';

export const EXPORT_FORMATS = ['sglang', 'eplb', 'trtllm', 'vllm-ascend', 'traffic-csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** True when `s` names an export format. */
export function isExportFormat(s: string): s is ExportFormat {
  return (EXPORT_FORMATS as readonly string[]).includes(s);
}

/** The plan in `format`, as text ending with a newline. */
export function exportPlan(plan: PlanFile, format: ExportFormat, evaluation?: Evaluation): string {
  switch (format) {
    case 'sglang':
      return exportSglang(plan);
    case 'eplb':
      return exportEplb(plan);
    case 'trtllm':
      return exportTrtllm(plan);
    case 'vllm-ascend':
      return exportVllmAscend(plan);
    case 'traffic-csv':
      if (!evaluation) throw new InputError('traffic-csv needs an evaluation of the plan (with trafficMatrix)', { field: 'format' });
      return exportTrafficCsv(plan, evaluation);
    default:
      throw new InputError(`unknown export format "${format as string}"; known: ${EXPORT_FORMATS.join(', ')}`, { field: 'format' });
  }
}

/** Refuse plans with empty slots for engine formats. */
function requireFullSlots(plan: PlanFile, format: string): void {
  for (let l = 0; l < plan.phy2log.length; l++) {
    const p = plan.phy2log[l].indexOf(-1);
    if (p >= 0) {
      throw new InputError(`slot ${p} of MoE layer ${l} is empty; ${format} needs every slot to hold an expert`, { field: `plan.phy2log[${l}][${p}]` });
    }
  }
}

/** SGLang `--init-expert-location` JSON: [numHiddenLayers][P], dense rows trivial. */
export function exportSglang(plan: PlanFile): string {
  requireFullSlots(plan, 'SGLang');
  const { model } = plan;
  const P = plan.phy2log[0]?.length ?? 0;
  const E = model.experts;
  const trivial = Array.from({ length: P }, (_, p) => p % E);
  const moeIndex = new Map<number, number>();
  model.moeLayerIds.forEach((id, l) => moeIndex.set(id, l));
  const rows: number[][] = [];
  for (let id = 0; id < model.numHiddenLayers; id++) {
    const l = moeIndex.get(id);
    rows.push(l === undefined ? trivial : plan.phy2log[l]);
  }
  return formatJson({ physical_to_logical_map: rows }, '') + '\n';
}

/**
 * SGLang's other `--init-expert-location` form, `{"logical_count": [numHiddenLayers][E]}` (zero
 * rows for dense layers): the per-expert loads from which SGLang runs its own EPLB at start-up.
 * This is a workload, not a plan: use it to let SGLang rebalance by itself.
 * @param loads [L][E] expert loads of the MoE layers
 */
export function sglangLogicalCount(loads: readonly ArrayLike<number>[], model: Model): string {
  if (loads.length !== model.moeLayerIds.length) {
    throw new InputError(`${loads.length} layers of loads, ${model.name} has ${model.moeLayerIds.length} MoE layers`);
  }
  const zero = new Array<number>(model.experts).fill(0);
  const rows: number[][] = Array.from({ length: model.numHiddenLayers }, () => zero);
  model.moeLayerIds.forEach((id, l) => {
    if (loads[l].length !== model.experts) throw new InputError(`${loads[l].length} experts, expected ${model.experts}`, { field: `logical_count[${id}]` });
    rows[id] = Array.from(loads[l]);
  });
  return formatJson({ logical_count: rows }, '') + '\n';
}

/** EPLB / vLLM tensors: phy2log [L][P], log2phy [L][E][P-E+1] padded -1, logcnt [L][E]. */
export function exportEplb(plan: PlanFile): string {
  requireFullSlots(plan, 'EPLB');
  const E = plan.model.experts;
  const P = plan.phy2log[0]?.length ?? 0;
  const width = P - E + 1;
  const log2phy: number[][][] = [];
  const logcnt: number[][] = [];
  for (const row of plan.phy2log) {
    const slots: number[][] = Array.from({ length: E }, () => []);
    row.forEach((e, p) => slots[e].push(p));
    log2phy.push(slots.map((s) => s.concat(new Array<number>(width - s.length).fill(-1))));
    logcnt.push(slots.map((s) => s.length));
  }
  return formatJson({ phy2log: plan.phy2log, log2phy, logcnt }, '') + '\n';
}

/** TensorRT-LLM `moe_load_balancer.yaml`, keyed by engine layer id. */
export function exportTrtllm(plan: PlanFile): string {
  requireFullSlots(plan, 'TensorRT-LLM');
  return writeTrtllmYaml({
    numSlots: plan.phy2log[0]?.length ?? 0,
    layerUpdatesPerIter: 0,
    assignments: plan.model.moeLayerIds.map((layerId, l) => ({ layerId, experts: plan.phy2log[l] })),
  });
}

/** vllm-ascend expert_map JSON. */
export function exportVllmAscend(plan: PlanFile): string {
  requireFullSlots(plan, 'vllm-ascend');
  const { nodes, gpusPerNode } = plan.cluster;
  const NG = nodes * gpusPerNode;
  const S = plan.slotsPerGpu;
  const doc = {
    moe_layer_count: plan.phy2log.length,
    layer_list: plan.phy2log.map((row, l) => ({
      layer_id: l,
      device_count: NG,
      device_list: Array.from({ length: NG }, (_, g) => ({ device_id: g, device_expert: row.slice(g * S, (g + 1) * S) })),
    })),
  };
  return formatJson(doc, '') + '\n';
}

export const TRAFFIC_CSV_HEADER = 'kind,layer,engine_layer,src_gpu,dst_gpu,src_node,dst_node,bytes,load';

/** Tidy traffic + load CSV (layout in the module comment). */
export function exportTrafficCsv(plan: PlanFile, ev: Evaluation): string {
  const { nodes, gpusPerNode } = plan.cluster;
  const NG = nodes * gpusPerNode;
  const L = plan.phy2log.length;
  if (!ev.trafficMatrix) throw new InputError('traffic-csv needs an evaluation made with trafficMatrix: true', { field: 'evaluation.trafficMatrix' });
  if (ev.trafficMatrix.length !== L || ev.loads.length !== L) {
    throw new InputError(`the evaluation covers ${ev.trafficMatrix.length} layers, the plan ${L}`, { field: 'evaluation' });
  }
  const out: string[] = [TRAFFIC_CSV_HEADER];
  for (let l = 0; l < L; l++) {
    const m = ev.trafficMatrix[l];
    const loads = ev.loads[l];
    if (m.length !== NG * NG || loads.length !== NG) throw new InputError(`evaluation layer ${l} is not for ${NG} GPUs`, { field: `evaluation.trafficMatrix[${l}]` });
    const id = plan.model.moeLayerIds[l];
    for (let s = 0; s < NG; s++) {
      const sn = Math.floor(s / gpusPerNode);
      for (let d = 0; d < NG; d++) {
        const b = m[s * NG + d];
        if (s === d || b === 0) continue;
        out.push(`traffic,${l},${id},${s},${d},${sn},${Math.floor(d / gpusPerNode)},${b},`);
      }
    }
    for (let g = 0; g < NG; g++) out.push(`load,${l},${id},${g},,${Math.floor(g / gpusPerNode)},,,${loads[g]}`);
  }
  return out.join('\n') + '\n';
}
