/**
 * Seeded synthetic per-token routing traces with the structure of real MoE routing. The stages
 * live in src/generator/: popularity.ts (log-normal shares without counts), sampler.ts (the
 * per-layer draw), marginals.ts (target shares, offset fit, repair); fidelity.ts has the measures
 * that compare a trace with real data.
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
import { repairMarginals, rosenInclusion, targetShares, tvdToShares, type RepairScratch } from './generator/marginals.js';
import { lognormalPopularity } from './generator/popularity.js';
import { makeBuffers, prepareTopics, sampleLayer, type Dims } from './generator/sampler.js';
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
