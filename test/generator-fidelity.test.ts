import { describe, expect, it } from 'vitest';
import { generateTrace } from '../src/generator.js';
import { marginalTvd, pairLiftQuantiles, requestAffinity, successorCoverage } from '../src/generator/fidelity.js';
import { ModelSchema, type Model } from '../src/schemas.js';
import type { Counts, Trace } from '../src/types.js';

/** A trace from per-layer token expert lists (rows = tokens). */
function traceOf(layers: number[][][], request: number[], numExperts: number): Trace {
  const T = request.length;
  const k = layers[0][0].length;
  return {
    numLayers: layers.length,
    numExperts,
    topK: k,
    numTokens: T,
    numRequests: Math.max(...request) + 1,
    request: Uint32Array.from(request),
    rank: new Int32Array(T).fill(-1),
    weight: null,
    experts: layers.map((rows) => Uint16Array.from(rows.flat())),
  };
}

describe('fidelity measures on hand-computed cases', () => {
  it('marginalTvd', () => {
    const tr = traceOf([[[0], [0], [0], [1]]], [0, 0, 0, 0], 2);
    const counts: Counts = { numLayers: 1, numExperts: 2, counts: [Float64Array.from([5, 5])] };
    // (0.75, 0.25) against (0.5, 0.5).
    expect(marginalTvd(tr, counts)[0]).toBeCloseTo(0.25, 12);
  });

  it('pairLiftQuantiles', () => {
    // Experts 0 and 1 always together, 2 and 3 always together: every P(e) = 1/2,
    // lift(0,1) = lift(2,3) = (1/2) / (1/4) = 2, the four cross pairs 0.
    const tr = traceOf([[[0, 1], [1, 0], [2, 3], [3, 2]]], [0, 0, 1, 1], 4);
    const s = pairLiftQuantiles(tr, 0, [0.5, 0.9], 1);
    expect(s.pairs).toBe(6);
    expect(s.max).toBeCloseTo(2, 12);
    // Sorted lifts [0, 0, 0, 0, 2, 2]: median at position 2.5 = 0; 0.9 at 4.5 = 2.
    expect(s.quantiles[0]).toBeCloseTo(0, 12);
    expect(s.quantiles[1]).toBeCloseTo(2, 12);
    expect(s.fracAbove2).toBe(0);
    expect(s.fracBelowHalf).toBeCloseTo(4 / 6, 12);
    // Expected co-occurrence 4 * 1/4 = 1 < 5: no pair has the default support.
    expect(pairLiftQuantiles(tr, 0, [0.5]).pairs).toBe(0);
  });

  it('successorCoverage', () => {
    // Layer 0 -> 1: expert 0 goes to 0 twice; expert 1 goes to 0 once and to 1 once.
    const tr = traceOf(
      [
        [[0], [0], [1], [1]],
        [[0], [0], [0], [1]],
      ],
      [0, 1, 2, 3],
      2,
    );
    // Top ceil(0.5 * 2) = 1 successor each: 2 of expert 0's 2, 1 of expert 1's 2 -> 3 / 4.
    expect(successorCoverage(tr, 0, 0.5)).toBeCloseTo(0.75, 12);
    expect(() => successorCoverage(tr, 1)).toThrow(/no next layer/);
  });

  it('requestAffinity', () => {
    // Request 0 uses expert 0 twice, request 1 expert 1 twice. Within requests: sum c(c-1) = 4
    // over sum n(n-1) = 4 -> 1. Whole trace: (2 + 2) / (4 * 3) = 1/3. Affinity 3.
    const tr = traceOf([[[0], [0], [1], [1]]], [0, 0, 1, 1], 2);
    expect(requestAffinity(tr, 0)).toBeCloseTo(3, 12);
    // Tokens need not be grouped by request.
    const mixed = traceOf([[[0], [1], [0], [1]]], [0, 1, 0, 1], 2);
    expect(requestAffinity(mixed, 0)).toBeCloseTo(3, 12);
  });
});

describe('generated structure responds to its knobs', () => {
  const model: Model = ModelSchema.parse({
    name: 'mid',
    numHiddenLayers: 3,
    moeLayerIds: [0, 1, 2],
    experts: 64,
    topK: 6,
    hiddenSize: 64,
    expertBytes: 1000,
    dispatchBytesPerToken: 64,
    combineBytesPerToken: 128,
    expertFlopsPerToken: 1000,
  });
  const T = 12000;
  const structured = generateTrace({ model, tokens: T, seed: 9, requests: 120 });
  const flat = generateTrace({ model, tokens: T, seed: 9, requests: 120, topicStrength: 0 });

  it('topics create co-activation clusters; no tilt means lifts near 1', () => {
    const s = pairLiftQuantiles(structured, 1, [0.5, 0.99], 50);
    const f = pairLiftQuantiles(flat, 1, [0.5, 0.99], 50);
    // Independent draws (up to the without-replacement effect) keep every lift near 1: pairs
    // with >= 50 expected co-occurrences have a relative noise of at most 1/sqrt(50) = 0.14, so
    // a lift above 1.7 would be a 5-sigma event.
    expect(f.pairs).toBeGreaterThan(1000);
    expect(f.fracAbove2).toBe(0);
    expect(f.max).toBeLessThan(1.7);
    // The defaults were tuned to the DeepSeek-V2-Lite traces: some 5-10% of pairs above lift 2.
    expect(s.fracAbove2).toBeGreaterThan(0.03);
    expect(s.max).toBeGreaterThan(3);
    expect(s.quantiles[0]).toBeLessThan(0.9);
  });

  it('topics carry across layers and requests; without them both measures fall to baseline', () => {
    expect(successorCoverage(structured, 0)).toBeGreaterThan(successorCoverage(flat, 0) + 0.08);
    const affinity = requestAffinity(structured, 0);
    expect(affinity).toBeGreaterThan(1.05);
    expect(affinity).toBeGreaterThan(requestAffinity(flat, 0));
    expect(requestAffinity(flat, 0)).toBeCloseTo(1, 1);
    // Requests that mix all topics evenly lose their locality but keep the clusters.
    const mixed = generateTrace({ model, tokens: T, seed: 9, requests: 120, requestConcentration: 1e4 });
    // Baseline 1 up to sampling noise of about 0.02 with 120 requests of 100 tokens.
    expect(requestAffinity(mixed, 0)).toBeLessThan(1.04);
    expect(pairLiftQuantiles(mixed, 0, [0.5]).fracAbove2).toBeGreaterThan(0.03);
  });
});
