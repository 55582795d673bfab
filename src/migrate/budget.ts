/**
 * Rebalancing under a move budget: start from the running placement and spend at most B expert
 * copies, across all layers, where they raise balancedness most.
 *
 * Load model: the NG source GPUs of an expert are shared out over its replicas (the dispatch
 * table); replica p serves share[p] of them, so GPU g carries sum over its slots of
 * w[e] * share[p] / NG. Changing shares moves no weights, so every state gets the shares that
 * balance it (`balanceShares`: one source at a time from a replica on the most loaded GPU to
 * another replica of the same expert). Copies then go where shares alone cannot help. Only a move
 * that touches the most loaded GPU g* can lower a layer's max load, so each step looks at
 * - replace: a slot of g* gets another expert b (its expert a keeps r[a] - 1 >= 1 replicas), 1 copy;
 * - add: a slot elsewhere gets another replica of an expert x of g* (its expert keeps >= 1), 1 copy;
 * - swap: an expert of g* trades places with one elsewhere (each keeps its share), 2 copies;
 * - chain: a singleton on a light GPU moves onto a spare slot to make room for a new replica of
 *   an expert of g*, 2 copies;
 * - compound (one or two slots per GPU): one of the moves above that takes g* below the max but
 *   pushes another GPU h above it, followed by the best move of h (two swaps sharing h are a
 *   3-cycle, 3 copies). With a GPU's load set by a pair, single moves stall on plateaus of GPUs at
 *   the max: each fix of one needs a second move elsewhere.
 * A removed replica's share goes to the expert's other replicas in proportion; a new replica takes
 * an even 1/(r+1) of its expert's sources from the others in proportion. Each candidate is scored
 * exactly by the p-norm of the GPU loads (p = 32: the max load, smoothed so that ties at the max
 * still show a gain; a move never raises the max), then shares are balanced again.
 *
 * Every layer walks its own path of best moves (smooth-max reduction per copy, counted exactly
 * against the running layer: rewriting a slot that already took a copy is free) from the running
 * layer, up to a cap of copies; each copy count keeps its best state. Adopting the aligned re-plan's
 * layer whole is one more state. A multiple-choice knapsack over layers (dynamic programming over
 * copies) then picks one state per layer maximising the sum of mean / smooth max (balancedness,
 * smoothed: the near-max GPUs are the ones the next window's drift makes the max) within the
 * budget. A larger budget only adds states, so that sum never falls as the budget grows. No GPU
 * gets two replicas of one expert. Deterministic; no randomness.
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
/** First steps of compound moves followed up per scan (layers of at most two slots per GPU). */
const COMPOUND_FIRSTS = 8;
/** A layer's path stops at CAP_FACTOR times the mean budget per layer (at least MIN_CAP). */
const CAP_FACTOR = 3;
const MIN_CAP = 16;

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
}

interface Candidate {
  kind: 0 | 1 | 2 | 3; // none, one slot rewritten (replace or add), swap, chain
  slot: number;
  expert: number;
  slot2: number;
  copies: number;
  /** Smooth-max reduction per copy of the whole move (per FREE_COPY for moves that add none). */
  gain: number;
  /** A compound move's second step (scored on the state after this one). */
  next: Candidate | null;
  /** Smooth max the move leads to (shares as the move leaves them, before they are balanced). */
  norm: number;
}

const NONE: Candidate = { kind: 0, slot: -1, expert: -1, slot2: -1, copies: 0, gain: 0, next: null, norm: 0 };

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
 * with `start`, `alignPlacement`), adopting a target layer whole is one more choice per layer,
 * costing the copies from the running layer to it.
 */
export function rebalanceWithBudget(start: Placement, loads: Float64Array[], budget: number, target?: Placement): BudgetResult {
  const { shape, numExperts: E, numLayers: L } = start;
  const B = Math.max(0, Math.min(Math.floor(budget), L * shape.numSlots));
  const cap = Math.min(B, Math.max(MIN_CAP, Math.ceil((CAP_FACTOR * B) / Math.max(1, L))));
  const options: Option[][] = [];
  for (let l = 0; l < L; l++) {
    const opts = layerOptions(layerState(start.phy2log[l], start.phy2log[l].slice(), null, loads[l], shape, E), shape, E, cap);
    if (target) {
      const t = layerState(start.phy2log[l], target.phy2log[l].slice(), target, loads[l], shape, E, l);
      const v = layerValue(t);
      // Kept unless a state of the path is as good for no more copies.
      if (t.spent <= B && opts.every((o) => o.copies > t.spent || o.value < v)) opts.push(optionOf(t, v, t.row));
    }
    options.push(opts);
  }
  const pick = knapsack(options, B);
  const phy2log: Int32Array[] = [];
  const shares: Int32Array[] = [];
  let copies = 0;
  for (let l = 0; l < L; l++) {
    const o = options[l][pick[l]];
    phy2log.push(o.row);
    shares.push(o.share);
    copies += o.copies;
  }
  return { placement: { ...start, phy2log, dispatch: null }, shares, copies };
}

/** A state a layer may end in: copies from the running layer, value (`layerValue`), row and whole shares. */
interface Option {
  copies: number;
  value: number;
  row: Int32Array;
  share: Int32Array;
}

function optionOf(st: LayerState, value: number, row: Int32Array): Option {
  return { copies: st.spent, value, row, share: Int32Array.from(st.share, Math.round) };
}

/** Balancedness on the smooth max: mean load / p-norm of the loads (1 for an idle layer). */
function layerValue(st: LayerState): number {
  if (st.norm <= 0) return 1;
  let sum = 0;
  for (const v of st.load) sum += v;
  return sum / st.load.length / st.norm;
}

/**
 * The layer's path of best moves from its state, cut at `cap` copies: the best state of each copy
 * count that beats every cheaper one (ascending copies and value). The path does not depend on the
 * budget, only where it is cut, so a larger cap only adds states.
 */
function layerOptions(st: LayerState, shape: Shape, E: number, cap: number): Option[] {
  const opts: Option[] = [optionOf(st, layerValue(st), st.row.slice())];
  for (let step = 0, maxSteps = 4 * cap + 8; step < maxSteps; step++) {
    const c = bestMove(st, shape, E);
    if (c.kind === 0) break;
    const before = st.norm;
    applyMove(st, c, shape);
    settle(st, shape, E);
    // Whole shares may undo a gain scored on fractional ones: the path ends there.
    if (!(st.norm < before * (1 - 1e-12)) || st.spent > cap) break;
    const v = layerValue(st);
    const last = opts[opts.length - 1];
    if (v <= last.value) continue;
    if (last.copies === st.spent) opts[opts.length - 1] = optionOf(st, v, st.row.slice());
    else opts.push(optionOf(st, v, st.row.slice()));
  }
  return opts;
}

/**
 * Multiple-choice knapsack: one option per layer, total copies <= B, the largest sum of values.
 * [L] index of each layer's option (ties: the fewest copies, then the earlier option).
 */
function knapsack(options: Option[][], B: number): Int32Array {
  const L = options.length;
  let dp = new Float64Array(B + 1).fill(-Infinity);
  let next = new Float64Array(B + 1);
  dp[0] = 0;
  const choice: Int16Array[] = [];
  let reach = 0; // most copies a prefix of layers can spend
  for (let l = 0; l < L; l++) {
    const opts = options[l];
    const ch = new Int16Array(B + 1).fill(-1);
    next.fill(-Infinity);
    for (let x = 0; x <= reach; x++) {
      if (dp[x] === -Infinity) continue;
      for (let i = 0; i < opts.length; i++) {
        const y = x + opts[i].copies;
        if (y > B) break; // options ascend in copies
        const v = dp[x] + opts[i].value;
        if (v > next[y]) {
          next[y] = v;
          ch[y] = i;
        }
      }
    }
    reach = Math.min(B, reach + opts[opts.length - 1].copies);
    [dp, next] = [next, dp];
    choice.push(ch);
  }
  let y = 0;
  for (let x = 1; x <= B; x++) if (dp[x] > dp[y]) y = x;
  const pick = new Int32Array(L);
  for (let l = L - 1; l >= 0; l--) {
    pick[l] = choice[l][y];
    y -= options[l][pick[l]].copies;
  }
  return pick;
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
  const st: LayerState = { orig, row, spent: 0, norm: 0, w, cnt, share, load: new Float64Array(NG) };
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

/** Whole shares, balanced; the layer's copies and smooth max. */
function settle(st: LayerState, shape: Shape, E: number): void {
  roundShares(st, shape.numGpus, E);
  recomputeLoads(st, shape);
  balanceShares(st, shape, E);
  st.spent = copiesBetween(st.orig, st.row, shape.slotsPerGpu);
  st.norm = smoothMax(st.load);
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
  applyOne(st, c, shape);
  if (c.next) applyOne(st, c.next, shape);
}

function applyOne(st: LayerState, c: Candidate, shape: Shape): void {
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
 * The best move of a layer's current state (a compound one too, with at most two slots per GPU),
 * or NONE when no move lowers its smooth max without raising its max. Moves are ranked by
 * smooth-max reduction per copy, free ones first.
 */
function bestMove(st: LayerState, shape: Shape, E: number): Candidate {
  const n1 = shape.slotsPerGpu <= 2 ? COMPOUND_FIRSTS : 0;
  const buf = n1 > 0 ? firstBuffer(n1) : null;
  let best = scan(st, shape, E, -1, -1, 0, buf);
  if (!buf || buf.n === 0) return best;
  const cl = cloneFor(st);
  for (let i = 0; i < buf.n; i++) {
    const first = buf.items[i];
    cl.row.set(st.row);
    cl.share.set(st.share);
    cl.cnt.set(st.cnt);
    applyMove(cl, first, shape);
    recomputeLoads(cl, shape);
    // The follow-up fixes the GPU the first step pushed above the max (now the top of the clone),
    // and any other it pushed there.
    const second = scan(cl, shape, E, buf.refMax, buf.refNorm, first.copies, null);
    if (second.kind !== 0 && second.gain > best.gain) best = { ...first, copies: first.copies + second.copies, gain: second.gain, next: second, norm: second.norm };
  }
  return best;
}

/** First steps of compound moves: the `cap` with the smallest max after them, and the reference they lower. */
interface FirstBuffer {
  items: Candidate[];
  /** [cap] max load after each first step, ascending. */
  keys: Float64Array;
  n: number;
  cap: number;
  refMax: number;
  refNorm: number;
}
let firstBuf: FirstBuffer | undefined;
function firstBuffer(cap: number): FirstBuffer {
  if (!firstBuf || firstBuf.cap !== cap) firstBuf = { items: [], keys: new Float64Array(cap), n: 0, cap, refMax: 0, refNorm: 0 };
  firstBuf.n = 0;
  return firstBuf;
}
let clone: LayerState | undefined;
/** One scratch state of the layer's size (arrays overwritten by the caller), reading st's orig and w. */
function cloneFor(st: LayerState): LayerState {
  if (!clone || clone.row.length !== st.row.length || clone.cnt.length !== st.cnt.length || clone.load.length !== st.load.length) {
    clone = { ...st, row: st.row.slice(), share: st.share.slice(), cnt: st.cnt.slice(), load: st.load.slice() };
  }
  clone.orig = st.orig;
  clone.w = st.w;
  return clone;
}

/**
 * Moves of the most loaded GPU scored against a reference (refMax, refNorm; own when refMax < 0):
 * the best one that keeps the max <= refMax and lowers the smooth max below refNorm, its gain per
 * (offset + its copies). With `firsts`, also collects the moves that lower the top GPU below the
 * max but push another GPU above it (by the overshoot, smallest first): first steps of compounds.
 */
function scan(st: LayerState, shape: Shape, E: number, refMax0: number, refNorm0: number, offset: number, firsts: FirstBuffer | null): Candidate {
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
  const refMax = refMax0 < 0 ? curMax : refMax0;
  const refNorm = refMax0 < 0 ? curNorm : refNorm0;
  // The two next most loaded GPUs: the max of the GPUs a move leaves alone is one of them (a
  // follow-up must also leave none of them above refMax).
  let g2 = -1;
  let g3 = -1;
  for (let g = 0; g < NG; g++) {
    if (g === top) continue;
    if (g2 < 0 || load[g] > load[g2]) {
      g3 = g2;
      g2 = g;
    } else if (g3 < 0 || load[g] > load[g3]) g3 = g;
  }
  const l2 = g2 < 0 ? 0 : load[g2];
  const l3 = g3 < 0 ? 0 : load[g3];
  if (firsts) {
    firsts.refMax = refMax;
    firsts.refNorm = refNorm;
  }
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
  // A GPU at load v after a move rules it out: above the max, and no first step the buffer keeps.
  const lim = refMax * (1 + 1e-12);
  const hopeless = (v: number): boolean => v > lim && (!firsts || (firsts.n === firsts.cap && v >= firsts.keys[firsts.cap - 1]));
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
    let newMax = 0;
    let topNew = load[top];
    for (let i = 0; i < n; i++) {
      const g = sc.touched[i];
      const v = load[g] + sc.delta[g];
      if (v > newMax) newMax = v;
      if (g === top) topNew = v;
    }
    const rest = g2 >= 0 && sc.stamp[g2] === sc.epoch ? l3 : l2;
    if (rest > newMax) newMax = rest;
    const over = newMax > refMax * (1 + 1e-12);
    if (over && (!firsts || !(topNew < refMax * (1 - 1e-9)))) return;
    // Copies this move adds to the layer's count.
    let copies: number;
    if (kind === 1) copies = cost(slot, expert) - cost(slot, row[slot]);
    else if (kind === 2) copies = cost(slot, row[slot2]) + cost(slot2, row[slot]) - cost(slot, row[slot]) - cost(slot2, row[slot2]);
    else copies = cost(slot2, row[slot]) + cost(slot, expert) - cost(slot2, row[slot2]) - cost(slot, row[slot]);
    if (over) {
      // A first step: the top GPU drops below the max, one more move must fix the overshoot.
      pushFirst(firsts!, newMax, kind, slot, expert, slot2, copies);
      return;
    }
    let sum = base;
    for (let i = 0; i < n; i++) {
      const g = sc.touched[i];
      sum += pow32((load[g] + sc.delta[g]) / curMax) - pow32(load[g] / curMax);
    }
    const norm = curMax * Math.max(sum, 0) ** (1 / NORM_P);
    const drop = refNorm - norm;
    if (drop <= 1e-9 * curMax) return;
    const gain = drop / Math.max(offset + copies, FREE_COPY);
    if (gain > best.gain) best = { kind, slot, expert, slot2, copies, gain, next: null, norm };
  };
  for (let i = 0; i < S; i++) {
    const sTop = top * S + i;
    const a = row[sTop];
    if (a < 0) continue;
    // replace a on the top GPU by b
    if (cnt[a] >= 2) {
      const topBase = load[top] - (w[a] * share[sTop]) / NG;
      for (let b = 0; b < E; b++) {
        if (b === a || topBase + w[b] / (cnt[b] + 1) > lim || onGpu(top, b)) continue;
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
      if ((c < 0 || cnt[c] >= 2) && !hopeless(load[h] - (c >= 0 ? (w[c] * share[p]) / NG : 0) + w[a] / (cnt[a] + 1))) {
        sc.epoch++;
        n = 0;
        if (c >= 0) removeReplica(c, p);
        addReplica(a, h);
        score(1, p, a, -1);
      }
      if (c >= 0 && !hopeless(load[h] - (w[c] * share[p] - w[a] * share[sTop]) / NG) && !onGpu(top, c)) {
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
      const moved = (w[c] * share[p]) / NG;
      if (hopeless(load[h] - moved + w[a] / (cnt[a] + 1))) continue;
      for (let j = 0; j < nSpare; j++) {
        const q = spare[j];
        const h3 = Math.floor(q / S);
        if (q === p || h3 === top || row[q] === a || (hopeless(load[h3] + moved - (w[row[q]] * share[q]) / NG) && !onGpu(h3, a)) || onGpu(h3, c)) continue;
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

/** Keeps the `cap` first steps with the smallest overshoot (insertion into a short sorted list). */
function pushFirst(f: FirstBuffer, key: number, kind: 1 | 2 | 3, slot: number, expert: number, slot2: number, copies: number): void {
  if (f.n === f.cap && key >= f.keys[f.n - 1]) return;
  let i = f.n < f.cap ? f.n++ : f.n - 1;
  const item = f.items[i] ?? { ...NONE };
  while (i > 0 && f.keys[i - 1] > key) {
    f.keys[i] = f.keys[i - 1];
    f.items[i] = f.items[i - 1];
    i--;
  }
  f.keys[i] = key;
  item.kind = kind;
  item.slot = slot;
  item.expert = expert;
  item.slot2 = slot2;
  item.copies = copies;
  item.gain = 0;
  item.next = null;
  f.items[i] = item;
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

/**
 * Test hook: walks a layer's path of best moves from `row` for loads `w` and checks each move as
 * scored against the state it makes, recomputed from scratch (before the shares are balanced
 * again): the smooth max (`normError`, relative), the copies (`copyErrors`) and the max, which no
 * move raises (`maxRises`). `kinds` names the
 * moves taken ("2", or "1+2" for a compound).
 * @internal
 */
export function checkMovePath(row: Int32Array, w: Float64Array, shape: Shape, E: number, steps: number): { kinds: string[]; normError: number; copyErrors: number; maxRises: number } {
  const st = layerState(row, row.slice(), null, w, shape, E);
  const kinds: string[] = [];
  let normError = 0;
  let copyErrors = 0;
  let maxRises = 0;
  for (let step = 0; step < steps; step++) {
    const c = bestMove(st, shape, E);
    if (c.kind === 0) break;
    kinds.push(c.next ? `${c.kind}+${c.next.kind}` : `${c.kind}`);
    const before = st.spent;
    let max0 = 0;
    for (const v of st.load) max0 = Math.max(max0, v);
    applyMove(st, c, shape);
    recomputeLoads(st, shape);
    let max1 = 0;
    for (const v of st.load) max1 = Math.max(max1, v);
    if (max1 > max0 * (1 + 1e-9)) maxRises++;
    normError = Math.max(normError, Math.abs(smoothMax(st.load) - c.norm) / c.norm);
    if (copiesBetween(st.orig, st.row, shape.slotsPerGpu) - before !== c.copies) copyErrors++;
    settle(st, shape, E);
  }
  return { kinds, normError, copyErrors, maxRises };
}
