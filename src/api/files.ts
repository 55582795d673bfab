/**
 * Placement files: read a plan or engine placement, export a plan in an engine or simulator format.
 */
import { readFileSync } from 'node:fs';
import { type Evaluation } from '../cost.js';
import { InputError } from '../errors.js';
import { EXPORT_FORMATS, exportPlan, isExportFormat, type ExportFormat } from '../formats/export.js';
import { detectImportFormat, importPlacement, type ImportFormat } from '../formats/import.js';
import { buildPlanFile, clusterOfPlan, parseJsonText, readPlanFile, shapeOfCluster } from '../plan.js';
import type { Cluster, Mode, Model, PlanFile } from '../schemas.js';
import type { Placement, Workload } from '../types.js';
import { evaluatePlan } from './plan.js';

export interface LoadedPlacement {
  /** The plan file (for engine formats: built from the placement, without metrics). */
  plan: PlanFile;
  placement: Placement;
  model: Model;
  cluster: Cluster;
  /** Format the file was read as. */
  format: ImportFormat;
}

/**
 * Read a placement file: a moe-placer plan (`format` key; `model` / `cluster`, when given,
 * override its echo and must match its shape), a minimal `{"phy2log", "dispatch"?}` or an engine
 * placement (SGLang, EPLB / vLLM, TensorRT-LLM YAML, vllm-ascend; detected from the content),
 * which need `model` and `cluster`. Errors are InputErrors naming the file and field.
 */
export function loadPlacement(path: string, opts: { model?: Model; cluster?: Cluster } = {}): LoadedPlacement {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder, expected a placement file' : `cannot read: ${(err as Error).message}`, { file: path });
  }
  const format = detectImportFormat(text);
  if (format === null) {
    if (text.trimStart().startsWith('{')) parseJsonText(text, path); // a syntax error names the line
    throw new InputError('not a placement: expected a moe-placer plan, SGLang, EPLB / vLLM, TensorRT-LLM or vllm-ascend placement file', { file: path });
  }
  const minimal = format === 'eplb' && /"dispatch"\s*:/.test(text) && !/"logcnt"\s*:/.test(text);
  if (format === 'plan' || minimal) {
    const r = readPlanFile(path, opts);
    return { ...r, format: format === 'plan' ? 'plan' : 'eplb' };
  }
  if (!opts.model || !opts.cluster) {
    throw new InputError(`a ${format} placement carries no model or cluster: give them (--model, --cluster)`, { file: path });
  }
  const { model, cluster } = opts;
  const placement = importPlacement(text, format, model, shapeOfCluster(cluster), path);
  const planFile = buildPlanFile({ model, cluster, placement });
  return { plan: planFile, placement, model, cluster, format };
}

export interface ExportArgs {
  plan: PlanFile;
  format: ExportFormat | string;
  /** Needed for `traffic-csv` unless `evaluation` (with trafficMatrix) is given. */
  workload?: Workload;
  /** Mode for the `traffic-csv` evaluation; default the plan's metrics mode, else `normal`. */
  mode?: Mode;
  evaluation?: Evaluation;
  /** The placement of `plan` (read back from the plan when absent). */
  placement?: Placement;
  model?: Model;
  cluster?: Cluster;
}

/** The plan in an engine or simulator format, as text (see formats/export.ts). */
export function exportPlanFile(args: ExportArgs): string {
  const { plan: planFile, format } = args;
  if (!isExportFormat(format)) throw new InputError(`unknown export format "${format}"; known: ${EXPORT_FORMATS.join(', ')}`, { field: 'format' });
  if (format !== 'traffic-csv') return exportPlan(planFile, format);
  let evaluation = args.evaluation;
  if (!evaluation?.trafficMatrix) {
    if (!args.workload) throw new InputError('traffic-csv needs the workload the traffic is counted on (--workload)', { field: 'workload' });
    const model = args.model ?? planFile.model;
    const cluster = args.cluster ?? clusterOfPlan(planFile);
    const placement = args.placement ?? placementOfPlan(planFile, model, cluster);
    evaluation = evaluatePlan({
      model,
      cluster,
      placement,
      workload: args.workload,
      mode: args.mode ?? planFile.metrics?.mode ?? 'normal',
      trafficMatrix: true,
    }).evaluation;
  }
  return exportPlan(planFile, format, evaluation);
}

export { clusterOfPlan };

function placementOfPlan(p: PlanFile, model: Model, cluster: Cluster): Placement {
  const shape = shapeOfCluster(cluster);
  const E = model.experts;
  return {
    numLayers: p.phy2log.length,
    numExperts: E,
    shape,
    phy2log: p.phy2log.map((r) => Int32Array.from(r)),
    dispatch: p.dispatch ? p.dispatch.map((layer) => Int32Array.from(layer.flat())) : null,
  };
}
