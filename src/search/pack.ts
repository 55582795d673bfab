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
  const D = scale.length;
  const slots = g * S;
  if (m > slots) throw new Error(`packGroup: ${m} experts do not fit in ${slots} slots`);
  const cstart = chunks.start;
  const csrc = chunks.src;
  const C = csrc.length;
  const cl = chunks.load;

  // 1. Replica counts: greedy on load / count, at most one per GPU and per positive chunk.
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
  const repGpu = new Int32Array(R).fill(-1); // local GPU index
  const repLoad = new Float64Array(R * D);
  const gpuLoad = new Float64Array(g * D);
  const gpuUsed = new Int32Array(g);
  const holds = new Uint8Array(m * g); // holds[x*g + h] = expert x has a replica on local GPU h

  // 2. LPT on the expected load: replicas by share descending, each onto the least-loaded GPU with
  // a free slot that does not hold the expert yet (any GPU with a free slot when impossible).
  const order = Array.from({ length: R }, (_, r) => r);
  const share = (r: number): number => total[repExp[r]] / reps[repExp[r]];
  order.sort((a, b) => share(b) - share(a) || a - b);
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
    gpuLoad[best * D] += share(r);
  }

  // Height of GPU h with load vector v added (sign +1) or removed (-1).
  const heightWith = (h: number, v: Float64Array, off: number, sign: number, v2: Float64Array, off2: number, sign2: number): number => {
    let best = 0;
    for (let d = 0; d < D; d++) {
      let l = gpuLoad[h * D + d];
      if (sign !== 0) l += sign * v[off + d];
      if (sign2 !== 0) l += sign2 * v2[off2 + d];
      const y = l * scale[d];
      if (y > best) best = y;
    }
    return best;
  };
  const height = (h: number): number => heightWith(h, cl, 0, 0, cl, 0, 0);
  const addTo = (h: number, v: Float64Array, off: number, sign: number): void => {
    for (let d = 0; d < D; d++) gpuLoad[h * D + d] += sign * v[off + d];
  };

  // 3. Dispatch: chunks by expected load descending, each to the replica leaving the lowest height.
  gpuLoad.fill(0);
  const chunkRep = new Int32Array(C);
  const chunkExp = new Int32Array(C);
  for (let x = 0; x < m; x++) for (let c = cstart[x]; c < cstart[x + 1]; c++) chunkExp[c] = x;
  // Experts by mean chunk load descending, their chunks in order (all callers give the chunks of
  // one expert equal expected loads, so this is the chunk order by load, at O(m log m)).
  const xorder = Array.from({ length: m }, (_, x) => x);
  const meanChunk = (x: number): number => total[x] / Math.max(1, cstart[x + 1] - cstart[x]);
  xorder.sort((a, b) => meanChunk(b) - meanChunk(a) || a - b);
  const corder = new Int32Array(C);
  let ci = 0;
  for (const x of xorder) for (let c = cstart[x]; c < cstart[x + 1]; c++) corder[ci++] = c;
  for (const c of corder) {
    const x = chunkExp[c];
    let best = -1;
    let bestH = Infinity;
    for (let r = repStart[x]; r < repStart[x + 1]; r++) {
      const hgt = heightWith(repGpu[r], cl, c * D, 1, cl, 0, 0);
      if (hgt < bestH || (hgt === bestH && gpuLoad[repGpu[r] * D] < gpuLoad[repGpu[best] * D])) {
        bestH = hgt;
        best = r;
      }
    }
    chunkRep[c] = best;
    for (let d = 0; d < D; d++) repLoad[best * D + d] += cl[c * D + d];
    addTo(repGpu[best], cl, c * D, 1);
  }

  // Slot table of the group: gpuRep[h*S + j] = replica id or -1.
  const gpuRep = new Int32Array(g * S).fill(-1);
  gpuUsed.fill(0);
  for (let r = 0; r < R; r++) gpuRep[repGpu[r] * S + gpuUsed[repGpu[r]]++] = r;

  const moveChunk = (c: number, from: number, to: number): void => {
    for (let d = 0; d < D; d++) {
      repLoad[from * D + d] -= cl[c * D + d];
      repLoad[to * D + d] += cl[c * D + d];
    }
    addTo(repGpu[from], cl, c * D, -1);
    addTo(repGpu[to], cl, c * D, 1);
    chunkRep[c] = to;
  };

  // 4. Refine the largest height: chunk moves between replicas, replica swaps and replica moves.
  // Every move shifts load between the top GPU and one other GPU h only, so in each dimension the
  // two heights after it sum to (load[top][d] + load[h][d]) * scale[d]: the larger is at least
  // half of that, and the move gains at most gainCap[h] = top - max_d (that sum) / 2. A GPU whose
  // cap (plus a margin for rounding) is not above the best gain so far offers no better move and
  // is skipped: the move chosen is the one the full scan would choose.
  const gainCap = new Float64Array(g);
  const scale0 = scale[0];
  let moves = 0;
  for (; moves < maxIters; moves++) {
    let hmax = 0;
    let top = height(0);
    for (let h = 1; h < g; h++) {
      const y = height(h);
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
    // the largest cap. A GPU whose cap is below it offers no move the scan could choose either.
    let reach = 0;
    let hlow = -1;
    for (let h = 0; h < g; h++) if (h !== hmax && (hlow < 0 || gainCap[h] > gainCap[hlow])) hlow = h;
    for (let j = 0; j < S && hlow >= 0; j++) {
      const ra = gpuRep[hmax * S + j];
      if (ra < 0 || holds[repExp[ra] * g + hlow]) continue;
      for (let i = 0; i < S; i++) {
        const rb = gpuRep[hlow * S + i];
        let gain: number;
        if (rb < 0) gain = top - Math.max(heightWith(hmax, repLoad, ra * D, -1, cl, 0, 0), heightWith(hlow, repLoad, ra * D, 1, cl, 0, 0));
        else if (holds[repExp[rb] * g + hmax]) continue;
        else gain = top - Math.max(heightWith(hmax, repLoad, ra * D, -1, repLoad, rb * D, 1), heightWith(hlow, repLoad, rb * D, -1, repLoad, ra * D, 1));
        if (gain > reach) reach = gain;
      }
    }
    let bestGain = 1e-12 * (top || 1);
    let kind = 0;
    let a1 = -1;
    let a2 = -1;
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
            if (hereAfter < 0) hereAfter = heightWith(hmax, cl, c * D, -1, cl, 0, 0);
            const gain = top - Math.max(hereAfter, heightWith(h2, cl, c * D, 1, cl, 0, 0));
            if (gain > bestGain) {
              bestGain = gain;
              kind = 1;
              a1 = c;
              a2 = r2;
            }
          }
        }
      }
      // (b) swap this replica with one elsewhere; (c) move it to a free slot.
      // Dimension 0 alone, computed as heightWith does, bounds a gain from above: a candidate
      // whose dimension-0 gain is not above the best is skipped without the full heights.
      const topLoad0 = gpuLoad[hmax * D];
      const ra0 = repLoad[ra * D];
      for (let h = 0; h < g; h++) {
        if (h === hmax || holds[xa * g + h] || gainCap[h] <= bestGain || gainCap[h] < reach) continue;
        const load0 = gpuLoad[h * D];
        for (let i = 0; i < S; i++) {
          const rb = gpuRep[h * S + i];
          if (rb < 0) {
            if (top - Math.max((topLoad0 - ra0) * scale0, (load0 + ra0) * scale0) <= bestGain) continue;
            const gain = top - Math.max(heightWith(hmax, repLoad, ra * D, -1, cl, 0, 0), heightWith(h, repLoad, ra * D, 1, cl, 0, 0));
            if (gain > bestGain) {
              bestGain = gain;
              kind = 3;
              a1 = ra;
              a2 = h * S + i;
            }
            continue;
          }
          const xb = repExp[rb];
          if (holds[xb * g + hmax]) continue;
          const rb0 = repLoad[rb * D];
          if (top - Math.max((topLoad0 - ra0 + rb0) * scale0, (load0 - rb0 + ra0) * scale0) <= bestGain) continue;
          const gain =
            top - Math.max(heightWith(hmax, repLoad, ra * D, -1, repLoad, rb * D, 1), heightWith(h, repLoad, rb * D, -1, repLoad, ra * D, 1));
          if (gain > bestGain) {
            bestGain = gain;
            kind = 2;
            a1 = ra;
            a2 = rb;
          }
        }
      }
    }
    if (kind === 0) break;
    if (kind === 1) {
      // Move the chunk, then keep moving further chunks of the same replica to the same target
      // while the larger of the two heights still drops (one bulk transfer, not many iterations).
      const r1 = chunkRep[a1];
      const h1 = repGpu[r1];
      const h2 = repGpu[a2];
      const x = repExp[r1];
      moveChunk(a1, r1, a2);
      for (let c = cstart[x]; c < cstart[x + 1]; c++) {
        if (chunkRep[c] !== r1 || cl[c * D] <= 0) continue;
        const now = Math.max(height(h1), height(h2));
        if (Math.max(heightWith(h1, cl, c * D, -1, cl, 0, 0), heightWith(h2, cl, c * D, 1, cl, 0, 0)) < now - 1e-12 * now) moveChunk(c, r1, a2);
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
      addTo(ha, repLoad, a1 * D, -1);
      addTo(ha, repLoad, a2 * D, 1);
      addTo(hb, repLoad, a2 * D, -1);
      addTo(hb, repLoad, a1 * D, 1);
    } else {
      const ha = repGpu[a1];
      const hb = Math.floor(a2 / S);
      gpuRep[ha * S + indexOnGpu(gpuRep, ha, S, a1)] = -1;
      gpuRep[a2] = a1;
      holds[repExp[a1] * g + ha] = 0;
      holds[repExp[a1] * g + hb] = 1;
      repGpu[a1] = hb;
      addTo(ha, repLoad, a1 * D, -1);
      addTo(hb, repLoad, a1 * D, 1);
    }
  }

  // 5. Locality: a chunk served off its source GPU (or node) moves to a replica there when the
  // target stays at or below the largest height, so balance is unchanged and traffic drops.
  if (gpusPerNode > 0) {
    let top = 0;
    for (let h = 0; h < g; h++) top = Math.max(top, height(h));
    const nodeOf = Int32Array.from(gpus, (gpu) => Math.floor(gpu / gpusPerNode));
    // 2: the chunk's source GPU, 1: another GPU of its node, 0: elsewhere.
    const rank = (src: number, srcNode: number, h: number): number => (gpus[h] === src ? 2 : nodeOf[h] === srcNode ? 1 : 0);
    for (let c = 0; c < C; c++) {
      const x = chunkExp[c];
      if (repStart[x + 1] - repStart[x] < 2) continue;
      const r1 = chunkRep[c];
      const src = csrc[c];
      const srcNode = Math.floor(src / gpusPerNode);
      const here = rank(src, srcNode, repGpu[r1]);
      if (here === 2) continue;
      let best = -1;
      let bestRank = here;
      for (let r = repStart[x]; r < repStart[x + 1]; r++) {
        const k = rank(src, srcNode, repGpu[r]);
        if (k > bestRank && heightWith(repGpu[r], cl, c * D, 1, cl, 0, 0) <= top * (1 + 1e-12)) {
          best = r;
          bestRank = k;
        }
      }
      if (best >= 0) moveChunk(c, r1, best);
    }
  }

  // Write out: slot of replica r, then phy2log and dispatch.
  const repSlot = new Int32Array(R);
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
    maxHeight = Math.max(maxHeight, height(h));
  }
  return { maxLoad, maxHeight, moves };
}

function indexOnGpu(gpuRep: Int32Array, h: number, S: number, r: number): number {
  for (let j = 0; j < S; j++) if (gpuRep[h * S + j] === r) return j;
  throw new Error('packGroup: replica not on its GPU');
}

/**
 * Per-dimension GPU loads of a finished layout: [NG*D], where chunk (s, e) carries the load vector
 * `vec(s, e)` written into `out` at offset 0.
 */
export function gpuLoadsOf(
  dispatch: Int32Array,
  E: number,
  numGpus: number,
  S: number,
  D: number,
  vec: (s: number, e: number, out: Float64Array) => void,
): Float64Array {
  const loads = new Float64Array(numGpus * D);
  const v = new Float64Array(D);
  for (let s = 0; s < numGpus; s++) {
    for (let e = 0; e < E; e++) {
      const slot = dispatch[s * E + e];
      if (slot < 0) continue;
      vec(s, e, v);
      const h = Math.floor(slot / S);
      for (let d = 0; d < D; d++) loads[h * D + d] += v[d];
    }
  }
  return loads;
}
