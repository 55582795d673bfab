/**
 * `moe-placer presets`: the model, GPU and cluster presets and the solvers.
 */
import { SOLVERS } from '../solvers/registry.js';
import { type CommandSpec } from './args.js';
import { num, table } from './text.js';
import { CLUSTER_PRESETS, GPU_PRESETS, MODEL_PRESETS, resolveGpu } from '../presets.js';
import { ModelSchema } from '../schemas.js';
import { jsonFlag, type Runner, json } from './common.js';

export const spec: CommandSpec = {
  name: 'presets',
  summary: 'list the model, GPU and cluster presets and the solvers',
  usage: 'presets [--json]',
  flags: { ...jsonFlag },
};

export const run: Runner = async (f, ctx) => {
  const models = Object.keys(MODEL_PRESETS).map((k) => ({ key: k, m: ModelSchema.parse(MODEL_PRESETS[k]) }));
  const gpus = Object.keys(GPU_PRESETS).map((k) => ({ key: k, g: GPU_PRESETS[k] }));
  const clusters = Object.keys(CLUSTER_PRESETS).map((k) => {
    const c = CLUSTER_PRESETS[k];
    return { key: k, c, gpu: resolveGpu(c.gpu) };
  });
  if (f.json) {
    ctx.out(
      json({
        models: Object.fromEntries(models.map(({ key, m }) => [key, m])),
        gpus: Object.fromEntries(gpus.map(({ key, g }) => [key, g])),
        clusters: Object.fromEntries(clusters.map(({ key, c }) => [key, c])),
        solvers: Object.values(SOLVERS).map((s) => ({ name: s.name, description: s.description })),
      }),
    );
    return 0;
  }
  ctx.out('models\n');
  ctx.out(
    table(
      [
        ['name', 'layers', 'MoE layers', 'experts', 'top-k', 'groups', 'expert MB', 'dtype'],
        ...models.map(({ key, m }) => [
          key,
          String(m.numHiddenLayers),
          String(m.moeLayerIds.length),
          String(m.experts),
          String(m.topK),
          m.groups ? `${m.groups}/${m.topKGroups}` : '-',
          num(m.expertBytes / 1e6, 1),
          m.computeDtype,
        ]),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  );
  ctx.out('\nGPUs\n');
  ctx.out(
    table(
      [
        ['name', 'memory GB', 'HBM TB/s', 'FP8 TFLOPS', 'BF16 TFLOPS', 'NVLink GB/s', 'RDMA GB/s'],
        ...gpus.map(({ key, g }) => [
          key,
          num(g.memoryBytes / 1e9),
          num(g.hbmBandwidth / 1e12, 2),
          num(g.fp8Flops / 1e12),
          num(g.bf16Flops / 1e12),
          num(g.nvlinkBandwidth / 1e9),
          num(g.rdmaBandwidth / 1e9),
        ]),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  ctx.out('\nclusters\n');
  ctx.out(
    table(
      [
        ['name', 'nodes', 'GPUs/node', 'GPU', 'slots per GPU'],
        ...clusters.map(({ key, c, gpu }) => [
          key,
          String(c.nodes),
          String(c.gpusPerNode),
          gpu.name,
          c.slotsPerGpu !== undefined ? String(c.slotsPerGpu) : `from ${num(c.expertMemoryBytes! / 1e9)} GB for experts`,
        ]),
      ],
      ['l', 'r', 'r', 'l', 'l'],
    ),
  );
  ctx.out('\nsolvers\n');
  ctx.out(table([['name', 'what'], ...Object.values(SOLVERS).map((s) => [s.name, s.description])], ['l', 'l']));
  return 0;
};
