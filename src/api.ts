/**
 * The high-level library API: what the CLI does, as functions.
 *
 * - `plan`: check that the request can be met, run a solver, score its placement on the workload,
 *   bound the best possible max load and build the plan file (with provenance).
 * - `evaluatePlan`: score any placement on any workload, with the per-layer max-load lower bounds.
 * - `loadPlacement`: a moe-placer plan or an engine placement file (SGLang, EPLB / vLLM,
 *   TensorRT-LLM, vllm-ascend; detected from the content) as a placement + plan file.
 * - `exportPlanFile`: a plan in an engine or simulator format (`traffic-csv` evaluates first).
 * - `metricsReport`: an evaluation as plain JSON-ready numbers (what `--json` prints).
 *
 * Everything here is thin: the work is done by the solvers (solvers/), the evaluator (cost.ts),
 * the bounds (bounds.ts) and the plan file functions (plan.ts).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSolver } from '../solvers/registry.js';
import type { SolveProgress, SolveResult } from '../solvers/types.js';
import { coverageTrafficBound } from './bounds/coverage.js';
import { maxLoadLowerBound } from './bounds/max-load.js';
import { evaluate, evaluateStream, type Evaluation } from './cost.js';
import { InfeasibleError, InputError, SolverError } from './errors.js';
import { EXPORT_FORMATS, exportPlan, isExportFormat, type ExportFormat } from './formats/export.js';
import { detectImportFormat, importPlacement, type ImportFormat } from './formats/import.js';
import { validatePlacement } from './placement.js';
import { buildPlanFile, parseJsonText, readPlanFile, relativeGap, shapeOfCluster } from './plan.js';
import { ModeSchema, ObjectiveSchema } from './schemas.js';
import type { Cluster, CostOptionsInput, Mode, Model, Objective, PlanFile } from './schemas.js';
import type { Placement, Shape, TokenSets, Workload, WorkloadIndex } from './types.js';
import type { StreamedIndex } from './workload/stream.js';
import { concatSets, expertLoadsOfLayer, tokenSetsOfLayer } from './workload/tokens.js';
import { migrationJson, rebalance, type RebalanceResult } from './migrate/rebalance.js';

export const TOOL_NAME = 'moe-placer';

let cachedVersion: string | undefined;

/** The tool version from package.json (the nearest one named moe-placer above this module). */
export function toolVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === TOOL_NAME && typeof pkg.version === 'string') return (cachedVersion = pkg.version);
      } catch {
        // not ours; keep looking
      }
    }
    dir = dirname(dir);
  }
  return (cachedVersion = '0.0.0-unknown');
}

// ---------------------------------------------------------------------------------------------
// Feasibility

/** Bytes with a decimal unit (B, kB, MB, GB, TB) and 3 significant digits: `14.9 GB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 999.5 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  if (u === 0) return `${Math.round(v)} B`;
  return `${v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2)} ${units[u]}`;
}

const gb = formatBytes;

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** [L] and E of a workload. */
function workloadShape(workload: Workload): { layers: number; experts: number; topK?: number } {
  return workload.kind === 'trace'
    ? { layers: workload.trace.numLayers, experts: workload.trace.numExperts, topK: workload.trace.topK }
    : { layers: workload.counts.numLayers, experts: workload.counts.numExperts };
}

/**
 * Check, before any work, that `model` fits `cluster` (and `workload`, when given): at least one
 * slot per logical expert, the slots' weights within the expert memory budget and the GPU memory,
 * at most 65535 GPUs, and a workload with the model's MoE layers, experts and top-k. Throws an
 * InfeasibleError (exit 2) giving the numbers that do not fit and what would fit, one line each.
 * A `cluster.expertMemoryBytes` of exactly `slotsPerGpu` slots is taken for the default budget
 * (slots given, no budget), so only the GPU memory limits the slots suggested.
 */
export function checkFeasibility(model: Model, cluster: Cluster, workload?: Workload): void {
  const problems: string[] = [];
  const E = model.experts;
  const L = model.moeLayerIds.length;
  const { nodes, gpusPerNode: G, slotsPerGpu: S } = cluster;
  const NG = nodes * G;
  const P = NG * S;
  const bytesPerSlot = L * model.expertBytes;
  // A budget of exactly S slots is the default one (slots given, no budget): only the GPU limits.
  const derived = cluster.expertMemoryBytes === S * bytesPerSlot;
  const budget = derived ? cluster.gpu.memoryBytes : cluster.expertMemoryBytes;
  const memory = Math.min(budget, cluster.gpu.memoryBytes);
  const memoryWhat =
    budget < cluster.gpu.memoryBytes ? `the expert memory budget of ${gb(budget)} per GPU` : `${cluster.gpu.name} memory of ${gb(cluster.gpu.memoryBytes)}`;
  const maxSlots = Math.floor(memory / bytesPerSlot);
  const minSlots = Math.ceil(E / NG);
  if (E > P) {
    let fix = `use --slots-per-gpu ${minSlots} or more`;
    if (minSlots > maxSlots) {
      fix =
        maxSlots > 0
          ? `but only ${plural(maxSlots, 'slot')} per GPU fit in ${memoryWhat}: use --nodes ${Math.ceil(Math.ceil(E / maxSlots) / G)} or more (with --slots-per-gpu ${maxSlots})`
          : `and not one slot (${gb(bytesPerSlot)}) fits in ${memoryWhat}`;
    }
    problems.push(`${E} experts need at least ${E} slots; ${nodes}x${G} GPUs x ${plural(S, 'slot')} = ${P}; ${fix}`);
  }
  const need = S * bytesPerSlot;
  if (need > Math.min(cluster.expertMemoryBytes, cluster.gpu.memoryBytes)) {
    problems.push(
      `${plural(S, 'slot')} per GPU x ${L} MoE layers x ${gb(model.expertBytes)} per expert = ${gb(need)} per GPU exceed ${memoryWhat}; ` +
        (maxSlots >= minSlots
          ? `use --slots-per-gpu ${maxSlots} or less`
          : maxSlots > 0
            ? `at most ${plural(maxSlots, 'slot')} per GPU fit, and ${E} experts then need ${Math.ceil(E / maxSlots)} GPUs: use --nodes ${Math.ceil(Math.ceil(E / maxSlots) / G)} or more`
            : `not one slot (${gb(bytesPerSlot)}) fits`),
    );
  }
  if (NG > 65535) problems.push(`${NG} GPUs: at most 65535 are supported`);
  if (workload) problems.push(...workloadProblems(model, workload));
  if (problems.length > 0) throw new InfeasibleError(problems);
}

function workloadProblems(model: Model, workload: Workload): string[] {
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const w = workloadShape(workload);
  const name = workload.meta.path ?? `the ${workload.meta.format} workload`;
  if (w.layers !== L || w.experts !== E) return [`${name} has ${w.layers} MoE layers x ${w.experts} experts; model ${model.name} has ${L} x ${E}`];
  if (w.topK !== undefined && w.topK !== model.topK) return [`${name} routes each token to ${w.topK} experts; model ${model.name} has top-${model.topK}`];
  return [];
}

/** Check that `workload` has the MoE layers, experts and top-k of `model` (InputError otherwise). */
export function checkWorkload(model: Model, workload: Workload): void {
  const problems = workloadProblems(model, workload);
  if (problems.length > 0) throw new InputError(problems);
}

// ---------------------------------------------------------------------------------------------
// Digests and bounds

/** JSON text with object keys sorted at every level (the canonical form hashed for digests). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) return v;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as Record<string, unknown>).sort()) out[k] = (v as Record<string, unknown>)[k];
    return out;
  });
}

/** sha256 (hex) of the canonical JSON of `value`. */
export function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/**
 * sha256 (hex) of a workload: `meta.digest` (the bytes read) when the reader recorded one, else
 * a hash of the arrays themselves (generated or filtered workloads).
 */
export function workloadDigest(workload: Workload): string {
  if (workload.meta.digest) return workload.meta.digest;
  const h = createHash('sha256');
  const view = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (workload.kind === 'trace') {
    const t = workload.trace;
    h.update(JSON.stringify([t.numLayers, t.numExperts, t.topK, t.numTokens, t.numRequests]));
    h.update(view(t.request));
    h.update(view(t.rank));
    if (t.weight) h.update(view(t.weight));
    for (const ex of t.experts) h.update(view(ex));
  } else {
    const c = workload.counts;
    h.update(JSON.stringify([c.numLayers, c.numExperts]));
    for (const row of c.counts) h.update(view(row));
  }
  return h.digest('hex');
}

/**
 * [L] lower bound on the largest GPU load of layer l for any placement on `shape`
 * (`maxLoadLowerBound` of bounds.ts on the layer's expert loads).
 */
export function layerMaxLoadBounds(workload: Workload, shape: Shape): Float64Array {
  const L = workloadShape(workload).layers;
  const out = new Float64Array(L);
  for (let l = 0; l < L; l++) out[l] = maxLoadLowerBound(expertLoadsOfLayer(workload, l), shape.numGpus, shape.slotsPerGpu);
  return out;
}

/** Above this many (token, expert) pairs over all layers, `layerTrafficBounds` makes one pass per layer instead of two. */
const TRAFFIC_BOUND_TWO_PASS_PAIRS = 5e7;

/**
 * [L] lower bound on the inter-node bytes (dispatch + combine, in `mode`) of MoE layer l for ANY
 * placement on `shape` - any replica counts, any dispatch table (one replica each when P == E) -
 * from `coverageTrafficBound` of bounds.ts on every token of the layer; NaN where the exact tokens
 * are not known, and no bound is claimed: every layer of a counts-only workload (its traffic is
 * estimated on sampled tokens) and, with `index` (a streamed trace), the layers it kept only as a
 * sample. Traffic is never negative, so the sum of the finite entries bounds the total from below.
 *
 * With `index`, its exact token sets are used (they must be for `shape.numGpus` sources); else
 * the trace itself, with the sources of the cost model (`tokenSetsOfLayer`). Normal mode tries two
 * multiplier families (one when the trace has more than 5e7 (token, expert) pairs in all), so the
 * cost is one or two linear passes over the tokens per layer (~0.2 s for DeepSeek-V2-Lite's 26
 * layers x 94k tokens); low-latency mode one pass.
 */
export function layerTrafficBounds(workload: Workload, model: Model, shape: Shape, mode: Mode, index?: WorkloadIndex): Float64Array {
  const E = model.experts;
  const layerSets: (TokenSets | null)[] = [];
  if (index) {
    for (const layer of index.layers) {
      const exact = !index.estimated && !layer.sampled && index.numGpus === shape.numGpus;
      layerSets.push(exact ? (layer.valSets ? concatSets(layer.sets, layer.valSets) : layer.sets) : null);
    }
  } else if (workload.kind === 'trace') {
    const t = workload.trace;
    if (t.numLayers > 0) {
      const base = tokenSetsOfLayer(t, 0, shape.numGpus);
      for (let l = 0; l < t.numLayers; l++) layerSets.push({ ...base, experts: t.experts[l] });
    }
  } else {
    for (let l = 0; l < workload.counts.numLayers; l++) layerSets.push(null);
  }
  let pairs = 0;
  for (const ts of layerSets) if (ts) pairs += ts.n * ts.k;
  const families = pairs > TRAFFIC_BOUND_TWO_PASS_PAIRS ? 1 : 2;
  return Float64Array.from(layerSets, (tokens) =>
    tokens ? coverageTrafficBound({ tokens, numExperts: E, shape, model, mode }, { families }).bound : NaN,
  );
}

// ---------------------------------------------------------------------------------------------
// plan

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
 * plan file with provenance.
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
  const costOptions: CostOptionsInput = { ...args.costOptions, mode };
  args.onProgress?.({ stage: 'evaluate', fraction: 0 });
  const evaluation = args.index?.meta.path
    ? await evaluateStream({ path: args.index.meta.path, model, cluster, placement, options: costOptions })
    : evaluate({ model, cluster, placement, workload, options: costOptions });
  const layerBounds = layerMaxLoadBounds(workload, shape);
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
  });
  return { plan: planFile, evaluation, result: { ...result, placement, interrupted }, layerBounds, rebalance: rebalanced };
}

// ---------------------------------------------------------------------------------------------
// evaluate

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

// ---------------------------------------------------------------------------------------------
// Placement files

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

/** The resolved Cluster echoed in a plan file. */
export function clusterOfPlan(p: PlanFile): Cluster {
  return {
    name: p.cluster.name ?? `${p.cluster.nodes}x${p.cluster.gpusPerNode}`,
    nodes: p.cluster.nodes,
    gpusPerNode: p.cluster.gpusPerNode,
    slotsPerGpu: p.cluster.slotsPerGpu,
    gpu: p.cluster.gpu,
    expertMemoryBytes: p.cluster.expertMemoryBytes ?? p.cluster.slotsPerGpu * p.model.moeLayerIds.length * p.model.expertBytes,
  };
}

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

// ---------------------------------------------------------------------------------------------
// Reports

export interface LayerReport {
  /** MoE layer index l. */
  layer: number;
  /** Engine layer id (model.moeLayerIds[l]). */
  engineLayer: number;
  tokens: number;
  interNodeBytes: number;
  intraNodeBytes: number;
  maxLoad: number;
  meanLoad: number;
  maxOverMean: number;
  balancedness: number;
  remoteNodesPerToken: number;
  dispatchSeconds: number;
  computeSeconds: number;
  combineSeconds: number;
  timeSeconds: number;
  maxLoadLowerBound: number;
}

export interface MetricsReport {
  /** Traffic estimated on tokens sampled from counts (no co-activation recorded). */
  estimated: boolean;
  mode: Mode;
  interNodeBytes: number;
  intraNodeBytes: number;
  maxLoad: number;
  meanLoad: number;
  maxOverMean: number;
  balancedness: number;
  remoteNodesPerToken: number;
  timeSeconds: number;
  maxLoadLowerBound: number;
  /** (maxLoad - bound) / maxLoad. */
  maxLoadGap: number;
  perLayer: LayerReport[];
}

/** An evaluation as plain numbers (no typed arrays), with the max-load bounds. */
export function metricsReport(ev: Evaluation, layerBounds: ArrayLike<number>, model: Model): MetricsReport {
  let bound = 0;
  for (let l = 0; l < layerBounds.length; l++) bound = Math.max(bound, layerBounds[l]);
  return {
    estimated: ev.estimated,
    mode: ev.mode,
    interNodeBytes: ev.interNodeBytes,
    intraNodeBytes: ev.intraNodeBytes,
    maxLoad: ev.maxLoad,
    meanLoad: ev.meanLoad,
    maxOverMean: ev.maxOverMean,
    balancedness: ev.balancedness,
    remoteNodesPerToken: ev.remoteNodesPerToken,
    timeSeconds: ev.timeSeconds,
    maxLoadLowerBound: bound,
    maxLoadGap: relativeGap(ev.maxLoad, bound),
    perLayer: ev.perLayer.map((m) => ({
      layer: m.layer,
      engineLayer: model.moeLayerIds[m.layer],
      tokens: m.tokens,
      interNodeBytes: m.interNodeBytes,
      intraNodeBytes: m.intraNodeBytes,
      maxLoad: m.maxLoad,
      meanLoad: m.meanLoad,
      maxOverMean: m.maxOverMean,
      balancedness: m.balancedness,
      remoteNodesPerToken: m.remoteNodesPerToken,
      dispatchSeconds: m.dispatchSeconds,
      computeSeconds: m.computeSeconds,
      combineSeconds: m.combineSeconds,
      timeSeconds: m.timeSeconds,
      maxLoadLowerBound: layerBounds[m.layer] ?? 0,
    })),
  };
}
