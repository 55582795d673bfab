/**
 * `evaluateStream`: `evaluate` on an mpt trace file read chunk by chunk, for traces too large to
 * load (see src/workload/stream.ts). One `LayerAccumulator` per layer is kept across chunks
 * (`accumulateLayer` adds a chunk's tokens to its counters, every counter complete after each call)
 * and `finishLayer` runs once at the end, so the metrics are those of `evaluate` on the loaded
 * trace up to the order of float additions. Memory: L accumulators (O(L * NG) counters, plus
 * [L][NG*NG] with `trafficMatrix`), the dispatch tables [L][NG*E], one chunk.
 */
import { InputError } from '../errors.js';
import { dispatchOf } from '../placement.js';
import type { Cluster, CostOptionsInput, Model } from '../schemas.js';
import type { Placement, TokenSets, WorkloadMeta } from '../types.js';
import { ChunkScratch, forEachMptChunk, type ByteProgress } from '../workload/mpt-stream.js';
import { accumulateLayer, LayerAccumulator } from './accumulator.js';
import { parseCostOptions, placementShapeProblems, totalsOf } from './evaluate.js';
import { finishLayer, trafficMatrixOf, type Evaluation, type LayerMetrics } from './metrics.js';

export interface EvaluateStreamArgs {
  /** An mpt trace file (plain or gzipped). */
  path: string;
  model: Model;
  cluster: Cluster;
  placement: Placement;
  options?: CostOptionsInput;
  /** Also the [L][NG*NG] traffic matrices. */
  trafficMatrix?: boolean;
  /** Raw bytes read so far of the file's size. */
  onProgress?: ByteProgress;
}

/** An evaluation of a streamed trace, with what the read found. */
export interface StreamEvaluation extends Evaluation {
  /** Tokens T of the trace. */
  numTokens: number;
  /**
   * [L][E] routed weight per logical expert (the trace's per-layer counts), e.g. for the max-load
   * lower bounds: `layerMaxLoadBounds(countsWorkloadOf(ev.expertLoads, ev.meta), shape)`.
   */
  expertLoads: Float64Array[];
  /** The trace's meta (format `mpt`, path, sha256 digest of its bytes, notes). */
  meta: WorkloadMeta;
}

/** Add the weighted (token, expert) pairs of `ts` to `out [E]`. */
function addExpertLoads(ts: TokenSets, out: Float64Array): void {
  const { n, k, experts, weight } = ts;
  for (let t = 0; t < n; t++) {
    const w = weight[t];
    for (let j = 0; j < k; j++) out[experts[t * k + j]] += w;
  }
}

function checkShapes(model: Model, cluster: Cluster, placement: Placement, file: string): void {
  const problems = placementShapeProblems(model, cluster, placement);
  if (placement.numLayers !== model.moeLayerIds.length) problems.push(`placement has ${placement.numLayers} MoE layers, model ${model.name} ${model.moeLayerIds.length}`);
  if (problems.length > 0) throw new InputError(problems, { file });
}

/**
 * Score `placement` on the mpt trace at `path` under the cost model, streaming the file: the same
 * metrics as `evaluate({ model, cluster, placement, workload: <the loaded trace>, options,
 * trafficMatrix })` (equal up to float summation order), without ever holding the trace. The
 * placement (every dispatch entry) is checked before the file is read. Errors: InputError naming
 * the file (missing, not mpt, corrupt, truncated, shape mismatch) or the bad placement field.
 */
export async function evaluateStream(args: EvaluateStreamArgs): Promise<StreamEvaluation> {
  const { path, model, cluster, placement } = args;
  const opts = parseCostOptions(args.options);
  checkShapes(model, cluster, placement, path);
  const shape = placement.shape;
  const NG = shape.numGpus;
  const E = placement.numExperts;
  const L = placement.numLayers;
  const k = model.topK;
  const withMatrix = args.trafficMatrix === true;
  const accs: LayerAccumulator[] = [];
  const dispatch: Int32Array[] = [];
  const empty: TokenSets = { n: 0, k, experts: new Uint16Array(0), source: new Uint16Array(0), weight: new Float64Array(0) };
  for (let l = 0; l < L; l++) {
    const acc = new LayerAccumulator(shape, withMatrix);
    dispatch.push(dispatchOf(placement, l));
    accumulateLayer(acc, empty, placement.phy2log[l], dispatch[l], E, opts.mode); // checks the tables up front
    accs.push(acc);
  }
  const expertLoads = Array.from({ length: L }, () => new Float64Array(E));
  const scratch = new ChunkScratch();
  const info = await forEachMptChunk(
    path,
    model,
    (chunk) => {
      scratch.fill(chunk, NG);
      const ts: TokenSets = { n: chunk.n, k, experts: empty.experts, source: scratch.source, weight: scratch.weight };
      for (let l = 0; l < L; l++) {
        ts.experts = chunk.experts[l];
        accumulateLayer(accs[l], ts, placement.phy2log[l], dispatch[l], E, opts.mode);
        addExpertLoads(ts, expertLoads[l]);
      }
    },
    { onProgress: args.onProgress },
  );

  const perLayer: LayerMetrics[] = [];
  const loads: Float64Array[] = [];
  const matrices: Float64Array[] = [];
  for (let l = 0; l < L; l++) {
    perLayer.push(finishLayer(accs[l], l, model, cluster, opts));
    loads.push(accs[l].load.slice());
    if (withMatrix) matrices.push(trafficMatrixOf(accs[l], model));
  }
  const out: StreamEvaluation = { ...totalsOf(perLayer, loads, false, opts.mode), numTokens: info.numTokens, expertLoads, meta: info.meta };
  if (withMatrix) out.trafficMatrix = matrices;
  return out;
}
