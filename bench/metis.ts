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
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluate } from '../src/cost.js';
import type { Evaluation } from '../src/cost.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { coactivationCounts, coactivationGraph, parseMetisPartition, toMetisGraph } from '../src/search/coactivation.js';
import { makeShape, type Placement, type Shape, type Trace, type Workload } from '../src/types.js';
import { loadWorkload } from '../src/workload/index.js';
import { filterRequests, tokenSetsOfLayer } from '../src/workload/tokens.js';
import { eplbSolver } from '../solvers/eplb.js';
import { optimize } from '../solvers/optimize.js';
import type { SolveInput } from '../solvers/types.js';
import { dataPath, printTable, writeResult } from './common.js';

const dir = dataPath('deepseek-v2-lite-traces');
if (!dir) {
  console.log('bench/metis: ../shared/data/deepseek-v2-lite-traces not found; skipped');
  process.exit(0);
}
const hasGpmetis = ((): boolean => {
  try {
    execFileSync('gpmetis', ['-help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasGpmetis) {
  console.log('bench/metis: gpmetis not found (apt-get install metis); skipped');
  process.exit(0);
}
const skipOurs = process.env.SKIP_OURS === '1';

/**
 * Experts of each part moved so that no node holds more than `cap` experts: a part over capacity
 * gives its lightest experts, one at a time, to the node with room that shares the most
 * co-activation with the expert (ties: the lighter node, then the lower id).
 * @param part [E] node of each expert, modified in place
 * @param load [E], pair [E*E] upper triangle of co-activation weights
 */
function fitCapacity(part: Int32Array, load: Float64Array, pair: Float64Array, nodes: number, cap: number): number {
  const E = part.length;
  const count = new Int32Array(nodes);
  const nodeLoad = new Float64Array(nodes);
  for (let e = 0; e < E; e++) {
    count[part[e]]++;
    nodeLoad[part[e]] += load[e];
  }
  let moved = 0;
  for (let n = 0; n < nodes; n++) {
    while (count[n] > cap) {
      let light = -1;
      for (let e = 0; e < E; e++) if (part[e] === n && (light < 0 || load[e] < load[light])) light = e;
      const link = new Float64Array(nodes);
      for (let f = 0; f < E; f++) {
        if (f === light) continue;
        link[part[f]] += light < f ? pair[light * E + f] : pair[f * E + light];
      }
      let best = -1;
      for (let m = 0; m < nodes; m++) {
        if (m === n || count[m] >= cap) continue;
        if (best < 0 || link[m] > link[best] || (link[m] === link[best] && nodeLoad[m] < nodeLoad[best])) best = m;
      }
      part[light] = best;
      count[n]--;
      count[best]++;
      nodeLoad[n] -= load[light];
      nodeLoad[best] += load[light];
      moved++;
    }
  }
  return moved;
}

/**
 * Layout of one layer from a node assignment: [P] phy2log. Inside node n: replicas by load / count
 * into the node's G*S slots (at most G per expert, none for unused experts), then LPT onto the
 * node's GPUs (one replica of an expert per GPU).
 */
function layoutFromParts(part: Int32Array, load: Float64Array, shape: Shape): Int32Array {
  const { nodes, gpusPerNode: G, slotsPerGpu: S } = shape;
  const E = part.length;
  const phy2log = new Int32Array(shape.numSlots).fill(-1);
  for (let n = 0; n < nodes; n++) {
    const ex: number[] = [];
    for (let e = 0; e < E; e++) if (part[e] === n) ex.push(e);
    const reps = ex.map(() => 1);
    for (let free = G * S - ex.length; free > 0; free--) {
      let best = -1;
      for (let i = 0; i < ex.length; i++) {
        if (reps[i] >= G || load[ex[i]] <= 0) continue;
        if (best < 0 || load[ex[i]] / reps[i] > load[ex[best]] / reps[best]) best = i;
      }
      if (best < 0) break;
      reps[best]++;
    }
    const items: { e: number; share: number }[] = [];
    ex.forEach((e, i) => {
      for (let r = 0; r < reps[i]; r++) items.push({ e, share: load[e] / reps[i] });
    });
    items.sort((a, b) => b.share - a.share || a.e - b.e);
    const gpuLoad = new Float64Array(G);
    const used = new Int32Array(G);
    const holds = new Uint8Array(E * G);
    for (const it of items) {
      let best = -1;
      for (let h = 0; h < G; h++) {
        if (used[h] >= S || holds[it.e * G + h]) continue;
        if (best < 0 || gpuLoad[h] < gpuLoad[best]) best = h;
      }
      if (best < 0) throw new Error(`no GPU of node ${n} can take expert ${it.e}`); // cannot happen: reps <= G, items <= G*S
      const gpu = n * G + best;
      phy2log[gpu * S + used[best]] = it.e;
      used[best]++;
      holds[it.e * G + best] = 1;
      gpuLoad[best] += it.share;
    }
  }
  return phy2log;
}

/** METIS placement of every layer of `trace`, and facts about the partitions. */
function metisPlacement(trace: Trace, shape: Shape, tmp: string): { placement: Placement; moved: number; cutFraction: number } {
  const E = trace.numExperts;
  const phy2log: Int32Array[] = [];
  let moved = 0;
  let cut = 0;
  let total = 0;
  for (let l = 0; l < trace.numLayers; l++) {
    const ts = tokenSetsOfLayer(trace, l, shape.numGpus);
    const graph = coactivationGraph(ts, E);
    const { pair, load } = coactivationCounts(ts, E);
    const file = join(tmp, `layer${l}.graph`);
    writeFileSync(file, toMetisGraph(graph, E));
    execFileSync('gpmetis', ['-seed=1', '-ufactor=30', file, String(shape.nodes)], { stdio: 'ignore' });
    const part = parseMetisPartition(readFileSync(`${file}.part.${shape.nodes}`, 'utf8'), E, `${file}.part.${shape.nodes}`);
    moved += fitCapacity(part, load, pair, shape.nodes, shape.gpusPerNode * shape.slotsPerGpu);
    for (let a = 0; a < E; a++) {
      for (let b = a + 1; b < E; b++) {
        total += pair[a * E + b];
        if (part[a] !== part[b]) cut += pair[a * E + b];
      }
    }
    phy2log.push(layoutFromParts(part, load, shape));
  }
  return { placement: { numLayers: trace.numLayers, numExperts: E, shape, phy2log, dispatch: null }, moved, cutFraction: cut / total };
}

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
