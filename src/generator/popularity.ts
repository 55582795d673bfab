/**
 * Expert popularity of the synthetic generator when no counts file gives the marginals: a
 * log-normal law whose top 10% of experts take a given share of the tokens.
 */
import type { Rng } from '../rng.js';

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
