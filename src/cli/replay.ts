/**
 * `moe-placer replay`: workload windows served by plans rebalanced every K windows by several
 * policies (src/replay.ts), scored window by window; a table, JSON, and a file for `report`.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../plan.js';
import { REPLAY_POLICIES, replay, type ReplayPolicy, type ReplayResult, type ReplayWindow } from '../replay.js';
import { ModeSchema, ObjectiveSchema, type Mode, type Model, type Objective } from '../schemas.js';
import { filterRequests } from '../workload/tokens.js';
import { nonNegInt, nonNegNumber, oneOf, posInt, posNumber, str, type CommandSpec } from './args.js';
import {
  checkOutFile,
  clusterFlags,
  clusterFromFlags,
  clusterLine,
  header,
  interruptible,
  json,
  jsonFlag,
  loadWorkloadFlag,
  modelLine,
  resolveModelFlag,
  type Ctx,
  type Runner,
} from './common.js';
import { bytesText, ms, num, table } from './text.js';

export const spec: CommandSpec = {
  name: 'replay',
  summary: 'replay workload windows with rebalancing every K windows by EPLB and moe-placer policies',
  usage:
    'replay --model M (--cluster C | --nodes N --gpus-per-node G --slots-per-gpu S [--gpu NAME]) --windows DIR|TRACE [--window-requests N] [--every K] [--policies static,eplb,eplb-keep,replan,budget] [--max-moved-fraction X | --max-moved-experts N] [--objective O] [--mode M] [--seed N] [--workers N] [--time-limit SEC] [--out replay.json] [--json]',
  flags: {
    model: { kind: str('M'), help: 'model preset name or model JSON file', required: true },
    ...clusterFlags,
    windows: { kind: str('DIR|TRACE'), help: 'a folder of workload files (one window each, in name order), or with --window-requests a trace', required: true },
    'window-requests': { kind: posInt, help: 'cut the trace --windows into windows of N requests' },
    every: { kind: posInt, help: 'rebalance after every K-th window (default 1)' },
    policies: { kind: str('LIST'), help: `comma-separated, from ${REPLAY_POLICIES.join(', ')} (default all)` },
    'max-moved-fraction': { kind: nonNegNumber, help: "budget policy: copies per rebalance as a fraction of the plan's slots (default 0.1)" },
    'max-moved-experts': { kind: nonNegInt, help: 'budget policy: copies per rebalance' },
    objective: { kind: oneOf(ObjectiveSchema.options), help: 'objective of the replan and budget policies (default balance)' },
    mode: { kind: oneOf(ModeSchema.options), help: 'all-to-all kernels: normal (prefill) or low-latency (decode)' },
    seed: { kind: nonNegInt, help: 'random seed (default 0)' },
    workers: { kind: posInt, help: 'worker threads (default 2)' },
    'time-limit': { kind: posNumber, help: 'search budget per moe-placer plan in seconds' },
    out: { kind: str('FILE'), help: 'write the replay JSON here (input of report --replay)' },
    ...jsonFlag,
  },
  details: [
    'Every policy starts from EPLB fitted on window 0; window t is served by a plan fitted on earlier windows only, and',
    'the copies made before it are charged to it. Policies: static (never rebalance), eplb (EPLB from scratch), eplb-keep',
    "(EPLB keeping slots of experts that stay on a GPU, like vLLM's preserve_intragpu_slots), replan (moe-placer from",
    'scratch, aligned with the running plan), budget (moe-placer plan --from with the move budget).',
  ],
};

export const run: Runner = async (f, ctx) => {
  const model = resolveModelFlag(f.model as string);
  const { cluster, gpuNote } = clusterFromFlags(f, model);
  const out = f.out as string | undefined;
  if (out !== undefined) checkOutFile(out);
  const policies = parsePolicies(f.policies as string | undefined);
  if (f['max-moved-fraction'] !== undefined && f['max-moved-experts'] !== undefined) {
    throw new InputError('--max-moved-experts: give --max-moved-fraction or --max-moved-experts, not both');
  }
  const fraction = f['max-moved-fraction'] as number | undefined;
  if (fraction !== undefined && fraction > 1) throw new InputError(`--max-moved-fraction: a fraction of the plan's slots is at most 1, got ${fraction}`);
  const slots = model.moeLayerIds.length * cluster.nodes * cluster.gpusPerNode * cluster.slotsPerGpu;
  const maxMovedExperts = (f['max-moved-experts'] as number | undefined) ?? Math.floor((fraction ?? 0.1) * slots);
  const windows = await loadWindows(f.windows as string, f['window-requests'] as number | undefined, model, ctx);
  const { signal, dispose } = interruptible(ctx, 'the replay stops after the current window');
  let r: ReplayResult;
  try {
    r = await replay({
      model,
      cluster,
      windows,
      every: f.every as number | undefined,
      policies,
      objective: f.objective as Objective | undefined,
      mode: f.mode as Mode | undefined,
      maxMovedExperts,
      seed: f.seed as number | undefined,
      workers: (f.workers as number | undefined) ?? 2,
      timeLimitSeconds: f['time-limit'] as number | undefined,
      onProgress: (what, fraction) => ctx.progress.update(`replay: ${what}`, fraction),
      signal,
    });
  } finally {
    dispose();
    ctx.progress.clear();
  }
  if (out !== undefined) writeFileAtomic(out, json(r));
  if (f.json) ctx.out(json(r));
  else {
    ctx.out(
      header(`moe-placer replay: ${windows.length} windows, rebalance every ${r.every}, ${r.mode} mode, objective ${r.objective}`, [
        ['model', modelLine(model)],
        ['cluster', clusterLine(cluster) + (gpuNote ? `; ${gpuNote}` : '')],
        ['windows', `${f.windows as string}: ${windows.map((w) => w.name).join(', ')}`],
      ]),
    );
    ctx.out(replayTable(r));
    if (out !== undefined) ctx.out(`\nwrote ${out}\n`);
  }
  if (signal.aborted) {
    ctx.progress.note('interrupted: the table holds the windows replayed so far');
    return 130;
  }
  return 0;
};

function parsePolicies(value: string | undefined): ReplayPolicy[] {
  if (value === undefined) return [...REPLAY_POLICIES];
  const names = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const bad = names.filter((n) => !(REPLAY_POLICIES as readonly string[]).includes(n));
  if (bad.length > 0 || names.length === 0) {
    throw new InputError(`--policies: ${bad.length > 0 ? `unknown ${bad.map((b) => JSON.stringify(b)).join(', ')}` : 'empty'}; choose from ${REPLAY_POLICIES.join(', ')}`);
  }
  return [...new Set(names)] as ReplayPolicy[];
}

/** Windows: the files of a folder in name order, or a trace cut into windows of N requests. */
async function loadWindows(path: string, windowRequests: number | undefined, model: Model, ctx: Ctx): Promise<ReplayWindow[]> {
  if (windowRequests !== undefined) {
    const w = await loadWorkloadFlag(path, model, ctx);
    if (w.kind !== 'trace') throw new InputError(`--window-requests: ${path} holds per-layer counts, not a trace of requests; give a folder of counts files without --window-requests`);
    const n = Math.ceil(w.trace.numRequests / windowRequests);
    if (n < 2) throw new InputError(`--window-requests: ${path} has ${w.trace.numRequests} requests, one window of ${windowRequests}; a replay needs 2 or more (give at most ${Math.floor(w.trace.numRequests / 2)})`);
    return Array.from({ length: n }, (_, i) => ({
      name: `requests ${i * windowRequests}-${Math.min(w.trace.numRequests, (i + 1) * windowRequests) - 1}`,
      workload: { kind: 'trace', trace: filterRequests(w.trace, (r) => Math.floor(r / windowRequests) === i), meta: { ...w.meta, notes: [...(w.meta.notes ?? []), `window ${i}`] } },
    }));
  }
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new InputError(`--windows: ${path}: no such file or folder`);
  }
  if (!st.isDirectory()) throw new InputError(`--windows: ${path} is a file; give a folder of workload files, or --window-requests N to cut a trace into windows`);
  const names = readdirSync(path)
    .filter((n) => !n.startsWith('.') && statSync(join(path, n)).isFile())
    .sort();
  if (names.length < 2) throw new InputError(`--windows: ${path} holds ${names.length} workload file${names.length === 1 ? '' : 's'}; a replay needs 2 or more`);
  const out: ReplayWindow[] = [];
  for (const name of names) out.push({ name, workload: await loadWorkloadFlag(join(path, name), model, ctx) });
  return out;
}

function replayTable(r: ReplayResult): string {
  const rows: string[][] = [['policy', 'mean balancedness', 'mean MoE time (ms)', 'mean inter-node bytes', 'moved per rebalance', 'moved in all', 'plan s']];
  for (const p of r.policies) {
    const reb = p.perWindow.filter((w) => w.rebalanced).length;
    rows.push([
      p.name,
      num(p.mean.balancedness, 4),
      ms(p.mean.timeSeconds),
      bytesText(p.mean.interNodeBytes),
      reb > 0 ? bytesText(p.totalMovedBytes / reb) : '-',
      bytesText(p.totalMovedBytes),
      num(p.planSeconds, 1),
    ]);
  }
  const perWindow: string[][] = [['window', ...r.policies.map((p) => `${p.name} bal / moved`)]];
  for (let i = 0; i < (r.policies[0]?.perWindow.length ?? 0); i++) {
    const t = r.policies[0].perWindow[i].window;
    perWindow.push([`${t} ${r.windows[t]}`, ...r.policies.map((p) => (p.perWindow[i] ? `${num(p.perWindow[i].balancedness, 3)} / ${bytesText(p.perWindow[i].movedBytes)}` : '-'))]);
  }
  const budget = `budget: at most ${num(r.budgetExperts)} expert copies per rebalance (${num((100 * r.budgetExperts) / r.slotsPerPlan, 1)}% of ${num(r.slotsPerPlan)} slots)`;
  return (
    table(rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r']) +
    '\n' +
    table(perWindow, ['l', ...r.policies.map(() => 'r' as const)]) +
    `\nevery window is scored with a plan fitted on earlier windows only; ${budget}\n`
  );
}
