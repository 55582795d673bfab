/**
 * Synthetic tokens that match per-expert counts: the cost model's stand-in for co-activation when a
 * workload gives counts only (`logical_count [L][E]`), and a cheap generator of random traces.
 */
import { InputError } from '../errors.js';
import type { Rng } from '../rng.js';
import type { TokenSets } from '../types.js';

/**
 * Sample `n` tokens of one layer from the per-expert counts `[E]`.
 *
 * Each token draws `k` distinct experts one after the other, each draw with probability
 * proportional to the counts of the experts not yet chosen (weighted sampling without
 * replacement). Experts with zero count are never chosen unless fewer than `k` experts have a
 * positive count; the remaining places are then filled uniformly from the unchosen experts.
 * Sources are assigned round robin (`source[i] = i mod numGpus`), every weight is 1.
 *
 * Note: sequential sampling without replacement slightly flattens the marginals for k > 1 (a hot
 * expert is chosen by a little less than `k * counts[e] / sum` of the tokens); the evaluator only
 * uses the sample for traffic and takes loads from the counts themselves.
 *
 * Draws use an alias table with redraws of taken experts while at least half of the mass is
 * free, and a linear pass over the experts otherwise, so every draw follows the conditional
 * distribution exactly. Cost: O(E + n k) expected time for moderately skewed counts (O(n k E) at
 * worst), O(E + n k) memory; nothing is allocated per token.
 *
 * @param counts [E] non-negative token counts per logical expert.
 * @param into   token sets to write into instead of new arrays (e.g. the previous layer's sample,
 *               with room for n tokens of k experts): the result shares their arrays.
 * @returns TokenSets with `experts [n*k]` (draw order), `source [n]`, `weight [n]` = 1.
 */
export function sampleTokensFromCounts(counts: Float64Array, k: number, n: number, numGpus: number, rng: Rng, into?: TokenSets): TokenSets {
  const E = counts.length;
  if (!Number.isInteger(k) || k < 1 || k > E) throw new InputError(`cannot draw ${k} distinct experts out of ${E}`, { field: 'topK' });
  if (!Number.isInteger(n) || n < 0) throw new InputError(`sample size ${n} is not a non-negative integer`, { field: 'sampleTokens' });
  if (!Number.isInteger(numGpus) || numGpus < 1 || numGpus > 65536) throw new InputError(`numGpus ${numGpus} out of range 1..65536`, { field: 'numGpus' });
  if (E > 65536) throw new InputError(`${E} experts do not fit 16-bit expert ids`, { field: 'experts' });
  let positive = 0;
  for (let e = 0; e < E; e++) {
    const c = counts[e];
    if (!(c >= 0) || !Number.isFinite(c)) throw new InputError(`count ${c} is not a finite non-negative number`, { field: `counts[${e}]` });
    if (c > 0) positive++;
  }

  let total = 0;
  for (let e = 0; e < E; e++) total += counts[e];
  const { prob, alias } = aliasTable(counts, total);

  const fits = into !== undefined && into.experts.length >= n * k && into.source.length >= n && into.weight.length >= n;
  const experts = fits ? into.experts : new Uint16Array(n * k);
  const source = fits ? into.source : new Uint16Array(n);
  const weight = fits ? into.weight : new Float64Array(n);
  weight.fill(1, 0, n);
  for (let i = 0, g = 0; i < n; i++) {
    source[i] = g;
    g = g + 1 === numGpus ? 0 : g + 1;
  }
  // The draws of most tokens take the fast path (`drawFast`, whose loop calls nothing): every
  // expert has a positive count (or fewer than k have: all tokens go the general way), the
  // token's uniforms are in the current block, and each draw is an alias draw (at least half
  // the mass free). A token for which one of these fails is drawn again from its first uniform
  // by `drawToken`, the general rule: the same experts from the same uniforms and blocks.
  // stamp[e] = the last token that chose e (< i: free for token i); zero counts never free.
  const stamp = new Int32Array(E);
  for (let e = 0; e < E; e++) stamp[e] = counts[e] > 0 ? -1 : 0x7fffffff;
  // While the k - 1 largest counts leave more than half of the total (with a margin far above
  // rounding), every draw of a token is an alias draw: no need to follow the mass left.
  const desc = Float64Array.from(counts).sort().reverse();
  let heaviest = 0;
  for (let j = 0; j < k - 1; j++) heaviest += desc[j];
  const s: SamplerState = {
    counts,
    prob,
    alias,
    chosen: new Uint8Array(E),
    picked: new Int32Array(k),
    stamp,
    weightedDraws: Math.min(k, positive),
    total,
    track: !(heaviest <= (0.5 - 1e-9) * total),
    rng,
    // Uniforms are drawn from `rng` in blocks (the same stream as successive rng.next() calls).
    buf: new Float64Array(BLOCK),
    bi: BLOCK,
  };
  const fast = s.weightedDraws === k;
  // Runs of tokens: the fast path is a small function called often, which V8 optimizes early
  // and whole (one call for all tokens would be compiled mid-loop, then deoptimized).
  for (let i = 0; i < n; ) {
    const end = Math.min(n, i + RUN);
    if (fast) i = drawFast(s, experts, k, i, end);
    if (i < end) {
      s.bi = drawToken(s, experts, i * k, k, s.bi);
      i++;
    }
  }
  return { n, k, experts, source, weight };
}

/** Uniforms per block drawn from the generator. */
const BLOCK = 4096;
/** Uniforms per expert of a token that the current block must still hold for the fast path. */
const FAST_ROOM = 2;
/** Tokens per call of `drawFast`. */
const RUN = 256;

/** The sampler's tables and where it is in the stream of uniforms. */
interface SamplerState {
  counts: Float64Array;
  prob: Float64Array;
  alias: Int32Array;
  /** [E] 1 for the experts the current token of `drawToken` chose (all 0 between tokens). */
  chosen: Uint8Array;
  /** [k] the current token's experts. */
  picked: Int32Array;
  /** [E] `drawFast`'s marks: the last token that chose the expert; 2^31 - 1 for zero counts. */
  stamp: Int32Array;
  /** min(k, experts with a positive count). */
  weightedDraws: number;
  total: number;
  /** Whether `drawFast` must follow the mass left (a token's draws may take more than half). */
  track: boolean;
  rng: Rng;
  /** The current block of uniforms and the next one to use. */
  buf: Float64Array;
  bi: number;
}

/**
 * Tokens from..to-1 into `experts` by the fast path, as long as it applies (see
 * sampleTokensFromCounts); returns the first token not drawn (`to` when all were), which then
 * starts at uniform `s.bi`.
 */
function drawFast(s: SamplerState, experts: Uint16Array, k: number, from: number, to: number): number {
  const { counts, prob, alias, stamp, picked, buf, track, total } = s;
  const E = counts.length;
  const half = 0.5 * total;
  let bi = s.bi;
  let i = from;
  for (; i < to; i++) {
    if (BLOCK - bi < FAST_ROOM * k) break;
    const base = i * k;
    const first = bi;
    let remaining = total;
    let j = 0;
    draws: for (; j < k; j++) {
      if (track && remaining < half) break;
      let e = 0;
      for (;;) {
        if (bi === BLOCK) break draws;
        const x = buf[bi++] * E;
        const c = x | 0;
        // c if x - c < prob[c], else alias[c], without a branch (it would mispredict often:
        // ~25% faster sampling of V3 counts).
        e = c + (alias[c] - c) * (((x - c >= prob[c]) as unknown as number) | 0);
        if (stamp[e] < i) break;
      }
      stamp[e] = i;
      picked[j] = e;
      experts[base + j] = e;
      if (track) remaining -= counts[e];
    }
    if (j < k) {
      // Not for the fast path: undo its marks, the general rule draws this token.
      for (let jj = 0; jj < j; jj++) stamp[picked[jj]] = -1;
      bi = first;
      break;
    }
  }
  s.bi = bi;
  return i;
}

/**
 * One token's k experts into experts[base..base+k) by the general rule, from uniform `bi` of the
 * block on (a new block when it is used up); returns the next uniform's index.
 */
function drawToken(s: SamplerState, experts: Uint16Array, base: number, k: number, bi: number): number {
  const { counts, prob, alias, chosen, picked, weightedDraws, total, rng, buf } = s;
  const E = counts.length;
  let remaining = total;
  for (let j = 0; j < k; j++) {
    let e = -1;
    if (j >= weightedDraws) {
      // Fewer than k experts have a positive count: fill uniformly from the unchosen ones.
      do {
        if (bi === BLOCK) {
          rng.fillUniform(buf);
          bi = 0;
        }
        e = Math.floor(buf[bi++] * E);
      } while (chosen[e] === 1);
    } else if (remaining >= 0.5 * total) {
      // Draw from all experts, redraw while the expert is taken: the accepted draw follows the
      // counts restricted to the unchosen experts, exactly as sampling without replacement.
      for (;;) {
        if (bi === BLOCK) {
          rng.fillUniform(buf);
          bi = 0;
        }
        const x = buf[bi++] * E;
        const c = x | 0;
        e = c + (alias[c] - c) * (((x - c >= prob[c]) as unknown as number) | 0);
        if (chosen[e] === 0 && counts[e] > 0) break;
      }
    } else {
      // Most of the mass is taken (very skewed counts): one linear pass over the unchosen experts.
      if (bi === BLOCK) {
        rng.fillUniform(buf);
        bi = 0;
      }
      e = linearPick(counts, chosen, buf[bi++] * remaining);
    }
    chosen[e] = 1;
    picked[j] = e;
    experts[base + j] = e;
    remaining -= counts[e];
  }
  for (let j = 0; j < k; j++) chosen[picked[j]] = 0;
  return bi;
}

/**
 * Walker/Vose alias table of `counts` ([E] each): column c is taken with probability 1/E, then
 * expert c if the second coordinate is below `prob[c]`, else `alias[c]`.
 */
function aliasTable(counts: Float64Array, total: number): { prob: Float64Array; alias: Int32Array } {
  const E = counts.length;
  const prob = new Float64Array(E);
  const alias = new Int32Array(E);
  const scaled = new Float64Array(E);
  const small = new Int32Array(E);
  const large = new Int32Array(E);
  let ns = 0;
  let nl = 0;
  for (let e = 0; e < E; e++) {
    scaled[e] = total > 0 ? (counts[e] * E) / total : 0;
    alias[e] = e;
    if (scaled[e] < 1) small[ns++] = e;
    else large[nl++] = e;
  }
  while (ns > 0 && nl > 0) {
    const s = small[--ns];
    const l = large[nl - 1];
    prob[s] = scaled[s];
    alias[s] = l;
    scaled[l] = scaled[l] + scaled[s] - 1;
    if (scaled[l] < 1) {
      nl--;
      small[ns++] = l;
    }
  }
  // Left-overs are 1 up to rounding. A zero-count expert left here is rejected by the caller.
  while (nl > 0) prob[large[--nl]] = 1;
  while (ns > 0) prob[small[--ns]] = 1;
  return { prob, alias };
}

/** The unchosen positive-count expert at mass position u (cumulative over unchosen experts). */
function linearPick(counts: Float64Array, chosen: Uint8Array, u: number): number {
  let last = -1;
  let acc = 0;
  for (let e = 0; e < counts.length; e++) {
    if (chosen[e] === 1 || !(counts[e] > 0)) continue;
    acc += counts[e];
    last = e;
    if (u < acc) return e;
  }
  return last;
}
