/**
 * `optimize`: the default solver. Indexes the workload into per-layer weighted token sets and
 * demand chunks, solves every layer (src/search/layer.ts) in this thread or over a piscina pool of
 * worker threads, and assembles the plan. Each layer's seed is derived from (seed, layer) and its
 * deadline from the time spent when it starts (layerDeadline), so the plan is the same for any
 * worker count unless the time limit cuts a search short, which the result's `info.cutByTimeLimit`
 * records.
 */
import { setMaxListeners } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { SolverError } from '../errors.js';
import { deriveSeed } from '../rng.js';
import { balanceTask, solveLayer, type LayerResult, type LayerTask } from '../search/layer.js';
import type { Placement } from '../types.js';
import { DEFAULT_VALIDATION, indexWorkload, type IndexOptions } from '../workload/indexer.js';
import type { Solver, SolveInput, SolveResult } from './types.js';

/** Fraction of each node's slots kept for in-node replicas (normal mode, OptimizeOptions.slotReserve). */
export const DEFAULT_SLOT_RESERVE = 0.1;
/** FM refinement passes per start. */
export const DEFAULT_REFINE_PASSES = 20;
/** Extra max-load slack of each request sample over eps (when samples are on). */
export const DEFAULT_SAMPLE_SLACK = 0.01;
/** Token sets the node-level search works on per layer. */
export const DEFAULT_MAX_SEARCH_SETS = 8192;

export interface OptimizeOptions extends IndexOptions {
  /** Annealing proposals per expert before FM refinement of each start; default 0 (FM only). */
  proposalsPerExpert?: number;
  /** FM refinement passes per start; default 20. */
  refinePasses?: number;
  /** Annealed restarts per candidate beyond one run per start; default 0. */
  restarts?: number;
  /** Annealing start temperature as a fraction of the mean uphill step; default 0.3. */
  temperature?: number;
  /** Transportation LP for node-level serving after refinement; default true. */
  lpDispatch?: boolean;
  /**
   * Slots per node kept free of the node-level search for in-node replicas of hot experts, which
   * keep the node's GPUs balanced on tokens the plan has not seen; default 10% of a node's slots
   * in normal mode with several GPUs per node, else none (in low-latency mode every remote pair
   * costs, so free slots buy more as replicas on other nodes).
   */
  slotReserve?: number;
  sampleSlack?: number;
  maxSearchSets?: number;
}

/** Build the per-layer tasks from the workload's index. */
export function buildLayerTasks(input: SolveInput, opts: OptimizeOptions = {}): LayerTask[] {
  const { model, cluster, shape } = input;
  const E = model.experts;
  const needSets = input.objective !== 'balance' && shape.nodes > 1;
  const index =
    input.index ??
    indexWorkload(input.workload, model.topK, shape.numGpus, {
      ...opts,
      seed: input.seed,
      samples: opts.samples ?? 0,
      // The balance objective needs loads only, not the token hypergraph.
      sampleTokens: needSets ? opts.sampleTokens : 0,
      maxSets: needSets ? opts.maxSets : 0,
      validation: needSets ? (opts.validation ?? DEFAULT_VALIDATION) : 0,
    });
  if (index.numGpus !== shape.numGpus) throw new SolverError(`workload index made for ${index.numGpus} GPUs, cluster has ${shape.numGpus}`);
  const none = { experts: new Uint16Array(0), source: new Uint16Array(0), weight: new Float64Array(0) };
  return index.layers.map((li, l) => {
    const vs = li.valSets ?? none;
    // Planned loads leave the validation requests out, so that validation scores are honest.
    const expertLoad = li.valLoad ? li.expertLoad.map((x, e) => x - li.valLoad![e]) : li.expertLoad;
    return {
      layer: l,
      seed: deriveSeed(input.seed, l),
      numExperts: E,
      nodes: shape.nodes,
      gpusPerNode: shape.gpusPerNode,
      slotsPerGpu: shape.slotsPerGpu,
      mode: input.mode,
      objective: input.objective,
      eps: input.eps ?? 0.02,
      k: li.sets.k,
      experts: li.sets.experts,
      source: li.sets.source,
      weight: li.sets.weight,
      valExperts: vs.experts,
      valSource: vs.source,
      valWeight: vs.weight,
      expertLoad,
      sampleLoad: li.sampleLoad,
      estimated: index.estimated,
      iterations: (opts.proposalsPerExpert ?? 0) * E,
      refinePasses: opts.refinePasses ?? DEFAULT_REFINE_PASSES,
      restarts: opts.restarts ?? 0,
      temperature: opts.temperature,
      lpDispatch: opts.lpDispatch ?? true,
      slotReserve: opts.slotReserve ?? (input.mode === 'normal' && shape.gpusPerNode > 1 ? Math.round(DEFAULT_SLOT_RESERVE * shape.gpusPerNode * shape.slotsPerGpu) : 0),
      maxSearchSets: opts.maxSearchSets ?? DEFAULT_MAX_SEARCH_SETS,
      sampleSlack: opts.sampleSlack ?? DEFAULT_SAMPLE_SLACK,
      model,
      cluster,
    };
  });
}

/** Path of the compiled worker entry (next to this file when compiled, under dist/ from source). */
export function workerPath(): string {
  const here = import.meta.url;
  const url = here.endsWith('.ts') ? new URL('../../dist/src/solvers/worker.js', here) : new URL('./worker.js', here);
  const path = fileURLToPath(url);
  if (!existsSync(path)) throw new SolverError(`worker entry ${path} is missing: run \`npm run build\` first`);
  return path;
}

/** Fraction of a layer's fair share of the budget that every layer not yet started keeps. */
export const LATE_RESERVE = 0.25;
/** A layer may take at most this many times its share of the time left (see `layerDeadline`). */
export const SHARE_CAP = 4;

/** The time limit as the solver spends it (epoch ms); see `layerDeadline`. */
export interface LayerBudget {
  /** When the last layer must be done. */
  end: number;
  /** Budget in ms from the start of the search to `end`. */
  total: number;
  layers: number;
  workers: number;
}

/**
 * Deadline (epoch ms) of layer `layer` when it starts at `now`, layers starting in index order,
 * `workers` at a time (a round = `workers` layers). With share = the time left / the rounds left:
 * - at most `end` less a reserve for every later round (LATE_RESERVE of a layer's fair share
 *   total * workers / layers each), and at most now + SHARE_CAP * share: a layer is cut only when
 *   the run as a whole is short of time or it alone takes several times what is left per round,
 *   so a limit that the unlimited search fits in cuts nothing and the plan is the same for any
 *   worker count;
 * - at least now + share: once the reserve can no longer be kept (the limit binds), the layers
 *   left share what is left.
 * Never after `end`.
 */
export function layerDeadline(b: LayerBudget, layer: number, now: number): number {
  const w = Math.max(1, Math.min(b.workers, b.layers));
  const reserve = (LATE_RESERVE * b.total * w) / b.layers;
  // Rounds of `w` layers from this one's on (the next w - 1 layers run beside it).
  const roundsLeft = Math.ceil((b.layers - layer) / w);
  const share = Math.max(0, b.end - now) / roundsLeft;
  const generous = Math.min(b.end - reserve * (roundsLeft - 1), now + SHARE_CAP * share);
  return Math.min(b.end, Math.max(now + share, generous));
}

interface RunOutcome {
  results: (LayerResult | null)[];
  interrupted: boolean;
}

/**
 * Threads the layers run on for `workers` requested (1 = this thread, no pool): at most one per
 * layer, and this thread alone when every layer only packs (objective `balance`, or one node:
 * `solveLayer` then builds the balanced candidates only, a few ms a layer), where a pool costs
 * more than it saves (~0.3 s a thread to load the modules and warm a cold JIT, against ~0.2 s
 * for all 58 layers of DeepSeek-V3 in one warm thread). A layer's result does not depend on the
 * thread it runs on, so the plan is the same either way.
 */
export function threadsFor(tasks: readonly LayerTask[], workers: number): number {
  if (tasks.every((t) => t.objective === 'balance' || t.nodes <= 1)) return 1;
  return Math.max(1, Math.min(workers, tasks.length));
}

/**
 * Solves the layers in index order, `threadsFor(tasks, input.workers)` at a time (in this thread
 * for one, else over a piscina pool); each layer gets its deadline from `budget` when it starts,
 * so deadlines depend on the time spent so far, never on which worker finished first.
 */
async function runTasks(tasks: LayerTask[], input: SolveInput, budget: LayerBudget | null): Promise<RunOutcome> {
  const results: (LayerResult | null)[] = new Array(tasks.length).fill(null);
  const workers = threadsFor(tasks, input.workers ?? 1);
  let done = 0;
  const report = (r: LayerResult): void => {
    done++;
    input.onProgress?.({ stage: `layer ${r.layer} (${r.chosen})`, fraction: done / tasks.length });
  };
  const start = (t: LayerTask): void => {
    if (budget) t.deadline = layerDeadline(budget, t.layer, Date.now());
  };
  if (workers === 1) {
    for (const t of tasks) {
      // Yield to the event loop between layers so that a SIGINT handler can abort the run.
      await new Promise((resolve) => setImmediate(resolve));
      if (input.signal?.aborted) return { results, interrupted: true };
      start(t);
      results[t.layer] = await solveLayer(t);
      report(results[t.layer]!);
    }
    return { results, interrupted: false };
  }
  const pool = new Piscina({ filename: workerPath(), minThreads: workers, maxThreads: workers, idleTimeout: 1000 });
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  let failed = false;
  const onAbort = (): void => abort.abort();
  input.signal?.addEventListener('abort', onAbort);
  try {
    const runOne = async (t: LayerTask, attempt: number): Promise<void> => {
      // Typed arrays are copied once here and their buffers transferred (not cloned) to the worker.
      const copy = {
        ...t,
        attempt,
        experts: t.experts.slice(),
        source: t.source.slice(),
        weight: t.weight.slice(),
        valExperts: t.valExperts.slice(),
        valSource: t.valSource.slice(),
        valWeight: t.valWeight.slice(),
        sampleLoad: t.sampleLoad.slice(),
      };
      const transferList = [copy.experts, copy.source, copy.weight, copy.valExperts, copy.valSource, copy.valWeight, copy.sampleLoad].map((a) => a.buffer);
      try {
        const r = (await pool.run(copy, { signal: abort.signal, transferList })) as LayerResult;
        results[t.layer] = r;
        report(r);
      } catch (err) {
        if (abort.signal.aborted || failed) return;
        if (attempt === 0) {
          input.onProgress?.({ stage: `worker failed on layer ${t.layer} (seed ${t.seed}): ${(err as Error)?.message ?? err}; retrying` });
          start(t);
          return runOne(t, 1);
        }
        failed = true;
        throw new SolverError(`worker failed on layer ${t.layer} (seed ${t.seed}) twice: ${(err as Error)?.message ?? err}`, { layer: t.layer, seed: t.seed });
      }
    };
    // `workers` lanes, each taking the next layer in index order when its last one is done (the
    // pool has one thread per lane, so a layer starts when it is handed over).
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < tasks.length && !abort.signal.aborted && !failed) {
        const t = tasks[next++];
        start(t);
        await runOne(t, 0);
      }
    };
    await Promise.all(Array.from({ length: workers }, lane));
    return { results, interrupted: abort.signal.aborted };
  } finally {
    input.signal?.removeEventListener('abort', onAbort);
    await pool.destroy();
  }
}

export async function optimize(input: SolveInput, opts: OptimizeOptions = {}): Promise<SolveResult> {
  const started = Date.now();
  const tasks = buildLayerTasks(input, opts);
  let budget: LayerBudget | null = null;
  if (input.timeLimitSeconds !== undefined) {
    // The budget, less a margin for indexing, assembly and evaluation, ends at `end`; each layer's
    // deadline follows from it when the layer starts (layerDeadline). A layer whose deadline has
    // passed when it starts keeps its balanced layout; a search stops at its layer's deadline.
    const now = Date.now();
    const total = Math.max(0, input.timeLimitSeconds * 1000 * 0.8 - (now - started));
    budget = { end: now + total, total, layers: tasks.length, workers: threadsFor(tasks, input.workers ?? 1) };
  }
  input.onProgress?.({ stage: 'index', fraction: 0 });
  const { results, interrupted } = await runTasks(tasks, input, budget);
  const { shape } = input;
  const E = input.model.experts;
  const phy2log: Int32Array[] = [];
  const dispatch: Int32Array[] = [];
  const chosen: Record<string, number> = {};
  const cut: number[] = [];
  for (let l = 0; l < tasks.length; l++) {
    let r = results[l];
    if (!r) {
      // Interrupted before this layer was solved: fall back to its balanced layout.
      const b = balanceTask(tasks[l]);
      phy2log.push(b.phy2log);
      dispatch.push(b.dispatch);
      chosen['balance (interrupted)'] = (chosen['balance (interrupted)'] ?? 0) + 1;
      continue;
    }
    phy2log.push(r.phy2log);
    dispatch.push(r.dispatch);
    const key = r.chosen.split(' ')[0];
    chosen[key] = (chosen[key] ?? 0) + 1;
    if (r.cut) cut.push(l);
    r = null;
  }
  const placement: Placement = { numLayers: tasks.length, numExperts: E, shape, phy2log, dispatch };
  const info: Record<string, unknown> = { layers: tasks.length, chosen, wallSeconds: (Date.now() - started) / 1000 };
  // Layers whose search the time limit stopped early or skipped: the plan may then depend on the
  // machine's speed and the worker count; with none listed it does not.
  if (budget) info.cutByTimeLimit = cut;
  return { placement, interrupted, info };
}

export const optimizeSolver: Solver = {
  name: 'optimize',
  description: 'balanced packing and EPLB as references; k-way FM refinement with replication on the exact node-level traffic from several starts, a transportation LP for serving, packing inside nodes; candidates chosen on held-back requests (default)',
  solve: (input) => optimize(input),
};
