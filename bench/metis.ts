/**
 * Target 5 (reference partitioner): METIS (`gpmetis`, Debian package `metis`) on the per-layer
 * co-activation graph of the real DeepSeek-V2-Lite traces, against EPLB and our `optimize`
 * (objective traffic, normal mode). Fit on the even requests, scored on the odd ones (held out).
 *
 * METIS placement, per layer: k-way partition of the co-activation graph into `nodes` parts
 * (vertex weight = expert load, edge weight = tokens using both experts, 3% imbalance, seed 1);
 * experts go to their part's node (a part with more experts than the node's slots gives its
 * lightest experts to the node with room it is most co-activated with); inside each node the free
 * slots take replicas greedily by load / count (at most one replica per GPU), and replicas are
 * packed onto the node's GPUs by LPT on load / count, one replica of an expert per GPU. Dispatch
 * follows the cost model's default rule (placement.dispatch = null).
 *
 * Run: npm run build && node dist/bench/metis.js   (SKIP_OURS=1 leaves out `optimize`)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluate } from '../src/cost.js';
import type { Evaluation } from '../src/cost.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { makeShape, type Placement, type Workload } from '../src/types.js';
import { loadWorkload } from '../src/workload/index.js';
import { filterRequests } from '../src/workload/tokens.js';
import { eplbSolver } from '../solvers/eplb.js';
import { optimize } from '../solvers/optimize.js';
import type { SolveInput } from '../solvers/types.js';
import { dataPath, printTable, writeResult } from './common.js';
import { hasGpmetis, metisPlacement } from './metis-lib.js';

const dir = dataPath('deepseek-v2-lite-traces');
if (!dir) {
  console.log('bench/metis: ../shared/data/deepseek-v2-lite-traces not found; skipped');
  process.exit(0);
}
if (!hasGpmetis()) {
  console.log('bench/metis: gpmetis not found (apt-get install metis); skipped');
  process.exit(0);
}
const skipOurs = process.env.SKIP_OURS === '1';

const model = resolveModel('deepseek-v2-lite');
let t0 = performance.now();
const all = await loadWorkload(dir, model);
if (all.kind !== 'trace') throw new Error('expected a trace workload');
const full = all.trace;
const fitTrace = filterRequests(full, (r) => r % 2 === 0);
const heldTrace = filterRequests(full, (r) => r % 2 === 1);
const fit: Workload = { kind: 'trace', trace: fitTrace, meta: { ...all.meta, notes: ['even requests'] } };
const held: Workload = { kind: 'trace', trace: heldTrace, meta: { ...all.meta, notes: ['odd requests'] } };
console.log(
  `loaded ${full.numRequests} requests, ${full.numTokens} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s; fit ${fitTrace.numRequests} requests / ${fitTrace.numTokens} tokens, held out ${heldTrace.numRequests} / ${heldTrace.numTokens}`,
);

const shapes = [
  { nodes: 4, gpusPerNode: 2, slotsPerGpu: 10 },
  { nodes: 2, gpusPerNode: 4, slotsPerGpu: 10 },
  { nodes: 8, gpusPerNode: 1, slotsPerGpu: 10 },
];

const GB = 1e9;
const rows: Record<string, string | number>[] = [];
const detail: unknown[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'moe-placer-metis-'));
try {
  for (const sh of shapes) {
    const cluster = resolveCluster('h800-4x8', model, sh);
    const shape = makeShape(sh.nodes, sh.gpusPerNode, sh.slotsPerGpu);
    const name = `${sh.nodes}x${sh.gpusPerNode}x${sh.slotsPerGpu}`;
    const input: SolveInput = { model, cluster, shape, workload: fit, objective: 'traffic', mode: 'normal', seed: 1, workers: 2 };
    const score = (p: Placement): Evaluation => evaluate({ model, cluster, placement: p, workload: held, options: { mode: 'normal' } });
    const results: { method: string; ev: Evaluation; wall: number; info?: unknown }[] = [];

    t0 = performance.now();
    const ep = await eplbSolver.solve(input);
    results.push({ method: 'EPLB', ev: score(ep.placement), wall: (performance.now() - t0) / 1000 });

    t0 = performance.now();
    const me = metisPlacement(fitTrace, shape, tmp);
    const metisWall = (performance.now() - t0) / 1000;
    results.push({ method: 'METIS', ev: score(me.placement), wall: metisWall, info: { movedForCapacity: me.moved, fitCutFraction: me.cutFraction } });

    if (!skipOurs) {
      t0 = performance.now();
      const ours = await optimize(input);
      results.push({ method: 'ours', ev: score(ours.placement), wall: (performance.now() - t0) / 1000, info: ours.info });
    }

    const base = results[0].ev.interNodeBytes;
    for (const r of results) {
      rows.push({
        shape: name,
        method: r.method,
        'inter-node GB': r.ev.interNodeBytes / GB,
        'vs EPLB %': (100 * (r.ev.interNodeBytes - base)) / base,
        'intra-node GB': r.ev.intraNodeBytes / GB,
        balancedness: r.ev.balancedness,
        'remote nodes/token': r.ev.remoteNodesPerToken,
        'wall s': r.wall,
      });
      detail.push({
        shape: name,
        method: r.method,
        interNodeBytes: r.ev.interNodeBytes,
        intraNodeBytes: r.ev.intraNodeBytes,
        balancedness: r.ev.balancedness,
        maxOverMean: r.ev.maxOverMean,
        remoteNodesPerToken: r.ev.remoteNodesPerToken,
        wallSeconds: r.wall,
        perLayerInterNodeBytes: r.ev.perLayer.map((m) => m.interNodeBytes),
        perLayerBalancedness: r.ev.perLayer.map((m) => m.balancedness),
        info: r.info,
      });
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

printTable(
  `DeepSeek-V2-Lite traces, fit on even requests, scored on odd (normal mode)${skipOurs ? '; ours skipped (SKIP_OURS=1)' : ''}`,
  rows,
);
const out = writeResult('metis', {
  data: 'deepseek-v2-lite-traces',
  split: 'fit on even requests, score on odd (filterRequests renumbers)',
  metis: { tool: 'gpmetis 5.1.0', args: '-seed=1 -ufactor=30 <graph> <nodes>', vertexWeight: 'expert load', edgeWeight: 'tokens using both experts' },
  skippedOurs: skipOurs,
  rows,
  detail,
});
console.log(`\nwrote ${out}`);
