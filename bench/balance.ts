/**
 * Target 1 (balance): real DeepSeek-V3 counts (SGLang recorder), EP32 (4 x 8 GPUs, 9 slots) and
 * EP144 (18 x 8, 2 slots). Per layer: our `balance` objective against EPLB and the load lower
 * bound. In-sample: fitted and scored on the same counts file. Held out: fitted on one file and
 * scored on the other file of the same phase (decode_in1000out1000 <-> decode_in2000out100,
 * prefill_in1024 <-> prefill_in2048, ...).
 *
 * Run: npm run build && node dist/bench/balance.js
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { maxLoadLowerBound } from '../src/bounds/max-load.js';
import { evaluate } from '../src/cost.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { makeShape, type Placement, type Workload } from '../src/types.js';
import { loadWorkload } from '../src/workload/index.js';
import { eplbSolver } from '../src/solvers/eplb.js';
import { optimize } from '../src/solvers/optimize.js';
import type { SolveInput } from '../src/solvers/types.js';
import { dataPath, median, printTable, SPLITS, writeResult } from './common.js';

const dir = dataPath('deepseek-v3-sglang');
if (!dir) {
  console.log('bench/balance: ../shared/data/deepseek-v3-sglang not found; skipped');
  process.exit(0);
}
const model = resolveModel('deepseek-v3');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const pairs: [string, string][] = [
  ['decode_in1000out1000.json', 'decode_in2000out100.json'],
  ['decode_in2000out100.json', 'decode_in1000out1000.json'],
  ['prefill_in1024.json', 'prefill_in2048.json'],
  ['prefill_in2048.json', 'prefill_in4096.json'],
  ['prefill_in4096.json', 'prefill_in512.json'],
  ['prefill_in512.json', 'prefill_in1024.json'],
  ['prefill_in1000out1000.json', 'prefill_in2000out100.json'],
  ['prefill_in2000out100.json', 'prefill_in1000out1000.json'],
].filter(([a, b]) => files.includes(a) && files.includes(b)) as [string, string][];

const shapes = [
  { name: 'EP32', nodes: 4, gpusPerNode: 8, slotsPerGpu: 9 },
  { name: 'EP144', nodes: 18, gpusPerNode: 8, slotsPerGpu: 2 },
];

const cache = new Map<string, Workload>();
async function load(f: string): Promise<Workload> {
  if (!cache.has(f)) cache.set(f, await loadWorkload(join(dir!, f), model));
  return cache.get(f)!;
}

const rows: Record<string, string | number>[] = [];
const detail: unknown[] = [];
for (const sh of shapes) {
  const cluster = resolveCluster('h800-4x8', model, sh);
  const shape = makeShape(sh.nodes, sh.gpusPerNode, sh.slotsPerGpu);
  let worseLayers = 0;
  const oursOverBound: number[] = [];
  const eplbOverBound: number[] = [];
  const heldOurs: number[] = [];
  const heldEplb: number[] = [];
  let eplbWorst = 0;
  let oursWorst = 0;
  let solverSeconds = 0;
  let eplbSeconds = 0;
  let heldWorse = 0;
  let layersTotal = 0;
  for (const [fit, held] of pairs) {
    const w = await load(fit);
    const input: SolveInput = { model, cluster, shape, workload: w, objective: 'balance', mode: 'normal', seed: 1, workers: 1 };
    let t = performance.now();
    const ours = await optimize(input);
    solverSeconds += (performance.now() - t) / 1000;
    t = performance.now();
    const ep = await eplbSolver.solve(input);
    eplbSeconds += (performance.now() - t) / 1000;
    const evalOn = (p: Placement, wl: Workload) => evaluate({ model, cluster, placement: p, workload: wl, options: { sampleTokens: 64 } });
    const eo = evalOn(ours.placement, w);
    const ee = evalOn(ep.placement, w);
    const wh = await load(held);
    const ho = evalOn(ours.placement, wh);
    const he = evalOn(ep.placement, wh);
    if (w.kind !== 'counts') throw new Error('expected counts');
    for (let l = 0; l < model.moeLayerIds.length; l++) {
      const bound = maxLoadLowerBound(w.counts.counts[l], shape.numGpus, shape.slotsPerGpu);
      const o = eo.perLayer[l].maxLoad;
      const e = ee.perLayer[l].maxLoad;
      if (o > e * (1 + 1e-9)) worseLayers++;
      oursOverBound.push(o / bound - 1);
      eplbOverBound.push(e / bound - 1);
      oursWorst = Math.max(oursWorst, o / bound);
      eplbWorst = Math.max(eplbWorst, e / bound);
      heldOurs.push(ho.perLayer[l].balancedness);
      heldEplb.push(he.perLayer[l].balancedness);
      if (ho.perLayer[l].maxLoad > he.perLayer[l].maxLoad * (1 + 1e-9)) heldWorse++;
      layersTotal++;
    }
    detail.push({ shape: sh.name, fit, held, ours: { maxOverMean: eo.maxOverMean, balancedness: eo.balancedness }, eplb: { maxOverMean: ee.maxOverMean, balancedness: ee.balancedness }, heldOurs: ho.balancedness, heldEplb: he.balancedness });
  }
  rows.push({
    shape: sh.name,
    files: pairs.length,
    layers: layersTotal,
    'ours median over bound %': 100 * median(oursOverBound),
    'eplb median over bound %': 100 * median(eplbOverBound),
    'ours worst / bound': oursWorst,
    'eplb worst / bound': eplbWorst,
    'layers worse than eplb': worseLayers,
    'held-out balancedness ours': median(heldOurs),
    'held-out balancedness eplb': median(heldEplb),
    'held-out layers worse': heldWorse,
    'solver s / file': solverSeconds / pairs.length,
    'eplb s / file': eplbSeconds / pairs.length,
  });
}
printTable('Balance on real DeepSeek-V3 counts (in-sample vs bound; held out = other file of the same phase)', rows);
const out = writeResult('balance', { split: SPLITS.balance, workers: 1, rows, detail });
console.log(`\nwrote ${out}`);
