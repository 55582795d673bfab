/**
 * Rebalancing under a move budget: start from the running placement and spend at most B expert
 * copies, across all layers, where they lower the max GPU load most.
 *
 * Load model: the NG source GPUs of an expert are shared out over its replicas (the dispatch
 * table); replica p serves share[p] of them, so GPU g carries sum over its slots of
 * w[e] * share[p] / NG. Changing shares moves no weights, so every layer first gets the shares
 * that balance it (`balanceShares`: one source at a time from a replica on the most loaded GPU to
 * another replica of the same expert). Copies then go where shares alone cannot help. Only a move
 * that touches the most loaded GPU g* can lower a layer's max load, so each step looks at
 * - replace: a slot of g* gets another expert b (its expert a keeps r[a] - 1 >= 1 replicas), 1 copy;
 * - add: a slot elsewhere gets another replica of an expert x of g* (its expert keeps >= 1), 1 copy;
 * - swap: an expert of g* trades places with one elsewhere (each keeps its share), 2 copies;
 * A removed replica's share goes to the expert's other replicas in proportion; a new replica takes
 * an even 1/(r+1) of its expert's sources from the others in proportion. Each candidate is scored
 * exactly by the p-norm of the GPU loads (p = 32: the max load, smoothed so that ties at the max
 * still show a gain; a move never raises the max), then shares are balanced again. Layers compete
 * for the budget by that reduction per copy, in load units, so copies go to the layers where they
 * pay most. No GPU gets two replicas of one expert. Deterministic; no randomness.
 */
import { dispatchOf } from '../placement.js';
import type { Placement, Shape } from '../types.js';

/** Exponent of the smooth max the moves lower. */
const NORM_P = 32;

interface LayerState {
  /** The running placement's layer (copies are counted against it). */
  orig: Int32Array;
  row: Int32Array;
  /** Copies from `orig` to `row`. */
  spent: number;
  /** Smooth max of `load`. */
  norm: number;
  w: Float64Array;
  cnt: Int32Array;
  /** [P] sources served by each slot's replica (whole numbers after `balanceShares`). */
  share: Float64Array;
  load: Float64Array;
  /** Best move found for the layer's current state (kind 0 = none). */
  best: Candidate;
}

interface Candidate {
  kind: 0 | 1 | 2; // none, one slot rewritten (replace or add), swap
  slot: number;
  expert: number;
  slot2: number;
  copies: number;
  /** Smooth-max reduction per copy. */
  gain: number;
}

const NONE: Candidate = { kind: 0, slot: -1, expert: -1, slot2: -1, copies: 0, gain: 0 };

export interface BudgetResult {
  placement: Placement;
  /** [L] of [P]: sources each slot's replica serves (sum NG per expert); feed `dispatchOfShares`. */
  shares: Int32Array[];
  /** Copies spent (the moves of going from the start to the result). */
  copies: number;
}

/**
 * `start` rebalanced for per-layer expert loads `loads` ([L] of [E]) with at most `budget` expert
 * copies, with the shares of sources per replica that balance it. With `target` (a re-plan aligned
 * with `start`, `alignPlacement`), adopting a target layer whole is one more move, costing the
 * copies from the running layer to it: copies go there when that pays more per copy.
 */
export function rebalanceWithBudget(start: Placement, loads: Float64Array[], budget: number, target?: Placement): BudgetResult {
  const { shape, numExperts: E, numLayers: L } = start;
  const states: LayerState[] = [];
  const adopt: (LayerState | null)[] = [];
  for (let l = 0; l < L; l++) {
    states.push(layerState(start.phy2log[l], start.phy2log[l].slice(), null, loads[l], shape, E));
    adopt.push(target ? layerState(start.phy2log[l], target.phy2log[l].slice(), target, loads[l], shape, E, l) : null);
  }
  let total = 0;
  for (;;) {
    let pick = -1;
    let pickGain = 0;
    let whole = false;
    for (let l = 0; l < L; l++) {
      const st = states[l];
      const b = st.best;
      if (b.kind !== 0 && b.copies <= budget - total && b.gain > pickGain) {
        pick = l;
        pickGain = b.gain;
        whole = false;
      }
      const t = adopt[l];
      const extra = t ? t.spent - st.spent : 0;
      if (t && extra <= budget - total && st.norm > t.norm) {
        const gain = (st.norm - t.norm) / Math.max(1, extra);
        if (gain > pickGain) {
          pick = l;
          pickGain = gain;
          whole = true;
        }
      }
    }
    if (pick < 0) break;
    const st = states[pick];
    total -= st.spent;
    if (whole) {
      states[pick] = adopt[pick]!;
      adopt[pick] = null;
    } else {
      applyMove(st, st.best, shape);
      settle(st, shape, E);
    }
    total += states[pick].spent;
  }
  return {
    placement: { ...start, phy2log: states.map((s) => s.row), dispatch: null },
    shares: states.map((s) => Int32Array.from(s.share, Math.round)),
    copies: total,
  };
}

/** A layer's state for `row` (shares from `from`'s dispatch of layer l, else even), settled. */
function layerState(orig: Int32Array, row: Int32Array, from: Placement | null, w: Float64Array, shape: Shape, E: number, l = 0): LayerState {
  const NG = shape.numGpus;
  const cnt = new Int32Array(E);
  for (const e of row) if (e >= 0) cnt[e]++;
  const share = new Float64Array(row.length);
  if (from) {
    const d = dispatchOf(from, l);
    for (let i = 0; i < d.length; i++) if (d[i] >= 0) share[d[i]]++;
  } else for (let p = 0; p < row.length; p++) if (row[p] >= 0) share[p] = NG / cnt[row[p]];
  const st: LayerState = { orig, row, spent: 0, norm: 0, w, cnt, share, load: new Float64Array(NG), best: NONE };
  settle(st, shape, E);
  return st;
}

/** Copies from `orig` to `row`: slots whose expert their GPU did not hold. */
function copiesBetween(orig: Int32Array, row: Int32Array, S: number): number {
  let n = 0;
  for (let p = 0; p < row.length; p++) {
    const e = row[p];
    if (e < 0 || orig[p] === e) continue;
    const g0 = Math.floor(p / S) * S;
    let held = false;
    for (let i = g0; i < g0 + S && !held; i++) held = orig[i] === e;
    if (!held) n++;
  }
  return n;
}

/** Whole shares, balanced; the layer's copies, smooth max and next best move. */
function settle(st: LayerState, shape: Shape, E: number): void {
  roundShares(st, shape.numGpus, E);
  recomputeLoads(st, shape);
  balanceShares(st, shape, E);
  st.spent = copiesBetween(st.orig, st.row, shape.slotsPerGpu);
  st.norm = smoothMax(st.load);
  st.best = bestMove(st, shape, E);
}

/** The p-norm of the loads (p = NORM_P). */
function smoothMax(load: Float64Array): number {
  let max = 0;
  for (const v of load) if (v > max) max = v;
  if (max <= 0) return 0;
  let sum = 0;
  for (const v of load) sum += (v / max) ** NORM_P;
  return max * sum ** (1 / NORM_P);
}

function recomputeLoads(st: LayerState, shape: Shape): void {
  const S = shape.slotsPerGpu;
  const NG = shape.numGpus;
  st.load.fill(0);
  for (let p = 0; p < st.row.length; p++) {
    const e = st.row[p];
    if (e >= 0) st.load[Math.floor(p / S)] += (st.w[e] * st.share[p]) / NG;
  }
}

/** Shares to whole numbers summing to NG per expert (largest remainders, lowest slot first on ties). */
function roundShares(st: LayerState, NG: number, E: number): void {
  const { row, share } = st;
  const sc = scratchFor(NG, E, row.length);
  fillIndex(sc, row, E);
  for (let e = 0; e < E; e++) {
    const a = sc.start[e];
    const b = sc.start[e + 1];
    let total = 0;
    for (let i = a; i < b; i++) {
      const p = sc.slots[i];
      const f = Math.floor(share[p] + 1e-9);
      total += f;
      sc.frac[p] = share[p] - f;
      share[p] = f;
    }
    for (let left = NG - total; left > 0; left--) {
      let pick = -1;
      for (let i = a; i < b; i++) if (pick < 0 || sc.frac[sc.slots[i]] > sc.frac[pick]) pick = sc.slots[i];
      share[pick]++;
      sc.frac[pick] = -1;
    }
  }
}

/**
 * Move sources one at a time from a replica on the most loaded GPU to another replica of the
 * same expert while that lowers the smooth max (no weights move).
 */
function balanceShares(st: LayerState, shape: Shape, E: number): void {
  const { slotsPerGpu: S, numGpus: NG } = shape;
  const { row, share, load, w } = st;
  const sc = scratchFor(NG, E, row.length);
  fillIndex(sc, row, E);
  for (let iter = 0; iter < 64 * NG; iter++) {
    let top = 0;
    for (let g = 1; g < NG; g++) if (load[g] > load[top]) top = g;
    const curMax = load[top];
    if (curMax <= 0) return;
    let bestGain = 0;
    let from = -1;
    let to = -1;
    for (let i = 0; i < S; i++) {
      const p = top * S + i;
      const e = row[p];
      if (e < 0 || share[p] < 1) continue;
      const d = w[e] / NG;
      for (let j = sc.start[e]; j < sc.start[e + 1]; j++) {
        const q = sc.slots[j];
        const h = Math.floor(q / S);
        if (h === top) continue;
        // Smooth-max change of the two GPUs (relative to curMax).
        const a0 = load[top] / curMax;
        const a1 = (load[top] - d) / curMax;
        const b0 = load[h] / curMax;
        const b1 = (load[h] + d) / curMax;
        if (b1 > 1 + 1e-12) continue;
        const gain = a0 ** NORM_P + b0 ** NORM_P - a1 ** NORM_P - b1 ** NORM_P;
        if (gain > bestGain + 1e-12) {
          bestGain = gain;
          from = p;
          to = q;
        }
      }
    }
    if (from < 0) return;
    const d = w[row[from]] / NG;
    share[from]--;
    share[to]++;
    load[top] -= d;
    load[Math.floor(to / S)] += d;
  }
}

function applyMove(st: LayerState, c: Candidate, shape: Shape): void {
  const { row, share, cnt } = st;
  const NG = shape.numGpus;
  if (c.kind === 2) {
    const a = row[c.slot];
    row[c.slot] = row[c.slot2];
    row[c.slot2] = a;
    const s = share[c.slot];
    share[c.slot] = share[c.slot2];
    share[c.slot2] = s;
    return;
  }
  const old = row[c.slot];
  if (old >= 0) {
    // Its sources go to the other replicas in proportion (evenly when those serve none).
    const freed = share[c.slot];
    let rest = 0;
    for (let p = 0; p < row.length; p++) if (row[p] === old && p !== c.slot) rest += share[p];
    for (let p = 0; p < row.length; p++) {
      if (row[p] !== old || p === c.slot) continue;
      share[p] += rest > 0 ? (freed * share[p]) / rest : freed / (cnt[old] - 1);
    }
    cnt[old]--;
  }
  const b = c.expert;
  const r = cnt[b];
  for (let p = 0; p < row.length; p++) if (row[p] === b) share[p] *= r / (r + 1);
  row[c.slot] = b;
  share[c.slot] = NG / (r + 1);
  cnt[b]++;
}

/** Scratch of the move scoring (one layer at a time). */
interface Scratch {
  touched: Int32Array;
  delta: Float64Array;
  stamp: Int32Array;
  epoch: number;
  order: Int32Array;
  /** Slots of each expert, CSR: slots[start[e] .. start[e+1]). */
  start: Int32Array;
  slots: Int32Array;
  cursor: Int32Array;
  frac: Float64Array;
}
let scratch: Scratch | undefined;

function scratchFor(NG: number, E: number, P: number): Scratch {
  if (!scratch || scratch.stamp.length < NG || scratch.start.length < E + 1 || scratch.slots.length < P) {
    scratch = {
      touched: new Int32Array(NG),
      delta: new Float64Array(NG),
      stamp: new Int32Array(NG),
      epoch: 0,
      order: new Int32Array(NG),
      start: new Int32Array(E + 1),
      slots: new Int32Array(P),
      cursor: new Int32Array(E),
      frac: new Float64Array(P),
    };
  }
  return scratch;
}

function fillIndex(sc: Scratch, row: Int32Array, E: number): void {
  const { start, slots, cursor } = sc;
  start.fill(0, 0, E + 1);
  for (let p = 0; p < row.length; p++) if (row[p] >= 0) start[row[p] + 1]++;
  for (let e = 0; e < E; e++) start[e + 1] += start[e];
  cursor.set(start.subarray(0, E));
  for (let p = 0; p < row.length; p++) if (row[p] >= 0) slots[cursor[row[p]]++] = p;
}

/** The best move of a layer's current state, or NONE when no move lowers its smooth max. */
function bestMove(st: LayerState, shape: Shape, E: number): Candidate {
  const { slotsPerGpu: S, numGpus: NG } = shape;
  const P = st.row.length;
  const { load, row, cnt, w, share } = st;
  const sc = scratchFor(NG, E, P);
  fillIndex(sc, row, E);
  const { start, slots } = sc;
  let top = 0;
  for (let g = 1; g < NG; g++) if (load[g] > load[top]) top = g;
  const curMax = load[top];
  if (curMax <= 0) return NONE;
  // Smooth max: the p-norm of the loads (in load units; ties at the max still show a gain).
  let base = 0;
  for (let g = 0; g < NG; g++) base += (load[g] / curMax) ** NORM_P;
  const curNorm = curMax * base ** (1 / NORM_P);
  let n = 0; // touched GPUs of the candidate
  const bump = (g: number, d: number): void => {
    if (sc.stamp[g] !== sc.epoch) {
      sc.stamp[g] = sc.epoch;
      sc.delta[g] = 0;
      sc.touched[n++] = g;
    }
    sc.delta[g] += d;
  };
  // Replica at `slot` of e removed: its share goes to e's other replicas in proportion.
  const removeReplica = (e: number, slot: number): void => {
    const freed = share[slot];
    bump(Math.floor(slot / S), (-w[e] * freed) / NG);
    let rest = 0;
    for (let i = start[e]; i < start[e + 1]; i++) if (slots[i] !== slot) rest += share[slots[i]];
    for (let i = start[e]; i < start[e + 1]; i++) {
      const q = slots[i];
      if (q === slot) continue;
      const add = rest > 0 ? (freed * share[q]) / rest : freed / (cnt[e] - 1);
      bump(Math.floor(q / S), (w[e] * add) / NG);
    }
  };
  // A new replica of e at GPU g takes 1/(r+1) of e's sources from the others in proportion.
  const addReplica = (e: number, g: number): void => {
    const r = cnt[e];
    bump(g, w[e] / (r + 1));
    for (let i = start[e]; i < start[e + 1]; i++) bump(Math.floor(slots[i] / S), (-w[e] * share[slots[i]]) / (NG * (r + 1)));
  };
  const onGpu = (g: number, e: number): boolean => {
    for (let i = 0; i < S; i++) if (row[g * S + i] === e) return true;
    return false;
  };
  let best: Candidate = NONE;
  const score = (kind: 1 | 2, slot: number, expert: number, slot2: number, copies: number): void => {
    let sum = base;
    let newMax = 0;
    for (let i = 0; i < n; i++) {
      const g = sc.touched[i];
      const v = load[g] + sc.delta[g];
      if (v > newMax) newMax = v;
      sum += (v / curMax) ** NORM_P - (load[g] / curMax) ** NORM_P;
    }
    if (newMax > curMax * (1 + 1e-12)) return; // never raise the max
    const gain = (curNorm - curMax * Math.max(sum, 0) ** (1 / NORM_P)) / copies;
    if (gain > 1e-9 * curMax && gain > best.gain) best = { kind, slot, expert, slot2, copies, gain };
  };
  for (let i = 0; i < S; i++) {
    const sTop = top * S + i;
    const a = row[sTop];
    if (a < 0) continue;
    // replace a on the top GPU by b
    if (cnt[a] >= 2) {
      for (let b = 0; b < E; b++) {
        if (b === a || onGpu(top, b)) continue;
        sc.epoch++;
        n = 0;
        removeReplica(a, sTop);
        addReplica(b, top);
        score(1, sTop, b, -1, 1);
      }
    }
    // add a replica of a elsewhere, or swap a with an expert elsewhere
    for (let p = 0; p < P; p++) {
      const h = Math.floor(p / S);
      if (h === top) continue;
      const c = row[p];
      if (c === a || onGpu(h, a)) continue;
      if (c < 0 || cnt[c] >= 2) {
        sc.epoch++;
        n = 0;
        if (c >= 0) removeReplica(c, p);
        addReplica(a, h);
        score(1, p, a, -1, 1);
      }
      if (c >= 0 && !onGpu(top, c)) {
        sc.epoch++;
        n = 0;
        const d = (w[c] * share[p] - w[a] * share[sTop]) / NG;
        bump(top, d);
        bump(h, -d);
        score(2, sTop, -1, p, 2);
      }
    }
  }
  return best;
}
