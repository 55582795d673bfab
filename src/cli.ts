/**
 * The `moe-placer` command line: a thin shell over the library API (api.ts). `bin/moe-placer.js`
 * calls `main(argv)` and exits with the code it returns:
 * 0 success, 1 solver failure or unexpected error, 2 invalid input, 130 interrupted (SIGINT).
 *
 * Commands: plan, evaluate, export, generate, presets, demo, help; `--version`. Flags are parsed
 * by cli/args.ts; results go to stdout (a readable summary, or JSON with `--json`); progress goes
 * to stderr when it is a terminal (cli/progress.ts); errors are one line each on stderr, prefixed
 * `moe-placer: `, without a stack trace unless MOE_PLACER_DEBUG=1. Output files are written
 * atomically and only after success.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { SOLVERS } from '../solvers/registry.js';
import type { SolveProgress } from '../solvers/types.js';
import {
  checkFeasibility,
  evaluatePlan,
  exportPlanFile,
  layerMaxLoadBounds,
  loadPlacement,
  metricsReport,
  plan as planApi,
  toolVersion,
  type LoadedPlacement,
  type MetricsReport,
} from './api.js';
import { bool, commandHelp, closest, nonNegInt, nonNegNumber, oneOf, parseFlags, posInt, posNumber, str, type CommandSpec, type ParsedFlags } from './cli/args.js';
import { Progress } from './cli/progress.js';
import { bytesText, change, load, metricsTable, ms, num, table } from './cli/report.js';
import { InputError, MoePlacerError } from './errors.js';
import { EXPORT_FORMATS } from './formats/export.js';
import { generateTrace } from './generator.js';
import { writeFileAtomic, writePlanFile } from './plan.js';
import { CLUSTER_PRESETS, GPU_PRESETS, MODEL_PRESETS, resolveCluster, resolveGpu, resolveModel } from './presets.js';
import { ModeSchema, ModelSchema, ObjectiveSchema, type Cluster, type Mode, type Model, type Objective } from './schemas.js';
import type { Counts, Workload } from './types.js';
import { loadWorkload, writeTrace } from './workload/index.js';
import { indexOptionsFor } from './workload/indexer.js';
import { countsWorkloadOf, isLargeTrace, streamIndex, workloadOfIndex, type StreamedIndex } from './workload/stream.js';
import { evaluateStream, type Evaluation } from './cost.js';
import { countsOfTrace, filterRequests } from './workload/tokens.js';

// ---------------------------------------------------------------------------------------------
// Command specs

const shapeFlags = {
  nodes: { kind: posInt, help: 'nodes (overrides the cluster preset)' },
  'gpus-per-node': { kind: posInt, help: 'GPUs per node (overrides the cluster preset)' },
  'slots-per-gpu': { kind: posInt, help: 'expert slots per GPU per MoE layer (overrides the cluster preset)' },
};
const jsonFlag = { json: { kind: bool, help: 'print machine-readable JSON on stdout' } };
const modeFlag = { mode: { kind: oneOf(ModeSchema.options), help: 'all-to-all kernels: normal (prefill) or low-latency (decode)' } };

const SPECS: Record<string, CommandSpec> = {
  plan: {
    name: 'plan',
    summary: 'place the experts of a model on a cluster for a workload and write the plan',
    usage:
      'plan --model M --cluster C --workload W [--nodes N --gpus-per-node G --slots-per-gpu S] [--solver NAME] [--objective balance|traffic|time] [--mode normal|low-latency] [--seed N] [--time-limit SEC] [--workers N] [--eps X] --out plan.json [--json]',
    flags: {
      model: { kind: str('M'), help: 'model preset name or model JSON file', required: true },
      cluster: { kind: str('C'), help: 'cluster preset name or cluster JSON file', required: true },
      workload: { kind: str('W'), help: 'routing trace or per-layer counts (file or folder; format detected from content)', required: true },
      ...shapeFlags,
      solver: { kind: oneOf(Object.keys(SOLVERS)), help: 'placement algorithm (default optimize)' },
      objective: { kind: oneOf(ObjectiveSchema.options), help: 'what to minimise (default traffic)' },
      ...modeFlag,
      seed: { kind: nonNegInt, help: 'random seed (default 0); same seed, same plan' },
      'time-limit': { kind: posNumber, help: 'wall-clock budget of the search in seconds' },
      workers: { kind: posInt, help: 'worker threads (default: CPUs, at most 8)' },
      eps: { kind: nonNegNumber, help: 'max-load slack of the traffic objective (default 0.02)' },
      out: { kind: str('FILE'), help: 'where to write the plan JSON', required: true },
      ...jsonFlag,
    },
    details: ['Ctrl-C stops the search and writes the best plan so far, marked provenance.interrupted (exit code 130).'],
  },
  evaluate: {
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
  },
  export: {
    name: 'export',
    summary: 'write a plan in an engine or simulator format',
    usage: `export --plan FILE --format ${EXPORT_FORMATS.join('|')} --out FILE [--workload W [--mode M]] [--model M --cluster C]`,
    flags: {
      plan: { kind: str('FILE'), help: 'moe-placer plan (or an engine placement with --model, --cluster)', required: true },
      format: { kind: oneOf(EXPORT_FORMATS), help: 'output format', required: true },
      out: { kind: str('FILE'), help: 'output file', required: true },
      workload: { kind: str('W'), help: 'workload whose traffic traffic-csv reports (traffic-csv only)' },
      ...modeFlag,
      model: { kind: str('M'), help: 'model (engine placement input only)' },
      cluster: { kind: str('C'), help: 'cluster (engine placement input only)' },
      ...shapeFlags,
      ...jsonFlag,
    },
    details: [
      'sglang: --init-expert-location JSON; eplb: EPLB / vLLM phy2log, log2phy, logcnt; trtllm: moe_load_balancer.yaml;',
      'vllm-ascend: expert_map JSON; traffic-csv: per-layer GPU-to-GPU bytes and per-GPU loads (needs --workload).',
    ],
  },
  generate: {
    name: 'generate',
    summary: 'write a synthetic routing trace in the canonical trace format',
    usage: 'generate --model M [--counts FILE] --tokens N [--requests R] [--seed N] --out trace.mpt [--json]',
    flags: {
      model: { kind: str('M'), help: 'model preset name or model JSON file', required: true },
      counts: { kind: str('FILE'), help: 'per-layer expert counts (or a trace) whose marginals to match' },
      tokens: { kind: posInt, help: 'tokens to generate', required: true },
      requests: { kind: posInt, help: 'requests the tokens are split into (default tokens / 128)' },
      seed: { kind: nonNegInt, help: 'random seed (default 0)' },
      out: { kind: str('FILE'), help: 'trace file: .mpt binary, .jsonl text, .gz gzipped', required: true },
      ...jsonFlag,
    },
  },
  presets: {
    name: 'presets',
    summary: 'list the model, GPU and cluster presets and the solvers',
    usage: 'presets [--json]',
    flags: { ...jsonFlag },
  },
  demo: {
    name: 'demo',
    summary: 'plan DeepSeek-V3 on 4 x 8 H800 for a synthetic trace with EPLB and optimize, and compare them on held-out requests',
    usage: 'demo [--tokens N] [--seed N] [--time-limit SEC] [--workers N] [--out DIR] [--json]',
    flags: {
      tokens: { kind: posInt, help: 'synthetic tokens (default 131072: one EP32 prefill step)' },
      seed: { kind: nonNegInt, help: 'seed of the trace and the solvers (default 1)' },
      'time-limit': { kind: posNumber, help: 'budget of the optimize search in seconds (default 15)' },
      workers: { kind: posInt, help: 'worker threads (default 2)' },
      out: { kind: str('DIR'), help: 'also write both plans into this folder' },
      ...jsonFlag,
    },
  },
};

const HELP = `moe-placer ${'{version}'}: place Mixture-of-Experts experts on GPU clusters (balanced load, less all-to-all traffic).

usage: moe-placer <command> [flags]

commands:
${Object.values(SPECS)
  .map((s) => `  ${s.name.padEnd(9)} ${s.summary}`)
  .join('\n')}
  help      help [command]: this text, or a command's flags

  --version print the version

Models and clusters are preset names (moe-placer presets) or JSON files; workloads are files or
folders in any supported format, detected from their content. Exit codes: 0 ok, 1 solver failure,
2 invalid input, 130 interrupted.
`;

// ---------------------------------------------------------------------------------------------
// Context and helpers

interface Ctx {
  progress: Progress;
  out: (s: string) => void;
}

type Runner = (f: ParsedFlags, ctx: Ctx) => Promise<number>;

/** Run `fn`; InputErrors that do not already name a flag or the value get `--flag: ` in front. */
function withFlag<T>(flag: string, value: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    const problems = err.problems.map((p) => (p.startsWith('--') || p.startsWith(value) || p.startsWith(flag) ? p : `--${flag}: ${p}`));
    const E = err.constructor as new (m: readonly string[]) => InputError;
    throw new E(problems);
  }
}

function resolveModelFlag(value: string): Model {
  return withFlag('model', value, () => resolveModel(value));
}

function shapeOverrides(f: ParsedFlags): { nodes?: number; gpusPerNode?: number; slotsPerGpu?: number } {
  return {
    nodes: f.nodes as number | undefined,
    gpusPerNode: f['gpus-per-node'] as number | undefined,
    slotsPerGpu: f['slots-per-gpu'] as number | undefined,
  };
}

function hasShapeFlags(f: ParsedFlags): boolean {
  return f.nodes !== undefined || f['gpus-per-node'] !== undefined || f['slots-per-gpu'] !== undefined;
}

function resolveClusterFlag(value: string, model: Model, f: ParsedFlags): Cluster {
  return withFlag('cluster', value, () => resolveCluster(value, model, shapeOverrides(f)));
}

/** Check an output file path before any work: its folder exists and it is not a folder. */
function checkOutFile(path: string, flag = 'out'): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new InputError(`--${flag}: folder ${dirname(path)} does not exist`);
  if (!statSync(dir).isDirectory()) throw new InputError(`--${flag}: ${dirname(path)} is not a folder`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new InputError(`--${flag}: ${path} is a folder, expected a file name`);
}

async function loadWorkloadFlag(path: string, model: Model, ctx: Ctx): Promise<Workload> {
  const w = await loadWorkload(path, model, {
    onProgress: (read, total) => ctx.progress.update(`reading ${path}`, total > 0 ? read / total : undefined),
  });
  ctx.progress.clear();
  return w;
}

function solverProgress(ctx: Ctx, solver: string): (p: SolveProgress) => void {
  return (p) => ctx.progress.update(`${solver}: ${p.stage}`, p.fraction);
}

function clusterLine(c: Cluster): string {
  const NG = c.nodes * c.gpusPerNode;
  return `${c.name}: ${c.nodes} node${c.nodes === 1 ? '' : 's'} x ${c.gpusPerNode} ${c.gpu.name}, ${c.slotsPerGpu} slots per GPU (${num(NG * c.slotsPerGpu)} slots per layer)`;
}

function modelLine(m: Model): string {
  return `${m.name}: ${m.moeLayerIds.length} MoE layers x ${m.experts} experts, top-${m.topK}${m.groups ? ` (${m.groups} groups, top-${m.topKGroups})` : ''}`;
}

function workloadLines(w: Workload, path: string): string[] {
  const what =
    w.kind === 'trace'
      ? `per-token trace, ${num(w.trace.numTokens)} tokens in ${num(w.trace.numRequests)} requests`
      : 'per-layer counts only: traffic estimated on tokens sampled from the counts';
  return [`${path} (${w.meta.format}: ${what})`];
}

function header(title: string, rows: [string, string][]): string {
  return [title, ...rows.map(([k, v]) => `  ${k.padEnd(9)}${v}`)].join('\n') + '\n\n';
}

function workloadJson(w: Workload, path: string): Record<string, unknown> {
  return {
    path,
    format: w.meta.format,
    kind: w.kind,
    ...(w.kind === 'trace' ? { tokens: w.trace.numTokens, requests: w.trace.numRequests } : {}),
    notes: w.meta.notes ?? [],
  };
}

function clusterJson(c: Cluster): Record<string, unknown> {
  return { name: c.name, nodes: c.nodes, gpusPerNode: c.gpusPerNode, slotsPerGpu: c.slotsPerGpu, gpu: c.gpu.name };
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** SIGINT -> abort; a second SIGINT exits at once. Returns the controller and an uninstaller. */
function interruptible(ctx: Ctx, what: string): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSigint = (): void => {
    if (ac.signal.aborted) {
      ctx.progress.note('interrupted again: exiting without writing anything more');
      process.exit(130);
    }
    ac.abort();
    ctx.progress.note(`interrupt: stopping; ${what} (Ctrl-C again to quit at once)`);
  };
  process.on('SIGINT', onSigint);
  return { signal: ac.signal, dispose: () => process.off('SIGINT', onSigint) };
}

// ---------------------------------------------------------------------------------------------
// Commands

const runPlan: Runner = async (f, ctx) => {
  const out = f.out as string;
  const model = resolveModelFlag(f.model as string);
  const cluster = resolveClusterFlag(f.cluster as string, model, f);
  checkFeasibility(model, cluster);
  checkOutFile(out);
  const solver = (f.solver as string | undefined) ?? 'optimize';
  const { signal, dispose } = interruptible(ctx, `the best plan so far will be written to ${out}`);
  try {
    const workloadPath = f.workload as string;
    // A trace too large to load is indexed in one streamed pass (bounded memory).
    let index: StreamedIndex | undefined;
    if (await isLargeTrace(workloadPath, { maxBytes: streamThreshold() })) {
      index = await streamIndex(workloadPath, model, cluster.nodes * cluster.gpusPerNode, {
        seed: (f.seed as number | undefined) ?? 0,
        // As optimize indexes a loaded trace (solvers/optimize.ts buildLayerTasks).
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
    });
    ctx.progress.clear();
    writePlanFile(out, r.plan);
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
          workload: workloadJson(workload, workloadPath),
          ...report,
          interNodeBytesLowerBound: r.plan.bounds?.interNodeBytesLowerBound ?? null,
          interNodeBytesGap: r.plan.bounds?.interNodeBytesGap ?? null,
        }),
      );
    } else {
      ctx.out(
        header(`moe-placer plan: ${solver}, objective ${prov.objective}, ${report.mode} mode, seed ${prov.seed}`, [
          ['model', modelLine(model)],
          ['cluster', clusterLine(cluster)],
          ['workload', workloadLines(workload, workloadPath)[0]],
        ]),
      );
      const b = r.plan.bounds;
      ctx.out(metricsTable(report, b?.interNodeBytesLowerBound !== undefined ? { bound: b.interNodeBytesLowerBound, gap: b.interNodeBytesGap ?? 0 } : undefined));
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

/** The placement of `--plan`, with --model / --cluster / shape flags applied. */
function loadPlanFlags(f: ParsedFlags): LoadedPlacement {
  const path = f.plan as string;
  if (hasShapeFlags(f) && f.cluster === undefined) {
    throw new InputError('--nodes, --gpus-per-node and --slots-per-gpu change the shape of --cluster: give --cluster too');
  }
  let model = f.model !== undefined ? resolveModelFlag(f.model as string) : undefined;
  if (model === undefined && f.cluster !== undefined) model = loadPlacement(path).model; // the plan's own model sizes the cluster
  const cluster = f.cluster !== undefined ? resolveClusterFlag(f.cluster as string, model!, f) : undefined;
  return loadPlacement(path, { model, cluster });
}

const runEvaluate: Runner = async (f, ctx) => {
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

const runExport: Runner = async (f, ctx) => {
  const format = f.format as string;
  const out = f.out as string;
  if (format === 'traffic-csv' && f.workload === undefined) {
    throw new InputError('--workload: traffic-csv reports the traffic of a workload; give --workload W');
  }
  if (format !== 'traffic-csv' && f.workload !== undefined) throw new InputError(`--workload: only --format traffic-csv uses a workload, not ${format}`);
  if (format !== 'traffic-csv' && f.mode !== undefined) throw new InputError(`--mode: only --format traffic-csv uses a mode, not ${format}`);
  checkOutFile(out);
  const loaded = loadPlanFlags(f);
  const workload = f.workload !== undefined ? await loadWorkloadFlag(f.workload as string, loaded.model, ctx) : undefined;
  ctx.progress.update(`export ${format}`);
  const text = exportPlanFile({
    plan: loaded.plan,
    format,
    workload,
    mode: f.mode as Mode | undefined,
    placement: loaded.placement,
    model: loaded.model,
    cluster: loaded.cluster,
  });
  ctx.progress.clear();
  writeFileAtomic(out, text);
  const bytes = Buffer.byteLength(text);
  if (f.json) ctx.out(json({ command: 'export', out, format, bytes }));
  else ctx.out(`wrote ${out} (${format}, ${num(bytes)} bytes)\n`);
  return 0;
};

const runGenerate: Runner = async (f, ctx) => {
  const model = resolveModelFlag(f.model as string);
  const out = f.out as string;
  checkOutFile(out);
  const tokens = f.tokens as number;
  const requests = f.requests as number | undefined;
  if (requests !== undefined && requests > tokens) throw new InputError(`--requests: ${requests} requests cannot share ${tokens} tokens; give at most --tokens`);
  let counts: Counts | undefined;
  if (f.counts !== undefined) {
    const w = await loadWorkloadFlag(f.counts as string, model, ctx);
    counts = w.kind === 'counts' ? w.counts : countsOfTrace(w.trace);
  }
  const seed = (f.seed as number | undefined) ?? 0;
  ctx.progress.update(`generate ${num(tokens)} tokens`);
  const trace = generateTrace({ model, tokens, seed, counts, requests });
  ctx.progress.update(`write ${out}`);
  const { bytes } = await writeTrace(out, trace, model);
  ctx.progress.clear();
  if (f.json) {
    ctx.out(json({ command: 'generate', out, model: model.name, tokens: trace.numTokens, requests: trace.numRequests, layers: trace.numLayers, seed, bytes, counts: f.counts ?? null }));
  } else {
    ctx.out(
      `wrote ${out}: ${num(trace.numTokens)} tokens in ${num(trace.numRequests)} requests, ${trace.numLayers} MoE layers of ${model.name}, seed ${seed}` +
        `${f.counts !== undefined ? `, marginals of ${f.counts as string}` : ''} (${num(bytes)} bytes)\n`,
    );
  }
  return 0;
};

const runPresets: Runner = async (f, ctx) => {
  const models = Object.keys(MODEL_PRESETS).map((k) => ({ key: k, m: ModelSchema.parse(MODEL_PRESETS[k]) }));
  const gpus = Object.keys(GPU_PRESETS).map((k) => ({ key: k, g: GPU_PRESETS[k] }));
  const clusters = Object.keys(CLUSTER_PRESETS).map((k) => {
    const c = CLUSTER_PRESETS[k];
    return { key: k, c, gpu: resolveGpu(c.gpu) };
  });
  if (f.json) {
    ctx.out(
      json({
        models: Object.fromEntries(models.map(({ key, m }) => [key, m])),
        gpus: Object.fromEntries(gpus.map(({ key, g }) => [key, g])),
        clusters: Object.fromEntries(clusters.map(({ key, c }) => [key, c])),
        solvers: Object.values(SOLVERS).map((s) => ({ name: s.name, description: s.description })),
      }),
    );
    return 0;
  }
  ctx.out('models\n');
  ctx.out(
    table(
      [
        ['name', 'layers', 'MoE layers', 'experts', 'top-k', 'groups', 'expert MB', 'dtype'],
        ...models.map(({ key, m }) => [
          key,
          String(m.numHiddenLayers),
          String(m.moeLayerIds.length),
          String(m.experts),
          String(m.topK),
          m.groups ? `${m.groups}/${m.topKGroups}` : '-',
          num(m.expertBytes / 1e6, 1),
          m.computeDtype,
        ]),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  );
  ctx.out('\nGPUs\n');
  ctx.out(
    table(
      [
        ['name', 'memory GB', 'HBM TB/s', 'FP8 TFLOPS', 'BF16 TFLOPS', 'NVLink GB/s', 'RDMA GB/s'],
        ...gpus.map(({ key, g }) => [
          key,
          num(g.memoryBytes / 1e9),
          num(g.hbmBandwidth / 1e12, 2),
          num(g.fp8Flops / 1e12),
          num(g.bf16Flops / 1e12),
          num(g.nvlinkBandwidth / 1e9),
          num(g.rdmaBandwidth / 1e9),
        ]),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  ctx.out('\nclusters\n');
  ctx.out(
    table(
      [
        ['name', 'nodes', 'GPUs/node', 'GPU', 'slots per GPU'],
        ...clusters.map(({ key, c, gpu }) => [
          key,
          String(c.nodes),
          String(c.gpusPerNode),
          gpu.name,
          c.slotsPerGpu !== undefined ? String(c.slotsPerGpu) : `from ${num(c.expertMemoryBytes! / 1e9)} GB for experts`,
        ]),
      ],
      ['l', 'r', 'r', 'l', 'l'],
    ),
  );
  ctx.out('\nsolvers\n');
  ctx.out(table([['name', 'what'], ...Object.values(SOLVERS).map((s) => [s.name, s.description])], ['l', 'l']));
  return 0;
};

/** Marginal-fitting rounds of the demo's synthetic trace. */
const DEMO_FIT_ROUNDS = 2;

interface DemoRow {
  solver: string;
  fit: MetricsReport;
  heldOut: MetricsReport;
  wallTimeSeconds: number;
  interrupted: boolean;
}

const runDemo: Runner = async (f, ctx) => {
  const started = performance.now();
  const model = resolveModel('deepseek-v3');
  const cluster = resolveCluster('h800-4x8', model);
  // One realistic EP32 prefill step: 32 GPUs x 4096 tokens.
  const tokens = (f.tokens as number | undefined) ?? 131072;
  const seed = (f.seed as number | undefined) ?? 1;
  const timeLimit = (f['time-limit'] as number | undefined) ?? 15;
  const workers = (f.workers as number | undefined) ?? 2;
  const outDir = f.out as string | undefined;
  if (outDir !== undefined) {
    if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new InputError(`--out: ${outDir} is a file, expected a folder`);
    if (!existsSync(dirname(resolve(outDir)))) throw new InputError(`--out: folder ${dirname(outDir)} does not exist`);
  }
  const { signal, dispose } = interruptible(ctx, 'the demo stops after the current search');
  try {
    ctx.progress.update(`generate a synthetic ${model.name} trace (${num(tokens)} tokens)`);
    const t0 = performance.now();
    // Two marginal-fitting rounds (of the default 8) keep generation to a few seconds; the target
    // marginals are the generator's default log-normal popularity anyway.
    const trace = generateTrace({ model, tokens, seed, fitRounds: DEMO_FIT_ROUNDS });
    const generateSeconds = (performance.now() - t0) / 1000;
    if (trace.numRequests < 2) throw new InputError(`--tokens: ${tokens} tokens make ${trace.numRequests} request; the demo needs at least 2 (give 256 or more)`);
    const fitTrace = filterRequests(trace, (r) => r % 2 === 0);
    const heldTrace = filterRequests(trace, (r) => r % 2 === 1);
    const fit: Workload = { kind: 'trace', trace: fitTrace, meta: { format: 'synthetic', notes: ['even requests of the demo trace'] } };
    const held: Workload = { kind: 'trace', trace: heldTrace, meta: { format: 'synthetic', notes: ['odd requests of the demo trace'] } };
    const rows: DemoRow[] = [];
    for (const solver of ['eplb', 'optimize']) {
      if (signal.aborted) break;
      const r = await planApi({
        model,
        cluster,
        workload: fit,
        solver,
        objective: solver === 'optimize' ? 'time' : 'traffic',
        mode: 'normal',
        seed,
        workers,
        timeLimitSeconds: solver === 'optimize' ? timeLimit : undefined,
        onProgress: solverProgress(ctx, solver),
        signal,
      });
      ctx.progress.update(`${solver}: evaluate on the held-out requests`);
      const ev = evaluatePlan({ model, cluster, placement: r.result.placement, workload: held, mode: 'normal' });
      rows.push({
        solver,
        fit: metricsReport(r.evaluation, r.layerBounds, model),
        heldOut: metricsReport(ev.evaluation, ev.layerBounds, model),
        wallTimeSeconds: r.plan.provenance!.wallTimeSeconds,
        interrupted: r.plan.provenance!.interrupted === true,
      });
      if (outDir !== undefined) {
        mkdirSync(outDir, { recursive: true });
        writePlanFile(join(outDir, `${solver}.plan.json`), r.plan);
      }
    }
    ctx.progress.clear();
    const totalSeconds = (performance.now() - started) / 1000;
    if (f.json) {
      ctx.out(
        json({
          command: 'demo',
          model: model.name,
          cluster: clusterJson(cluster),
          tokens: trace.numTokens,
          requests: trace.numRequests,
          seed,
          fitTokens: fitTrace.numTokens,
          heldOutTokens: heldTrace.numTokens,
          generateSeconds,
          totalSeconds,
          results: rows.map((r) => ({ solver: r.solver, wallTimeSeconds: r.wallTimeSeconds, interrupted: r.interrupted, fit: r.fit, heldOut: r.heldOut })),
          out: outDir ?? null,
        }),
      );
    } else {
      ctx.out(
        header(`moe-placer demo: which experts go where for DeepSeek-V3 prefill on 32 H800s`, [
          ['model', modelLine(model)],
          ['cluster', clusterLine(cluster)],
          [
            'workload',
            `synthetic trace (seed ${seed}): ${num(trace.numTokens)} tokens in ${num(trace.numRequests)} requests; plans fitted on the ` +
              `${num(fitTrace.numRequests)} even requests (${num(fitTrace.numTokens)} tokens), scored on the ${num(heldTrace.numRequests)} odd ones (${num(heldTrace.numTokens)} tokens)`,
          ],
        ]),
      );
      ctx.out(demoTable(rows));
      ctx.out(
        `\nnormal (prefill) mode, DeepEP-style dispatch + combine; bytes summed over the ${model.moeLayerIds.length} MoE layers of one pass over the held-out tokens.\n` +
          `eplb = DeepSeek EPLB (balances load; its hierarchical mode keeps expert groups on nodes); optimize = moe-placer's solver, objective time (the cost model's estimated MoE time: traffic against balance).\n` +
          (outDir !== undefined ? `plans written to ${outDir}/eplb.plan.json and ${outDir}/optimize.plan.json\n` : '') +
          `total ${num(totalSeconds, 1)} s (trace generation ${num(generateSeconds, 1)} s)\n`,
      );
    }
    if (signal.aborted) {
      ctx.progress.note('interrupted');
      return 130;
    }
    return 0;
  } finally {
    dispose();
  }
};

function demoTable(rows: DemoRow[]): string {
  const names = rows.map((r) => r.solver);
  const head = ['held-out requests', ...names];
  const withChange = rows.length === 2;
  if (withChange) head.push(`${names[1]} vs ${names[0]}`);
  const out: string[][] = [head];
  const add = (label: string, get: (r: DemoRow) => number, fmt: (x: number) => string): void => {
    const vals = rows.map(get);
    const row = [label, ...vals.map(fmt)];
    if (withChange) row.push(change(vals[0], vals[1]));
    out.push(row);
  };
  add('inter-node bytes', (r) => r.heldOut.interNodeBytes, bytesText);
  add('intra-node bytes', (r) => r.heldOut.intraNodeBytes, bytesText);
  add('remote nodes per token', (r) => r.heldOut.remoteNodesPerToken, (x) => num(x, 3));
  add('balancedness (mean/max)', (r) => r.heldOut.balancedness, (x) => num(x, 3));
  add('max / mean load', (r) => r.heldOut.maxOverMean, (x) => num(x, 3));
  add('max GPU load', (r) => r.heldOut.maxLoad, load);
  add('est. MoE time (ms)', (r) => r.heldOut.timeSeconds, ms);
  add('plan wall time (s)', (r) => r.wallTimeSeconds, (x) => num(x, 2));
  const t = table(out, ['l', ...rows.map(() => 'r' as const), 'r']);
  const notes = rows.filter((r) => r.interrupted).map((r) => `(${r.solver} was interrupted: best plan so far)\n`);
  return t + notes.join('');
}

const RUNNERS: Record<string, Runner> = {
  plan: runPlan,
  evaluate: runEvaluate,
  export: runExport,
  generate: runGenerate,
  presets: runPresets,
  demo: runDemo,
};

// ---------------------------------------------------------------------------------------------
// main

function helpText(): string {
  return HELP.replace('{version}', toolVersion());
}

/** One line per problem on stderr; the exit code of the error. */
function reportError(err: unknown): number {
  const debug = process.env.MOE_PLACER_DEBUG === '1';
  const write = (s: string): void => void process.stderr.write(s);
  if (err instanceof InputError) {
    for (const p of err.problems) write(`moe-placer: ${p}\n`);
    if (debug && err.stack) write(`${err.stack}\n`);
    return 2;
  }
  if (err instanceof MoePlacerError) {
    write(`moe-placer: error: ${err.message.replace(/\n/g, '; ')}\n`);
    if (debug && err.stack) write(`${err.stack}\n`);
    return err.exitCode;
  }
  const e = err as Error;
  write(`moe-placer: unexpected error: ${(e?.message ?? String(err)).replace(/\n/g, '; ')}${debug ? '' : ' (MOE_PLACER_DEBUG=1 shows the stack)'}\n`);
  if (debug && e?.stack) write(`${e.stack}\n`);
  return 1;
}

let stdoutGuard = false;

/**
 * Run the CLI on `argv` (the words after `moe-placer`) and return the exit code. Never throws.
 */
export async function main(argv: string[]): Promise<number> {
  if (!stdoutGuard) {
    stdoutGuard = true;
    // A closed pipe (moe-placer ... | head) is not an error of ours.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
  const ctx: Ctx = { progress: new Progress(), out: (s) => void process.stdout.write(s) };
  try {
    const [cmd, ...rest] = argv;
    if (cmd === undefined) {
      process.stderr.write(helpText());
      return 2;
    }
    if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
      const topic = rest[0];
      if (topic === undefined) ctx.out(helpText());
      else {
        const spec = SPECS[topic];
        if (!spec) throw unknownCommand(topic);
        ctx.out(commandHelp(spec));
      }
      return 0;
    }
    if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
      ctx.out(`${toolVersion()}\n`);
      return 0;
    }
    const spec = SPECS[cmd];
    if (!spec) throw unknownCommand(cmd);
    const flags = parseFlags(spec, rest);
    if (flags.help) {
      ctx.out(commandHelp(spec));
      return 0;
    }
    return await RUNNERS[cmd](flags, ctx);
  } catch (err) {
    ctx.progress.clear();
    return reportError(err);
  }
}

function unknownCommand(cmd: string): InputError {
  const names = [...Object.keys(SPECS), 'help'];
  const near = cmd.startsWith('-') ? undefined : closest(cmd, names);
  return new InputError(
    `unknown command ${JSON.stringify(cmd)}${near ? `; did you mean ${near}?` : ''} (commands: ${names.join(', ')}; see moe-placer help)`,
  );
}

/** Traces whose in-memory form exceeds this many bytes are streamed (env MOE_PLACER_STREAM_BYTES). */
function streamThreshold(): number | undefined {
  const v = Number(process.env.MOE_PLACER_STREAM_BYTES);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}
