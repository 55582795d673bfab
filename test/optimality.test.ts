/**
 * The optimizer against exact optima of tiny instances (src/bounds/exact.ts), and the load contract of
 * the `traffic` objective. What is proved and what is asserted:
 *
 * - One replica per expert (P == E): a plan's GPU loads and traffic do not depend on its dispatch
 *   table (every expert has one slot), and `exactMinTraffic` / `minTrafficMip` give the least
 *   inter-node bytes over EVERY placement (within `maxLoadCap` when one is given). So a plan within
 *   the cap has inter-node bytes >= the exact minimum, always (checked: a plan below it means the
 *   reference is broken). That `optimize` reaches the minimum is its goal, not a theorem: on
 *   instances this small (E <= 9, a few dozen tokens, 8x the default proposals) it is asserted
 *   exactly (relative 1e-9), as the first tests (no binding cap, 2 nodes) always did.
 * - Replicas (P > E, `replicas: 'any'`), 2 nodes: `exactMinTraffic` enumerates every placement
 *   under the default dispatch rule. With 2 nodes all remote experts of a token live on the one
 *   other node, so any dispatch table costs at least the inter-node bytes of the default rule
 *   (which serves from the source's node whenever it holds the expert): the enumerated minimum is
 *   the minimum over every table too. No load cap there: with replicas the plan's own table sets
 *   the loads, which an enumeration under the default rule does not model.
 * - Binding cap: the contract of `traffic` is evaluated max GPU load <= (1 + eps) x the max load
 *   of the best balanced plan. The cap used here is (1 + eps) x the evaluated max load (src/cost.ts)
 *   of `optimize`'s own `balance` plan on the same input and options, computed independently of the
 *   traffic run; instances are drawn until the cap changes the exact optimum (it binds). The exact
 *   cases run with `samples: 0` (no request-sample load dimensions): the optimizer then has no
 *   constraint besides that cap, the same feasible set as `exactMinTraffic`, so equality is the
 *   target. The contract itself is also checked with the default options.
 * - On a moderately sized generated trace the contract is checked per layer for both modes.
 *
 * Cases the optimizer does not meet today are marked `it.fails`; each one's comment says by how
 * much (flip it to `it` once it passes).
 */
import { describe, expect, it } from 'vitest';
import { evaluate, type Evaluation } from '../src/cost.js';
import { exactMinTraffic, minTrafficMip } from '../src/bounds/exact.js';
import type { TrafficInstance } from '../src/bounds/instance.js';
import { generateTrace } from '../src/generator.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { Rng } from '../src/rng.js';
import { ModelSchema, type Cluster, type Mode, type Model, type Objective } from '../src/schemas.js';
import { makeShape, type Shape, type Trace, type Workload } from '../src/types.js';
import { tokenSetsOfLayer } from '../src/workload/tokens.js';
import { optimize, type OptimizeOptions } from '../src/solvers/optimize.js';

function tinyTrace(rng: Rng, E: number, k: number, tokens: number, clusters: number): Trace {
  const experts = new Uint16Array(tokens * k);
  const size = Math.floor(E / clusters);
  for (let t = 0; t < tokens; t++) {
    const c = rng.int(clusters);
    const used = new Set<number>();
    for (let j = 0; j < k; j++) {
      let e = rng.next() < 0.75 ? (c * size + rng.int(size)) % E : rng.int(E);
      while (used.has(e)) e = (e + 1) % E;
      used.add(e);
      experts[t * k + j] = e;
    }
  }
  return {
    numLayers: 1,
    numExperts: E,
    topK: k,
    numTokens: tokens,
    numRequests: tokens,
    request: Uint32Array.from({ length: tokens }, (_, t) => t),
    rank: new Int32Array(tokens).fill(-1),
    weight: null,
    experts: [experts],
  };
}

describe('optimality on tiny instances', () => {
  const base = resolveModel('mixtral-8x7b');
  for (const mode of ['normal', 'low-latency'] as const) {
    it(`reaches the exact minimum inter-node bytes (${mode})`, async () => {
      const rng = new Rng(mode === 'normal' ? 21 : 22);
      for (let trial = 0; trial < 5; trial++) {
        const E = 8;
        const k = 2 + rng.int(2);
        const model = { ...base, experts: E, topK: k, moeLayerIds: [0], numHiddenLayers: 1 };
        const shape = makeShape(2, 2, 2);
        const cluster = resolveCluster('h800-4x8', model, { nodes: 2, gpusPerNode: 2, slotsPerGpu: 2 });
        const trace = tinyTrace(rng, E, k, 40 + rng.int(40), 2);
        const workload: Workload = { kind: 'trace', trace, meta: { format: 'test' } };
        const exact = await minTrafficMip({ tokens: tokenSetsOfLayer(trace, 0, shape.numGpus), numExperts: E, shape, model, mode, replicas: 'one' });
        expect(exact.status).toBe('optimal');
        // A loose eps keeps the load cap from binding, as in the MIP.
        const r = await optimize({ model, cluster, shape, workload, objective: 'traffic', mode, seed: trial, eps: 100 }, { proposalsPerExpert: 800 });
        const ev = evaluate({ model, cluster, placement: r.placement, workload, options: { mode } });
        expect(ev.interNodeBytes).toBeCloseTo(exact.interNodeBytes, 6);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Shared by the new cases

const BASE = resolveModel('mixtral-8x7b');
/** Proposals per expert of the tiny cases (the default is 100). */
const TINY_OPTS: OptimizeOptions = { proposalsPerExpert: 800 };

interface Tiny {
  model: Model;
  cluster: Cluster;
  shape: Shape;
  workload: Workload;
  inst: TrafficInstance;
}

/** One-layer instance: E experts, top-k, T tokens in `clusters` co-activated groups, on `shape`. */
function tinyInstance(rng: Rng, shape: Shape, E: number, k: number, T: number, clusters: number, mode: Mode, replicas: 'one' | 'any'): Tiny {
  const model: Model = { ...BASE, experts: E, topK: k, moeLayerIds: [0], numHiddenLayers: 1 };
  const cluster = resolveCluster('h800-4x8', model, { nodes: shape.nodes, gpusPerNode: shape.gpusPerNode, slotsPerGpu: shape.slotsPerGpu });
  const trace = tinyTrace(rng, E, k, T, clusters);
  const workload: Workload = { kind: 'trace', trace, meta: { format: 'test' } };
  const inst: TrafficInstance = { tokens: tokenSetsOfLayer(trace, 0, shape.numGpus), numExperts: E, shape, model, mode, replicas };
  return { model, cluster, shape, workload, inst };
}

async function planned(t: Tiny, objective: Objective, mode: Mode, seed: number, eps: number, opts: OptimizeOptions): Promise<Evaluation> {
  const r = await optimize({ model: t.model, cluster: t.cluster, shape: t.shape, workload: t.workload, objective, mode, seed, eps }, opts);
  return evaluate({ model: t.model, cluster: t.cluster, placement: r.placement, workload: t.workload, options: { mode } });
}

const rel = (a: number, b: number): number => (b > 0 ? a / b - 1 : a > 0 ? Infinity : 0);

/**
 * Traffic plans against the exact minimum: a list of problems (empty = every trial reached the
 * exact minimum and, when capped, respected the cap).
 */
function compare(label: string, ev: Evaluation, exact: { interNodeBytes: number }, cap = Infinity): string[] {
  const out: string[] = [];
  if (ev.maxLoad > cap * (1 + 1e-12)) out.push(`${label}: max load ${ev.maxLoad} above the cap ${cap.toFixed(3)} (+${(rel(ev.maxLoad, cap) * 100).toFixed(2)}%)`);
  else if (ev.interNodeBytes < exact.interNodeBytes * (1 - 1e-9)) out.push(`${label}: inter-node bytes ${ev.interNodeBytes} below the exact minimum ${exact.interNodeBytes} (reference broken)`);
  if (Math.abs(ev.interNodeBytes - exact.interNodeBytes) > 1e-9 * exact.interNodeBytes) {
    out.push(`${label}: inter-node bytes ${ev.interNodeBytes} vs exact ${exact.interNodeBytes} (${rel(ev.interNodeBytes, exact.interNodeBytes) >= 0 ? '+' : ''}${(rel(ev.interNodeBytes, exact.interNodeBytes) * 100).toFixed(1)}%)`);
  }
  return out;
}

interface Capped {
  t: Tiny;
  seed: number;
  cap: number;
  exact: { interNodeBytes: number; maxLoad: number };
}

/**
 * `want` instances (one replica, P == E) on which the cap (1 + eps) x the evaluated max load of
 * optimize's balance plan binds: the exact minimum under it exceeds the exact minimum without.
 */
async function bindingInstances(seed: number, shape: Shape, mode: Mode, eps: number, opts: OptimizeOptions, want: number): Promise<Capped[]> {
  const rng = new Rng(seed);
  const out: Capped[] = [];
  for (let trial = 0; out.length < want; trial++) {
    if (trial >= 40) throw new Error(`only ${out.length} of ${want} instances with a binding cap in 40 draws`);
    const E = shape.numSlots;
    const t = tinyInstance(rng, shape, E, 2 + rng.int(2), 40 + rng.int(40), shape.nodes, mode, 'one');
    const balance = await planned(t, 'balance', mode, trial, eps, opts);
    const cap = (1 + eps) * balance.maxLoad;
    const free = exactMinTraffic(t.inst)!;
    const exact = exactMinTraffic({ ...t.inst, maxLoadCap: cap });
    // The balance plan itself is within the cap, so a capped optimum exists.
    expect(exact).not.toBeNull();
    expect(exact!.maxLoad).toBeLessThanOrEqual(cap * (1 + 1e-12));
    if (exact!.interNodeBytes > free.interNodeBytes * (1 + 1e-9)) out.push({ t, seed: trial, cap, exact: exact! });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// (a) binding load cap

describe('binding load cap: one replica per expert, 2 nodes x 2 GPUs x 2 slots, eps 0.02', () => {
  const shape = makeShape(2, 2, 2);
  const eps = 0.02;
  for (const mode of ['normal', 'low-latency'] as const) {
    // Fails today in low-latency mode only: every plan respects the cap, but some binding
    // instance stays above the exact capped minimum (it was trial 10, +0.9%, when last measured).
    (mode === 'normal' ? it : it.fails)(`reaches the exact minimum within the cap (${mode}; samples: 0)`, async () => {
      const opts = { ...TINY_OPTS, samples: 0 };
      const problems: string[] = [];
      for (const c of await bindingInstances(mode === 'normal' ? 31 : 32, shape, mode, eps, opts, 6)) {
        const ev = await planned(c.t, 'traffic', mode, c.seed, eps, opts);
        problems.push(...compare(`trial ${c.seed}`, ev, c.exact, c.cap));
      }
      expect(problems).toEqual([]);
    });

    // The cap comes from the better of the balanced packing and EPLB's layout, evaluated on the
    // fitted tokens (src/search/layer.ts), as the balance objective's plan is.
    it(`respects the cap (1 + eps) x the balance plan's max load with the default options (${mode})`, async () => {
      const rng = new Rng(mode === 'normal' ? 41 : 42);
      const problems: string[] = [];
      for (let trial = 0; trial < 6; trial++) {
        const t = tinyInstance(rng, shape, 8, 2 + rng.int(2), 40 + rng.int(40), 2, mode, 'one');
        const balance = await planned(t, 'balance', mode, trial, eps, TINY_OPTS);
        const traffic = await planned(t, 'traffic', mode, trial, eps, TINY_OPTS);
        const cap = (1 + eps) * balance.maxLoad;
        if (traffic.maxLoad > cap * (1 + 1e-12)) problems.push(`trial ${trial}: ${traffic.maxLoad} vs balance ${balance.maxLoad} (x${(traffic.maxLoad / balance.maxLoad).toFixed(3)})`);
        // Within the cap it can never beat the exact capped minimum.
        const exact = exactMinTraffic({ ...t.inst, maxLoadCap: cap })!;
        if (traffic.maxLoad <= cap * (1 + 1e-12)) expect(traffic.interNodeBytes).toBeGreaterThanOrEqual(exact.interNodeBytes * (1 - 1e-9));
      }
      expect(problems).toEqual([]);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// (b) replicas

describe('replicas (P > E), 2 nodes, no binding cap', () => {
  const cases = [
    { shape: makeShape(2, 1, 4), E: 6 },
    { shape: makeShape(2, 1, 3), E: 5 },
    { shape: makeShape(2, 2, 2), E: 5 },
  ];
  for (const mode of ['normal', 'low-latency'] as const) {
    it(`reaches the exact minimum over every replication and dispatch (${mode})`, async () => {
      const rng = new Rng(mode === 'normal' ? 51 : 52);
      const problems: string[] = [];
      let replicated = 0;
      for (const [c, { shape, E }] of cases.entries()) {
        for (let trial = 0; trial < 2; trial++) {
          const t = tinyInstance(rng, shape, E, 2 + rng.int(2), 30 + rng.int(30), 2, mode, 'any');
          const exact = exactMinTraffic(t.inst)!;
          const ev = await planned(t, 'traffic', mode, trial, 100, TINY_OPTS);
          problems.push(...compare(`case ${c} trial ${trial}`, ev, exact));
          // The optimum uses the spare slots (otherwise the case would test nothing new).
          if (exactMinTraffic({ ...t.inst, replicas: 'one' })!.interNodeBytes > exact.interNodeBytes * (1 + 1e-9)) replicated++;
        }
      }
      expect(replicated).toBeGreaterThanOrEqual(3);
      expect(problems).toEqual([]);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// (c) 3 nodes

describe('3 nodes, one replica per expert', () => {
  const cases = [
    { shape: makeShape(3, 1, 3), E: 9 },
    { shape: makeShape(3, 2, 1), E: 6 },
  ];
  for (const mode of ['normal', 'low-latency'] as const) {
    it(`reaches the exact minimum without a binding cap (${mode})`, async () => {
      const rng = new Rng(mode === 'normal' ? 61 : 62);
      const problems: string[] = [];
      for (const [c, { shape, E }] of cases.entries()) {
        for (let trial = 0; trial < 3; trial++) {
          const t = tinyInstance(rng, shape, E, 2 + rng.int(2), 40 + rng.int(40), 3, mode, 'one');
          const exact = exactMinTraffic(t.inst)!;
          const mip = await minTrafficMip(t.inst);
          expect(mip.status).toBe('optimal');
          expect(mip.interNodeBytes).toBeCloseTo(exact.interNodeBytes, 6);
          problems.push(...compare(`case ${c} trial ${trial}`, await planned(t, 'traffic', mode, trial, 100, TINY_OPTS), exact));
        }
      }
      expect(problems).toEqual([]);
    });

    it(`reaches the exact minimum within a binding cap (${mode}; 3x1x3, samples: 0)`, async () => {
      const opts = { ...TINY_OPTS, samples: 0 };
      const problems: string[] = [];
      for (const c of await bindingInstances(mode === 'normal' ? 71 : 72, makeShape(3, 1, 3), mode, 0.02, opts, 4)) {
        problems.push(...compare(`trial ${c.seed}`, await planned(c.t, 'traffic', mode, c.seed, 0.02, opts), c.exact, c.cap));
      }
      expect(problems).toEqual([]);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The contract on a generated trace

describe('traffic contract on a generated trace (32 experts, top-4, 3 layers, 20k tokens, 4 x 2 GPUs x 5 slots)', () => {
  const model = ModelSchema.parse({
    name: 'toy32',
    numHiddenLayers: 3,
    moeLayerIds: [0, 1, 2],
    experts: 32,
    topK: 4,
    hiddenSize: 1024,
    expertBytes: 1e6,
    dispatchBytesPerToken: 1100,
    combineBytesPerToken: 2048,
    expertFlopsPerToken: 1e7,
  });
  const shape = makeShape(4, 2, 5); // P = 40 > E = 32: replicas
  const cluster = resolveCluster('h800-4x8', model, { nodes: 4, gpusPerNode: 2, slotsPerGpu: 5 });
  const workload: Workload = { kind: 'trace', trace: generateTrace({ model, tokens: 20000, seed: 5 }), meta: { format: 'test' } };
  const run = async (mode: Mode, eps: number): Promise<string[]> => {
    const input = { model, cluster, shape, workload, mode, seed: 1, eps };
    const balance = await optimize({ ...input, objective: 'balance' });
    const traffic = await optimize({ ...input, objective: 'traffic' });
    const eb = evaluate({ model, cluster, placement: balance.placement, workload, options: { mode } });
    const et = evaluate({ model, cluster, placement: traffic.placement, workload, options: { mode } });
    // The traffic search did something: some layer carries less inter-node traffic.
    expect(et.perLayer.some((m, l) => m.interNodeBytes < eb.perLayer[l].interNodeBytes)).toBe(true);
    const problems: string[] = [];
    for (let l = 0; l < 3; l++) {
      const a = et.perLayer[l].maxLoad;
      const b = eb.perLayer[l].maxLoad;
      if (a > (1 + eps) * b * (1 + 1e-12)) problems.push(`layer ${l}: max load ${a} = ${(a / b).toFixed(4)} x the balance plan's ${b}`);
    }
    return problems;
  };
  it(`eps 0.02: every layer's evaluated max load <= (1 + eps) x the balance plan's (normal)`, async () => {
    expect(await run('normal', 0.02)).toEqual([]);
  });
  it(`eps 0.02: every layer's evaluated max load <= (1 + eps) x the balance plan's (low-latency)`, async () => {
    expect(await run('low-latency', 0.02)).toEqual([]);
  });
  it('eps 0.1: every layer within (1 + eps) x the balance plan (normal)', async () => {
    expect(await run('normal', 0.1)).toEqual([]);
  });
  it('eps 0.1: every layer within (1 + eps) x the balance plan (low-latency)', async () => {
    expect(await run('low-latency', 0.1)).toEqual([]);
  });
});
