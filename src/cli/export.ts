/**
 * `moe-placer export`: a plan in an engine or simulator format.
 */
import { exportPlanFile } from '../api.js';
import { oneOf, str, type CommandSpec } from './args.js';
import { num } from './text.js';
import { InputError } from '../errors.js';
import { EXPORT_FORMATS } from '../formats/export.js';
import { writeFileAtomic } from '../plan.js';
import { type Mode } from '../schemas.js';
import { shapeFlags, jsonFlag, modeFlag, type Runner, checkOutFile, loadWorkloadFlag, json, loadPlanFlags } from './common.js';

export const spec: CommandSpec = {
  name: 'export',
  summary: 'write a plan in an engine or simulator format',
  usage: `export --plan FILE --format ${EXPORT_FORMATS.join('|')} --out FILE [--workload W [--mode M]] [--model M --cluster C]`,
  flags: {
    plan: { kind: str('FILE'), help: 'moe-placer plan (or an engine placement with --model, --cluster)', required: true },
    format: { kind: oneOf(EXPORT_FORMATS), help: 'output format', required: true },
    out: { kind: str('FILE'), help: 'output file', required: true },
    workload: { kind: str('W'), help: 'workload whose traffic traffic-csv reports (traffic-csv only)' },
    ...modeFlag,
    model: { kind: str('M'), help: 'model (engine placement input only)' },
    cluster: { kind: str('C'), help: 'cluster (engine placement input only)' },
    ...shapeFlags,
    ...jsonFlag,
  },
  details: [
    'sglang: --init-expert-location JSON; eplb: EPLB / vLLM phy2log, log2phy, logcnt; trtllm: moe_load_balancer.yaml;',
    'vllm-ascend: expert_map JSON; traffic-csv: per-layer GPU-to-GPU bytes and per-GPU loads (needs --workload).',
  ],
};

export const run: Runner = async (f, ctx) => {
  const format = f.format as string;
  const out = f.out as string;
  if (format === 'traffic-csv' && f.workload === undefined) {
    throw new InputError('--workload: traffic-csv reports the traffic of a workload; give --workload W');
  }
  if (format !== 'traffic-csv' && f.workload !== undefined) throw new InputError(`--workload: only --format traffic-csv uses a workload, not ${format}`);
  if (format !== 'traffic-csv' && f.mode !== undefined) throw new InputError(`--mode: only --format traffic-csv uses a mode, not ${format}`);
  checkOutFile(out);
  const loaded = loadPlanFlags(f);
  const workload = f.workload !== undefined ? await loadWorkloadFlag(f.workload as string, loaded.model, ctx) : undefined;
  ctx.progress.update(`export ${format}`);
  const text = exportPlanFile({
    plan: loaded.plan,
    format,
    workload,
    mode: f.mode as Mode | undefined,
    placement: loaded.placement,
    model: loaded.model,
    cluster: loaded.cluster,
  });
  ctx.progress.clear();
  writeFileAtomic(out, text);
  const bytes = Buffer.byteLength(text);
  if (f.json) ctx.out(json({ command: 'export', out, format, bytes }));
  else ctx.out(`wrote ${out} (${format}, ${num(bytes)} bytes)\n`);
  return 0;
};
