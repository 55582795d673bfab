/** Small fixtures shared by the plan and format tests (not a test file itself). */
import { roundRobinPlacement } from '../src/solvers/round-robin.js';
import { evaluate, type Evaluation } from '../src/cost.js';
import { Rng } from '../src/rng.js';
import { toyCluster } from './cost-helpers.js';
import { ModelSchema, type Cluster, type Model } from '../src/schemas.js';
import { makeShape, type Placement, type Shape, type Trace, type Workload } from '../src/types.js';
import { countsOfTrace } from '../src/workload/tokens.js';

/** 3 engine layers, MoE on layers 1 and 2, 8 experts, top-2 (model JSON as a user writes it). */
export const TINY_MODEL = {
  name: 'tiny',
  numHiddenLayers: 3,
  moeLayerIds: [1, 2],
  experts: 8,
  topK: 2,
  hiddenSize: 16,
  expertBytes: 1000,
  dispatchBytesPerToken: 10,
  combineBytesPerToken: 20,
  expertFlopsPerToken: 1e6,
};
/** 2 nodes x 2 GPUs x 3 slots = 12 slots per layer (cluster JSON). */
export const TINY_CLUSTER = { name: 'tiny-cluster', nodes: 2, gpusPerNode: 2, slotsPerGpu: 3, gpu: 'H100' };

export function tinyModel(): Model {
  return ModelSchema.parse(TINY_MODEL);
}

/** The toy cluster of the cost tests (cost-helpers.ts) named `tiny-cluster`, 1 MB per expert, GPU figures with sources. */
export function tinyCluster(shape: Shape): Cluster {
  const c = toyCluster(shape);
  return { ...c, name: 'tiny-cluster', expertMemoryBytes: 1e6, gpu: { ...c.gpu, sources: { rdmaBandwidth: 'made up', memoryBytes: 'made up too' } } };
}

/** A seeded random top-k trace: T tokens over `requests` requests, skewed toward low expert ids. */
export function randomTrace(L: number, E: number, k: number, T: number, requests: number, seed: number): Trace {
  const rng = new Rng(seed);
  const experts: Uint16Array[] = [];
  for (let l = 0; l < L; l++) {
    const ex = new Uint16Array(T * k);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < k; j++) {
        let e: number;
        do e = Math.min(E - 1, Math.floor(E * rng.next() * rng.next() * 1.6));
        while (ex.subarray(t * k, t * k + j).includes(e));
        ex[t * k + j] = e;
      }
    }
    experts.push(ex);
  }
  return {
    numLayers: L,
    numExperts: E,
    topK: k,
    numTokens: T,
    numRequests: requests,
    request: Uint32Array.from({ length: T }, (_, t) => t % requests),
    rank: new Int32Array(T).fill(-1),
    weight: null,
    experts,
  };
}

export interface Fixture {
  model: Model;
  cluster: Cluster;
  shape: Shape;
  workload: Workload;
  placement: Placement;
  evaluation: Evaluation;
}

/** tiny model on 2 nodes x 2 GPUs x 3 slots, round-robin placement of a random trace, evaluated with the traffic matrix. */
export function tinyFixture(seed = 1): Fixture {
  const model = tinyModel();
  const shape = makeShape(2, 2, 3);
  const cluster = tinyCluster(shape);
  const trace = randomTrace(2, 8, 2, 200, 10, seed);
  const workload: Workload = { kind: 'trace', trace, meta: { format: 'test' } };
  const placement = roundRobinPlacement(countsOfTrace(trace).counts, 8, shape);
  const evaluation = evaluate({ model, cluster, placement, workload, trafficMatrix: true });
  return { model, cluster, shape, workload, placement, evaluation };
}
