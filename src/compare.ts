/**
 * What-if over hardware and redundancy: for each cluster (GPU x shape) and each number of slots per
 * GPU that fits in its expert memory, plan with each solver in each all-to-all mode and score the
 * plan on the scored workload with the cost model (DESIGN.md, "The cost model"). `moe-placer
 * compare` is a thin shell over `compare`; the HTML report (report/) draws its result.
 *
 * Per row: the estimated MoE time per layer split into dispatch / compute / combine, tokens per
 * second per GPU for the scored batch, balancedness, inter-node bytes, expert memory per GPU, and
 * which resource binds: the cost model's layer time is dispatch + compute + combine, and the
 * all-to-all part is set by one link, the busiest GPU's RDMA NIC or NVLink port (`rdmaSeconds` vs
 * `nvlinkSeconds` of the evaluator), so each layer's time is attributed to compute and to that
 * link; the resource with the largest share over all layers binds.
 *
 * Memory arithmetic: a slot holds one expert in every MoE layer, so S slots per GPU take
 * S x L x expertBytes of each GPU's memory. A level fits when it holds every expert
 * (nodes x gpusPerNode x S >= E) and its memory is within the cluster's expert memory budget (the
 * cluster's `expertMemoryBytes` when it sets one, else the whole GPU memory, as `checkFeasibility`
 * reads it; `expertMemoryBytes` of `CompareArgs` replaces it for every cluster). Levels that do not
 * fit are listed in `skipped` with the reason, never planned.
 */
import { existsSync } from 'node:fs';
import { evaluatePlan, formatBytes, plan as planApi } from './api.js';
import type { Evaluation, LayerMetrics } from './cost.js';
import { InputError } from './errors.js';
import { CLUSTER_PRESETS, GPU_PRESETS, resolveCluster, resolveGpu } from './presets.js';
import type { Cluster, Mode, Model, Objective } from './schemas.js';
import type { Placement, Workload } from './types.js';
import { filterRequests } from './workload/tokens.js';

export const COMPARE_FORMAT = 'moe-placer.compare/1';

/** The resource a row's estimated MoE time is mostly spent on. */
export type Resource = 'compute' | 'nvlink' | 'rdma';

/** Seconds of the estimated MoE time attributed to each resource, and their shares of the total. */
export interface ResourceTime {
  /** Largest of the three. */
  binds: Resource;
  seconds: Record<Resource, number>;
  /** seconds / their sum (0 each when no time). */
  shares: Record<Resource, number>;
}

/**
 * Which resource binds over `perLayer`: per layer, compute seconds go to compute and dispatch +
 * combine seconds to the link that sets them (RDMA when `rdmaSeconds >= nvlinkSeconds`, else
 * NVLink); summed over layers. Exact for the cost model without `overlap` (layer time = the sum).
 */
export function resourceTime(perLayer: readonly LayerMetrics[]): ResourceTime {
  const seconds: Record<Resource, number> = { compute: 0, nvlink: 0, rdma: 0 };
  for (const m of perLayer) {
    seconds.compute += m.computeSeconds;
    const comm = m.dispatchSeconds + m.combineSeconds;
    if (m.rdmaSeconds >= m.nvlinkSeconds) seconds.rdma += comm;
    else seconds.nvlink += comm;
  }
  const total = seconds.compute + seconds.nvlink + seconds.rdma;
  const shares: Record<Resource, number> = {
    compute: total > 0 ? seconds.compute / total : 0,
    nvlink: total > 0 ? seconds.nvlink / total : 0,
    rdma: total > 0 ? seconds.rdma / total : 0,
  };
  let binds: Resource = 'compute';
  for (const r of ['nvlink', 'rdma'] as const) if (seconds[r] > seconds[binds]) binds = r;
  return { binds, seconds, shares };
}

/** Throughput and time split of one evaluation on `gpus` GPUs (what a compare row and a report show). */
export interface Performance {
  /** MoE layers L. */
  layers: number;
  /** Tokens of the batch the figures are for: the scored batch x `batchScale`. */
  batchTokens: number;
  /** Tokens of the scored workload: the mean over MoE layers of the layer's (weighted) tokens. */
  recordedBatchTokens: number;
  /** Weight given to every scored token (1 = as recorded); times and bytes are scaled by it. */
  batchScale: number;
  /** Means over the MoE layers. */
  dispatchSecondsPerLayer: number;
  computeSecondsPerLayer: number;
  combineSecondsPerLayer: number;
  timeSecondsPerLayer: number;
  /** Estimated MoE time of one pass of the batch through every MoE layer (sum over layers). */
  timeSeconds: number;
  /** batchTokens / timeSeconds / gpus: the MoE layers' throughput per GPU (0 when no time; independent of the scale). */
  tokensPerSecondPerGpu: number;
  resources: ResourceTime;
}

/**
 * `Performance` of an evaluation on `gpus` GPUs, for a batch of `batchTokens` tokens when given
 * (else the scored batch as recorded). The cost model is linear in the token weights (every
 * counter is a weighted sum, every time a counter over a bandwidth), so weighting every scored
 * token by f = batchTokens / recorded tokens scales every time and byte count by exactly f and
 * leaves tokens / s per GPU, balancedness and the shares unchanged: the same routing mix, at
 * another batch size.
 */
export function performanceOf(ev: Evaluation, gpus: number, batchTokens?: number): Performance {
  const L = ev.perLayer.length;
  let tokens = 0;
  let dispatch = 0;
  let compute = 0;
  let combine = 0;
  for (const m of ev.perLayer) {
    tokens += m.tokens;
    dispatch += m.dispatchSeconds;
    compute += m.computeSeconds;
    combine += m.combineSeconds;
  }
  const recorded = L > 0 ? tokens / L : 0;
  const f = batchTokens !== undefined && recorded > 0 ? batchTokens / recorded : 1;
  const per = (x: number): number => (L > 0 ? (x * f) / L : 0);
  return {
    layers: L,
    batchTokens: recorded * f,
    recordedBatchTokens: recorded,
    batchScale: f,
    dispatchSecondsPerLayer: per(dispatch),
    computeSecondsPerLayer: per(compute),
    combineSecondsPerLayer: per(combine),
    timeSecondsPerLayer: per(ev.timeSeconds),
    timeSeconds: ev.timeSeconds * f,
    tokensPerSecondPerGpu: ev.timeSeconds > 0 ? recorded / ev.timeSeconds / gpus : 0,
    resources: resourceTime(ev.perLayer),
  };
}

// ---------------------------------------------------------------------------------------------
// Inputs: slot levels, cluster names, memory

/** Most slot levels one compare takes. */
export const MAX_SLOT_LEVELS = 64;

/**
 * Slots per GPU levels from text: `9`, a range `8..12` (both ends included) or a list `8,10,12`
 * (items may be ranges); sorted, without repeats. InputError naming `field` otherwise.
 */
export function parseSlotLevels(text: string, field = 'slotsPerGpu'): number[] {
  const bad = (why: string): never => {
    throw new InputError(`${why}; expected N, a range A..B or a list like 8,10,12`, { field });
  };
  const out = new Set<number>();
  const int = (s: string): number => {
    if (!/^\d+$/.test(s)) bad(`${JSON.stringify(s)} is not a positive integer`);
    const v = Number(s);
    if (!Number.isSafeInteger(v) || v < 1) bad(`${JSON.stringify(s)} is not a positive integer`);
    return v;
  };
  const items = text.split(',').map((s) => s.trim());
  if (text.trim() === '' || items.some((s) => s === '')) bad(`empty item in ${JSON.stringify(text)}`);
  for (const item of items) {
    const m = /^(.*?)\.\.(.*)$/.exec(item);
    if (m) {
      const a = int(m[1].trim());
      const b = int(m[2].trim());
      if (a > b) bad(`range ${item} is empty (${a} > ${b}); write the smaller end first, e.g. ${b}..${a}`);
      if (b - a + 1 > MAX_SLOT_LEVELS) bad(`range ${item} has ${b - a + 1} levels, at most ${MAX_SLOT_LEVELS}`);
      for (let s = a; s <= b; s++) out.add(s);
    } else out.add(int(item));
  }
  if (out.size > MAX_SLOT_LEVELS) bad(`${out.size} levels, at most ${MAX_SLOT_LEVELS}`);
  return [...out].sort((a, b) => a - b);
}

/** `h20-18x8`: a GPU preset and a shape. */
const GENERIC_CLUSTER = /^([A-Za-z0-9_.]+)-(\d+)x(\d+)$/;

const hasKey = (table: Record<string, unknown>, name: string): boolean => Object.keys(table).some((k) => k.toLowerCase() === name.toLowerCase());

/**
 * A cluster of a compare: a cluster preset or JSON file (`resolveCluster`), or `GPU-NxG` (a GPU
 * preset, N nodes of G GPUs, e.g. `h20-18x8`), whose slots per GPU default to the fewest that hold
 * every expert and whose expert memory budget is the whole GPU memory. InputError naming the cluster otherwise.
 */
export function resolveCompareCluster(spec: string, model: Model): Cluster {
  const isPath = spec.endsWith('.json') || spec.includes('/') || spec.includes('\\') || existsSync(spec);
  if (hasKey(CLUSTER_PRESETS, spec) || isPath) return resolveCluster(spec, model);
  const m = GENERIC_CLUSTER.exec(spec);
  if (m && hasKey(GPU_PRESETS, m[1])) {
    const gpu = resolveGpu(m[1]);
    const nodes = Number(m[2]);
    const gpusPerNode = Number(m[3]);
    if (!(nodes >= 1 && gpusPerNode >= 1 && nodes * gpusPerNode <= 65535)) {
      throw new InputError(`cluster ${spec}: ${nodes} x ${gpusPerNode} GPUs: nodes and GPUs per node must be positive, at most 65535 GPUs in all`);
    }
    const slotsPerGpu = Math.ceil(model.experts / (nodes * gpusPerNode));
    return { name: spec, nodes, gpusPerNode, slotsPerGpu, gpu, expertMemoryBytes: slotsPerGpu * model.moeLayerIds.length * model.expertBytes };
  }
  throw new InputError(
    `unknown cluster ${JSON.stringify(spec)}: not a cluster preset (${Object.keys(CLUSTER_PRESETS).join(', ')}), a JSON file, ` +
      `or GPU-NODESxGPUS with a GPU preset (${Object.keys(GPU_PRESETS).join(', ')}), e.g. h20-18x8`,
  );
}

/** Bytes of expert weights one slot per GPU takes: one expert in every MoE layer. */
export function slotBytes(model: Model): number {
  return model.moeLayerIds.length * model.expertBytes;
}

/**
 * The expert memory budget per GPU of `cluster`: its `expertMemoryBytes` when it sets one (capped
 * by the GPU memory), else the GPU memory. A budget of exactly `slotsPerGpu` slots is the default
 * one (no budget given), as `checkFeasibility` reads it.
 */
export function expertMemoryBudget(model: Model, cluster: Cluster): number {
  const derived = cluster.expertMemoryBytes === cluster.slotsPerGpu * slotBytes(model);
  return derived ? cluster.gpu.memoryBytes : Math.min(cluster.expertMemoryBytes, cluster.gpu.memoryBytes);
}

/** One redundancy level of one cluster. */
export interface Level {
  /** The cluster at this level (slots per GPU set; expert memory budget as planned). */
  cluster: Cluster;
  slotsPerGpu: number;
  /** nodes x gpusPerNode x slotsPerGpu - E. */
  redundantExperts: number;
  /** slotsPerGpu x L x expertBytes. */
  memoryBytesPerGpu: number;
  memoryBudgetBytes: number;
}

/** A level that was not planned, and why. */
export interface SkippedLevel {
  cluster: string;
  gpu: string;
  slotsPerGpu: number;
  memoryBytesPerGpu: number;
  memoryBudgetBytes: number;
  reason: string;
}

/**
 * Split `slots` levels of `base` into those that fit (every expert has a slot, the memory is within
 * the budget: `budgetBytes` capped by the GPU memory, else `expertMemoryBudget`) and those skipped,
 * with the reason. Pure arithmetic; no planning.
 */
export function levelsOf(model: Model, base: Cluster, slots: readonly number[], budgetBytes?: number): { fits: Level[]; skipped: SkippedLevel[] } {
  const E = model.experts;
  const NG = base.nodes * base.gpusPerNode;
  const perSlot = slotBytes(model);
  const derived = base.expertMemoryBytes === base.slotsPerGpu * perSlot;
  // An explicit budget is capped by the GPU memory too.
  const budget = Math.min(budgetBytes ?? expertMemoryBudget(model, base), base.gpu.memoryBytes);
  const fits: Level[] = [];
  const skipped: SkippedLevel[] = [];
  for (const S of slots) {
    const memory = S * perSlot;
    const common = { cluster: base.name, gpu: base.gpu.name, slotsPerGpu: S, memoryBytesPerGpu: memory, memoryBudgetBytes: budget };
    if (NG * S < E) {
      skipped.push({ ...common, reason: `${NG} GPUs x ${S} slots = ${NG * S} slots hold fewer than the ${E} experts` });
    } else if (memory > budget) {
      skipped.push({ ...common, reason: `${S} slots x ${model.moeLayerIds.length} MoE layers x ${formatBytes(model.expertBytes)} = ${formatBytes(memory)} per GPU exceed the expert memory budget of ${formatBytes(budget)}` });
    } else {
      const expertMemoryBytes = budgetBytes !== undefined ? budget : derived ? memory : base.expertMemoryBytes;
      fits.push({ cluster: { ...base, slotsPerGpu: S, expertMemoryBytes }, slotsPerGpu: S, redundantExperts: NG * S - E, memoryBytesPerGpu: memory, memoryBudgetBytes: budget });
    }
  }
  return { fits, skipped };
}

// ---------------------------------------------------------------------------------------------
// The fit / score split

export interface CompareSplit {
  fit: Workload;
  score: Workload;
  /** `held-out: ...` or `in-sample: ...`, as the bench results say it. */
  split: string;
  heldOut: boolean;
}

/**
 * What plans are fitted on and scored on: with `scoreOn`, fitted on all of `workload` and scored on
 * `scoreOn`; else a trace is split by request (even-numbered requests fitted, odd-numbered scored,
 * as `demo` and the benchmarks do); else (counts) fitted and scored on the same counts, in-sample.
 */
export function compareSplit(workload: Workload, scoreOn?: Workload): CompareSplit {
  const name = (w: Workload): string => w.meta.path ?? `the ${w.meta.format} workload`;
  if (scoreOn) {
    return { fit: workload, score: scoreOn, split: `held-out: fitted on ${name(workload)}, scored on ${name(scoreOn)}`, heldOut: true };
  }
  if (workload.kind === 'trace') {
    const t = workload.trace;
    if (t.numRequests < 2) {
      throw new InputError(`${name(workload)} has ${t.numRequests} request: a trace is split by request (even fitted, odd scored); give a second workload to score on`, { field: 'workload' });
    }
    const part = (keep: 0 | 1): Workload => ({
      kind: 'trace',
      trace: filterRequests(t, (r) => r % 2 === keep),
      meta: { format: workload.meta.format, notes: [`${keep === 0 ? 'even' : 'odd'}-numbered requests of ${name(workload)}`] },
    });
    return { fit: part(0), score: part(1), split: 'held-out: fitted on the even-numbered requests, scored on the odd-numbered ones', heldOut: true };
  }
  return {
    fit: workload,
    score: workload,
    split: 'in-sample: per-layer counts have no requests to split, so plans are fitted and scored on the same counts (give a second workload to score on for a held-out figure)',
    heldOut: false,
  };
}

// ---------------------------------------------------------------------------------------------
// compare

export interface CompareArgs {
  model: Model;
  /** Clusters at their own shape (`resolveCompareCluster`). */
  clusters: Cluster[];
  /** Slots per GPU levels tried on every cluster; default each cluster's own slots. */
  slotsPerGpu?: readonly number[];
  /** Default ['normal']. */
  modes?: readonly Mode[];
  /** Solver names; default ['eplb', 'optimize']. */
  solvers?: readonly string[];
  /** Objective of the solvers that take one; default `time` (the estimated MoE time). */
  objective?: Objective;
  /** What plans are fitted and scored on (`compareSplit`). */
  split: CompareSplit;
  /** Expert memory budget per GPU for every cluster, replacing their own. */
  expertMemoryBytes?: number;
  /**
   * Report times and bytes for a batch of this many tokens per GPU (tokensPerGpu x GPUs of each
   * cluster: every cluster at the same per-GPU batch; see `performanceOf`); default the scored
   * workload as recorded.
   */
  tokensPerGpu?: number;
  /** Default 0. */
  seed?: number;
  /** Budget of each solver run, seconds. */
  timeLimitSeconds?: number;
  /** Default 1. */
  workers?: number;
  eps?: number;
  /** Called before each plan with what runs next and the fraction of plans done. */
  onProgress?: (what: string, fraction: number) => void;
  /** Aborting stops after the current plan; the rows so far are returned, `interrupted` set. */
  signal?: AbortSignal;
}

/** One planned (cluster, slots, mode, solver), scored on the scored workload. */
export interface CompareRow extends Performance {
  cluster: string;
  gpu: string;
  nodes: number;
  gpusPerNode: number;
  gpus: number;
  slotsPerGpu: number;
  redundantExperts: number;
  memoryBytesPerGpu: number;
  memoryBudgetBytes: number;
  mode: Mode;
  solver: string;
  objective: Objective;
  /** Scaled to `batchTokens` (by `batchScale`). */
  interNodeBytes: number;
  intraNodeBytes: number;
  balancedness: number;
  maxOverMean: number;
  remoteNodesPerToken: number;
  /** The plan's figures on the workload it was fitted on, as recorded (same as the scored ones in-sample). */
  fit: { balancedness: number; interNodeBytes: number; timeSeconds: number };
  /** Solver wall time, seconds. */
  planSeconds: number;
  /** The solver was stopped by `signal` (best plan so far). */
  interrupted: boolean;
}

/** Per (cluster, mode): the row with the most tokens per second per GPU. */
export interface BestRow {
  cluster: string;
  mode: Mode;
  /** Index into `rows`. */
  row: number;
  solver: string;
  slotsPerGpu: number;
  tokensPerSecondPerGpu: number;
  /** tokensPerSecondPerGpu / that of the first cluster's best in the same mode. */
  vsFirstCluster: number;
}

export interface CompareResult {
  format: typeof COMPARE_FORMAT;
  model: string;
  split: string;
  heldOut: boolean;
  /** Traffic of the scored workload estimated on tokens sampled from counts. */
  estimated: boolean;
  objective: Objective;
  seed: number;
  /** Tokens per GPU the times and bytes are scaled to, null = the scored workload as recorded. */
  tokensPerGpu: number | null;
  rows: CompareRow[];
  skipped: SkippedLevel[];
  best: BestRow[];
  notes: string[];
  interrupted: boolean;
}

export interface CompareOutcome {
  result: CompareResult;
  /** The placement of each row (same order as `result.rows`). */
  placements: Placement[];
  /** The evaluation of each row on the scored workload. */
  evaluations: Evaluation[];
  /** The cluster each row was planned on (its slots level and expert memory budget). */
  clusters: Cluster[];
}

/**
 * Plan every fitting (cluster, slots) level in every mode with every solver on `split.fit`, and
 * score each plan on `split.score`. Throws InputError when a cluster has no level that fits (with
 * the reasons) or a solver name is unknown (from `plan`).
 */
export async function compare(args: CompareArgs): Promise<CompareOutcome> {
  const { model, split } = args;
  const modes = args.modes ?? ['normal'];
  const solvers = args.solvers ?? ['eplb', 'optimize'];
  const objective = args.objective ?? 'time';
  const seed = args.seed ?? 0;
  if (args.clusters.length === 0) throw new InputError('no cluster to compare', { field: 'clusters' });
  if (modes.length === 0) throw new InputError('no mode to compare', { field: 'modes' });
  if (solvers.length === 0) throw new InputError('no solver to compare', { field: 'solvers' });
  const levels: Level[] = [];
  const skipped: SkippedLevel[] = [];
  for (const c of args.clusters) {
    const r = levelsOf(model, c, args.slotsPerGpu ?? [c.slotsPerGpu], args.expertMemoryBytes);
    if (r.fits.length === 0) {
      throw new InputError(
        r.skipped.map((s) => `cluster ${c.name}: no slots level fits: ${s.slotsPerGpu} slots: ${s.reason}`),
        { field: 'slotsPerGpu' },
      );
    }
    levels.push(...r.fits);
    skipped.push(...r.skipped);
  }
  const rows: CompareRow[] = [];
  const placements: Placement[] = [];
  const evaluations: Evaluation[] = [];
  const rowClusters: Cluster[] = [];
  const total = levels.length * modes.length * solvers.length;
  let interrupted = false;
  outer: for (const level of levels) {
    const c = level.cluster;
    const NG = c.nodes * c.gpusPerNode;
    for (const mode of modes) {
      for (const solver of solvers) {
        if (args.signal?.aborted) {
          interrupted = true;
          break outer;
        }
        args.onProgress?.(`${c.name} x ${c.slotsPerGpu} slots, ${mode}: ${solver}`, rows.length / total);
        const r = await planApi({
          model,
          cluster: c,
          workload: split.fit,
          solver,
          objective,
          mode,
          seed,
          timeLimitSeconds: args.timeLimitSeconds,
          workers: args.workers ?? 1,
          eps: args.eps,
          signal: args.signal,
        });
        const ev = split.score === split.fit ? r.evaluation : evaluatePlan({ model, cluster: c, placement: r.result.placement, workload: split.score, mode }).evaluation;
        const perf = performanceOf(ev, NG, args.tokensPerGpu !== undefined ? args.tokensPerGpu * NG : undefined);
        rows.push({
          cluster: c.name,
          gpu: c.gpu.name,
          nodes: c.nodes,
          gpusPerNode: c.gpusPerNode,
          gpus: NG,
          slotsPerGpu: c.slotsPerGpu,
          redundantExperts: level.redundantExperts,
          memoryBytesPerGpu: level.memoryBytesPerGpu,
          memoryBudgetBytes: level.memoryBudgetBytes,
          mode,
          solver,
          objective,
          ...perf,
          interNodeBytes: ev.interNodeBytes * perf.batchScale,
          intraNodeBytes: ev.intraNodeBytes * perf.batchScale,
          balancedness: ev.balancedness,
          maxOverMean: ev.maxOverMean,
          remoteNodesPerToken: ev.remoteNodesPerToken,
          fit: { balancedness: r.evaluation.balancedness, interNodeBytes: r.evaluation.interNodeBytes, timeSeconds: r.evaluation.timeSeconds },
          planSeconds: r.plan.provenance!.wallTimeSeconds,
          interrupted: r.result.interrupted === true,
        });
        placements.push(r.result.placement);
        evaluations.push(ev);
        rowClusters.push(c);
        if (r.result.interrupted) interrupted = true;
      }
    }
  }
  const estimated = split.score.kind === 'counts';
  const notes = [
    (args.tokensPerGpu !== undefined
      ? `times and bytes are for a batch of ${args.tokensPerGpu} tokens per GPU as one step (every scored token weighted alike: the cost model is linear in token weights, so the routing mix is the scored workload's and tok/s/GPU and balancedness do not depend on the batch size)`
      : 'times and bytes are for the scored workload as one batch (one step)') +
      `; the cost model's estimate per MoE layer (mean over the ${model.moeLayerIds.length} MoE layers), routed experts only (no attention, dense layers or shared experts)`,
    'tok/s/GPU = batch tokens / (sum of the MoE layer times) / GPUs',
    "binds = the resource the largest share of the time is spent on: compute (the busiest GPU's expert GEMMs) or the link that sets each layer's dispatch + combine (the busiest GPU's RDMA NIC or NVLink port)",
    `memory = slots x ${model.moeLayerIds.length} MoE layers x ${(model.expertBytes / 1e6).toFixed(1)} MB per expert, against each cluster's expert memory budget`,
  ];
  if (estimated) notes.push('the scored workload is per-layer counts: loads are exact, traffic is estimated on tokens sampled from the counts');
  return {
    result: {
      format: COMPARE_FORMAT,
      model: model.name,
      split: split.split,
      heldOut: split.heldOut,
      estimated,
      objective,
      seed,
      tokensPerGpu: args.tokensPerGpu ?? null,
      rows,
      skipped,
      best: bestRows(rows),
      notes,
      interrupted,
    },
    placements,
    evaluations,
    clusters: rowClusters,
  };
}

/** Per (cluster, mode), in first-seen order: the row with the most tokens/s per GPU. */
export function bestRows(rows: readonly CompareRow[]): BestRow[] {
  const best = new Map<string, number>();
  rows.forEach((r, i) => {
    const key = `${r.cluster}\u0000${r.mode}`;
    const b = best.get(key);
    if (b === undefined || r.tokensPerSecondPerGpu > rows[b].tokensPerSecondPerGpu) best.set(key, i);
  });
  const out: BestRow[] = [];
  const firstOfMode = new Map<Mode, number>();
  for (const i of best.values()) {
    const r = rows[i];
    if (!firstOfMode.has(r.mode)) firstOfMode.set(r.mode, r.tokensPerSecondPerGpu);
    const first = firstOfMode.get(r.mode)!;
    out.push({
      cluster: r.cluster,
      mode: r.mode,
      row: i,
      solver: r.solver,
      slotsPerGpu: r.slotsPerGpu,
      tokensPerSecondPerGpu: r.tokensPerSecondPerGpu,
      vsFirstCluster: first > 0 ? r.tokensPerSecondPerGpu / first : 0,
    });
  }
  return out;
}

/**
 * The row a report details: the most tokens / s per GPU among the solvers other than EPLB (among
 * all rows when there is only EPLB), and as its baseline the EPLB row of the same cluster, slots
 * and mode when there is one. Undefined when there are no rows.
 */
export function detailRows(result: CompareResult): { row: number; baseline?: number } | undefined {
  const rows = result.rows;
  if (rows.length === 0) return undefined;
  const pool = rows.map((_, i) => i).filter((i) => rows[i].solver !== 'eplb');
  const candidates = pool.length > 0 ? pool : rows.map((_, i) => i);
  let best = candidates[0];
  for (const i of candidates) if (rows[i].tokensPerSecondPerGpu > rows[best].tokensPerSecondPerGpu) best = i;
  const r = rows[best];
  const base = rows.findIndex((x, i) => i !== best && x.solver === 'eplb' && x.cluster === r.cluster && x.slotsPerGpu === r.slotsPerGpu && x.mode === r.mode);
  return base >= 0 ? { row: best, baseline: base } : { row: best };
}
