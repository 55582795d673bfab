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

/** Exponent of the smooth max the moves lower (pow32 computes x^NORM_P). */
const NORM_P = 32;

/** x^32 by five squarings (Math.pow is the hot spot of move scoring otherwise). */
function pow32(x: number): number {
  const x2 = x * x;
  const x4 = x2 * x2;
  const x8 = x4 * x4;
  const x16 = x8 * x8;
  return x16 * x16;
}
/** Spare slots (least loaded replicas of replicated experts) a chain move may free. */
const CHAIN_SPARES = 8;
/** Copies a free move is ranked as costing (so free moves rank first, by their reduction). */
const FREE_COPY = 0.25;

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
  kind: 0 | 1 | 2 | 3; // none, one slot rewritten (replace or add), swap, chain
  slot: number;
  expert: number;
  slot2: number;
  copies: number;
  /** Smooth-max reduction per copy (per FREE_COPY for moves that add none). */
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
  // Every step lowers a layer's smooth max; free moves (rewriting slots that already took a
  // copy) are cut at about one per copy, which bounds the time.
  for (let step = 0, maxSteps = 2 * budget + 4 * L; step < maxSteps; step++) {
    let pick = -1;
    let pickGain = 0;
    let whole = false;
    for (let l = 0; l < L; l++) {
      const st = states[l];
      // A best move the budget left cannot pay: look again among those it can (free ones too).
      if (st.best.kind !== 0 && st.best.copies > budget - total) st.best = bestMove(st, shape, E, budget - total);
      const b = st.best;
      // Balancedness (mean / max) gains by mean * drop / max^2: weigh drops by 1 / max^2.
      const weight = st.norm > 0 ? 1 / (st.norm * st.norm) : 0;
      if (b.kind !== 0 && b.gain * weight > pickGain) {
        pick = l;
        pickGain = b.gain * weight;
        whole = false;
      }
      const t = adopt[l];
      const extra = t ? t.spent - st.spent : 0;
      if (t && extra <= budget - total && st.norm > t.norm) {
        const gain = (st.norm - t.norm) / Math.max(1, extra) / (st.norm * st.norm);
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
      settle(st, shape, E); // its best move is checked against the budget left when next looked at
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
function settle(st: LayerState, shape: Shape, E: number, left = Infinity): void {
  roundShares(st, shape.numGpus, E);
  recomputeLoads(st, shape);
  balanceShares(st, shape, E);
  st.spent = copiesBetween(st.orig, st.row, shape.slotsPerGpu);
  st.norm = smoothMax(st.load);
  st.best = bestMove(st, shape, E, left);
}

/** The p-norm of the loads (p = NORM_P). */
function smoothMax(load: Float64Array): number {
  let max = 0;
  for (const v of load) if (v > max) max = v;
  if (max <= 0) return 0;
  let sum = 0;
  for (const v of load) sum += pow32(v / max);
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
        const gain = pow32(a0) + pow32(b0) - pow32(a1) - pow32(b1);
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
  if (c.kind === 3) {
    // The singleton at c.slot moves (with its share) onto the spare c.slot2, then c.slot takes a.
    const moved = row[c.slot];
    const sh = share[c.slot];
    rewrite(st, c.slot2, moved, NG);
    cnt[moved]--; // rewrite counted it as a new replica; it is the same one, moved
    share[c.slot2] = sh;
    row[c.slot] = -1;
    share[c.slot] = 0;
    rewrite(st, c.slot, c.expert, NG);
    return;
  }
  if (c.kind === 2) {
    const a = row[c.slot];
    row[c.slot] = row[c.slot2];
    row[c.slot2] = a;
    const s = share[c.slot];
    share[c.slot] = share[c.slot2];
    share[c.slot2] = s;
    return;
  }
  rewrite(st, c.slot, c.expert, NG);
}

/** Slot `slot` gets a new replica of b: its old expert's share goes to that expert's other replicas. */
function rewrite(st: LayerState, slot: number, b: number, NG: number): void {
  const { row, share, cnt } = st;
  const old = row[slot];
  if (old >= 0) {
    // Its sources go to the other replicas in proportion (evenly when those serve none).
    const freed = share[slot];
    let rest = 0;
    for (let p = 0; p < row.length; p++) if (row[p] === old && p !== slot) rest += share[p];
    for (let p = 0; p < row.length; p++) {
      if (row[p] !== old || p === slot) continue;
      share[p] += rest > 0 ? (freed * share[p]) / rest : freed / (cnt[old] - 1);
    }
    cnt[old]--;
  }
  const r = cnt[b];
  for (let p = 0; p < row.length; p++) if (row[p] === b) share[p] *= r / (r + 1);
  row[slot] = b;
  share[slot] = NG / (r + 1);
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
  spare: Int32Array;
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
      spare: new Int32Array(CHAIN_SPARES),
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

/**
 * The best move of a layer's current state costing at most `left` copies more than it does now
 * (rewriting a slot that already took a copy costs none), or NONE when no such move lowers its
 * smooth max. Moves are ranked by smooth-max reduction per copy, free ones first.
 */
function bestMove(st: LayerState, shape: Shape, E: number, left: number): Candidate {
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
  for (let g = 0; g < NG; g++) base += pow32(load[g] / curMax);
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
  const spare = sc.spare;
  const nSpare = spareSlots(st, spare, top, S, NG);
  let best: Candidate = NONE;
  const { orig } = st;
  // Copies slot p costs holding e: none when its GPU held e in the running plan.
  const cost = (p: number, e: number): number => {
    if (e < 0 || orig[p] === e) return 0;
    const g0 = Math.floor(p / S) * S;
    for (let i = g0; i < g0 + S; i++) if (orig[i] === e) return 0;
    return 1;
  };
  const score = (kind: 1 | 2 | 3, slot: number, expert: number, slot2: number): void => {
    // Copies this move adds to the layer's count.
    let copies: number;
    if (kind === 1) copies = cost(slot, expert) - cost(slot, row[slot]);
    else if (kind === 2) copies = cost(slot, row[slot2]) + cost(slot2, row[slot]) - cost(slot, row[slot]) - cost(slot2, row[slot2]);
    else copies = cost(slot2, row[slot]) + cost(slot, expert) - cost(slot2, row[slot2]) - cost(slot, row[slot]);
    if (copies > left) return;
    let sum = base;
    let newMax = 0;
    for (let i = 0; i < n; i++) {
      const g = sc.touched[i];
      const v = load[g] + sc.delta[g];
      if (v > newMax) newMax = v;
      sum += pow32(v / curMax) - pow32(load[g] / curMax);
    }
    if (newMax > curMax * (1 + 1e-12)) return; // never raise the max
    const drop = curNorm - curMax * Math.max(sum, 0) ** (1 / NORM_P);
    if (drop <= 1e-9 * curMax) return;
    const gain = drop / Math.max(copies, FREE_COPY);
    if (gain > best.gain) best = { kind, slot, expert, slot2, copies, gain };
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
        score(1, sTop, b, -1);
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
        score(1, p, a, -1);
      }
      if (c >= 0 && !onGpu(top, c)) {
        sc.epoch++;
        n = 0;
        const d = (w[c] * share[p] - w[a] * share[sTop]) / NG;
        bump(top, d);
        bump(h, -d);
        score(2, sTop, -1, p);
      }
    }
  }
  // Chain moves: on a GPU below the mean load, a singleton c makes room for a new replica of an
  // expert a of the top GPU by moving onto a spare slot q (2 copies).
  let mean = 0;
  for (let g = 0; g < NG; g++) mean += load[g] / NG;
  for (let i = 0; i < S; i++) {
    const a = row[top * S + i];
    if (a < 0) continue;
    for (let p = 0; p < P; p++) {
      const h = Math.floor(p / S);
      const c = row[p];
      if (h === top || load[h] >= mean || c < 0 || cnt[c] !== 1 || onGpu(h, a)) continue;
      for (let j = 0; j < nSpare; j++) {
        const q = spare[j];
        const h3 = Math.floor(q / S);
        if (q === p || h3 === top || row[q] === a || onGpu(h3, c)) continue;
        sc.epoch++;
        n = 0;
        removeReplica(row[q], q);
        bump(h3, (w[c] * share[p]) / NG);
        bump(h, (-w[c] * share[p]) / NG);
        addReplica(a, h);
        score(3, p, a, q);
      }
    }
  }
  return best;
}

/** Spare slots: the CHAIN_SPARES replicas of multi-replica experts carrying the least load. */
function spareSlots(st: LayerState, out: Int32Array, top: number, S: number, NG: number): number {
  let n = 0;
  const { row, cnt, w, share } = st;
  const cost = (p: number): number => (w[row[p]] * share[p]) / NG;
  for (let p = 0; p < row.length; p++) {
    const e = row[p];
    if (e < 0 || cnt[e] < 2 || Math.floor(p / S) === top) continue;
    // keep the CHAIN_SPARES cheapest (insertion into a short sorted list)
    let i = Math.min(n, CHAIN_SPARES - 1);
    if (n === CHAIN_SPARES && cost(p) >= cost(out[i])) continue;
    if (n < CHAIN_SPARES) n++;
    while (i > 0 && cost(out[i - 1]) > cost(p)) {
      out[i] = out[i - 1];
      i--;
    }
    out[i] = p;
  }
  return n;
}
