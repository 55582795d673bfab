/**
 * Target 2 (traffic): real DeepSeek-V2-Lite traces, fitted on the even-numbered requests and
 * scored on the odd-numbered ones (never seen by any solver). Shapes 4 x 2, 2 x 4 and 8 x 1 GPUs
 * with 10 slots per GPU; normal and low-latency modes. Rows: EPLB (the baseline), our balanced
 * plan, our traffic objective at the default eps and at a looser eps.
 *
 * Run: npm run build && node dist/bench/traffic.js [--shapes 4x2,2x4,8x1] [--modes normal,low-latency]
 *      [--eps 0.02,0.05] [--workers 2]
 */
import { evaluate } from '../src/cost.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { makeShape, type Placement, type Trace, type Workload } from '../src/types.js';
import { loadWorkload } from '../src/workload/index.js';
import { filterRequests } from '../src/workload/tokens.js';
import { eplbSolver } from '../solvers/eplb.js';
import { optimize } from '../solvers/optimize.js';
import type { SolveInput } from '../solvers/types.js';
import { dataPath, printTable, writeResult } from './common.js';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const dir = dataPath('deepseek-v2-lite-traces');
if (!dir) {
  console.log('bench/traffic: ../shared/data/deepseek-v2-lite-traces not found; skipped');
  process.exit(0);
}
const model = resolveModel('deepseek-v2-lite');
const w = await loadWorkload(dir, model);
if (w.kind !== 'trace') throw new Error('expected a trace');
const fit = filterRequests(w.trace, (r) => r % 2 === 0);
const held = filterRequests(w.trace, (r) => r % 2 === 1);
const asWorkload = (t: Trace): Workload => ({ kind: 'trace', trace: t, meta: { format: w.meta.format } });
const shapes = flag('shapes', '4x2,2x4,8x1').split(',').map((s) => s.split('x').map(Number));
const modes = flag('modes', 'normal,low-latency').split(',') as ('normal' | 'low-latency')[];
const epsList = flag('eps', '0.02,0.05').split(',').map(Number);
const workers = Number(flag('workers', '2'));
console.log(`V2-Lite: ${w.trace.numRequests} requests, fit ${fit.numTokens} tokens (even requests), held out ${held.numTokens} tokens (odd)`);

const rows: Record<string, string | number>[] = [];
for (const [nodes, gpusPerNode] of shapes) {
  const slotsPerGpu = 10;
  const cluster = resolveCluster('h800-4x8', model, { nodes, gpusPerNode, slotsPerGpu });
  const shape = makeShape(nodes, gpusPerNode, slotsPerGpu);
  for (const mode of modes) {
    const input: SolveInput = { model, cluster, shape, workload: asWorkload(fit), objective: 'traffic', mode, seed: 1, workers };
    const score = (p: Placement) => evaluate({ model, cluster, placement: p, workload: asWorkload(held), options: { mode } });
    const runs: { method: string; run: () => Promise<Placement> }[] = [
      { method: 'eplb', run: async () => (await eplbSolver.solve(input)).placement },
      { method: 'ours balance', run: async () => (await optimize({ ...input, objective: 'balance' })).placement },
      ...epsList.map((eps) => ({ method: `ours traffic eps=${eps}`, run: async () => (await optimize({ ...input, eps })).placement })),
    ];
    let base = 0;
    let baseBal = 0;
    for (const r of runs) {
      const t = performance.now();
      const p = await r.run();
      const wall = (performance.now() - t) / 1000;
      const ev = score(p);
      if (r.method === 'eplb') {
        base = ev.interNodeBytes;
        baseBal = ev.balancedness;
      }
      rows.push({
        shape: `${nodes}x${gpusPerNode}x${slotsPerGpu}`,
        mode,
        method: r.method,
        'inter-node GB': ev.interNodeBytes / 1e9,
        'vs eplb %': base > 0 ? (100 * (ev.interNodeBytes - base)) / base : 0,
        'intra-node GB': ev.intraNodeBytes / 1e9,
        balancedness: ev.balancedness,
        'bal - eplb': ev.balancedness - baseBal,
        'remote nodes/token': ev.remoteNodesPerToken,
        'wall s': wall,
      });
      console.error(JSON.stringify(rows[rows.length - 1]));
    }
  }
}
printTable('DeepSeek-V2-Lite traffic, scored on held-out requests (odd), fitted on even', rows);
console.log(`\nwrote ${writeResult('traffic', { fitTokens: fit.numTokens, heldTokens: held.numTokens, workers, rows })}`);
