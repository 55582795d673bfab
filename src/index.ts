/**
 * moe-placer's public API: one explicit export list (no `export *`). Everything a user of the
 * library needs is here; modules not listed are internal.
 */

// Input and output schemas (zod) and their types.
export {
  ClusterSchema,
  CostOptionsSchema,
  GpuSchema,
  ModelSchema,
  ModeSchema,
  ObjectiveSchema,
  PlanMetricsSchema,
  PlanSchema,
} from './schemas.js';
export type { Cluster, ClusterInput, CostOptions, CostOptionsInput, Gpu, Mode, Model, ModelInput, Objective, PlanFile } from './schemas.js';
export { makeShape } from './types.js';
export type { Counts, LayerIndex, Placement, Shape, TokenSets, Trace, Workload, WorkloadIndex, WorkloadMeta } from './types.js';

// Errors and the seeded generator.
export { formatLocation, InfeasibleError, InputError, MoePlacerError, SolverError } from './errors.js';
export type { InputLocation } from './errors.js';
export { deriveSeed, Rng } from './rng.js';

// Presets and resolvers.
export {
  bf16ExpertBytes,
  bf16TokenBytes,
  CLUSTER_PRESETS,
  clusterOfShape,
  DEFAULT_GPU,
  expertFlops,
  expertParams,
  fp8BlockExpertBytes,
  fp8DispatchBytes,
  GPU_PRESETS,
  MODEL_PRESETS,
  resolveCluster,
  resolveGpu,
  resolveModel,
} from './presets.js';
export type { ClusterOverrides } from './presets.js';

// Workloads: readers, the canonical trace writer, token views.
export { checkTrace, detectFormat, loadWorkload, MPT_FORMAT, MPT_VERSION, readTrace, writeTrace } from './workload/index.js';
export type { LoadOptions, MptHeader, WorkloadFormat, WriteTraceOptions } from './workload/index.js';
export { compressTokenSets, countsOfTrace, expertLoadsOfLayer, filterRequests, sourceOf, tokenSetsOfLayer } from './workload/tokens.js';
export { indexWorkload } from './workload/indexer.js';
export type { IndexOptions } from './workload/indexer.js';
export { sampleTokensFromCounts } from './workload/sample.js';

// Synthetic traces and fidelity measures.
export { GENERATOR_DEFAULTS, generateTrace } from './generator.js';
export type { GenerateOptions } from './generator.js';
export { marginalTvd, pairLiftQuantiles, requestAffinity, successorCoverage } from './generator/fidelity.js';
export type { PairLiftStats } from './generator/fidelity.js';

// The cost model.
export { evaluate, parseCostOptions } from './cost.js';
export type { Evaluation, LayerMetrics } from './cost.js';

// High-level API (what the CLI does).
export {
  checkFeasibility,
  checkWorkload,
  clusterOfPlan,
  evaluatePlan,
  exportPlanFile,
  layerMaxLoadBounds,
  layerTrafficBounds,
  loadPlacement,
  metricsReport,
  plan,
  toolVersion,
  workloadDigest,
} from './api.js';
export type { EvaluatePlanArgs, ExportArgs, LayerReport, LoadedPlacement, MetricsReport, PlanArgs, PlanEvaluation, PlanOutcome } from './api.js';

// Solvers.
export { getSolver, SOLVERS } from './solvers/registry.js';
export type { SolveBounds, SolveInput, SolveProgress, SolveResult, Solver } from './solvers/types.js';
export { optimize, optimizeSolver } from './solvers/optimize.js';
export type { OptimizeOptions } from './solvers/optimize.js';
export { contiguousPlacement, contiguousSolver } from './solvers/contiguous.js';
export { roundRobinPlacement, roundRobinSolver } from './solvers/round-robin.js';
export {
  balancedPacking,
  eplbPlacement,
  eplbSolver,
  isHierarchical,
  rebalanceExperts,
  rebalanceLayerHierarchical,
  replicateExperts,
} from './solvers/eplb.js';
export type { EplbLayer } from './eplb.js';

// Placements, bounds and plan files.
export { defaultDispatch, dispatchOf, dispatchOfShares, log2phyOf, logcntOf, replicaIndex, validatePlacement } from './placement.js';
export type { ReplicaIndex } from './placement.js';
export { maxLoadLowerBound, maxLoadLowerBoundDetail } from './bounds/max-load.js';
export type { MaxLoadBound } from './bounds/max-load.js';
export type { TrafficInstance } from './bounds/instance.js';
export { exactMinTraffic, minTrafficMip } from './bounds/exact.js';
export { trafficLowerBound } from './bounds/traffic.js';
export { coverageTrafficBound } from './bounds/coverage.js';

// LP / MIP behind one interface (javascript-lp-solver and HiGHS).
export { LpModel, solveLp } from './lp/index.js';
export type { LpResult } from './lp/index.js';

// Co-activation graph (graphology), METIS files, Louvain communities.
export { coactivationGraph, louvainCommunities, parseMetisPartition, toMetisGraph } from './search/coactivation.js';
export {
  buildPlanFile,
  canonicalPlan,
  placementFromJson,
  PLAN_FORMAT,
  planMetrics,
  readPlanFile,
  relativeGap,
  shapeOfCluster,
  stringifyPlan,
  writeFileAtomic,
  writePlanFile,
} from './plan.js';
export type { BuildPlanArgs, PlanBounds, PlanMetrics, PlanProvenance, ReadPlanOverrides, ReadPlanResult } from './plan.js';

// Re-placing from a running plan (moves, copy schedule, budget) and replaying workload drift.
export { maxAssignment } from './migrate/assignment.js';
export { alignGpus, applyAlignment } from './migrate/align.js';
export type { AlignedLayer } from './migrate/align.js';
export { rebalanceWithBudget } from './migrate/budget.js';
export type { BudgetResult } from './migrate/budget.js';
export { migrationBetween, movesBetween } from './migrate/moves.js';
export type { Link, LinkSpeeds, Migration, Move } from './migrate/moves.js';
export { alignPlacement, migrationJson, missingExperts, rebalance } from './migrate/rebalance.js';
export type { RebalanceArgs, RebalanceResult } from './migrate/rebalance.js';
export { REPLAY_FORMAT, REPLAY_POLICIES, replay } from './replay.js';
export type { ReplayArgs, ReplayPolicy, ReplayPolicyResult, ReplayResult, ReplayWindow, ReplayWindowResult } from './replay.js';

// Engine and simulator formats.
export { EXPORT_FORMATS, exportPlan, isExportFormat, sglangLogicalCount } from './formats/export.js';
export type { ExportFormat } from './formats/export.js';
export { detectImportFormat, IMPORT_FORMATS, importPlacement } from './formats/import.js';
export type { ImportFormat } from './formats/import.js';

// What-if over clusters and redundancy, and the HTML report.
export {
  bestRows,
  COMPARE_FORMAT,
  compare,
  compareSplit,
  detailRows,
  expertMemoryBudget,
  levelsOf,
  parseSlotLevels,
  performanceOf,
  resolveCompareCluster,
  resourceTime,
  slotBytes,
} from './compare.js';
export type { BestRow, CompareArgs, CompareOutcome, CompareResult, CompareRow, CompareSplit, Level, Performance, Resource, ResourceTime, SkippedLevel } from './compare.js';
export { MAX_GPU_HEATMAP, planSection, REPORT_FORMAT, reportData } from './report/data.js';
export type { LayerView, PlacementSummary, PlacementView, PlanSection, PlanSectionArgs, ReportData } from './report/data.js';
export { renderReportHtml } from './report/html.js';
export { parseReplay as parseReplayInput, readReplayFile, ReplaySchema as ReplayInputSchema } from './report/replay.js';
export type { Replay as ReplayInput } from './report/replay.js';
