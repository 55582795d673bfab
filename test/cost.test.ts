import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accumulateLayer, accumulateLayerWith, evaluate, finishLayer, LayerAccumulator, parseCostOptions, trafficMatrixOf, type Kernel } from '../src/cost.js';
import { InputError } from '../src/errors.js';
import { defaultDispatch, validatePlacement } from '../src/placement.js';
import { Rng } from '../src/rng.js';
import type { Mode } from '../src/schemas.js';
import { makeShape, type Shape, type TokenSets } from '../src/types.js';
import { accumulateUniformNormal, countsLoadsAfterTokens } from '../src/cost/accumulator.js';
import { sampleTokensFromCounts } from '../src/workload/sample.js';
import { compressTokenSets } from '../src/workload/tokens.js';
import { placementOf, tokenSets, toyCluster, toyModel, traceOf, traceWorkload } from './cost-helpers.js';

const arr = (a: Float64Array): number[] => Array.from(a);

// 2 nodes x 2 GPUs x 2 slots: GPUs 0,1 on node 0; GPUs 2,3 on node 1; GPU g holds slots 2g, 2g+1.
const shape22 = makeShape(2, 2, 2);
// One replica per expert: expert e on GPU floor(e / 2).
const plain = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
// Rows [source, weight, experts...]
const handTokens = tokenSets(3, [
  [0, 1, 0, 1, 2], // T1: GPUs 0,0,1 -> one NVLink 0->1
  [0, 1, 4, 5, 6], // T2: GPUs 2,2,3 -> RDMA 0->2 (landing, in D), NVLink forward 2->3
  [1, 1, 4, 2, 7], // T3: GPUs 2,1,3 -> RDMA 1->3 (landing of local index 1), forward 3->2
  [0, 2, 7, 0, 1], // T4 (weight 2): GPUs 3,0,0 -> RDMA 0->2 (landing, NOT in D), forward 2->3
]);

/** Every counting kernel of a mode (they must agree exactly). */
const KERNELS: Record<Mode, Kernel[]> = { normal: ['direct', 'mask', 'nodes', 'auto'], 'low-latency': ['direct', 'pairs', 'auto'] };

function run(ts: TokenSets, phy2log: Int32Array, E: number, mode: Mode, shape: Shape = shape22, withMatrix = false, kernel: Kernel = 'auto'): LayerAccumulator {
  const acc = new LayerAccumulator(shape, withMatrix);
  accumulateLayerWith(acc, ts, phy2log, defaultDispatch(phy2log, E, shape), E, mode, kernel);
  return acc;
}

describe('hand-computed cases on 2 nodes x 2 GPUs', () => {
  it.each(KERNELS.normal)('normal mode (%s kernel): dedup per GPU, one RDMA per remote node to the landing GPU, landing forwards', (kernel) => {
    const acc = run(handTokens, plain, 8, 'normal', shape22, true, kernel);
    expect(arr(acc.load)).toEqual([6, 2, 3, 4]);
    expect(arr(acc.rdmaOut)).toEqual([3, 1, 0, 0]);
    expect(arr(acc.rdmaIn)).toEqual([0, 0, 3, 1]);
    expect(arr(acc.nvlOut)).toEqual([1, 0, 3, 1]);
    expect(arr(acc.nvlIn)).toEqual([0, 1, 1, 3]);
    // per source GPU: GPU 0 has T1, T2, T4(w2); GPU 1 has T3
    expect(arr(acc.tokens)).toEqual([4, 1, 0, 0]);
    expect(arr(acc.interMsgs)).toEqual([3, 1, 0, 0]);
    expect(arr(acc.intraMsgs)).toEqual([4, 1, 0, 0]);
    expect(arr(acc.remoteNodes)).toEqual([3, 1, 0, 0]);

    const model = toyModel(8, 3);
    const m = finishLayer(acc, 0, model, toyCluster(shape22), parseCostOptions({}));
    expect(m.tokens).toBe(5);
    expect(m.interNodeBytes).toBe(4 * 30);
    expect(m.intraNodeBytes).toBe(5 * 30);
    expect(m.maxLoad).toBe(6);
    expect(m.meanLoad).toBe(15 / 4);
    expect(m.balancedness).toBeCloseTo(15 / 4 / 6, 12);
    expect(m.maxOverMean).toBeCloseTo(6 / (15 / 4), 12);
    expect(m.remoteNodesPerToken).toBeCloseTo(4 / 5, 12);
    // worst GPU: 3 RDMA messages (GPU 0 out, GPU 2 in) -> 30 B / 100 B/s; NVLink 3 msgs -> 0.03 s
    expect(m.dispatchSeconds).toBeCloseTo(0.3, 12);
    expect(m.combineSeconds).toBeCloseTo(0.6, 12);
    expect(m.computeSeconds).toBeCloseTo((6 * 1e6) / (1e9 * 0.5), 12);
    expect(m.timeSeconds).toBeCloseTo(0.3 + 0.6 + 0.012, 12);
    const mo = finishLayer(acc, 0, model, toyCluster(shape22), parseCostOptions({ overlap: true, efficiency: 0.25 }));
    expect(mo.computeSeconds).toBeCloseTo(0.024, 12);
    expect(mo.timeSeconds).toBeCloseTo(0.6, 12);

    // messages s->d: T1 0->1; T2 0->2, 2->3; T3 1->3, 3->2; T4 (w2) 0->2, 2->3
    const bytes = trafficMatrixOf(acc, model);
    const at = (s: number, d: number): number => bytes[s * 4 + d];
    expect(at(0, 1)).toBe(10);
    expect(at(1, 0)).toBe(20);
    expect(at(0, 2)).toBe(30);
    expect(at(2, 0)).toBe(60);
    expect(at(2, 3)).toBe(3 * 10 + 1 * 20);
    expect(at(3, 2)).toBe(1 * 10 + 3 * 20);
    expect(at(1, 3)).toBe(10);
    expect(at(3, 1)).toBe(20);
    expect(bytes.reduce((a, b) => a + b, 0)).toBe(m.interNodeBytes + m.intraNodeBytes);
  });

  it.each(KERNELS['low-latency'])('low-latency mode (%s kernel): one message per (token, expert) off the source GPU, no dedup, no forwarding', (kernel) => {
    const acc = run(handTokens, plain, 8, 'low-latency', shape22, true, kernel);
    expect(arr(acc.load)).toEqual([6, 2, 3, 4]);
    // T1: 0->1 NVL; T2: 0->2 x2, 0->3 RDMA; T3: 1->2, 1->3 RDMA; T4 (w2): 0->3 RDMA
    expect(arr(acc.rdmaOut)).toEqual([5, 2, 0, 0]);
    expect(arr(acc.rdmaIn)).toEqual([0, 0, 3, 4]);
    expect(arr(acc.nvlOut)).toEqual([1, 0, 0, 0]);
    expect(arr(acc.nvlIn)).toEqual([0, 1, 0, 0]);
    expect(arr(acc.remoteNodes)).toEqual([3, 1, 0, 0]);
    const m = finishLayer(acc, 0, toyModel(8, 3), toyCluster(shape22), parseCostOptions({ mode: 'low-latency' }));
    expect(m.interNodeBytes).toBe(7 * 30);
    expect(m.intraNodeBytes).toBe(1 * 30);
    expect(m.dispatchSeconds).toBeCloseTo((5 * 10) / 100, 12);
    expect(m.combineSeconds).toBeCloseTo((5 * 20) / 100, 12);
    const bytes = trafficMatrixOf(acc, toyModel(8, 3));
    expect(bytes[0 * 4 + 2]).toBe(2 * 10); // T2: two messages 0->2, replies come back
    expect(bytes[2 * 4 + 0]).toBe(2 * 20);
    expect(bytes[0 * 4 + 3]).toBe(3 * 10);
    expect(bytes.reduce((a, b) => a + b, 0)).toBe(m.interNodeBytes + m.intraNodeBytes);
  });

  it('replicas on several nodes follow the default dispatch rule (own GPU, own node, round robin)', () => {
    // Expert 0 on GPU 1 (slot 2) and GPU 3 (slot 7); expert 5 on GPUs 2 and 3 (slots 5, 6), none on node 0.
    const phy2log = Int32Array.from([1, 2, 0, 3, 4, 5, 5, 0]);
    const ts = tokenSets(2, [
      [0, 1, 0, 5], // expert 0 -> node-0 replica GPU 1; expert 5 -> R[0 mod 2] = GPU 2 (landing of GPU 0)
      [1, 1, 5, 0], // expert 5 -> R[1 mod 2] = GPU 3 (landing of GPU 1); expert 0 -> own GPU 1
      [2, 1, 0, 1], // expert 0 -> node-1 replica GPU 3 (NVLink); expert 1 -> GPU 0 = landing on node 0
      [3, 1, 0, 5], // both on own GPU 3: no traffic
    ]);
    for (const mode of ['normal', 'low-latency'] as const) {
      for (const kernel of KERNELS[mode]) {
        const acc = run(ts, phy2log, 6, mode, shape22, false, kernel);
        expect(arr(acc.load)).toEqual([1, 2, 1, 4]);
        expect(arr(acc.rdmaOut)).toEqual([1, 1, 1, 0]);
        expect(arr(acc.rdmaIn)).toEqual([1, 0, 1, 1]);
        expect(arr(acc.nvlOut)).toEqual([1, 0, 1, 0]);
        expect(arr(acc.nvlIn)).toEqual([0, 1, 0, 1]);
      }
    }
  });

  it('evaluate() on a trace reproduces the hand case and sums layers', () => {
    const other = tokenSets(3, [
      [0, 1, 0, 1, 0],
      [0, 1, 1, 0, 1],
      [1, 1, 2, 3, 2],
      [0, 2, 1, 0, 1],
    ]);
    // layer 1 puts every expert used by those tokens on the token's source... except T3 (source 1,
    // experts 2,3 on GPU 1) - all local, so layer 1 has no traffic.
    const wl = traceWorkload(traceOf(8, [handTokens, other]));
    const pl = placementOf(shape22, 8, [Array.from(plain), Array.from(plain)]);
    const ev = evaluate({ model: toyModel(8, 3), cluster: toyCluster(shape22), placement: pl, workload: wl, trafficMatrix: true });
    expect(ev.estimated).toBe(false);
    expect(ev.mode).toBe('normal');
    expect(ev.perLayer[0].interNodeBytes).toBe(120);
    expect(ev.perLayer[0].intraNodeBytes).toBe(150);
    expect(ev.perLayer[1].interNodeBytes).toBe(0);
    expect(ev.perLayer[1].intraNodeBytes).toBe(0);
    expect(ev.interNodeBytes).toBe(120);
    expect(ev.intraNodeBytes).toBe(150);
    expect(arr(ev.loads[0])).toEqual([6, 2, 3, 4]);
    expect(arr(ev.loads[1])).toEqual([12, 3, 0, 0]);
    expect(ev.maxLoad).toBe(12);
    expect(ev.meanLoad).toBe(15 / 4);
    expect(ev.balancedness).toBeCloseTo((15 / 4 / 6 + 15 / 4 / 12) / 2, 12);
    expect(ev.remoteNodesPerToken).toBeCloseTo(4 / 10, 12);
    expect(ev.timeSeconds).toBeCloseTo(ev.perLayer[0].timeSeconds + ev.perLayer[1].timeSeconds, 12);
    expect(ev.perLayer[1].timeSeconds).toBeCloseTo((12 * 1e6) / (1e9 * 0.5), 12);
    expect(ev.trafficMatrix![1].every((x) => x === 0)).toBe(true);
    expect(ev.trafficMatrix![0][0 * 4 + 2]).toBe(30);
  });

  it('rejects dispatch tables that point at the wrong expert, and bad options', () => {
    const acc = new LayerAccumulator(shape22);
    const bad = defaultDispatch(plain, 8, shape22);
    bad[1 * 8 + 3] = 2; // slot 2 holds expert 2, not 3
    expect(() => accumulateLayer(acc, handTokens, plain, bad, 8, 'normal')).toThrow(InputError);
    expect(() => accumulateLayer(acc, handTokens, plain, bad, 8, 'normal')).toThrow(/dispatch\[1\]\[3\]/);
    const missing = Int32Array.from([0, 1, 2, 3, 4, 5, 6, -1]); // expert 7 has no replica
    expect(() => accumulateLayer(acc, handTokens, missing, defaultDispatch(missing, 8, shape22), 8, 'normal')).toThrow(/expert 7/);
    expect(() => parseCostOptions({ efficiency: 2 })).toThrow(/options\.efficiency/);
  });
});

// ---------------------------------------------------------------------------------------------
// Reference implementation: plain objects, messages listed one by one, straight from DESIGN.md.

interface RefResult {
  load: number[];
  rdmaOut: number[];
  rdmaIn: number[];
  nvlOut: number[];
  nvlIn: number[];
  /** [NG*NG] messages from (row) to (column). */
  matrix: number[];
  remote: number;
  tokens: number;
}

function reference(shape: Shape, phy2log: number[], dispatch: number[], E: number, toks: { src: number; w: number; ex: number[] }[], mode: Mode): RefResult {
  const NG = shape.numGpus;
  const G = shape.gpusPerNode;
  const zero = (): number[] => new Array<number>(NG).fill(0);
  const r: RefResult = { load: zero(), rdmaOut: zero(), rdmaIn: zero(), nvlOut: zero(), nvlIn: zero(), matrix: new Array<number>(NG * NG).fill(0), remote: 0, tokens: 0 };
  const gpuOf = (slot: number): number => Math.floor(slot / shape.slotsPerGpu);
  const nodeOf = (gpu: number): number => Math.floor(gpu / G);
  const send = (from: number, to: number, w: number): void => {
    r.matrix[from * NG + to] += w;
    if (nodeOf(from) === nodeOf(to)) {
      r.nvlOut[from] += w;
      r.nvlIn[to] += w;
    } else {
      r.rdmaOut[from] += w;
      r.rdmaIn[to] += w;
    }
  };
  for (const t of toks) {
    r.tokens += t.w;
    const dests = t.ex.map((e) => {
      const slot = dispatch[t.src * E + e];
      if (phy2log[slot] !== e) throw new Error('reference: bad dispatch');
      return gpuOf(slot);
    });
    for (const d of dests) r.load[d] += t.w;
    const remoteNodes = new Set(dests.map(nodeOf).filter((m) => m !== nodeOf(t.src)));
    r.remote += t.w * remoteNodes.size;
    if (mode === 'low-latency') {
      for (const d of dests) if (d !== t.src) send(t.src, d, t.w);
      continue;
    }
    const D = new Set(dests);
    for (const m of remoteNodes) {
      const landing = m * G + (t.src % G);
      send(t.src, landing, t.w);
      for (const d of D) if (nodeOf(d) === m && d !== landing) send(landing, d, t.w);
    }
    for (const d of D) if (nodeOf(d) === nodeOf(t.src) && d !== t.src) send(t.src, d, t.w);
  }
  return r;
}

const instance = fc
  .record({
    nodes: fc.integer({ min: 1, max: 3 }),
    gpusPerNode: fc.integer({ min: 1, max: 3 }),
    slotsPerGpu: fc.integer({ min: 1, max: 3 }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    nTokens: fc.integer({ min: 0, max: 25 }),
    defaultRule: fc.boolean(),
  })
  .map((p) => {
    // Build the random placement with the seeded generator (fast-check drives the seed).
    const rng = new Rng(p.seed);
    const shape = makeShape(p.nodes, p.gpusPerNode, p.slotsPerGpu);
    const P = shape.numSlots;
    const E = 1 + rng.int(P);
    const k = 1 + rng.int(Math.min(E, 4));
    const phy2log = new Array<number>(P).fill(-1);
    const order = rng.shuffle(Int32Array.from({ length: P }, (_, i) => i));
    for (let e = 0; e < E; e++) phy2log[order[e]] = e; // every expert once
    for (let i = E; i < P; i++) if (rng.next() < 0.7) phy2log[order[i]] = rng.int(E); // extra replicas
    const replicas: number[][] = Array.from({ length: E }, () => []);
    phy2log.forEach((e, slot) => e >= 0 && replicas[e].push(slot));
    const dispatch = p.defaultRule
      ? Array.from(defaultDispatch(Int32Array.from(phy2log), E, shape))
      : Array.from({ length: shape.numGpus * E }, (_, i) => {
          const rs = replicas[i % E];
          return rs[rng.int(rs.length)];
        });
    const toks = Array.from({ length: p.nTokens }, () => {
      const ex = Array.from(rng.shuffle(Int32Array.from({ length: E }, (_, i) => i)).subarray(0, k));
      return { src: rng.int(shape.numGpus), w: 1 + rng.int(3), ex };
    });
    return { shape, E, k, phy2log, dispatch, toks };
  });

describe('property: evaluator equals the plain reference implementation', () => {
  it('per-GPU counters, totals and remote nodes match on random small instances, both modes', () => {
    fc.assert(
      fc.property(instance, fc.constantFrom<Mode>('normal', 'low-latency'), ({ shape, E, k, phy2log, dispatch, toks }, mode) => {
        const ts = tokenSets(k, toks.map((t) => [t.src, t.w, ...t.ex]));
        const ref = reference(shape, phy2log, dispatch, E, toks, mode);
        const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
        for (const kernel of KERNELS[mode]) {
          const acc = new LayerAccumulator(shape, true);
          accumulateLayerWith(acc, ts, Int32Array.from(phy2log), Int32Array.from(dispatch), E, mode, kernel);
          expect(arr(acc.load)).toEqual(ref.load);
          expect(arr(acc.rdmaOut)).toEqual(ref.rdmaOut);
          expect(arr(acc.rdmaIn)).toEqual(ref.rdmaIn);
          expect(arr(acc.nvlOut)).toEqual(ref.nvlOut);
          expect(arr(acc.nvlIn)).toEqual(ref.nvlIn);
          expect(arr(acc.matrix!)).toEqual(ref.matrix);
          expect(sum(arr(acc.remoteNodes))).toBe(ref.remote);
          expect(sum(arr(acc.tokens))).toBe(ref.tokens);
          expect(sum(arr(acc.interMsgs))).toBe(sum(ref.rdmaOut));
          expect(sum(arr(acc.intraMsgs))).toBe(sum(ref.nvlOut));
          const m = finishLayer(acc, 0, toyModel(E, k), toyCluster(shape), parseCostOptions({ mode }));
          expect(m.interNodeBytes).toBe(sum(ref.rdmaOut) * 30);
          expect(m.intraNodeBytes).toBe(sum(ref.nvlOut) * 30);
          expect(m.maxLoad).toBe(Math.max(...ref.load));
        }
      }),
      { numRuns: 300, seed: 20240607 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Invariants on larger random inputs.

function randomTokens(rng: Rng, n: number, k: number, E: number, NG: number): TokenSets {
  const experts = new Uint16Array(n * k);
  const source = new Uint16Array(n);
  const weight = new Float64Array(n);
  const perm = Int32Array.from({ length: E }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    source[i] = rng.int(NG);
    weight[i] = 1 + rng.int(2);
    // skewed partial shuffle so that repeated expert sets occur
    for (let j = 0; j < k; j++) {
      const r = j + Math.min(E - j - 1, Math.floor(rng.next() * rng.next() * (E - j)));
      const t = perm[j];
      perm[j] = perm[r];
      perm[r] = t;
      experts[i * k + j] = perm[j];
    }
  }
  return { n, k, experts, source, weight };
}

describe('invariants', () => {
  const shape = makeShape(3, 4, 2); // 12 GPUs, 24 slots
  const E = 20;
  const rng = new Rng(7);
  const phy2log = new Int32Array(24).fill(-1);
  const order = rng.shuffle(Int32Array.from({ length: 24 }, (_, i) => i));
  for (let e = 0; e < E; e++) phy2log[order[e]] = e;
  for (let i = E; i < 24; i++) phy2log[order[i]] = i - E; // replicas of experts 0..3
  const dispatch = defaultDispatch(phy2log, E, shape);
  const ts = randomTokens(new Rng(11), 3000, 4, E, shape.numGpus);
  const model = toyModel(E, 4);
  const cluster = toyCluster(shape);

  for (const mode of ['normal', 'low-latency'] as const) {
    it(`${mode}: loads sum to weighted tokens x k; RDMA out = in; NVLink out = in`, () => {
      const acc = new LayerAccumulator(shape);
      accumulateLayer(acc, ts, phy2log, dispatch, E, mode);
      let w = 0;
      for (let i = 0; i < ts.n; i++) w += ts.weight[i];
      const total = (a: Float64Array): number => a.reduce((x, y) => x + y, 0);
      expect(total(acc.load)).toBe(w * 4);
      expect(total(acc.rdmaOut)).toBe(total(acc.rdmaIn));
      expect(total(acc.nvlOut)).toBe(total(acc.nvlIn));
      expect(total(acc.interMsgs)).toBe(total(acc.rdmaOut));
      expect(total(acc.intraMsgs)).toBe(total(acc.nvlOut));
    });

    it(`${mode}: chunked accumulation equals one shot`, () => {
      const one = new LayerAccumulator(shape, true);
      accumulateLayer(one, ts, phy2log, dispatch, E, mode);
      const chunked = new LayerAccumulator(shape, true);
      // uneven chunks: small ones take the direct kernel, large ones the grouped/pairs kernels
      const sizes = [1, 2, 3, 50, 701, 5, 1500];
      for (let a = 0, c = 0; a < ts.n; a += sizes[c++ % sizes.length]) {
        const b = Math.min(ts.n, a + sizes[c % sizes.length]);
        const part: TokenSets = { n: b - a, k: 4, experts: ts.experts.subarray(a * 4, b * 4), source: ts.source.subarray(a, b), weight: ts.weight.subarray(a, b) };
        accumulateLayer(chunked, part, phy2log, dispatch, E, mode);
      }
      const opts = parseCostOptions({ mode });
      expect(finishLayer(chunked, 0, model, cluster, opts)).toEqual(finishLayer(one, 0, model, cluster, opts));
      expect(arr(chunked.matrix!)).toEqual(arr(one.matrix!));
      // reset really clears: re-running one shot on a reused accumulator gives the same
      chunked.reset();
      accumulateLayer(chunked, ts, phy2log, dispatch, E, mode);
      expect(arr(chunked.rdmaIn)).toEqual(arr(one.rdmaIn));
    });

    it(`${mode}: compressed token sets give identical metrics`, () => {
      const c = compressTokenSets(ts);
      expect(c.n).toBeLessThan(ts.n);
      const a1 = new LayerAccumulator(shape);
      accumulateLayer(a1, ts, phy2log, dispatch, E, mode);
      const a2 = new LayerAccumulator(shape);
      accumulateLayer(a2, c, phy2log, dispatch, E, mode);
      const opts = parseCostOptions({ mode });
      expect(finishLayer(a2, 0, model, cluster, opts)).toEqual(finishLayer(a1, 0, model, cluster, opts));
      for (const f of ['load', 'rdmaOut', 'rdmaIn', 'nvlOut', 'nvlIn', 'remoteNodes', 'tokens'] as const) expect(arr(a2[f])).toEqual(arr(a1[f]));
    });
  }

  it.each([
    [5, 8, 2], // NG > 32: grouped per-node masks
    [2, 10, 1], // G > 8: direct only
    [1, 4, 3], // one node: no RDMA
    [33, 1, 2], // > 32 nodes: node stamps in the pairs kernel
    [16, 2, 1], // NG = 32 with 16 nodes: the mask kernel loops over many nodes
  ])('all kernels agree on %i nodes x %i GPUs x %i slots', (nodes, gpn, spg) => {
    const s = makeShape(nodes, gpn, spg);
    const P = s.numSlots;
    const E2 = Math.min(P - 4, 60);
    const r = new Rng(nodes * 100 + gpn);
    const p2l = new Int32Array(P).fill(-1);
    const ord = r.shuffle(Int32Array.from({ length: P }, (_, i) => i));
    for (let i = 0; i < P; i++) p2l[ord[i]] = i < E2 ? i : r.int(E2);
    // empty the slots that repeat an expert of their GPU, then give every missing expert an empty slot
    for (let p = 0; p < P; p++) {
      const first = p - (p % spg);
      for (let q = first; q < p; q++) if (p2l[q] === p2l[p]) p2l[p] = -1;
    }
    for (let e = 0; e < E2; e++) if (!p2l.includes(e)) p2l[p2l.indexOf(-1)] = e;
    validatePlacement({ numLayers: 1, numExperts: E2, shape: s, phy2log: [p2l], dispatch: null });
    const disp = defaultDispatch(p2l, E2, s);
    const t = randomTokens(new Rng(5), 4000, 6, E2, s.numGpus);
    for (const mode of ['normal', 'low-latency'] as const) {
      const runs = KERNELS[mode].map((kernel) => {
        const a = new LayerAccumulator(s, true);
        accumulateLayerWith(a, t, p2l, disp, E2, mode, kernel);
        return a;
      });
      for (const a of runs.slice(1)) {
        for (const f of ['load', 'rdmaOut', 'rdmaIn', 'nvlOut', 'nvlIn', 'interMsgs', 'intraMsgs', 'remoteNodes', 'tokens', 'matrix'] as const) {
          expect(arr(a[f]!)).toEqual(arr(runs[0][f]!));
        }
      }
      if (nodes === 1) expect(runs[0].rdmaOut.every((x) => x === 0)).toBe(true);
      else expect(runs[0].rdmaOut.some((x) => x > 0)).toBe(true);
    }
  });

  it('every expert on every GPU: the default rule keeps tokens home, zero traffic', () => {
    const s = makeShape(2, 2, 5);
    const full = Int32Array.from({ length: 20 }, (_, p) => p % 5);
    const t = randomTokens(new Rng(3), 500, 3, 5, 4);
    for (const mode of ['normal', 'low-latency'] as const) {
      const acc = new LayerAccumulator(s);
      accumulateLayer(acc, t, full, defaultDispatch(full, 5, s), 5, mode);
      const m = finishLayer(acc, 0, toyModel(5, 3), toyCluster(s), parseCostOptions({ mode }));
      expect(m.interNodeBytes).toBe(0);
      expect(m.intraNodeBytes).toBe(0);
      expect(m.remoteNodesPerToken).toBe(0);
      expect(m.dispatchSeconds).toBe(0);
      // each GPU serves exactly its own tokens' pairs
      for (let g = 0; g < 4; g++) expect(acc.load[g]).toBe(acc.tokens[g] * 3);
    }
  });

  it('normal never sends more RDMA than low-latency; same NVLink when one node and distinct GPUs per token', () => {
    const n = new LayerAccumulator(shape);
    accumulateLayer(n, ts, phy2log, dispatch, E, 'normal');
    const ll = new LayerAccumulator(shape);
    accumulateLayer(ll, ts, phy2log, dispatch, E, 'low-latency');
    const total = (a: Float64Array): number => a.reduce((x, y) => x + y, 0);
    expect(total(n.rdmaOut)).toBeLessThanOrEqual(total(ll.rdmaOut));
    expect(total(n.remoteNodes)).toBe(total(ll.remoteNodes));
    // one node, each token's experts on distinct GPUs: both modes send the same NVLink messages
    const one = makeShape(1, 4, 1);
    const p1 = Int32Array.from([0, 1, 2, 3]);
    const t1 = tokenSets(2, [
      [0, 1, 1, 2],
      [3, 1, 0, 3],
      [2, 3, 0, 1],
    ]);
    const a = run(t1, p1, 4, 'normal', one);
    const b = run(t1, p1, 4, 'low-latency', one);
    expect(arr(a.nvlOut)).toEqual(arr(b.nvlOut));
    expect(arr(a.nvlIn)).toEqual(arr(b.nvlIn));
    expect(arr(a.nvlOut)).toEqual([2, 0, 6, 1]);
  });
});

describe('accumulateUniformNormal (sampled tokens of a counts layer, all of one weight)', () => {
  /** A random valid layer on `s` with at most 60 experts, some replicated. */
  function randomLayer(s: Shape, seed: number): { E: number; p2l: Int32Array; disp: Int32Array } {
    const P = s.numSlots;
    const E = Math.min(P - 4, 60);
    const r = new Rng(seed);
    const p2l = new Int32Array(P).fill(-1);
    const ord = r.shuffle(Int32Array.from({ length: P }, (_, i) => i));
    for (let i = 0; i < P; i++) p2l[ord[i]] = i < E ? i : r.int(E);
    for (let p = 0; p < P; p++) {
      const first = p - (p % s.slotsPerGpu);
      for (let q = first; q < p; q++) if (p2l[q] === p2l[p]) p2l[p] = -1;
    }
    for (let e = 0; e < E; e++) if (!p2l.includes(e)) p2l[p2l.indexOf(-1)] = e;
    return { E, p2l, disp: defaultDispatch(p2l, E, s) };
  }
  const FIELDS = ['rdmaOut', 'rdmaIn', 'nvlOut', 'nvlIn', 'interMsgs', 'intraMsgs', 'remoteNodes', 'tokens'] as const;

  it.each([
    [18, 8, 2], // DeepSeek-V3 EP144: per-node masks
    [4, 8, 9], // EP32: one 32-bit GPU mask
    [5, 8, 2],
    [16, 2, 1], // NG = 32 over 16 nodes: per-node masks
    [32, 4, 2], // 32 nodes, the most a 32-bit node set holds
    [1, 4, 3], // one node: no RDMA
    [3, 5, 4],
  ])('gives every counter of accumulateLayer bit for bit on %i nodes x %i GPUs x %i slots', (nodes, gpn, spg) => {
    const s = makeShape(nodes, gpn, spg);
    const { E, p2l, disp } = randomLayer(s, nodes * 31 + gpn);
    for (const [seed, w] of [
      [1, 1],
      [2, 1234.567 / 3],
      [3, 0.1],
    ]) {
      const t = randomTokens(new Rng(seed), 4000, 6, E, s.numGpus);
      t.weight.fill(w);
      const ref = new LayerAccumulator(s);
      accumulateLayer(ref, t, p2l, disp, E, 'normal');
      const got = new LayerAccumulator(s);
      got.load.fill(0);
      expect(accumulateUniformNormal(got, t, w, p2l, disp, E)).toBe(true);
      for (const f of FIELDS) expect(arr(got[f])).toEqual(arr(ref[f]));
      expect(got.load.every((x) => x === 0)).toBe(true);
      // The counts' loads follow as after accumulateLayer; a reset accumulator is reused exactly.
      const counts = Float64Array.from({ length: E }, (_, e) => 1 + ((e * 37) % 11) / 3);
      countsLoadsAfterTokens(ref, counts, E);
      countsLoadsAfterTokens(got, counts, E);
      expect(arr(got.load)).toEqual(arr(ref.load));
      got.reset();
      accumulateUniformNormal(got, t, w, p2l, disp, E, true); // tokens known valid: not checked
      for (const f of FIELDS) expect(arr(got[f])).toEqual(arr(ref[f]));
    }
  });

  it('sampled tokens (sources round robin): the same layer metrics as accumulateLayer', () => {
    const s = makeShape(18, 8, 2);
    const { E, p2l, disp } = randomLayer(s, 5);
    const counts = Float64Array.from({ length: E }, (_, e) => (e % 9 === 4 ? 0 : 1 + ((e * 7919) % 1000)));
    const t = sampleTokensFromCounts(counts, 8, 144 * 40, s.numGpus, new Rng(8));
    const w = 12345.678 / t.n;
    t.weight.fill(w);
    const ref = new LayerAccumulator(s);
    accumulateLayer(ref, t, p2l, disp, E, 'normal');
    const got = new LayerAccumulator(s);
    expect(accumulateUniformNormal(got, t, w, p2l, disp, E)).toBe(true);
    countsLoadsAfterTokens(ref, counts, E);
    countsLoadsAfterTokens(got, counts, E);
    const model = toyModel(E, 8);
    const opts = parseCostOptions({});
    expect(finishLayer(got, 0, model, toyCluster(s), opts)).toEqual(finishLayer(ref, 0, model, toyCluster(s), opts));
  });

  it('declines (false, nothing counted) where accumulateLayer takes the direct kernel, with a matrix, G > 8 or > 32 nodes', () => {
    for (const [nodes, gpn, spg, n, matrix] of [
      [4, 8, 9, 100, false], // too few tokens for the grouped kernels
      [4, 8, 9, 4000, true],
      [2, 10, 1, 4000, false],
      [33, 1, 2, 4000, false],
    ] as const) {
      const s = makeShape(nodes, gpn, spg);
      const { E, p2l, disp } = randomLayer(s, 9);
      const t = randomTokens(new Rng(4), n, 6, E, s.numGpus);
      const acc = new LayerAccumulator(s, matrix);
      expect(accumulateUniformNormal(acc, t, 2, p2l, disp, E)).toBe(false);
      for (const f of FIELDS) expect(acc[f].every((x) => x === 0)).toBe(true);
    }
  });

  it('rejects a dispatch entry that points at the wrong expert, as accumulateLayer does', () => {
    const s = makeShape(4, 8, 9);
    const { E, p2l, disp } = randomLayer(s, 3);
    const bad = disp.slice();
    bad[5] = disp[6];
    const t = randomTokens(new Rng(4), 4000, 6, E, s.numGpus);
    expect(() => accumulateUniformNormal(new LayerAccumulator(s), t, 1, p2l, bad, E)).toThrow(InputError);
  });
});
