/**
 * The high-level API (src/api.ts) through the public export list (src/index.ts): feasibility
 * messages computed by hand, plan() provenance, bounds and metrics against the evaluator, abort,
 * engine placement files read back, digests.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as lib from '../src/index.js';
import { tinyModel } from './plan-fixtures.js';
import {
  checkFeasibility,
  evaluate,
  evaluatePlan,
  expertLoadsOfLayer,
  exportPlan,
  exportPlanFile,
  InfeasibleError,
  InputError,
  loadPlacement,
  maxLoadLowerBound,
  metricsReport,
  ModelSchema,
  plan,
  readPlanFile,
  Rng,
  SOLVERS,
  validatePlacement,
  workloadDigest,
  writePlanFile,
  type Cluster,
  type Model,
  type Trace,
  type Workload,
} from '../src/index.js';

const model: Model = tinyModel();

function cluster(nodes: number, gpusPerNode: number, slotsPerGpu: number, expertMemoryBytes = slotsPerGpu * 2 * 1000): Cluster {
  return {
    name: 'toy',
    nodes,
    gpusPerNode,
    slotsPerGpu,
    expertMemoryBytes,
    gpu: { name: 'toy-gpu', memoryBytes: 1e6, hbmBandwidth: 1e12, fp8Flops: 2e12, bf16Flops: 1e12, nvlinkBandwidth: 1e11, rdmaBandwidth: 1e10 },
  };
}

/** T tokens over R requests, top-2 of 8 experts, skewed to low ids. */
function trace(T: number, R: number, seed: number): Trace {
  const rng = new Rng(seed);
  const experts = [0, 1].map(() => {
    const ex = new Uint16Array(T * 2);
    for (let t = 0; t < T; t++) {
      const a = Math.min(7, Math.floor(8 * rng.next() * rng.next() * 1.5));
      let b = rng.int(7);
      if (b >= a) b++;
      ex[2 * t] = a;
      ex[2 * t + 1] = b;
    }
    return ex;
  });
  return {
    numLayers: 2,
    numExperts: 8,
    topK: 2,
    numTokens: T,
    numRequests: R,
    request: Uint32Array.from({ length: T }, (_, t) => t % R),
    rank: new Int32Array(T).fill(-1),
    weight: null,
    experts,
  };
}

const workload: Workload = { kind: 'trace', trace: trace(2000, 16, 1), meta: { format: 'test' } };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'moe-placer-api-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the export list', () => {
  it('has no undefined values (every re-exported name exists at run time)', () => {
    const missing = Object.entries(lib).filter(([, v]) => v === undefined).map(([k]) => k);
    expect(missing).toEqual([]);
    // A few names the brief and the README promise.
    for (const name of ['plan', 'evaluatePlan', 'loadWorkload', 'writeTrace', 'generateTrace', 'evaluate', 'getSolver', 'SOLVERS', 'eplbPlacement', 'rebalanceExperts', 'exportPlan', 'importPlacement', 'validatePlacement', 'Rng', 'InputError', 'resolveModel', 'resolveCluster', 'MODEL_PRESETS', 'PlanSchema', 'readPlanFile']) {
      expect(lib).toHaveProperty(name);
    }
  });
});

describe('checkFeasibility', () => {
  it('says how many slots are missing and what would fit', () => {
    // 8 experts, 2 x 2 GPUs x 1 slot = 4 slots; ceil(8 / 4) = 2 slots per GPU are needed.
    expect(() => checkFeasibility(model, cluster(2, 2, 1))).toThrow(InfeasibleError);
    expect(() => checkFeasibility(model, cluster(2, 2, 1))).toThrow('8 experts need at least 8 slots; 2x2 GPUs x 1 slot = 4; use --slots-per-gpu 2 or more');
  });

  it('suggests more nodes when the memory caps the slots', () => {
    // Budget 2500 bytes per GPU = 1 slot of 2 layers x 1000 bytes; 8 experts then need 8 GPUs = 4 nodes of 2.
    expect(() => checkFeasibility(model, cluster(2, 2, 1, 2500))).toThrow(/only 1 slot per GPU fit in the expert memory budget of 2\.50 kB per GPU: use --nodes 4 or more/);
    // A budget of exactly the slots asked is the default one (no budget given): the GPU memory (1 MB) limits.
    expect(() => checkFeasibility(model, cluster(2, 2, 1, 2000))).toThrow(/use --slots-per-gpu 2 or more$/);
  });

  it('refuses slots whose weights exceed the budget', () => {
    // 3 slots x 2 layers x 1000 bytes = 6 kB > 5 kB; floor(5000 / 2000) = 2 slots fit, 2 are needed.
    expect(() => checkFeasibility(model, cluster(2, 2, 3, 5000))).toThrow('3 slots per GPU x 2 MoE layers x 1.00 kB per expert = 6.00 kB per GPU exceed the expert memory budget of 5.00 kB per GPU; use --slots-per-gpu 2 or less');
  });

  it('names the workload whose shape does not fit the model', () => {
    const other: Workload = { kind: 'counts', counts: { numLayers: 3, numExperts: 8, counts: [] }, meta: { format: 'eplb-json', path: 'w.json' } };
    expect(() => checkFeasibility(model, cluster(2, 2, 3), other)).toThrow('w.json has 3 MoE layers x 8 experts; model tiny has 2 x 8');
  });

  it('accepts a cluster that fits', () => {
    expect(() => checkFeasibility(model, cluster(2, 2, 3), workload)).not.toThrow();
  });
});

describe('plan', () => {
  for (const solver of Object.keys(SOLVERS)) {
    it(`${solver}: metrics are the evaluator's, the bound is per-layer counting and below the max load`, async () => {
      const c = cluster(2, 2, 3);
      const r = await plan({ model, cluster: c, workload, solver, seed: 4, workers: 1 });
      validatePlacement(r.result.placement);
      const ev = evaluate({ model, cluster: c, placement: r.result.placement, workload, options: { mode: 'normal' } });
      expect(r.plan.metrics!.interNodeBytes).toBe(ev.interNodeBytes);
      expect(r.plan.metrics!.maxLoad).toBe(ev.maxLoad);
      const layerBounds = [0, 1].map((l) => maxLoadLowerBound(expertLoadsOfLayer(workload, l), 4, 3));
      expect(Array.from(r.layerBounds)).toEqual(layerBounds);
      expect(r.plan.bounds!.maxLoadLowerBound).toBeGreaterThanOrEqual(Math.max(...layerBounds));
      expect(r.plan.bounds!.maxLoadLowerBound!).toBeLessThanOrEqual(ev.maxLoad);
      // Average load alone: 2000 tokens x 2 / 4 GPUs = 1000.
      expect(Math.max(...layerBounds)).toBeGreaterThanOrEqual(1000);
      const prov = r.plan.provenance!;
      expect(prov.solver).toBe(solver);
      expect(prov.seed).toBe(4);
      expect(prov.objective).toBe('traffic');
      expect(prov.interrupted).toBe(false);
      expect(prov.inputDigests.workload).toBe(workloadDigest(workload));
      expect(prov.inputDigests.model).toMatch(/^[0-9a-f]{64}$/);
      expect(prov.inputDigests.model).not.toBe(prov.inputDigests.cluster);
    });
  }

  it('returns a complete plan marked interrupted when aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await plan({ model, cluster: cluster(2, 2, 3), workload, solver: 'optimize', signal: ac.signal });
    expect(r.plan.provenance!.interrupted).toBe(true);
    expect(r.plan.phy2log).toHaveLength(2);
    validatePlacement(r.result.placement);
  });

  it('rejects bad options by name before solving', async () => {
    await expect(plan({ model, cluster: cluster(2, 2, 3), workload, solver: 'nope' })).rejects.toThrow(InputError);
    await expect(plan({ model, cluster: cluster(2, 2, 3), workload, workers: 0 })).rejects.toThrow(/workers/);
    await expect(plan({ model, cluster: cluster(2, 2, 1), workload })).rejects.toThrow(InfeasibleError);
  });
});

describe('placement files and exports', () => {
  it('reads an engine file back to the same placement and metrics', async () => {
    const c = cluster(2, 2, 3);
    const r = await plan({ model, cluster: c, workload, solver: 'eplb' });
    for (const fmt of ['sglang', 'eplb', 'trtllm', 'vllm-ascend'] as const) {
      const file = join(dir, `p.${fmt}`);
      writeFileSync(file, exportPlan(r.plan, fmt));
      const loaded = loadPlacement(file, { model, cluster: c });
      expect(loaded.format).toBe(fmt);
      expect(loaded.placement.phy2log.map((row) => Array.from(row))).toEqual(r.plan.phy2log);
      // The eplb plan uses the default dispatch, which engine files imply: same metrics.
      expect(evaluatePlan({ model, cluster: c, placement: loaded.placement, workload }).evaluation.interNodeBytes).toBe(r.plan.metrics!.interNodeBytes);
    }
    expect(() => loadPlacement(join(dir, 'p.sglang'))).toThrow(/--model, --cluster/);
  });

  it('reads a plan file with its own model and cluster', async () => {
    const r = await plan({ model, cluster: cluster(2, 2, 3), workload, solver: 'round-robin' });
    const file = join(dir, 'plan.json');
    writePlanFile(file, r.plan);
    const loaded = loadPlacement(file);
    expect(loaded.format).toBe('plan');
    expect(loaded.plan).toEqual(readPlanFile(file).plan);
  });

  it('traffic-csv evaluates the plan on the workload it is given', async () => {
    const c = cluster(2, 2, 3);
    const r = await plan({ model, cluster: c, workload, solver: 'eplb' });
    expect(() => exportPlanFile({ plan: r.plan, format: 'traffic-csv' })).toThrow(/workload/);
    const csv = exportPlanFile({ plan: r.plan, format: 'traffic-csv', workload });
    let total = 0;
    for (const line of csv.trim().split('\n').slice(1)) if (line.startsWith('traffic,')) total += Number(line.split(',')[7]);
    expect(total).toBeCloseTo(r.plan.metrics!.interNodeBytes + r.plan.metrics!.intraNodeBytes, 3);
    expect(() => exportPlanFile({ plan: r.plan, format: 'yaml' })).toThrow(/unknown export format/);
  });
});

describe('digests and reports', () => {
  it('a workload digest is its meta digest when read, else a hash of its arrays', () => {
    const a = workloadDigest(workload);
    expect(workloadDigest({ ...workload })).toBe(a);
    const t2 = trace(2000, 16, 1);
    t2.experts[1][7] = (t2.experts[1][7] + 1) % 8;
    expect(workloadDigest({ kind: 'trace', trace: t2, meta: { format: 'test' } })).not.toBe(a);
    const digest = createHash('sha256').update('x').digest('hex');
    expect(workloadDigest({ ...workload, meta: { format: 'mpt', digest } })).toBe(digest);
  });

  it('metricsReport maps layers to engine layer ids and computes the gap', () => {
    const c = cluster(2, 2, 3);
    const placement = lib.contiguousPlacement(2, 8, lib.makeShape(2, 2, 3));
    const r = evaluatePlan({ model, cluster: c, placement, workload });
    const rep = metricsReport(r.evaluation, r.layerBounds, model);
    expect(rep.perLayer.map((l) => l.engineLayer)).toEqual([1, 2]);
    expect(rep.maxLoadGap).toBeCloseTo((rep.maxLoad - rep.maxLoadLowerBound) / rep.maxLoad, 12);
    expect(JSON.parse(JSON.stringify(rep))).toEqual(rep); // plain JSON, no typed arrays
  });
});
