/** Small fixtures shared by the cost-model tests (not a test file itself). */
import { ModelSchema, type Cluster, type Model } from '../src/schemas.js';
import type { Placement, Shape, TokenSets, Trace, Workload } from '../src/types.js';

/** A toy model: dispatch 10 B, combine 20 B per token, 1 MFLOP per (token, expert). */
export function toyModel(experts: number, topK: number): Model {
  return ModelSchema.parse({
    name: 'toy',
    numHiddenLayers: 4,
    moeLayerIds: [0, 1, 2, 3],
    experts,
    topK,
    hiddenSize: 8,
    expertBytes: 1000,
    dispatchBytesPerToken: 10,
    combineBytesPerToken: 20,
    expertFlopsPerToken: 1e6,
  });
}

/** A toy cluster: RDMA 100 B/s, NVLink 1000 B/s, 1 GFLOP/s BF16. */
export function toyCluster(shape: Shape): Cluster {
  return {
    name: 'toy',
    nodes: shape.nodes,
    gpusPerNode: shape.gpusPerNode,
    slotsPerGpu: shape.slotsPerGpu,
    expertMemoryBytes: 1e9,
    gpu: {
      name: 'toy-gpu',
      memoryBytes: 1e9,
      hbmBandwidth: 1e12,
      fp8Flops: 2e9,
      bf16Flops: 1e9,
      nvlinkBandwidth: 1000,
      rdmaBandwidth: 100,
    },
  };
}

/** TokenSets from plain rows [source, weight, ...experts]. */
export function tokenSets(k: number, rows: number[][]): TokenSets {
  const n = rows.length;
  const experts = new Uint16Array(n * k);
  const source = new Uint16Array(n);
  const weight = new Float64Array(n);
  rows.forEach((r, i) => {
    source[i] = r[0];
    weight[i] = r[1];
    for (let j = 0; j < k; j++) experts[i * k + j] = r[2 + j];
  });
  return { n, k, experts, source, weight };
}

/** A one-or-more-layer trace whose tokens carry explicit ranks; layers[l] = TokenSets of layer l (same sources/weights). */
export function traceOf(numExperts: number, layers: TokenSets[]): Trace {
  const first = layers[0];
  return {
    numLayers: layers.length,
    numExperts,
    topK: first.k,
    numTokens: first.n,
    numRequests: first.n,
    request: Uint32Array.from({ length: first.n }, (_, i) => i),
    rank: Int32Array.from(first.source),
    weight: Float32Array.from(first.weight),
    experts: layers.map((l) => l.experts),
  };
}

export function traceWorkload(trace: Trace): Workload {
  return { kind: 'trace', trace, meta: { format: 'test' } };
}

export function placementOf(shape: Shape, numExperts: number, phy2log: number[][], dispatch: number[][] | null = null): Placement {
  return {
    numLayers: phy2log.length,
    numExperts,
    shape,
    phy2log: phy2log.map((r) => Int32Array.from(r)),
    dispatch: dispatch ? dispatch.map((r) => Int32Array.from(r)) : null,
  };
}
