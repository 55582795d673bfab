/**
 * Feasibility: does the model fit the cluster, does the workload match the model (InputError / InfeasibleError naming the numbers).
 */
import { InfeasibleError, InputError } from '../errors.js';
import type { Cluster, Model } from '../schemas.js';
import type { Workload } from '../types.js';


/** Bytes with a decimal unit (B, kB, MB, GB, TB) and 3 significant digits: `14.9 GB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 999.5 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  if (u === 0) return `${Math.round(v)} B`;
  return `${v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2)} ${units[u]}`;
}

const gb = formatBytes;

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** [L] and E of a workload. */
export function workloadShape(workload: Workload): { layers: number; experts: number; topK?: number } {
  return workload.kind === 'trace'
    ? { layers: workload.trace.numLayers, experts: workload.trace.numExperts, topK: workload.trace.topK }
    : { layers: workload.counts.numLayers, experts: workload.counts.numExperts };
}

/**
 * Check, before any work, that `model` fits `cluster` (and `workload`, when given): at least one
 * slot per logical expert, the slots' weights within the expert memory budget and the GPU memory,
 * at most 65535 GPUs, and a workload with the model's MoE layers, experts and top-k. Throws an
 * InfeasibleError (exit 2) giving the numbers that do not fit and what would fit, one line each.
 * A `cluster.expertMemoryBytes` of exactly `slotsPerGpu` slots is taken for the default budget
 * (slots given, no budget), so only the GPU memory limits the slots suggested.
 */
export function checkFeasibility(model: Model, cluster: Cluster, workload?: Workload): void {
  const problems: string[] = [];
  const E = model.experts;
  const L = model.moeLayerIds.length;
  const { nodes, gpusPerNode: G, slotsPerGpu: S } = cluster;
  const NG = nodes * G;
  const P = NG * S;
  const bytesPerSlot = L * model.expertBytes;
  // A budget of exactly S slots is the default one (slots given, no budget): only the GPU limits.
  const derived = cluster.expertMemoryBytes === S * bytesPerSlot;
  const budget = derived ? cluster.gpu.memoryBytes : cluster.expertMemoryBytes;
  const memory = Math.min(budget, cluster.gpu.memoryBytes);
  const memoryWhat =
    budget < cluster.gpu.memoryBytes ? `the expert memory budget of ${gb(budget)} per GPU` : `${cluster.gpu.name} memory of ${gb(cluster.gpu.memoryBytes)}`;
  const maxSlots = Math.floor(memory / bytesPerSlot);
  const minSlots = Math.ceil(E / NG);
  if (E > P) {
    let fix = `use --slots-per-gpu ${minSlots} or more`;
    if (minSlots > maxSlots) {
      fix =
        maxSlots > 0
          ? `but only ${plural(maxSlots, 'slot')} per GPU fit in ${memoryWhat}: use --nodes ${Math.ceil(Math.ceil(E / maxSlots) / G)} or more (with --slots-per-gpu ${maxSlots})`
          : `and not one slot (${gb(bytesPerSlot)}) fits in ${memoryWhat}`;
    }
    problems.push(`${E} experts need at least ${E} slots; ${nodes}x${G} GPUs x ${plural(S, 'slot')} = ${P}; ${fix}`);
  }
  const need = S * bytesPerSlot;
  if (need > Math.min(cluster.expertMemoryBytes, cluster.gpu.memoryBytes)) {
    problems.push(
      `${plural(S, 'slot')} per GPU x ${L} MoE layers x ${gb(model.expertBytes)} per expert = ${gb(need)} per GPU exceed ${memoryWhat}; ` +
        (maxSlots >= minSlots
          ? `use --slots-per-gpu ${maxSlots} or less`
          : maxSlots > 0
            ? `at most ${plural(maxSlots, 'slot')} per GPU fit, and ${E} experts then need ${Math.ceil(E / maxSlots)} GPUs: use --nodes ${Math.ceil(Math.ceil(E / maxSlots) / G)} or more`
            : `not one slot (${gb(bytesPerSlot)}) fits`),
    );
  }
  if (NG > 65535) problems.push(`${NG} GPUs: at most 65535 are supported`);
  if (workload) problems.push(...workloadProblems(model, workload));
  if (problems.length > 0) throw new InfeasibleError(problems);
}

function workloadProblems(model: Model, workload: Workload): string[] {
  const L = model.moeLayerIds.length;
  const E = model.experts;
  const w = workloadShape(workload);
  const name = workload.meta.path ?? `the ${workload.meta.format} workload`;
  if (w.layers !== L || w.experts !== E) return [`${name} has ${w.layers} MoE layers x ${w.experts} experts; model ${model.name} has ${L} x ${E}`];
  if (w.topK !== undefined && w.topK !== model.topK) return [`${name} routes each token to ${w.topK} experts; model ${model.name} has top-${model.topK}`];
  return [];
}

/** Check that `workload` has the MoE layers, experts and top-k of `model` (InputError otherwise). */
export function checkWorkload(model: Model, workload: Workload): void {
  const problems = workloadProblems(model, workload);
  if (problems.length > 0) throw new InputError(problems);
}
