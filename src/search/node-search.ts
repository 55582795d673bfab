/**
 * Node-level search for the traffic objective of one layer.
 *
 * Decides which nodes hold a replica of each expert (`has[e*N+m]`) and which node serves each
 * (source node, expert) pair (`srv[n*E+e]`); a node that holds the expert always serves its own
 * sources. Inter-node traffic depends on nothing else: in `normal` mode a token from node n costs
 * one message per remote node serving one of its experts, in `low-latency` mode one per remote
 * (token, expert). GPU-level packing inside each node comes afterwards (replicate.ts).
 *
 * Tokens are weighted sets compressed by (source node, expert set). Every change goes through two
 * primitives, `setServe` and `setHas`, which update the cost incrementally (only the sets that
 * contain the expert and come from the source node are touched) and log an undo record, so a
 * composite move is applied, scored and rolled back exactly.
 */
import type { Rng } from '../rng.js';

export interface NodeProblem {
  /** Nodes N. */
  nodes: number;
  /** Experts E. */
  experts: number;
  /** Expert slots per node (gpusPerNode * slotsPerGpu). */
  slotsPerNode: number;
  /** Experts per token k. */
  k: number;
  /** Sets K: source node [K], weight [K], experts [K*k]. */
  setSrc: Int32Array;
  setW: Float64Array;
  setEx: Uint16Array;
  lowLatency: boolean;
  /** Load dimensions D (as LoadVectors of dispatch.ts: 0 = the planned load the contract is on). */
  dims: number;
  /** [N*E*D] planned load vector of (source node n, expert e). */
  loads: Float64Array;
  /** [D] largest load a node may carry in each dimension. */
  nodeCap: Float64Array;
  /** Per-GPU cap of dimension 0: an expert whose load at a node exceeds it needs more slots there. */
  gpuCap: number;
}

const OP_SERVE = 0;
const OP_HAS = 1;

export class NodeState {
  readonly N: number;
  readonly E: number;
  readonly K: number;
  /** [N*E+1] CSR: sets from node n containing e are lSet[lStart[n*E+e] .. lStart[n*E+e+1]). */
  private readonly lStart: Int32Array;
  private readonly lSet: Int32Array;
  /** Aligned with lSet: the set's row in cnt (i*N) and its weight (the hot loops read no other array). */
  private readonly lRow: Int32Array;
  private readonly lW: Float64Array;
  /** [N*E] observed load of e from sources on node n (the low-latency traffic weight). */
  readonly Ln: Float64Array;
  private readonly D: number;
  /** [E*N] 1 when node m holds a replica of e. */
  readonly has: Uint8Array;
  /** [E] nodes holding e. */
  readonly holders: Int32Array;
  /** [N*E] node serving (source node n, expert e). */
  readonly srv: Int32Array;
  /** [K*N] experts of set i served at node m. */
  private readonly cnt: Int32Array;
  /** [E*N] planned load (dimension 0) of e served at m. */
  readonly loadAt: Float64Array;
  /** [N*D] planned load of node m. */
  readonly nodeLoad: Float64Array;
  readonly slotsUsed: Int32Array;
  /** Traffic in message units (normal: remote node visits; low-latency: remote token-experts). */
  cost = 0;
  private undo: Int32Array = new Int32Array(1024);
  private undoLen = 0;

  constructor(readonly p: NodeProblem) {
    const { nodes: N, experts: E, k } = p;
    const K = p.setSrc.length;
    this.N = N;
    this.E = E;
    this.K = K;
    const lCount = new Int32Array(N * E + 1);
    this.Ln = new Float64Array(N * E);
    for (let i = 0; i < K; i++) {
      const n = p.setSrc[i];
      for (let j = 0; j < k; j++) {
        const e = p.setEx[i * k + j];
        lCount[n * E + e + 1]++;
        this.Ln[n * E + e] += p.setW[i];
      }
    }
    for (let q = 0; q < N * E; q++) lCount[q + 1] += lCount[q];
    this.lStart = lCount;
    this.lSet = new Int32Array(lCount[N * E]);
    this.lRow = new Int32Array(lCount[N * E]);
    this.lW = new Float64Array(lCount[N * E]);
    const fill = lCount.slice(0, N * E);
    for (let i = 0; i < K; i++) {
      const n = p.setSrc[i];
      for (let j = 0; j < k; j++) {
        const t = fill[n * E + p.setEx[i * k + j]]++;
        this.lSet[t] = i;
        this.lRow[t] = i * N;
        this.lW[t] = p.setW[i];
      }
    }
    this.has = new Uint8Array(E * N);
    this.holders = new Int32Array(E);
    this.srv = new Int32Array(N * E).fill(-1);
    this.cnt = new Int32Array(K * N);
    this.D = p.dims;
    this.loadAt = new Float64Array(E * N);
    this.nodeLoad = new Float64Array(N * p.dims);
    this.slotsUsed = new Int32Array(N);
    this.relGain = new Float64Array(E * N * N);
    this.addGain = new Float64Array(E * N);
  }

  /** Slots expert e needs on node m given the load served there. */
  need(e: number, m: number): number {
    if (!this.has[e * this.N + m]) return 0;
    const l = this.loadAt[e * this.N + m];
    return l <= this.p.gpuCap ? 1 : Math.ceil(l / this.p.gpuCap);
  }

  /**
   * Initialise from a replica layout: has[e*N+m] given; each source node is served locally when
   * possible, else by `initSrv` when it holds the expert, else by the best remote holder.
   */
  init(has: Uint8Array, initSrv?: Int32Array): void {
    const { N, E } = this;
    this.has.set(has);
    this.holders.fill(0);
    for (let e = 0; e < E; e++) for (let m = 0; m < N; m++) this.holders[e] += has[e * N + m];
    this.cnt.fill(0);
    this.loadAt.fill(0);
    this.nodeLoad.fill(0);
    this.cost = 0;
    const k = this.p.k;
    for (let n = 0; n < N; n++) {
      for (let e = 0; e < E; e++) {
        let s = -1;
        if (has[e * N + n]) s = n;
        else if (initSrv && initSrv[n * E + e] >= 0 && has[e * N + initSrv[n * E + e]]) s = initSrv[n * E + e];
        else for (let m = 0; m < N && s < 0; m++) if (has[e * N + m]) s = m;
        this.srv[n * E + e] = s;
        this.moveLoad(n * E + e, e, s, 1);
      }
    }
    for (let i = 0; i < this.K; i++) {
      const n = this.p.setSrc[i];
      for (let j = 0; j < k; j++) this.cnt[i * N + this.srv[n * E + this.p.setEx[i * k + j]]]++;
      if (this.p.lowLatency) {
        for (let m = 0; m < N; m++) if (m !== n) this.cost += this.p.setW[i] * this.cnt[i * N + m];
      } else {
        for (let m = 0; m < N; m++) if (m !== n && this.cnt[i * N + m] > 0) this.cost += this.p.setW[i];
      }
    }
    for (let m = 0; m < N; m++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += this.need(e, m);
      this.slotsUsed[m] = s;
    }
    this.undoLen = 0;
  }

  /** Recompute the cost from scratch (for tests). */
  fullCost(): number {
    const { N, E } = this;
    const k = this.p.k;
    let cost = 0;
    const seen = new Uint8Array(N);
    for (let i = 0; i < this.K; i++) {
      const n = this.p.setSrc[i];
      seen.fill(0);
      for (let j = 0; j < k; j++) {
        const m = this.srv[n * E + this.p.setEx[i * k + j]];
        if (m === n) continue;
        if (this.p.lowLatency) cost += this.p.setW[i];
        else if (!seen[m]) {
          seen[m] = 1;
          cost += this.p.setW[i];
        }
      }
    }
    return cost;
  }

  mark(): number {
    return this.undoLen;
  }

  private push(op: number, a: number, b: number, c: number): void {
    if (this.undoLen + 4 > this.undo.length) {
      const next = new Int32Array(this.undo.length * 2);
      next.set(this.undo);
      this.undo = next;
    }
    this.undo[this.undoLen++] = op;
    this.undo[this.undoLen++] = a;
    this.undo[this.undoLen++] = b;
    this.undo[this.undoLen++] = c;
  }

  /** Undo every change made since `mark`. */
  rollback(mark: number): void {
    while (this.undoLen > mark) {
      const c = this.undo[--this.undoLen];
      const b = this.undo[--this.undoLen];
      const a = this.undo[--this.undoLen];
      const op = this.undo[--this.undoLen];
      const before = this.undoLen;
      if (op === OP_SERVE) this.setServe(a, b, c);
      else this.setHas(a, b, c);
      this.undoLen = before;
    }
  }

  /** Forget the undo log (the current state is accepted). */
  commit(): void {
    this.undoLen = 0;
  }

  /** Add (sign 1) or remove (-1) the planned load of pair q = n*E+e at node m. */
  private moveLoad(q: number, e: number, m: number, sign: number): void {
    const D = this.D;
    const lv = this.p.loads;
    const at = e * this.N + m;
    const before = this.need(e, m);
    this.loadAt[at] += sign * lv[q * D];
    if (Math.abs(this.loadAt[at]) < 1e-9) this.loadAt[at] = 0;
    for (let d = 0; d < D; d++) this.nodeLoad[m * D + d] += sign * lv[q * D + d];
    this.slotsUsed[m] += this.need(e, m) - before;
  }

  /** Whether node m would exceed a load cap if pair q were added to it. */
  private overCap(q: number, m: number): boolean {
    const D = this.D;
    for (let d = 0; d < D; d++) if (this.nodeLoad[m * D + d] + this.p.loads[q * D + d] > this.p.nodeCap[d] * (1 + 1e-9)) return true;
    return false;
  }

  /** Serve (source node n, expert e) from node b. */
  setServe(n: number, e: number, b: number): void {
    const { N, E } = this;
    const q = n * E + e;
    const a = this.srv[q];
    if (a === b) return;
    const L = this.Ln[q];
    if (this.p.lowLatency) {
      this.cost += L * ((b !== n ? 1 : 0) - (a !== n ? 1 : 0));
      // cnt is not needed in low-latency mode.
    } else {
      const cnt = this.cnt;
      const row = this.lRow;
      const lw = this.lW;
      const from = this.lStart[q];
      const end = this.lStart[q + 1];
      // A set pays for node a when its last expert there leaves, for b when its first arrives
      // (never for its own node n).
      const wa = a !== n ? 1 : 0;
      const wb = b !== n ? 1 : 0;
      let delta = 0;
      if (this.trackGains) {
        for (let t = from; t < end; t++) {
          const r = row[t];
          const ca = cnt[r + a]--;
          const cb = cnt[r + b]++;
          if (ca === 1) delta -= wa * lw[t];
          if (cb === 0) delta += wb * lw[t];
          this.retarget(this.lSet[t], n, e, a, b, ca, cb);
        }
      } else {
        // Branch-free: (c - 1) >>> 31 is 1 exactly when the count c is 0.
        for (let t = from; t < end; t++) {
          const r = row[t];
          const ca = --cnt[r + a];
          const cb = cnt[r + b]++;
          delta += lw[t] * (wb * ((cb - 1) >>> 31) - wa * ((ca - 1) >>> 31));
        }
      }
      this.cost += delta;
    }
    this.moveLoad(q, e, a, -1);
    this.moveLoad(q, e, b, 1);
    this.srv[q] = b;
    this.push(OP_SERVE, n, e, a);
  }

  /** Set whether node m holds a replica of e (serving is not changed here). */
  setHas(e: number, m: number, v: number): void {
    const q = e * this.N + m;
    const old = this.has[q];
    if (old === v) return;
    const before = this.need(e, m);
    this.has[q] = v;
    this.holders[e] += v - old;
    this.slotsUsed[m] += this.need(e, m) - before;
    this.push(OP_HAS, e, m, old);
  }

  /**
   * Traffic added by serving (n, e) from node b instead of its current node, counting only the
   * arrival side (the departure side is the same for every b). Normal mode only.
   */
  arrivalCost(n: number, e: number, b: number): number {
    const q = n * this.E + e;
    if (b === n) return 0;
    if (this.p.lowLatency) return this.Ln[q];
    const a = this.srv[q];
    let s = 0;
    const row = this.lRow;
    const lw = this.lW;
    const own = b === a ? 1 : 0;
    for (let t = this.lStart[q], end = this.lStart[q + 1]; t < end; t++) if (this.cnt[row[t] + b] === own) s += lw[t];
    return s;
  }

  /**
   * Gain tables of the FM refinement (improve.ts), filled by `computeGains` and kept exact for
   * every expert whose serving does not change while `trackGains` is on:
   * - `relGain[(e*N+a)*N+b]`: estimated traffic change of moving the replica of e at node a to
   *   node b, every source node served by a then served by b (locally when it is b). Exact when a
   *   is e's only holder and b holds no replica of e; for b holding e it estimates dropping e at a.
   * - `addGain[e*N+b]`: traffic change of a new replica of e at b serving b's own sources.
   * In normal mode a set's contribution depends on which nodes serve its other experts, so
   * `setServe` takes every touched set's contribution out before and puts it back after (only
   * while `trackGains`); low-latency contributions depend on the expert alone.
   */
  readonly relGain: Float64Array;
  readonly addGain: Float64Array;
  trackGains = false;

  /** Fill the gain tables from scratch. */
  computeGains(): void {
    const { N, E } = this;
    const rel = this.relGain;
    const add = this.addGain;
    if (this.p.lowLatency) {
      rel.fill(0);
      add.fill(0);
      for (let n = 0; n < N; n++) {
        for (let e = 0; e < E; e++) {
          const q = n * E + e;
          const a = this.srv[q];
          const L = this.Ln[q];
          const base = (e * N + a) * N;
          for (let b = 0; b < N; b++) if (b !== a) rel[base + b] += L * ((b !== n ? 1 : 0) - (a !== n ? 1 : 0));
          if (a !== n) add[e * N + n] = -L;
        }
      }
      return;
    }
    rel.fill(0);
    add.fill(0);
    for (let i = 0; i < this.K; i++) this.contribute(i, 1);
  }

  /** Add (sign 1) or take out (-1) set i's contribution to the gain tables of its experts. */
  private contribute(i: number, sign: number): void {
    const { N, E } = this;
    const k = this.p.k;
    const n = this.p.setSrc[i];
    const w = sign * this.p.setW[i];
    const row = i * N;
    const rel = this.relGain;
    for (let j = 0; j < k; j++) {
      const g = this.p.setEx[i * k + j];
      const a = this.srv[n * E + g];
      const sole = a !== n && this.cnt[row + a] === 1;
      if (sole) this.addGain[g * N + n] -= w;
      const drop = sole ? w : 0;
      const base = (g * N + a) * N;
      for (let b = 0; b < N; b++) if (b !== a) rel[base + b] += (b !== n && this.cnt[row + b] === 0 ? w : 0) - drop;
    }
  }

  /**
   * The gain-table update of set i (from node n) when its expert e moved from node a to b, the
   * counts cnt already changed (they were ca at a and cb at b): the same as taking the set's
   * contribution out before the change and putting it back after, but touching only what the
   * change affects: e's own rows, the rows whose sole-server status changed (servers a and b),
   * and the columns a and b of the other rows.
   */
  private retarget(i: number, n: number, e: number, a: number, b: number, ca: number, cb: number): void {
    const { N, E } = this;
    const k = this.p.k;
    const w = this.p.setW[i];
    const row = i * N;
    const cnt = this.cnt;
    const rel = this.relGain;
    const add = this.addGain;
    // The set starts paying for arrivals at a (its last expert there left) and stops at b.
    const dA = a !== n && ca === 1 ? w : 0;
    const dB = b !== n && cb === 0 ? -w : 0;
    for (let j = 0; j < k; j++) {
      const g = this.p.setEx[i * k + j];
      if (g === e) {
        // Out with the row (e, a) under the old counts, in with (e, b) under the new.
        const soleOld = a !== n && ca === 1 ? w : 0;
        add[e * N + n] += soleOld;
        let base = (e * N + a) * N;
        for (let m = 0; m < N; m++) {
          if (m === a) continue;
          const c = m === b ? cb : cnt[row + m];
          rel[base + m] -= (m !== n && c === 0 ? w : 0) - soleOld;
        }
        const soleNew = b !== n && cb === 0 ? w : 0;
        add[e * N + n] -= soleNew;
        base = (e * N + b) * N;
        for (let m = 0; m < N; m++) if (m !== b) rel[base + m] += (m !== n && cnt[row + m] === 0 ? w : 0) - soleNew;
        continue;
      }
      const s = this.srv[n * E + g];
      const base = (g * N + s) * N;
      if (s !== n && (s === a || s === b)) {
        // g's server count went ca -> ca - 1 (at a) or cb -> cb + 1 (at b): g may have become or
        // stopped being the set's only expert there.
        const dSole = s === a ? (ca === 2 ? w : 0) : cb === 1 ? -w : 0;
        if (dSole !== 0) {
          add[g * N + n] -= dSole;
          for (let m = 0; m < N; m++) if (m !== s) rel[base + m] -= dSole;
        }
      }
      if (s !== a) rel[base + a] += dA;
      if (s !== b) rel[base + b] += dB;
    }
  }

  /** Best holder of e to serve source node n: local if held, else least arrival cost within cap. */
  bestServer(n: number, e: number): number {
    const N = this.N;
    if (this.has[e * N + n]) return n;
    if (this.holders[e] === 1) {
      let m = 0;
      while (!this.has[e * N + m]) m++;
      return m;
    }
    const q = n * this.E + e;
    const a = this.srv[q];
    let best = -1;
    let bestCost = Infinity;
    for (let m = 0; m < N; m++) {
      if (!this.has[e * N + m]) continue;
      const over = m !== a && this.overCap(q, m);
      const c = this.arrivalCost(n, e, m) + (over ? 1e12 : 0) + this.nodeLoad[m * this.D] * 1e-12;
      if (c < bestCost || (c === bestCost && m === a)) {
        bestCost = c;
        best = m;
      }
    }
    return best;
  }

  addReplica(e: number, m: number): void {
    this.setHas(e, m, 1);
    this.setServe(m, e, m);
  }

  /** Remove e from node m (e must be held elsewhere) and re-serve its sources. */
  dropReplica(e: number, m: number): void {
    this.setHas(e, m, 0);
    const N = this.N;
    for (let n = 0; n < N; n++) if (this.srv[n * this.E + e] === m) this.setServe(n, e, this.bestServer(n, e));
  }

  /** Re-choose the server of every source node of e. */
  reserve(e: number): void {
    for (let n = 0; n < this.N; n++) {
      const b = this.bestServer(n, e);
      if (b !== this.srv[n * this.E + e]) this.setServe(n, e, b);
    }
  }

  /** Slot and load limits hold on every node. */
  feasible(): boolean {
    return this.violation() === 0;
  }

  /** Excess over the limits in dimension-0 load units (0 when feasible); a slot counts gpuCap. */
  violation(): number {
    let v = 0;
    const D = this.D;
    const caps = this.p.nodeCap;
    for (let m = 0; m < this.N; m++) {
      for (let d = 0; d < D; d++) {
        const over = this.nodeLoad[m * D + d] - caps[d];
        if (over > 1e-9 * caps[d]) v += (over * caps[0]) / caps[d];
      }
      v += Math.max(0, this.slotsUsed[m] - this.p.slotsPerNode) * this.p.gpuCap;
    }
    return v;
  }
}

export interface NodeSearchOptions {
  /** Proposals to try. */
  iterations: number;
  rng: Rng;
  /** Stop early when Date.now() passes this. */
  deadline?: number;
  /** Starting temperature as a fraction of the mean uphill step (default 0.3). */
  temperature?: number;
}

export interface NodeSearchStats {
  proposals: number;
  accepted: number;
  startCost: number;
  bestCost: number;
}

/**
 * Simulated annealing over replica layouts, starting from the state's current (feasible) layout,
 * leaving the best feasible layout found in the state. Proposals are guided: a costly token is
 * picked and one of its remotely served experts is brought to the node that serves most of its
 * other experts (moving, replicating or swapping with an expert there); pure drops and swaps are
 * mixed in for diversity.
 */
export function searchNodes(st: NodeState, opts: NodeSearchOptions): NodeSearchStats {
  const { N, E, K } = st;
  const { k } = st.p;
  const rng = opts.rng;
  const ex = st.p.setEx;
  const srcOf = st.p.setSrc;
  const startCost = st.cost;
  let bestCost = st.cost;
  const bestHas = st.has.slice();
  const bestSrv = st.srv.slice();
  let accepted = 0;
  // Temperature: a fraction of the mean set weight, cooled geometrically to near zero.
  let meanW = 0;
  for (let i = 0; i < K; i++) meanW += st.p.setW[i];
  meanW = K > 0 ? meanW / K : 1;
  // The starting temperature adapts to the problem: a fraction of the mean uphill step seen over
  // the first proposals (a pure descent meanwhile), then geometric cooling to near zero.
  let T0 = meanW * (opts.temperature ?? 0.3);
  let upSum = 0;
  let upCount = 0;
  const warm = Math.min(500, Math.floor(opts.iterations / 10));
  // Limit violations are priced so that the search can walk from an infeasible start to a
  // feasible layout; only feasible layouts are remembered as best.
  const lambda = 10 * meanW;
  let bestFeasible = st.violation() === 0;
  const iters = opts.iterations;
  const votes = new Float64Array(N);
  let p = 0;
  for (; p < iters; p++) {
    if ((p & 255) === 0 && opts.deadline !== undefined && Date.now() > opts.deadline) break;
    if (p === warm && upCount > 0) T0 = (upSum / upCount) * (opts.temperature ?? 0.3);
    const T = p < warm ? 0 : T0 * Math.pow(1e-3, (p - warm) / Math.max(1, iters - warm));
    const before = st.cost + lambda * st.violation();
    const mark = st.mark();
    const r = rng.next();
    if (r < 0.85 && K > 0) {
      // Guided: a token, one of its remote experts, to the node serving most of the token.
      const i = rng.int(K);
      const n = srcOf[i];
      votes.fill(0);
      let e = -1;
      let seen = 0;
      for (let j = 0; j < k; j++) {
        const ej = ex[i * k + j];
        const m = st.srv[n * E + ej];
        votes[m] += 1;
        if (m !== n && rng.int(++seen) === 0) e = ej;
      }
      if (e < 0) continue;
      const a = st.srv[n * E + e];
      votes[a] -= 1;
      // Target: the source node itself or the node with most of the token's other experts.
      let b = n;
      if (rng.next() < 0.5) {
        let bv = votes[n];
        for (let m = 0; m < N; m++) if (votes[m] > bv) { bv = votes[m]; b = m; }
      }
      if (b === a || st.has[e * N + b]) continue;
      st.addReplica(e, b);
      const free = st.slotsUsed[b] <= st.p.slotsPerNode;
      if (!free || rng.next() < 0.5) {
        // Make room / keep replica count: drop e from a if held elsewhere too (a move).
        if (st.holders[e] > 1 && rng.next() < 0.7) st.dropReplica(e, a);
      }
      if (st.slotsUsed[b] > st.p.slotsPerNode) {
        // Swap out an expert f of b not on a (or drop a redundant replica of b).
        const f = pickVictim(st, b, a, e, rng);
        if (f >= 0) {
          if (st.holders[f] > 1 && rng.next() < 0.5) st.dropReplica(f, b);
          else {
            if (!st.has[f * N + a]) st.addReplica(f, a);
            st.dropReplica(f, b);
            st.reserve(f);
          }
        }
      }
      st.reserve(e);
    } else if (r < 0.93) {
      // Drop a redundant replica.
      const e = rng.int(E);
      if (st.holders[e] < 2) continue;
      let m = rng.int(N);
      while (!st.has[e * N + m]) m = (m + 1) % N;
      st.dropReplica(e, m);
      st.reserve(e);
    } else {
      // Random swap between two nodes.
      const e = rng.int(E);
      let a = rng.int(N);
      while (!st.has[e * N + a]) a = (a + 1) % N;
      const b = rng.int(N);
      if (b === a || st.has[e * N + b]) continue;
      const f = pickVictim(st, b, a, e, rng);
      if (f < 0) continue;
      st.addReplica(e, b);
      st.addReplica(f, a);
      st.dropReplica(e, a);
      st.dropReplica(f, b);
      st.reserve(e);
      st.reserve(f);
    }
    const viol = st.violation();
    const delta = st.cost + lambda * viol - before;
    if (p < warm && delta > 0 && viol === 0) {
      upSum += delta;
      upCount++;
    }
    if (delta <= 0 || (T > 0 && rng.next() < Math.exp(-delta / T))) {
      st.commit();
      accepted++;
      if (viol === 0 && (!bestFeasible || st.cost < bestCost - 1e-9)) {
        bestFeasible = true;
        bestCost = st.cost;
        bestHas.set(st.has);
        bestSrv.set(st.srv);
      }
    } else {
      st.rollback(mark);
    }
  }
  st.init(bestHas, bestSrv);
  // Final greedy polish of serving choices.
  for (let e = 0; e < E; e++) {
    const mark = st.mark();
    const before = st.cost;
    st.reserve(e);
    if (st.cost > before || !st.feasible()) st.rollback(mark);
    else st.commit();
  }
  return { proposals: p, accepted, startCost, bestCost: st.cost };
}

/** A random expert held on node b, not held on node a, other than e (-1 if none). */
function pickVictim(st: NodeState, b: number, a: number, e: number, rng: Rng): number {
  const { N, E } = st;
  const start = rng.int(E);
  for (let t = 0; t < E; t++) {
    const f = (start + t) % E;
    if (f !== e && st.has[f * N + b] && !st.has[f * N + a]) return f;
  }
  return -1;
}
