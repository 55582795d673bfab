/**
 * Dense, typed-array forms of the problem shared by readers, the evaluator and the solvers.
 * Shapes are written as [rows][cols] in the doc comments; matrices are flat row-major arrays.
 */

/** Per-token routing of a trace, all MoE layers. */
export interface Trace {
  /** MoE layers L (index l = model.moeLayerIds[l]). */
  numLayers: number;
  /** Logical experts E per layer. */
  numExperts: number;
  /** Experts per token k. */
  topK: number;
  /** Tokens T. */
  numTokens: number;
  /** Requests in the trace; request ids are 0..numRequests-1 in the order read. */
  numRequests: number;
  /** [T] request id of each token. */
  request: Uint32Array;
  /** [T] recorded source rank (data-parallel rank), -1 where none was recorded. */
  rank: Int32Array;
  /** [T] token weight, or null = every token weighs 1. */
  weight: Float32Array | null;
  /** [L] of [T*k]: expert ids chosen by each token in layer l, gate order. */
  experts: Uint16Array[];
}

/** Per-layer token counts per logical expert (EPLB's `weight`, SGLang's `logical_count`). */
export interface Counts {
  numLayers: number;
  numExperts: number;
  /** [L] of [E] token counts (non-negative, may be fractional after averaging). */
  counts: Float64Array[];
}

export type Workload =
  | { kind: 'trace'; trace: Trace; meta: WorkloadMeta }
  | { kind: 'counts'; counts: Counts; meta: WorkloadMeta };

export interface WorkloadMeta {
  /** Detected format, e.g. `sglang-counts`, `v2lite-csv`, `maverick-json`, `mpt`. */
  format: string;
  /** Path read (file or folder). */
  path?: string;
  /** sha256 of the bytes read (files in read order), hex. */
  digest?: string;
  /** Free-form notes (e.g. "dense layers 0-2 dropped"). */
  notes?: string[];
}

/**
 * The tokens of one layer as a weighted hypergraph: token (or distinct expert-set) i has source GPU
 * `source[i]`, weight `weight[i]` and experts `experts[i*k .. i*k+k)`.
 */
export interface TokenSets {
  n: number;
  k: number;
  /** [n*k] expert ids. */
  experts: Uint16Array;
  /** [n] source GPU. */
  source: Uint16Array;
  /** [n] weight (token count). */
  weight: Float64Array;
}

/** Cluster shape as integers. */
export interface Shape {
  nodes: number;
  gpusPerNode: number;
  slotsPerGpu: number;
  /** nodes * gpusPerNode */
  numGpus: number;
  /** numGpus * slotsPerGpu: slots per layer (P). */
  numSlots: number;
}

/** An expert placement over all MoE layers. */
export interface Placement {
  numLayers: number;
  numExperts: number;
  shape: Shape;
  /** [L] of [P]: logical expert held by slot p, -1 = empty. Slot p is on GPU floor(p / S). */
  phy2log: Int32Array[];
  /** [L] of [NG*E]: slot used by source GPU g for expert e, or null = default rule everywhere. */
  dispatch: Int32Array[] | null;
}

export function makeShape(nodes: number, gpusPerNode: number, slotsPerGpu: number): Shape {
  const numGpus = nodes * gpusPerNode;
  return { nodes, gpusPerNode, slotsPerGpu, numGpus, numSlots: numGpus * slotsPerGpu };
}

/** What the optimizer needs of one layer of a workload (the index stage of DESIGN.md). */
export interface LayerIndex {
  /** [E] routed weight per logical expert (exact: over every token, or the counts). */
  expertLoad: Float64Array;
  /**
   * [B*E] load of expert e in sample b of the requests (those with request mod B = b). Which
   * requests come is an accident of serving; plans kept balanced on every sample, not only on the
   * whole, stay balanced on requests they have not seen. Empty when B = 0 (counts only).
   */
  sampleLoad: Float64Array;
  /**
   * Token sets by source GPU, compressed (same source and expert set merged). Every token of the
   * layer, or a seeded uniform sample of them (`sampled`) with weights scaled to the same total;
   * for counts-only workloads tokens drawn to match the counts (`estimated`).
   */
  sets: TokenSets;
  sampled: boolean;
  /**
   * Validation split (IndexOptions.validation): the held-back requests' token sets and [E] loads.
   * `sets` then holds the other requests only; `expertLoad` still counts every token.
   */
  valSets?: TokenSets;
  valLoad?: Float64Array;
}

export interface WorkloadIndex {
  numGpus: number;
  /** B: request samples of sampleLoad. */
  samples: number;
  /** Sets were drawn from counts (no recorded co-activation). */
  estimated: boolean;
  layers: LayerIndex[];
}
