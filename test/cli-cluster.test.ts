import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterOfShape, DEFAULT_GPU, resolveModel } from '../src/presets.js';
import { readPlanFile } from '../src/plan.js';
import { writeTrace } from '../src/workload/index.js';
import { ensureBuilt, runCli } from './cli-helpers.js';
import { randomTrace, TINY_MODEL, tinyModel } from './plan-fixtures.js';

describe('a cluster given by its shape', () => {
  it('takes the GPU preset (default H800) and checks memory', () => {
    const v3 = resolveModel('deepseek-v3');
    const c = clusterOfShape(v3, { nodes: 4, gpusPerNode: 8, slotsPerGpu: 9 });
    expect(c.gpu.name).toBe(DEFAULT_GPU);
    expect(c.name).toBe('4x8 H800');
    expect(c.expertMemoryBytes).toBe(9 * v3.moeLayerIds.length * v3.expertBytes);
    expect(clusterOfShape(v3, { nodes: 4, gpusPerNode: 8, slotsPerGpu: 9 }, 'H20').gpu.name).toBe('H20');
    // 58 layers x 44 MB per slot: 40 slots need ~100 GB, more than an H800 has.
    expect(() => clusterOfShape(v3, { nodes: 4, gpusPerNode: 8, slotsPerGpu: 40 })).toThrow(/exceed H800 memory.*at most \d+ slots fit/);
  });

  let dir: string;
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'moe-cluster-'));
    writeFileSync(join(dir, 'model.json'), JSON.stringify(TINY_MODEL));
    await writeTrace(join(dir, 't.mpt'), randomTrace(2, 8, 2, 400, 10, 1), tinyModel());
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('plan runs without --cluster, says which GPU it assumed, and names what is missing', async () => {
    const base = ['plan', '--model', join(dir, 'model.json'), '--workload', join(dir, 't.mpt'), '--solver', 'eplb'];
    const r = await runCli([...base, '--nodes', '2', '--gpus-per-node', '2', '--slots-per-gpu', '3', '--out', join(dir, 'p.json')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('GPU H800 by default (--gpu NAME to choose)');
    expect(readPlanFile(join(dir, 'p.json')).cluster.gpu.name).toBe('H800');
    const h20 = await runCli([...base, '--nodes', '2', '--gpus-per-node', '2', '--slots-per-gpu', '3', '--gpu', 'H20', '--out', join(dir, 'q.json'), '--json']);
    expect(h20.code).toBe(0);
    expect(JSON.parse(h20.stdout).cluster.gpu).toBe('H20');
    const missing = await runCli([...base, '--nodes', '2', '--out', join(dir, 'r.json')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('missing --gpus-per-node, --slots-per-gpu');
    const both = await runCli([...base, '--cluster', 'h800-4x8', '--gpu', 'H20', '--out', join(dir, 'r.json')]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--gpu: the cluster h800-4x8 fixes its GPU');
    const badGpu = await runCli([...base, '--nodes', '2', '--gpus-per-node', '2', '--slots-per-gpu', '3', '--gpu', 'H900', '--out', join(dir, 'r.json')]);
    expect(badGpu.code).toBe(2);
    expect(badGpu.stderr).toMatch(/GPU.*H900/);
  });
});
