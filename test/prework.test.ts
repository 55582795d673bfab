import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { plan } from '../src/api/plan.js';
import { layerMaxLoadBounds } from '../src/api/bounds.js';
import { Prework, preworkBounds, preworkJob, preworkSamples, runPrework } from '../src/api/prework.js';
import { evaluate } from '../src/cost.js';
import { clusterOfShape, resolveModel } from '../src/presets.js';
import { deriveSeed, Rng } from '../src/rng.js';
import { makeShape, type Workload } from '../src/types.js';
import { readPlanFile } from '../src/plan.js';
import { sampleTokensFromCounts } from '../src/workload/sample.js';
import { loadWorkload } from '../src/workload/index.js';
import { ensureBuilt, runCli } from './cli-helpers.js';

/** A counts workload of `L` layers of `E` skewed counts (one layer all zero). */
function countsWorkload(L: number, E: number, seed: number): Workload {
  const rng = new Rng(seed);
  const counts = Array.from({ length: L }, (_, l) => Float64Array.from({ length: E }, () => (l === 2 ? 0 : Math.round(Math.exp(rng.normal()) * 1000))));
  return { kind: 'counts', counts: { numLayers: L, numExperts: E, counts }, meta: { format: 'sglang-counts' } };
}

describe('Prework (samples and bounds beside the solve)', () => {
  const w = countsWorkload(6, 64, 3);
  const counts = w.kind === 'counts' ? w.counts.counts : [];
  const shape = makeShape(4, 8, 2);

  it('runPrework: every layer the evaluation would sample, every layer bound, as plan() computes them', () => {
    const job = preworkJob(counts, 6, 320, shape.numGpus, shape.slotsPerGpu, 9);
    runPrework(job);
    const samples = preworkSamples(job);
    counts.forEach((c, l) => {
      if (l === 2) return; // no tokens, no sample
      const want = sampleTokensFromCounts(c, 6, 320, shape.numGpus, new Rng(deriveSeed(9, l)));
      expect(Array.from(samples[l]!.experts)).toEqual(Array.from(want.experts));
      expect(Array.from(samples[l]!.source)).toEqual(Array.from(want.source));
      expect(Array.from(samples[l]!.weight)).toEqual(Array.from(want.weight));
    });
    expect(Array.from(preworkBounds(job))).toEqual(Array.from(layerMaxLoadBounds(w, shape)));
  });

  it('takes what was published and computes the rest: the same bounds; no samples once told to stop', () => {
    const job = preworkJob(counts, 6, 320, shape.numGpus, shape.slotsPerGpu, 9);
    expect(preworkSamples(job).every((s) => s === null)).toBe(true); // stops the sampling
    runPrework(job); // the bounds only
    expect(job.state[0]).toBe(0);
    expect(job.state[1]).toBe(counts.length);
    expect(Array.from(preworkBounds(job))).toEqual(Array.from(layerMaxLoadBounds(w, shape)));
    const none = preworkJob(counts, 6, 320, shape.numGpus, shape.slotsPerGpu, 9);
    expect(Array.from(preworkBounds(none))).toEqual(Array.from(layerMaxLoadBounds(w, shape)));
  });

  it('evaluate on the given samples equals evaluate drawing them', () => {
    const model = resolveModel('deepseek-v2-lite');
    const wl = countsWorkload(model.moeLayerIds.length, model.experts, 5);
    const cluster = clusterOfShape(model, { nodes: 2, gpusPerNode: 8, slotsPerGpu: 5 });
    const job = preworkJob(wl.kind === 'counts' ? wl.counts.counts : [], model.topK, 1024, 16, 5, 0);
    runPrework(job);
    const r = evaluate({ model, cluster, placement: roundRobin(model.experts, makeShape(2, 8, 5), model.moeLayerIds.length), workload: wl, options: { sampleTokens: 1024 } });
    const g = evaluate({ model, cluster, placement: roundRobin(model.experts, makeShape(2, 8, 5), model.moeLayerIds.length), workload: wl, options: { sampleTokens: 1024 }, samples: preworkSamples(job) });
    expect(g).toEqual(r);
  });

  it('plan() gives the same plan with it (from TypeScript sources no worker starts: this thread does all)', async () => {
    const model = resolveModel('deepseek-v2-lite');
    const wl = countsWorkload(model.moeLayerIds.length, model.experts, 7);
    const cluster = clusterOfShape(model, { nodes: 2, gpusPerNode: 8, slotsPerGpu: 5 });
    const pre = new Prework(wl.kind === 'counts' ? wl.counts.counts : [], model.topK, 16384, 16, 5, 0);
    expect(pre.samples().every((s) => s === null)).toBe(true);
    expect(Array.from(pre.bounds())).toEqual(Array.from(layerMaxLoadBounds(wl, makeShape(2, 8, 5))));
    const a = await plan({ model, cluster, workload: wl, objective: 'balance' });
    expect(a.plan.metrics?.estimated).toBe(true);
    expect(a.plan.bounds?.perLayer?.map((b) => b.maxLoadLowerBound)).toEqual(Array.from(layerMaxLoadBounds(wl, makeShape(2, 8, 5))));
  });
});

describe('the compiled CLI, where the worker runs', () => {
  it('plans as plan() does in this thread: the same tables, metrics and bounds', async () => {
    ensureBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'moe-placer-prework-'));
    try {
      const model = resolveModel('deepseek-v2-lite');
      const wl = countsWorkload(model.moeLayerIds.length, model.experts, 11);
      // 26 layers x 16384 tokens x top-6: above the draws from which plan() starts the worker.
      const rows = (wl.kind === 'counts' ? wl.counts.counts : []).map((c) => Array.from(c));
      writeFileSync(join(dir, 'counts.json'), JSON.stringify(rows));
      const out = join(dir, 'plan.json');
      const workload = await loadWorkload(join(dir, 'counts.json'), model);
      const want = (await plan({ model, cluster: clusterOfShape(model, { nodes: 2, gpusPerNode: 8, slotsPerGpu: 5 }), workload, objective: 'balance', workers: 2 })).plan;
      // Everything from the worker (wait), part of it or none (as it comes): the same plan.
      for (const prework of ['wait', 'on', 'off']) {
        const r = await runCli(['plan', '--model', 'deepseek-v2-lite', '--nodes', '2', '--gpus-per-node', '8', '--slots-per-gpu', '5', '--workload', join(dir, 'counts.json'), '--objective', 'balance', '--out', out], { env: { MOE_PLACER_PREWORK: prework } });
        expect(r.code, r.stderr).toBe(0);
        const got = readPlanFile(out).plan;
        expect(got.phy2log).toEqual(want.phy2log);
        expect(got.dispatch).toEqual(want.dispatch);
        expect(got.metrics).toEqual(want.metrics);
        expect(got.bounds).toEqual(want.bounds);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function roundRobin(E: number, shape: ReturnType<typeof makeShape>, L: number) {
  const phy2log = Array.from({ length: L }, () => Int32Array.from({ length: shape.numSlots }, (_, p) => p % E));
  return { numLayers: L, numExperts: E, shape, phy2log, dispatch: null };
}
