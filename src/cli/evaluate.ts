/**
 * `moe-placer evaluate`: score a plan or engine placement file on a workload.
 */
import { evaluatePlan, layerMaxLoadBounds, metricsReport } from '../api.js';
import { str, type CommandSpec } from './args.js';
import { metricsTable } from './text.js';
import { type Mode } from '../schemas.js';
import type { Workload } from '../types.js';
import { countsWorkloadOf, isLargeTrace } from '../workload/stream.js';
import { evaluateStream, type Evaluation } from '../cost.js';
import {
  shapeFlags,
  jsonFlag,
  modeFlag,
  type Runner,
  loadWorkloadFlag,
  clusterLine,
  modelLine,
  workloadLines,
  header,
  workloadJson,
  clusterJson,
  json,
  loadPlanFlags,
  streamThreshold,
} from './common.js';

export const spec: CommandSpec = {
  name: 'evaluate',
  summary: 'score a plan (or an engine placement file) on a workload',
  usage: 'evaluate --plan FILE --workload W [--model M --cluster C [--nodes N --gpus-per-node G --slots-per-gpu S]] [--mode normal|low-latency] [--json]',
  flags: {
    plan: { kind: str('FILE'), help: 'moe-placer plan, or SGLang / EPLB / TensorRT-LLM / vllm-ascend placement', required: true },
    workload: { kind: str('W'), help: 'routing trace or per-layer counts', required: true },
    model: { kind: str('M'), help: "model (needed for engine placement files; overrides a plan's)" },
    cluster: { kind: str('C'), help: "cluster (needed for engine placement files; overrides a plan's)" },
    ...shapeFlags,
    ...modeFlag,
    ...jsonFlag,
  },
  details: ["The mode defaults to the plan's own (normal for engine files)."],
};

export const run: Runner = async (f, ctx) => {
  const loaded = loadPlanFlags(f);
  const { model, cluster, placement } = loaded;
  const workloadPath = f.workload as string;
  const mode = (f.mode as Mode | undefined) ?? loaded.plan.metrics?.mode ?? 'normal';
  let r: { evaluation: Evaluation; layerBounds: Float64Array };
  let workload: Workload;
  if (await isLargeTrace(workloadPath, { maxBytes: streamThreshold() })) {
    // Streamed: the trace is never held whole; bounds come from its exact expert loads.
    const ev = await evaluateStream({
      path: workloadPath,
      model,
      cluster,
      placement,
      options: { mode },
      onProgress: (read, total) => ctx.progress.update(`evaluating ${workloadPath}`, total > 0 ? read / total : undefined),
    });
    workload = countsWorkloadOf(ev.expertLoads, ev.meta);
    r = { evaluation: ev, layerBounds: layerMaxLoadBounds(workload, placement.shape) };
  } else {
    workload = await loadWorkloadFlag(workloadPath, model, ctx);
    ctx.progress.update('evaluate');
    r = evaluatePlan({ model, cluster, placement, workload, mode });
  }
  ctx.progress.clear();
  const report = metricsReport(r.evaluation, r.layerBounds, model);
  const planPath = f.plan as string;
  const solver = loaded.plan.provenance?.solver;
  if (f.json) {
    ctx.out(
      json({
        command: 'evaluate',
        plan: planPath,
        planFormat: loaded.format,
        solver: solver ?? null,
        model: model.name,
        cluster: clusterJson(cluster),
        workload: workloadJson(workload, workloadPath),
        ...report,
      }),
    );
  } else {
    const what = loaded.format === 'plan' ? (solver ? `plan by ${solver}` : 'plan') : `${loaded.format} placement`;
    ctx.out(
      header(`moe-placer evaluate: ${planPath} (${what}), ${report.mode} mode`, [
        ['model', modelLine(model)],
        ['cluster', clusterLine(cluster)],
        ['workload', workloadLines(workload, workloadPath)[0]],
      ]),
    );
    ctx.out(metricsTable(report));
  }
  return 0;
};
