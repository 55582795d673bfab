/**
 * The optimizer reaches the exact minimum of inter-node traffic on tiny instances, where the
 * minimum is known from the MIP of src/bounds.ts (one replica per expert, P == E, no load cap
 * binding). Both modes.
 */
import { describe, expect, it } from 'vitest';
import { evaluate } from '../src/cost.js';
import { minTrafficMip } from '../src/bounds.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { Rng } from '../src/rng.js';
import { makeShape, type Trace, type Workload } from '../src/types.js';
import { tokenSetsOfLayer } from '../src/workload/tokens.js';
import { optimize } from '../solvers/optimize.js';

function tinyTrace(rng: Rng, E: number, k: number, tokens: number, clusters: number): Trace {
  const experts = new Uint16Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    const c = rng.int(clusters);
    const used = new Set<number>();
    for (let j = 0; j < k; j++) {
      let e = rng.next() < 0.75 ? (c * (E / clusters) + rng.int(E / clusters)) % E : rng.int(E);
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
