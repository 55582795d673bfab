/**
 * Lower bounds on real routing data (read from ../shared/data when present, skipped otherwise).
 *
 * 1. Max load: for every MoE layer of the DeepSeek-V3 SGLang counts and three cluster shapes, the
 *    bound of `maxLoadLowerBound` against EPLB's max load (default dispatch, exact count loads; and
 *    EPLB's own even-split model), with the model's 8 groups (hierarchical policy when the nodes
 *    divide the groups) and with 1 group (global policy): how far EPLB is from the bound, and which
 *    part of the bound binds.
 *    EP144 (18 x 8 H800, 2 slots per GPU, every V3 counts file): EPLB's and our `balance` plan's
 *    max load over the bound without the two-slot pairing part (`old`: average, replica share,
 *    pigeonhole) and with it (`new`), median over layers.
 * 2. Traffic: on DeepSeek-V2-Lite traces (one middle layer, requests round-robin over GPUs, normal
 *    mode), `trafficLowerBound` (LP relaxation on the heaviest sets within --nnz, and the Lagrangian
 *    bound on every set; one replica) against EPLB's inter-node bytes, with the solve time.
 *
 * Usage: node dist/bench/bounds.js [--layer 13] [--nnz 30000]
 * Prints tables and writes bench/results/bounds.json.
 */
import { readdirSync } from 'node:fs';
import { scorePlacement } from '../src/bounds/instance.js';
import { maxLoadLowerBoundDetail } from '../src/bounds/max-load.js';
import { trafficLowerBound } from '../src/bounds/traffic.js';
import { countsLoads, evaluate, LayerAccumulator } from '../src/cost.js';
import { defaultDispatch } from '../src/placement.js';
import { MODEL_PRESETS, resolveCluster } from '../src/presets.js';
import { ModelSchema } from '../src/schemas.js';
import { makeShape } from '../src/types.js';
import { loadWorkload } from '../src/workload/index.js';
import { compressTokenSets, expertLoadsOfLayer, tokenSetsOfLayer } from '../src/workload/tokens.js';
import { eplbPlacement } from '../src/solvers/eplb.js';
import { optimize } from '../src/solvers/optimize.js';
import { dataPath, flag, quantile, SPLITS, writeResult } from './common.js';

const out: Record<string, unknown> = { split: SPLITS.bounds };

// ---- 1. max load on DeepSeek-V3 counts
const v3dir = dataPath('deepseek-v3-sglang');
if (v3dir) {
  const model = ModelSchema.parse(MODEL_PRESETS['deepseek-v3']);
  const shapes = [makeShape(4, 8, 9), makeShape(4, 8, 8), makeShape(12, 8, 3)];
  const rows: Record<string, unknown>[] = [];
  const files = ['decode_in1000out1000.json', 'decode_in2000out100.json', 'prefill_in1024.json', 'prefill_in4096.json'];
  for (const [shape, groups] of shapes.flatMap((sh) => [[sh, model.groups ?? 1], [sh, 1]] as const)) {
    const gaps: number[] = [];
    const evenGaps: number[] = [];
    const binds = { average: 0, replicated: 0, pigeonhole: 0, pairing: 0 };
    let layers = 0;
    for (const f of files) {
      const wl = await loadWorkload(`${v3dir}/${f}`, model);
      const loads: Float64Array[] = [];
      for (let l = 0; l < model.moeLayerIds.length; l++) loads.push(expertLoadsOfLayer(wl, l));
      const plan = eplbPlacement(loads, model.experts, shape, groups);
      const acc = new LayerAccumulator(shape);
      for (let l = 0; l < loads.length; l++) {
        let total = 0;
        for (const v of loads[l]) total += v;
        if (total === 0) continue;
        const d = maxLoadLowerBoundDetail(loads[l], shape.numGpus, shape.slotsPerGpu);
        countsLoads(acc, loads[l], plan.phy2log[l], defaultDispatch(plan.phy2log[l], model.experts, shape), model.experts);
        let mx = 0;
        for (const v of acc.load) mx = Math.max(mx, v);
        gaps.push(mx / d.bound - 1);
        // EPLB's own model: every replica gets load / count.
        const cnt = new Int32Array(model.experts);
        for (const e of plan.phy2log[l]) if (e >= 0) cnt[e]++;
        const even = new Float64Array(shape.numGpus);
        plan.phy2log[l].forEach((e, p) => {
          if (e >= 0) even[Math.floor(p / shape.slotsPerGpu)] += loads[l][e] / cnt[e];
        });
        evenGaps.push(Math.max(...even) / d.bound - 1);
        if (d.bound === d.pairing) binds.pairing++;
        else if (d.bound === d.pigeonhole) binds.pigeonhole++;
        else if (d.bound === d.replicated) binds.replicated++;
        else binds.average++;
        layers++;
      }
    }
    rows.push({
      shape: `${shape.nodes}x${shape.gpusPerNode}x${shape.slotsPerGpu}`,
      eplbGroups: groups,
      layers,
      eplbGapMedian: +quantile(gaps, 0.5).toFixed(4),
      eplbGapP90: +quantile(gaps, 0.9).toFixed(4),
      eplbGapMax: +Math.max(...gaps).toFixed(4),
      evenSplitGapMedian: +quantile(evenGaps, 0.5).toFixed(4),
      evenSplitGapMax: +Math.max(...evenGaps).toFixed(4),
      bindsAverage: binds.average,
      bindsReplicated: binds.replicated,
      bindsPigeonhole: binds.pigeonhole,
    });
  }
  console.log('max load: EPLB max load / lower bound - 1 over DeepSeek-V3 layers (4 count files)');
  console.table(rows);
  out.maxLoad = rows;
} else console.log('skipped max load: deepseek-v3-sglang absent');

// ---- 1b. max load at EP144 (2 slots per GPU): the pairing bound

/** Max load / bound - 1 of EPLB and ours, against the old and the new bound, per layer. */
interface Ep144Gaps {
  eplbOld: number[];
  eplbNew: number[];
  oursOld: number[];
  oursNew: number[];
  pairingBinds: number;
}

function ep144Row(file: string, g: Ep144Gaps): Record<string, unknown> {
  const med = (xs: number[]): number => +quantile(xs, 0.5).toFixed(4);
  return {
    file,
    layers: g.eplbOld.length,
    eplbOverOldMedian: med(g.eplbOld),
    eplbOverNewMedian: med(g.eplbNew),
    oursOverOldMedian: med(g.oursOld),
    oursOverNewMedian: med(g.oursNew),
    pairingBinds: g.pairingBinds,
  };
}

if (v3dir) {
  const model = ModelSchema.parse(MODEL_PRESETS['deepseek-v3']);
  const cluster = resolveCluster('h800-18x8', model);
  const shape = makeShape(cluster.nodes, cluster.gpusPerNode, cluster.slotsPerGpu!);
  const rows: Record<string, unknown>[] = [];
  const all: Ep144Gaps = { eplbOld: [], eplbNew: [], oursOld: [], oursNew: [], pairingBinds: 0 };
  let boundSeconds = 0;
  const files = readdirSync(v3dir).filter((f) => f.endsWith('.json')).sort();
  for (const f of files) {
    const wl = await loadWorkload(`${v3dir}/${f}`, model);
    const input = { model, cluster, shape, workload: wl, objective: 'balance' as const, mode: 'normal' as const, seed: 1, workers: 1 };
    const evalOf = (placement: Parameters<typeof evaluate>[0]['placement']) => evaluate({ model, cluster, placement, workload: wl, options: { sampleTokens: 8 } });
    const ours = evalOf((await optimize(input)).placement);
    const loads: Float64Array[] = [];
    for (let l = 0; l < model.moeLayerIds.length; l++) loads.push(expertLoadsOfLayer(wl, l));
    const eplb = evalOf(eplbPlacement(loads, model.experts, shape, model.groups ?? 1));
    const g: Ep144Gaps = { eplbOld: [], eplbNew: [], oursOld: [], oursNew: [], pairingBinds: 0 };
    for (let l = 0; l < loads.length; l++) {
      if (loads[l].every((v) => v === 0)) continue;
      const t0 = performance.now();
      const d = maxLoadLowerBoundDetail(loads[l], shape.numGpus, shape.slotsPerGpu);
      boundSeconds += (performance.now() - t0) / 1000;
      const old = Math.max(d.average, d.replicated, d.pigeonhole);
      g.eplbOld.push(eplb.perLayer[l].maxLoad / old - 1);
      g.eplbNew.push(eplb.perLayer[l].maxLoad / d.bound - 1);
      g.oursOld.push(ours.perLayer[l].maxLoad / old - 1);
      g.oursNew.push(ours.perLayer[l].maxLoad / d.bound - 1);
      if (d.bound > old) g.pairingBinds++;
    }
    rows.push(ep144Row(f, g));
    for (const k of ['eplbOld', 'eplbNew', 'oursOld', 'oursNew'] as const) all[k].push(...g[k]);
    all.pairingBinds += g.pairingBinds;
  }
  rows.push(ep144Row('all', all));
  console.log('max load at EP144 (18x8x2): max load / bound - 1, median over layers; old = average, replica share, pigeonhole; new = with the pairing bound');
  console.table(rows);
  out.ep144 = { rows, boundMsPerLayer: +((1000 * boundSeconds) / all.eplbOld.length).toFixed(2) };
}

// ---- 2. traffic bound on DeepSeek-V2-Lite traces
const v2dir = dataPath('deepseek-v2-lite-traces', 'prompts_0001-1000');
if (v2dir) {
  const model = ModelSchema.parse(MODEL_PRESETS['deepseek-v2-lite']);
  const layer = Number(flag('layer', '13'));
  const nnz = Number(flag('nnz', '30000'));
  const wl = await loadWorkload(v2dir, model);
  if (wl.kind !== 'trace') throw new Error('expected a trace');
  const rows: Record<string, unknown>[] = [];
  for (const shape of [makeShape(2, 4, 8), makeShape(4, 2, 8)]) {
    const tokens = compressTokenSets(tokenSetsOfLayer(wl.trace, layer, shape.numGpus));
    const loads = expertLoadsOfLayer(wl, layer);
    const plan = eplbPlacement([loads], model.experts, shape, 1);
    const inst = { tokens, numExperts: model.experts, shape, model, mode: 'normal' as const, replicas: 'one' as const };
    const eplb = scorePlacement(inst, plan.phy2log[0]);
    for (const method of ['lp', 'lagrangian'] as const) {
      const t0 = performance.now();
      const b = await trafficLowerBound(inst, { method, maxNonzeros: nnz, timeLimitSeconds: 60 });
      const secs = (performance.now() - t0) / 1000;
      rows.push({
        shape: `${shape.nodes}x${shape.gpusPerNode}x${shape.slotsPerGpu}`,
        method: b.method,
        sets: b.setsTotal,
        setsUsed: b.setsUsed,
        status: b.status,
        seconds: +secs.toFixed(2),
        boundGB: +(b.bound / 1e9).toFixed(4),
        eplbGB: +(eplb.interNodeBytes / 1e9).toFixed(4),
        boundOverEplb: +(b.bound / eplb.interNodeBytes).toFixed(4),
      });
    }
  }
  console.log(`traffic: lower bounds vs EPLB inter-node bytes, DeepSeek-V2-Lite layer ${layer} (${wl.trace.numTokens} tokens), normal mode, one replica`);
  console.table(rows);
  out.traffic = rows;
} else console.log('skipped traffic: deepseek-v2-lite-traces/prompts_0001-1000 absent');

console.log(`\nwrote ${writeResult('bounds', out)}`);
