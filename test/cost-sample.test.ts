import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { countsLoads, evaluate, LayerAccumulator } from '../src/cost.js';
import { InputError } from '../src/errors.js';
import { defaultDispatch } from '../src/placement.js';
import { Rng } from '../src/rng.js';
import { makeShape, type Trace, type Workload } from '../src/types.js';
import { sampleTokensFromCounts } from '../src/workload/sample.js';
import { countsOfTrace } from '../src/workload/tokens.js';
import { placementOf, toyCluster, toyModel } from './cost-helpers.js';

describe('sampleTokensFromCounts', () => {
  it('draws from Rng.fillUniform, which yields exactly the stream of successive next() calls', () => {
    const a = new Rng(99);
    const b = new Rng(99);
    const buf = new Float64Array(1000);
    a.fillUniform(buf.subarray(0, 10));
    a.fillUniform(buf.subarray(10));
    for (let i = 0; i < 1000; i++) expect(buf[i]).toBe(b.next());
    expect(a.nextU32()).toBe(b.nextU32()); // state carried over
  });

  it('draws the same tokens for a seed as it always has (estimates stay comparable across versions)', () => {
    const counts = Float64Array.from({ length: 40 }, (_, e) => (e % 7 === 3 ? 0 : Math.round(1000 / (1 + e)) + (e % 5)));
    const ts = sampleTokensFromCounts(counts, 6, 400, 8, new Rng(12345));
    expect(Array.from(ts.experts.subarray(0, 24))).toEqual([0, 12, 1, 32, 16, 21, 2, 6, 4, 0, 13, 1, 0, 5, 8, 14, 1, 6, 0, 16, 5, 2, 7, 20]);
    let hash = 0;
    for (const e of ts.experts) hash = (hash * 31 + e) >>> 0;
    expect(hash).toBe(3549495337);
  });

  it('draws k distinct experts, never a zero-count one, sources round robin, weight 1', () => {
    const counts = Float64Array.from([5, 0, 3, 0, 9, 1, 0, 2, 4]);
    const ts = sampleTokensFromCounts(counts, 4, 2000, 3, new Rng(1));
    expect(ts.n).toBe(2000);
    expect(ts.k).toBe(4);
    for (let i = 0; i < ts.n; i++) {
      expect(ts.source[i]).toBe(i % 3);
      expect(ts.weight[i]).toBe(1);
      const set = new Set(ts.experts.subarray(i * 4, i * 4 + 4));
      expect(set.size).toBe(4);
      for (const e of set) expect(counts[e]).toBeGreaterThan(0);
    }
  });

  it('is deterministic for a seed and changes with the seed', () => {
    const counts = Float64Array.from({ length: 37 }, (_, e) => 1 + ((e * 7) % 11));
    const a = sampleTokensFromCounts(counts, 6, 500, 8, new Rng(42));
    const b = sampleTokensFromCounts(counts, 6, 500, 8, new Rng(42));
    const c = sampleTokensFromCounts(counts, 6, 500, 8, new Rng(43));
    expect(Array.from(a.experts)).toEqual(Array.from(b.experts));
    expect(Array.from(a.experts)).not.toEqual(Array.from(c.experts));
  });

  it('k = 1: frequencies are proportional to the counts', () => {
    const counts = Float64Array.from([1, 2, 3, 4, 0, 10]);
    const n = 40000;
    const ts = sampleTokensFromCounts(counts, 1, n, 1, new Rng(5));
    const freq = new Float64Array(6);
    for (let i = 0; i < n; i++) freq[ts.experts[i]]++;
    for (let e = 0; e < 6; e++) expect(Math.abs(freq[e] / n - counts[e] / 20)).toBeLessThan(0.01);
  });

  it('k = 2: pair frequencies follow weighted sampling without replacement', () => {
    // counts [1,1,2] -> p = [.25,.25,.5]; P{0,1} = 2 (.25 * .25/.75) = 1/6,
    // P{0,2} = .25 * .5/.75 + .5 * .25/.5 = 5/12 = P{1,2}
    const counts = Float64Array.from([1, 1, 2]);
    const n = 30000;
    const ts = sampleTokensFromCounts(counts, 2, n, 1, new Rng(9));
    const pair = [0, 0, 0]; // index = the expert NOT chosen
    for (let i = 0; i < n; i++) pair[3 - ts.experts[2 * i] - ts.experts[2 * i + 1]]++;
    expect(Math.abs(pair[2] / n - 1 / 6)).toBeLessThan(0.012);
    expect(Math.abs(pair[1] / n - 5 / 12)).toBeLessThan(0.012);
    expect(Math.abs(pair[0] / n - 5 / 12)).toBeLessThan(0.012);
  });

  it('k = 2 with one dominant expert (the linear-pass path) still samples without replacement exactly', () => {
    // p = [.8,.1,.1]; P{1,2} = 2 (.1 * .1/.9) = 1/45; P{0,1} = .8 * .1/.2 + .1 * .8/.9 = 0.4889 = P{0,2}
    const counts = Float64Array.from([8, 1, 1]);
    const n = 30000;
    const ts = sampleTokensFromCounts(counts, 2, n, 1, new Rng(21));
    const pair = [0, 0, 0];
    for (let i = 0; i < n; i++) pair[3 - ts.experts[2 * i] - ts.experts[2 * i + 1]]++;
    expect(Math.abs(pair[0] / n - 1 / 45)).toBeLessThan(0.005);
    expect(Math.abs(pair[1] / n - (0.4 + 0.8 / 9))).toBeLessThan(0.012);
    expect(Math.abs(pair[2] / n - (0.4 + 0.8 / 9))).toBeLessThan(0.012);
  });

  it('a single positive expert at either end is always drawn', () => {
    const last = new Float64Array(7);
    last[6] = 3;
    const ts = sampleTokensFromCounts(last, 1, 100, 2, new Rng(0));
    expect(ts.experts.every((e) => e === 6)).toBe(true);
    const first = new Float64Array(13);
    first[0] = 1;
    expect(sampleTokensFromCounts(first, 1, 100, 2, new Rng(0)).experts.every((e) => e === 0)).toBe(true);
  });

  it('fewer positive experts than k: all positive ones, the rest uniformly from the others', () => {
    const counts = Float64Array.from([0, 5, 0, 0]);
    const ts = sampleTokensFromCounts(counts, 2, 4000, 1, new Rng(3));
    const seen = new Float64Array(4);
    for (let i = 0; i < ts.n; i++) {
      expect(ts.experts[2 * i]).toBe(1);
      expect(ts.experts[2 * i + 1]).not.toBe(1);
      seen[ts.experts[2 * i + 1]]++;
    }
    for (const e of [0, 2, 3]) expect(Math.abs(seen[e] / 4000 - 1 / 3)).toBeLessThan(0.04);
  });

  it('equals the plain one-draw-at-a-time sampler (fast path, redraws, linear passes, fills), and writes into given arrays', () => {
    const cases: [Float64Array, number, number][] = [
      [Float64Array.from({ length: 256 }, (_, e) => Math.round(1e6 / (1 + e) ** 0.8) + (e % 13)), 8, 3000],
      [Float64Array.from({ length: 40 }, (_, e) => (e % 7 === 3 ? 0 : 1 + (e % 5))), 6, 2000],
      [Float64Array.from([50, 30, 10, 5, 3, 1, 1]), 4, 2000], // the 3 heaviest hold > half: linear passes
      [Float64Array.from([8, 1, 1]), 3, 500], // k = E
      [Float64Array.from([0, 5, 0, 3, 0, 0]), 4, 500], // fewer positive counts than k
      [Float64Array.from({ length: 64 }, (_, e) => (e < 2 ? 1e6 : 1)), 5, 4000],
    ];
    for (const [c, k, n] of cases) {
      for (const seed of [1, 77]) {
        const want = plainSample(c, k, n, 5, new Rng(seed));
        const rng = new Rng(seed);
        const got = sampleTokensFromCounts(c, k, n, 5, rng);
        expect(Array.from(got.experts)).toEqual(Array.from(want.experts));
        expect(Array.from(got.source)).toEqual(Array.from(want.source));
        // The generator is left after the blocks of 4096 uniforms the draws used.
        const after = new Rng(seed);
        after.fillUniform(new Float64Array(4096 * Math.ceil(want.used / 4096)));
        expect(rng.nextU32()).toBe(after.nextU32());
        const into = { n: 0, k, experts: new Uint16Array(n * k).fill(9), source: new Uint16Array(n).fill(9), weight: new Float64Array(n) };
        const again = sampleTokensFromCounts(c, k, n, 5, new Rng(seed), into);
        expect(again.experts).toBe(into.experts);
        expect(Array.from(again.experts)).toEqual(Array.from(want.experts));
        expect(Array.from(again.source)).toEqual(Array.from(want.source));
        expect(again.weight.every((w) => w === 1)).toBe(true);
      }
    }
  });

  it('leaves the generator after the blocks its draws used, also when a sample ends just before a block', () => {
    const counts = Float64Array.from({ length: 64 }, (_, e) => 1 + (e % 9));
    for (let n = 470; n < 530; n++) {
      const want = plainSample(counts, 8, n, 3, new Rng(n));
      const rng = new Rng(n);
      sampleTokensFromCounts(counts, 8, n, 3, rng);
      const after = new Rng(n);
      after.fillUniform(new Float64Array(4096 * Math.ceil(want.used / 4096)));
      expect(rng.nextU32()).toBe(after.nextU32());
    }
  });

  it('rejects bad input with InputError naming the field', () => {
    expect(() => sampleTokensFromCounts(Float64Array.from([1, -2]), 1, 5, 1, new Rng(0))).toThrow(/counts\[1\]/);
    expect(() => sampleTokensFromCounts(Float64Array.from([1, NaN]), 1, 5, 1, new Rng(0))).toThrow(InputError);
    expect(() => sampleTokensFromCounts(Float64Array.from([1, 2]), 3, 5, 1, new Rng(0))).toThrow(/3 distinct experts/);
  });
});

/**
 * The sampler's rule one draw at a time (uniforms from rng.next(); aliases as sample.ts builds
 * them): what sampleTokensFromCounts must draw, uniform for uniform.
 */
function plainSample(counts: Float64Array, k: number, n: number, numGpus: number, rng: Rng): { experts: Uint16Array; source: Uint16Array; used: number } {
  const E = counts.length;
  let used = 0;
  const next = (): number => {
    used++;
    return rng.next();
  };
  let total = 0;
  let positive = 0;
  for (let e = 0; e < E; e++) {
    total += counts[e];
    if (counts[e] > 0) positive++;
  }
  // Walker/Vose, as sample.ts's aliasTable.
  const prob = new Float64Array(E);
  const alias = new Int32Array(E);
  const scaled = Float64Array.from(counts, (c) => (c * E) / total);
  const small: number[] = [];
  const large: number[] = [];
  for (let e = 0; e < E; e++) {
    alias[e] = e;
    (scaled[e] < 1 ? small : large).push(e);
  }
  while (small.length > 0 && large.length > 0) {
    const s = small.pop()!;
    const l = large[large.length - 1];
    prob[s] = scaled[s];
    alias[s] = l;
    scaled[l] = scaled[l] + scaled[s] - 1;
    if (scaled[l] < 1) {
      large.pop();
      small.push(l);
    }
  }
  for (const e of [...large, ...small]) prob[e] = 1;
  const experts = new Uint16Array(n * k);
  const source = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    source[i] = i % numGpus;
    const chosen = new Set<number>();
    let remaining = total;
    for (let j = 0; j < k; j++) {
      let e: number;
      if (j >= Math.min(k, positive)) {
        do e = Math.floor(next() * E);
        while (chosen.has(e));
      } else if (remaining >= 0.5 * total) {
        for (;;) {
          const x = next() * E;
          const c = Math.floor(x);
          e = x - c >= prob[c] ? alias[c] : c;
          if (!chosen.has(e) && counts[e] > 0) break;
        }
      } else {
        const u = next() * remaining;
        let acc = 0;
        e = -1;
        for (let x = 0; x < E; x++) {
          if (chosen.has(x) || !(counts[x] > 0)) continue;
          acc += counts[x];
          e = x;
          if (u < acc) break;
        }
      }
      chosen.add(e);
      experts[i * k + j] = e;
      remaining -= counts[e];
    }
  }
  return { experts, source, used };
}

/** A trace of `n` tokens per layer drawn from `counts`, with recorded ranks `t mod NG`. */
function sampledTrace(counts: Float64Array[], k: number, n: number, NG: number, seed: number): Trace {
  const layers = counts.map((c, l) => sampleTokensFromCounts(c, k, n, NG, new Rng(seed + l)));
  return {
    numLayers: counts.length,
    numExperts: counts[0].length,
    topK: k,
    numTokens: n,
    numRequests: n,
    request: Uint32Array.from({ length: n }, (_, i) => i),
    rank: Int32Array.from({ length: n }, (_, i) => i % NG),
    weight: null,
    experts: layers.map((ts) => ts.experts),
  };
}

describe('counts-only workloads', () => {
  it('uniform demand per source through the dispatch table (hand case with a replica on each node)', () => {
    // 2 nodes x 2 GPUs x 1 slot; expert 0 on GPUs 0 and 2, expert 1 on GPU 1, expert 2 on GPU 3.
    const shape = makeShape(2, 2, 1);
    const phy2log = Int32Array.from([0, 1, 0, 2]);
    const acc = new LayerAccumulator(shape);
    countsLoads(acc, Float64Array.from([8, 4, 6]), phy2log, defaultDispatch(phy2log, 3, shape), 3);
    // expert 0: sources 0,1 -> GPU 0 (2 each), sources 2,3 -> GPU 2 (2 each)
    expect(Array.from(acc.load)).toEqual([4, 4, 4, 6]);
  });

  const shape = makeShape(2, 4, 2); // 8 GPUs, 16 slots
  const E = 12;
  const k = 3;
  const rng = new Rng(17);
  const counts = [0, 1].map(() => Float64Array.from({ length: E }, () => rng.gamma(0.7) * 100));
  const trace = sampledTrace(counts, k, 24000, shape.numGpus, 100);
  const single = Array.from({ length: 16 }, (_, p) => (p < E ? (p * 5) % E : -1)); // one replica each
  const model = toyModel(E, k);
  const cluster = toyCluster(shape);
  const countsWl: Workload = { kind: 'counts', counts: countsOfTrace(trace), meta: { format: 'test' } };
  const traceWl: Workload = { kind: 'trace', trace, meta: { format: 'test' } };

  it('with one replica per expert, counts loads equal trace loads exactly; traffic is estimated', () => {
    const pl = placementOf(shape, E, [single, single]);
    for (const mode of ['normal', 'low-latency'] as const) {
      const fromCounts = evaluate({ model, cluster, placement: pl, workload: countsWl, options: { mode, sampleTokens: 8000 } });
      const fromTrace = evaluate({ model, cluster, placement: pl, workload: traceWl, options: { mode } });
      expect(fromCounts.estimated).toBe(true);
      expect(fromTrace.estimated).toBe(false);
      for (let l = 0; l < 2; l++) {
        for (let g = 0; g < shape.numGpus; g++) expect(fromCounts.loads[l][g]).toBeCloseTo(fromTrace.loads[l][g], 6);
        expect(fromCounts.perLayer[l].tokens).toBeCloseTo(24000, 6);
        expect(fromCounts.perLayer[l].maxLoad).toBeCloseTo(fromTrace.perLayer[l].maxLoad, 6);
        // the trace was drawn from the same distribution with uniform sources: the estimate is close
        const rel = (a: number, b: number): number => Math.abs(a - b) / b;
        expect(rel(fromCounts.perLayer[l].interNodeBytes, fromTrace.perLayer[l].interNodeBytes)).toBeLessThan(0.03);
        expect(rel(fromCounts.perLayer[l].intraNodeBytes, fromTrace.perLayer[l].intraNodeBytes)).toBeLessThan(0.03);
        expect(rel(fromCounts.perLayer[l].remoteNodesPerToken, fromTrace.perLayer[l].remoteNodesPerToken)).toBeLessThan(0.03);
      }
    }
  });

  it('with replicas, counts loads equal trace loads when every source sends the same tokens', () => {
    // Expert 0..3 get a second replica; the trace repeats each token on all 8 sources.
    const repl = single.map((e, p) => (p >= E ? p - E : e));
    const pl = placementOf(shape, E, [repl, repl]);
    const base = sampledTrace(counts, k, 300, 1, 7);
    const NG = shape.numGpus;
    const t: Trace = {
      ...base,
      numTokens: 300 * NG,
      numRequests: 300 * NG,
      request: Uint32Array.from({ length: 300 * NG }, (_, i) => i),
      rank: Int32Array.from({ length: 300 * NG }, (_, i) => i % NG),
      experts: base.experts.map((ex) => Uint16Array.from({ length: 300 * NG * k }, (_, i) => ex[Math.floor(i / (NG * k)) * k + (i % k)])),
    };
    const cw: Workload = { kind: 'counts', counts: countsOfTrace(t), meta: { format: 'test' } };
    const a = evaluate({ model, cluster, placement: pl, workload: cw, options: { sampleTokens: 64 } });
    const b = evaluate({ model, cluster, placement: pl, workload: { kind: 'trace', trace: t, meta: { format: 'test' } } });
    for (let l = 0; l < 2; l++) for (let g = 0; g < NG; g++) expect(a.loads[l][g]).toBeCloseTo(b.loads[l][g], 9);
  });

  it('is seeded: same seed same estimate, another seed another estimate', () => {
    const pl = placementOf(shape, E, [single, single]);
    const a = evaluate({ model, cluster, placement: pl, workload: countsWl, options: { sampleTokens: 500, seed: 1 } });
    const b = evaluate({ model, cluster, placement: pl, workload: countsWl, options: { sampleTokens: 500, seed: 1 } });
    const c = evaluate({ model, cluster, placement: pl, workload: countsWl, options: { sampleTokens: 500, seed: 2 } });
    expect(a.interNodeBytes).toBe(b.interNodeBytes);
    expect(a.interNodeBytes).not.toBe(c.interNodeBytes);
  });

  it('rejects a workload whose shape does not match the placement', () => {
    const pl = placementOf(shape, E, [single]);
    expect(() => evaluate({ model, cluster, placement: pl, workload: countsWl })).toThrow(/2 MoE layers, placement 1/);
  });
});

const V3 = '/work/shared/data/deepseek-v3-sglang/decode_in1000out1000.json';
describe.skipIf(!existsSync(V3))('real DeepSeek-V3 counts (SGLang recorder)', () => {
  it('4 x 8 GPUs, 8 experts per GPU: exact loads, estimated traffic within the model limits', () => {
    const raw = JSON.parse(readFileSync(V3, 'utf8')) as { logical_count: number[][] };
    const rows = raw.logical_count.slice(3, 13).map((r) => Float64Array.from(r)); // 10 MoE layers
    const shape = makeShape(4, 8, 8);
    const contiguous = Array.from({ length: 256 }, (_, p) => p);
    const pl = placementOf(shape, 256, rows.map(() => contiguous));
    const model = { ...toyModel(256, 8), experts: 256, topK: 8, dispatchBytesPerToken: 7392, combineBytesPerToken: 14336 };
    const cluster = toyCluster(shape);
    const wl: Workload = { kind: 'counts', counts: { numLayers: rows.length, numExperts: 256, counts: rows }, meta: { format: 'sglang-counts' } };
    const ev = evaluate({ model, cluster, placement: pl, workload: wl, options: { sampleTokens: 4096 } });
    expect(ev.estimated).toBe(true);
    rows.forEach((c, l) => {
      const total = c.reduce((a, b) => a + b, 0);
      const loads = ev.loads[l];
      expect(loads.reduce((a, b) => a + b, 0)).toBeCloseTo(total, 3);
      // contiguous placement: GPU g serves exactly experts 8g..8g+7
      for (let g = 0; g < 32; g++) expect(loads[g]).toBeCloseTo(c.slice(8 * g, 8 * g + 8).reduce((a, b) => a + b, 0), 3);
      expect(ev.perLayer[l].tokens).toBeCloseTo(total / 8, 3);
      // 8 experts on 4 nodes: between 0 and 3 remote nodes, and with a spread-out routing well above 1
      expect(ev.perLayer[l].remoteNodesPerToken).toBeGreaterThan(1);
      expect(ev.perLayer[l].remoteNodesPerToken).toBeLessThanOrEqual(3);
    });
  });
});
