import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { generateTrace } from '../src/generator.js';
import { marginalTvd } from '../src/generator/fidelity.js';
import { lognormalPopularity, normalQuantile } from '../src/generator/popularity.js';
import { MODEL_PRESETS, resolveModel } from '../src/presets.js';
import { Rng } from '../src/rng.js';
import { ModelSchema, type Model, type ModelInput } from '../src/schemas.js';
import type { Counts, Trace } from '../src/types.js';

function smallModel(over: Partial<ModelInput> = {}): Model {
  return ModelSchema.parse({
    name: 'small',
    numHiddenLayers: 3,
    moeLayerIds: [0, 1, 2],
    experts: 16,
    topK: 2,
    hiddenSize: 64,
    expertBytes: 1000,
    dispatchBytesPerToken: 64,
    combineBytesPerToken: 128,
    expertFlopsPerToken: 1000,
    ...over,
  });
}

/** Every token's ids are in range and distinct; returns the number of violations. */
function badTokens(tr: Trace): number {
  const { numTokens: T, topK: k, numExperts: E } = tr;
  let bad = 0;
  for (const ex of tr.experts) {
    expect(ex.length).toBe(T * k);
    for (let t = 0; t < T; t++) {
      const seen = new Set<number>();
      for (let j = 0; j < k; j++) {
        const e = ex[t * k + j];
        if (e >= E) bad++;
        seen.add(e);
      }
      if (seen.size !== k) bad++;
    }
  }
  return bad;
}

describe('generateTrace', () => {
  it('is deterministic in the seed', () => {
    const model = resolveModel('deepseek-v2-lite');
    const a = generateTrace({ model, tokens: 500, seed: 7 });
    const b = generateTrace({ model, tokens: 500, seed: 7 });
    const c = generateTrace({ model, tokens: 500, seed: 8 });
    expect(Buffer.from(a.request.buffer).equals(Buffer.from(b.request.buffer))).toBe(true);
    for (let l = 0; l < a.numLayers; l++) expect(Buffer.from(a.experts[l].buffer).equals(Buffer.from(b.experts[l].buffer))).toBe(true);
    let differ = 0;
    for (let l = 0; l < a.numLayers; l++) for (let i = 0; i < a.experts[l].length; i++) if (a.experts[l][i] !== c.experts[l][i]) differ++;
    // Independent draws: most slots differ (a coincidence per slot is ~ the popularity of an expert).
    expect(differ).toBeGreaterThan(0.5 * a.numLayers * 500 * a.topK);
  });

  it('gives distinct, in-range ids for every preset, and a well-formed trace', () => {
    for (const name of Object.keys(MODEL_PRESETS)) {
      const model = resolveModel(name);
      // Few topics keep the per-layer setup cheap; the ids do not depend on their number.
      const tr = generateTrace({ model, tokens: 300, seed: 1, requests: 7, topics: 4 });
      expect(badTokens(tr), name).toBe(0);
      expect([tr.numLayers, tr.numExperts, tr.topK, tr.numTokens, tr.numRequests]).toEqual([model.moeLayerIds.length, model.experts, model.topK, 300, 7]);
      expect(tr.rank.every((r) => r === -1)).toBe(true);
      expect(tr.weight).toBeNull();
      // Requests are contiguous, numbered 0..R-1 in order, none empty.
      const sizes = new Array<number>(7).fill(0);
      for (let t = 0; t < 300; t++) {
        sizes[tr.request[t]]++;
        if (t > 0) expect(tr.request[t] - tr.request[t - 1]).toBeGreaterThanOrEqual(0);
      }
      expect(sizes.every((s) => s >= 1)).toBe(true);
    }
  });

  it('honours group-limited routing (<= topKGroups groups per token), also after the marginal repair', () => {
    const model = resolveModel('deepseek-v3');
    const groupSize = model.experts / model.groups!;
    for (const matchMarginals of [false, true]) {
      const tr = generateTrace({ model, tokens: 300, seed: 3, matchMarginals, topics: 8 });
      let worst = 0;
      for (const ex of tr.experts) {
        for (let t = 0; t < tr.numTokens; t++) {
          const groups = new Set<number>();
          for (let j = 0; j < tr.topK; j++) groups.add(Math.floor(ex[t * tr.topK + j] / groupSize));
          worst = Math.max(worst, groups.size);
        }
      }
      expect(worst).toBeLessThanOrEqual(model.topKGroups!);
      expect(worst).toBeGreaterThan(1);
      expect(badTokens(tr)).toBe(0);
    }
  });

  it('matches target counts exactly up to rounding, and within sampling noise without the repair', () => {
    const model = smallModel();
    const rng = new Rng(11);
    const counts: Counts = {
      numLayers: 3,
      numExperts: 16,
      counts: [0, 1, 2].map(() => Float64Array.from({ length: 16 }, () => 1 + 20 * rng.next() ** 3)),
    };
    counts.counts[2][5] = 0; // an expert nobody uses
    const T = 5000;
    const tr = generateTrace({ model, tokens: T, seed: 5, counts });
    const tvd = marginalTvd(tr, counts);
    // Each expert's count is its target share of T*k rounded, so it is off by < 1 assignment:
    // TVD < E / (2 T k) = 16 / 20000.
    for (const d of tvd) expect(d).toBeLessThan(16 / (2 * T * 2));
    for (let t = 0; t < T; t++) for (let j = 0; j < 2; j++) expect(tr.experts[2][t * 2 + j]).not.toBe(5);
    // Without the repair: an i.i.d. sample of N = T k assignments has expected TVD about
    // 0.4 sqrt(E / N) = 0.016, plus the error of the analytic pre-fit; 0.05 is 3x that.
    const raw = marginalTvd(generateTrace({ model, tokens: T, seed: 5, counts, matchMarginals: false }), counts);
    for (const d of raw) expect(d).toBeLessThan(0.05);
    expect(Math.max(...raw)).toBeGreaterThan(Math.max(...tvd));
  });

  it('fits a counts file that no topic structure distorts when the tilts are off', () => {
    const model = smallModel({ experts: 8, topK: 1 });
    const counts: Counts = { numLayers: 3, numExperts: 8, counts: [0, 1, 2].map(() => Float64Array.from([8, 4, 2, 1, 1, 1, 1, 2])) };
    const tr = generateTrace({ model, tokens: 20000, seed: 2, counts, topicStrength: 0, matchMarginals: false });
    // Top-1 with no tilt is plain categorical sampling: TVD ~ 0.4 sqrt(8 / 20000) = 0.008.
    for (const d of marginalTvd(tr, counts)) expect(d).toBeLessThan(0.03);
  });

  it('rejects counts of the wrong shape and bad values, naming the field', () => {
    const model = smallModel();
    const wrong: Counts = { numLayers: 2, numExperts: 16, counts: [new Float64Array(16), new Float64Array(16)] };
    expect(() => generateTrace({ model, tokens: 10, seed: 1, counts: wrong })).toThrow(/generator\.counts: shape \[2\]\[16\]/);
    const neg: Counts = { numLayers: 3, numExperts: 16, counts: [0, 1, 2].map(() => new Float64Array(16).fill(1)) };
    neg.counts[1][4] = -1;
    expect(() => generateTrace({ model, tokens: 10, seed: 1, counts: neg })).toThrow(/generator\.counts\[1\]\[4\]/);
    expect(() => generateTrace({ model, tokens: 0, seed: 1 })).toThrow(InputError);
    expect(() => generateTrace({ model, tokens: 10, seed: 1, requests: 11 })).toThrow(/generator\.requests/);
    expect(() => generateTrace({ model, tokens: 10, seed: 1, topicDrift: 2 })).toThrow(/generator\.topicDrift/);
  });

  it('handles topK = experts and a single request', () => {
    const model = smallModel({ experts: 4, topK: 4 });
    const tr = generateTrace({ model, tokens: 50, seed: 1, requests: 1 });
    expect(badTokens(tr)).toBe(0);
    expect(tr.request.every((r) => r === 0)).toBe(true);
  });
});

describe('default popularity', () => {
  it('puts about `skew` of the mass on the top 10% of experts', () => {
    for (const skew of [0.1, 0.3, 0.5]) {
      const p = Array.from(lognormalPopularity(1000, skew, new Rng(1))).sort((a, b) => b - a);
      const top = p.slice(0, 100).reduce((a, b) => a + b, 0);
      expect(top).toBeCloseTo(skew, 2);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
  });

  it('normalQuantile matches known quantiles', () => {
    expect(normalQuantile(0.5)).toBeCloseTo(0, 9);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.326348, 5);
    expect(normalQuantile(0.999)).toBeCloseTo(3.090232, 5);
  });

  it('without counts, generated marginals follow the log-normal popularity (top 10% near 30%)', () => {
    const model = smallModel({ numHiddenLayers: 1, moeLayerIds: [0], experts: 256, topK: 8 });
    const tr = generateTrace({ model, tokens: 2000, seed: 4 });
    const loads = new Float64Array(model.experts);
    for (const e of tr.experts[0]) loads[e]++;
    const sorted = Array.from(loads).sort((a, b) => b - a);
    // Target: the top 26 of 256 hold 0.30; ranking a noisy sample (~62 per expert) adds a little.
    const top = sorted.slice(0, 26).reduce((a, b) => a + b, 0) / (2000 * 8);
    expect(top).toBeGreaterThan(0.28);
    expect(top).toBeLessThan(0.34);
  });
});
