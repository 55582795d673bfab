/**
 * `plan` (run a solver, rebalance from a running plan, evaluate, bound, build the plan file) and `evaluatePlan`.
 */
import { getSolver } from '../solvers/registry.js';
import type { Solver, SolveProgress, SolveResult } from '../solvers/types.js';
import { evaluate, evaluateStream, parseCostOptions, type Evaluation } from '../cost.js';
import { InputError, SolverError } from '../errors.js';
import { validatePlacement } from '../placement.js';
import { buildPlanFile, shapeOfCluster } from '../plan.js';
import { ModeSchema, ObjectiveSchema } from '../schemas.js';
import type { Cluster, CostOptionsInput, Mode, Model, Objective, PlanFile } from '../schemas.js';
import type { Placement, Shape, Workload } from '../types.js';
import type { StreamedIndex } from '../workload/stream.js';
import { expertLoadsOfLayer } from '../workload/tokens.js';
import { migrationJson, rebalance, type RebalanceResult } from '../migrate/rebalance.js';
import { TOOL_NAME, toolVersion, digestOf, workloadDigest } from './provenance.js';
import { checkFeasibility, checkWorkload } from './feasibility.js';
import { layerMaxLoadBounds, layerTrafficBounds } from './bounds.js';
import { Prework } from './prework.js';

export interface PlanArgs {
  model: Model;
  cluster: Cluster;
  workload: Workload;
  /** Solver name (see `SOLVERS`); default `optimize`. */
  solver?: string;
  /** Default `traffic`. */
  objective?: Objective;
  /** All-to-all kernels the cost is counted for; default `normal`. */
  mode?: Mode;
  /** Default 0. The plan is the same for a given seed whatever the worker count. */
  seed?: number;
  timeLimitSeconds?: number;
  /** Worker threads; default 1. */
  workers?: number;
  /** Max-load slack of the traffic objective (default 0.02 = 2%). */
  eps?: number;
  /** Other cost-model options for the evaluation (efficiency, overlap, sampleTokens, seed). */
  costOptions?: Omit<CostOptionsInput, 'mode'>;
  onProgress?: (p: SolveProgress) => void;
  /** Aborting stops the search; the best plan so far is returned marked interrupted. */
  signal?: AbortSignal;
  /**
   * A trace too large to load, indexed by `streamIndex` (built with the same seed): the solver
   * works on it, `workload` is its stand-in (`workloadOfIndex`), and the plan is evaluated by
   * streaming the trace file again.
   */
  index?: StreamedIndex;
  /**
   * Re-place from a running placement (`plan --from`): the solver's plan is aligned with it to
   * keep experts in place, or, when that moves more than `maxMovedExperts`, the running placement
   * is rebalanced within that budget (src/migrate). The plan records the moves.
   */
  from?: { placement: Placement; maxMovedExperts?: number; path?: string };
}

export interface PlanOutcome {
  /** The plan file (metrics on the fitted workload, bounds, provenance). */
  plan: PlanFile;
  /** The evaluation behind `plan.metrics` (with per-GPU loads). */
  evaluation: Evaluation;
  /** What the solver returned. */
  result: SolveResult;
  /** [L] per-layer max-load lower bounds. */
  layerBounds: Float64Array;
  /** With `from`: how the plan was made from the running one and what it moves. */
  rebalance?: RebalanceResult;
}

function checkOption(ok: boolean, field: string, message: string): void {
  if (!ok) throw new InputError(message, { field });
}

function jsonSafe(v: unknown): unknown {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

/**
 * Plan a placement of `model`'s experts on `cluster` for `workload` with a solver. Checks the
 * request first (`checkFeasibility`, option values: InputError naming the option), then solves,
 * validates the solver's placement (a bad one is a SolverError), evaluates it on the workload,
 * bounds the max load and the inter-node bytes per layer (`layerMaxLoadBounds`,
 * `layerTrafficBounds`; the traffic bound is left out for counts-only workloads) and builds the
 * plan file with provenance. On a counts workload the evaluation's sampled tokens and the max-load
 * bounds, which do not depend on the placement, are computed beside the solve in a worker thread
 * (`Prework`, prework.ts): the same plan, sooner where a core is free.
 */
export async function plan(args: PlanArgs): Promise<PlanOutcome> {
  const started = performance.now();
  const { model, cluster, workload } = args;
  const solverName = args.solver ?? 'optimize';
  const solver = getSolver(solverName);
  const objective = args.objective ?? 'traffic';
  const mode = args.mode ?? 'normal';
  const seed = args.seed ?? 0;
  checkOption(ObjectiveSchema.safeParse(objective).success, 'objective', `must be one of ${ObjectiveSchema.options.join(', ')}, got ${JSON.stringify(objective)}`);
  checkOption(ModeSchema.safeParse(mode).success, 'mode', `must be one of ${ModeSchema.options.join(', ')}, got ${JSON.stringify(mode)}`);
  checkOption(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff, 'seed', `must be an integer in 0..4294967295, got ${seed}`);
  if (args.timeLimitSeconds !== undefined) {
    checkOption(Number.isFinite(args.timeLimitSeconds) && args.timeLimitSeconds > 0, 'timeLimitSeconds', `must be a positive number of seconds, got ${args.timeLimitSeconds}`);
  }
  if (args.workers !== undefined) checkOption(Number.isInteger(args.workers) && args.workers >= 1, 'workers', `must be a positive integer, got ${args.workers}`);
  if (args.eps !== undefined) checkOption(Number.isFinite(args.eps) && args.eps >= 0, 'eps', `must be a non-negative number, got ${args.eps}`);
  checkFeasibility(model, cluster, workload);
  const shape = shapeOfCluster(cluster);
  const costOptions: CostOptionsInput = { ...args.costOptions, mode };
  const prework = startPrework(workload, model, shape, costOptions, objective, args.workers ?? 1);
  try {
    return await planWith(args, started, solver, solverName, objective, mode, seed, shape, costOptions, prework);
  } finally {
    prework?.dispose();
  }
}

/**
 * Counts workloads: the evaluation's samples and the max-load bounds computed beside the solve
 * (Prework), unless the solve itself runs on several threads (optimize's pool: objectives other
 * than balance on several nodes with several workers).
 */
function startPrework(workload: Workload, model: Model, shape: Shape, costOptions: CostOptionsInput, objective: Objective, workers: number): Prework | null {
  if (workload.kind !== 'counts') return null;
  if (workers > 1 && objective !== 'balance' && shape.nodes > 1) return null;
  const opts = parseCostOptions(costOptions);
  const n = Math.ceil(opts.sampleTokens / shape.numGpus) * shape.numGpus;
  // Not worth a thread below a million draws (V3's 58 layers: 7.6M).
  if (workload.counts.numLayers * n * model.topK < PREWORK_MIN_DRAWS) return null;
  return new Prework(workload.counts.counts, model.topK, n, shape.numGpus, shape.slotsPerGpu, opts.seed);
}

/** Draws of the evaluation's samples from which plan() starts a Prework. */
const PREWORK_MIN_DRAWS = 1 << 20;

async function planWith(
  args: PlanArgs,
  started: number,
  solver: Solver,
  solverName: string,
  objective: Objective,
  mode: Mode,
  seed: number,
  shape: Shape,
  costOptions: CostOptionsInput,
  prework: Prework | null,
): Promise<PlanOutcome> {
  const { model, cluster, workload } = args;
  const result = await solver.solve({
    model,
    cluster,
    shape,
    workload,
    index: args.index,
    objective,
    mode,
    seed,
    timeLimitSeconds: args.timeLimitSeconds,
    workers: args.workers ?? 1,
    eps: args.eps,
    onProgress: args.onProgress,
    signal: args.signal,
  });
  let placement = result.placement;
  try {
    validatePlacement(placement, `${solverName} placement`);
  } catch (err) {
    if (err instanceof InputError) throw new SolverError(`solver ${solverName} returned an invalid placement: ${err.problems.join('; ')}`, { solver: solverName });
    throw err;
  }
  let rebalanced: RebalanceResult | undefined;
  if (args.from) {
    args.onProgress?.({ stage: 'migrate', fraction: 0 });
    const loads = Array.from({ length: placement.numLayers }, (_, l) => expertLoadsOfLayer(workload, l));
    rebalanced = rebalance({
      current: args.from.placement,
      replan: placement,
      loads,
      maxMoves: args.from.maxMovedExperts,
      expertBytes: model.expertBytes,
      speeds: cluster.gpu,
    });
    placement = rebalanced.placement;
    validatePlacement(placement, 'rebalanced placement');
  }
  args.onProgress?.({ stage: 'evaluate', fraction: 0 });
  const evaluation = args.index?.meta.path
    ? await evaluateStream({ path: args.index.meta.path, model, cluster, placement, options: costOptions })
    : evaluate({ model, cluster, placement, workload, options: costOptions, samples: prework?.samples() });
  const layerBounds = prework ? prework.bounds() : layerMaxLoadBounds(workload, shape);
  let bound = 0;
  for (const b of layerBounds) bound = Math.max(bound, b);
  if (result.bounds?.maxLoadLowerBound !== undefined) bound = Math.max(bound, result.bounds.maxLoadLowerBound);
  // Traffic: bounded on exactly the tokens the evaluation above counted (the streamed file through
  // the index's exact sets, else the workload); nothing is claimed for estimated traffic.
  args.onProgress?.({ stage: 'bound', fraction: 0 });
  const trafficBounds = layerTrafficBounds(workload, model, shape, mode, args.index?.meta.path ? args.index : undefined);
  let trafficBound: number | undefined;
  for (const b of trafficBounds) if (Number.isFinite(b)) trafficBound = (trafficBound ?? 0) + b;
  const solverTraffic = result.bounds?.interNodeBytesLowerBound;
  if (solverTraffic !== undefined) trafficBound = Math.max(trafficBound ?? 0, solverTraffic);
  const interrupted = result.interrupted === true || args.signal?.aborted === true;
  const options: Record<string, unknown> = {
    mode,
    eps: args.eps ?? 0.02,
    workers: args.workers ?? 1,
    ...args.costOptions,
  };
  if (args.timeLimitSeconds !== undefined) options.timeLimitSeconds = args.timeLimitSeconds;
  if (result.info) options.solverInfo = jsonSafe(result.info);
  if (args.from) {
    options.from = args.from.path ?? 'placement';
    if (args.from.maxMovedExperts !== undefined) options.maxMovedExperts = args.from.maxMovedExperts;
  }
  const planFile = buildPlanFile({
    model,
    cluster,
    placement,
    metrics: evaluation,
    bounds: {
      maxLoadLowerBound: bound,
      interNodeBytesLowerBound: trafficBound,
      exact: result.bounds?.exact,
      perLayer: Array.from(layerBounds, (b, l) => ({
        layer: l,
        maxLoadLowerBound: b,
        interNodeBytesLowerBound: Number.isFinite(trafficBounds[l]) ? trafficBounds[l] : undefined,
      })),
    },
    provenance: {
      tool: TOOL_NAME,
      version: toolVersion(),
      solver: solverName,
      objective,
      options,
      seed,
      inputDigests: {
        workload: workloadDigest(workload),
        model: digestOf(model),
        cluster: digestOf(cluster),
      },
      wallTimeSeconds: Math.round(performance.now() - started) / 1000,
      interrupted,
      createdAt: new Date().toISOString(),
    },
    migration: rebalanced && migrationJson(rebalanced, args.from?.path, args.from?.maxMovedExperts, model.expertBytes),
    // validated above (the solver's placement, or the rebalanced one)
    placementValidated: true,
  });
  return { plan: planFile, evaluation, result: { ...result, placement, interrupted }, layerBounds, rebalance: rebalanced };
}


export interface EvaluatePlanArgs {
  model: Model;
  cluster: Cluster;
  placement: Placement;
  workload: Workload;
  /** Default `normal`. */
  mode?: Mode;
  costOptions?: Omit<CostOptionsInput, 'mode'>;
  /** Also compute the [L][NG*NG] traffic matrices (for `traffic-csv`). */
  trafficMatrix?: boolean;
}

export interface PlanEvaluation {
  evaluation: Evaluation;
  /** [L] per-layer max-load lower bounds for the placement's shape. */
  layerBounds: Float64Array;
  /** Max over layers of `layerBounds`. */
  maxLoadLowerBound: number;
}

/** Score `placement` on `workload` (cost model of cost.ts) and bound the max load per layer. */
export function evaluatePlan(args: EvaluatePlanArgs): PlanEvaluation {
  const { model, cluster, placement, workload } = args;
  checkWorkload(model, workload);
  const evaluation = evaluate({
    model,
    cluster,
    placement,
    workload,
    options: { ...args.costOptions, mode: args.mode ?? 'normal' },
    trafficMatrix: args.trafficMatrix,
  });
  const layerBounds = layerMaxLoadBounds(workload, placement.shape);
  let maxLoadLowerBound = 0;
  for (const b of layerBounds) maxLoadLowerBound = Math.max(maxLoadLowerBound, b);
  return { evaluation, layerBounds, maxLoadLowerBound };
}
