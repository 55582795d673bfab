/**
 * zod schemas: the single source of the input and output types. JSON Schemas in `schemas/` are
 * generated from these (`npm run build` then `node dist/src/json-schema.js`).
 * Units: bytes, bytes/second, FLOP/s, FLOP; counts are integers unless said otherwise.
 */
import { z } from 'zod';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const posNum = z.number().positive().finite();

export const ModelSchema = z
  .object({
    name: z.string().min(1),
    /** Total decoder layers of the engine (DeepSeek-V3: 61). */
    numHiddenLayers: posInt,
    /** Engine layer ids that are MoE layers, ascending (DeepSeek-V3: 3..60). MoE layer l = moeLayerIds[l]. */
    moeLayerIds: z.array(nonNegInt).min(1),
    /** Routed experts per MoE layer (E). */
    experts: posInt,
    /** Experts chosen per token (k). */
    topK: posInt,
    /** Expert groups for group-limited routing (DeepSeek-V3: 8); absent = no group limit. */
    groups: posInt.optional(),
    /** Groups a token may use (DeepSeek-V3: 4). */
    topKGroups: posInt.optional(),
    /** Shared (always-on) experts, not placed by moe-placer. */
    sharedExperts: nonNegInt.default(0),
    hiddenSize: posInt,
    /** Bytes of one routed expert's weights in one layer. */
    expertBytes: posInt,
    /** Bytes sent per token per destination on dispatch (e.g. FP8 hidden + scales). */
    dispatchBytesPerToken: posInt,
    /** Bytes sent back per token per destination on combine (BF16 hidden). */
    combineBytesPerToken: posInt,
    /** FLOPs one expert spends on one token. */
    expertFlopsPerToken: posNum,
    /** Weight dtype used for compute-time estimates. */
    computeDtype: z.enum(['fp8', 'bf16']).default('bf16'),
    source: z.string().optional(),
  })
  .superRefine((m, ctx) => {
    if (m.topK > m.experts) ctx.addIssue({ code: 'custom', path: ['topK'], message: `topK ${m.topK} exceeds experts ${m.experts}` });
    for (let i = 0; i < m.moeLayerIds.length; i++) {
      const id = m.moeLayerIds[i];
      if (id >= m.numHiddenLayers) ctx.addIssue({ code: 'custom', path: ['moeLayerIds', i], message: `layer id ${id} >= numHiddenLayers ${m.numHiddenLayers}` });
      if (i > 0 && id <= m.moeLayerIds[i - 1]) ctx.addIssue({ code: 'custom', path: ['moeLayerIds', i], message: 'layer ids must be strictly ascending' });
    }
    if ((m.groups === undefined) !== (m.topKGroups === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['topKGroups'], message: 'groups and topKGroups go together' });
    }
    if (m.groups !== undefined) {
      if (m.experts % m.groups !== 0) ctx.addIssue({ code: 'custom', path: ['groups'], message: `experts ${m.experts} not divisible by groups ${m.groups}` });
      if (m.topKGroups !== undefined && m.topKGroups > m.groups) ctx.addIssue({ code: 'custom', path: ['topKGroups'], message: `topKGroups ${m.topKGroups} exceeds groups ${m.groups}` });
      if (m.topKGroups !== undefined && m.topK > m.topKGroups * (m.experts / m.groups)) {
        ctx.addIssue({ code: 'custom', path: ['topK'], message: 'topK exceeds the experts in topKGroups groups' });
      }
    }
  });
export type Model = z.output<typeof ModelSchema>;
export type ModelInput = z.input<typeof ModelSchema>;

export const GpuSchema = z.object({
  name: z.string().min(1),
  memoryBytes: posInt,
  /** HBM bandwidth, bytes/s. */
  hbmBandwidth: posNum,
  /** Dense FP8 FLOP/s (no sparsity). */
  fp8Flops: posNum,
  /** Dense BF16 FLOP/s (no sparsity). */
  bf16Flops: posNum,
  /** NVLink bandwidth per GPU per direction, bytes/s. */
  nvlinkBandwidth: posNum,
  /** Scale-out RDMA bandwidth per GPU per direction, bytes/s. */
  rdmaBandwidth: posNum,
  /** Where each figure comes from. */
  sources: z.record(z.string(), z.string()).optional(),
});
export type Gpu = z.output<typeof GpuSchema>;

export const ClusterSchema = z
  .object({
    name: z.string().optional(),
    nodes: posInt,
    gpusPerNode: posInt,
    /** GPU preset name or full spec. */
    gpu: z.union([z.string().min(1), GpuSchema]),
    /** Expert slots per GPU per MoE layer. Either this or expertMemoryBytes. */
    slotsPerGpu: posInt.optional(),
    /** Bytes per GPU available for routed expert weights (all MoE layers); slots follow. */
    expertMemoryBytes: posInt.optional(),
  })
  .refine((c) => c.slotsPerGpu !== undefined || c.expertMemoryBytes !== undefined, {
    path: ['slotsPerGpu'],
    message: 'give slotsPerGpu or expertMemoryBytes',
  });
export type ClusterInput = z.output<typeof ClusterSchema>;

/** A cluster with everything resolved: GPU spec known, slots per GPU fixed. */
export interface Cluster {
  name: string;
  nodes: number;
  gpusPerNode: number;
  slotsPerGpu: number;
  gpu: Gpu;
  /** Bytes per GPU available for expert weights (defaults to slots * layers * expertBytes). */
  expertMemoryBytes: number;
}

export const ModeSchema = z.enum(['normal', 'low-latency']);
export type Mode = z.output<typeof ModeSchema>;
export const ObjectiveSchema = z.enum(['balance', 'traffic', 'time']);
export type Objective = z.output<typeof ObjectiveSchema>;

/** Options of the cost model. */
export const CostOptionsSchema = z.object({
  mode: ModeSchema.default('normal'),
  /** Fraction of peak FLOPS the expert GEMMs reach. */
  efficiency: z.number().positive().max(1).default(0.5),
  /** Overlap dispatch/compute/combine: layer time = max instead of sum. */
  overlap: z.boolean().default(false),
  /** Tokens sampled per layer to estimate traffic from counts-only workloads. */
  sampleTokens: posInt.default(16384),
  seed: nonNegInt.default(0),
});
export type CostOptions = z.output<typeof CostOptionsSchema>;
export type CostOptionsInput = z.input<typeof CostOptionsSchema>;

const intMatrix = z.array(z.array(z.number().int()));

export const PlanMetricsSchema = z.object({
  estimated: z.boolean(),
  mode: ModeSchema,
  interNodeBytes: z.number(),
  intraNodeBytes: z.number(),
  maxLoad: z.number(),
  meanLoad: z.number(),
  balancedness: z.number(),
  maxOverMean: z.number(),
  remoteNodesPerToken: z.number(),
  timeSeconds: z.number(),
  perLayer: z.array(
    z.object({
      layer: z.number().int(),
      interNodeBytes: z.number(),
      intraNodeBytes: z.number(),
      maxLoad: z.number(),
      meanLoad: z.number(),
      balancedness: z.number(),
      timeSeconds: z.number(),
    }),
  ),
});

export const PlanSchema = z.object({
  format: z.literal('moe-placer.plan/1'),
  model: ModelSchema,
  cluster: z.object({
    name: z.string().optional(),
    nodes: posInt,
    gpusPerNode: posInt,
    slotsPerGpu: posInt,
    gpu: GpuSchema,
    expertMemoryBytes: posInt.optional(),
  }),
  slotsPerGpu: posInt,
  /** [L][P] logical expert per slot, -1 = empty. */
  phy2log: intMatrix,
  /** [L][E][maxReplicas] slots of each logical expert, padded with -1. */
  log2phy: z.array(intMatrix).optional(),
  /** [L][E] replica counts. */
  logcnt: intMatrix.optional(),
  /** [L][NG][E] slot used by source GPU g for logical expert e. */
  dispatch: z.array(intMatrix).optional(),
  metrics: PlanMetricsSchema.optional(),
  /**
   * Lower bounds on what any placement of the cluster can reach on the fitted workload, and the
   * plan's relative gaps (achieved - bound) / achieved. interNodeBytesLowerBound: summed over MoE
   * layers (a relaxation, see `coverageTrafficBound` in src/bounds/coverage.ts; absent for counts-only
   * workloads, whose traffic is estimated). perLayer[l]: the bounds of MoE layer l alone.
   */
  bounds: z
    .object({
      maxLoadLowerBound: z.number().optional(),
      maxLoadGap: z.number().optional(),
      interNodeBytesLowerBound: z.number().optional(),
      interNodeBytesGap: z.number().optional(),
      exact: z.boolean().optional(),
      perLayer: z
        .array(
          z.object({
            layer: z.number().int(),
            maxLoadLowerBound: z.number().optional(),
            interNodeBytesLowerBound: z.number().optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  /**
   * A plan made from a running one (`plan --from`): how (`replan`: the re-plan aligned with the
   * running placement; `budget`: the running placement rebalanced within the move budget), the
   * expert copies it takes, each with its source and link, and their schedule in rounds in which
   * each GPU sends and receives at most one expert (src/migrate/moves.ts).
   */
  migration: z
    .object({
      from: z.string().optional(),
      method: z.enum(['replan', 'budget']),
      maxMovedExperts: z.number().int().nonnegative().optional(),
      replanMovedExperts: z.number().int().nonnegative(),
      movedExperts: z.number().int().nonnegative(),
      movedBytes: z.number().nonnegative(),
      nvlinkMoves: z.number().int().nonnegative(),
      rdmaMoves: z.number().int().nonnegative(),
      rounds: z.number().int().nonnegative(),
      minRounds: z.number().int().nonnegative(),
      estimatedSeconds: z.number().nonnegative(),
      perLayer: z.array(z.number().int().nonnegative()),
      moves: z.array(
        z.object({
          layer: z.number().int().nonnegative(),
          expert: z.number().int().nonnegative(),
          fromGpu: z.number().int().nonnegative(),
          toGpu: z.number().int().nonnegative(),
          toSlot: z.number().int().nonnegative(),
          link: z.enum(['nvlink', 'rdma']),
          bytes: z.number().nonnegative(),
          round: z.number().int().nonnegative(),
        }),
      ),
    })
    .optional(),
  provenance: z
    .object({
      tool: z.string(),
      version: z.string(),
      solver: z.string(),
      objective: ObjectiveSchema.optional(),
      options: z.record(z.string(), z.unknown()),
      seed: z.number().int(),
      inputDigests: z.record(z.string(), z.string()),
      wallTimeSeconds: z.number(),
      interrupted: z.boolean().optional(),
      createdAt: z.string().optional(),
    })
    .optional(),
});
export type PlanFile = z.output<typeof PlanSchema>;
