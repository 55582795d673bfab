/**
 * dispatch: which replica serves each (source, expert) pair.
 * - `LoadVectors`, `chunksOf`: the demand of a layer as chunks (source GPU, expert) with load
 *   vectors, the unit every packing moves.
 * - `lpServe`: node level. For a fixed replica layout (NodeState), a transportation LP chooses
 *   which holder node serves each (source node, expert) pair, minimising the traffic estimate of
 *   each choice under the node load caps; the answer is rounded to the largest share per pair and
 *   repaired greedily (NodeState.reserve) where rounding broke a cap, keeping only changes that lower traffic within limits.
 * - `packNodes`: GPU level. Inside every node, balanced packing (replicate.ts) of the node's replicas
 *   onto its GPUs and of its served chunks onto the replicas.
 */
import { LpModel, solveLp, type LpBackend } from '../lp/index.js';
import type { Shape, TokenSets } from '../types.js';
import type { NodeState } from './node-search.js';
import { packGroup, type Chunks } from './replicate.js';

/** A GPU-level layout of one layer. */
export interface Layout {
  /** [P] */
  phy2log: Int32Array;
  /** [NG*E] */
  dispatch: Int32Array;
  /** Largest planned GPU load (dimension 0). */
  maxLoad: number;
}

/**
 * Load vectors of a layer. Without known sources (counts): dimension 0 = expected load, every
 * source sending expert e an equal share expertLoad[e] / NG. With a trace's per-source demand
 * (`sourceLoad [NG*E]`): dimension 0 = that realized demand (the fitted tokens as the evaluator
 * counts them: the contract), dimension 1 = the expected share, so that a packing balanced in both
 * neither breaks the contract on the fitted tokens nor piles up (source, expert) pairs the fitted
 * tokens happen not to use. Then the request samples, sampleLoad[b*E+e] / NG. `mean[d]` = mean GPU
 * load of dim d.
 */
export class LoadVectors {
  readonly D: number;
  readonly mean: Float64Array;
  /** First request-sample dimension. */
  private readonly firstSample: number;
  constructor(
    readonly expertLoad: Float64Array,
    readonly sampleLoad: Float64Array,
    readonly numGpus: number,
    readonly sourceLoad: Float64Array | null = null,
  ) {
    const E = expertLoad.length;
    const B = sampleLoad.length / E;
    this.firstSample = sourceLoad ? 2 : 1;
    this.D = this.firstSample + B;
    this.mean = new Float64Array(this.D);
    for (let e = 0; e < E; e++) this.mean[0] += expertLoad[e];
    if (sourceLoad) this.mean[1] = this.mean[0];
    for (let b = 0; b < B; b++) for (let e = 0; e < E; e++) this.mean[this.firstSample + b] += sampleLoad[b * E + e];
    for (let d = 0; d < this.D; d++) this.mean[d] /= numGpus;
  }
  /** Write chunk (s, e)'s vector to out[off..off+D). */
  write(s: number, e: number, out: Float64Array, off: number): void {
    const E = this.expertLoad.length;
    const NG = this.numGpus;
    const share = this.expertLoad[e] / NG;
    out[off] = this.sourceLoad ? this.sourceLoad[s * E + e] : share;
    if (this.sourceLoad) out[off + 1] = share;
    for (let d = this.firstSample; d < this.D; d++) out[off + d] = this.sampleLoad[(d - this.firstSample) * E + e] / NG;
  }
  /** Largest GPU load per dimension of a layout: [D] (chunk (s, e) carries the vector `write` gives). */
  maxima(dispatch: Int32Array, S: number): Float64Array {
    const D = this.D;
    const E = this.expertLoad.length;
    const NG = this.numGpus;
    const first = this.firstSample;
    const src = this.sourceLoad;
    // The source-independent parts of the vectors, [E] and [B*E], as `write` computes them.
    const share = this.expertLoad.map((x) => x / NG);
    const sample = this.sampleLoad.map((x) => x / NG);
    const loads = new Float64Array(NG * D);
    for (let s = 0; s < NG; s++) {
      for (let e = 0; e < E; e++) {
        const slot = dispatch[s * E + e];
        if (slot < 0) continue;
        const o = Math.floor(slot / S) * D;
        if (src) {
          loads[o] += src[s * E + e];
          loads[o + 1] += share[e];
        } else loads[o] += share[e];
        for (let d = first; d < D; d++) loads[o + d] += sample[(d - first) * E + e];
      }
    }
    const max = new Float64Array(D);
    for (let h = 0; h < this.numGpus; h++) for (let d = 0; d < D; d++) max[d] = Math.max(max[d], loads[h * D + d]);
    return max;
  }
  /** [N*E*D] planned load of (source node n, expert e): the sum over n's GPUs. */
  nodeLoads(nodes: number, gpusPerNode: number): Float64Array {
    const E = this.expertLoad.length;
    const D = this.D;
    const out = new Float64Array(nodes * E * D);
    const v = new Float64Array(D);
    for (let s = 0; s < this.numGpus; s++) {
      const n = Math.floor(s / gpusPerNode);
      for (let e = 0; e < E; e++) {
        this.write(s, e, v, 0);
        for (let d = 0; d < D; d++) out[(n * E + e) * D + d] += v[d];
      }
    }
    return out;
  }
}

/**
 * Chunks of the given (source, expert) pairs with their load vectors. `sources(e)` may return the
 * same array each call (it is copied before the next).
 */
export function chunksOf(ex: Int32Array, sources: (e: number) => ArrayLike<number>, lv: LoadVectors): Chunks {
  const m = ex.length;
  const start = new Int32Array(m + 1);
  let src = new Int32Array(Math.max(16, 4 * m));
  for (let x = 0; x < m; x++) {
    const l = sources(ex[x]);
    const n = l.length;
    const at = start[x];
    if (at + n > src.length) {
      const grown = new Int32Array(Math.max(2 * src.length, at + n));
      grown.set(src.subarray(0, at));
      src = grown;
    }
    for (let i = 0; i < n; i++) src[at + i] = l[i];
    start[x + 1] = at + n;
  }
  const C = start[m];
  if (src.length !== C) src = src.slice(0, C);
  const D = lv.D;
  const load = new Float64Array(C * D);
  for (let x = 0; x < m; x++) {
    const a = start[x];
    const b = start[x + 1];
    if (lv.sourceLoad || a === b) {
      for (let c = a; c < b; c++) lv.write(src[c], ex[x], load, c * D);
      continue;
    }
    // Without per-source demand every chunk of an expert carries the same vector: written once.
    lv.write(src[a], ex[x], load, a * D);
    for (let c = a + 1; c < b; c++) for (let d = 0; d < D; d++) load[c * D + d] = load[a * D + d];
  }
  return { start, src, load };
}

/** GPU-level packing inside every node of a node-level layout, within the per-dimension caps. */
export function packNodes(st: NodeState, E: number, shape: Shape, lv: LoadVectors, caps: Float64Array): Layout {
  const { nodes: N, gpusPerNode: G, slotsPerGpu: S } = shape;
  const phy2log = new Int32Array(shape.numSlots).fill(-1);
  const dispatch = new Int32Array(shape.numGpus * E).fill(-1);
  const scale = caps.map((c) => (c > 0 ? 1 / c : 0));
  let maxLoad = 0;
  const srcs: number[] = [];
  for (let m = 0; m < N; m++) {
    const exList: number[] = [];
    for (let e = 0; e < E; e++) if (st.has[e * N + m]) exList.push(e);
    const ex = Int32Array.from(exList);
    const chunks = chunksOf(
      ex,
      (e) => {
        srcs.length = 0;
        for (let s = 0; s < shape.numGpus; s++) if (st.srv[Math.floor(s / G) * E + e] === m) srcs.push(s);
        return srcs;
      },
      lv,
    );
    const gpus = Int32Array.from({ length: G }, (_, i) => m * G + i);
    const r = packGroup(ex, chunks, gpus, S, E, scale, phy2log, dispatch, G);
    maxLoad = Math.max(maxLoad, r.maxLoad);
  }
  return { phy2log, dispatch, maxLoad };
}

export interface LpServeStats {
  /** LP solved to optimality (otherwise the state is left as it was). */
  solved: boolean;
  /** (source node, expert) pairs whose server the LP changed and that were kept. */
  changed: number;
  variables: number;
  seconds: number;
}

/**
 * Transportation LP over the serving of the state's remote (source node, expert) pairs: x[n,e,m]
 * >= 0 for every holder m of e (n not holding e), sum_m x[n,e,m] = 1, node m's load in every
 * dimension <= its cap, minimising sum x[n,e,m] * arrivalCost(n, e, m) (exact in low-latency mode;
 * in normal mode the cost of the arrival given every other pair's current server). Pairs of
 * single-holder experts are fixed and enter the caps as constants. Rounded to the largest share
 * per pair; if that breaks a limit, every expert whose serving changed is re-served greedily; the result is kept only
 * if it lowers traffic + lambda * violation. Solved by HiGHS by default: javascript-lp-solver's
 * simplex was seen to stall for minutes on some of these small degenerate LPs (V2-Lite 8x1
 * low-latency), and a time limit would make plans depend on the machine.
 */
export async function lpServe(st: NodeState, lambda: number, backend: LpBackend = 'highs'): Promise<LpServeStats> {
  const t0 = performance.now();
  const { N, E } = st;
  const D = st.p.dims;
  const loads = st.p.loads;
  const lp = new LpModel('min');
  const fixed = new Float64Array(N * D);
  // Variables of pair q = n*E+e: varStart[q] .. varStart[q+1), holders in varNode.
  const varStart = new Int32Array(N * E + 1);
  const varNode: number[] = [];
  for (let n = 0; n < N; n++) {
    for (let e = 0; e < E; e++) {
      const q = n * E + e;
      varStart[q] = varNode.length;
      if (st.has[e * N + n] || st.holders[e] === 1) {
        const m = st.srv[q];
        for (let d = 0; d < D; d++) fixed[m * D + d] += loads[q * D + d];
        continue;
      }
      for (let m = 0; m < N; m++) {
        if (!st.has[e * N + m]) continue;
        lp.addVar(undefined, { obj: st.arrivalCost(n, e, m) });
        varNode.push(m);
      }
    }
  }
  varStart[N * E] = varNode.length;
  const nv = varNode.length;
  if (nv === 0) return { solved: true, changed: 0, variables: 0, seconds: 0 };
  for (let q = 0; q < N * E; q++) {
    const len = varStart[q + 1] - varStart[q];
    if (len === 0) continue;
    lp.addConstraint(Int32Array.from({ length: len }, (_, j) => varStart[q] + j), new Float64Array(len).fill(1), { lb: 1, ub: 1 });
  }
  for (let m = 0; m < N; m++) {
    for (let d = 0; d < D; d++) {
      const idx: number[] = [];
      const val: number[] = [];
      for (let q = 0; q < N * E; q++) {
        for (let j = varStart[q]; j < varStart[q + 1]; j++) {
          if (varNode[j] === m && loads[q * D + d] !== 0) {
            idx.push(j);
            val.push(loads[q * D + d]);
          }
        }
      }
      // Caps already broken by fixed pairs cannot be met; leave that row out (the search prices it).
      const room = st.p.nodeCap[d] - fixed[m * D + d];
      if (idx.length > 0 && room > 0) lp.addConstraint(Int32Array.from(idx), Float64Array.from(val), { ub: room });
    }
  }
  const r = await solveLp(lp, { backend });
  const seconds = (): number => (performance.now() - t0) / 1000;
  if (r.status !== 'optimal') return { solved: false, changed: 0, variables: nv, seconds: seconds() };
  const before = st.cost + lambda * st.violation();
  st.commit();
  let changed = 0;
  const touched = new Uint8Array(E);
  for (let q = 0; q < N * E; q++) {
    let best = -1;
    for (let j = varStart[q]; j < varStart[q + 1]; j++) if (best < 0 || r.x[j] > r.x[best] + 1e-9) best = j;
    if (best < 0) continue;
    const n = Math.floor(q / E);
    const e = q - n * E;
    if (varNode[best] !== st.srv[q]) {
      st.setServe(n, e, varNode[best]);
      touched[e] = 1;
      changed++;
    }
  }
  if (st.violation() > 0) for (let e = 0; e < E; e++) if (touched[e]) st.reserve(e);
  if (st.cost + lambda * st.violation() > before - 1e-9 * Math.abs(before)) {
    st.rollback(0);
    changed = 0;
  }
  st.commit();
  return { solved: true, changed, variables: nv, seconds: seconds() };
}

/**
 * [NG*E] weighted (token, expert) pairs per (source GPU, expert) over the given sets, and [E] the
 * expert totals.
 */
export function sourceLoads(sets: TokenSets[], E: number, numGpus: number): { sourceLoad: Float64Array; expertLoad: Float64Array } {
  const sourceLoad = new Float64Array(numGpus * E);
  const expertLoad = new Float64Array(E);
  for (const ts of sets) {
    for (let i = 0; i < ts.n; i++) {
      const row = ts.source[i] * E;
      for (let j = 0; j < ts.k; j++) {
        const e = ts.experts[i * ts.k + j];
        sourceLoad[row + e] += ts.weight[i];
        expertLoad[e] += ts.weight[i];
      }
    }
  }
  return { sourceLoad, expertLoad };
}
