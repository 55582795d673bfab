/**
 * Engine placement files back into a Placement: SGLang `--init-expert-location` JSON, EPLB / vLLM
 * tensors JSON, TensorRT-LLM `moe_load_balancer.yaml`, vllm-ascend `expert_map` JSON, and
 * moe-placer plans (formats in export.ts). `auto` detects the format from the content. Errors
 * are InputErrors naming the file, the line (YAML) and the field.
 */
import { InputError, type InputLocation } from '../errors.js';
import { logcntOf, validatePlacement } from '../placement.js';
import { parseJsonText, placementFromJson } from '../plan.js';
import type { Model } from '../schemas.js';
import type { Placement, Shape } from '../types.js';
import { parseTrtllmYaml } from './yaml.js';

export const IMPORT_FORMATS = ['sglang', 'eplb', 'trtllm', 'vllm-ascend', 'plan'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/** Which format `text` is in, from its content; null when none fits. */
export function detectImportFormat(text: string): ImportFormat | null {
  const t = text.trimStart();
  if (t.startsWith('{')) {
    let doc: unknown;
    try {
      doc = JSON.parse(t);
    } catch {
      return null;
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return null;
    const o = doc as Record<string, unknown>;
    if ('format' in o) return 'plan';
    if ('physical_to_logical_map' in o) return 'sglang';
    if ('layer_list' in o) return 'vllm-ascend';
    if ('phy2log' in o) return 'eplb';
    return null;
  }
  return /^initial_global_assignments\s*:/m.test(text) ? 'trtllm' : null;
}

/**
 * A Placement from an engine file's text. `model` and `shape` say what the file must describe
 * (layers, experts, slots); the result passes `validatePlacement`. Dispatch tables come only from
 * moe-placer plans; other formats get the default rule (dispatch null).
 */
export function importPlacement(text: string, format: ImportFormat | 'auto', model: Model, shape: Shape, file: string): Placement {
  const fmt = format === 'auto' ? detectImportFormat(text) : format;
  if (fmt === null) {
    throw new InputError(`cannot tell the placement format; expected one of ${IMPORT_FORMATS.join(', ')}`, { file });
  }
  const loc: InputLocation = { file };
  let phy2log: Int32Array[];
  switch (fmt) {
    case 'plan':
      return placementFromJson(parseJsonObject(text, file), model, shape, file, 'plan.');
    case 'sglang':
      phy2log = importSglang(parseJsonObject(text, file), model, shape, loc);
      break;
    case 'eplb':
      phy2log = importEplb(parseJsonObject(text, file), model, shape, loc);
      break;
    case 'trtllm':
      phy2log = importTrtllm(text, model, shape, file);
      break;
    case 'vllm-ascend':
      phy2log = importVllmAscend(parseJsonObject(text, file), model, shape, loc);
      break;
    default:
      throw new InputError(`unknown placement format "${fmt as string}"; known: ${IMPORT_FORMATS.join(', ')}`, { field: 'format' });
  }
  const placement: Placement = { numLayers: model.moeLayerIds.length, numExperts: model.experts, shape, phy2log, dispatch: null };
  try {
    validatePlacement(placement, fmt);
  } catch (err) {
    if (err instanceof InputError) throw new InputError(err.problems.slice(), loc);
    throw err;
  }
  return placement;
}

function parseJsonObject(text: string, file: string): Record<string, unknown> {
  const doc = parseJsonText(text, file);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InputError('expected a JSON object', { file });
  return doc as Record<string, unknown>;
}

/** One row of P expert ids in 0..E-1 (engines have no empty slots). */
function expertRow(v: unknown, field: string, P: number, E: number, loc: InputLocation): Int32Array {
  if (!Array.isArray(v)) throw new InputError('expected an array of expert ids', { ...loc, field });
  if (v.length !== P) throw new InputError(`${v.length} slots, expected ${P}`, { ...loc, field });
  const row = new Int32Array(P);
  for (let p = 0; p < P; p++) {
    const x = v[p];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= E) {
      throw new InputError(`${JSON.stringify(x)} is not an expert id in 0..${E - 1}`, { ...loc, field: `${field}[${p}]` });
    }
    row[p] = x;
  }
  return row;
}

/**
 * SGLang: `physical_to_logical_map` with one row per engine layer (numHiddenLayers); the MoE
 * layers' rows are taken. A map with exactly L rows (MoE layers only) is accepted as well.
 */
function importSglang(doc: Record<string, unknown>, model: Model, shape: Shape, loc: InputLocation): Int32Array[] {
  const field = 'physical_to_logical_map';
  const rows = doc[field];
  const L = model.moeLayerIds.length;
  if (!Array.isArray(rows)) throw new InputError('expected an array of layers', { ...loc, field });
  let ids: readonly number[];
  if (rows.length === model.numHiddenLayers) ids = model.moeLayerIds;
  else if (rows.length === L) ids = model.moeLayerIds.map((_, l) => l);
  else throw new InputError(`${rows.length} layers, expected ${model.numHiddenLayers} (every layer of ${model.name}) or ${L} (its MoE layers)`, { ...loc, field });
  return ids.map((i) => expertRow(rows[i], `${field}[${i}]`, shape.numSlots, model.experts, loc));
}

/** EPLB / vLLM tensors: phy2log [L][P]; logcnt and log2phy, when present, must agree. */
function importEplb(doc: Record<string, unknown>, model: Model, shape: Shape, loc: InputLocation): Int32Array[] {
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const rows = doc.phy2log;
  if (!Array.isArray(rows)) throw new InputError('expected an array of layers', { ...loc, field: 'phy2log' });
  if (rows.length !== L) throw new InputError(`${rows.length} layers, expected ${L} MoE layers of ${model.name}`, { ...loc, field: 'phy2log' });
  const phy2log = rows.map((r, l) => expertRow(r, `phy2log[${l}]`, shape.numSlots, E, loc));
  const logcnt = doc.logcnt;
  if (logcnt !== undefined) {
    if (!Array.isArray(logcnt) || logcnt.length !== L) throw new InputError(`expected ${L} layers`, { ...loc, field: 'logcnt' });
    for (let l = 0; l < L; l++) {
      const want = logcntOf(phy2log[l], E);
      const got = logcnt[l];
      if (!Array.isArray(got) || got.length !== E) throw new InputError(`expected ${E} counts`, { ...loc, field: `logcnt[${l}]` });
      for (let e = 0; e < E; e++) {
        if (got[e] !== want[e]) throw new InputError(`${JSON.stringify(got[e])}, but phy2log holds ${want[e]} replicas of expert ${e}`, { ...loc, field: `logcnt[${l}][${e}]` });
      }
    }
  }
  const log2phy = doc.log2phy;
  if (log2phy !== undefined) {
    if (!Array.isArray(log2phy) || log2phy.length !== L) throw new InputError(`expected ${L} layers`, { ...loc, field: 'log2phy' });
    for (let l = 0; l < L; l++) {
      const layer = log2phy[l];
      if (!Array.isArray(layer) || layer.length !== E) throw new InputError(`expected ${E} experts`, { ...loc, field: `log2phy[${l}]` });
      const cnt = logcntOf(phy2log[l], E);
      for (let e = 0; e < E; e++) {
        const slots = layer[e];
        const field = `log2phy[${l}][${e}]`;
        if (!Array.isArray(slots)) throw new InputError('expected an array of slots', { ...loc, field });
        let n = 0;
        for (const p of slots) {
          if (p === -1) continue;
          if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p >= shape.numSlots || phy2log[l][p] !== e) {
            throw new InputError(`slot ${JSON.stringify(p)} does not hold expert ${e} in phy2log`, { ...loc, field });
          }
          n++;
        }
        if (n !== cnt[e]) throw new InputError(`${n} slots, but phy2log holds ${cnt[e]} replicas of expert ${e}`, { ...loc, field });
      }
    }
  }
  return phy2log;
}

/** TensorRT-LLM YAML: num_slots = P, one assignment per MoE engine layer id. */
function importTrtllm(text: string, model: Model, shape: Shape, file: string): Int32Array[] {
  const lb = parseTrtllmYaml(text, file);
  if (lb.numSlots !== shape.numSlots) {
    throw new InputError(`${lb.numSlots}, but the cluster has ${shape.numSlots} slots (${shape.numGpus} GPUs x ${shape.slotsPerGpu})`, { file, field: 'num_slots' });
  }
  const byId = new Map(lb.assignments.map((a) => [a.layerId, a]));
  const moe = new Set(model.moeLayerIds);
  for (const a of lb.assignments) {
    if (!moe.has(a.layerId)) {
      throw new InputError(`layer ${a.layerId} is not a MoE layer of ${model.name} (MoE layers ${model.moeLayerIds[0]}..${model.moeLayerIds[model.moeLayerIds.length - 1]})`, {
        file,
        line: a.line,
        field: `initial_global_assignments.${a.layerId}`,
      });
    }
  }
  return model.moeLayerIds.map((id) => {
    const a = byId.get(id);
    if (!a) throw new InputError(`missing MoE layer ${id}`, { file, field: `initial_global_assignments.${id}` });
    return expertRow(a.experts, `initial_global_assignments.${id}`, shape.numSlots, model.experts, { file, line: a.line });
  });
}

/** vllm-ascend expert_map: per MoE layer, per device, the S experts of its slots. */
function importVllmAscend(doc: Record<string, unknown>, model: Model, shape: Shape, loc: InputLocation): Int32Array[] {
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const { numGpus: NG, slotsPerGpu: S } = shape;
  if (doc.moe_layer_count !== L) throw new InputError(`${JSON.stringify(doc.moe_layer_count)}, expected ${L} MoE layers of ${model.name}`, { ...loc, field: 'moe_layer_count' });
  const layers = doc.layer_list;
  if (!Array.isArray(layers) || layers.length !== L) throw new InputError(`expected ${L} layers`, { ...loc, field: 'layer_list' });
  const out: (Int32Array | undefined)[] = new Array(L);
  layers.forEach((layer: unknown, i: number) => {
    const lf = `layer_list[${i}]`;
    const o = layer as Record<string, unknown>;
    if (o === null || typeof o !== 'object') throw new InputError('expected an object', { ...loc, field: lf });
    const l = o.layer_id;
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 0 || l >= L) throw new InputError(`${JSON.stringify(l)} is not a MoE layer index 0..${L - 1}`, { ...loc, field: `${lf}.layer_id` });
    if (out[l]) throw new InputError(`layer ${l} given twice`, { ...loc, field: `${lf}.layer_id` });
    if (o.device_count !== NG) throw new InputError(`${JSON.stringify(o.device_count)}, expected ${NG} devices`, { ...loc, field: `${lf}.device_count` });
    const devices = o.device_list;
    if (!Array.isArray(devices) || devices.length !== NG) throw new InputError(`expected ${NG} devices`, { ...loc, field: `${lf}.device_list` });
    const row = new Int32Array(NG * S).fill(-1);
    const seen = new Uint8Array(NG);
    devices.forEach((dev: unknown, j: number) => {
      const df = `${lf}.device_list[${j}]`;
      const d = dev as Record<string, unknown>;
      const g = d?.device_id ?? j;
      if (typeof g !== 'number' || !Number.isInteger(g) || g < 0 || g >= NG || seen[g]) {
        throw new InputError(`${JSON.stringify(g)} is not a new device id in 0..${NG - 1}`, { ...loc, field: `${df}.device_id` });
      }
      seen[g] = 1;
      const ids = expertRow(d.device_expert, `${df}.device_expert`, S, E, loc);
      row.set(ids, g * S);
    });
    out[l] = row;
  });
  return out as Int32Array[];
}
