/**
 * The generator's per-layer sampler: every token of a layer draws its k distinct experts
 * (Plackett-Luce on the topic-tilted weights, group-limited when the model has groups) by an exact
 * inverse-CDF search over prefix sums, in buffers allocated once per trace (src/generator.ts).
 */
import type { Rng } from '../rng.js';

/** Shape of the sampler. */
export interface Dims {
  T: number;
  E: number;
  k: number;
  K: number;
  /** Group-limited routing: `topKGroups` of the `G` groups (contiguous, `groupSize` experts) first. */
  grouped: boolean;
  G: number;
  groupSize: number;
  topKGroups: number;
}

/** Everything one layer's sampling needs; allocated once per `generateTrace` call. */
export interface LayerBuffers {
  /** [K*E] expert weights per topic. */
  w: Float64Array;
  /** [K*E] inclusive prefix sums of `w` per topic. */
  cum: Float64Array;
  /** [K*G] weight of each group per topic (from `cum`, so the two agree exactly). */
  gm: Float64Array;
  /** [K*E] guide table: guide[z][i] = smallest e with cum[z][e] > i * total_z / E. */
  guide: Int32Array;
  /** [K] E / total_z, to map a cumulative weight to its guide slot. */
  guideScale: Float64Array;
  /** [G] per-token scratch: group chosen. */
  gsel: Uint8Array;
  /** [S] per-token scratch: the allowed expert ranges (chosen groups, or all experts), ascending. */
  segStart: Int32Array;
  segEnd: Int32Array;
  /** [S] weight left in each range. */
  segMass: Float64Array;
  /** [S] experts left in each range. */
  segLeft: Int32Array;
  /** [k] experts chosen so far by the token, ascending, and their weights. */
  cho: Int32Array;
  choW: Float64Array;
  /** [E] stamp of the token that last chose expert e. */
  stamp: Int32Array;
  /** [E] routed tokens per expert in the last sample. */
  observed: Float64Array;
  /** Uniforms for a chunk of tokens (topKGroups + k per token). */
  uni: Float64Array;
}

export function makeBuffers(dims: Dims): LayerBuffers {
  const { E, K, G, k, grouped, topKGroups } = dims;
  const S = grouped ? topKGroups : 1;
  return {
    w: new Float64Array(K * E),
    cum: new Float64Array(K * E),
    gm: new Float64Array(K * G),
    guide: new Int32Array(K * E),
    guideScale: new Float64Array(K),
    gsel: new Uint8Array(G),
    segStart: new Int32Array(S),
    segEnd: new Int32Array(S),
    segMass: new Float64Array(S),
    segLeft: new Int32Array(S),
    cho: new Int32Array(k),
    choW: new Float64Array(k),
    stamp: new Int32Array(E),
    observed: new Float64Array(E),
    uni: new Float64Array(4096 * ((grouped ? topKGroups : 0) + k)),
  };
}

/** Prefix sums, guide tables and group weights of `buf.w` for every topic. */
export function prepareTopics(dims: Dims, buf: LayerBuffers): void {
  const { E, K, G, groupSize } = dims;
  const { w, cum, gm, guide, guideScale } = buf;
  for (let z = 0; z < K; z++) {
    const base = z * E;
    let c = 0;
    for (let e = 0; e < E; e++) {
      c += w[base + e];
      cum[base + e] = c;
    }
    guideScale[z] = E / c;
    for (let i = 0, e = 0; i < E; i++) {
      const thr = (i * c) / E;
      while (e < E - 1 && cum[base + e] <= thr) e++;
      guide[base + i] = e;
    }
    for (let g = 0; g < G; g++) {
      const lo = g * groupSize;
      gm[z * G + g] = cum[base + lo + groupSize - 1] - (lo > 0 ? cum[base + lo - 1] : 0);
    }
  }
}

/**
 * Smallest e in [a, b) with `cum[base + e] > y` (b - 1 if none): the guide slot of y brackets the
 * answer between guide[slot] and guide[slot + 1], a binary search finishes it, and two short walks
 * absorb the rounding of the slot.
 */
function findAbove(cum: Float64Array, guide: Int32Array, base: number, scale: number, E: number, a: number, b: number, y: number): number {
  let slot = (y * scale) | 0;
  if (slot >= E) slot = E - 1;
  if (slot < 0) slot = 0;
  let lo = guide[base + slot];
  let hi = slot + 1 < E ? guide[base + slot + 1] : b - 1;
  if (lo < a) lo = a;
  if (hi > b - 1) hi = b - 1;
  if (hi < lo) hi = lo;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[base + mid] > y) hi = mid;
    else lo = mid + 1;
  }
  let e = lo;
  while (e < b - 1 && cum[base + e] <= y) e++;
  while (e > a && cum[base + e - 1] > y) e--;
  return e;
}

/**
 * Sample one layer: `out[t*k + j]` = j-th expert of token t, drawn without replacement with
 * probability proportional to `w[topic[t]][e]` among the experts left (for group-limited models,
 * only inside the `topKGroups` groups drawn first the same way by group weight).
 *
 * Each draw is an exact inverse-CDF search: a uniform x over the weight left picks the allowed
 * range, then a guide table plus a binary search on the topic's prefix sums find the smallest e
 * whose cumulative weight, minus the weight of experts already taken at or before e, exceeds x
 * (adding the taken weight the answer passes and searching again, at most j + 1 times). Every
 * token consumes exactly topKGroups + k uniforms and the map from uniforms to experts moves
 * continuously with the weights, so replaying one stream with adjusted weights changes few draws
 * (common random numbers for `fitRounds`). Fills `buf.observed`.
 */
export function sampleLayer(out: Uint16Array, topic: Uint16Array, dims: Dims, buf: LayerBuffers, rng: Rng): void {
  const { T, E, k, grouped, G, groupSize, topKGroups } = dims;
  const { w, cum, gm, guide, guideScale, gsel, segStart, segEnd, segMass, segLeft, cho, choW, stamp, observed, uni } = buf;
  const per = (grouped ? topKGroups : 0) + k;
  const chunk = Math.floor(uni.length / per);
  observed.fill(0);
  stamp.fill(-1);
  let ui = 0;
  for (let t = 0; t < T; t++) {
    if (t % chunk === 0) {
      rng.fillUniform(uni.subarray(0, Math.min(chunk, T - t) * per));
      ui = 0;
    }
    const z = topic[t];
    const base = z * E;
    const scale = guideScale[z];
    let ns = 0;
    if (grouped) {
      const gb = z * G;
      let gtotal = 0;
      for (let g = 0; g < G; g++) {
        gsel[g] = 0;
        gtotal += gm[gb + g];
      }
      for (let j = 0; j < topKGroups; j++) {
        let u = uni[ui++] * gtotal;
        let pick = -1;
        for (let g = 0; g < G; g++) {
          if (gsel[g] !== 0) continue;
          pick = g;
          if (u < gm[gb + g]) break;
          u -= gm[gb + g];
        }
        gsel[pick] = 1;
        gtotal -= gm[gb + pick];
        if (gtotal < 0) gtotal = 0;
      }
      for (let g = 0; g < G; g++) {
        if (gsel[g] === 0) continue;
        segStart[ns] = g * groupSize;
        segEnd[ns] = (g + 1) * groupSize;
        segMass[ns] = gm[gb + g];
        segLeft[ns] = groupSize;
        ns++;
      }
    } else {
      segStart[0] = 0;
      segEnd[0] = E;
      segMass[0] = cum[base + E - 1];
      segLeft[0] = E;
      ns = 1;
    }
    const row = t * k;
    for (let j = 0; j < k; j++) {
      let rem = 0;
      for (let r = 0; r < ns; r++) rem += segMass[r];
      let x = uni[ui++] * rem;
      let s = -1;
      for (let r = 0; r < ns; r++) {
        if (segLeft[r] === 0) continue;
        s = r;
        if (x < segMass[r]) break;
        x -= segMass[r];
      }
      const a = segStart[s];
      const b = segEnd[s];
      // Smallest e in [a, b) whose prefix weight minus the weight taken at or before e exceeds x.
      let y = (a > 0 ? cum[base + a - 1] : 0) + x;
      let i = 0;
      while (i < j && cho[i] < a) i++;
      let e = findAbove(cum, guide, base, scale, E, a, b, y);
      while (i < j && cho[i] <= e) {
        do y += choW[i++];
        while (i < j && cho[i] <= e);
        e = findAbove(cum, guide, base, scale, E, a, b, y);
      }
      if (stamp[e] === t) {
        // Only on ties with zero-weight experts or rounding at the range's end.
        let f = e + 1;
        while (f < b && stamp[f] === t) f++;
        if (f === b) {
          f = e - 1;
          while (f >= a && stamp[f] === t) f--;
        }
        e = f;
      }
      const we = w[base + e];
      stamp[e] = t;
      out[row + j] = e;
      observed[e]++;
      // Keep the taken experts sorted by id.
      let pos = j;
      while (pos > 0 && cho[pos - 1] > e) {
        cho[pos] = cho[pos - 1];
        choW[pos] = choW[pos - 1];
        pos--;
      }
      cho[pos] = e;
      choW[pos] = we;
      if (--segLeft[s] === 0) segMass[s] = 0;
      else {
        const left = segMass[s] - we;
        segMass[s] = left > 0 ? left : 0;
      }
    }
  }
}
