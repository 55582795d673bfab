/**
 * Seeded synthetic per-token routing traces with the structure of real MoE routing, and the
 * fidelity measures that compare a trace with real data.
 *
 * Model of a token's routing (per MoE layer l):
 * - every expert e has a target share `q[l][e]` (from a counts file, else a log-normal popularity
 *   whose top 10% of experts take `skew` of the tokens, as in DeepSeek-V3's SGLang counts);
 * - K latent topics; topic z tilts layer l's experts by `tilt[l][z][e] ~ Gamma(shape_z)` (mean 1)
 *   raised to `topicStrength`, with shapes log-uniform around `topicConcentration` (`topicSpread`):
 *   experts favoured by one topic are used together, which gives the co-activation clusters
 *   (pair lift) of real traces, sharp topics their few strongly linked pairs;
 * - each request has a topic mixture ~ Dirichlet(requestConcentration); its tokens draw their
 *   topic from it (request locality); going to the next layer a token keeps its topic, or redraws
 *   it from its request's mixture with probability `topicDrift` (cross-layer correlation);
 * - the token picks k distinct experts with probability proportional to
 *   `w[l][z][e] = exp(offset[l][e]) * tilt[l][z][e] ^ topicStrength` one after the other without
 *   replacement (Plackett-Luce, the same law as Gumbel-top-k on log w). With expert groups it first
 *   picks `topKGroups` distinct groups with probability proportional to their summed weight, then
 *   the k experts inside them only (group-limited routing);
 * - `offset[l]` is fitted so the layer's expert marginals match `q[l]`: first analytically
 *   (Rosen's approximation of inclusion probabilities per topic, no sampling), then by up to
 *   `fitRounds` (default 0) sampled rounds of `offset += log(q / observed)` replaying the same
 *   random stream (common random numbers), stopping once the total variation distance is below
 *   `fitTolerance`;
 * - with `matchMarginals` (default), the sampling noise left is removed by moving the few surplus
 *   (token, expert) pairs to experts short of their target, drawn by the token's topic, so each
 *   layer's counts equal the target shares times T k (rounded) up to group limits.
 *
 * Defaults were tuned on the DeepSeek-V2-Lite traces (bench/generator-fidelity.ts). Sampling is an
 * exact inverse-CDF search over prefix sums (see `sampleLayer`); everything lives in typed arrays
 * allocated once per call, nothing per token.
 */
import { InputError } from './errors.js';
import { Rng, deriveSeed } from './rng.js';
import type { Model } from './schemas.js';
import type { Counts, Trace } from './types.js';

export interface GenerateOptions {
  model: Model;
  /** Tokens T (>= 1). */
  tokens: number;
  seed: number;
  /** Target per-layer expert marginals [L][E]; default a log-normal popularity (see `skew`). */
  counts?: Counts;
  /** Requests the tokens are split into (sizes log-normal); default max(1, round(T / 128)). */
  requests?: number;
  /** Latent topics K. Default 18. */
  topics?: number;
  /** Gamma shape of each topic's per-expert tilt; smaller = sharper topics. Default 0.45. */
  topicConcentration?: number;
  /**
   * Topics differ in sharpness: topic z uses shape topicConcentration * exp(topicSpread * (2 (z + 0.5) / K - 1)),
   * log-uniform over [c e^-spread, c e^spread]. Sharp topics make the few strongly linked expert
   * pairs, broad ones the bulk. Default 2.2.
   */
  topicSpread?: number;
  /** Exponent applied to the tilt; 0 = no co-activation structure. Default 1.6. */
  topicStrength?: number;
  /** Dirichlet concentration of a request's topic mixture; smaller = fewer topics per request. Default 0.5. */
  requestConcentration?: number;
  /** Probability that a token redraws its topic from one layer to the next. Default 0.02. */
  topicDrift?: number;
  /** Log-normal sigma of request sizes. Default 1.2. */
  requestSizeSigma?: number;
  /** Without counts: share of routed tokens taken by the top 10% of experts. Default 0.3. */
  skew?: number;
  /** Sampled marginal-fitting rounds per layer after the analytic pre-fit (costly: one pass each). Default 0. */
  fitRounds?: number;
  /**
   * After sampling, reassign surplus (token, expert) pairs to experts below their target so each
   * layer's expert counts equal round(q * T * k) (largest remainders). Default true.
   */
  matchMarginals?: boolean;
  /** Stop fitting a layer once its marginal TVD to the target is below this. Default 0.005. */
  fitTolerance?: number;
}

/** Defaults of the tuning knobs (calibrated against the DeepSeek-V2-Lite traces, see bench/generator-fidelity.ts). */
export const GENERATOR_DEFAULTS = {
  topics: 18,
  topicConcentration: 0.45,
  topicSpread: 2.2,
  topicStrength: 1.6,
  requestConcentration: 0.5,
  topicDrift: 0.02,
  requestSizeSigma: 1.2,
  skew: 0.3,
  fitRounds: 0,
  fitTolerance: 0.005,
  matchMarginals: true,
} as const;

const OFFSET_LIMIT = 40;
/** Smallest expert weight, so every expert stays drawable (no zero-mass blocks). */
const MIN_WEIGHT = 1e-250;

function checkNumber(name: string, v: number, ok: (x: number) => boolean, what: string): void {
  if (!Number.isFinite(v) || !ok(v)) throw new InputError(`generator.${name}: must be ${what}, got ${v}`);
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const plow = 0.02425;
  if (p < plow) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - plow) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/**
 * [E] log-normal popularity (sums to 1) whose top 10% of experts hold about `skew` of the mass:
 * deterministic quantiles exp(sigma * Phi^-1((i + 0.5) / E)) with sigma = z_0.9 - Phi^-1(1 - skew),
 * assigned to experts in a random order.
 */
export function lognormalPopularity(numExperts: number, skew: number, rng: Rng): Float64Array {
  const sigma = Math.max(0, normalQuantile(0.9) - normalQuantile(1 - skew));
  const w = new Float64Array(numExperts);
  let sum = 0;
  for (let i = 0; i < numExperts; i++) {
    w[i] = Math.exp(sigma * normalQuantile((i + 0.5) / numExperts));
    sum += w[i];
  }
  for (let i = 0; i < numExperts; i++) w[i] /= sum;
  return rng.shuffle(w);
}

/** Shape of the sampler. */
interface Dims {
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
interface LayerBuffers {
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

function makeBuffers(dims: Dims): LayerBuffers {
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
function prepareTopics(dims: Dims, buf: LayerBuffers): void {
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
function sampleLayer(out: Uint16Array, topic: Uint16Array, dims: Dims, buf: LayerBuffers, rng: Rng): void {
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

interface RepairScratch {
  /** [E] target counts. */
  target: Int32Array;
  /** [E] observed - target. */
  diff: Int32Array;
  frac: Float64Array;
  order: Int32Array;
  /** Experts below their target (first `n` entries used). */
  deficit: Int32Array;
  /** [G] stamp of the (token, slot) whose other experts use group g. */
  gmark: Int32Array;
  /** [E] stamp of the token holding expert e. */
  inTok: Int32Array;
}

/**
 * [E] integer counts summing to `total`, proportional to shares q (largest remainders, ties to the
 * lower id).
 */
function roundShares(q: Float64Array, total: number, target: Int32Array, frac: Float64Array, order: Int32Array): void {
  const E = q.length;
  let assigned = 0;
  for (let e = 0; e < E; e++) {
    const x = q[e] * total;
    target[e] = Math.floor(x);
    frac[e] = x - target[e];
    assigned += target[e];
    order[e] = e;
  }
  let left = total - assigned;
  if (left <= 0) return;
  const sorted = Array.from(order).sort((x, y) => frac[y] - frac[x] || x - y);
  for (let i = 0; i < sorted.length && left > 0; i++, left--) target[sorted[i]]++;
}

/**
 * Move surplus (token, expert) pairs of one layer to experts below their target so the layer's
 * counts equal round(q * T * k). Tokens are visited from a random start in order; in a token, a
 * slot holding a surplus expert e takes an expert f short of its target, not already in the
 * token, and (group-limited models) keeping the token within topKGroups groups, drawn with
 * probability proportional to `tilt[topic][f]^strength * shortfall(f)`. Fixes `buf.observed`.
 * Cost O(T k + moves * |short experts|); moves are about TVD * T * k.
 */
function repairMarginals(
  out: Uint16Array,
  q: Float64Array,
  topic: Uint16Array,
  tiltPow: Float64Array,
  dims: Dims,
  buf: LayerBuffers,
  rep: RepairScratch,
  rng: Rng,
): void {
  const { T, E, k, grouped, groupSize, topKGroups } = dims;
  const { target, diff, deficit, gmark, inTok } = rep;
  const observed = buf.observed;
  roundShares(q, T * k, target, rep.frac, rep.order);
  let surplus = 0;
  let nd = 0;
  for (let e = 0; e < E; e++) {
    diff[e] = observed[e] - target[e];
    if (diff[e] > 0) surplus += diff[e];
    else if (diff[e] < 0) deficit[nd++] = e;
  }
  if (surplus === 0) return;
  gmark.fill(-1);
  inTok.fill(-1);
  let mark = 0;
  const start = rng.int(T);
  for (let n = 0; n < T && surplus > 0; n++) {
    const t = (start + n) % T;
    const row = t * k;
    const zb = topic[t] * E;
    let marked = false;
    for (let j = 0; j < k && surplus > 0; j++) {
      const e = out[row + j];
      if (diff[e] <= 0) continue;
      if (!marked) {
        for (let i = 0; i < k; i++) inTok[out[row + i]] = t;
        marked = true;
      }
      let used = 0;
      if (grouped) {
        mark++;
        for (let i = 0; i < k; i++) {
          if (i === j) continue;
          const g = (out[row + i] / groupSize) | 0;
          if (gmark[g] !== mark) {
            gmark[g] = mark;
            used++;
          }
        }
      }
      let sum = 0;
      for (let d = 0; d < nd; d++) {
        const f = deficit[d];
        if (inTok[f] === t || (grouped && used >= topKGroups && gmark[(f / groupSize) | 0] !== mark)) continue;
        sum += tiltPow[zb + f] * -diff[f];
      }
      if (!(sum > 0)) continue;
      let u = rng.next() * sum;
      let pick = -1;
      for (let d = 0; d < nd; d++) {
        const f = deficit[d];
        if (inTok[f] === t || (grouped && used >= topKGroups && gmark[(f / groupSize) | 0] !== mark)) continue;
        pick = d;
        u -= tiltPow[zb + f] * -diff[f];
        if (u < 0) break;
      }
      const f = deficit[pick];
      out[row + j] = f;
      inTok[e] = -1;
      inTok[f] = t;
      diff[e]--;
      diff[f]++;
      observed[e]--;
      observed[f]++;
      surplus--;
      if (diff[f] === 0) deficit[pick] = deficit[--nd];
    }
  }
}

/**
 * Rosen's successive-sampling approximation of the inclusion probabilities when k items are drawn
 * without replacement with probability proportional to p, each item first admitted with
 * probability `admit[i]` (1 when null): pi_i = admit_i (1 - exp(-lambda p_i)) with sum pi = k.
 * Writes pi into `pi[off..off+n)` (p read from `p[off..off+n)`) and returns lambda. Newton on a
 * concave increasing function, from `lambda0` (a warm start) or from the left, where it converges
 * monotonically; when k is (nearly) all the admitted mass, lambda stops at a large value and every
 * admitted item gets pi ~ admit.
 */
function rosenInclusion(
  p: Float64Array,
  off: number,
  n: number,
  k: number,
  admit: Float64Array | null,
  pi: Float64Array,
  lambda0 = 0,
): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += (admit ? admit[i] : 1) * p[off + i];
  if (k === 1 && admit === null) {
    // One draw: the inclusion probability is exactly the normalised weight.
    for (let i = 0; i < n; i++) pi[off + i] = sum > 0 ? p[off + i] / sum : 1 / n;
    return 1;
  }
  let lambda = lambda0 > 0 ? lambda0 : sum > 0 ? k / sum : 0;
  for (let iter = 0; iter < 60 && sum > 0; iter++) {
    let f = -k;
    let df = 0;
    for (let i = 0; i < n; i++) {
      const ad = admit ? admit[i] : 1;
      const x = Math.exp(-lambda * p[off + i]);
      f += ad * (1 - x);
      df += ad * p[off + i] * x;
    }
    if (Math.abs(f) <= 1e-12 * k || df <= 0) break;
    const step = f / df;
    lambda -= step;
    // A warm start right of the root can overshoot to the left of zero: restart from the left.
    if (!(lambda > 0)) lambda = k / sum;
    else if (Math.abs(step) <= 1e-10 * lambda) break;
  }
  for (let i = 0; i < n; i++) pi[off + i] = (admit ? admit[i] : 1) * (1 - Math.exp(-lambda * p[off + i]));
  return lambda;
}

/** [R] request sizes summing to T, each >= 1, log-normal with sigma. */
function requestSizes(T: number, R: number, sigma: number, rng: Rng): Uint32Array {
  const raw = new Float64Array(R);
  let sum = 0;
  for (let r = 0; r < R; r++) {
    raw[r] = Math.exp(sigma * rng.normal());
    sum += raw[r];
  }
  const sizes = new Uint32Array(R);
  const spare = T - R;
  let cum = 0;
  let prev = 0;
  for (let r = 0; r < R; r++) {
    cum += raw[r];
    const b = r === R - 1 ? spare : Math.min(spare, Math.round((cum / sum) * spare));
    sizes[r] = 1 + b - prev;
    prev = b;
  }
  return sizes;
}

/** [E] target shares of layer l (sum 1), each capped at 1/k (an expert cannot be in a token twice). */
function targetShares(row: ArrayLike<number>, E: number, k: number, where: string): Float64Array {
  const q = new Float64Array(E);
  let sum = 0;
  for (let e = 0; e < E; e++) {
    const v = row[e];
    if (!(v >= 0) || !Number.isFinite(v)) throw new InputError(`${where}[${e}]: count must be a finite non-negative number, got ${v}`);
    q[e] = v;
    sum += v;
  }
  if (!(sum > 0)) throw new InputError(`${where}: all counts are zero`);
  for (let e = 0; e < E; e++) q[e] /= sum;
  // Water-fill: shares above 1/k are infeasible for k distinct experts per token.
  const cap = 1 / k;
  for (let iter = 0; iter < E; iter++) {
    let excess = 0;
    let freeMass = 0;
    for (let e = 0; e < E; e++) {
      if (q[e] > cap) {
        excess += q[e] - cap;
        q[e] = cap;
      } else if (q[e] < cap) freeMass += q[e];
    }
    if (excess <= 1e-15 || freeMass <= 0) break;
    for (let e = 0; e < E; e++) if (q[e] < cap) q[e] += (excess * q[e]) / freeMass;
  }
  return q;
}

/** Total variation distance between a count vector (normalised here) and shares q (sum 1). */
function tvdToShares(observed: Float64Array, q: Float64Array): number {
  let sum = 0;
  for (let e = 0; e < q.length; e++) sum += observed[e];
  if (sum === 0) return 1;
  let d = 0;
  for (let e = 0; e < q.length; e++) d += Math.abs(observed[e] / sum - q[e]);
  return d / 2;
}

/**
 * Generate a synthetic trace for `opts.model`: T tokens in R requests, every MoE layer's top-k
 * expert ids in gate order (the Plackett-Luce draw order). Same options and seed give the same
 * trace. Tokens carry no rank (-1) and weight 1.
 */
export function generateTrace(opts: GenerateOptions): Trace {
  const { model, seed } = opts;
  const T = opts.tokens;
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const k = model.topK;
  checkNumber('tokens', T, (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  checkNumber('seed', seed, (x) => Number.isInteger(x), 'an integer');
  if (E > 65536) throw new InputError(`model.experts: the generator handles at most 65536 experts, got ${E}`);
  const R = opts.requests ?? Math.max(1, Math.round(T / 128));
  checkNumber('requests', R, (x) => Number.isInteger(x) && x >= 1 && x <= T, `an integer in 1..${T}`);
  const K = opts.topics ?? GENERATOR_DEFAULTS.topics;
  checkNumber('topics', K, (x) => Number.isInteger(x) && x >= 1 && x <= 65535, 'an integer in 1..65535');
  const alpha = opts.topicConcentration ?? GENERATOR_DEFAULTS.topicConcentration;
  checkNumber('topicConcentration', alpha, (x) => x > 0, 'positive');
  const spread = opts.topicSpread ?? GENERATOR_DEFAULTS.topicSpread;
  checkNumber('topicSpread', spread, (x) => x >= 0 && x <= 10, 'in [0, 10]');
  const strength = opts.topicStrength ?? GENERATOR_DEFAULTS.topicStrength;
  checkNumber('topicStrength', strength, (x) => x >= 0, 'non-negative');
  const beta = opts.requestConcentration ?? GENERATOR_DEFAULTS.requestConcentration;
  checkNumber('requestConcentration', beta, (x) => x > 0, 'positive');
  const drift = opts.topicDrift ?? GENERATOR_DEFAULTS.topicDrift;
  checkNumber('topicDrift', drift, (x) => x >= 0 && x <= 1, 'in [0, 1]');
  const sizeSigma = opts.requestSizeSigma ?? GENERATOR_DEFAULTS.requestSizeSigma;
  checkNumber('requestSizeSigma', sizeSigma, (x) => x >= 0, 'non-negative');
  const skew = opts.skew ?? GENERATOR_DEFAULTS.skew;
  checkNumber('skew', skew, (x) => x > 0 && x < 1, 'in (0, 1)');
  const fitRounds = opts.fitRounds ?? GENERATOR_DEFAULTS.fitRounds;
  checkNumber('fitRounds', fitRounds, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
  const fitTolerance = opts.fitTolerance ?? GENERATOR_DEFAULTS.fitTolerance;
  checkNumber('fitTolerance', fitTolerance, (x) => x >= 0, 'non-negative');
  const matchMarginals = opts.matchMarginals ?? GENERATOR_DEFAULTS.matchMarginals;
  const counts = opts.counts;
  if (counts !== undefined && (counts.numLayers !== L || counts.numExperts !== E || counts.counts.length !== L)) {
    throw new InputError(
      `generator.counts: shape [${counts.numLayers}][${counts.numExperts}] does not match ${model.name} (${L} MoE layers x ${E} experts)`,
    );
  }
  const grouped = model.groups !== undefined && model.groups > 1 && (model.topKGroups ?? model.groups) < model.groups;
  const G = grouped ? (model.groups as number) : 1;
  const dims: Dims = { T, E, k, K, grouped, G, groupSize: E / G, topKGroups: grouped ? (model.topKGroups as number) : 1 };

  // Requests: sizes, token -> request, and each request's topic CDF [R][K].
  const setupRng = new Rng(deriveSeed(seed, 0x5e7, 0));
  const sizes = requestSizes(T, R, sizeSigma, setupRng);
  const request = new Uint32Array(T);
  for (let r = 0, t = 0; r < R; r++) for (let i = 0; i < sizes[r]; i++) request[t++] = r;
  const mixCdf = new Float64Array(R * K);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let z = 0; z < K; z++) {
      const g = setupRng.gamma(beta);
      mixCdf[r * K + z] = g;
      s += g;
    }
    let c = 0;
    for (let z = 0; z < K; z++) {
      c += s > 0 ? mixCdf[r * K + z] / s : 1 / K;
      mixCdf[r * K + z] = c;
    }
    mixCdf[r * K + K - 1] = 1;
  }
  const topicRng = new Rng(deriveSeed(seed, 0x70c, 0));
  /** Topic of a token of request r from a uniform u: the request's topic CDF inverted. */
  const drawTopic = (r: number, u: number): number => {
    const off = r * K;
    let lo = 0;
    let hi = K - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (mixCdf[off + mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const topic = new Uint16Array(T);
  const topicU = new Float64Array(T);

  const buf = makeBuffers(dims);
  const rep: RepairScratch = {
    target: new Int32Array(E),
    diff: new Int32Array(E),
    frac: new Float64Array(E),
    order: new Int32Array(E),
    deficit: new Int32Array(E),
    gmark: new Int32Array(dims.G),
    inTok: new Int32Array(E),
  };
  const tiltPow = new Float64Array(K * E);
  const offset = new Float64Array(E);
  const pi = new Float64Array(K * E);
  const gpi = new Float64Array(K * G);
  const admit = new Float64Array(E);
  const expOffset = new Float64Array(E);
  const lambdaE = new Float64Array(K);
  const lambdaG = new Float64Array(K);
  const topicFreq = new Float64Array(K);
  const experts: Uint16Array[] = [];
  const total = T * k;

  /** Weights from the offsets, w = exp(offset) * tilt^strength (floored), then prefix sums. */
  const setWeights = (): void => {
    for (let e = 0; e < E; e++) expOffset[e] = Math.exp(offset[e]);
    for (let z = 0; z < K; z++) {
      const base = z * E;
      for (let e = 0; e < E; e++) buf.w[base + e] = Math.max(MIN_WEIGHT, expOffset[e] * tiltPow[base + e]);
    }
    prepareTopics(dims, buf);
  };

  for (let l = 0; l < L; l++) {
    // Topics of this layer's tokens: first layer from the request mixture, then keep or redraw.
    // One uniform per token: below `drift` it redraws, and u / drift is again uniform.
    topicFreq.fill(0);
    topicRng.fillUniform(topicU);
    for (let t = 0; t < T; t++) {
      const u = topicU[t];
      if (l === 0) topic[t] = drawTopic(request[t], u);
      else if (u < drift) topic[t] = drawTopic(request[t], u / drift);
      topicFreq[topic[t]]++;
    }
    const layerRng = new Rng(deriveSeed(seed, l, 1));
    const q =
      counts !== undefined
        ? targetShares(counts.counts[l], E, k, `generator.counts[${l}]`)
        : targetShares(lognormalPopularity(E, skew, layerRng), E, k, `generator.popularity[${l}]`);
    // Topic tilts: Gamma(alpha) per expert, normalised to mean 1 per topic, raised to strength.
    for (let z = 0; z < K; z++) {
      const shape = alpha * Math.exp(spread * ((2 * (z + 0.5)) / K - 1));
      let s = 0;
      for (let e = 0; e < E; e++) {
        const g = layerRng.gamma(shape);
        tiltPow[z * E + e] = g;
        s += g;
      }
      const mean = s / E;
      for (let e = 0; e < E; e++) {
        const v = mean > 0 ? tiltPow[z * E + e] / mean : 1;
        tiltPow[z * E + e] = strength === 0 ? 1 : Math.pow(v, strength);
      }
    }
    for (let e = 0; e < E; e++) offset[e] = q[e] > 0 ? Math.log(q[e]) : -OFFSET_LIMIT;
    // Pre-fit without sampling: marginals predicted by Rosen's approximation per topic (groups
    // first, then experts inside the admitted groups), mixed by this layer's topic frequencies;
    // the sampled rounds below correct what the approximation misses.
    if (k < E) {
      for (let iter = 0; iter < 20; iter++) {
        setWeights();
        buf.observed.fill(0);
        for (let z = 0; z < K; z++) {
          if (topicFreq[z] === 0) continue;
          if (grouped) {
            lambdaG[z] = rosenInclusion(buf.gm, z * G, G, dims.topKGroups, null, gpi, lambdaG[z]);
            for (let e = 0; e < E; e++) admit[e] = gpi[z * G + ((e / dims.groupSize) | 0)];
            lambdaE[z] = rosenInclusion(buf.w, z * E, E, k, admit, pi, lambdaE[z]);
          } else lambdaE[z] = rosenInclusion(buf.w, z * E, E, k, null, pi, lambdaE[z]);
          const f = topicFreq[z];
          for (let e = 0; e < E; e++) buf.observed[e] += f * pi[z * E + e];
        }
        // Multiplicative correction; converges linearly (about x0.65 per round). Stop when the
        // predicted marginals are within 1e-3 TVD, well under the sampling noise of any useful T.
        let tvd = 0;
        for (let e = 0; e < E; e++) {
          const obs = buf.observed[e] / total;
          tvd += Math.abs(obs - q[e]);
          const step = Math.log((q[e] + 1e-12) / (obs + 1e-12));
          offset[e] = Math.max(-OFFSET_LIMIT, Math.min(OFFSET_LIMIT, offset[e] + step));
        }
        if (tvd / 2 < 1e-3) break;
      }
    }
    const out = new Uint16Array(T * k);
    const sampleSeed = deriveSeed(seed, l, 2);
    for (let round = 0; ; round++) {
      setWeights();
      // Common random numbers: every round replays the same stream, so rounds differ only by weights.
      sampleLayer(out, topic, dims, buf, new Rng(sampleSeed));
      if (round >= fitRounds || tvdToShares(buf.observed, q) <= fitTolerance) break;
      for (let e = 0; e < E; e++) {
        const obs = buf.observed[e] / total;
        const step = Math.log((q[e] + 0.5 / total) / (obs + 0.5 / total));
        offset[e] = Math.max(-OFFSET_LIMIT, Math.min(OFFSET_LIMIT, offset[e] + step));
      }
    }
    if (matchMarginals) repairMarginals(out, q, topic, tiltPow, dims, buf, rep, layerRng);
    experts.push(out);
  }

  return {
    numLayers: L,
    numExperts: E,
    topK: k,
    numTokens: T,
    numRequests: R,
    request,
    rank: new Int32Array(T).fill(-1),
    weight: null,
    experts,
  };
}

// ---------------------------------------------------------------------------------------------
// Fidelity measures
// ---------------------------------------------------------------------------------------------

/** [E] routed (token, expert) weight of layer l. */
function layerLoads(trace: Trace, l: number): Float64Array {
  const { numTokens: T, topK: k, numExperts: E } = trace;
  const ex = trace.experts[l];
  const out = new Float64Array(E);
  for (let t = 0; t < T; t++) {
    const w = trace.weight ? trace.weight[t] : 1;
    for (let j = 0; j < k; j++) out[ex[t * k + j]] += w;
  }
  return out;
}

/** [L] total variation distance between each layer's expert marginals in `trace` and in `counts`. */
export function marginalTvd(trace: Trace, counts: Counts): Float64Array {
  if (counts.numLayers !== trace.numLayers || counts.numExperts !== trace.numExperts) {
    throw new InputError(
      `marginalTvd: counts [${counts.numLayers}][${counts.numExperts}] vs trace [${trace.numLayers}][${trace.numExperts}]`,
    );
  }
  const out = new Float64Array(trace.numLayers);
  for (let l = 0; l < trace.numLayers; l++) {
    const loads = layerLoads(trace, l);
    const row = counts.counts[l];
    let sum = 0;
    for (let e = 0; e < row.length; e++) sum += row[e];
    const q = new Float64Array(row.length);
    for (let e = 0; e < row.length; e++) q[e] = sum > 0 ? row[e] / sum : 0;
    out[l] = tvdToShares(loads, q);
  }
  return out;
}

export interface PairLiftStats {
  /** Quantiles of lift over the supported pairs, in the order of `qs`. */
  quantiles: number[];
  max: number;
  /** Fraction of supported pairs with lift > 2. */
  fracAbove2: number;
  /** Fraction of supported pairs with lift < 0.5. */
  fracBelowHalf: number;
  /** Pairs with enough support (expected co-occurrences >= minExpected). */
  pairs: number;
}

/**
 * Co-activation lift of expert pairs in layer l: lift(i, j) = P(i and j in one token) /
 * (P(i) P(j)), P = fraction of tokens (weighted) using the expert. Only pairs whose expected
 * co-occurrence under independence, T * P(i) * P(j), is at least `minExpected` count.
 * Quantiles use linear interpolation between order statistics.
 */
export function pairLiftQuantiles(trace: Trace, layer: number, qs: readonly number[], minExpected = 5): PairLiftStats {
  const { numTokens: T, topK: k, numExperts: E } = trace;
  const ex = trace.experts[layer];
  const single = new Float64Array(E);
  const pair = new Float64Array(E * E);
  let W = 0;
  for (let t = 0; t < T; t++) {
    const w = trace.weight ? trace.weight[t] : 1;
    W += w;
    const row = t * k;
    for (let a = 0; a < k; a++) {
      const ea = ex[row + a];
      single[ea] += w;
      for (let b = a + 1; b < k; b++) {
        const eb = ex[row + b];
        if (ea < eb) pair[ea * E + eb] += w;
        else pair[eb * E + ea] += w;
      }
    }
  }
  const lifts: number[] = [];
  for (let i = 0; i < E; i++) {
    for (let j = i + 1; j < E; j++) {
      const pi = single[i] / W;
      const pj = single[j] / W;
      if (W * pi * pj < minExpected) continue;
      lifts.push(pair[i * E + j] / W / (pi * pj));
    }
  }
  const sorted = Float64Array.from(lifts).sort();
  const n = sorted.length;
  const quantile = (q: number): number => {
    if (n === 0) return Number.NaN;
    const pos = q * (n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(n - 1, lo + 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  };
  let above = 0;
  let below = 0;
  for (let i = 0; i < n; i++) {
    if (sorted[i] > 2) above++;
    if (sorted[i] < 0.5) below++;
  }
  return {
    quantiles: qs.map(quantile),
    max: n > 0 ? sorted[n - 1] : Number.NaN,
    fracAbove2: n > 0 ? above / n : Number.NaN,
    fracBelowHalf: n > 0 ? below / n : Number.NaN,
    pairs: n,
  };
}

/**
 * Cross-layer correlation from layer l to l+1: over all (expert a in l, expert b in l+1) pairs of
 * the same token, the share of transitions that go to each a's top `fraction` of successors
 * (ceil(fraction * E) of them), summed over a. Independent layers give roughly the share the top
 * `fraction` of experts hold; the DeepSeek-V2-Lite traces give ~0.43-0.56 at fraction 0.2.
 */
export function successorCoverage(trace: Trace, layer: number, fraction = 0.2): number {
  const { numTokens: T, topK: k, numExperts: E } = trace;
  if (layer + 1 >= trace.numLayers) throw new InputError(`successorCoverage: layer ${layer} has no next layer`);
  const a = trace.experts[layer];
  const b = trace.experts[layer + 1];
  const trans = new Float64Array(E * E);
  for (let t = 0; t < T; t++) {
    const w = trace.weight ? trace.weight[t] : 1;
    for (let i = 0; i < k; i++) {
      const ea = a[t * k + i] * E;
      for (let j = 0; j < k; j++) trans[ea + b[t * k + j]] += w;
    }
  }
  const top = Math.max(1, Math.ceil(fraction * E));
  let covered = 0;
  let total = 0;
  for (let e = 0; e < E; e++) {
    const row = trans.subarray(e * E, e * E + E).slice().sort();
    for (let i = 0; i < E; i++) total += row[i];
    for (let i = E - top; i < E; i++) covered += row[i];
  }
  return total > 0 ? covered / total : 0;
}

/**
 * Request locality of layer l: the expected number of experts two distinct tokens of the same
 * request share, divided by the same for two distinct tokens of the whole trace (1 = no locality).
 * Exact: sum over requests r and experts e of c_re (c_re - 1) over sum_r n_r (n_r - 1), against
 * sum_e c_e (c_e - 1) / (T (T - 1)); token weights are ignored.
 */
export function requestAffinity(trace: Trace, layer: number): number {
  const { numTokens: T, topK: k, numExperts: E } = trace;
  const ex = trace.experts[layer];
  // Tokens are not required to be grouped by request: count per (request, expert) sparsely by
  // sorting token indices by request.
  const order = new Uint32Array(T);
  for (let t = 0; t < T; t++) order[t] = t;
  order.sort((x, y) => trace.request[x] - trace.request[y] || x - y);
  const cnt = new Float64Array(E);
  const global = new Float64Array(E);
  let within = 0;
  let pairsWithin = 0;
  let start = 0;
  while (start < T) {
    const r = trace.request[order[start]];
    let end = start;
    while (end < T && trace.request[order[end]] === r) end++;
    cnt.fill(0);
    for (let i = start; i < end; i++) {
      const t = order[i];
      for (let j = 0; j < k; j++) cnt[ex[t * k + j]]++;
    }
    for (let e = 0; e < E; e++) {
      within += cnt[e] * (cnt[e] - 1);
      global[e] += cnt[e];
    }
    const n = end - start;
    pairsWithin += n * (n - 1);
    start = end;
  }
  let all = 0;
  for (let e = 0; e < E; e++) all += global[e] * (global[e] - 1);
  if (pairsWithin === 0 || all === 0) return Number.NaN;
  return within / pairsWithin / (all / (T * (T - 1)));
}
