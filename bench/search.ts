/**
 * The traffic search against EPLB and METIS on real DeepSeek-V2-Lite traces: fit on the even
 * requests, scored on the odd ones (held out, never seen by any solver). Per shape (4x2, 2x4, 8x1
 * GPUs, 10 slots per GPU) and mode (normal, low-latency):
 * - EPLB (the baseline);
 * - METIS at three imbalance factors (its frontier; bench/metis-lib.ts);
 * - ours, objective traffic, at three eps (our frontier), and at the default eps without the
 *   serving LP (ablation) and with two more seeds (the spread a seed alone makes: median traffic
 *   and worst balancedness over the three seeds in the summary);
 * - the traffic lower bound of the held-out tokens (any placement of the shape; src/api.ts
 *   layerTrafficBounds) and each row's gap to it.
 * `frontier dominated` says, for every METIS point, whether one of our points has both fewer
 * held-out inter-node bytes and at least its balancedness.
 *
 * Run: npm run build && node dist/bench/search.js [--shapes 4x2,2x4,8x1] [--modes normal,low-latency]
 *      [--eps 0.01,0.02,0.05] [--workers 2] [--seeds 2,3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layerTrafficBounds } from '../src/api.js';
import { evaluate } from '../src/cost.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { makeShape, type Placement, type Trace, type Workload } from '../src/types.js';
import { loadWorkload } from '../src/workload/index.js';
import { eplbSolver } from '../src/solvers/eplb.js';
import { optimize } from '../src/solvers/optimize.js';
import type { SolveInput } from '../src/solvers/types.js';
import { dataPath, fitScoreSplit, flag, printTable, writeResult } from './common.js';
import { hasGpmetis, metisPlacement } from './metis-lib.js';

const dir = dataPath('deepseek-v2-lite-traces');
if (!dir) {
  console.log('bench/search: ../shared/data/deepseek-v2-lite-traces not found; skipped');
  process.exit(0);
}
const model = resolveModel('deepseek-v2-lite');
const w = await loadWorkload(dir, model);
if (w.kind !== 'trace') throw new Error('expected a trace');
const { fit, held, label } = fitScoreSplit(w.trace);
const asWorkload = (t: Trace): Workload => ({ kind: 'trace', trace: t, meta: { format: w.meta.format } });
const shapes = flag('shapes', '4x2,2x4,8x1').split(',').map((s) => s.split('x').map(Number));
const modes = flag('modes', 'normal,low-latency').split(',') as ('normal' | 'low-latency')[];
const epsList = flag('eps', '0.01,0.02,0.05').split(',').map(Number);
const workers = Number(flag('workers', '2'));
const extraSeeds = flag('seeds', '2,3').split(',').filter(Boolean).map(Number);
const metisFactors = [10, 30, 100];
const metis = hasGpmetis();
console.log(`V2-Lite: ${w.trace.numRequests} requests; ${label}; fit ${fit.numTokens} tokens, held out ${held.numTokens}`);
if (!metis) console.log('gpmetis not found (apt-get install metis): METIS rows skipped');

const rows: Record<string, string | number>[] = [];
const summary: Record<string, string | number>[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'moe-placer-search-'));
try {
  for (const [nodes, gpusPerNode] of shapes) {
    const slotsPerGpu = 10;
    const cluster = resolveCluster('h800-4x8', model, { nodes, gpusPerNode, slotsPerGpu });
    const shape = makeShape(nodes, gpusPerNode, slotsPerGpu);
    const metisRuns: { ufactor: number; placement: Placement; wall: number }[] = [];
    if (metis) {
      for (const ufactor of metisFactors) {
        const t = performance.now();
        const placement = metisPlacement(fit, shape, tmp, ufactor).placement;
        metisRuns.push({ ufactor, placement, wall: (performance.now() - t) / 1000 });
      }
    }
    for (const mode of modes) {
      const input: SolveInput = { model, cluster, shape, workload: asWorkload(fit), objective: 'traffic', mode, seed: 1, workers };
      const score = (p: Placement) => evaluate({ model, cluster, placement: p, workload: asWorkload(held), options: { mode } });
      const bound = layerTrafficBounds(asWorkload(held), model, shape, mode).reduce((a, b) => a + b, 0);
      const here: { method: string; inter: number; bal: number; wall: number; ours: boolean; metis: boolean; chosen?: unknown }[] = [];
      const run = async (method: string, ours: boolean, solve: () => Promise<{ placement: Placement; info?: unknown }>): Promise<void> => {
        const t = performance.now();
        const r = await solve();
        const wall = (performance.now() - t) / 1000;
        const ev = score(r.placement);
        here.push({ method, inter: ev.interNodeBytes, bal: ev.balancedness, wall, ours, metis: false, chosen: (r.info as { chosen?: unknown } | undefined)?.chosen });
      };
      await run('eplb', false, () => eplbSolver.solve(input));
      for (const m of metisRuns) {
        const ev = score(m.placement);
        here.push({ method: `metis ufactor=${m.ufactor}`, inter: ev.interNodeBytes, bal: ev.balancedness, wall: m.wall, ours: false, metis: true });
      }
      for (const eps of epsList) await run(`ours eps=${eps}`, true, () => optimize({ ...input, eps }));
      await run('ours eps=0.02 no LP', false, () => optimize({ ...input, eps: 0.02 }, { lpDispatch: false }));
      // The default with other seeds (its validation split and starts change): the spread of
      // held-out figures a seed alone makes (not part of the frontier).
      for (const seed of extraSeeds) await run(`ours eps=0.02 seed=${seed}`, false, () => optimize({ ...input, eps: 0.02, seed }));
      const base = here[0];
      for (const h of here) {
        rows.push({
          shape: `${nodes}x${gpusPerNode}x${slotsPerGpu}`,
          mode,
          method: h.method,
          'inter-node GB': h.inter / 1e9,
          'vs eplb %': (100 * (h.inter - base.inter)) / base.inter,
          balancedness: h.bal,
          'bal - eplb': h.bal - base.bal,
          'gap to bound %': bound > 0 ? (100 * (h.inter - bound)) / bound : NaN,
          'wall s': h.wall,
        });
        console.error(JSON.stringify(rows[rows.length - 1]));
      }
      const oursPts = here.filter((h) => h.ours);
      const metisPts = here.filter((h) => h.metis);
      const dominated = metisPts.every((m) => oursPts.some((o) => o.inter < m.inter && o.bal >= m.bal));
      // Our best held-out traffic at balancedness no more than 0.01 below EPLB's.
      const ok = oursPts.filter((o) => o.bal >= base.bal - 0.01);
      const bestOk = ok.length ? ok.reduce((a, b) => (a.inter < b.inter ? a : b)) : null;
      const def = here.find((h) => h.method === 'ours eps=0.02');
      const seeded = here.filter((h) => h.method === 'ours eps=0.02' || h.method.startsWith('ours eps=0.02 seed='));
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
      summary.push({
        shape: `${nodes}x${gpusPerNode}x${slotsPerGpu}`,
        mode,
        'default vs eplb %': def ? (100 * (def.inter - base.inter)) / base.inter : NaN,
        'default bal - eplb': def ? def.bal - base.bal : NaN,
        'default wall s': def?.wall ?? NaN,
        'seeds vs eplb % median': median(seeded.map((h) => (100 * (h.inter - base.inter)) / base.inter)),
        'seeds bal - eplb worst': Math.min(...seeded.map((h) => h.bal - base.bal)),
        'best within 0.01 of eplb bal %': bestOk ? (100 * (bestOk.inter - base.inter)) / base.inter : NaN,
        'best metis vs eplb %': metisPts.length ? (100 * (Math.min(...metisPts.map((m) => m.inter)) - base.inter)) / base.inter : NaN,
        'metis frontier dominated': metisPts.length ? (dominated ? 'yes' : 'no') : '-',
        'lower bound GB': bound / 1e9,
      });
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
printTable(`DeepSeek-V2-Lite traffic search, held-out requests (${label})`, rows);
printTable('Summary (default = ours eps=0.02)', summary);
console.log(`\nwrote ${writeResult('search', { split: label, fitTokens: fit.numTokens, heldTokens: held.numTokens, workers, metisFactors, seeds: [1, ...extraSeeds], rows, summary })}`);
