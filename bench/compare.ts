/**
 * Is a cluster of weak-compute, large-memory cards (H20: 296 TFLOPS FP8, 96 GB) worth it for
 * DeepSeek-V3 with large EP, and with how many redundant experts? `compare` (src/compare.ts) on the
 * real SGLang counts:
 * - prefill (normal kernels): h800-4x8 against h20-4x8 at 8..12 slots per GPU (h20-4x8 gives 32 GB
 *   of each card to routed experts: 12 slots at most), fitted on prefill_in2048.json and scored on
 *   prefill_in4096.json;
 * - decode (low-latency kernels): h800-18x8 against H20 18x8 at 2..4 slots per GPU, fitted on
 *   decode_in2000out100.json and scored on decode_in1000out1000.json.
 * Counts carry no requests, so there is no split by request: the held-out figure is another
 * recorded counts file of the same phase. EPLB and `optimize` (objective time) each plan every
 * level; times are scaled to one step of 4096 prefill / 128 decode tokens per GPU.
 *
 * Run: npm run build && node dist/bench/compare.js [--time-limit 10] [--workers 2]
 */
import { compare, compareSplit, resolveCompareCluster, type CompareRow } from '../src/compare.js';
import { resolveModel } from '../src/presets.js';
import type { Mode } from '../src/schemas.js';
import { loadWorkload } from '../src/workload/index.js';
import { dataPath, flag, printTable, writeResult } from './common.js';

const timeLimit = Number(flag('time-limit', '10'));
const workers = Number(flag('workers', '2'));
const model = resolveModel('deepseek-v3');
const file = (name: string): string | null => dataPath('deepseek-v3-sglang', name);

interface Scenario {
  name: string;
  mode: Mode;
  clusters: string[];
  slots: number[];
  fit: string;
  score: string;
  tokensPerGpu: number;
}

const SCENARIOS: Scenario[] = [
  { name: 'prefill EP32', mode: 'normal', clusters: ['h800-4x8', 'h20-4x8'], slots: [8, 9, 10, 11, 12], fit: 'prefill_in2048.json', score: 'prefill_in4096.json', tokensPerGpu: 4096 },
  { name: 'decode EP144', mode: 'low-latency', clusters: ['h800-18x8', 'h20-18x8'], slots: [2, 3, 4], fit: 'decode_in2000out100.json', score: 'decode_in1000out1000.json', tokensPerGpu: 128 },
];

if (!file(SCENARIOS[0].fit)) {
  console.log('bench/compare: ../shared/data/deepseek-v3-sglang is absent; nothing to measure (set MOE_PLACER_DATA)');
  process.exit(0);
}

const rows: Record<string, string | number>[] = [];
const summary: Record<string, string | number>[] = [];
const skipped: Record<string, string | number>[] = [];
const splits: string[] = [];
const started = performance.now();
for (const sc of SCENARIOS) {
  const fit = await loadWorkload(file(sc.fit)!, model);
  const score = await loadWorkload(file(sc.score)!, model);
  const split = compareSplit(fit, score);
  splits.push(`${sc.name}: fitted on ${sc.fit}, scored on ${sc.score}`);
  const t = performance.now();
  const { result } = await compare({
    model,
    clusters: sc.clusters.map((c) => resolveCompareCluster(c, model)),
    slotsPerGpu: sc.slots,
    modes: [sc.mode],
    solvers: ['eplb', 'optimize'],
    objective: 'time',
    split,
    tokensPerGpu: sc.tokensPerGpu,
    seed: 1,
    timeLimitSeconds: timeLimit,
    workers,
    onProgress: (what, fraction) => process.stderr.write(`  ${sc.name}: ${what} (${(fraction * 100).toFixed(0)}%)\n`),
  });
  console.log(`${sc.name}: ${result.rows.length} plans in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const binds = (r: CompareRow): string => `${r.resources.binds === 'rdma' ? 'RDMA' : r.resources.binds === 'nvlink' ? 'NVLink' : 'compute'} ${(r.resources.shares[r.resources.binds] * 100).toFixed(0)}%`;
  for (const r of result.rows) {
    rows.push({
      scenario: sc.name,
      cluster: r.cluster,
      gpu: r.gpu,
      slots: r.slotsPerGpu,
      redundant: r.redundantExperts,
      'expert GB / GPU': r.memoryBytesPerGpu / 1e9,
      'budget GB': r.memoryBudgetBytes / 1e9,
      solver: r.solver,
      'dispatch ms': r.dispatchSecondsPerLayer * 1e3,
      'compute ms': r.computeSecondsPerLayer * 1e3,
      'combine ms': r.combineSecondsPerLayer * 1e3,
      'MoE ms': r.timeSeconds * 1e3,
      'tok/s/GPU': r.tokensPerSecondPerGpu,
      balancedness: r.balancedness,
      'fit balancedness': r.fit.balancedness,
      'inter-node GB': r.interNodeBytes / 1e9,
      binds: binds(r),
      'plan s': r.planSeconds,
    });
  }
  for (const s of result.skipped) skipped.push({ scenario: sc.name, cluster: s.cluster, slots: s.slotsPerGpu, reason: s.reason });
  // Per cluster: the best row, against the fewest slots (no or least redundancy) with the same
  // solver, EPLB at the same slots, and the first (H800) cluster's best (vsFirstCluster).
  for (const b of result.best) {
    const r = result.rows[b.row];
    const group = result.rows.filter((x) => x.cluster === r.cluster && x.solver === r.solver);
    const fewest = group.reduce((a, x) => (x.slotsPerGpu < a.slotsPerGpu ? x : a));
    const eplbSame = result.rows.find((x) => x.cluster === r.cluster && x.slotsPerGpu === r.slotsPerGpu && x.solver === 'eplb');
    summary.push({
      scenario: sc.name,
      cluster: r.cluster,
      gpu: r.gpu,
      'best solver': r.solver,
      slots: r.slotsPerGpu,
      redundant: r.redundantExperts,
      'expert GB / GPU': r.memoryBytesPerGpu / 1e9,
      'tok/s/GPU': r.tokensPerSecondPerGpu,
      'vs first cluster': b.vsFirstCluster,
      'vs fewest slots %': (100 * (r.tokensPerSecondPerGpu - fewest.tokensPerSecondPerGpu)) / fewest.tokensPerSecondPerGpu,
      'fewest slots': fewest.slotsPerGpu,
      'vs eplb same slots %': eplbSame ? (100 * (r.tokensPerSecondPerGpu - eplbSame.tokensPerSecondPerGpu)) / eplbSame.tokensPerSecondPerGpu : 0,
      binds: binds(r),
    });
  }
}
printTable('Best per scenario and cluster (held-out counts file)', summary);
printTable('Every plan', rows);
if (skipped.length > 0) printTable('Not planned', skipped);
const split = `held-out: plans fitted on one recorded counts file and scored on another of the same phase (${splits.join('; ')}); counts carry no requests to split`;
console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(
  `wrote ${writeResult('compare', {
    split,
    model: model.name,
    timeLimitSeconds: timeLimit,
    workers,
    objective: 'time',
    scenarios: SCENARIOS.map((s) => ({ name: s.name, mode: s.mode, clusters: s.clusters, slots: s.slots, fit: s.fit, score: s.score, tokensPerGpu: s.tokensPerGpu })),
    summary,
    rows,
    skipped,
  })}`,
);
