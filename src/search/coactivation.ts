/**
 * The co-activation graph of one MoE layer: vertex = logical expert (load = weighted tokens that
 * chose it), edge {a, b} = weighted tokens that chose both a and b. Used for clustering only (a
 * construction start of the optimizer, and a reference partition by METIS), never in a hot loop.
 *
 * Node keys are expert ids as strings ('0'..'E-1'), all E present (in ascending order, so that
 * graph traversals are in expert order); results are mapped back to typed arrays indexed by expert.
 */
import Graph from 'graphology';
import louvain from 'graphology-communities-louvain';
import { InputError } from '../errors.js';
import { Rng } from '../rng.js';
import type { TokenSets } from '../types.js';

/** Node attributes of the co-activation graph. */
export interface ExpertAttributes {
  /** Weighted tokens that chose the expert (a token counts once even if it lists it twice). */
  load: number;
}

/** Edge attributes of the co-activation graph. */
export interface CoactivationAttributes {
  /** Weighted tokens that chose both endpoints. */
  weight: number;
}

export type CoactivationGraph = Graph<ExpertAttributes, CoactivationAttributes>;

/**
 * Dense co-activation counts of a layer: `pair[a*E + b]` (a < b only; the rest stays 0) and
 * `load[e]`. O(n k^2) over the token sets, O(E^2) memory.
 * @returns pair [E*E] upper triangle, load [E]
 */
export function coactivationCounts(tokens: TokenSets, numExperts: number): { pair: Float64Array; load: Float64Array } {
  const E = numExperts;
  const { n, k, experts, weight } = tokens;
  const pair = new Float64Array(E * E);
  const load = new Float64Array(E);
  for (let i = 0; i < n; i++) {
    const w = weight[i];
    const base = i * k;
    for (let a = 0; a < k; a++) {
      const ea = experts[base + a];
      if (ea >= E) throw new InputError(`token set ${i} uses expert ${ea}, but the layer has ${E} experts`, { field: `tokens.experts[${base + a}]` });
      let dup = false;
      for (let b = 0; b < a; b++) if (experts[base + b] === ea) dup = true;
      if (dup) continue; // an expert listed twice counts once
      load[ea] += w;
      for (let b = 0; b < a; b++) {
        const eb = experts[base + b];
        let seen = false;
        for (let c = 0; c < b; c++) if (experts[base + c] === eb) seen = true;
        if (seen) continue;
        if (ea < eb) pair[ea * E + eb] += w;
        else pair[eb * E + ea] += w;
      }
    }
  }
  return { pair, load };
}

/**
 * Undirected co-activation graph of `tokens` ([n] sets of k experts, weighted): nodes '0'..'E-1'
 * with attribute `load`, one edge per pair of experts used together by at least one token with
 * attribute `weight` (summed weight of the tokens using both).
 */
export function coactivationGraph(tokens: TokenSets, numExperts: number): CoactivationGraph {
  const E = numExperts;
  const { pair, load } = coactivationCounts(tokens, E);
  const graph: CoactivationGraph = new Graph<ExpertAttributes, CoactivationAttributes>({ type: 'undirected', multi: false, allowSelfLoops: false });
  for (let e = 0; e < E; e++) graph.addNode(String(e), { load: load[e] });
  for (let a = 0; a < E; a++) {
    for (let b = a + 1; b < E; b++) {
      const w = pair[a * E + b];
      if (w > 0) graph.addUndirectedEdge(String(a), String(b), { weight: w });
    }
  }
  return graph;
}

/** Expert id of a node key, checked against E. */
function expertOf(key: string, E: number): number {
  const e = Number(key);
  if (!Number.isInteger(e) || e < 0 || e >= E || String(e) !== key) {
    throw new InputError(`co-activation graph node '${key}' is not an expert id in 0..${E - 1}`);
  }
  return e;
}

export interface MetisGraphOptions {
  /** Integer weight of the heaviest vertex (loads are scaled by this / max load). Default 1e6. */
  maxVertexWeight?: number;
  /**
   * Total of the integer edge weights, each edge counted once (edge weights are scaled by this /
   * total weight), so that METIS's 32-bit sums cannot overflow. Default 1e8.
   */
  totalEdgeWeight?: number;
}

/**
 * The graph in METIS's graph-file format (as read by gpmetis): header `n m 011` (vertex weights and
 * edge weights), then line i (1-based vertex i = expert i-1) `vwgt v1 w1 v2 w2 ...` with neighbours
 * ascending. Vertex weight = max(1, round(load * maxVertexWeight / maxLoad)); edge weight =
 * max(1, round(weight * totalEdgeWeight / sum of weights)) (edges of weight <= 0 are left out).
 */
export function toMetisGraph(graph: CoactivationGraph, numExperts: number, opts: MetisGraphOptions = {}): string {
  const E = numExperts;
  const maxVertexWeight = opts.maxVertexWeight ?? 1e6;
  const totalEdgeWeight = opts.totalEdgeWeight ?? 1e8;
  if (!(maxVertexWeight >= 1) || !(totalEdgeWeight >= 1)) throw new InputError('toMetisGraph: maxVertexWeight and totalEdgeWeight must be >= 1');
  const load = new Float64Array(E);
  graph.forEachNode((key, attr) => {
    load[expertOf(key, E)] = attr.load;
  });
  const adj = new Float64Array(E * E); // symmetric dense weights
  let sumW = 0;
  graph.forEachEdge((_edge, attr, s, t) => {
    const a = expertOf(s, E);
    const b = expertOf(t, E);
    if (a === b || !(attr.weight > 0)) return;
    adj[a * E + b] += attr.weight;
    adj[b * E + a] += attr.weight;
    sumW += attr.weight;
  });
  let maxLoad = 0;
  for (let e = 0; e < E; e++) if (load[e] > maxLoad) maxLoad = load[e];
  const vs = maxLoad > 0 ? maxVertexWeight / maxLoad : 0;
  const es = sumW > 0 ? totalEdgeWeight / sumW : 0;
  let m = 0;
  for (let a = 0; a < E; a++) for (let b = a + 1; b < E; b++) if (adj[a * E + b] > 0) m++;
  const lines: string[] = [`${E} ${m} 011`];
  for (let a = 0; a < E; a++) {
    const parts: number[] = [Math.max(1, Math.round(load[a] * vs))];
    for (let b = 0; b < E; b++) {
      const w = adj[a * E + b];
      if (w > 0) parts.push(b + 1, Math.max(1, Math.round(w * es)));
    }
    lines.push(parts.join(' '));
  }
  return lines.join('\n') + '\n';
}

/**
 * A METIS partition file (one part id per line, line i = vertex i) as [n] part ids.
 * Blank lines at the end are ignored; anything else that is not a non-negative integer, or a
 * count other than n, is an InputError naming the line.
 */
export function parseMetisPartition(text: string, n: number, file?: string): Int32Array {
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  if (lines.length !== n) throw new InputError(`METIS partition has ${lines.length} lines, expected ${n} (one per vertex)`, file !== undefined ? { file } : {});
  const part = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const s = lines[i].trim();
    if (!/^\d+$/.test(s) || Number(s) > 0x7fffffff) {
      throw new InputError(`expected a part id (non-negative integer), got '${lines[i]}'`, { ...(file !== undefined ? { file } : {}), line: i + 1 });
    }
    part[i] = Number(s);
  }
  return part;
}

/**
 * Louvain communities of the co-activation graph (modularity on edge `weight`), seeded.
 * @returns [E] community of each expert, renumbered 0.. in order of first appearance by expert id.
 */
export function louvainCommunities(graph: CoactivationGraph, seed: number, resolution = 1): Int32Array {
  const rng = new Rng(seed);
  const mapping = louvain(graph, { rng: () => rng.next(), resolution, getEdgeWeight: 'weight' });
  const E = graph.order;
  const raw = new Int32Array(E);
  graph.forEachNode((key) => {
    raw[expertOf(key, E)] = mapping[key];
  });
  const renum = new Map<number, number>();
  const out = new Int32Array(E);
  for (let e = 0; e < E; e++) {
    let c = renum.get(raw[e]);
    if (c === undefined) {
      c = renum.size;
      renum.set(raw[e], c);
    }
    out[e] = c;
  }
  return out;
}
