/**
 * One LP/MIP interface, two backends.
 *
 * - `jsls`: javascript-lp-solver (pure JS simplex + plain branch and bound). Small models and exact
 *   cross-checks. Its answers are never trusted blindly: see `./jsls.ts`.
 * - `highs`: HiGHS compiled to WebAssembly (npm `highs`), loaded once per thread and cached. Large
 *   LPs and every non-trivial MIP. Lifetime and recovery rules: see `./highs.ts`.
 *
 * Build a model with `LpModel` (variables are column indices 0..n-1, constraints are rows with
 * `lb <= a.x <= ub`), then `await solveLp(model, options)`. Every backend answer is checked here
 * against the model itself (bounds, rows, integrality) before it is reported as `optimal`.
 */
import { SolverError } from '../errors.js';
import { solveWithHighs } from './highs.js';
import { solveWithJsls } from './jsls.js';

export { loadHighs, resetHighs, toCplexLp, withHighs } from './highs.js';

export type LpSense = 'min' | 'max';
export type LpBackend = 'auto' | 'jsls' | 'highs';
export type LpStatus = 'optimal' | 'infeasible' | 'unbounded' | 'time-limit' | 'error';

/** Bounds, integrality and objective coefficient of one variable. Defaults: lb 0, ub +inf, continuous, obj 0. */
export interface VarSpec {
  lb?: number;
  ub?: number;
  integer?: boolean;
  obj?: number;
}

/** Row bounds `lb <= a.x <= ub`. Defaults: lb -inf, ub +inf. Equal finite bounds = equality. */
export interface RowBounds {
  lb?: number;
  ub?: number;
}

export interface LpOptions {
  /** `auto` (default): jsls for small models (see `AUTO_JSLS_LIMITS`), HiGHS otherwise. */
  backend?: LpBackend;
  /** Wall-clock limit of the solve; MIPs stopped by it report `time-limit`. */
  timeLimitSeconds?: number;
  /**
   * Relative MIP gap at which the search may stop and still report `optimal`
   * (|primal - bound| <= mipGap * |primal|). Default 1e-9 (HiGHS' own default is 1e-4).
   */
  mipGap?: number;
  /** HiGHS only: pass the model as typed arrays (default) or as CPLEX LP text (`toCplexLp`). */
  highsInput?: 'arrays' | 'lp-text';
}

export interface LpResult {
  /**
   * `optimal`: x is feasible (and integral for a MIP) and optimal within `mipGap`.
   * `infeasible` / `unbounded`: proved by the backend (never reported after a time-out).
   * `time-limit`: a limit stopped the search; x is the best point known (check `integral` and
   * `feasible`), it may be fractional or absent (NaN).
   * `error`: the backend failed or returned an answer that does not satisfy the model.
   */
  status: LpStatus;
  /**
   * Objective value of `x` (including the model's constant offset) when x is a feasible and, for a
   * MIP, integral point; `+inf`/`-inf` for a proved infeasible/unbounded minimisation (mirrored
   * for maximisation); NaN otherwise.
   */
  objective: number;
  /** [n] variable values; NaN everywhere when the backend returned no point. */
  x: Float64Array;
  /** x satisfies every integrality requirement (to 1e-6). True for an LP with a point. */
  integral: boolean;
  /** x satisfies every bound and row (to 1e-6, scaled by the row's magnitude). */
  feasible: boolean;
  /**
   * A proved bound on the optimum (a lower bound when minimising, an upper bound when maximising)
   * when the backend provides one: the LP optimum, or HiGHS' MIP dual bound (valid after a time-out
   * too). Undefined when unknown.
   */
  bestBound?: number;
  /** Backend that produced the answer: `jsls`, `highs` or `trivial` (empty model). */
  backend: string;
  /** Wall-clock seconds spent in the backend. */
  seconds: number;
  /** Why the status is `error` (or what a backend reported), when known. */
  message?: string;
}

/** `auto` picks jsls when the model is at most this big, HiGHS otherwise. */
export const AUTO_JSLS_LIMITS = { vars: 300, rows: 200, integers: 40 } as const;

/** Integrality tolerance used to check answers. */
export const INT_TOL = 1e-6;
/** Feasibility tolerance (absolute, scaled by max(1, |bound|, sum |a_ij x_j|)). */
export const FEAS_TOL = 1e-6;

function growF64(a: Float64Array, need: number): Float64Array {
  if (need <= a.length) return a;
  const b = new Float64Array(Math.max(need, a.length * 2, 16));
  b.set(a);
  return b;
}
function growI32(a: Int32Array, need: number): Int32Array {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(need, a.length * 2, 16));
  b.set(a);
  return b;
}
function growU8(a: Uint8Array, need: number): Uint8Array {
  if (need <= a.length) return a;
  const b = new Uint8Array(Math.max(need, a.length * 2, 16));
  b.set(a);
  return b;
}

/** Compressed rows with duplicate column entries merged and zero coefficients dropped. */
export interface CsrRows {
  /** [m+1] row starts. */
  start: Int32Array;
  /** [nnz] column index of each entry (ascending inside a row). */
  index: Int32Array;
  /** [nnz] coefficient of each entry. */
  value: Float64Array;
}

/**
 * A linear model `min|max c.x + offset` s.t. `rowLb <= A x <= rowUb`, `colLb <= x <= colUb`, some x
 * integer. Columns and rows are appended; storage is growable typed arrays, so models with millions
 * of nonzeros are cheap to build.
 */
export class LpModel {
  sense: LpSense;
  /** Constant added to the objective. */
  objectiveOffset = 0;
  private nVars = 0;
  private nRows = 0;
  private nnz = 0;
  private cLb: Float64Array = new Float64Array(16);
  private cUb: Float64Array = new Float64Array(16);
  private cObj: Float64Array = new Float64Array(16);
  private cInt: Uint8Array = new Uint8Array(16);
  private names: (string | undefined)[] = [];
  private rStart: Int32Array = new Int32Array(17);
  private rLb: Float64Array = new Float64Array(16);
  private rUb: Float64Array = new Float64Array(16);
  private eCol: Int32Array = new Int32Array(64);
  private eVal: Float64Array = new Float64Array(64);
  private csr: CsrRows | null = null;

  constructor(sense: LpSense = 'min') {
    this.sense = sense;
  }

  get numVars(): number {
    return this.nVars;
  }
  get numConstraints(): number {
    return this.nRows;
  }
  /** Stored entries (before merging duplicates). */
  get numEntries(): number {
    return this.nnz;
  }
  get numIntegers(): number {
    let c = 0;
    for (let j = 0; j < this.nVars; j++) c += this.cInt[j];
    return c;
  }

  /** Adds a variable; returns its index. `name` is only used for LP-text export and messages. */
  addVar(name?: string, spec: VarSpec = {}): number {
    const lb = spec.lb ?? 0;
    const ub = spec.ub ?? Infinity;
    const obj = spec.obj ?? 0;
    if (Number.isNaN(lb) || Number.isNaN(ub) || lb === Infinity || ub === -Infinity) {
      throw new SolverError(`LP model: variable ${name ?? this.nVars} has invalid bounds [${lb}, ${ub}]`);
    }
    if (!Number.isFinite(obj)) throw new SolverError(`LP model: variable ${name ?? this.nVars} has objective coefficient ${obj}`);
    const j = this.nVars++;
    this.cLb = growF64(this.cLb, j + 1);
    this.cUb = growF64(this.cUb, j + 1);
    this.cObj = growF64(this.cObj, j + 1);
    this.cInt = growU8(this.cInt, j + 1);
    this.cLb[j] = lb;
    this.cUb[j] = ub;
    this.cObj[j] = obj;
    this.cInt[j] = spec.integer ? 1 : 0;
    if (name !== undefined) this.names[j] = name;
    return j;
  }

  /** Adds `count` identical variables; returns the index of the first. */
  addVars(count: number, spec: VarSpec = {}): number {
    const first = this.nVars;
    for (let i = 0; i < count; i++) this.addVar(undefined, spec);
    return first;
  }

  /** Sets (overwrites) the objective coefficient of variable j. */
  setObjective(j: number, coef: number): void {
    this.checkVar(j);
    if (!Number.isFinite(coef)) throw new SolverError(`LP model: objective coefficient ${coef} of variable ${j}`);
    this.cObj[j] = coef;
  }

  /** Changes the bounds of variable j. */
  setBounds(j: number, lb: number, ub: number): void {
    this.checkVar(j);
    if (Number.isNaN(lb) || Number.isNaN(ub) || lb === Infinity || ub === -Infinity) {
      throw new SolverError(`LP model: variable ${j} has invalid bounds [${lb}, ${ub}]`);
    }
    this.cLb[j] = lb;
    this.cUb[j] = ub;
  }

  /**
   * Adds a row `lb <= sum coef * x[var] <= ub`; returns its index. Terms are `[varIndex, coef]`
   * pairs, or two parallel arrays (indices, coefficients). Repeated variables are summed.
   */
  addConstraint(terms: ReadonlyArray<readonly [number, number]>, bounds: RowBounds): number;
  addConstraint(indices: ArrayLike<number>, coefs: ArrayLike<number>, bounds: RowBounds): number;
  addConstraint(a: ReadonlyArray<readonly [number, number]> | ArrayLike<number>, b: ArrayLike<number> | RowBounds, c?: RowBounds): number {
    let bounds: RowBounds;
    let count: number;
    const pairs = c === undefined;
    if (pairs) {
      bounds = b as RowBounds;
      count = a.length;
    } else {
      bounds = c;
      count = a.length;
      if ((b as ArrayLike<number>).length !== count) {
        throw new SolverError(`LP model: constraint ${this.nRows} has ${count} indices but ${(b as ArrayLike<number>).length} coefficients`);
      }
    }
    const lb = bounds.lb ?? -Infinity;
    const ub = bounds.ub ?? Infinity;
    if (Number.isNaN(lb) || Number.isNaN(ub) || lb === Infinity || ub === -Infinity) {
      throw new SolverError(`LP model: constraint ${this.nRows} has invalid bounds [${lb}, ${ub}]`);
    }
    const base = this.nnz;
    this.eCol = growI32(this.eCol, base + count);
    this.eVal = growF64(this.eVal, base + count);
    for (let i = 0; i < count; i++) {
      let j: number;
      let v: number;
      if (pairs) {
        const t = (a as ReadonlyArray<readonly [number, number]>)[i];
        j = t[0];
        v = t[1];
      } else {
        j = (a as ArrayLike<number>)[i];
        v = (b as ArrayLike<number>)[i];
      }
      this.checkVar(j);
      if (!Number.isFinite(v)) throw new SolverError(`LP model: coefficient ${v} of variable ${j} in constraint ${this.nRows}`);
      this.eCol[base + i] = j;
      this.eVal[base + i] = v;
    }
    const r = this.nRows++;
    this.nnz += count;
    this.rStart = growI32(this.rStart, r + 2);
    this.rStart[r + 1] = this.nnz;
    this.rLb = growF64(this.rLb, r + 1);
    this.rUb = growF64(this.rUb, r + 1);
    this.rLb[r] = lb;
    this.rUb[r] = ub;
    this.csr = null;
    return r;
  }

  private checkVar(j: number): void {
    if (!(Number.isInteger(j) && j >= 0 && j < this.nVars)) throw new SolverError(`LP model: no variable ${j} (have ${this.nVars})`);
  }

  /** [n] lower bounds (view, do not modify). */
  get colLower(): Float64Array {
    return this.cLb.subarray(0, this.nVars);
  }
  /** [n] upper bounds (view). */
  get colUpper(): Float64Array {
    return this.cUb.subarray(0, this.nVars);
  }
  /** [n] objective coefficients (view). */
  get colCost(): Float64Array {
    return this.cObj.subarray(0, this.nVars);
  }
  /** [n] 1 = integer variable (view). */
  get colInteger(): Uint8Array {
    return this.cInt.subarray(0, this.nVars);
  }
  /** [m] row lower bounds (view). */
  get rowLower(): Float64Array {
    return this.rLb.subarray(0, this.nRows);
  }
  /** [m] row upper bounds (view). */
  get rowUpper(): Float64Array {
    return this.rUb.subarray(0, this.nRows);
  }
  varName(j: number): string | undefined {
    return this.names[j];
  }

  /** The constraint matrix by rows, duplicates merged, zeros dropped, columns ascending. Cached. */
  rows(): CsrRows {
    if (this.csr) return this.csr;
    const m = this.nRows;
    const start = new Int32Array(m + 1);
    const index = new Int32Array(this.nnz);
    const value = new Float64Array(this.nnz);
    const acc = new Float64Array(this.nVars);
    const seen = new Int32Array(this.nVars).fill(-1);
    let out = 0;
    const cols: number[] = [];
    for (let r = 0; r < m; r++) {
      cols.length = 0;
      for (let i = this.rStart[r]; i < this.rStart[r + 1]; i++) {
        const j = this.eCol[i];
        if (seen[j] !== r) {
          seen[j] = r;
          acc[j] = 0;
          cols.push(j);
        }
        acc[j] += this.eVal[i];
      }
      cols.sort((x, y) => x - y);
      for (const j of cols) {
        if (acc[j] !== 0) {
          index[out] = j;
          value[out++] = acc[j];
        }
      }
      start[r + 1] = out;
    }
    this.csr = { start, index: index.slice(0, out), value: value.slice(0, out) };
    return this.csr;
  }

  /** Objective value of x (with the offset). */
  objectiveOf(x: ArrayLike<number>): number {
    let s = this.objectiveOffset;
    for (let j = 0; j < this.nVars; j++) if (this.cObj[j] !== 0) s += this.cObj[j] * x[j];
    return s;
  }

  /** Largest scaled violation of a bound or row by x (0 = feasible). */
  violation(x: ArrayLike<number>): number {
    let worst = 0;
    for (let j = 0; j < this.nVars; j++) {
      const v = x[j];
      if (Number.isNaN(v)) return Infinity;
      const scale = Math.max(1, Math.abs(v));
      worst = Math.max(worst, (this.cLb[j] - v) / scale, (v - this.cUb[j]) / scale);
    }
    const { start, index, value } = this.rows();
    for (let r = 0; r < this.nRows; r++) {
      let act = 0;
      let mag = 0;
      for (let i = start[r]; i < start[r + 1]; i++) {
        const t = value[i] * x[index[i]];
        act += t;
        mag += Math.abs(t);
      }
      const lb = this.rLb[r];
      const ub = this.rUb[r];
      const scale = Math.max(1, mag, Number.isFinite(lb) ? Math.abs(lb) : 0, Number.isFinite(ub) ? Math.abs(ub) : 0);
      worst = Math.max(worst, (lb - act) / scale, (act - ub) / scale);
    }
    return worst;
  }

  /** True when every integer variable of x is within INT_TOL of an integer. */
  isIntegral(x: ArrayLike<number>): boolean {
    for (let j = 0; j < this.nVars; j++) {
      if (this.cInt[j] && !(Math.abs(x[j] - Math.round(x[j])) <= INT_TOL)) return false;
    }
    return true;
  }

  /**
   * A bound or an empty row that no x can satisfy (lb > ub; for an integer variable,
   * ceil(lb) > floor(ub)); null when none. Backends differ on such input, so `solveLp` answers it.
   */
  trivialInfeasibility(): string | null {
    for (let j = 0; j < this.nVars; j++) {
      let lb = this.cLb[j];
      let ub = this.cUb[j];
      if (this.cInt[j]) {
        lb = Math.ceil(lb - INT_TOL);
        ub = Math.floor(ub + INT_TOL);
      }
      if (lb > ub) return `variable ${this.names[j] ?? j}: bounds [${this.cLb[j]}, ${this.cUb[j]}] are empty`;
    }
    const { start } = this.rows();
    for (let r = 0; r < this.nRows; r++) {
      if (this.rLb[r] > this.rUb[r]) return `constraint ${r}: bounds [${this.rLb[r]}, ${this.rUb[r]}] are empty`;
      if (start[r] === start[r + 1] && (this.rLb[r] > FEAS_TOL || this.rUb[r] < -FEAS_TOL)) {
        return `constraint ${r} has no terms and bounds [${this.rLb[r]}, ${this.rUb[r]}]`;
      }
    }
    return null;
  }
}

function noPoint(n: number): Float64Array {
  return new Float64Array(n).fill(NaN);
}

/** Which backend `auto` uses for this model. */
export function autoBackend(model: LpModel): 'jsls' | 'highs' {
  return model.numVars <= AUTO_JSLS_LIMITS.vars && model.numConstraints <= AUTO_JSLS_LIMITS.rows && model.numIntegers <= AUTO_JSLS_LIMITS.integers
    ? 'jsls'
    : 'highs';
}

/**
 * Raw answer of a backend before `solveLp` checks it: a claimed status and a point.
 * @internal
 */
export interface BackendAnswer {
  status: LpStatus;
  /** [n] point, or null. */
  x: Float64Array | null;
  bestBound?: number;
  message?: string;
}

/**
 * Solves `model`. Never throws for solver trouble: failures come back as `status: 'error'` with a
 * message (model-building mistakes throw `SolverError` from `LpModel`).
 */
export async function solveLp(model: LpModel, options: LpOptions = {}): Promise<LpResult> {
  const n = model.numVars;
  const min = model.sense === 'min';
  if (options.timeLimitSeconds !== undefined && !(options.timeLimitSeconds > 0)) {
    throw new SolverError(`solveLp: timeLimitSeconds must be > 0, got ${options.timeLimitSeconds}`);
  }
  if (options.mipGap !== undefined && !(options.mipGap >= 0)) throw new SolverError(`solveLp: mipGap must be >= 0, got ${options.mipGap}`);
  const t0 = performance.now();
  const why = model.trivialInfeasibility();
  if (why !== null) {
    return { status: 'infeasible', objective: min ? Infinity : -Infinity, x: noPoint(n), integral: false, feasible: false, backend: 'trivial', seconds: 0, message: why };
  }
  if (n === 0) {
    // Rows without terms were checked above, so the empty model is feasible.
    const x = new Float64Array(0);
    return { status: 'optimal', objective: model.objectiveOffset, x, integral: true, feasible: true, bestBound: model.objectiveOffset, backend: 'trivial', seconds: 0 };
  }
  const backend = options.backend === undefined || options.backend === 'auto' ? autoBackend(model) : options.backend;
  let ans: BackendAnswer;
  try {
    ans = backend === 'jsls' ? solveWithJsls(model, options) : await solveWithHighs(model, options);
  } catch (err) {
    ans = { status: 'error', x: null, message: `${backend}: ${err instanceof Error ? err.message : String(err)}` };
  }
  const seconds = (performance.now() - t0) / 1000;
  const x = ans.x ?? noPoint(n);
  const hasPoint = ans.x !== null && !x.some(Number.isNaN);
  const integral = hasPoint && model.isIntegral(x);
  const viol = hasPoint ? model.violation(x) : Infinity;
  const feasible = viol <= FEAS_TOL;
  let status = ans.status;
  let message = ans.message;
  if (status === 'optimal' && !(feasible && integral)) {
    status = 'error';
    message = `${backend} claimed an optimum that is ${integral ? '' : 'fractional '}${feasible ? '' : `infeasible (violation ${viol.toExponential(2)})`}`.trim();
  }
  let objective: number;
  if (status === 'infeasible') objective = min ? Infinity : -Infinity;
  else if (status === 'unbounded') objective = min ? -Infinity : Infinity;
  else objective = hasPoint && feasible && integral ? model.objectiveOf(x) : NaN;
  const out: LpResult = { status, objective, x, integral, feasible, backend, seconds };
  if (ans.bestBound !== undefined && Number.isFinite(ans.bestBound) && status !== 'error') out.bestBound = ans.bestBound;
  if (message !== undefined) out.message = message;
  return out;
}
