/**
 * Aligning a new placement with the running one: the same plan, relabelled so that as many experts
 * as possible stay in the slots that already hold them.
 *
 * The cost model treats nodes alike and the GPUs of a node alike, so a placement can be relabelled
 * by a permutation of the nodes and, inside each node, of its GPUs without changing what it costs
 * on a workload whose sources are spread evenly (counts, or sampled tokens; on a trace, whose tokens
 * have fixed source GPUs, the relabelled plan is scored again). The best relabelling is found
 * exactly, lexicographically: most experts kept on the same GPU, then most experts that can be
 * copied from the same node (NVLink rather than RDMA). Inside a node pair this is an assignment
 * problem over GPUs; over nodes it is an assignment problem whose values are the inner optima.
 * Inside a GPU, an expert that stays keeps its slot index (what vLLM's
 * `preserve_intragpu_slots` does for EPLB), so engines need not touch it.
 */
import type { Shape } from '../types.js';
import { maxAssignment } from './assignment.js';

export interface AlignedLayer {
  /** [P] the new layer's experts in their aligned slots. */
  phy2log: Int32Array;
  /** [NG*E] the new layer's dispatch in aligned slot and source labels, or null. */
  dispatch: Int32Array | null;
}

/** [NG*E] replicas of each expert per GPU. */
function gpuCounts(row: Int32Array, E: number, shape: Shape): Int32Array {
  const c = new Int32Array(shape.numGpus * E);
  for (let p = 0; p < row.length; p++) if (row[p] >= 0) c[Math.floor(p / shape.slotsPerGpu) * E + row[p]]++;
  return c;
}

/**
 * The GPU relabelling gpuMap[newGpu] = physical GPU that best keeps `oldRow`'s experts in place
 * for `newRow`, or the identity when `relabel` is false.
 */
export function alignGpus(oldRow: Int32Array, newRow: Int32Array, E: number, shape: Shape, relabel: boolean): Int32Array {
  const { nodes, gpusPerNode: GPN, numGpus: NG } = shape;
  const map = new Int32Array(NG);
  if (!relabel) {
    for (let g = 0; g < NG; g++) map[g] = g;
    return map;
  }
  const cOld = gpuCounts(oldRow, E, shape);
  const cNew = gpuCounts(newRow, E, shape);
  const S = shape.slotsPerGpu;
  // Sum over experts of min(new count on a, old count on b): only a's own experts can count.
  const overlap = (a: number, b: number): number => {
    let s = 0;
    for (let i = 0; i < S; i++) {
      const e = newRow[a * S + i];
      if (e < 0) continue;
      let seen = false;
      for (let j = 0; j < i && !seen; j++) seen = newRow[a * S + j] === e;
      if (!seen) s += Math.min(cNew[a * E + e], cOld[b * E + e]);
    }
    return s;
  };
  // Node-level availability: experts of new node n found anywhere on old node m.
  const nodeCount = (c: Int32Array, n: number): Int32Array => {
    const out = new Int32Array(E);
    for (let i = 0; i < GPN; i++) for (let e = 0; e < E; e++) out[e] += c[(n * GPN + i) * E + e];
    return out;
  };
  const newNode = Array.from({ length: nodes }, (_, n) => nodeCount(cNew, n));
  const oldNode = Array.from({ length: nodes }, (_, m) => nodeCount(cOld, m));
  // A kept GPU slot outweighs every NVLink source of the node pair.
  const big = shape.slotsPerGpu * GPN + 1;
  const inner: Int32Array[] = [];
  const outer = new Float64Array(nodes * nodes);
  const ov = new Float64Array(GPN * GPN);
  for (let n = 0; n < nodes; n++) {
    for (let m = 0; m < nodes; m++) {
      for (let i = 0; i < GPN; i++) for (let j = 0; j < GPN; j++) ov[i * GPN + j] = overlap(n * GPN + i, m * GPN + j);
      const perm = maxAssignment(ov, GPN);
      let kept = 0;
      for (let i = 0; i < GPN; i++) kept += ov[i * GPN + perm[i]];
      let avail = 0;
      for (let e = 0; e < E; e++) avail += Math.min(newNode[n][e], oldNode[m][e]);
      outer[n * nodes + m] = big * kept + avail;
      inner[n * nodes + m] = perm;
    }
  }
  const nodeMap = maxAssignment(outer, nodes);
  for (let n = 0; n < nodes; n++) {
    const m = nodeMap[n];
    const perm = inner[n * nodes + m];
    for (let i = 0; i < GPN; i++) map[n * GPN + i] = m * GPN + perm[i];
  }
  return map;
}

/**
 * `newRow` (and its dispatch) relabelled by `gpuMap`, with every expert that the same physical GPU
 * already holds in `oldRow` put back into its old slot.
 */
export function applyAlignment(
  oldRow: Int32Array,
  newRow: Int32Array,
  newDispatch: Int32Array | null,
  gpuMap: Int32Array,
  E: number,
  shape: Shape,
): AlignedLayer {
  const S = shape.slotsPerGpu;
  const NG = shape.numGpus;
  const out = new Int32Array(newRow.length).fill(-1);
  const slotMap = new Int32Array(newRow.length); // new slot -> aligned slot
  const taken = new Uint8Array(S);
  const placed = new Uint8Array(S); // new slots of GPU a already placed
  for (let a = 0; a < NG; a++) {
    const b = gpuMap[a];
    taken.fill(0);
    placed.fill(0);
    // Experts the physical GPU already holds keep their slot.
    for (let i = 0; i < S; i++) {
      const e = newRow[a * S + i];
      if (e < 0) continue;
      for (let j = 0; j < S; j++) {
        if (!taken[j] && oldRow[b * S + j] === e) {
          taken[j] = 1;
          placed[i] = 1;
          out[b * S + j] = e;
          slotMap[a * S + i] = b * S + j;
          break;
        }
      }
    }
    // The rest fill the free slots in order (empty new slots last).
    let j = 0;
    for (const wantEmpty of [false, true]) {
      for (let i = 0; i < S; i++) {
        if (placed[i] || (newRow[a * S + i] < 0) !== wantEmpty) continue;
        while (taken[j]) j++;
        taken[j] = 1;
        out[b * S + j] = newRow[a * S + i];
        slotMap[a * S + i] = b * S + j;
      }
    }
  }
  let dispatch: Int32Array | null = null;
  if (newDispatch) {
    dispatch = new Int32Array(newDispatch.length);
    for (let a = 0; a < NG; a++) {
      const b = gpuMap[a];
      for (let e = 0; e < E; e++) {
        const s = newDispatch[a * E + e];
        dispatch[b * E + e] = s < 0 ? -1 : slotMap[s];
      }
    }
  }
  return { phy2log: out, dispatch };
}
