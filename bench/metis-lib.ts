/**
 * METIS reference placement (`gpmetis`, Debian package `metis`) for the benchmarks: per layer a
 * k-way partition of the co-activation graph into `nodes` parts (vertex weight = expert load, edge
 * weight = tokens using both experts, imbalance `ufactor`/1000, seed 1); experts go to their
 * part's node (a part with more experts than the node's slots gives its lightest experts to the
 * node with room it is most co-activated with); inside each node the free slots take replicas
 * greedily by load / count (at most one replica per GPU), packed onto the node's GPUs by LPT on
 * load / count. Dispatch follows the cost model's default rule.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { coactivationCounts, coactivationGraph, parseMetisPartition, toMetisGraph } from '../src/search/coactivation.js';
import type { Placement, Shape, Trace } from '../src/types.js';
import { tokenSetsOfLayer } from '../src/workload/tokens.js';

/** Whether `gpmetis` can be run. */
export function hasGpmetis(): boolean {
  try {
    execFileSync('gpmetis', ['-help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Experts of each part moved so that no node holds more than `cap` experts: a part over capacity
 * gives its lightest experts, one at a time, to the node with room that shares the most
 * co-activation with the expert (ties: the lighter node, then the lower id).
 * @param part [E] node of each expert, modified in place
 * @param load [E], pair [E*E] upper triangle of co-activation weights
 */
export function fitCapacity(part: Int32Array, load: Float64Array, pair: Float64Array, nodes: number, cap: number): number {
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
export function layoutFromParts(part: Int32Array, load: Float64Array, shape: Shape): Int32Array {
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
export function metisPlacement(trace: Trace, shape: Shape, tmp: string, ufactor = 30): { placement: Placement; moved: number; cutFraction: number } {
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
    execFileSync('gpmetis', ['-seed=1', `-ufactor=${ufactor}`, file, String(shape.nodes)], { stdio: 'ignore' });
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

