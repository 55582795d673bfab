/**
 * improve: k-way FM refinement of a node-level layout (NodeState) on the exact traffic of the cost
 * model, with replication as first-class moves.
 *
 * A pass repeatedly applies the best move among the experts not yet moved in the pass, even when
 * it makes things worse, locks the experts it moved, and at the end rolls back to the best prefix
 * (the state's undo log makes that exact). Passes repeat while they improve. Moves:
 * - relocate: the replica of e on node a goes to node b (b has a free slot);
 * - swap: e on a and f on b trade nodes;
 * - add: a new replica of e on node b (b has a free slot);
 * - drop: a redundant replica of e on node a goes away (frees a slot for a later move);
 * - replace: a redundant replica of e on node a gives its slot to a new replica of f (a full
 *   node changes which expert it replicates in one step; as a drop then an add it would have to
 *   pass through the worse state in between);
 * - cycle: e on a goes to b, f on b to c, g on c to a (slot counts unchanged; up to
 *   CYCLE_MAX_NODES nodes).
 * Every candidate gets an estimate from one sweep over the token sets of its expert
 * (NodeState.relGain / addGain, tables kept up to date by every applied move); the best `shortlist` estimates are then scored exactly
 * (applied, measured, rolled back). The objective is traffic + lambda x limit violation, and only
 * layouts within every limit count as the best prefix once one is reached.
 */
import type { NodeState } from './node-search.js';

export interface RefineOptions {
  /** Passes at most. */
  passes: number;
  /** Price of one unit of limit violation (NodeState.violation) in traffic units. */
  lambda: number;
  /** Moves scored exactly per step (default 12). */
  shortlist?: number;
  /** Best relocations kept per ordered node pair to pair into swaps (default 4). */
  swapWidth?: number;
  /** Stop a pass after this many steps without a new best (default max(12, E/4)). */
  stall?: number;
  /** Stop when Date.now() passes this. */
  deadline?: number;
}

export interface RefineStats {
  passes: number;
  moves: number;
  evaluations: number;
  startCost: number;
  bestCost: number;
}

const RELOCATE = 0;
const SWAP = 1;
const ADD = 2;
const DROP = 3;
const REPLACE = 4;
const CYCLE = 5;

/** Largest node count with cycle moves (2 * C(N, 3) * swapWidth^3 candidates a step). */
export const CYCLE_MAX_NODES = 8;

/**
 * The best `cap` candidate moves of one step by estimate (ascending), in preallocated typed arrays;
 * a candidate no better than all kept ones when full is dropped.
 */
class Moves {
  n = 0;
  readonly kind: Int8Array;
  readonly e: Int32Array;
  readonly a: Int32Array;
  readonly f: Int32Array;
  readonly b: Int32Array;
  /** Third expert and node of a cycle. */
  readonly g: Int32Array;
  readonly c: Int32Array;
  readonly est: Float64Array;
  constructor(readonly cap: number) {
    this.kind = new Int8Array(cap);
    this.e = new Int32Array(cap);
    this.a = new Int32Array(cap);
    this.f = new Int32Array(cap);
    this.b = new Int32Array(cap);
    this.g = new Int32Array(cap);
    this.c = new Int32Array(cap);
    this.est = new Float64Array(cap);
  }
  push(kind: number, e: number, a: number, f: number, b: number, est: number, g = -1, c = -1): void {
    if (this.n === this.cap && est >= this.est[this.n - 1]) return;
    let i = this.n < this.cap ? this.n++ : this.n - 1;
    for (; i > 0 && this.est[i - 1] > est; i--) {
      this.kind[i] = this.kind[i - 1];
      this.e[i] = this.e[i - 1];
      this.a[i] = this.a[i - 1];
      this.f[i] = this.f[i - 1];
      this.b[i] = this.b[i - 1];
      this.g[i] = this.g[i - 1];
      this.c[i] = this.c[i - 1];
      this.est[i] = this.est[i - 1];
    }
    this.kind[i] = kind;
    this.e[i] = e;
    this.a[i] = a;
    this.f[i] = f;
    this.b[i] = b;
    this.g[i] = g;
    this.c[i] = c;
    this.est[i] = est;
  }
}

/**
 * Keep the `T` least values of list `r` (lists of T entries: experts in `ex`, values in `val`,
 * lengths in `len`), sorted ascending, by insertion.
 */
function keepBest(ex: Int32Array, val: Float64Array, len: Int32Array, r: number, T: number, e: number, v: number): void {
  let n = len[r];
  if (n === T && v >= val[r * T + n - 1]) return;
  if (n < T) n = ++len[r];
  let j = n - 1;
  while (j > 0 && val[r * T + j - 1] > v) {
    val[r * T + j] = val[r * T + j - 1];
    ex[r * T + j] = ex[r * T + j - 1];
    j--;
  }
  val[r * T + j] = v;
  ex[r * T + j] = e;
}

/** Push the cycles e: a -> b, f: b -> c, g: c -> a from the T best relocations of each pair. */
function pushCycles(mv: Moves, topE: Int32Array, topG: Float64Array, topN: Int32Array, T: number, N: number, a: number, b: number, c: number): void {
  const ab = a * N + b;
  const bc = b * N + c;
  const ca = c * N + a;
  for (let x = 0; x < topN[ab]; x++) {
    const e = topE[ab * T + x];
    for (let y = 0; y < topN[bc]; y++) {
      const f = topE[bc * T + y];
      if (f === e) continue;
      for (let z = 0; z < topN[ca]; z++) {
        const g = topE[ca * T + z];
        if (g !== e && g !== f) mv.push(CYCLE, e, a, f, b, topG[ab * T + x] + topG[bc * T + y] + topG[ca * T + z], g, c);
      }
    }
  }
}

/** Apply move i of `mv` to the state (through its logged primitives). */
function apply(st: NodeState, mv: Moves, i: number): void {
  const e = mv.e[i];
  const a = mv.a[i];
  const b = mv.b[i];
  switch (mv.kind[i]) {
    case RELOCATE:
      st.addReplica(e, b);
      st.dropReplica(e, a);
      st.reserve(e);
      break;
    case SWAP: {
      const f = mv.f[i];
      st.addReplica(e, b);
      st.addReplica(f, a);
      st.dropReplica(e, a);
      st.dropReplica(f, b);
      st.reserve(e);
      st.reserve(f);
      break;
    }
    case ADD:
      st.addReplica(e, b);
      st.reserve(e);
      break;
    case DROP:
      st.dropReplica(e, a);
      st.reserve(e);
      break;
    case CYCLE: {
      const f = mv.f[i];
      const g = mv.g[i];
      const c = mv.c[i];
      st.addReplica(e, b);
      st.addReplica(f, c);
      st.addReplica(g, a);
      st.dropReplica(e, a);
      st.dropReplica(f, b);
      st.dropReplica(g, c);
      st.reserve(e);
      st.reserve(f);
      st.reserve(g);
      break;
    }
    default: {
      const f = mv.f[i];
      st.dropReplica(e, a);
      st.addReplica(f, a);
      st.reserve(e);
      st.reserve(f);
    }
  }
}

/**
 * FM refinement of the state's current layout; leaves the best layout found in the state (with
 * an empty undo log).
 */
export function refineNodes(st: NodeState, opts: RefineOptions): RefineStats {
  const { N, E } = st;
  const cap = st.p.slotsPerNode;
  const shortlist = opts.shortlist ?? 12;
  const T = opts.swapWidth ?? 4;
  const stall = opts.stall ?? Math.max(12, Math.ceil(E / 4));
  const lambda = opts.lambda;
  const mv = new Moves(shortlist);
  // Per ordered node pair (a, b): the T best relocation estimates a -> b and their experts.
  const topE = new Int32Array(N * N * T);
  const topG = new Float64Array(N * N * T);
  const topN = new Int32Array(N * N);
  // Per node: the T best drop and add estimates there and their experts (replace moves).
  const dropE = new Int32Array(N * T);
  const dropG = new Float64Array(N * T);
  const dropN = new Int32Array(N);
  const addE = new Int32Array(N * T);
  const addG = new Float64Array(N * T);
  const addN = new Int32Array(N);
  const locked = new Uint8Array(E);
  const rel = st.relGain;
  const objective = (): number => st.cost + lambda * st.violation();
  st.commit();
  const startCost = st.cost;
  let evaluations = 0;
  let moves = 0;
  let pass = 0;
  for (; pass < opts.passes; pass++) {
    if (opts.deadline !== undefined && Date.now() > opts.deadline) break;
    locked.fill(0);
    st.computeGains();
    const passStart = objective();
    let bestObj = passStart;
    let bestFeasible = st.violation() === 0;
    let bestMark = st.mark();
    let sinceBest = 0;
    for (let step = 0; step < E && sinceBest < stall; step++) {
      if ((step & 7) === 7 && opts.deadline !== undefined && Date.now() > opts.deadline) break;
      mv.n = 0;
      topN.fill(0);
      dropN.fill(0);
      addN.fill(0);
      for (let e = 0; e < E; e++) {
        if (locked[e]) continue;
        const many = st.holders[e] > 1;
        let dropBest = Infinity;
        let dropAt = -1;
        for (let a = 0; a < N; a++) {
          if (!st.has[e * N + a]) {
            keepBest(addE, addG, addN, a, T, e, st.addGain[e * N + a]);
            continue;
          }
          const off = (e * N + a) * N;
          let dropHere = Infinity;
          if (many) for (let b = 0; b < N; b++) if (b !== a && st.has[e * N + b] && rel[off + b] < dropHere) dropHere = rel[off + b];
          if (dropHere < Infinity) keepBest(dropE, dropG, dropN, a, T, e, dropHere);
          for (let b = 0; b < N; b++) {
            if (b === a) continue;
            if (st.has[e * N + b]) {
              // a's sources served by b instead: the estimate of dropping e from a.
              if (many && rel[off + b] < dropBest) {
                dropBest = rel[off + b];
                dropAt = a;
              }
              continue;
            }
            if (st.slotsUsed[b] < cap) mv.push(RELOCATE, e, a, -1, b, rel[off + b]);
            // Keep the T best a -> b relocations for swaps.
            keepBest(topE, topG, topN, a * N + b, T, e, rel[off + b]);
          }
        }
        if (dropAt >= 0) mv.push(DROP, e, dropAt, -1, -1, dropBest);
        for (let b = 0; b < N; b++) if (!st.has[e * N + b] && st.slotsUsed[b] < cap) mv.push(ADD, e, -1, -1, b, st.addGain[e * N + b]);
      }
      for (let a = 0; a < N; a++) {
        for (let b = a + 1; b < N; b++) {
          const ab = a * N + b;
          const ba = b * N + a;
          for (let x = 0; x < topN[ab]; x++) {
            for (let y = 0; y < topN[ba]; y++) {
              const e = topE[ab * T + x];
              const f = topE[ba * T + y];
              if (e !== f) mv.push(SWAP, e, a, f, b, topG[ab * T + x] + topG[ba * T + y]);
            }
          }
        }
      }
      // Cycles e: a -> b, f: b -> c, g: c -> a over every triple of nodes, both directions (they
      // keep every node's slot count, so they apply where full nodes and caps block swaps); their
      // number grows as N^3, so only up to CYCLE_MAX_NODES nodes.
      for (let a = 0; a < (N <= CYCLE_MAX_NODES ? N : 0); a++) {
        for (let b = a + 1; b < N; b++) {
          for (let c = b + 1; c < N; c++) {
            pushCycles(mv, topE, topG, topN, T, N, a, b, c);
            pushCycles(mv, topE, topG, topN, T, N, a, c, b);
          }
        }
      }
      for (let a = 0; a < N; a++) {
        for (let x = 0; x < dropN[a]; x++) {
          for (let y = 0; y < addN[a]; y++) {
            const e = dropE[a * T + x];
            const f = addE[a * T + y];
            if (e !== f) mv.push(REPLACE, e, a, f, a, dropG[a * T + x] + addG[a * T + y]);
          }
        }
      }
      if (mv.n === 0) break;
      // The shortlist (the best estimates) is scored exactly.
      const before = objective();
      let choice = -1;
      let choiceObj = Infinity;
      for (let x = 0; x < mv.n; x++) {
        const mark = st.mark();
        apply(st, mv, x);
        const o = objective();
        evaluations++;
        st.rollback(mark);
        if (o < choiceObj - 1e-9 * Math.abs(before)) {
          choiceObj = o;
          choice = x;
        }
      }
      if (choice < 0) break;
      st.trackGains = true;
      apply(st, mv, choice);
      st.trackGains = false;
      moves++;
      locked[mv.e[choice]] = 1;
      if (mv.kind[choice] === SWAP || mv.kind[choice] === REPLACE || mv.kind[choice] === CYCLE) locked[mv.f[choice]] = 1;
      if (mv.kind[choice] === CYCLE) locked[mv.g[choice]] = 1;
      const feasible = st.violation() === 0;
      const obj = objective();
      if ((feasible && !bestFeasible) || ((feasible || !bestFeasible) && obj < bestObj - 1e-9 * Math.abs(bestObj))) {
        bestObj = obj;
        bestFeasible = feasible;
        bestMark = st.mark();
        sinceBest = 0;
      } else sinceBest++;
    }
    st.rollback(bestMark);
    st.commit();
    if (!(bestObj < passStart - 1e-9 * Math.abs(passStart))) {
      pass++;
      break;
    }
  }
  return { passes: pass, moves, evaluations, startCost, bestCost: st.cost };
}
