/**
 * Replaying workload drift: a sequence of windows served by a plan that is rebalanced every K
 * windows by one of several policies, scored window by window.
 *
 * Every policy starts from the same running plan, EPLB fitted on window 0. For t = 1, 2, ...
 * window t is served by the plan in effect, fitted on earlier windows only (so every figure is on
 * windows the plan did not see); after window t, when (t + 1) mod K = 0, the policy rebalances on
 * window t's workload and the new plan serves window t + 1. The weights it copies are charged to
 * window t + 1.
 *
 * Policies:
 * - `static`: never rebalance (the baseline every gain is measured from).
 * - `eplb`: DeepSeek EPLB re-run from scratch; its slots as it numbers them.
 * - `eplb-keep`: EPLB re-run, experts that stay on a GPU kept in their slot (vLLM's
 *   `preserve_intragpu_slots`): no fewer copies over links, fewer local ones.
 * - `replan`: moe-placer re-planned from scratch for the objective, aligned with the running plan
 *   (the full re-plan the budget is measured against).
 * - `budget`: moe-placer with a move budget (`plan --from --max-moved-experts`).
 */
import { evaluatePlan, plan as planApi, type PlanOutcome } from './api.js';
import { InputError } from './errors.js';
import { migrationBetween, type Migration } from './migrate/moves.js';
import { alignPlacement } from './migrate/rebalance.js';
import type { Cluster, Mode, Model, Objective } from './schemas.js';
import type { Placement, Workload } from './types.js';
import { shapeOfCluster } from './plan.js';

export const REPLAY_FORMAT = 'moe-placer.replay/1' as const;
export const REPLAY_POLICIES = ['static', 'eplb', 'eplb-keep', 'replan', 'budget'] as const;
export type ReplayPolicy = (typeof REPLAY_POLICIES)[number];

export interface ReplayWindow {
  name: string;
  workload: Workload;
}

export interface ReplayArgs {
  model: Model;
  cluster: Cluster;
  windows: ReplayWindow[];
  /** Rebalance after every K-th window (default 1). */
  every?: number;
  policies?: readonly ReplayPolicy[];
  /** Objective of `replan` and `budget` (default balance). */
  objective?: Objective;
  mode?: Mode;
  /** Copies allowed per rebalance for `budget`; default 10% of the plan's slots (all layers). */
  maxMovedExperts?: number;
  seed?: number;
  workers?: number;
  /** Per-plan search budget of `replan` and `budget`. */
  timeLimitSeconds?: number;
  onProgress?: (what: string, fraction: number) => void;
  signal?: AbortSignal;
}

export interface ReplayWindowResult {
  window: number;
  balancedness: number;
  maxOverMean: number;
  timeSeconds: number;
  interNodeBytes: number;
  /** Weights copied over NVLink or RDMA to make the plan that serves this window. */
  movedExperts: number;
  movedBytes: number;
  /** Slots rewritten from a copy on the same GPU (no link). */
  localCopies: number;
  /** Estimated seconds of the copy schedule. */
  moveSeconds: number;
  /** A rebalance happened right before this window. */
  rebalanced: boolean;
}

export interface ReplayPolicyResult {
  name: ReplayPolicy;
  perWindow: ReplayWindowResult[];
  mean: { balancedness: number; timeSeconds: number; interNodeBytes: number };
  totalMovedBytes: number;
  totalMovedExperts: number;
  /** Wall seconds spent planning. */
  planSeconds: number;
}

export interface ReplayResult {
  format: typeof REPLAY_FORMAT;
  model: string;
  cluster: { name?: string; nodes: number; gpusPerNode: number; slotsPerGpu: number; gpu: string };
  mode: Mode;
  objective: Objective;
  every: number;
  budgetExperts: number;
  slotsPerPlan: number;
  windows: string[];
  policies: ReplayPolicyResult[];
}

/** See the module comment. */
export async function replay(args: ReplayArgs): Promise<ReplayResult> {
  const { model, cluster, windows } = args;
  const every = args.every ?? 1;
  const policies = args.policies ?? REPLAY_POLICIES;
  const objective = args.objective ?? 'balance';
  const mode = args.mode ?? 'normal';
  const seed = args.seed ?? 0;
  const workers = args.workers ?? 1;
  if (windows.length < 2) throw new InputError(`a replay needs at least 2 windows (one to fit the first plan, one to serve), got ${windows.length}`, { field: 'windows' });
  if (!Number.isInteger(every) || every < 1) throw new InputError(`must be a positive integer, got ${every}`, { field: 'every' });
  const shape = shapeOfCluster(cluster);
  const L = model.moeLayerIds.length;
  const slotsPerPlan = L * shape.numSlots;
  const budget = args.maxMovedExperts ?? Math.floor(0.1 * slotsPerPlan);
  const steps = (windows.length - 1) * policies.length;
  let done = 0;
  const progress = (what: string): void => args.onProgress?.(what, done / steps);

  const planFor = (solver: string, w: Workload, from?: Placement): Promise<PlanOutcome> =>
    planApi({
      model,
      cluster,
      workload: w,
      solver,
      objective: solver === 'eplb' ? 'balance' : objective,
      mode,
      seed,
      workers,
      timeLimitSeconds: solver === 'eplb' ? undefined : args.timeLimitSeconds,
      signal: args.signal,
      from: from && { placement: from, maxMovedExperts: budget },
    });

  progress('eplb on window 0');
  const initial = (await planFor('eplb', windows[0].workload)).result.placement;
  const out: ReplayPolicyResult[] = [];
  for (const name of policies) {
    let current = initial;
    let moved = { experts: 0, bytes: 0, local: 0, seconds: 0, rebalanced: false };
    const perWindow: ReplayWindowResult[] = [];
    let planSeconds = 0;
    for (let t = 1; t < windows.length; t++) {
      if (args.signal?.aborted) break;
      progress(`${name}: window ${t} (${windows[t].name})`);
      const ev = evaluatePlan({ model, cluster, placement: current, workload: windows[t].workload, mode }).evaluation;
      perWindow.push({
        window: t,
        balancedness: ev.balancedness,
        maxOverMean: ev.maxOverMean,
        timeSeconds: ev.timeSeconds,
        interNodeBytes: ev.interNodeBytes,
        movedExperts: moved.experts,
        movedBytes: moved.bytes,
        localCopies: moved.local,
        moveSeconds: moved.seconds,
        rebalanced: moved.rebalanced,
      });
      moved = { experts: 0, bytes: 0, local: 0, seconds: 0, rebalanced: false };
      done++;
      if (name === 'static' || (t + 1) % every !== 0 || t === windows.length - 1) continue;
      const t0 = performance.now();
      const w = windows[t].workload;
      let next: Placement;
      let m: Migration | undefined;
      if (name === 'eplb' || name === 'eplb-keep') {
        next = (await planFor('eplb', w)).result.placement;
        if (name === 'eplb-keep') next = alignPlacement(current, next, false);
      } else if (name === 'replan') {
        next = alignPlacement(current, (await planFor('optimize', w)).result.placement, true);
      } else {
        const r = await planFor('optimize', w, current);
        next = r.result.placement;
        m = r.rebalance!.migration;
      }
      planSeconds += (performance.now() - t0) / 1000;
      m ??= migrationBetween(current, next, model.expertBytes, cluster.gpu);
      moved = { experts: m.movedExperts, bytes: m.movedBytes, local: m.localCopies, seconds: m.estimatedSeconds, rebalanced: true };
      current = next;
    }
    const mean = (f: (r: ReplayWindowResult) => number): number => perWindow.reduce((s, r) => s + f(r), 0) / Math.max(1, perWindow.length);
    out.push({
      name,
      perWindow,
      mean: { balancedness: mean((r) => r.balancedness), timeSeconds: mean((r) => r.timeSeconds), interNodeBytes: mean((r) => r.interNodeBytes) },
      totalMovedBytes: perWindow.reduce((s, r) => s + r.movedBytes, 0),
      totalMovedExperts: perWindow.reduce((s, r) => s + r.movedExperts, 0),
      planSeconds,
    });
  }
  return {
    format: REPLAY_FORMAT,
    model: model.name,
    cluster: { name: cluster.name, nodes: cluster.nodes, gpusPerNode: cluster.gpusPerNode, slotsPerGpu: cluster.slotsPerGpu, gpu: cluster.gpu.name },
    mode,
    objective,
    every,
    budgetExperts: budget,
    slotsPerPlan,
    windows: windows.map((w) => w.name),
    policies: out,
  };
}
