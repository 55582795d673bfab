/**
 * HiGHS backend (npm `highs` 1.15, HiGHS compiled to WebAssembly).
 *
 * Lifetime rules of this package, and what this module does about them ("HiGHS models must be
 * disposed"):
 * - The Wasm runtime is loaded asynchronously once per thread (`loadHighs`, cached promise); every
 *   solve after that is synchronous and blocks the thread (run big solves in a worker).
 * - A persistent model (`highs.createModel`) owns a native HiGHS instance inside the Wasm heap.
 *   JavaScript garbage collection never frees it: an undisposed model leaks Wasm memory for the
 *   lifetime of the runtime. Every model made here is disposed in a `finally` (the package's
 *   one-shot `highs.solve(text)` creates and destroys its instance itself; it is not used here
 *   because it only takes LP text and returns name-keyed objects).
 * - Wasm linear memory only grows: after a big model the runtime keeps its peak size. When it
 *   exceeds `RECYCLE_BYTES` the cached runtime is dropped after the solve, so the next solve loads
 *   a fresh one and the old buffer can be collected.
 * - A native failure surfaces as a thrown JS error (e.g. `RuntimeError: Aborted()` from the LP-file
 *   reader on input it does not support, or a trap such as "memory access out of bounds"). After
 *   that the runtime's heap and its `ABORT` state cannot be trusted, so the cached runtime is
 *   dropped and the next call reloads it (~0.1 s). Only input-validation errors raised in JS before
 *   native code runs (`HighsValidationError`, `HighsUnsupportedOptionError`) keep the runtime.
 *
 * Status mapping (HiGHS model status -> LpStatus): optimal -> optimal; infeasible -> infeasible;
 * unbounded -> unbounded; "unbounded or infeasible" -> solved again without presolve, and if still
 * undecided, the zero-objective model decides (feasible -> unbounded, else infeasible);
 * time / iteration / solution limits, objective bound or target, interrupt -> time-limit (with the
 * incumbent when HiGHS has a feasible one, and the MIP dual bound); anything else -> error.
 */
import loadHighsRuntime from 'highs';
import type { Highs, ModelData } from 'highs';
import type { BackendAnswer, LpModel, LpOptions } from './index.js';

/** Wasm memory size above which the runtime is recycled after a solve. */
export const RECYCLE_BYTES = 512 * 1024 * 1024;

let cached: Promise<Highs> | null = null;

/** The HiGHS runtime of this thread (loaded on first use, cached). */
export function loadHighs(): Promise<Highs> {
  if (cached === null) {
    const p = loadHighsRuntime();
    cached = p;
    p.catch(() => {
      if (cached === p) cached = null;
    });
  }
  return cached;
}

/** Drops the cached runtime; the next `loadHighs()` instantiates a fresh one. */
export function resetHighs(): void {
  cached = null;
}

/**
 * Runs `fn` on this thread's runtime; drops the runtime when `fn` throws anything but a JS-side
 * validation error, and recycles it when its memory grew past `RECYCLE_BYTES`. Models created in
 * `fn` must be disposed by `fn`.
 */
export async function withHighs<T>(fn: (h: Highs) => T): Promise<T> {
  const h = await loadHighs();
  try {
    return fn(h);
  } catch (err) {
    const benign = err instanceof h.errors.HighsValidationError || err instanceof h.errors.HighsUnsupportedOptionError;
    if (!benign) resetHighs();
    throw err;
  } finally {
    let bytes = Infinity;
    try {
      bytes = h.memoryBytes;
    } catch {
      // an aborted runtime may not even report its size: recycle it
    }
    if (bytes > RECYCLE_BYTES) resetHighs();
  }
}

/** Typed-array model data of `model` for `createModel`. */
function modelData(h: Highs, model: LpModel, zeroObjective = false): ModelData {
  const n = model.numVars;
  const { start, index, value } = model.rows();
  const anyInt = model.numIntegers > 0;
  const data: ModelData = {
    numCols: n,
    numRows: model.numConstraints,
    sense: model.sense === 'max' ? h.constants.objectiveSense.maximize : h.constants.objectiveSense.minimize,
    offset: zeroObjective ? 0 : model.objectiveOffset,
    colCost: zeroObjective ? new Float64Array(n) : model.colCost.slice(),
    colLower: model.colLower.slice(),
    colUpper: model.colUpper.slice(),
    rowLower: model.rowLower.slice(),
    rowUpper: model.rowUpper.slice(),
    matrix: { format: 'csr', numRows: model.numConstraints, numCols: n, starts: start, indices: index, values: value },
    ...(anyInt ? { integrality: Int32Array.from(model.colInteger) } : {}),
  };
  return data;
}

function num(v: number): string {
  // String(v) is round-trip exact; LP readers accept 1e-07 style exponents.
  return Object.is(v, -0) ? '0' : String(v);
}

/**
 * The model as CPLEX LP text (the format of the package's one-shot `highs.solve`). Variables are
 * `x<j>`, rows `r<i>` (a ranged row becomes `r<i>_lo` and `r<i>_hi`: HiGHS' LP reader aborts on
 * `lb <= expr <= ub`); every variable is listed in the objective (coefficient 0 if need be) so the
 * reader creates the columns in index order. The constant offset is not written.
 */
export function toCplexLp(model: LpModel): string {
  const n = model.numVars;
  const out: string[] = [model.sense === 'max' ? 'Maximize' : 'Minimize'];
  const cost = model.colCost;
  const line: string[] = [' obj:'];
  for (let j = 0; j < n; j++) {
    const c = cost[j];
    line.push(c < 0 ? ` - ${num(-c)} x${j}` : ` + ${num(c)} x${j}`);
    if (line.length >= 10) {
      out.push(line.join(''));
      line.length = 0;
    }
  }
  if (line.length > 0) out.push(line.join(''));
  out.push('Subject To');
  const { start, index, value } = model.rows();
  const rl = model.rowLower;
  const ru = model.rowUpper;
  const expr = (r: number): string => {
    const parts: string[] = [];
    for (let i = start[r]; i < start[r + 1]; i++) {
      const v = value[i];
      parts.push(v < 0 ? ` - ${num(-v)} x${index[i]}` : ` + ${num(v)} x${index[i]}`);
      if ((i - start[r]) % 10 === 9) parts.push('\n ');
    }
    return parts.join('');
  };
  for (let r = 0; r < model.numConstraints; r++) {
    if (start[r] === start[r + 1]) continue;
    const lo = rl[r];
    const hi = ru[r];
    if (lo === -Infinity && hi === Infinity) continue;
    const e = expr(r);
    if (lo === hi) out.push(` r${r}:${e} = ${num(hi)}`);
    else if (lo === -Infinity) out.push(` r${r}:${e} <= ${num(hi)}`);
    else if (hi === Infinity) out.push(` r${r}:${e} >= ${num(lo)}`);
    else {
      out.push(` r${r}_lo:${e} >= ${num(lo)}`);
      out.push(` r${r}_hi:${e} <= ${num(hi)}`);
    }
  }
  out.push('Bounds');
  const lb = model.colLower;
  const ub = model.colUpper;
  for (let j = 0; j < n; j++) {
    const lo = lb[j];
    const hi = ub[j];
    if (lo === 0 && hi === Infinity) continue;
    if (lo === -Infinity && hi === Infinity) out.push(` x${j} free`);
    else if (lo === hi) out.push(` x${j} = ${num(lo)}`);
    else if (hi === Infinity) out.push(` x${j} >= ${num(lo)}`);
    else out.push(` ${lo === -Infinity ? '-inf' : num(lo)} <= x${j} <= ${num(hi)}`);
  }
  const ints: string[] = [];
  const isInt = model.colInteger;
  for (let j = 0; j < n; j++) if (isInt[j]) ints.push(` x${j}`);
  if (ints.length > 0) {
    out.push('Generals');
    for (let i = 0; i < ints.length; i += 16) out.push(ints.slice(i, i + 16).join(''));
  }
  out.push('End', '');
  return out.join('\n');
}

const LIMIT_STATUSES = new Set([11, 12, 13, 14, 16, 17]);

/** Solves with HiGHS (see the file comment for lifetime and status rules). */
export function solveWithHighs(model: LpModel, options: LpOptions): Promise<BackendAnswer> {
  return withHighs((h) => solveOn(h, model, options));
}

function solveOn(h: Highs, model: LpModel, options: LpOptions): BackendAnswer {
  const n = model.numVars;
  const isMip = model.numIntegers > 0;
  const ms = h.constants.modelStatus;
  const text = options.highsInput === 'lp-text';
  // LP text carries no offset: add it back to bounds read from HiGHS.
  const offsetAdd = text ? model.objectiveOffset : 0;
  const hm = text ? h.createModel({ format: 'lp', data: toCplexLp(model) }) : h.createModel(modelData(h, model));
  try {
    if (text) {
      const d = hm.getDimensions();
      if (d.numCols !== n) return { status: 'error', x: null, message: `HiGHS read ${d.numCols} columns from the LP text, expected ${n}` };
    }
    const opts: Record<string, number | string | boolean> = { output_flag: false, mip_rel_gap: options.mipGap ?? 1e-9 };
    if (options.timeLimitSeconds !== undefined) opts.time_limit = options.timeLimitSeconds;
    hm.options.set(opts);
    let st = hm.run().modelStatus;
    if (st === ms.unboundedOrInfeasible) {
      hm.options.set('presolve', 'off');
      st = hm.run().modelStatus;
    }
    if (st === ms.unboundedOrInfeasible) {
      const feas = h.createModel(modelData(h, model, true));
      try {
        feas.options.set({ output_flag: false, ...(options.timeLimitSeconds !== undefined ? { time_limit: options.timeLimitSeconds } : {}) });
        const fs = feas.run().modelStatus;
        if (fs === ms.optimal) return { status: 'unbounded', x: null };
        if (fs === ms.infeasible) return { status: 'infeasible', x: null };
        return { status: LIMIT_STATUSES.has(fs) ? 'time-limit' : 'error', x: null, message: `HiGHS: unbounded or infeasible, undecided (status ${fs})` };
      } finally {
        feas.dispose();
      }
    }
    if (st === ms.infeasible) return { status: 'infeasible', x: null };
    if (st === ms.unbounded) return { status: 'unbounded', x: null };
    const hasPoint = Number(hm.info.get('primal_solution_status')) === 2;
    const x = hasPoint ? Float64Array.from(hm.getSolution().colValue) : null;
    let bestBound: number | undefined;
    if (isMip) {
      const b = Number(hm.info.get('mip_dual_bound'));
      if (Number.isFinite(b)) bestBound = b + offsetAdd;
    } else if (st === ms.optimal && hasPoint) {
      bestBound = hm.getObjectiveValue() + offsetAdd;
    }
    const withBound = (a: BackendAnswer): BackendAnswer => (bestBound !== undefined ? { ...a, bestBound } : a);
    if (st === ms.optimal || (st === ms.empty && hasPoint)) return withBound({ status: 'optimal', x });
    if (LIMIT_STATUSES.has(st)) return withBound({ status: 'time-limit', x, message: `HiGHS stopped: model status ${st}` });
    return { status: 'error', x: null, message: `HiGHS model status ${st}` };
  } finally {
    hm.dispose();
  }
}
