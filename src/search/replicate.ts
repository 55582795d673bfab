/**
 * Balanced packing of one group of GPUs (the whole cluster, or one node): replicate, pack replicas
 * onto GPUs, dispatch demand chunks to replicas, then refine the largest GPU load by local search.
 *
 * Demand comes in chunks: chunk c of local expert x is the load source GPU `src[c]` sends to x.
 * Every chunk is dispatched whole to one replica of its expert (the dispatch table is per source
 * GPU and expert), so chunks are the finest unit of load the plan can move.
 *
 * Loads are vectors of D dimensions (dimension 0 = the expected load; further dimensions = the
 * load of disjoint samples of requests, so that a packing balanced in every sample stays balanced
 * on requests it has not seen). The height of a GPU is max_d load[d] * scale[d]; the packing
 * minimises the largest height.
 */

/** Chunks in CSR form over the group's local experts: chunks of x are start[x]..start[x+1). */
export interface Chunks {
  start: Int32Array; // [m+1]
  src: Int32Array; // [c] source GPU (global id)
  load: Float64Array; // [c*D] load vector of chunk c
}

export interface PackResult {
  /** Largest GPU load of the group in dimension 0. */
  maxLoad: number;
  /** Largest height (max over dimensions of load * scale). */
  maxHeight: number;
  /** Refinement moves applied. */
  moves: number;
}

/**
 * Pack the experts `ex` ([m] global ids) of a group onto `gpus` ([g] global GPU ids, S slots each).
 * Writes phy2log for the group's slots and dispatch[src*E + ex[x]] for every chunk.
 * Requires m <= g*S. Replicas of one expert go to distinct GPUs while that is possible.
 *
 * @param scale [D] weight of each load dimension (D = scale.length).
 * @param gpusPerNode when > 0, a last pass moves chunks to a replica on their source GPU, else on
 *   its node, wherever that keeps every GPU at or below the largest height (locality for free).
 * @param maxIters bound on refinement moves.
 */
export function packGroup(
  ex: Int32Array,
  chunks: Chunks,
  gpus: Int32Array,
  S: number,
  E: number,
  scale: Float64Array,
  phy2log: Int32Array,
  dispatch: Int32Array,
  gpusPerNode = 0,
  maxIters = 20000,
): PackResult {
  const m = ex.length;
  const g = gpus.length;
  if (m > g * S) throw new Error(`packGroup: ${m} experts do not fit in ${g * S} slots`);
  // One function a step over the typed arrays of `st`: small functions compile fast and see every
  // path before they are optimized (one function of all steps recompiled ~4 times, ~50 ms each).
  const st = replicate(chunks, m, g, S, scale);
  placeReplicas(st);
  dispatchChunks(st);
  const moves = refine(st, maxIters);
  if (gpusPerNode > 0) localize(st, gpus, gpusPerNode);
  return { ...writeOut(st, ex, gpus, E, phy2log, dispatch), moves };
}

/** The working state of one packGroup call: local experts x, replicas r, local GPUs h, chunks c. */
interface PackState {
  m: number;
  g: number;
  S: number;
  D: number;
  scale: Float64Array;
  chunks: Chunks;
  /** [m] expected load of expert x; [m] replicas of x; [m+1] replicas of x are repStart[x]..repStart[x+1). */
  total: Float64Array;
  reps: Int32Array;
  repStart: Int32Array;
  /** [R] expert, local GPU and [R*D] load of replica r. */
  repExp: Int32Array;
  repGpu: Int32Array;
  repLoad: Float64Array;
  /** [g*D] load of GPU h; [g] its used slots; [m*g] holds[x*g + h] = x has a replica on h. */
  gpuLoad: Float64Array;
  gpuUsed: Int32Array;
  holds: Uint8Array;
  /** [C] replica and expert of chunk c. */
  chunkRep: Int32Array;
  chunkExp: Int32Array;
  /** [g*S] slot table: gpuRep[h*S + j] = replica id or -1. */
  gpuRep: Int32Array;
}

/** 1. Replica counts: greedy on load / count, at most one per GPU and per positive chunk. */
function replicate(chunks: Chunks, m: number, g: number, S: number, scale: Float64Array): PackState {
  const D = scale.length;
  const slots = g * S;
  const cstart = chunks.start;
  const cl = chunks.load;
  const total = new Float64Array(m);
  const positive = new Int32Array(m);
  for (let x = 0; x < m; x++) {
    for (let c = cstart[x]; c < cstart[x + 1]; c++) {
      total[x] += cl[c * D];
      if (cl[c * D] > 0) positive[x]++;
    }
  }
  const reps = new Int32Array(m).fill(1);
  for (let extra = slots - m; extra > 0; extra--) {
    let best = -1;
    let bestShare = 0;
    for (let x = 0; x < m; x++) {
      if (reps[x] >= g || reps[x] >= positive[x]) continue;
      const share = total[x] / reps[x];
      if (share > bestShare) {
        bestShare = share;
        best = x;
      }
    }
    if (best < 0) break;
    reps[best]++;
  }
  const repStart = new Int32Array(m + 1);
  for (let x = 0; x < m; x++) repStart[x + 1] = repStart[x] + reps[x];
  const R = repStart[m];
  const repExp = new Int32Array(R);
  for (let x = 0; x < m; x++) for (let r = repStart[x]; r < repStart[x + 1]; r++) repExp[r] = x;
  const C = chunks.src.length;
  return {
    m,
    g,
    S,
    D,
    scale,
    chunks,
    total,
    reps,
    repStart,
    repExp,
    repGpu: new Int32Array(R).fill(-1),
    repLoad: new Float64Array(R * D),
    gpuLoad: new Float64Array(g * D),
    gpuUsed: new Int32Array(g),
    holds: new Uint8Array(m * g),
    chunkRep: new Int32Array(C),
    chunkExp: new Int32Array(C),
    gpuRep: new Int32Array(g * S).fill(-1),
  };
}

/**
 * 2. LPT on the expected load: replicas by share descending, each onto the least-loaded GPU with
 * a free slot that does not hold the expert yet (any GPU with a free slot when impossible).
 */
function placeReplicas(st: PackState): void {
  const { g, S, D, total, reps, repExp, repGpu, gpuLoad, gpuUsed, holds } = st;
  const R = repExp.length;
  const order = Array.from({ length: R }, (_, r) => r);
  order.sort((a, b) => total[repExp[b]] / reps[repExp[b]] - total[repExp[a]] / reps[repExp[a]] || a - b);
  for (const r of order) {
    const x = repExp[r];
    let best = -1;
    for (let pass = 0; pass < 2 && best < 0; pass++) {
      for (let h = 0; h < g; h++) {
        if (gpuUsed[h] >= S || (pass === 0 && holds[x * g + h])) continue;
        if (best < 0 || gpuLoad[h * D] < gpuLoad[best * D]) best = h;
      }
    }
    repGpu[r] = best;
    holds[x * g + best] = 1;
    gpuUsed[best]++;
    gpuLoad[best * D] += total[x] / reps[x];
  }
}

/**
 * 3. Dispatch: chunks by expected load descending, each to the replica leaving the lowest height;
 * then the slot table.
 */
function dispatchChunks(st: PackState): void {
  const { m, S, D, scale, total, repStart, repGpu, repLoad, gpuLoad, gpuUsed, chunkRep, chunkExp, gpuRep } = st;
  const cstart = st.chunks.start;
  const cl = st.chunks.load;
  const C = chunkRep.length;
  gpuLoad.fill(0);
  for (let x = 0; x < m; x++) for (let c = cstart[x]; c < cstart[x + 1]; c++) chunkExp[c] = x;
  // Experts by mean chunk load descending, their chunks in order (all callers give the chunks of
  // one expert equal expected loads, so this is the chunk order by load, at O(m log m)).
  const xorder = Array.from({ length: m }, (_, x) => x);
  xorder.sort((a, b) => total[b] / Math.max(1, cstart[b + 1] - cstart[b]) - total[a] / Math.max(1, cstart[a + 1] - cstart[a]) || a - b);
  const corder = new Int32Array(C);
  let ci = 0;
  for (const x of xorder) for (let c = cstart[x]; c < cstart[x + 1]; c++) corder[ci++] = c;
  for (let i = 0; i < C; i++) {
    const c = corder[i];
    const x = chunkExp[c];
    // One replica: it takes the chunk (no heights to compare).
    let best = repStart[x + 1] - repStart[x] === 1 ? repStart[x] : -1;
    let bestH = Infinity;
    for (let r = best < 0 ? repStart[x] : repStart[x + 1]; r < repStart[x + 1]; r++) {
      const hgt = heightWith(gpuLoad, scale, repGpu[r], cl, c * D, 1, cl, 0, 0);
      if (hgt < bestH || (hgt === bestH && gpuLoad[repGpu[r] * D] < gpuLoad[repGpu[best] * D])) {
        bestH = hgt;
        best = r;
      }
    }
    chunkRep[c] = best;
    for (let d = 0; d < D; d++) repLoad[best * D + d] += cl[c * D + d];
    addTo(gpuLoad, D, repGpu[best], cl, c * D, 1);
  }
  gpuUsed.fill(0);
  for (let r = 0; r < repGpu.length; r++) gpuRep[repGpu[r] * S + gpuUsed[repGpu[r]]++] = r;
}

/**
 * 4. Refine the largest height: chunk moves between replicas, replica swaps and replica moves,
 * the best move off the top GPU each round (`bestMove`) until none gains; returns the moves made.
 */
function refine(st: PackState, maxIters: number): number {
  const { g, S, D, scale, repExp, repGpu, repLoad, gpuLoad, holds, chunkRep, gpuRep } = st;
  const cstart = st.chunks.start;
  const cl = st.chunks.load;
  const gainCap = new Float64Array(g);
  const move = new Int32Array(2);
  let moves = 0;
  for (; moves < maxIters; moves++) {
    const kind = bestMove(st, gainCap, move);
    if (kind === 0) break;
    const a1 = move[0];
    const a2 = move[1];
    if (kind === 1) {
      // Move the chunk, then keep moving further chunks of the same replica to the same target
      // while the larger of the two heights still drops (one bulk transfer, not many iterations).
      const r1 = chunkRep[a1];
      const h1 = repGpu[r1];
      const h2 = repGpu[a2];
      const x = repExp[r1];
      moveChunk(a1, r1, a2, D, cl, repLoad, gpuLoad, repGpu, chunkRep);
      for (let c = cstart[x]; c < cstart[x + 1]; c++) {
        if (chunkRep[c] !== r1 || cl[c * D] <= 0) continue;
        const now = Math.max(height(gpuLoad, scale, h1), height(gpuLoad, scale, h2));
        if (Math.max(heightWith(gpuLoad, scale, h1, cl, c * D, -1, cl, 0, 0), heightWith(gpuLoad, scale, h2, cl, c * D, 1, cl, 0, 0)) < now - 1e-12 * now) moveChunk(c, r1, a2, D, cl, repLoad, gpuLoad, repGpu, chunkRep);
      }
    } else if (kind === 2) {
      const ha = repGpu[a1];
      const hb = repGpu[a2];
      gpuRep[ha * S + indexOnGpu(gpuRep, ha, S, a1)] = a2;
      gpuRep[hb * S + indexOnGpu(gpuRep, hb, S, a2)] = a1;
      holds[repExp[a1] * g + ha] = 0;
      holds[repExp[a2] * g + hb] = 0;
      holds[repExp[a1] * g + hb] = 1;
      holds[repExp[a2] * g + ha] = 1;
      repGpu[a1] = hb;
      repGpu[a2] = ha;
      addTo(gpuLoad, D, ha, repLoad, a1 * D, -1);
      addTo(gpuLoad, D, ha, repLoad, a2 * D, 1);
      addTo(gpuLoad, D, hb, repLoad, a2 * D, -1);
      addTo(gpuLoad, D, hb, repLoad, a1 * D, 1);
    } else {
      const ha = repGpu[a1];
      const hb = Math.floor(a2 / S);
      gpuRep[ha * S + indexOnGpu(gpuRep, ha, S, a1)] = -1;
      gpuRep[a2] = a1;
      holds[repExp[a1] * g + ha] = 0;
      holds[repExp[a1] * g + hb] = 1;
      repGpu[a1] = hb;
      addTo(gpuLoad, D, ha, repLoad, a1 * D, -1);
      addTo(gpuLoad, D, hb, repLoad, a1 * D, 1);
    }
  }
  return moves;
}

/**
 * The move of the largest gain (> 1e-12 of the top height) off the first GPU of the largest
 * height, the first of the scan order on ties: 1 = chunk `move[0]` to replica `move[1]`, 2 = swap
 * replicas `move[0]` (on the top GPU) and `move[1]`, 3 = replica `move[0]` to slot `move[1]`; 0 =
 * none. `gainCap` [g] is scratch.
 *
 * Every move shifts load between the top GPU and one other GPU h only, so in each dimension the
 * two heights after it sum to (load[top][d] + load[h][d]) * scale[d]: the larger is at least
 * half of that, and the move gains at most gainCap[h] = top - max_d (that sum) / 2. A GPU whose
 * cap (plus a margin for rounding) is not above the best gain so far, or below a gain the scan
 * will meet, offers no move the scan could choose and is skipped: the move is the one the full
 * scan would choose.
 */
function bestMove(st: PackState, gainCap: Float64Array, move: Int32Array): number {
  const { g, S, D, scale, repStart, repExp, repGpu, repLoad, gpuLoad, holds, chunkRep, gpuRep } = st;
  const cstart = st.chunks.start;
  const cl = st.chunks.load;
  const scale0 = scale[0];
  let hmax = 0;
  let top = height(gpuLoad, scale, 0);
  for (let h = 1; h < g; h++) {
    const y = height(gpuLoad, scale, h);
    if (y > top) {
      top = y;
      hmax = h;
    }
  }
  const slack = 1e-9 * (top || 1);
  for (let h = 0; h < g; h++) {
    let pair = 0;
    for (let d = 0; d < D; d++) {
      const y = (gpuLoad[hmax * D + d] + gpuLoad[h * D + d]) * scale[d];
      if (y > pair) pair = y;
    }
    gainCap[h] = top - 0.5 * pair + slack;
  }
  // A gain the scan will meet: the best swap or move of a replica on the top GPU with the GPU of
  // the largest cap.
  let reach = 0;
  let hlow = -1;
  for (let h = 0; h < g; h++) if (h !== hmax && (hlow < 0 || gainCap[h] > gainCap[hlow])) hlow = h;
  for (let j = 0; j < S && hlow >= 0; j++) {
    const ra = gpuRep[hmax * S + j];
    if (ra < 0 || holds[repExp[ra] * g + hlow]) continue;
    for (let i = 0; i < S; i++) {
      const rb = gpuRep[hlow * S + i];
      let gain: number;
      if (rb < 0) gain = top - Math.max(heightWith(gpuLoad, scale, hmax, repLoad, ra * D, -1, cl, 0, 0), heightWith(gpuLoad, scale, hlow, repLoad, ra * D, 1, cl, 0, 0));
      else if (holds[repExp[rb] * g + hmax]) continue;
      else gain = top - Math.max(heightWith(gpuLoad, scale, hmax, repLoad, ra * D, -1, repLoad, rb * D, 1), heightWith(gpuLoad, scale, hlow, repLoad, rb * D, -1, repLoad, ra * D, 1));
      if (gain > reach) reach = gain;
    }
  }
  let bestGain = 1e-12 * (top || 1);
  let kind = 0;
  for (let j = 0; j < S; j++) {
    const ra = gpuRep[hmax * S + j];
    if (ra < 0) continue;
    const xa = repExp[ra];
    // (a) move one chunk of this replica to another replica of the same expert.
    if (repStart[xa + 1] - repStart[xa] > 1) {
      for (let c = cstart[xa]; c < cstart[xa + 1]; c++) {
        if (chunkRep[c] !== ra || cl[c * D] <= 0) continue;
        let hereAfter = -1;
        for (let r2 = repStart[xa]; r2 < repStart[xa + 1]; r2++) {
          const h2 = repGpu[r2];
          if (h2 === hmax || gainCap[h2] <= bestGain || gainCap[h2] < reach) continue;
          if (hereAfter < 0) hereAfter = heightWith(gpuLoad, scale, hmax, cl, c * D, -1, cl, 0, 0);
          const gain = top - Math.max(hereAfter, heightWith(gpuLoad, scale, h2, cl, c * D, 1, cl, 0, 0));
          if (gain > bestGain) {
            bestGain = gain;
            kind = 1;
            move[0] = c;
            move[1] = r2;
          }
        }
      }
    }
    // (b) swap this replica with one elsewhere; (c) move it to a free slot. Dimension 0 alone,
    // computed as heightWith does, bounds a gain from above: a candidate whose dimension-0 gain
    // is not above the best is skipped without the full heights.
    const topLoad0 = gpuLoad[hmax * D];
    const ra0 = repLoad[ra * D];
    for (let h = 0; h < g; h++) {
      if (h === hmax || holds[xa * g + h] || gainCap[h] <= bestGain || gainCap[h] < reach) continue;
      const load0 = gpuLoad[h * D];
      for (let i = 0; i < S; i++) {
        const rb = gpuRep[h * S + i];
        if (rb < 0) {
          if (top - Math.max((topLoad0 - ra0) * scale0, (load0 + ra0) * scale0) <= bestGain) continue;
          const gain = top - Math.max(heightWith(gpuLoad, scale, hmax, repLoad, ra * D, -1, cl, 0, 0), heightWith(gpuLoad, scale, h, repLoad, ra * D, 1, cl, 0, 0));
          if (gain > bestGain) {
            bestGain = gain;
            kind = 3;
            move[0] = ra;
            move[1] = h * S + i;
          }
          continue;
        }
        const xb = repExp[rb];
        if (holds[xb * g + hmax]) continue;
        const rb0 = repLoad[rb * D];
        if (top - Math.max((topLoad0 - ra0 + rb0) * scale0, (load0 - rb0 + ra0) * scale0) <= bestGain) continue;
        const gain =
          top - Math.max(heightWith(gpuLoad, scale, hmax, repLoad, ra * D, -1, repLoad, rb * D, 1), heightWith(gpuLoad, scale, h, repLoad, rb * D, -1, repLoad, ra * D, 1));
        if (gain > bestGain) {
          bestGain = gain;
          kind = 2;
          move[0] = ra;
          move[1] = rb;
        }
      }
    }
  }
  return kind;
}

/**
 * 5. Locality: a chunk served off its source GPU (or node) moves to a replica there when the
 * target stays at or below the largest height, so balance is unchanged and traffic drops.
 */
function localize(st: PackState, gpus: Int32Array, gpusPerNode: number): void {
  const { g, D, scale, repStart, repGpu, repLoad, gpuLoad, chunkRep, chunkExp } = st;
  const csrc = st.chunks.src;
  const cl = st.chunks.load;
  const C = chunkRep.length;
  let top = 0;
  for (let h = 0; h < g; h++) top = Math.max(top, height(gpuLoad, scale, h));
  const nodeOf = Int32Array.from(gpus, (gpu) => Math.floor(gpu / gpusPerNode));
  for (let c = 0; c < C; c++) {
    const x = chunkExp[c];
    if (repStart[x + 1] - repStart[x] < 2) continue;
    const r1 = chunkRep[c];
    const src = csrc[c];
    const srcNode = Math.floor(src / gpusPerNode);
    // Rank of a replica's GPU: 2 = the chunk's source GPU, 1 = another GPU of its node, 0 = elsewhere.
    const h1 = repGpu[r1];
    const here = gpus[h1] === src ? 2 : nodeOf[h1] === srcNode ? 1 : 0;
    if (here === 2) continue;
    let best = -1;
    let bestRank = here;
    for (let r = repStart[x]; r < repStart[x + 1]; r++) {
      const h = repGpu[r];
      const k = gpus[h] === src ? 2 : nodeOf[h] === srcNode ? 1 : 0;
      if (k > bestRank && heightWith(gpuLoad, scale, h, cl, c * D, 1, cl, 0, 0) <= top * (1 + 1e-12)) {
        best = r;
        bestRank = k;
      }
    }
    if (best >= 0) moveChunk(c, r1, best, D, cl, repLoad, gpuLoad, repGpu, chunkRep);
  }
}

/** 6. Write phy2log for the group's slots and dispatch for every chunk; the largest load and height. */
function writeOut(st: PackState, ex: Int32Array, gpus: Int32Array, E: number, phy2log: Int32Array, dispatch: Int32Array): { maxLoad: number; maxHeight: number } {
  const { g, S, D, scale, repExp, gpuLoad, chunkRep, chunkExp, gpuRep } = st;
  const csrc = st.chunks.src;
  const C = chunkRep.length;
  const repSlot = new Int32Array(repExp.length);
  for (let h = 0; h < g; h++) {
    for (let j = 0; j < S; j++) {
      const slot = gpus[h] * S + j;
      const r = gpuRep[h * S + j];
      phy2log[slot] = r < 0 ? -1 : ex[repExp[r]];
      if (r >= 0) repSlot[r] = slot;
    }
  }
  for (let c = 0; c < C; c++) dispatch[csrc[c] * E + ex[chunkExp[c]]] = repSlot[chunkRep[c]];
  let maxLoad = 0;
  let maxHeight = 0;
  for (let h = 0; h < g; h++) {
    maxLoad = Math.max(maxLoad, gpuLoad[h * D]);
    maxHeight = Math.max(maxHeight, height(gpuLoad, scale, h));
  }
  return { maxLoad, maxHeight };
}

/**
 * Height of GPU h, max over d of (gpuLoad[h][d] + sign v[off+d] + sign2 v2[off2+d]) * scale[d]
 * and at least 0: its height with load vectors added (sign +1) or removed (-1); sign 0 = none.
 * (Module functions, not closures made anew in every packGroup call: V8's optimized code of a
 * caller that inlined one closure deoptimizes on the next call's, "wrong call target".)
 */
function heightWith(gpuLoad: Float64Array, scale: Float64Array, h: number, v: Float64Array, off: number, sign: number, v2: Float64Array, off2: number, sign2: number): number {
  const D = scale.length;
  let best = 0;
  for (let d = 0; d < D; d++) {
    let l = gpuLoad[h * D + d];
    if (sign !== 0) l += sign * v[off + d];
    if (sign2 !== 0) l += sign2 * v2[off2 + d];
    const y = l * scale[d];
    if (y > best) best = y;
  }
  return best;
}

/** Height of GPU h as it is. */
function height(gpuLoad: Float64Array, scale: Float64Array, h: number): number {
  return heightWith(gpuLoad, scale, h, gpuLoad, 0, 0, gpuLoad, 0, 0);
}

/** gpuLoad[h] += sign * v[off..off+D). */
function addTo(gpuLoad: Float64Array, D: number, h: number, v: Float64Array, off: number, sign: number): void {
  for (let d = 0; d < D; d++) gpuLoad[h * D + d] += sign * v[off + d];
}

/** Chunk c (load cl[c*D..c*D+D)) from replica `from` to replica `to`; replica and GPU loads follow. */
function moveChunk(c: number, from: number, to: number, D: number, cl: Float64Array, repLoad: Float64Array, gpuLoad: Float64Array, repGpu: Int32Array, chunkRep: Int32Array): void {
  for (let d = 0; d < D; d++) {
    repLoad[from * D + d] -= cl[c * D + d];
    repLoad[to * D + d] += cl[c * D + d];
  }
  addTo(gpuLoad, D, repGpu[from], cl, c * D, -1);
  addTo(gpuLoad, D, repGpu[to], cl, c * D, 1);
  chunkRep[c] = to;
}

function indexOnGpu(gpuRep: Int32Array, h: number, S: number, r: number): number {
  for (let j = 0; j < S; j++) if (gpuRep[h * S + j] === r) return j;
  throw new Error('packGroup: replica not on its GPU');
}
