/**
 * Rebalancing with migration cost (issue 9): the real DeepSeek-V3 counts files, in name order, as
 * successive workload windows, on EP32 (h800-4x8, normal mode) and EP144 (h800-18x8, low-latency),
 * rebalanced after every window by each policy of src/replay.ts (static, EPLB from scratch, EPLB
 * keeping slots, moe-placer re-plan, moe-placer with a budget of 10% of the plan's slots).
 *
 * Held out by construction: window t is served by a plan fitted on window t-1 (or earlier).
 * Targets: budget >= 90% of the re-plan's balance gain over static; >= 5x fewer bytes moved than
 * EPLB from scratch at equal or better mean balancedness.
 *
 * Run: npm run build && node dist/bench/replay.js
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { replay, type ReplayResult } from '../src/replay.js';
import type { Mode } from '../src/schemas.js';
import { loadWorkload } from '../src/workload/index.js';
import { dataPath, printTable, SPLITS, writeResult } from './common.js';

const dir = dataPath('deepseek-v3-sglang');
if (!dir) {
  console.log('bench/replay: ../shared/data/deepseek-v3-sglang not found; skipped');
  process.exit(0);
}
const model = resolveModel('deepseek-v3');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();
const windows = [];
for (const f of files) windows.push({ name: f.replace(/\.json$/, ''), workload: await loadWorkload(join(dir, f), model) });

const shapes: { name: string; cluster: string; mode: Mode }[] = [
  { name: 'EP32', cluster: 'h800-4x8', mode: 'normal' },
  { name: 'EP144', cluster: 'h800-18x8', mode: 'low-latency' },
];
const FRACTION = 0.1;
const rows: Record<string, string | number>[] = [];
const summary: Record<string, string | number>[] = [];
const runs: (ReplayResult & { shape: string; wallSeconds: number })[] = [];
for (const sh of shapes) {
  const cluster = resolveCluster(sh.cluster, model);
  const slots = model.moeLayerIds.length * cluster.nodes * cluster.gpusPerNode * cluster.slotsPerGpu;
  const t0 = performance.now();
  const r = await replay({ model, cluster, windows, mode: sh.mode, maxMovedExperts: Math.floor(FRACTION * slots), workers: 2 });
  const wallSeconds = (performance.now() - t0) / 1000;
  runs.push({ ...r, shape: sh.name, wallSeconds });
  const by = Object.fromEntries(r.policies.map((p) => [p.name, p]));
  const rebalances = by.budget.perWindow.filter((w) => w.rebalanced).length;
  for (const p of r.policies) {
    rows.push({
      shape: sh.name,
      policy: p.name,
      'mean balancedness': p.mean.balancedness,
      'mean MoE time ms': p.mean.timeSeconds * 1e3,
      'GB moved per rebalance': rebalances > 0 ? p.totalMovedBytes / rebalances / 1e9 : 0,
      'moved % of slots': rebalances > 0 ? (100 * p.totalMovedExperts) / rebalances / slots : 0,
      'plan s': p.planSeconds,
    });
  }
  // The largest budget that still moves 5x fewer bytes than EPLB from scratch, replayed too.
  const eplbFraction = by.eplb.totalMovedExperts / rebalances / slots;
  const fiveX = Math.floor((eplbFraction / 5) * 100) / 100;
  const t1 = performance.now();
  const wide = (await replay({ model, cluster, windows, mode: sh.mode, policies: ['budget'], maxMovedExperts: Math.floor(fiveX * slots), workers: 2 })).policies[0];
  runs.push({ ...r, policies: [wide], shape: `${sh.name} budget ${100 * fiveX}%`, wallSeconds: (performance.now() - t1) / 1000 });
  rows.push({
    shape: sh.name,
    policy: `budget ${Math.round(100 * fiveX)}%`,
    'mean balancedness': wide.mean.balancedness,
    'mean MoE time ms': wide.mean.timeSeconds * 1e3,
    'GB moved per rebalance': wide.totalMovedBytes / rebalances / 1e9,
    'moved % of slots': (100 * wide.totalMovedExperts) / rebalances / slots,
    'plan s': wide.planSeconds,
  });
  const gain = (b: number): number => b - by.static.mean.balancedness;
  for (const [label, p] of [[100 * FRACTION, by.budget], [Math.round(100 * fiveX), wide]] as const) {
    const gainShare = gain(p.mean.balancedness) / gain(by.replan.mean.balancedness);
    const bytesRatio = by.eplb.totalMovedBytes / Math.max(1, p.totalMovedBytes);
    const balVsEplb = p.mean.balancedness - by.eplb.mean.balancedness;
    summary.push({
      shape: sh.name,
      'budget % of slots': label,
      'share of re-plan balance gain %': 100 * gainShare,
      'target >= 90% (10% budget)': label === 100 * FRACTION ? (gainShare >= 0.9 ? 'met' : 'NOT met') : '-',
      'EPLB bytes / budget bytes': bytesRatio,
      'budget bal - EPLB bal': balVsEplb,
      'target 5x at >= EPLB bal': bytesRatio >= 5 && balVsEplb >= 0 ? 'met' : 'NOT met',
      'wall s': label === 100 * FRACTION ? wallSeconds : (performance.now() - t1) / 1000,
    });
  }
}
printTable('replay: DeepSeek-V3 counts files as successive windows, rebalanced after every window (held out: each window served by a plan fitted before it)', rows);
printTable('targets', summary);
writeResult('replay', { split: SPLITS.replay, windows: files.join(', '), budgetFraction: FRACTION, rows, summary, runs });
