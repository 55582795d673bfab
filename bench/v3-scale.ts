/**
 * Targets 3 and 4: DeepSeek-V3 scale from the generator (58 MoE layers, 256 experts, top-8),
 * marginals fitted to the real SGLang decode counts when ../shared/data is present. One trace of
 * 2 x 64k tokens is generated; the optimizer fits its even-numbered requests and every plan is
 * scored on the odd-numbered ones (same routing distribution, requests never seen). EP32 (4 x 8 x 9 slots) in normal mode and EP144 (18 x 8 x 2) in
 * low-latency mode; objectives traffic and time against EPLB, with solver wall time. Speed: the
 * balance objective's solver time, and the traffic objective with 1 and 2 workers (speed-up).
 *
 * Run: npm run build && node dist/bench/v3-scale.js [--tokens 65536] [--skip-speedup]
 */
import { join } from 'node:path';
import { evaluate } from '../src/cost.js';
import { generateTrace } from '../src/generator.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { makeShape, type Counts, type Placement, type Workload } from '../src/types.js';
import { loadWorkload } from '../src/workload/index.js';
import { eplbSolver } from '../src/solvers/eplb.js';
import { optimize } from '../src/solvers/optimize.js';
import type { SolveInput } from '../src/solvers/types.js';
import { dataPath, fitScoreSplit, flag, hasFlag, printTable, writeResult } from './common.js';

const model = resolveModel('deepseek-v3');
const tokens = Number(flag('tokens', '65536'));
let counts: Counts | undefined;
const countsFile = dataPath('deepseek-v3-sglang', 'decode_in1000out1000.json');
if (countsFile) {
  const w = await loadWorkload(countsFile, model);
  if (w.kind === 'counts') counts = w.counts;
}
let t = performance.now();
const all = generateTrace({ model, tokens: 2 * tokens, seed: 1, counts });
const { fit: fitTrace, held: heldTrace, label: split } = fitScoreSplit(all);
console.log(`generated ${2 * tokens} tokens in ${((performance.now() - t) / 1000).toFixed(1)} s (marginals: ${counts ? 'real decode counts' : 'generator default'})`);
const W = (tr: typeof fitTrace): Workload => ({ kind: 'trace', trace: tr, meta: { format: 'generated' } });

const rows: Record<string, string | number>[] = [];
const speed: Record<string, string | number>[] = [];
const scenarios = [
  { name: 'EP32', nodes: 4, gpusPerNode: 8, slotsPerGpu: 9, mode: 'normal' as const },
  { name: 'EP144', nodes: 18, gpusPerNode: 8, slotsPerGpu: 2, mode: 'low-latency' as const },
];
for (const sc of scenarios) {
  const cluster = resolveCluster('h800-4x8', model, sc);
  const shape = makeShape(sc.nodes, sc.gpusPerNode, sc.slotsPerGpu);
  const input: SolveInput = { model, cluster, shape, workload: W(fitTrace), objective: 'traffic', mode: sc.mode, seed: 1, workers: 2 };
  const score = (p: Placement) => evaluate({ model, cluster, placement: p, workload: W(heldTrace), options: { mode: sc.mode } });
  let base = { inter: 0, time: 0, bal: 0 };
  const methods: [string, () => Promise<Placement>][] = [
    ['eplb', async () => (await eplbSolver.solve(input)).placement],
    ['ours balance', async () => (await optimize({ ...input, objective: 'balance' })).placement],
    ['ours traffic', async () => (await optimize(input)).placement],
    // The traffic objective at EPLB's balance: eps = EPLB's max/mean over ours (balance objective)
    // on the fitted half, less 1, so EPLB's own layout is within the cap.
    [
      "ours traffic at EPLB's balance",
      async () => {
        const fitScore = (p: Placement) => evaluate({ model, cluster, placement: p, workload: W(fitTrace), options: { mode: sc.mode } });
        const ep = fitScore((await eplbSolver.solve(input)).placement);
        const ours = fitScore((await optimize({ ...input, objective: 'balance' })).placement);
        const eps = Math.max(0.02, ep.maxOverMean / ours.maxOverMean - 1);
        return (await optimize({ ...input, eps })).placement;
      },
    ],
    ['ours time', async () => (await optimize({ ...input, objective: 'time' })).placement],
  ];
  for (const [method, run] of methods) {
    t = performance.now();
    const p = await run();
    const wall = (performance.now() - t) / 1000;
    const ev = score(p);
    if (method === 'eplb') base = { inter: ev.interNodeBytes, time: ev.timeSeconds, bal: ev.balancedness };
    rows.push({
      scenario: `${sc.name} ${sc.mode}`,
      method,
      'inter-node GB': ev.interNodeBytes / 1e9,
      'vs eplb %': (100 * (ev.interNodeBytes - base.inter)) / base.inter,
      balancedness: ev.balancedness,
      'bal - eplb': ev.balancedness - base.bal,
      'MoE time ms': ev.timeSeconds * 1e3,
      'time vs eplb %': (100 * (ev.timeSeconds - base.time)) / base.time,
      'solver wall s': wall,
    });
    console.error(JSON.stringify(rows[rows.length - 1]));
  }
}
printTable(`DeepSeek-V3 synthetic (${fitTrace.numTokens} tokens fitted, ${heldTrace.numTokens} held out), workers 2`, rows);

if (!hasFlag('skip-speedup')) {
  const cluster = resolveCluster('h800-4x8', model, { nodes: 4, gpusPerNode: 8, slotsPerGpu: 9 });
  const shape = makeShape(4, 8, 9);
  const input: SolveInput = { model, cluster, shape, workload: W(fitTrace), objective: 'traffic', mode: 'normal', seed: 1 };
  const timeIt = async (what: string, f: () => Promise<unknown>): Promise<number> => {
    const a = performance.now();
    await f();
    const s = (performance.now() - a) / 1000;
    speed.push({ what, 'wall s': s });
    return s;
  };
  await timeIt('balance objective, 1 worker', () => optimize({ ...input, objective: 'balance', workers: 1 }));
  const one = await timeIt('traffic EP32, 1 worker', () => optimize({ ...input, workers: 1 }));
  const two = await timeIt('traffic EP32, 2 workers', () => optimize({ ...input, workers: 2 }));
  speed.push({ what: 'speed-up 2 vs 1 workers', 'wall s': one / two });
  printTable('Solver speed (DeepSeek-V3 EP32 synthetic)', speed);
}
console.log(`\nwrote ${writeResult('v3-scale', { split, workers: 2, tokens, marginals: counts ? join('deepseek-v3-sglang', 'decode_in1000out1000.json') : 'default', rows, speed })}`);
