/**
 * `moe-placer report`: one self-contained HTML page about a plan scored on a workload, side by
 * side with a baseline (EPLB planned on the same workload unless `--baseline` names a placement),
 * with the replay plots of a `moe-placer replay` result when `--replay` gives one.
 */
import { basename } from 'node:path';
import { loadPlacement, plan as planApi, workloadDigest } from '../api.js';
import { writeFileAtomic } from '../plan.js';
import { planSection, reportData } from '../report/data.js';
import { renderReportHtml } from '../report/html.js';
import { readReplayFile } from '../report/replay.js';
import type { Mode } from '../schemas.js';
import type { Placement } from '../types.js';
import { str, type CommandSpec } from './args.js';
import { checkOutFile, json, jsonFlag, loadPlanFlags, loadWorkloadFlag, modeFlag, shapeFlags, withFlag, type Runner } from './common.js';
import { num } from './text.js';

export const spec: CommandSpec = {
  name: 'report',
  summary: 'write a self-contained HTML report of a plan on a workload (heatmaps, loads, times, against EPLB)',
  usage: 'report --plan FILE --workload W --out report.html [--baseline FILE] [--replay replay.json] [--model M --cluster C [--nodes N --gpus-per-node G --slots-per-gpu S]] [--mode normal|low-latency] [--json]',
  flags: {
    plan: { kind: str('FILE'), help: 'moe-placer plan, or an engine placement file with --model and --cluster', required: true },
    workload: { kind: str('W'), help: 'routing trace or per-layer counts the plan is scored on', required: true },
    out: { kind: str('FILE'), help: 'where to write the HTML page', required: true },
    baseline: { kind: str('FILE'), help: 'placement to show side by side (default: EPLB planned on the workload)' },
    replay: { kind: str('FILE'), help: 'moe-placer replay --json output to plot window by window' },
    model: { kind: str('M'), help: "model (needed for engine placement files; overrides a plan's)" },
    cluster: { kind: str('C'), help: "cluster (needed for engine placement files; overrides a plan's)" },
    ...shapeFlags,
    ...modeFlag,
    ...jsonFlag,
  },
  details: [
    "The mode defaults to the plan's own. Without --baseline, EPLB is planned on the scored workload itself (in-sample for EPLB).",
    'The page needs no network: styles, charts (inline SVG), the data (embedded JSON) and its one script are in the file.',
  ],
};

export const run: Runner = async (f, ctx) => {
  const out = f.out as string;
  checkOutFile(out);
  const loaded = loadPlanFlags(f);
  const { model, cluster } = loaded;
  const replayPath = f.replay as string | undefined;
  // Input problems before any work.
  const replay = replayPath !== undefined ? withFlag('replay', replayPath, () => readReplayFile(replayPath)) : undefined;
  const baselinePath = f.baseline as string | undefined;
  const baselineFile = baselinePath !== undefined ? withFlag('baseline', baselinePath, () => loadPlacement(baselinePath, { model, cluster })) : undefined;
  const workloadPath = f.workload as string;
  const workload = await loadWorkloadFlag(workloadPath, model, ctx);
  const mode = (f.mode as Mode | undefined) ?? loaded.plan.metrics?.mode ?? 'normal';
  const planPath = f.plan as string;
  const prov = loaded.plan.provenance;
  const planName = prov?.solver ?? (loaded.format === 'plan' ? basename(planPath) : `${loaded.format} placement`);
  const notes: string[] = [];
  if (prov?.inputDigests?.workload !== undefined) {
    notes.push(
      prov.inputDigests.workload === workloadDigest(workload)
        ? `${workloadPath} is the workload the plan was fitted on: in-sample for ${planName}`
        : `${workloadPath} is not the workload the plan was fitted on (the digests differ)`,
    );
  }
  let baseline: { name: string; placement: Placement };
  if (baselineFile) {
    baseline = { name: baselineFile.plan.provenance?.solver ?? basename(baselinePath!), placement: baselineFile.placement };
    if (baseline.name === planName) baseline.name = `${baseline.name} (${basename(baselinePath!)})`;
  } else {
    ctx.progress.update('eplb: plan the baseline');
    const r = await planApi({ model, cluster, workload, solver: 'eplb', mode, seed: prov?.seed ?? 0 });
    baseline = { name: planName === 'eplb' ? 'eplb (on this workload)' : 'eplb', placement: r.result.placement };
    notes.push(`${baseline.name} is planned on ${workloadPath} itself: in-sample for EPLB`);
  }
  ctx.progress.update('evaluate with traffic matrices');
  const section = planSection({
    model,
    cluster,
    workload,
    workloadLabel: workloadPath,
    mode,
    plan: { name: planName, placement: loaded.placement },
    baseline,
    notes,
  });
  const html = renderReportHtml(reportData(`moe-placer report: ${basename(planPath)}`, { plan: section, replay }));
  ctx.progress.clear();
  writeFileAtomic(out, html);
  const bytes = Buffer.byteLength(html);
  if (f.json) {
    ctx.out(
      json({
        command: 'report',
        out,
        bytes,
        plan: planPath,
        baseline: baseline.name,
        mode,
        workload: workloadPath,
        sections: ['plan', ...(replay ? ['replay'] : [])],
        notes: section.notes,
      }),
    );
  } else {
    const s = section.plan.summary;
    const b = section.baseline!.summary;
    ctx.out(
      `wrote ${out} (${num(bytes)} bytes): ${planName} vs ${baseline.name} on ${workloadPath}, ${mode} mode${replay ? `, replay of ${replay.policies.length} policies` : ''}\n` +
        `  ${planName}: ${num(s.tokensPerSecondPerGpu)} tok/s/GPU, balancedness ${num(s.balancedness, 3)}; ${baseline.name}: ${num(b.tokensPerSecondPerGpu)} tok/s/GPU, balancedness ${num(b.balancedness, 3)}\n`,
    );
  }
  return 0;
};
