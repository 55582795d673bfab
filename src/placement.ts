/**
 * Placement helpers: replica maps derived from phy2log, the default dispatch rule of the cost
 * model, and the independent validator every plan passes before it is written or used.
 */
import { InputError } from './errors.js';
import type { Placement, Shape } from './types.js';

/** Replica counts of one layer: [E] logcnt from [P] phy2log. */
export function logcntOf(phy2log: Int32Array, numExperts: number): Int32Array {
  const cnt = new Int32Array(numExperts);
  for (let p = 0; p < phy2log.length; p++) {
    const e = phy2log[p];
    if (e >= 0) cnt[e]++;
  }
  return cnt;
}

/**
 * Replica lists of one layer in CSR form: slots of expert e are `slots[start[e] .. start[e+1])`,
 * ascending.
 */
export interface ReplicaIndex {
  start: Int32Array; // [E+1]
  slots: Int32Array; // [replicas]
}

export function replicaIndex(phy2log: Int32Array, numExperts: number): ReplicaIndex {
  const start = new Int32Array(numExperts + 1);
  for (let p = 0; p < phy2log.length; p++) if (phy2log[p] >= 0) start[phy2log[p] + 1]++;
  for (let e = 0; e < numExperts; e++) start[e + 1] += start[e];
  const fill = start.slice(0, numExperts);
  const slots = new Int32Array(start[numExperts]);
  for (let p = 0; p < phy2log.length; p++) {
    const e = phy2log[p];
    if (e >= 0) slots[fill[e]++] = p;
  }
  return { start, slots };
}

/** [E][maxReplicas] log2phy padded with -1 (EPLB / vLLM layout). */
export function log2phyOf(phy2log: Int32Array, numExperts: number): number[][] {
  const idx = replicaIndex(phy2log, numExperts);
  let maxR = 1;
  for (let e = 0; e < numExperts; e++) maxR = Math.max(maxR, idx.start[e + 1] - idx.start[e]);
  const out: number[][] = [];
  for (let e = 0; e < numExperts; e++) {
    const row = new Array<number>(maxR).fill(-1);
    for (let i = idx.start[e]; i < idx.start[e + 1]; i++) row[i - idx.start[e]] = idx.slots[i];
    out.push(row);
  }
  return out;
}

/**
 * The default dispatch rule of the cost model for one layer: [NG*E] slot used by source GPU g for
 * expert e. A replica on g itself (the lowest slot), else the replicas C on g's node ->
 * C[g mod |C|], else all replicas R (ascending) -> R[g mod |R|]. Experts without a replica get -1.
 */
export function defaultDispatch(phy2log: Int32Array, numExperts: number, shape: Shape): Int32Array {
  const { numGpus, gpusPerNode, slotsPerGpu } = shape;
  const idx = replicaIndex(phy2log, numExperts);
  const out = new Int32Array(numGpus * numExperts);
  // One replica: every rule picks it, for every source (no replica: -1). That row first, copied
  // to every source; then the experts with several replicas, source by source.
  const same = new Int32Array(numExperts);
  for (let e = 0; e < numExperts; e++) same[e] = idx.start[e + 1] > idx.start[e] ? idx.slots[idx.start[e]] : -1;
  for (let g = 0; g < numGpus; g++) out.set(same, g * numExperts);
  // The GPU and node of each replica of the expert at hand.
  const repGpu = new Int32Array(phy2log.length);
  const repNode = new Int32Array(phy2log.length);
  for (let e = 0; e < numExperts; e++) {
    const a = idx.start[e];
    const b = idx.start[e + 1];
    const r = b - a;
    if (r <= 1) continue;
    for (let i = 0; i < r; i++) {
      repGpu[i] = Math.floor(idx.slots[a + i] / slotsPerGpu);
      repNode[i] = Math.floor(repGpu[i] / gpusPerNode);
    }
    for (let g = 0; g < numGpus; g++) {
      const node = Math.floor(g / gpusPerNode);
      let own = -1;
      let onNode = 0;
      for (let i = 0; i < r; i++) {
        if (repGpu[i] === g) {
          own = idx.slots[a + i];
          break;
        }
        if (repNode[i] === node) onNode++;
      }
      if (own >= 0) {
        out[g * numExperts + e] = own;
        continue;
      }
      if (onNode > 0) {
        let want = g % onNode;
        for (let i = 0; i < r; i++) {
          if (repNode[i] === node) {
            if (want === 0) {
              out[g * numExperts + e] = idx.slots[a + i];
              break;
            }
            want--;
          }
        }
        continue;
      }
      out[g * numExperts + e] = idx.slots[a + (g % r)];
    }
  }
  return out;
}

/**
 * The dispatch ([NG*E] slot per source GPU and expert) in which the replica in slot p serves
 * `shares[p]` source GPUs (the shares of an expert's replicas sum to NG). Sources are served by a
 * replica on their own GPU first, then on their own node, then by the replica with the most
 * share left (lowest slot on ties).
 */
export function dispatchOfShares(phy2log: Int32Array, shares: Int32Array, numExperts: number, shape: Shape): Int32Array {
  const { numGpus: NG, gpusPerNode: GPN, slotsPerGpu: S } = shape;
  const E = numExperts;
  const idx = replicaIndex(phy2log, E);
  const out = new Int32Array(NG * E).fill(-1);
  const left = Int32Array.from(shares);
  for (let e = 0; e < E; e++) {
    const a = idx.start[e];
    const b = idx.start[e + 1];
    let total = 0;
    for (let i = a; i < b; i++) total += left[idx.slots[i]];
    if (b === a || total !== NG) {
      if (b > a) throw new InputError(`expert ${e}: replica shares sum to ${total}, expected ${NG} sources`, { field: 'shares' });
      continue;
    }
    // Pass 0: own GPU; pass 1: own node; pass 2: anywhere.
    for (let pass = 0; pass < 3; pass++) {
      for (let g = 0; g < NG; g++) {
        if (out[g * E + e] >= 0) continue;
        let pick = -1;
        for (let i = a; i < b; i++) {
          const p = idx.slots[i];
          if (left[p] === 0) continue;
          const gpu = Math.floor(p / S);
          const ok = pass === 2 || (pass === 0 ? gpu === g : Math.floor(gpu / GPN) === Math.floor(g / GPN));
          if (ok && (pick < 0 || left[p] > left[pick])) pick = p;
        }
        if (pick < 0) continue;
        left[pick]--;
        out[g * E + e] = pick;
      }
    }
  }
  return out;
}

/** The dispatch table of layer l: the plan's own, or the default rule. */
export function dispatchOf(placement: Placement, l: number): Int32Array {
  return placement.dispatch?.[l] ?? defaultDispatch(placement.phy2log[l], placement.numExperts, placement.shape);
}

/**
 * Independent validator: every expert has a replica, slots hold at most one valid expert, the
 * shape is consistent and every dispatch entry points at a replica of the right expert. With
 * `strict`, also no GPU holds two replicas of one expert while the expert has no more replicas
 * than GPUs (moe-placer's own solvers meet this; EPLB and engine maps need not, and are accepted
 * without it). Throws InputError naming the field.
 */
export function validatePlacement(placement: Placement, where = 'plan', strict = false): void {
  const { numLayers, numExperts, shape } = placement;
  const problems: string[] = [];
  const P = shape.numSlots;
  if (placement.phy2log.length !== numLayers) problems.push(`${where}.phy2log: ${placement.phy2log.length} layers, expected ${numLayers}`);
  if (numExperts > P) problems.push(`${where}.phy2log: ${numExperts} experts do not fit in ${P} slots`);
  for (let l = 0; l < placement.phy2log.length && problems.length < 20; l++) {
    const row = placement.phy2log[l];
    if (row.length !== P) {
      problems.push(`${where}.phy2log[${l}]: ${row.length} slots, expected ${P} (${shape.numGpus} GPUs x ${shape.slotsPerGpu})`);
      continue;
    }
    const cnt = new Int32Array(numExperts);
    for (let p = 0; p < P; p++) {
      const e = row[p];
      if (!Number.isInteger(e) || e < -1 || e >= numExperts) problems.push(`${where}.phy2log[${l}][${p}]: expert ${e} out of range -1..${numExperts - 1}`);
      else if (e >= 0) cnt[e]++;
    }
    for (let e = 0; e < numExperts; e++) {
      if (cnt[e] === 0) problems.push(`${where}.phy2log[${l}]: expert ${e} has no replica`);
    }
    // Two replicas of one expert on a GPU are allowed only when more replicas than GPUs exist.
    const S = shape.slotsPerGpu;
    for (let g = 0; strict && g < shape.numGpus && problems.length < 20; g++) {
      for (let i = 0; i < S; i++) {
        const e = row[g * S + i];
        if (e < 0) continue;
        for (let j = i + 1; j < S; j++) {
          if (row[g * S + j] === e && cnt[e] <= shape.numGpus) {
            problems.push(`${where}.phy2log[${l}]: GPU ${g} holds expert ${e} twice while other GPUs could hold it`);
          }
        }
      }
    }
    const d = placement.dispatch?.[l];
    if (d) {
      if (d.length !== shape.numGpus * numExperts) {
        problems.push(`${where}.dispatch[${l}]: ${d.length} entries, expected ${shape.numGpus} x ${numExperts}`);
      } else {
        for (let g = 0; g < shape.numGpus && problems.length < 20; g++) {
          for (let e = 0; e < numExperts; e++) {
            const p = d[g * numExperts + e];
            if (!(p >= 0 && p < P) || row[p] !== e) {
              problems.push(`${where}.dispatch[${l}][${g}][${e}]: slot ${p} does not hold expert ${e}`);
              break;
            }
          }
        }
      }
    }
  }
  if (placement.dispatch && placement.dispatch.length !== numLayers) {
    problems.push(`${where}.dispatch: ${placement.dispatch.length} layers, expected ${numLayers}`);
  }
  if (problems.length > 0) throw new InputError(problems.slice(0, 20));
}
