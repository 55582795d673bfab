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
 * @returns TokenSets with `experts [n*k]` (draw order), `source [n]`, `weight [n]` = 1.
 */
export function sampleTokensFromCounts(counts: Float64Array, k: number, n: number, numGpus: number, rng: Rng): TokenSets {
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

  const chosen = new Uint8Array(E);
  const picked = new Int32Array(k);
  const experts = new Uint16Array(n * k);
  const source = new Uint16Array(n);
  const weight = new Float64Array(n).fill(1);
  const weightedDraws = Math.min(k, positive);
  // Uniforms are drawn from `rng` in blocks (the same stream as successive rng.next() calls).
  const buf = new Float64Array(4096);
  let bi = buf.length;

  for (let i = 0; i < n; i++) {
    source[i] = i % numGpus;
    let remaining = total;
    for (let j = 0; j < k; j++) {
      let e = -1;
      if (j >= weightedDraws) {
        // Fewer than k experts have a positive count: fill uniformly from the unchosen ones.
        do {
          if (bi === buf.length) {
            rng.fillUniform(buf);
            bi = 0;
          }
          e = Math.floor(buf[bi++] * E);
        } while (chosen[e] === 1);
      } else if (remaining >= 0.5 * total) {
        // Draw from all experts, redraw while the expert is taken: the accepted draw follows the
        // counts restricted to the unchosen experts, exactly as sampling without replacement.
        for (;;) {
          if (bi === buf.length) {
            rng.fillUniform(buf);
            bi = 0;
          }
          const x = buf[bi++] * E;
          const c = x | 0;
          // c if x - c < prob[c], else alias[c], without a branch (it would mispredict often:
          // ~25% faster sampling of V3 counts).
          e = c + (alias[c] - c) * (((x - c >= prob[c]) as unknown as number) | 0);
          if (chosen[e] === 0 && counts[e] > 0) break;
        }
      } else {
        // Most of the mass is taken (very skewed counts): one linear pass over the unchosen experts.
        if (bi === buf.length) {
          rng.fillUniform(buf);
          bi = 0;
        }
        e = linearPick(counts, chosen, buf[bi++] * remaining);
      }
      chosen[e] = 1;
      picked[j] = e;
      experts[i * k + j] = e;
      remaining -= counts[e];
    }
    for (let j = 0; j < k; j++) chosen[picked[j]] = 0;
  }
  return { n, k, experts, source, weight };
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
