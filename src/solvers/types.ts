/**
 * The one interface every placement algorithm implements.
 */
import type { Cluster, Mode, Model, Objective } from '../schemas.js';
import type { Placement, Shape, Workload, WorkloadIndex } from '../types.js';

export interface SolveProgress {
  /** What the solver is doing, e.g. `construct`, `improve layer 12`. */
  stage: string;
  /** Fraction done in [0, 1], when known. */
  fraction?: number;
  /** Best objective value so far, when meaningful. */
  best?: number;
}

export interface SolveInput {
  model: Model;
  cluster: Cluster;
  shape: Shape;
  workload: Workload;
  /** The workload already indexed for shape.numGpus sources (e.g. streamed from a huge trace). */
  index?: WorkloadIndex;
  objective: Objective;
  mode: Mode;
  seed: number;
  /** Wall-clock budget in seconds; the best placement found by then is returned. */
  timeLimitSeconds?: number;
  /** Worker threads (1 = run in this thread). */
  workers?: number;
  /** Allowed max-load slack of the traffic objective relative to the best balanced plan. */
  eps?: number;
  onProgress?: (p: SolveProgress) => void;
  /** Aborting returns the best placement so far (marked interrupted) instead of throwing. */
  signal?: AbortSignal;
}

export interface SolveBounds {
  maxLoadLowerBound?: number;
  interNodeBytesLowerBound?: number;
  exact?: boolean;
}

export interface SolveResult {
  placement: Placement;
  bounds?: SolveBounds;
  interrupted?: boolean;
  /** Solver-specific facts for provenance (iterations, restarts, ...), JSON-serialisable. */
  info?: Record<string, unknown>;
}

export interface Solver {
  name: string;
  description: string;
  solve(input: SolveInput): Promise<SolveResult>;
}
