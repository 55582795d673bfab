/**
 * The inter-node traffic lower bound every plan fitted on a trace carries (`bounds`
 * .interNodeBytesLowerBound and `bounds.perLayer`, from `coverageTrafficBound` of src/bounds/coverage.ts via
 * `layerTrafficBounds` of src/api.ts): below what every solver achieves, below the exact optima of
 * tiny instances, below the LP relaxation it approximates, absent for counts-only workloads, and
 * carried through the plan file.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { layerTrafficBounds, plan } from '../src/api.js';
import { coverageTrafficBound } from '../src/bounds/coverage.js';
import { exactMinTraffic, minTrafficMip } from '../src/bounds/exact.js';
import type { TrafficInstance } from '../src/bounds/instance.js';
import { trafficLowerBound } from '../src/bounds/traffic.js';
import { evaluate } from '../src/cost.js';
import { readPlanFile, writePlanFile } from '../src/plan.js';
import { Rng } from '../src/rng.js';
import { PlanSchema, type Mode } from '../src/schemas.js';
import { makeShape, type Shape, type TokenSets, type Trace, type Workload } from '../src/types.js';
import { indexWorkload } from '../src/workload/indexer.js';
import { countsOfTrace, tokenSetsOfLayer } from '../src/workload/tokens.js';
import { tokenSets } from './cost-helpers.js';
import { randomTrace, tinyCluster, tinyModel } from './plan-fixtures.js';

const MODEL = { dispatchBytesPerToken: 7, combineBytesPerToken: 11 };
const B = 18;
const MODES: Mode[] = ['normal', 'low-latency'];

/** Random tokens with clustered expert sets (3 clusters), sources uniform, weights 1..3. */
function randomTokens(rng: Rng, E: number, numGpus: number, n: number, k: number): TokenSets {
  const experts = new Uint16Array(n * k);
  const source = new Uint16Array(n);
  const weight = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const c = rng.int(3);
    for (let j = 0; j < k; j++) {
      let e = rng.next() < 0.7 ? (c * Math.ceil(E / 3) + rng.int(Math.ceil(E / 3))) % E : rng.int(E);
      while (experts.subarray(i * k, i * k + j).includes(e)) e = (e + 1) % E;
      experts[i * k + j] = e;
    }
    source[i] = rng.int(numGpus);
    weight[i] = 1 + rng.int(3);
  }
  return { n, k, experts, source, weight };
}

function inst(seed: number, E: number, shape: Shape, mode: Mode, replicas: 'one' | 'any', n = 24, k = 2): TrafficInstance {
  return { tokens: randomTokens(new Rng(seed), E, shape.numGpus, n, k), numExperts: E, shape, model: MODEL, mode, replicas };
}

describe('coverageTrafficBound', () => {
  it('hand cases: capacity forces remote experts; local co-activation costs nothing; one node is free', () => {
    // 2 nodes x 1 GPU x 1 slot, 2 experts; 5 tokens on GPU 0 use {0, 1}: node 0 holds one of them,
    // so every token sends one RDMA message (normal) and one of its two pairs is remote (both modes).
    const shape = makeShape(2, 1, 1);
    const tokens = tokenSets(2, [[0, 5, 0, 1]]);
    const ll = coverageTrafficBound({ tokens, numExperts: 2, shape, model: MODEL, mode: 'low-latency' });
    expect(ll.bound).toBeCloseTo(5 * B, 6); // tight: the optimum is 5 remote pairs
    expect(ll.bound).toBeLessThanOrEqual(5 * B);
    const nm = coverageTrafficBound({ tokens, numExperts: 2, shape, model: MODEL, mode: 'normal' });
    // The relaxation "u >= 1 - z[e][0] for both experts, z[0][0] + z[1][0] <= 1" has optimum 1/2.
    expect(nm.bound).toBeCloseTo(2.5 * B, 6);
    expect(nm.bound).toBeLessThanOrEqual(5 * B);
    expect(nm.method).toBe('coverage');
    // Co-activated pairs of two nodes fit on their own nodes: nothing is provably remote.
    const apart = tokenSets(2, [[0, 3, 0, 1], [1, 2, 2, 3]]);
    for (const mode of MODES) expect(coverageTrafficBound({ tokens: apart, numExperts: 4, shape: makeShape(2, 1, 2), model: MODEL, mode }).bound).toBe(0);
    const single = coverageTrafficBound({ tokens, numExperts: 2, shape: makeShape(1, 2, 1), model: MODEL, mode: 'normal' });
    expect(single).toMatchObject({ bound: 0, exact: true, method: 'trivial' });
  });

  it('rejects tokens out of range', () => {
    const shape = makeShape(2, 1, 2);
    expect(() => coverageTrafficBound({ tokens: tokenSets(2, [[0, 1, 0, 4]]), numExperts: 4, shape, model: MODEL, mode: 'normal' })).toThrow(/expert 4/);
    expect(() => coverageTrafficBound({ tokens: tokenSets(2, [[2, 1, 0, 1]]), numExperts: 4, shape, model: MODEL, mode: 'normal' })).toThrow(/source GPU 2/);
    expect(() => coverageTrafficBound({ tokens: tokenSets(2, [[0, -1, 0, 1]]), numExperts: 4, shape, model: MODEL, mode: 'normal' })).toThrow(/weight/);
    expect(() => coverageTrafficBound({ tokens: tokenSets(2, [[0, 1, 0, 1]]), numExperts: 5, shape, model: MODEL, mode: 'normal' })).toThrow(/do not fit/);
  });

  it('never exceeds the exact optimum of tiny instances (one replica: enumeration and MIP; replicas: enumeration)', async () => {
    const cases: { shape: Shape; E: number; replicas: 'one' | 'any' }[] = [
      { shape: makeShape(2, 2, 2), E: 8, replicas: 'one' },
      { shape: makeShape(2, 2, 2), E: 6, replicas: 'one' },
      { shape: makeShape(3, 1, 2), E: 6, replicas: 'one' },
      { shape: makeShape(3, 2, 1), E: 5, replicas: 'one' },
      { shape: makeShape(2, 2, 2), E: 5, replicas: 'any' },
      { shape: makeShape(2, 1, 3), E: 4, replicas: 'any' },
      { shape: makeShape(3, 1, 2), E: 4, replicas: 'any' },
    ];
    let positive = 0;
    for (const [c, { shape, E, replicas }] of cases.entries()) {
      for (const mode of MODES) {
        const I = inst(40 + c, E, shape, mode, replicas, 24, 2 + (c % 2));
        const b = coverageTrafficBound(I);
        const exact = exactMinTraffic(I)!;
        expect(b.bound, `case ${c} ${mode}`).toBeLessThanOrEqual(exact.interNodeBytes + 1e-9);
        if (b.bound > 0) positive++;
        if (replicas === 'one') {
          const mip = await minTrafficMip(I);
          expect(mip.status).toBe('optimal');
          expect(b.bound).toBeLessThanOrEqual(mip.interNodeBytes + 1e-6);
        }
        // A bound for every placement also bounds the one-replica placements.
        if (replicas === 'any') expect(b.bound).toBeLessThanOrEqual(coverageTrafficBound({ ...I, replicas: 'one' }).bound + 1e-9);
      }
    }
    expect(positive).toBeGreaterThanOrEqual(10); // the bound says something on most instances
  });

  it('stays below the LP relaxation of the same model and close to it (dual descent, multipliers)', async () => {
    for (const [t, shape] of [makeShape(2, 2, 3), makeShape(4, 2, 2), makeShape(3, 2, 2)].entries()) {
      for (const replicas of ['one', 'any'] as const) {
        const E = replicas === 'one' ? shape.numSlots : shape.numSlots - 3;
        for (const mode of MODES) {
          const I = inst(70 + t, E, shape, mode, replicas, 300, 3);
          const cov = coverageTrafficBound(I, { families: 4 });
          const lp = await trafficLowerBound(I, { method: 'lp' });
          expect(lp.setsUsed).toBe(lp.setsTotal);
          const what = `${shape.nodes}x${shape.gpusPerNode}x${shape.slotsPerGpu} ${replicas} ${mode}: coverage ${cov.bound}, LP ${lp.bound}`;
          // low-latency: `lp` solves exactly the model whose dual the coverage bound descends (the
          // coordinate descent may stop a little short: a few % on such tiny random instances,
          // ~0.1% on real traces); normal with replicas: `lp` is the best bound over all
          // multipliers mu; normal with one replica: `lp` counts every remote node (a stronger
          // model), so only <= holds there.
          expect(cov.bound, what).toBeLessThanOrEqual(lp.bound * (1 + 1e-6) + 1e-6);
          if (mode === 'low-latency') expect(cov.bound, what).toBeGreaterThanOrEqual(lp.bound * 0.95);
          else if (replicas === 'any') expect(cov.bound, what).toBeGreaterThanOrEqual(lp.bound * 0.85);
        }
      }
    }
  });

  it('does not depend on the order of the tokens', () => {
    for (const mode of MODES) {
      const I = inst(9, 10, makeShape(3, 2, 2), mode, 'any', 200, 3);
      const { n, k } = I.tokens;
      const order = new Rng(1).shuffle(Int32Array.from({ length: n }, (_, i) => i));
      const experts = new Uint16Array(n * k);
      order.forEach((i, at) => {
        // Also reverse each token's experts.
        for (let j = 0; j < k; j++) experts[at * k + j] = I.tokens.experts[i * k + (k - 1 - j)];
      });
      const shuffled: TokenSets = { n, k, experts, source: Uint16Array.from(order, (i) => I.tokens.source[i]), weight: Float64Array.from(order, (i) => I.tokens.weight[i]) };
      expect(coverageTrafficBound({ ...I, tokens: shuffled }, { families: 4 }).bound).toBe(coverageTrafficBound(I, { families: 4 }).bound);
    }
  });

  it('more multiplier families never lower the bound', () => {
    const I = inst(5, 10, makeShape(3, 2, 2), 'normal', 'any', 200, 3);
    let prev = -1;
    for (let f = 1; f <= 4; f++) {
      const b = coverageTrafficBound(I, { families: f }).bound;
      expect(b).toBeGreaterThanOrEqual(prev);
      prev = b;
    }
  });
});

// ---------------------------------------------------------------------------------------------
// In plans

const model = tinyModel(); // 8 experts, top-2, MoE layers 1 and 2 (L = 2)
const trace: Trace = randomTrace(2, 8, 2, 600, 24, 11);
const workload: Workload = { kind: 'trace', trace, meta: { format: 'test' } };
const dir = mkdtempSync(join(tmpdir(), 'moe-plan-bounds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('plan bounds', () => {
  const shapes = [makeShape(2, 2, 3), makeShape(4, 1, 2), makeShape(3, 1, 3)];
  for (const solver of ['eplb', 'round-robin', 'optimize', 'contiguous']) {
    for (const mode of MODES) {
      it(`${solver}, ${mode}: the traffic bound is below the achieved inter-node bytes, per layer and in total`, async () => {
        for (const shape of shapes) {
          const cluster = tinyCluster(shape);
          const r = await plan({ model, cluster, workload, solver, mode, seed: 2, workers: 1 });
          const b = r.plan.bounds!;
          const m = r.plan.metrics!;
          const ev = evaluate({ model, cluster, placement: r.result.placement, workload, options: { mode } });
          expect(m.interNodeBytes).toBe(ev.interNodeBytes);
          expect(b.interNodeBytesLowerBound).toBeGreaterThan(0);
          expect(b.interNodeBytesLowerBound!).toBeLessThanOrEqual(m.interNodeBytes * (1 + 1e-12));
          expect(b.interNodeBytesGap).toBeCloseTo((m.interNodeBytes - b.interNodeBytesLowerBound!) / m.interNodeBytes, 12);
          expect(b.perLayer).toHaveLength(2);
          let sum = 0;
          for (const [l, pl] of b.perLayer!.entries()) {
            expect(pl.layer).toBe(l);
            expect(pl.maxLoadLowerBound).toBe(r.layerBounds[l]);
            expect(pl.interNodeBytesLowerBound!).toBeLessThanOrEqual(ev.perLayer[l].interNodeBytes * (1 + 1e-12));
            sum += pl.interNodeBytesLowerBound!;
          }
          expect(b.interNodeBytesLowerBound).toBeCloseTo(sum, 6);
          // The plan's bound is the coverage bound of each layer's tokens in the plan's mode.
          const direct = coverageTrafficBound({ tokens: tokenSetsOfLayer(trace, 1, shape.numGpus), numExperts: 8, shape, model, mode }, { families: 2 });
          expect(b.perLayer![1].interNodeBytesLowerBound).toBeCloseTo(direct.bound, 6);
        }
      });
    }
  }

  it('is below the exact optimum of a one-layer instance, for each solver', async () => {
    const shape = makeShape(2, 2, 2); // P == E == 8: one replica each, the exact optimum is known
    const one: Trace = { ...trace, numLayers: 1, experts: [trace.experts[0]] };
    const m1 = { ...model, moeLayerIds: [1], numHiddenLayers: 2 };
    const w1: Workload = { kind: 'trace', trace: one, meta: { format: 'test' } };
    for (const mode of MODES) {
      const exact = await minTrafficMip({ tokens: tokenSetsOfLayer(one, 0, 4), numExperts: 8, shape, model: m1, mode, replicas: 'one' });
      expect(exact.status).toBe('optimal');
      for (const solver of ['eplb', 'optimize']) {
        const r = await plan({ model: m1, cluster: tinyCluster(shape), workload: w1, solver, mode, seed: 1, workers: 1 });
        expect(r.plan.bounds!.interNodeBytesLowerBound!).toBeLessThanOrEqual(exact.interNodeBytes + 1e-6);
        expect(exact.interNodeBytes).toBeLessThanOrEqual(r.plan.metrics!.interNodeBytes + 1e-6);
      }
    }
  });

  it('reads back from the plan file, and validates', async () => {
    const cluster = tinyCluster(makeShape(2, 2, 3));
    const r = await plan({ model, cluster, workload, solver: 'eplb', mode: 'low-latency', workers: 1 });
    const path = join(dir, 'plan.json');
    writePlanFile(path, r.plan);
    const back = readPlanFile(path);
    expect(back.plan.bounds).toEqual(r.plan.bounds);
    expect(PlanSchema.safeParse(JSON.parse(readFileSync(path, 'utf8'))).success).toBe(true);
    expect(back.plan.bounds!.perLayer![0].interNodeBytesLowerBound).toBeGreaterThan(0);
    // The published JSON Schema describes the per-layer bounds.
    const schema = JSON.parse(readFileSync('schemas/plan.schema.json', 'utf8')) as {
      properties: { bounds: { properties: { perLayer: { items: { properties: Record<string, unknown> } } } } };
    };
    expect(Object.keys(schema.properties.bounds.properties.perLayer.items.properties)).toEqual(['layer', 'maxLoadLowerBound', 'interNodeBytesLowerBound']);
  });

  it('claims no traffic bound for counts-only workloads (their traffic is estimated)', async () => {
    const counts: Workload = { kind: 'counts', counts: countsOfTrace(trace), meta: { format: 'test' } };
    const r = await plan({ model, cluster: tinyCluster(makeShape(2, 2, 3)), workload: counts, solver: 'eplb', workers: 1 });
    expect(r.plan.metrics!.estimated).toBe(true);
    expect(r.plan.bounds!.interNodeBytesLowerBound).toBeUndefined();
    expect(r.plan.bounds!.interNodeBytesGap).toBeUndefined();
    expect(r.plan.bounds!.perLayer!.map((x) => x.interNodeBytesLowerBound)).toEqual([undefined, undefined]);
    expect(r.plan.bounds!.perLayer![0].maxLoadLowerBound).toBe(r.layerBounds[0]);
  });

  it('from an index: exact token sets give the trace bound, sampled layers none', () => {
    const shape = makeShape(2, 2, 3);
    for (const mode of MODES) {
      const fromTrace = layerTrafficBounds(workload, model, shape, mode);
      const exact = indexWorkload(workload, 2, shape.numGpus);
      expect(exact.layers.every((x) => !x.sampled)).toBe(true);
      const fromIndex = layerTrafficBounds(workload, model, shape, mode, exact);
      // Integer weights sum exactly: merged sets give the very same bound (a loaded and a
      // streamed trace make the same plan file).
      expect(Array.from(fromIndex)).toEqual(Array.from(fromTrace));
      const sampled = indexWorkload(workload, 2, shape.numGpus, { maxSets: 10 });
      expect(Array.from(layerTrafficBounds(workload, model, shape, mode, sampled)).every(Number.isNaN)).toBe(true);
      // An index made for another GPU count says nothing either.
      expect(Array.from(layerTrafficBounds(workload, model, shape, mode, indexWorkload(workload, 2, 8))).every(Number.isNaN)).toBe(true);
    }
  });
});
