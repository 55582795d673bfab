/**
 * Re-placing from a running placement: the new plan, aligned with the running one so that experts
 * stay put where they can, and kept within a move budget.
 *
 * - No budget, or a re-plan whose aligned moves fit the budget: the re-plan, aligned (align.ts).
 * - Otherwise: the running placement rebalanced with at most the budget's copies (budget.ts):
 *   per layer a path of copy moves or the aligned re-plan's layer whole, the budget shared out
 *   over layers exactly (a knapsack over copies); its dispatch from the shares of sources per
 *   replica that balance it.
 * Either way the result records its moves and their copy schedule (moves.ts).
 */
import { InputError } from '../errors.js';
import { dispatchOf, dispatchOfShares } from '../placement.js';
import type { PlanFile } from '../schemas.js';
import type { Placement } from '../types.js';
import { alignGpus, applyAlignment } from './align.js';
import { rebalanceWithBudget } from './budget.js';
import { migrationBetween, type LinkSpeeds, type Migration } from './moves.js';

export interface RebalanceArgs {
  /** The running placement. */
  current: Placement;
  /** A placement planned for the new workload from scratch (any solver). */
  replan: Placement;
  /** [L] of [E] expert loads of the new workload (the budgeted search balances them). */
  loads: Float64Array[];
  /** Most expert copies allowed in all (undefined = no limit). */
  maxMoves?: number;
  /** Relabel nodes and GPUs of the re-plan to keep experts in place (default true). */
  relabel?: boolean;
  expertBytes: number;
  speeds: LinkSpeeds;
}

export interface RebalanceResult {
  placement: Placement;
  migration: Migration;
  /** How the result was made: the aligned re-plan, or the budgeted rebalance of the running plan. */
  method: 'replan' | 'budget';
  /** Moves the aligned re-plan would have needed. */
  replanMoves: number;
}

/** The re-plan relabelled layer by layer to keep the running placement's experts in place. */
export function alignPlacement(current: Placement, replan: Placement, relabel = true): Placement {
  const E = replan.numExperts;
  const phy2log: Int32Array[] = [];
  const dispatch: Int32Array[] = [];
  for (let l = 0; l < replan.numLayers; l++) {
    const map = alignGpus(current.phy2log[l], replan.phy2log[l], E, replan.shape, relabel);
    // The default dispatch rule depends on GPU labels: relabel the table it gives, not the rule.
    const a = applyAlignment(current.phy2log[l], replan.phy2log[l], dispatchOf(replan, l), map, E, replan.shape);
    phy2log.push(a.phy2log);
    dispatch.push(a.dispatch!);
  }
  return { ...replan, phy2log, dispatch };
}

/** Experts with no replica in a layer of `p`, in all: the fewest copies any valid plan needs. */
export function missingExperts(p: Placement): number {
  let missing = 0;
  const has = new Uint8Array(p.numExperts);
  for (const row of p.phy2log) {
    has.fill(0);
    for (const e of row) if (e >= 0) has[e] = 1;
    for (const x of has) missing += 1 - x;
  }
  return missing;
}

/** See the module comment. InputError when the budget cannot place every expert. */
export function rebalance(args: RebalanceArgs): RebalanceResult {
  const { current, replan, loads, maxMoves, expertBytes, speeds } = args;
  const missing = missingExperts(current);
  if (maxMoves !== undefined && missing > maxMoves) {
    throw new InputError(
      `a budget of ${maxMoves} moved experts cannot place every expert: the running plan lacks ${missing} (layer, expert) replicas, so at least ${missing} must be copied`,
      { field: 'maxMovedExperts' },
    );
  }
  const aligned = alignPlacement(current, replan, args.relabel ?? true);
  const full = migrationBetween(current, aligned, expertBytes, speeds);
  if (maxMoves === undefined || full.movedExperts <= maxMoves) {
    return { placement: aligned, migration: full, method: 'replan', replanMoves: full.movedExperts };
  }
  const b = rebalanceWithBudget(current, loads, maxMoves, aligned);
  const placement: Placement = {
    ...b.placement,
    dispatch: b.placement.phy2log.map((row, l) => dispatchOfShares(row, b.shares[l], current.numExperts, current.shape)),
  };
  return { placement, migration: migrationBetween(current, placement, expertBytes, speeds), method: 'budget', replanMoves: full.movedExperts };
}

/** The plan file's `migration` block of a rebalance. */
export function migrationJson(r: RebalanceResult, from: string | undefined, maxMovedExperts: number | undefined, expertBytes: number): NonNullable<PlanFile['migration']> {
  const m = r.migration;
  return {
    from,
    method: r.method,
    maxMovedExperts,
    replanMovedExperts: r.replanMoves,
    movedExperts: m.movedExperts,
    movedBytes: m.movedBytes,
    nvlinkMoves: m.nvlinkMoves,
    rdmaMoves: m.rdmaMoves,
    rounds: m.rounds,
    minRounds: m.minRounds,
    estimatedSeconds: m.estimatedSeconds,
    perLayer: m.perLayer,
    moves: m.moves.map((x) => ({ ...x, bytes: expertBytes })),
  };
}
