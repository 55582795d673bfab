/**
 * `evaluate`: score a placement on a whole workload (every MoE layer) under the cost model.
 */
import { InputError } from '../errors.js';
import { dispatchOf } from '../placement.js';
import { deriveSeed, Rng } from '../rng.js';
import { CostOptionsSchema } from '../schemas.js';
import type { Cluster, CostOptions, CostOptionsInput, Mode, Model } from '../schemas.js';
import type { Placement, TokenSets, Workload } from '../types.js';
import { sampleTokensFromCounts } from '../workload/sample.js';
import { tokenSetsOfLayer } from '../workload/tokens.js';
import { accumulateLayer, accumulateUniformNormal, countsLoads, countsLoadsAfterTokens, LayerAccumulator } from './accumulator.js';
import { finishLayer, sum, trafficMatrixOf, type Evaluation, type LayerMetrics } from './metrics.js';

/** Parse cost options with zod; a bad option becomes an InputError naming `options.<field>`. */
export function parseCostOptions(input: CostOptionsInput | undefined): CostOptions {
  const r = CostOptionsSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => `options.${i.path.map(String).join('.')}: ${i.message}`);
  throw new InputError(problems);
}

/** Problems between a placement and the model and cluster it is scored for (empty when none). */
export function placementShapeProblems(model: Model, cluster: Cluster, placement: Placement): string[] {
  const { shape } = placement;
  const problems: string[] = [];
  if (cluster.nodes !== shape.nodes || cluster.gpusPerNode !== shape.gpusPerNode || cluster.slotsPerGpu !== shape.slotsPerGpu) {
    problems.push(
      `placement shape ${shape.nodes}x${shape.gpusPerNode}x${shape.slotsPerGpu} (nodes x GPUs x slots) differs from cluster ${cluster.nodes}x${cluster.gpusPerNode}x${cluster.slotsPerGpu}`,
    );
  }
  if (placement.numExperts !== model.experts) problems.push(`placement has ${placement.numExperts} experts, model ${model.experts}`);
  if (placement.phy2log.length !== placement.numLayers) problems.push(`placement.phy2log has ${placement.phy2log.length} layers, expected ${placement.numLayers}`);
  return problems;
}

function checkShapes(model: Model, cluster: Cluster, placement: Placement, workload: Workload): void {
  const problems = placementShapeProblems(model, cluster, placement);
  const w = workload.kind === 'trace' ? workload.trace : workload.counts;
  if (w.numLayers !== placement.numLayers) problems.push(`workload has ${w.numLayers} MoE layers, placement ${placement.numLayers}`);
  if (w.numExperts !== placement.numExperts) problems.push(`workload has ${w.numExperts} experts, placement ${placement.numExperts}`);
  if (workload.kind === 'counts') {
    for (let l = 0; l < workload.counts.counts.length; l++) {
      if (workload.counts.counts[l].length !== workload.counts.numExperts) problems.push(`counts[${l}] has ${workload.counts.counts[l].length} entries, expected ${workload.counts.numExperts}`);
    }
  }
  if (problems.length > 0) throw new InputError(problems, { file: workload.meta.path });
}

/**
 * Score `placement` on `workload` under the cost model.
 *
 * Trace workloads are counted exactly. Counts-only workloads take exact loads from the counts
 * (uniform demand per source GPU through the dispatch table) and estimate traffic on
 * `options.sampleTokens` tokens per layer (rounded up to a multiple of the GPU count so every
 * source sends the same share) sampled from the counts with seed `deriveSeed(options.seed, l)`,
 * each weighted so the layer totals `sum(counts) / k` tokens; the result is marked `estimated`.
 *
 * Precision of that estimate (default 16384 tokens a layer; DeepSeek-V3 prefill counts, balance
 * plans, against 262144 tokens a layer, 4 seeds): total inter-node bytes within 0.015%, a layer's
 * within ~0.1% on average; the MoE time, a maximum over GPUs of noisy per-GPU bytes, comes out
 * high by 0.3-0.4% at EP32 and 1.5-1.9% at EP144 (114 tokens per source GPU). Half the tokens
 * would take that to 0.5-0.7% and 2.6-3.0%, so the sample is kept at this size; sampling and
 * counting these tokens is most of a counts plan's evaluation (~0.2 s for V3's 58 layers at
 * EP144, each half of it; plan() draws the samples beside the solve).
 */
export function evaluate(args: {
  model: Model;
  cluster: Cluster;
  placement: Placement;
  workload: Workload;
  options?: CostOptionsInput;
  trafficMatrix?: boolean;
  /**
   * @internal Counts workloads: the sampled tokens of layer l when already drawn (plan() draws
   * them beside the solve), exactly as this function would draw them (sampleTokensFromCounts
   * with the size and seed below); the layers without one are drawn here.
   */
  samples?: readonly (TokenSets | null)[];
}): Evaluation {
  const { model, cluster, placement, workload } = args;
  const opts = parseCostOptions(args.options);
  checkShapes(model, cluster, placement, workload);
  const shape = placement.shape;
  const NG = shape.numGpus;
  const E = placement.numExperts;
  const L = placement.numLayers;
  const withMatrix = args.trafficMatrix === true;
  const acc = new LayerAccumulator(shape, withMatrix);
  const perLayer: LayerMetrics[] = [];
  const loads: Float64Array[] = [];
  const matrices: Float64Array[] = [];

  const baseTokens = workload.kind === 'trace' ? tokenSetsOfLayer(workload.trace, 0, NG) : null;
  // A counts workload's sampled tokens: one layer's arrays reused for the next.
  let sample: TokenSets | null = null;
  for (let l = 0; l < L; l++) {
    acc.reset();
    const dispatch = dispatchOf(placement, l);
    const phy2log = placement.phy2log[l];
    if (workload.kind === 'trace') {
      const ts: TokenSets = { ...baseTokens!, experts: workload.trace.experts[l] };
      accumulateLayer(acc, ts, phy2log, dispatch, E, opts.mode);
    } else {
      const counts = workload.counts.counts[l];
      const k = model.topK;
      const total = sum(counts) / k;
      const n = Math.ceil(opts.sampleTokens / NG) * NG;
      if (total > 0 && n > 0) {
        const given = args.samples?.[l];
        const ts: TokenSets = given && given.n === n && given.k === k ? given : sampleTokensFromCounts(counts, k, n, NG, new Rng(deriveSeed(opts.seed, l)), sample ?? undefined);
        if (ts !== given) sample = ts;
        const w = total / n;
        // Every sampled token weighs w: counted in integers where that gives the same sums.
        // (the sampler's tokens are within the model and cluster by construction)
        if (opts.mode !== 'normal' || !accumulateUniformNormal(acc, ts, w, phy2log, dispatch, E, true)) {
          ts.weight.fill(w);
          accumulateLayer(acc, ts, phy2log, dispatch, E, opts.mode);
        }
        // The call above checked the tables and left their destination GPUs in acc.
        countsLoadsAfterTokens(acc, counts, E);
      } else countsLoads(acc, counts, phy2log, dispatch, E);
    }
    perLayer.push(finishLayer(acc, l, model, cluster, opts));
    loads.push(acc.load.slice());
    if (withMatrix) matrices.push(trafficMatrixOf(acc, model));
  }

  const out = totalsOf(perLayer, loads, workload.kind === 'counts', opts.mode);
  if (withMatrix) out.trafficMatrix = matrices;
  return out;
}

/**
 * The whole-run figures of per-layer metrics: bytes and time summed, maxLoad the largest, meanLoad,
 * balancedness and maxOverMean means over layers, remoteNodesPerToken weighted by tokens.
 */
export function totalsOf(perLayer: LayerMetrics[], loads: Float64Array[], estimated: boolean, mode: Mode): Evaluation {
  const L = perLayer.length;
  let interNodeBytes = 0;
  let intraNodeBytes = 0;
  let maxLoad = 0;
  let meanLoad = 0;
  let balancedness = 0;
  let maxOverMean = 0;
  let remote = 0;
  let tokens = 0;
  let timeSeconds = 0;
  for (const m of perLayer) {
    interNodeBytes += m.interNodeBytes;
    intraNodeBytes += m.intraNodeBytes;
    maxLoad = Math.max(maxLoad, m.maxLoad);
    meanLoad += m.meanLoad;
    balancedness += m.balancedness;
    maxOverMean += m.maxOverMean;
    remote += m.remoteNodesPerToken * m.tokens;
    tokens += m.tokens;
    timeSeconds += m.timeSeconds;
  }
  return {
    estimated,
    mode,
    perLayer,
    interNodeBytes,
    intraNodeBytes,
    maxLoad,
    meanLoad: L > 0 ? meanLoad / L : 0,
    balancedness: L > 0 ? balancedness / L : 1,
    maxOverMean: L > 0 ? maxOverMean / L : 1,
    remoteNodesPerToken: tokens > 0 ? remote / tokens : 0,
    timeSeconds,
    loads,
  };
}
