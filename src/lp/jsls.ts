/**
 * javascript-lp-solver backend (jsLPSolver 1.0.x, JSON models).
 *
 * Translation: variable j becomes `x<j>` (so no user name can clash with the objective attribute
 * `obj` or the rows `r<i>` / `u<j>`). jsLPSolver variables are >= 0 unless `unrestricted`, and it
 * has no variable bounds, so a finite lower bound is shifted out (x = lb + y, y >= 0), a variable
 * with lb = -inf is `unrestricted`, and a finite upper bound becomes a row `u<j>`.
 *
 * Traps handled (the caller `solveLp` re-checks the point against the model as well):
 * - When a MIP times out, jsLPSolver returns `feasible: true` with whatever relaxation it looked at
 *   last, possibly fractional, possibly `feasible: false` although the model is feasible. A MIP
 *   whose solve ran into its timeout is therefore always reported as `time-limit` (never optimal,
 *   never infeasible), and integrality is checked on x, not taken from `isIntegral`.
 * - Variables at zero are omitted from the result object: absent = 0.
 * - `bounded: false` means unbounded.
 * - Values are rounded by the library to its precision (1e-9); the objective is recomputed from x.
 */
import solver from 'javascript-lp-solver';
import type { Model as JslsModel, SolveResult as JslsResult } from 'javascript-lp-solver';
import type { BackendAnswer, LpModel, LpOptions } from './index.js';

/** Integrality tolerance (same value as `INT_TOL` of ./index.ts; kept local to avoid an import cycle). */
const INT_TOL = 1e-6;

/** The JSON model handed to jsLPSolver, plus the shift that maps its variables back. */
export interface JslsTranslation {
  json: JslsModel;
  /** [n] x_j = shift_j + (jsls value of x<j>). */
  shift: Float64Array;
}

/** Builds the jsLPSolver JSON model of `model` (see the file comment for the translation). */
export function toJslsModel(model: LpModel, options: LpOptions = {}): JslsTranslation {
  const n = model.numVars;
  const lbs = model.colLower;
  const ubs = model.colUpper;
  const cost = model.colCost;
  const isInt = model.colInteger;
  const shift = new Float64Array(n);
  const variables: Record<string, Record<string, number>> = {};
  const constraints: JslsModel['constraints'] = {};
  const ints: Record<string, 1> = {};
  const unrestricted: Record<string, 1> = {};
  const cols: Record<string, number>[] = new Array(n);
  for (let j = 0; j < n; j++) {
    let lb = lbs[j];
    let ub = ubs[j];
    if (isInt[j]) {
      lb = Math.ceil(lb - INT_TOL);
      ub = Math.floor(ub + INT_TOL);
      ints[`x${j}`] = 1;
    }
    const col: Record<string, number> = {};
    if (cost[j] !== 0) col.obj = cost[j];
    if (lb === -Infinity) unrestricted[`x${j}`] = 1;
    else shift[j] = lb;
    if (ub !== Infinity) {
      // Row u<j>: y <= ub - lb (shifted) or x <= ub (free variable).
      constraints[`u${j}`] = { max: ub - shift[j] };
      col[`u${j}`] = 1;
    }
    cols[j] = col;
    variables[`x${j}`] = col;
  }
  const { start, index, value } = model.rows();
  const rl = model.rowLower;
  const ru = model.rowUpper;
  for (let r = 0; r < model.numConstraints; r++) {
    if (start[r] === start[r + 1]) continue; // empty rows were checked by solveLp
    let moved = 0;
    for (let i = start[r]; i < start[r + 1]; i++) moved += value[i] * shift[index[i]];
    const lo = rl[r] - moved;
    const hi = ru[r] - moved;
    if (rl[r] === -Infinity && ru[r] === Infinity) continue;
    const name = `r${r}`;
    if (rl[r] === ru[r]) constraints[name] = { equal: lo };
    else if (rl[r] === -Infinity) constraints[name] = { max: hi };
    else if (ru[r] === Infinity) constraints[name] = { min: lo };
    else constraints[name] = { min: lo, max: hi };
    for (let i = start[r]; i < start[r + 1]; i++) cols[index[i]][name] = value[i];
  }
  const json: JslsModel = {
    optimize: 'obj',
    opType: model.sense,
    constraints,
    variables,
    ints,
    unrestricted,
    options: { tolerance: options.mipGap ?? 0 },
  };
  if (options.timeLimitSeconds !== undefined) json.timeout = Math.max(1, Math.round(options.timeLimitSeconds * 1000));
  return { json, shift };
}

/** Solves with javascript-lp-solver; see the file comment for what is (not) trusted. */
export function solveWithJsls(model: LpModel, options: LpOptions): BackendAnswer {
  const n = model.numVars;
  const { json, shift } = toJslsModel(model, options);
  const hasInt = model.numIntegers > 0;
  const started = Date.now();
  const res = solver.Solve(json) as JslsResult;
  const elapsed = Date.now() - started;
  // jsLPSolver checks its clock between branch-and-bound nodes only; having used the whole budget
  // is the only observable sign that it stopped early, so it counts as a time-out.
  const timedOut = hasInt && json.timeout !== undefined && elapsed >= json.timeout;
  const x = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const v = res[`x${j}`];
    x[j] = shift[j] + (typeof v === 'number' ? v : 0);
  }
  if (timedOut) return { status: 'time-limit', x: res.feasible ? x : null, message: `jsls stopped by its ${json.timeout} ms timeout` };
  if (!res.feasible) return { status: 'infeasible', x: null };
  if (res.bounded === false) return { status: 'unbounded', x: null };
  if (hasInt && !model.isIntegral(x)) {
    return { status: 'error', x, message: 'jsls returned a fractional point for a MIP without a time-out' };
  }
  const exact = !hasInt || (options.mipGap ?? 0) === 0;
  const out: BackendAnswer = { status: 'optimal', x };
  if (exact) out.bestBound = model.objectiveOf(x);
  return out;
}
