/**
 * What every command of the CLI shares: the context, flag helpers, summary lines, interrupts.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SolveProgress } from '../solvers/types.js';
import { loadPlacement, type LoadedPlacement } from '../api.js';
import { bool, oneOf, posInt, str, type ParsedFlags } from './args.js';
import { Progress } from './progress.js';
import { num } from './text.js';
import { InputError } from '../errors.js';
import { clusterOfShape, DEFAULT_GPU, resolveCluster, resolveModel } from '../presets.js';
import { ModeSchema, type Cluster, type Model } from '../schemas.js';
import type { Workload } from '../types.js';
import { loadWorkload } from '../workload/index.js';

export const shapeFlags = {
  nodes: { kind: posInt, help: 'nodes (overrides the cluster preset)' },
  'gpus-per-node': { kind: posInt, help: 'GPUs per node (overrides the cluster preset)' },
  'slots-per-gpu': { kind: posInt, help: 'expert slots per GPU per MoE layer (overrides the cluster preset)' },
};
export const jsonFlag = { json: { kind: bool, help: 'print machine-readable JSON on stdout' } };
export const modeFlag = { mode: { kind: oneOf(ModeSchema.options), help: 'all-to-all kernels: normal (prefill) or low-latency (decode)' } };

export interface Ctx {
  progress: Progress;
  out: (s: string) => void;
}

export type Runner = (f: ParsedFlags, ctx: Ctx) => Promise<number>;

/** Run `fn`; InputErrors that do not already name a flag or the value get `--flag: ` in front. */
export function withFlag<T>(flag: string, value: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    const problems = err.problems.map((p) => (p.startsWith('--') || p.startsWith(value) || p.startsWith(flag) ? p : `--${flag}: ${p}`));
    const E = err.constructor as new (m: readonly string[]) => InputError;
    throw new E(problems);
  }
}

export function resolveModelFlag(value: string): Model {
  return withFlag('model', value, () => resolveModel(value));
}

export function shapeOverrides(f: ParsedFlags): { nodes?: number; gpusPerNode?: number; slotsPerGpu?: number } {
  return {
    nodes: f.nodes as number | undefined,
    gpusPerNode: f['gpus-per-node'] as number | undefined,
    slotsPerGpu: f['slots-per-gpu'] as number | undefined,
  };
}

export function hasShapeFlags(f: ParsedFlags): boolean {
  return f.nodes !== undefined || f['gpus-per-node'] !== undefined || f['slots-per-gpu'] !== undefined;
}

export function resolveClusterFlag(value: string, model: Model, f: ParsedFlags): Cluster {
  return withFlag('cluster', value, () => resolveCluster(value, model, shapeOverrides(f)));
}

/** `--cluster C` (required unless the shape flags are given), and `--gpu` for a shape without one. */
export const clusterFlags = {
  cluster: { kind: str('C'), help: 'cluster preset name or cluster JSON file (or give --nodes, --gpus-per-node, --slots-per-gpu)' },
  ...shapeFlags,
  gpu: { kind: str('GPU'), help: `GPU preset or GPU JSON file of a cluster given by its shape alone (default ${DEFAULT_GPU})` },
};

/**
 * The cluster of `clusterFlags`: `--cluster` (with shape overrides), or the shape flags with
 * `--gpu` (default DEFAULT_GPU; `gpuNote` then says so, for the output).
 */
export function clusterFromFlags(f: ParsedFlags, model: Model): { cluster: Cluster; gpuNote?: string } {
  if (f.cluster !== undefined) {
    if (f.gpu !== undefined) throw new InputError(`--gpu: the cluster ${f.cluster as string} fixes its GPU; give --gpu with --nodes, --gpus-per-node and --slots-per-gpu instead of --cluster`);
    return { cluster: resolveClusterFlag(f.cluster as string, model, f) };
  }
  const missing = (['nodes', 'gpus-per-node', 'slots-per-gpu'] as const).filter((k) => f[k] === undefined);
  if (missing.length > 0) {
    throw new InputError(
      `--cluster: give a cluster preset or file (moe-placer presets), or its shape: --nodes N --gpus-per-node G --slots-per-gpu S [--gpu NAME] (missing ${missing.map((m) => `--${m}`).join(', ')})`,
    );
  }
  const gpu = f.gpu as string | undefined;
  const cluster = withFlag('gpu', gpu ?? DEFAULT_GPU, () =>
    clusterOfShape(model, { nodes: f.nodes as number, gpusPerNode: f['gpus-per-node'] as number, slotsPerGpu: f['slots-per-gpu'] as number }, gpu),
  );
  return { cluster, gpuNote: gpu === undefined ? `GPU ${cluster.gpu.name} by default (--gpu NAME to choose)` : undefined };
}

/** Check an output file path before any work: its folder exists and it is not a folder. */
export function checkOutFile(path: string, flag = 'out'): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new InputError(`--${flag}: folder ${dirname(path)} does not exist`);
  if (!statSync(dir).isDirectory()) throw new InputError(`--${flag}: ${dirname(path)} is not a folder`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new InputError(`--${flag}: ${path} is a folder, expected a file name`);
}

export async function loadWorkloadFlag(path: string, model: Model, ctx: Ctx): Promise<Workload> {
  const w = await loadWorkload(path, model, {
    onProgress: (read, total) => ctx.progress.update(`reading ${path}`, total > 0 ? read / total : undefined),
  });
  ctx.progress.clear();
  return w;
}

export function solverProgress(ctx: Ctx, solver: string): (p: SolveProgress) => void {
  return (p) => ctx.progress.update(`${solver}: ${p.stage}`, p.fraction);
}

export function clusterLine(c: Cluster): string {
  const NG = c.nodes * c.gpusPerNode;
  return `${c.name}: ${c.nodes} node${c.nodes === 1 ? '' : 's'} x ${c.gpusPerNode} ${c.gpu.name}, ${c.slotsPerGpu} slots per GPU (${num(NG * c.slotsPerGpu)} slots per layer)`;
}

export function modelLine(m: Model): string {
  return `${m.name}: ${m.moeLayerIds.length} MoE layers x ${m.experts} experts, top-${m.topK}${m.groups ? ` (${m.groups} groups, top-${m.topKGroups})` : ''}`;
}

export function workloadLines(w: Workload, path: string): string[] {
  const what =
    w.kind === 'trace'
      ? `per-token trace, ${num(w.trace.numTokens)} tokens in ${num(w.trace.numRequests)} requests`
      : 'per-layer counts only: traffic estimated on tokens sampled from the counts';
  return [`${path} (${w.meta.format}: ${what})`];
}

export function header(title: string, rows: [string, string][]): string {
  return [title, ...rows.map(([k, v]) => `  ${k.padEnd(9)}${v}`)].join('\n') + '\n\n';
}

export function workloadJson(w: Workload, path: string): Record<string, unknown> {
  return {
    path,
    format: w.meta.format,
    kind: w.kind,
    ...(w.kind === 'trace' ? { tokens: w.trace.numTokens, requests: w.trace.numRequests } : {}),
    notes: w.meta.notes ?? [],
  };
}

export function clusterJson(c: Cluster): Record<string, unknown> {
  return { name: c.name, nodes: c.nodes, gpusPerNode: c.gpusPerNode, slotsPerGpu: c.slotsPerGpu, gpu: c.gpu.name };
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** SIGINT -> abort; a second SIGINT exits at once. Returns the controller and an uninstaller. */
export function interruptible(ctx: Ctx, what: string): { signal: AbortSignal; dispose: () => void } {
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

/** The placement of `--plan`, with --model / --cluster / shape flags applied. */
export function loadPlanFlags(f: ParsedFlags): LoadedPlacement {
  const path = f.plan as string;
  if (hasShapeFlags(f) && f.cluster === undefined) {
    throw new InputError('--nodes, --gpus-per-node and --slots-per-gpu change the shape of --cluster: give --cluster too');
  }
  let model = f.model !== undefined ? resolveModelFlag(f.model as string) : undefined;
  if (model === undefined && f.cluster !== undefined) model = loadPlacement(path).model; // the plan's own model sizes the cluster
  const cluster = f.cluster !== undefined ? resolveClusterFlag(f.cluster as string, model!, f) : undefined;
  return loadPlacement(path, { model, cluster });
}

/** Traces whose in-memory form exceeds this many bytes are streamed (env MOE_PLACER_STREAM_BYTES). */
export function streamThreshold(): number | undefined {
  const v = Number(process.env.MOE_PLACER_STREAM_BYTES);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}
