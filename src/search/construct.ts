/**
 * construct: node-level starting layouts of the traffic search (which nodes hold which experts,
 * `has[e*N+m]`), each a pure function of typed arrays.
 * - `nodeStartFrom`: the nodes of a finished GPU-level layout (the balanced packing, EPLB).
 * - `communityStart`: expert communities (routing groups or Louvain) packed onto nodes.
 * - `growingStart`: greedy growing: each node in turn grows from its heaviest free expert by the
 *   expert most co-activated with what it holds, up to its share of the load.
 */
import type { Shape, TokenSets } from '../types.js';
import { coactivationCounts, coactivationGraph, louvainCommunities } from './coactivation.js';

export interface NodeStart {
  /** [E*N] 1 when node m holds a replica of e. */
  has: Uint8Array;
  /** [N*E] node serving (source node n, expert e), or undefined (the state picks). */
  srv?: Int32Array;
}

/** Node-level start from a layout: has from its replicas, serving from its dispatch. */
export function nodeStartFrom(phy2log: Int32Array, dispatch: Int32Array, E: number, shape: Shape): NodeStart {
  const { nodes: N, gpusPerNode: G, slotsPerGpu: S } = shape;
  const has = new Uint8Array(E * N);
  for (let p = 0; p < shape.numSlots; p++) {
    const e = phy2log[p];
    if (e >= 0) has[e * N + Math.floor(p / S / G)] = 1;
  }
  const srv = new Int32Array(N * E).fill(-1);
  for (let n = 0; n < N; n++) {
    for (let e = 0; e < E; e++) {
      const slot = dispatch[n * G * E + e];
      if (slot >= 0) srv[n * E + e] = Math.floor(slot / S / G);
    }
  }
  return { has, srv };
}

/**
 * Node-level start from expert communities ([E] community id): communities by load descending,
 * each onto the least-loaded node with room for all of it; a community that fits nowhere is dealt
 * expert by expert (heaviest first) onto the least-loaded nodes with a free slot.
 */
export function communityStart(comm: Int32Array, load: Float64Array, nodes: number, slotsPerNode: number): Uint8Array {
  const E = comm.length;
  const C = Math.max(...comm) + 1;
  const cLoad = new Float64Array(C);
  const members: number[][] = Array.from({ length: C }, () => []);
  for (let e = 0; e < E; e++) {
    cLoad[comm[e]] += load[e];
    members[comm[e]].push(e);
  }
  const nodeLoad = new Float64Array(nodes);
  const used = new Int32Array(nodes);
  const has = new Uint8Array(E * nodes);
  const order = Array.from({ length: C }, (_, c) => c).sort((a, b) => cLoad[b] - cLoad[a] || a - b);
  const place = (e: number, m: number): void => {
    has[e * nodes + m] = 1;
    used[m]++;
    nodeLoad[m] += load[e];
  };
  for (const c of order) {
    const size = members[c].length;
    let best = -1;
    for (let m = 0; m < nodes; m++) if (used[m] + size <= slotsPerNode && (best < 0 || nodeLoad[m] < nodeLoad[best])) best = m;
    if (best >= 0) {
      for (const e of members[c]) place(e, best);
      continue;
    }
    for (const e of members[c].sort((a, b) => load[b] - load[a] || a - b)) {
      let m2 = -1;
      for (let m = 0; m < nodes; m++) if (used[m] < slotsPerNode && (m2 < 0 || nodeLoad[m] < nodeLoad[m2])) m2 = m;
      place(e, m2);
    }
  }
  return has;
}

/** Expert communities of a layer: the model's routing groups, else Louvain on co-activation. */
export function communities(tokens: TokenSets, E: number, groups: number | undefined, seed: number): Int32Array {
  if (groups !== undefined && groups > 1) return Int32Array.from({ length: E }, (_, e) => Math.floor(e / (E / groups)));
  return louvainCommunities(coactivationGraph(tokens, E), seed);
}

/**
 * Greedy growing start: nodes take turns (the lightest first); a node with nothing takes the
 * heaviest unplaced expert, else the unplaced expert with the most co-activation with the experts
 * it holds (per unit of load), while it stays under its share of the load and has a free slot.
 * Experts left when every node is at its share go to the least-loaded node with a free slot.
 */
export function growingStart(tokens: TokenSets, load: Float64Array, nodes: number, slotsPerNode: number): Uint8Array {
  const E = load.length;
  const { pair } = coactivationCounts(tokens, E);
  let total = 0;
  for (let e = 0; e < E; e++) total += load[e];
  const share = total / nodes;
  const has = new Uint8Array(E * nodes);
  const placed = new Uint8Array(E);
  const nodeLoad = new Float64Array(nodes);
  const used = new Int32Array(nodes);
  // link[m*E+e]: co-activation of e with the experts node m holds.
  const link = new Float64Array(nodes * E);
  const full = new Uint8Array(nodes);
  const place = (e: number, m: number): void => {
    has[e * nodes + m] = 1;
    placed[e] = 1;
    used[m]++;
    nodeLoad[m] += load[e];
    for (let f = 0; f < E; f++) link[m * E + f] += e < f ? pair[e * E + f] : pair[f * E + e];
  };
  let left = E;
  while (left > 0) {
    let m = -1;
    for (let x = 0; x < nodes; x++) if (!full[x] && (m < 0 || nodeLoad[x] < nodeLoad[m])) m = x;
    if (m < 0) break;
    let best = -1;
    let bestScore = -Infinity;
    for (let e = 0; e < E; e++) {
      if (placed[e] || nodeLoad[m] + load[e] > share * 1.001) continue;
      const score = used[m] === 0 ? load[e] : link[m * E + e] / Math.max(load[e], 1e-12);
      if (score > bestScore) {
        bestScore = score;
        best = e;
      }
    }
    if (best < 0 || used[m] >= slotsPerNode) {
      full[m] = 1;
      continue;
    }
    place(best, m);
    left--;
  }
  for (let e = 0; e < E; e++) {
    if (placed[e]) continue;
    let m = -1;
    for (let x = 0; x < nodes; x++) if (used[x] < slotsPerNode && (m < 0 || nodeLoad[x] < nodeLoad[m])) m = x;
    place(e, m);
  }
  return has;
}
