/**
 * `moe-placer plan`: run a solver on a workload and write the plan.
 */
import { availableParallelism } from 'node:os';
import { SOLVERS } from '../solvers/registry.js';
import { checkFeasibility, loadPlacement, metricsReport, plan as planApi, type PlanArgs } from '../api.js';
import { InputError } from '../errors.js';
import type { RebalanceResult } from '../migrate/rebalance.js';
import { nonNegInt, nonNegNumber, oneOf, posInt, posNumber, str, type CommandSpec, type ParsedFlags } from './args.js';
import { bytesText, metricsTable, num } from './text.js';
import { writePlanFile } from '../plan.js';
import { ObjectiveSchema, type Cluster, type Mode, type Model, type Objective } from '../schemas.js';
import { indexOptionsFor } from '../workload/indexer.js';
import { isLargeTrace, streamIndex, workloadOfIndex, type StreamedIndex } from '../workload/stream.js';
import {
  jsonFlag,
  modeFlag,
  type Runner,
  resolveModelFlag,
  clusterFromFlags,
  clusterFlags,
  checkOutFile,
  loadWorkloadFlag,
  solverProgress,
  clusterLine,
  modelLine,
  workloadLines,
  header,
  workloadJson,
  clusterJson,
  json,
  interruptible,
  streamThreshold,
} from './common.js';

export const spec: CommandSpec = {
  name: 'plan',
  summary: 'place the experts of a model on a cluster for a workload and write the plan',
  usage:
    'plan --model M (--cluster C [--nodes N --gpus-per-node G --slots-per-gpu S] | --nodes N --gpus-per-node G --slots-per-gpu S [--gpu NAME]) --workload W [--solver NAME] [--objective balance|traffic|time] [--mode normal|low-latency] [--seed N] [--time-limit SEC] [--workers N] [--eps X] [--from CURRENT [--max-moved-experts N | --max-moved-bytes B]] --out plan.json [--json]',
  flags: {
    model: { kind: str('M'), help: 'model preset name or model JSON file', required: true },
    ...clusterFlags,
    workload: { kind: str('W'), help: 'routing trace or per-layer counts (file or folder; format detected from content)', required: true },
    solver: { kind: oneOf(Object.keys(SOLVERS)), help: 'placement algorithm (default optimize)' },
    objective: { kind: oneOf(ObjectiveSchema.options), help: 'what to minimise (default traffic)' },
    ...modeFlag,
    seed: { kind: nonNegInt, help: 'random seed (default 0); same seed, same plan' },
    'time-limit': { kind: posNumber, help: 'wall-clock budget of the search in seconds' },
    workers: { kind: posInt, help: 'worker threads (default: CPUs, at most 8)' },
    eps: { kind: nonNegNumber, help: 'max-load slack of the traffic objective (default 0.02)' },
    from: { kind: str('CURRENT'), help: 'the running plan (or engine placement file): keep its experts in place, record the moves' },
    'max-moved-experts': { kind: nonNegInt, help: 'with --from: copy at most N expert weights in all' },
    'max-moved-bytes': { kind: nonNegNumber, help: 'with --from: copy at most B bytes of expert weights in all' },
    out: { kind: str('FILE'), help: 'where to write the plan JSON', required: true },
    ...jsonFlag,
  },
  details: [
    'Ctrl-C stops the search and writes the best plan so far, marked provenance.interrupted (exit code 130).',
    'With --from, the new plan is relabelled (nodes, GPUs in a node, slots in a GPU) to keep what it can where it is; when',
    'that still moves more than the budget, the running plan is rebalanced with at most the budget of copies instead.',
    'The plan records every copy (expert, from GPU, to GPU, bytes, NVLink or RDMA), a schedule in rounds and its time.',
  ],
};

// Commands

export const run: Runner = async (f, ctx) => {
  const out = f.out as string;
  const model = resolveModelFlag(f.model as string);
  const { cluster, gpuNote } = clusterFromFlags(f, model);
  checkFeasibility(model, cluster);
  checkOutFile(out);
  const solver = (f.solver as string | undefined) ?? 'optimize';
  const from = fromFlags(f, model, cluster);
  const { signal, dispose } = interruptible(ctx, `the best plan so far will be written to ${out}`);
  try {
    const workloadPath = f.workload as string;
    // A trace too large to load is indexed in one streamed pass (bounded memory).
    let index: StreamedIndex | undefined;
    if (await isLargeTrace(workloadPath, { maxBytes: streamThreshold() })) {
      index = await streamIndex(workloadPath, model, cluster.nodes * cluster.gpusPerNode, {
        seed: (f.seed as number | undefined) ?? 0,
        // As optimize indexes a loaded trace (src/solvers/optimize.ts buildLayerTasks).
        ...indexOptionsFor(solver, (f.objective as Objective | undefined) ?? 'traffic', cluster.nodes),
        onProgress: (read, total) => ctx.progress.update(`indexing ${workloadPath}`, total > 0 ? read / total : undefined),
      });
      ctx.progress.clear();
    }
    const workload = index ? workloadOfIndex(index) : await loadWorkloadFlag(workloadPath, model, ctx);
    if (signal.aborted) {
      ctx.progress.note('interrupted before planning: no plan written');
      return 130;
    }
    const r = await planApi({
      model,
      cluster,
      workload,
      solver,
      objective: f.objective as Objective | undefined,
      mode: f.mode as Mode | undefined,
      seed: f.seed as number | undefined,
      timeLimitSeconds: f['time-limit'] as number | undefined,
      workers: (f.workers as number | undefined) ?? Math.max(1, Math.min(8, availableParallelism())),
      eps: f.eps as number | undefined,
      onProgress: solverProgress(ctx, solver),
      signal,
      index,
      from,
    });
    ctx.progress.clear();
    // r.plan is as plan() built it: written as it is.
    writePlanFile(out, r.plan, true);
    const prov = r.plan.provenance!;
    const report = metricsReport(r.evaluation, r.layerBounds, model);
    if (f.json) {
      ctx.out(
        json({
          command: 'plan',
          out,
          solver,
          objective: prov.objective,
          seed: prov.seed,
          interrupted: prov.interrupted === true,
          wallTimeSeconds: prov.wallTimeSeconds,
          model: model.name,
          cluster: clusterJson(cluster),
          ...(gpuNote ? { notes: [gpuNote] } : {}),
          workload: workloadJson(workload, workloadPath),
          ...report,
          interNodeBytesLowerBound: r.plan.bounds?.interNodeBytesLowerBound ?? null,
          interNodeBytesGap: r.plan.bounds?.interNodeBytesGap ?? null,
          migration: r.plan.migration ? { ...r.plan.migration, moves: undefined } : null,
        }),
      );
    } else {
      ctx.out(
        header(`moe-placer plan: ${solver}, objective ${prov.objective}, ${report.mode} mode, seed ${prov.seed}`, [
          ['model', modelLine(model)],
          ['cluster', clusterLine(cluster) + (gpuNote ? `; ${gpuNote}` : '')],
          ['workload', workloadLines(workload, workloadPath)[0]],
        ]),
      );
      const b = r.plan.bounds;
      ctx.out(metricsTable(report, b?.interNodeBytesLowerBound !== undefined ? { bound: b.interNodeBytesLowerBound, gap: b.interNodeBytesGap ?? 0 } : undefined));
      if (r.rebalance) ctx.out(migrationText(r.rebalance, from!.maxMovedExperts, model.expertBytes));
      ctx.out(`\n${prov.interrupted ? 'interrupted: wrote the best plan so far' : 'wrote'} ${out} (${num(prov.wallTimeSeconds, 2)} s)\n`);
    }
    if (prov.interrupted) {
      ctx.progress.note(`interrupted: ${out} holds the best plan found so far (provenance.interrupted = true)`);
      return 130;
    }
    return 0;
  } finally {
    dispose();
  }
};

/** --from and its budget: the running placement (same model and shape) and the move limit. */
function fromFlags(f: ParsedFlags, model: Model, cluster: Cluster): PlanArgs['from'] {
  const experts = f['max-moved-experts'] as number | undefined;
  const bytes = f['max-moved-bytes'] as number | undefined;
  if (f.from === undefined) {
    if (experts !== undefined || bytes !== undefined) throw new InputError(`--${experts !== undefined ? 'max-moved-experts' : 'max-moved-bytes'}: a move budget needs --from CURRENT`);
    return undefined;
  }
  if (experts !== undefined && bytes !== undefined) throw new InputError('--max-moved-bytes: give --max-moved-experts or --max-moved-bytes, not both');
  const path = f.from as string;
  let placement;
  try {
    placement = loadPlacement(path, { model, cluster }).placement;
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    const c = cluster;
    let own = '';
    try {
      const p = loadPlacement(path);
      own = `; the running plan is for ${p.model.name} (${p.model.moeLayerIds.length} x ${p.model.experts}) on --nodes ${p.cluster.nodes} --gpus-per-node ${p.cluster.gpusPerNode} --slots-per-gpu ${p.cluster.slotsPerGpu}`;
    } catch {
      // an engine file or an unreadable plan: its own shape is unknown
    }
    throw new InputError([
      ...err.problems.map((p) => `--from: ${p}`),
      `--from: re-placing needs a running plan of the same model and shape: here ${model.name} (${model.moeLayerIds.length} MoE layers x ${model.experts} experts) on ${c.nodes} nodes x ${c.gpusPerNode} GPUs x ${c.slotsPerGpu} slots${own}`,
    ]);
  }
  const maxMovedExperts = bytes !== undefined ? Math.floor(bytes / model.expertBytes) : experts;
  return { placement, maxMovedExperts, path };
}

function migrationText(r: RebalanceResult, budget: number | undefined, expertBytes: number): string {
  const m = r.migration;
  const how =
    r.method === 'replan'
      ? `re-plan aligned with the running plan${budget !== undefined ? ` (within the budget of ${num(budget)} experts)` : ''}`
      : `running plan rebalanced within the budget of ${num(budget!)} experts (the re-plan would move ${num(r.replanMoves)})`;
  return (
    `\nmigration: ${how}\n` +
    `  moves ${num(m.movedExperts)} experts (${bytesText(m.movedBytes)}; ${num(m.nvlinkMoves)} over NVLink, ${num(m.rdmaMoves)} over RDMA; ` +
    `${num(expertBytes / 1e6, 1)} MB each) in ${num(m.rounds)} rounds (at least ${num(m.minRounds)}), est. ${num(m.estimatedSeconds, 2)} s of copying\n`
  );
}
