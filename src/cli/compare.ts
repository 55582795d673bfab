/**
 * `moe-placer compare`: what-if over clusters (GPU x shape) and redundancy (slots per GPU), with
 * each solver in each mode, scored on held-out data where there is any (compare.ts does the work).
 */
import { availableParallelism } from 'node:os';
import { SOLVERS } from '../solvers/registry.js';
import { formatBytes } from '../api.js';
import { compare, compareSplit, detailRows, levelsOf, parseSlotLevels, resolveCompareCluster, type CompareResult, type CompareRow } from '../compare.js';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../plan.js';
import { planSection, reportData } from '../report/data.js';
import { renderReportHtml } from '../report/html.js';
import { ModeSchema, ObjectiveSchema, type Cluster, type Mode, type Model, type Objective } from '../schemas.js';
import { nonNegInt, nonNegNumber, oneOf, posInt, posNumber, str, type CommandSpec, type ParsedFlags } from './args.js';
import { checkOutFile, header, interruptible, json, jsonFlag, loadWorkloadFlag, modelLine, resolveModelFlag, withFlag, workloadJson, workloadLines, type Runner } from './common.js';
import { ms, num, pct, table } from './text.js';

export const spec: CommandSpec = {
  name: 'compare',
  summary: 'what-if: plan a model on several clusters and redundancy levels, and compare the estimated MoE time',
  usage:
    'compare --model M --workload W --clusters A,B,... [--slots-per-gpu 8..12] [--modes normal,low-latency] [--solvers eplb,optimize] [--objective time] [--score-workload W2] [--tokens-per-gpu N] [--expert-memory-gb X] [--seed N] [--time-limit SEC] [--workers N] [--html FILE] [--json]',
  flags: {
    model: { kind: str('M'), help: 'model preset name or model JSON file', required: true },
    workload: { kind: str('W'), help: 'routing trace or per-layer counts the plans are fitted on', required: true },
    clusters: { kind: str('A,B,...'), help: 'cluster presets, cluster JSON files or GPU-NODESxGPUS (e.g. h20-18x8), comma-separated', required: true },
    'slots-per-gpu': { kind: str('N|A..B|N,M,...'), help: "slots per GPU levels tried on every cluster (default each cluster's own)" },
    modes: { kind: str('normal,low-latency'), help: 'all-to-all kernels, comma-separated (default normal)' },
    solvers: { kind: str('eplb,optimize'), help: `solvers, comma-separated (default eplb,optimize; known: ${Object.keys(SOLVERS).join(', ')})` },
    objective: { kind: oneOf(ObjectiveSchema.options), help: 'objective of the solvers that take one (default time)' },
    'score-workload': { kind: str('W'), help: 'score on this workload instead (held-out); default: a trace is split by request, counts are scored in-sample' },
    'tokens-per-gpu': { kind: posInt, help: 'show times and bytes for a batch of N tokens per GPU (default: the scored workload as one batch)' },
    'expert-memory-gb': { kind: posNumber, help: "expert memory budget per GPU in GB for every cluster (default each cluster's own, else the GPU memory)" },
    seed: { kind: nonNegInt, help: 'random seed (default 0)' },
    'time-limit': { kind: posNumber, help: 'budget of each solver run in seconds' },
    workers: { kind: posInt, help: 'worker threads (default: CPUs, at most 8)' },
    eps: { kind: nonNegNumber, help: 'max-load slack of the traffic objective (default 0.02)' },
    html: { kind: str('FILE'), help: 'also write a self-contained HTML report (the table, charts, and the best row against EPLB)' },
    ...jsonFlag,
  },
  details: [
    'A slots level is planned only when it holds every expert and its weights (slots x MoE layers x expert bytes) fit the expert memory budget;',
    'the others are listed as skipped. Traces are fitted on the even-numbered requests and scored on the odd-numbered ones;',
    'counts have no requests, so they are fitted and scored in-sample unless --score-workload gives other data.',
    'Times are cost-model estimates for the scored batch as one step (or, with --tokens-per-gpu, the same routing mix at N tokens per GPU),',
    'routed experts only; tok/s/GPU = batch tokens / MoE time / GPUs.',
  ],
};

/** Comma-separated names, trimmed, without repeats; each must be one of `known`. */
function listFlag(f: ParsedFlags, flag: string, def: string[], known: readonly string[], what: string): string[] {
  const raw = f[flag] as string | undefined;
  if (raw === undefined) return def;
  const items = [...new Set(raw.split(',').map((s) => s.trim()))];
  if (items.some((s) => s === '')) throw new InputError(`--${flag}: empty item in ${JSON.stringify(raw)}; expected ${what} names separated by commas`);
  const bad = items.filter((s) => !known.includes(s));
  if (bad.length > 0) throw new InputError(`--${flag}: unknown ${what} ${bad.map((b) => JSON.stringify(b)).join(', ')}; known: ${known.join(', ')}`);
  return items;
}

function clustersFlag(f: ParsedFlags, model: Model): Cluster[] {
  const raw = f.clusters as string;
  const names = [...new Set(raw.split(',').map((s) => s.trim()))];
  if (names.some((s) => s === '')) throw new InputError(`--clusters: empty item in ${JSON.stringify(raw)}; expected cluster names separated by commas`);
  return names.map((name) => withFlag('clusters', name, () => resolveCompareCluster(name, model)));
}

export const run: Runner = async (f, ctx) => {
  const model = resolveModelFlag(f.model as string);
  const clusters = clustersFlag(f, model);
  const slots = f['slots-per-gpu'] !== undefined ? parseSlotLevels(f['slots-per-gpu'] as string, '--slots-per-gpu') : undefined;
  const modes = listFlag(f, 'modes', ['normal'], ModeSchema.options, 'mode') as Mode[];
  const solvers = listFlag(f, 'solvers', ['eplb', 'optimize'], Object.keys(SOLVERS), 'solver');
  const budget = f['expert-memory-gb'] !== undefined ? Math.round((f['expert-memory-gb'] as number) * 1e9) : undefined;
  // Every cluster must have a level that fits before any work.
  for (const c of clusters) {
    const r = levelsOf(model, c, slots ?? [c.slotsPerGpu], budget);
    if (r.fits.length === 0) {
      throw new InputError(r.skipped.map((s) => `--slots-per-gpu: cluster ${c.name} at ${s.slotsPerGpu} slots per GPU does not fit: ${s.reason}`));
    }
  }
  const htmlOut = f.html as string | undefined;
  if (htmlOut !== undefined) checkOutFile(htmlOut, 'html');
  const workloadPath = f.workload as string;
  const scorePath = f['score-workload'] as string | undefined;
  const workload = await loadWorkloadFlag(workloadPath, model, ctx);
  const scoreOn = scorePath !== undefined ? await loadWorkloadFlag(scorePath, model, ctx) : undefined;
  const split = withFlag('workload', workloadPath, () => compareSplit(workload, scoreOn));
  const { signal, dispose } = interruptible(ctx, 'compare stops after the current plan');
  try {
    const outcome = await compare({
      model,
      clusters,
      slotsPerGpu: slots,
      modes,
      solvers,
      objective: f.objective as Objective | undefined,
      split,
      expertMemoryBytes: budget,
      tokensPerGpu: f['tokens-per-gpu'] as number | undefined,
      seed: f.seed as number | undefined,
      timeLimitSeconds: f['time-limit'] as number | undefined,
      workers: (f.workers as number | undefined) ?? Math.max(1, Math.min(8, availableParallelism())),
      eps: f.eps as number | undefined,
      onProgress: (what, fraction) => ctx.progress.update(what, fraction),
      signal,
    });
    ctx.progress.clear();
    const result = outcome.result;
    let htmlBytes: number | undefined;
    const detail = detailRows(result);
    if (htmlOut !== undefined && detail !== undefined) {
      ctx.progress.update('HTML report');
      const row = result.rows[detail.row];
      const section = planSection({
        model,
        cluster: outcome.clusters[detail.row],
        workload: split.score,
        workloadLabel: `${scorePath ?? workloadPath} (${split.split})`,
        mode: row.mode,
        plan: { name: row.solver, placement: outcome.placements[detail.row] },
        baseline: detail.baseline !== undefined ? { name: result.rows[detail.baseline].solver, placement: outcome.placements[detail.baseline] } : undefined,
        batchTokens: result.tokensPerGpu !== null ? row.batchTokens : undefined,
        notes: [`the row with the most tokens / s per GPU${detail.baseline !== undefined ? `, against ${result.rows[detail.baseline].solver} on the same cluster, slots and mode` : ''}: ${row.cluster}, ${row.slotsPerGpu} slots per GPU, ${row.mode} mode`],
      });
      const html = renderReportHtml(reportData(`moe-placer compare: ${model.name}`, { compare: result, plan: section }));
      writeFileAtomic(htmlOut, html);
      htmlBytes = Buffer.byteLength(html);
      ctx.progress.clear();
    }
    if (f.json) {
      ctx.out(
        json({
          command: 'compare',
          ...result,
          workload: workloadJson(workload, workloadPath),
          scoreWorkload: scoreOn ? workloadJson(scoreOn, scorePath!) : null,
          html: htmlOut ?? null,
        }),
      );
    } else {
      ctx.out(
        header(`moe-placer compare: ${clusters.length} cluster${clusters.length === 1 ? '' : 's'}, ${modes.join(' and ')} mode, solvers ${solvers.join(', ')}`, [
          ['model', modelLine(model)],
          ['workload', workloadLines(workload, workloadPath)[0]],
          ...(scoreOn ? ([['scored', workloadLines(scoreOn, scorePath!)[0]]] as [string, string][]) : []),
          ['split', result.split],
        ]),
      );
      ctx.out(compareText(result));
      if (htmlOut !== undefined) ctx.out(`\nwrote ${htmlOut} (${num(htmlBytes ?? 0)} bytes)\n`);
    }
    if (signal.aborted || result.interrupted) {
      ctx.progress.note('interrupted: the rows planned so far are shown');
      return 130;
    }
    return 0;
  } finally {
    dispose();
  }
};

const bindsCell = (r: CompareRow): string => `${r.resources.binds === 'nvlink' ? 'NVLink' : r.resources.binds === 'rdma' ? 'RDMA' : 'compute'} ${pct(r.resources.shares[r.resources.binds], 0)}`;

/** The compare result as text tables: every row, the best per cluster and mode, what was skipped, notes. */
export function compareText(result: CompareResult): string {
  const out: string[] = [];
  const rows: string[][] = [
    ['cluster', 'GPU', 'slots', 'redundant', 'expert mem/GPU', 'mode', 'solver', 'dispatch ms', 'compute ms', 'combine ms', 'MoE ms', 'tok/s/GPU', 'balancedness', 'inter-node', 'binds'],
  ];
  for (const r of result.rows) {
    rows.push([
      r.cluster,
      r.gpu,
      String(r.slotsPerGpu),
      String(r.redundantExperts),
      `${formatBytes(r.memoryBytesPerGpu)} / ${formatBytes(r.memoryBudgetBytes)}`,
      r.mode,
      r.solver + (r.interrupted ? '*' : ''),
      ms(r.dispatchSecondsPerLayer),
      ms(r.computeSecondsPerLayer),
      ms(r.combineSecondsPerLayer),
      ms(r.timeSeconds),
      num(r.tokensPerSecondPerGpu),
      num(r.balancedness, 3),
      formatBytes(r.interNodeBytes),
      bindsCell(r),
    ]);
  }
  out.push(table(rows, ['l', 'l', 'r', 'r', 'r', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l']));
  if (result.best.length > 0) {
    const best: string[][] = [['best per cluster and mode', 'mode', 'solver', 'slots', 'tok/s/GPU', 'vs first cluster']];
    for (const b of result.best) best.push([b.cluster, b.mode, b.solver, String(b.slotsPerGpu), num(b.tokensPerSecondPerGpu), `${num(b.vsFirstCluster, 2)}x`]);
    out.push('\n' + table(best, ['l', 'l', 'l', 'r', 'r', 'r']));
  }
  if (result.skipped.length > 0) {
    out.push('\nnot planned (do not fit):\n');
    for (const s of result.skipped) out.push(`  ${s.cluster} at ${s.slotsPerGpu} slots per GPU: ${s.reason}\n`);
  }
  out.push('\n');
  out.push(result.notes.map((n) => `${n}\n`).join(''));
  out.push(`dispatch / compute / combine ms are per MoE layer; MoE ms is the sum over the MoE layers${result.rows.some((r) => r.interrupted) ? '; * = interrupted, best plan so far' : ''}\n`);
  return out.join('');
}
