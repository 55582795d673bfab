import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InfeasibleError, InputError } from '../src/errors.js';
import {
  CLUSTER_PRESETS,
  GPU_PRESETS,
  MODEL_PRESETS,
  resolveCluster,
  resolveGpu,
  resolveModel,
} from '../src/presets.js';
import { ClusterSchema, GpuSchema, ModelSchema } from '../src/schemas.js';
import { fieldPath, parseWith } from '../src/validate.js';

const dir = mkdtempSync(join(tmpdir(), 'moe-presets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeJson(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('model presets', () => {
  it('all validate with ModelSchema', () => {
    for (const [name, preset] of Object.entries(MODEL_PRESETS)) {
      const r = ModelSchema.safeParse(preset);
      expect(r.success, `${name}: ${r.success ? '' : r.error.message}`).toBe(true);
      expect(preset.name).toBe(name);
      expect(preset.source).toMatch(/^https:\/\/huggingface\.co\/.*config\.json$/);
    }
  });

  it('DeepSeek-V3 sizes follow from its config (hand-computed)', () => {
    const m = resolveModel('deepseek-v3');
    expect(m.moeLayerIds.length).toBe(58);
    expect(m.moeLayerIds[0]).toBe(3);
    expect(m.moeLayerIds[57]).toBe(60);
    expect([m.experts, m.topK, m.groups, m.topKGroups]).toEqual([256, 8, 8, 4]);
    // 3 * 7168 * 2048 = 44,040,192 FP8 weights + 44,040,192 / 16384 = 2688 fp32 scales * 4 bytes.
    expect(m.expertBytes).toBe(44_040_192 + 10_752);
    // 7168 FP8 values + 7168 / 128 = 56 fp32 scales.
    expect(m.dispatchBytesPerToken).toBe(7168 + 224);
    expect(m.combineBytesPerToken).toBe(14_336);
    expect(m.expertFlopsPerToken).toBe(88_080_384);
    expect(m.computeDtype).toBe('fp8');
  });

  it('other presets: layer maps and byte sizes (hand-computed)', () => {
    const lite = resolveModel('deepseek-v2-lite');
    expect(lite.moeLayerIds).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    expect(lite.expertBytes).toBe(2 * 3 * 2048 * 1408); // 17,301,504
    expect(lite.groups).toBeUndefined();
    const mav = resolveModel('llama4-maverick');
    expect(mav.moeLayerIds.length).toBe(24);
    expect(mav.moeLayerIds.every((id) => id % 2 === 1)).toBe(true);
    expect(mav.expertBytes).toBe(251_658_240);
    const kimi = resolveModel('kimi-k2');
    expect([kimi.moeLayerIds.length, kimi.experts, kimi.topK, kimi.groups]).toEqual([60, 384, 8, undefined]);
    expect(kimi.expertBytes).toBe(resolveModel('deepseek-v3').expertBytes);
    const qwen = resolveModel('qwen3-235b-a22b');
    expect([qwen.moeLayerIds.length, qwen.experts, qwen.topK, qwen.expertBytes]).toEqual([94, 128, 8, 37_748_736]);
    const mix = resolveModel('mixtral-8x7b');
    expect([mix.moeLayerIds.length, mix.experts, mix.topK, mix.expertBytes]).toEqual([32, 8, 2, 352_321_536]);
    const sw = resolveModel('switch-base-128');
    // Two matrices (wi, wo) of 768 x 3072 in BF16.
    expect(sw.expertBytes).toBe(2 * 2 * 768 * 3072);
    expect(sw.expertFlopsPerToken).toBe(2 * 2 * 768 * 3072);
  });

  const switchData = '../shared/data/switch-base-128/switch-base-128_expert_statistics_3d.json';
  it.skipIf(!existsSync(switchData))('switch-base-128 MoE layers are the layer keys of the usage data', () => {
    const doc = JSON.parse(readFileSync(switchData, 'utf8')) as { expert_usage_by_layer: Record<string, unknown> };
    const keys = Object.keys(doc.expert_usage_by_layer).map(Number).sort((a, b) => a - b);
    expect(resolveModel('switch-base-128').moeLayerIds).toEqual(keys);
  });

  it('resolves names case-insensitively and JSON files through ModelSchema', () => {
    expect(resolveModel('DeepSeek-V3').name).toBe('deepseek-v3');
    const custom = { ...MODEL_PRESETS['mixtral-8x7b'], name: 'my-model' };
    const path = writeJson('model.json', custom);
    const m = resolveModel(path);
    expect(m.name).toBe('my-model');
    expect(m.sharedExperts).toBe(0);
  });

  it('names the bad field of a model file, one line per issue', () => {
    const path = writeJson('bad-model.json', { ...MODEL_PRESETS['mixtral-8x7b'], topK: -1, moeLayerIds: [0, 5, 3] });
    const err = thrown(() => resolveModel(path));
    expect(err).toBeInstanceOf(InputError);
    const problems = (err as InputError).problems;
    expect(problems.some((p) => p.startsWith(`${path}: model.topK:`))).toBe(true);
    expect(problems.some((p) => p.includes('model.moeLayerIds[2]') && p.includes('ascending'))).toBe(true);
    expect((err as InputError).exitCode).toBe(2);
  });

  it('reports invalid JSON with the file and line', () => {
    const path = writeJson('broken.json', '{\n  "name": "x",\n  oops\n}');
    const err = thrown(() => resolveModel(path)) as InputError;
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: invalid JSON`));
  });

  it('unknown preset lists the known names', () => {
    const err = thrown(() => resolveModel('gpt-moe'));
    expect(err).toBeInstanceOf(InputError);
    for (const name of Object.keys(MODEL_PRESETS)) expect(err.message).toContain(name);
    expect(thrown(() => resolveCluster('nope', resolveModel('deepseek-v3'))).message).toContain('h800-4x8');
    expect(thrown(() => resolveGpu('A100')).message).toContain('H800');
  });
});

describe('GPU presets', () => {
  it('all validate, cite a source for every figure, and give dense FLOPS', () => {
    for (const [name, gpu] of Object.entries(GPU_PRESETS)) {
      expect(GpuSchema.safeParse(gpu).success, name).toBe(true);
      for (const field of ['memoryBytes', 'hbmBandwidth', 'fp8Flops', 'bf16Flops', 'nvlinkBandwidth', 'rdmaBandwidth']) {
        expect(gpu.sources?.[field], `${name}.${field}`).toBeTruthy();
      }
      // Hopper and Blackwell tensor cores: dense FP8 is twice dense BF16.
      expect(gpu.fp8Flops / gpu.bf16Flops).toBeCloseTo(2, 2);
      expect(gpu.rdmaBandwidth).toBe(50e9);
    }
  });

  it('per-direction NVLink: H800 400 GB/s bidirectional, H100/H200/H20 900, B200 1800', () => {
    expect(GPU_PRESETS.H800.nvlinkBandwidth).toBe(200e9);
    expect(GPU_PRESETS.H100.nvlinkBandwidth).toBe(450e9);
    expect(GPU_PRESETS.H200.nvlinkBandwidth).toBe(450e9);
    expect(GPU_PRESETS.H20.nvlinkBandwidth).toBe(450e9);
    expect(GPU_PRESETS.B200.nvlinkBandwidth).toBe(900e9);
    expect(GPU_PRESETS.H20.fp8Flops).toBe(296e12);
  });

  it('resolves a spec object and names its bad field', () => {
    expect(resolveGpu({ ...GPU_PRESETS.H100, name: 'mine' }).name).toBe('mine');
    const err = thrown(() => resolveGpu({ ...GPU_PRESETS.H100, hbmBandwidth: -1 })) as InputError;
    expect(err.problems[0]).toMatch(/^gpu\.hbmBandwidth: /);
  });
});

describe('cluster presets and resolveCluster', () => {
  const v3 = resolveModel('deepseek-v3');

  it('all validate and name a known GPU', () => {
    for (const [name, c] of Object.entries(CLUSTER_PRESETS)) {
      expect(ClusterSchema.safeParse(c).success, name).toBe(true);
      expect(typeof c.gpu === 'string' && resolveGpu(c.gpu).name).toBe(c.gpu);
    }
  });

  it('derives slots from the expert memory budget', () => {
    const c = resolveCluster('h20-4x8', v3);
    // One slot = 58 layers * 44,050,944 bytes = 2,554,954,752; 32e9 / that = 12.52.
    expect(c.slotsPerGpu).toBe(12);
    expect(c.expertMemoryBytes).toBe(32e9);
    expect([c.nodes, c.gpusPerNode, c.gpu.name]).toEqual([4, 8, 'H20']);
  });

  it('keeps explicit slots and defaults the memory to what they need', () => {
    const c = resolveCluster('h800-4x8', v3);
    expect(c.slotsPerGpu).toBe(9);
    expect(c.expertMemoryBytes).toBe(9 * 58 * v3.expertBytes);
  });

  it('flags override the shape', () => {
    const c = resolveCluster('h800-4x8', v3, { nodes: 2, gpusPerNode: 4, slotsPerGpu: 3 });
    expect([c.nodes, c.gpusPerNode, c.slotsPerGpu]).toEqual([2, 4, 3]);
    expect(c.expertMemoryBytes).toBe(3 * 58 * v3.expertBytes);
    const d = resolveCluster('h20-4x8', v3, { slotsPerGpu: 10 });
    expect([d.nodes, d.slotsPerGpu, d.expertMemoryBytes]).toEqual([4, 10, 32e9]);
  });

  it('refuses slots the memory cannot hold, saying what fits', () => {
    const err = thrown(() => resolveCluster('h20-4x8', v3, { slotsPerGpu: 13 }));
    expect(err).toBeInstanceOf(InfeasibleError);
    expect(err.message).toContain('at most 12 slots fit');
    const tiny = writeJson('tiny-budget.json', { nodes: 1, gpusPerNode: 2, gpu: 'H100', expertMemoryBytes: 1e9 });
    expect(thrown(() => resolveCluster(tiny, v3))).toBeInstanceOf(InfeasibleError);
    // 80 GB H100 cannot hold 32 slots of 2.55 GB.
    expect(thrown(() => resolveCluster('tiny-2x2', v3, { slotsPerGpu: 32 })).message).toContain('H100 memory');
    expect(thrown(() => resolveCluster('tiny-2x2', v3, { nodes: 0 })).message).toContain('--nodes');
  });

  it('reads a cluster file with an inline GPU spec, and names a bad GPU field', () => {
    const ok = writeJson('cluster.json', { nodes: 3, gpusPerNode: 2, slotsPerGpu: 4, gpu: { ...GPU_PRESETS.H200, name: 'h200-custom' } });
    const c = resolveCluster(ok, v3);
    expect([c.name, c.nodes, c.gpu.name, c.slotsPerGpu]).toEqual(['cluster', 3, 'h200-custom', 4]);
    const bad = writeJson('cluster-bad.json', { nodes: 3, gpusPerNode: 2, slotsPerGpu: 4, gpu: { ...GPU_PRESETS.H200, rdmaBandwidth: 'fast' } });
    const err = thrown(() => resolveCluster(bad, v3)) as InputError;
    expect(err).toBeInstanceOf(InputError);
    expect(err.problems.some((p) => p.startsWith(`${bad}: cluster.gpu`))).toBe(true);
    const missing = writeJson('cluster-noslots.json', { nodes: 3, gpusPerNode: 2, gpu: 'H100' });
    expect((thrown(() => resolveCluster(missing, v3)) as InputError).problems[0]).toContain('cluster.slotsPerGpu');
  });
});

describe('parseWith', () => {
  it('formats nested paths and keeps one line per issue', () => {
    expect(fieldPath('plan', ['phy2log', 3, 'x'])).toBe('plan.phy2log[3].x');
    expect(fieldPath('', ['a', 0])).toBe('a[0]');
    const S = z.object({ a: z.number(), b: z.array(z.object({ c: z.string() })) });
    const err = thrown(() => parseWith(S, { a: 'no', b: [{ c: 1 }] }, 'in', { file: 'f.json' })) as InputError;
    expect(err.problems).toHaveLength(2);
    expect(err.problems[0]).toMatch(/^f\.json: in\.a: /);
    expect(err.problems[1]).toMatch(/^f\.json: in\.b\[0\]\.c: /);
    expect(parseWith(S, { a: 1, b: [] }, 'in')).toEqual({ a: 1, b: [] });
  });
});
