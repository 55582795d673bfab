/**
 * Named models, GPUs and clusters, and the resolvers that turn a preset name or a JSON file into a
 * validated `Model`, `Gpu` or `Cluster`.
 *
 * Byte and FLOP figures of the models are derived from their Hugging Face `config.json` (cited per
 * preset) by the helpers below; GPU figures come from NVIDIA datasheets (cited per figure in
 * `sources`). Units: bytes, bytes/second, FLOP/s, FLOP.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { InfeasibleError, InputError } from './errors.js';
import {
  ClusterSchema,
  GpuSchema,
  ModelSchema,
  type Cluster,
  type ClusterInput,
  type Gpu,
  type Model,
  type ModelInput,
} from './schemas.js';
import { parseWith } from './validate.js';

// ---------------------------------------------------------------------------------------------
// Derived sizes
// ---------------------------------------------------------------------------------------------

/** Parameters of one routed expert: `matrices` matrices of hidden x intermediate. */
export function expertParams(hidden: number, intermediate: number, matrices = 3): number {
  return matrices * hidden * intermediate;
}

/**
 * Bytes of one expert stored in FP8 with DeepSeek-style 128x128 block scales: 1 byte per weight
 * plus one fp32 scale (4 bytes) per 16384 weights.
 */
export function fp8BlockExpertBytes(hidden: number, intermediate: number, matrices = 3): number {
  const params = expertParams(hidden, intermediate, matrices);
  return params + Math.ceil(params / 16384) * 4;
}

/** Bytes of one expert stored in BF16 (2 bytes per weight). */
export function bf16ExpertBytes(hidden: number, intermediate: number, matrices = 3): number {
  return 2 * expertParams(hidden, intermediate, matrices);
}

/** Dispatch bytes per token with FP8 activations and one fp32 scale per 128 values (DeepEP). */
export function fp8DispatchBytes(hidden: number): number {
  return hidden + Math.ceil(hidden / 128) * 4;
}

/** Bytes of one BF16 hidden vector (combine, or BF16 dispatch). */
export function bf16TokenBytes(hidden: number): number {
  return 2 * hidden;
}

/** FLOPs of one expert on one token: 2 per weight (multiply + add). */
export function expertFlops(hidden: number, intermediate: number, matrices = 3): number {
  return 2 * expertParams(hidden, intermediate, matrices);
}

function range(from: number, to: number, step = 1): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i += step) out.push(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/**
 * Model presets. Each cites the `config.json` on the model's Hugging Face page, from which the
 * layer count, the MoE layers, the expert count, top-k, groups and sizes are taken.
 */
export const MODEL_PRESETS: Record<string, ModelInput> = {
  // https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json
  // num_hidden_layers 61, first_k_dense_replace 3 (MoE layers 3..60), n_routed_experts 256,
  // num_experts_per_tok 8, n_group 8, topk_group 4, n_shared_experts 1, hidden_size 7168,
  // moe_intermediate_size 2048, quantization_config fp8 with weight_block_size [128, 128].
  // (The MTP layer 61 is not counted.)
  'deepseek-v3': {
    name: 'deepseek-v3',
    numHiddenLayers: 61,
    moeLayerIds: range(3, 61),
    experts: 256,
    topK: 8,
    groups: 8,
    topKGroups: 4,
    sharedExperts: 1,
    hiddenSize: 7168,
    expertBytes: fp8BlockExpertBytes(7168, 2048),
    dispatchBytesPerToken: fp8DispatchBytes(7168),
    combineBytesPerToken: bf16TokenBytes(7168),
    expertFlopsPerToken: expertFlops(7168, 2048),
    computeDtype: 'fp8',
    source: 'https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json',
  },
  // https://huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json
  // num_hidden_layers 27, first_k_dense_replace 1 (MoE layers 1..26), n_routed_experts 64,
  // num_experts_per_tok 6, n_group 1 / topk_group 1 (= no group limit), n_shared_experts 2,
  // hidden_size 2048, moe_intermediate_size 1408, torch_dtype bfloat16. Served in BF16, so
  // dispatch is BF16 too.
  'deepseek-v2-lite': {
    name: 'deepseek-v2-lite',
    numHiddenLayers: 27,
    moeLayerIds: range(1, 27),
    experts: 64,
    topK: 6,
    sharedExperts: 2,
    hiddenSize: 2048,
    expertBytes: bf16ExpertBytes(2048, 1408),
    dispatchBytesPerToken: bf16TokenBytes(2048),
    combineBytesPerToken: bf16TokenBytes(2048),
    expertFlopsPerToken: expertFlops(2048, 1408),
    computeDtype: 'bf16',
    source: 'https://huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json',
  },
  // https://huggingface.co/meta-llama/Llama-4-Maverick-17B-128E-Instruct/blob/main/config.json
  // text_config: num_hidden_layers 48, interleave_moe_layer_step 2 (MoE on layers 1, 3, ..., 47),
  // num_local_experts 128, num_experts_per_tok 1, hidden_size 5120, intermediate_size 8192
  // (the expert size; intermediate_size_mlp 16384 is the dense MLP), one shared expert, bf16.
  'llama4-maverick': {
    name: 'llama4-maverick',
    numHiddenLayers: 48,
    moeLayerIds: range(1, 48, 2),
    experts: 128,
    topK: 1,
    sharedExperts: 1,
    hiddenSize: 5120,
    expertBytes: bf16ExpertBytes(5120, 8192),
    dispatchBytesPerToken: bf16TokenBytes(5120),
    combineBytesPerToken: bf16TokenBytes(5120),
    expertFlopsPerToken: expertFlops(5120, 8192),
    computeDtype: 'bf16',
    source: 'https://huggingface.co/meta-llama/Llama-4-Maverick-17B-128E-Instruct/blob/main/config.json',
  },
  // https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json
  // num_hidden_layers 32 (all MoE), num_local_experts 8, num_experts_per_tok 2, hidden_size 4096,
  // intermediate_size 14336, bfloat16.
  'mixtral-8x7b': {
    name: 'mixtral-8x7b',
    numHiddenLayers: 32,
    moeLayerIds: range(0, 32),
    experts: 8,
    topK: 2,
    sharedExperts: 0,
    hiddenSize: 4096,
    expertBytes: bf16ExpertBytes(4096, 14336),
    dispatchBytesPerToken: bf16TokenBytes(4096),
    combineBytesPerToken: bf16TokenBytes(4096),
    expertFlopsPerToken: expertFlops(4096, 14336),
    computeDtype: 'bf16',
    source: 'https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json',
  },
  // https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json
  // num_hidden_layers 94, decoder_sparse_step 1 and mlp_only_layers [] (all layers MoE),
  // num_experts 128, num_experts_per_tok 8, no shared experts, hidden_size 4096,
  // moe_intermediate_size 1536, bfloat16.
  'qwen3-235b-a22b': {
    name: 'qwen3-235b-a22b',
    numHiddenLayers: 94,
    moeLayerIds: range(0, 94),
    experts: 128,
    topK: 8,
    sharedExperts: 0,
    hiddenSize: 4096,
    expertBytes: bf16ExpertBytes(4096, 1536),
    dispatchBytesPerToken: bf16TokenBytes(4096),
    combineBytesPerToken: bf16TokenBytes(4096),
    expertFlopsPerToken: expertFlops(4096, 1536),
    computeDtype: 'bf16',
    source: 'https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json',
  },
  // https://huggingface.co/moonshotai/Kimi-K2-Instruct/blob/main/config.json
  // DeepSeek-V3 architecture: num_hidden_layers 61, first_k_dense_replace 1 (MoE layers 1..60),
  // n_routed_experts 384, num_experts_per_tok 8, n_group 1 / topk_group 1 (= no group limit),
  // n_shared_experts 1, hidden_size 7168, moe_intermediate_size 2048, fp8 block-quantised
  // weights (weight_block_size [128, 128]).
  'kimi-k2': {
    name: 'kimi-k2',
    numHiddenLayers: 61,
    moeLayerIds: range(1, 61),
    experts: 384,
    topK: 8,
    sharedExperts: 1,
    hiddenSize: 7168,
    expertBytes: fp8BlockExpertBytes(7168, 2048),
    dispatchBytesPerToken: fp8DispatchBytes(7168),
    combineBytesPerToken: bf16TokenBytes(7168),
    expertFlopsPerToken: expertFlops(7168, 2048),
    computeDtype: 'fp8',
    source: 'https://huggingface.co/moonshotai/Kimi-K2-Instruct/blob/main/config.json',
  },
  // https://huggingface.co/google/switch-base-128/blob/main/config.json
  // Encoder: num_layers 12, encoder_sparse_step 2 (the Hugging Face implementation makes layers
  // with i % 2 == 1 sparse: 1, 3, ..., 11, the six layer keys of the switch-base-128 usage data),
  // num_experts 128, top-1 routing, d_model 768, d_ff 3072; experts have two matrices (wi, wo).
  // The checkpoint is float32; sizes here assume BF16 serving.
  'switch-base-128': {
    name: 'switch-base-128',
    numHiddenLayers: 12,
    moeLayerIds: range(1, 12, 2),
    experts: 128,
    topK: 1,
    sharedExperts: 0,
    hiddenSize: 768,
    expertBytes: bf16ExpertBytes(768, 3072, 2),
    dispatchBytesPerToken: bf16TokenBytes(768),
    combineBytesPerToken: bf16TokenBytes(768),
    expertFlopsPerToken: expertFlops(768, 3072, 2),
    computeDtype: 'bf16',
    source: 'https://huggingface.co/google/switch-base-128/blob/main/config.json',
  },
};

// ---------------------------------------------------------------------------------------------
// GPUs
// ---------------------------------------------------------------------------------------------

const GB = 1e9;
const TB = 1e12;
const TFLOPS = 1e12;

const H100_DATASHEET = 'NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column, https://www.nvidia.com/en-us/data-center/h100/';
const H200_DATASHEET = 'NVIDIA H200 Tensor Core GPU datasheet, H200 SXM column, https://www.nvidia.com/en-us/data-center/h200/';
const B200_DATASHEET = 'NVIDIA HGX B200 specifications (8-GPU board figures / 8), https://www.nvidia.com/en-us/data-center/hgx/';
const DGX_H100_NIC =
  'one 400 Gb/s ConnectX-7 NIC per GPU = 50 GB/s per direction (NVIDIA DGX H100/H200 user guide, https://docs.nvidia.com/dgx/dgxh100-user-guide/introduction-to-dgxh100.html); the usual scale-out build for HGX boards';
const SPARSITY_NOTE = 'datasheet figure with 2:4 sparsity halved to dense';

/**
 * GPU presets (SXM parts). Memory in decimal GB as the datasheets give it (the usable capacity is a
 * little larger in GiB). FLOPS are dense (the datasheets print sparse peaks; halved here). NVLink
 * and RDMA are per GPU per direction.
 */
export const GPU_PRESETS: Record<string, Gpu> = {
  H20: {
    name: 'H20',
    // NVIDIA H20 product brief (not on nvidia.com; figures as widely reported): 96 GB HBM3,
    // 4.0 TB/s, FP8 296 TFLOPS, BF16 148 TFLOPS (dense), NVLink 900 GB/s bidirectional.
    memoryBytes: 96 * GB,
    hbmBandwidth: 4.0 * TB,
    fp8Flops: 296 * TFLOPS,
    bf16Flops: 148 * TFLOPS,
    nvlinkBandwidth: 450 * GB,
    rdmaBandwidth: 50 * GB,
    sources: {
      memoryBytes: 'NVIDIA H20 product brief (as reported publicly): 96 GB HBM3',
      hbmBandwidth: 'NVIDIA H20 product brief (as reported publicly): 4.0 TB/s',
      fp8Flops: 'NVIDIA H20 product brief (as reported publicly): FP8 296 TFLOPS dense',
      bf16Flops: 'NVIDIA H20 product brief (as reported publicly): BF16 148 TFLOPS dense',
      nvlinkBandwidth: 'NVIDIA H20 product brief: NVLink 900 GB/s bidirectional = 450 GB/s per direction',
      rdmaBandwidth: DGX_H100_NIC,
    },
  },
  H800: {
    name: 'H800',
    // H100 SXM silicon and memory with NVLink cut to 400 GB/s bidirectional (NVIDIA H800 product
    // page, https://www.nvidia.cn/data-center/h800/). DeepEP (https://github.com/deepseek-ai/DeepEP)
    // reports ~160 GB/s achievable NVLink and 50 GB/s (400 Gb/s CX7) RDMA per H800.
    memoryBytes: 80 * GB,
    hbmBandwidth: 3.35 * TB,
    fp8Flops: 1979 * TFLOPS,
    bf16Flops: 989 * TFLOPS,
    nvlinkBandwidth: 200 * GB,
    rdmaBandwidth: 50 * GB,
    sources: {
      memoryBytes: `${H100_DATASHEET} (H800 SXM shares it): 80 GB HBM3`,
      hbmBandwidth: `${H100_DATASHEET} (H800 SXM shares it): 3.35 TB/s`,
      fp8Flops: `${H100_DATASHEET}: FP8 3958 TFLOPS sparse, ${SPARSITY_NOTE}`,
      bf16Flops: `${H100_DATASHEET}: BF16 1979 TFLOPS sparse, ${SPARSITY_NOTE}`,
      nvlinkBandwidth:
        'NVIDIA H800 product page, https://www.nvidia.cn/data-center/h800/: NVLink 400 GB/s bidirectional = 200 GB/s per direction (DeepEP README measures ~160 GB/s)',
      rdmaBandwidth: 'DeepEP README, https://github.com/deepseek-ai/DeepEP: one CX7 400 Gb/s NIC per H800 (~50 GB/s)',
    },
  },
  H100: {
    name: 'H100',
    memoryBytes: 80 * GB,
    hbmBandwidth: 3.35 * TB,
    fp8Flops: 1979 * TFLOPS,
    bf16Flops: 989 * TFLOPS,
    nvlinkBandwidth: 450 * GB,
    rdmaBandwidth: 50 * GB,
    sources: {
      memoryBytes: `${H100_DATASHEET}: 80 GB HBM3`,
      hbmBandwidth: `${H100_DATASHEET}: 3.35 TB/s`,
      fp8Flops: `${H100_DATASHEET}: FP8 3958 TFLOPS sparse, ${SPARSITY_NOTE}`,
      bf16Flops: `${H100_DATASHEET}: BF16 1979 TFLOPS sparse, ${SPARSITY_NOTE}`,
      nvlinkBandwidth: `${H100_DATASHEET}: NVLink 900 GB/s bidirectional = 450 GB/s per direction`,
      rdmaBandwidth: DGX_H100_NIC,
    },
  },
  H200: {
    name: 'H200',
    memoryBytes: 141 * GB,
    hbmBandwidth: 4.8 * TB,
    fp8Flops: 1979 * TFLOPS,
    bf16Flops: 989 * TFLOPS,
    nvlinkBandwidth: 450 * GB,
    rdmaBandwidth: 50 * GB,
    sources: {
      memoryBytes: `${H200_DATASHEET}: 141 GB HBM3e`,
      hbmBandwidth: `${H200_DATASHEET}: 4.8 TB/s`,
      fp8Flops: `${H200_DATASHEET}: FP8 3958 TFLOPS sparse, ${SPARSITY_NOTE}`,
      bf16Flops: `${H200_DATASHEET}: BF16 1979 TFLOPS sparse, ${SPARSITY_NOTE}`,
      nvlinkBandwidth: `${H200_DATASHEET}: NVLink 900 GB/s bidirectional = 450 GB/s per direction`,
      rdmaBandwidth: DGX_H100_NIC,
    },
  },
  B200: {
    name: 'B200',
    memoryBytes: 180 * GB,
    hbmBandwidth: 8 * TB,
    fp8Flops: 4500 * TFLOPS,
    bf16Flops: 2250 * TFLOPS,
    nvlinkBandwidth: 900 * GB,
    rdmaBandwidth: 50 * GB,
    sources: {
      memoryBytes: `${B200_DATASHEET}: 1,440 GB HBM3e per 8 GPUs = 180 GB`,
      hbmBandwidth: `${B200_DATASHEET}: 64 TB/s per 8 GPUs = 8 TB/s`,
      fp8Flops: `${B200_DATASHEET}: FP8 72 PFLOPS sparse per 8 GPUs = 9 PFLOPS per GPU, ${SPARSITY_NOTE}`,
      bf16Flops: `${B200_DATASHEET}: FP16/BF16 36 PFLOPS sparse per 8 GPUs = 4.5 PFLOPS per GPU, ${SPARSITY_NOTE}`,
      nvlinkBandwidth: `${B200_DATASHEET}: fifth-generation NVLink 1.8 TB/s bidirectional per GPU = 900 GB/s per direction`,
      rdmaBandwidth:
        'NVIDIA DGX B200 datasheet, https://www.nvidia.com/en-us/data-center/dgx-b200/: 8 single-port ConnectX-7 400 Gb/s, one per GPU = 50 GB/s per direction',
    },
  },
};

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

/** Cluster presets. Shapes follow public deployments where one exists. */
export const CLUSTER_PRESETS: Record<string, ClusterInput> = {
  // DeepSeek-V3 technical report (arXiv:2412.19437, section 3.4.1): prefill unit of 4 nodes /
  // 32 H800 GPUs, EP32, 32 redundant experts: 256 + 32 = 288 slots = 9 per GPU.
  'h800-4x8': { name: 'h800-4x8', nodes: 4, gpusPerNode: 8, gpu: 'H800', slotsPerGpu: 9 },
  // EP144: 18 nodes x 8 H800, 2 slots per GPU (288 slots: 256 experts + 32 redundant).
  'h800-18x8': { name: 'h800-18x8', nodes: 18, gpusPerNode: 8, gpu: 'H800', slotsPerGpu: 2 },
  // 4 nodes x 8 H20 with 32 GB of each 96 GB card given to routed experts (the rest to KV cache);
  // for DeepSeek-V3 that is floor(32e9 / (58 * 44050944)) = 12 slots per GPU.
  'h20-4x8': { name: 'h20-4x8', nodes: 4, gpusPerNode: 8, gpu: 'H20', expertMemoryBytes: 32e9 },
  // 2 nodes x 8 H100 with 48 GB per GPU for routed experts.
  'h100-2x8': { name: 'h100-2x8', nodes: 2, gpusPerNode: 8, gpu: 'H100', expertMemoryBytes: 48e9 },
  // A toy cluster for tests and examples.
  'tiny-2x2': { name: 'tiny-2x2', nodes: 2, gpusPerNode: 2, gpu: 'H100', slotsPerGpu: 2 },
};

// ---------------------------------------------------------------------------------------------
// Resolvers
// ---------------------------------------------------------------------------------------------

function findPreset<T>(table: Record<string, T>, name: string): T | undefined {
  if (Object.hasOwn(table, name)) return table[name];
  const lower = name.toLowerCase();
  for (const key of Object.keys(table)) if (key.toLowerCase() === lower) return table[key];
  return undefined;
}

function looksLikePath(s: string): boolean {
  return s.endsWith('.json') || s.includes('/') || s.includes('\\') || existsSync(s);
}

/** Read and JSON-parse a file; problems become an InputError naming the file (and line). */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw new InputError('is a folder, expected a JSON file', { file: path });
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`cannot read: ${(err as Error).message}`, { file: path });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const m = /position (\d+)/.exec(msg);
    const line = m ? text.slice(0, Number(m[1])).split('\n').length : undefined;
    throw new InputError(`invalid JSON: ${msg}`, { file: path, line });
  }
}

function unknownPreset(kind: string, name: string, table: Record<string, unknown>): InputError {
  return new InputError(
    `unknown ${kind} preset '${name}' and no such file; known ${kind}s: ${Object.keys(table).join(', ')}`,
  );
}

/** A model preset name (case-insensitive) or a JSON file validated with ModelSchema. */
export function resolveModel(nameOrPath: string): Model {
  const preset = findPreset(MODEL_PRESETS, nameOrPath);
  if (preset !== undefined) return parseWith(ModelSchema, preset, 'model');
  if (!looksLikePath(nameOrPath)) throw unknownPreset('model', nameOrPath, MODEL_PRESETS);
  return parseWith(ModelSchema, readJsonFile(nameOrPath), 'model', { file: nameOrPath });
}

/** A GPU preset name (case-insensitive), a JSON file, or a spec object validated with GpuSchema. */
export function resolveGpu(nameOrSpec: unknown, where = 'gpu', file?: string): Gpu {
  if (typeof nameOrSpec === 'string') {
    const preset = findPreset(GPU_PRESETS, nameOrSpec);
    if (preset !== undefined) return preset;
    if (!looksLikePath(nameOrSpec)) {
      const err = unknownPreset('GPU', nameOrSpec, GPU_PRESETS);
      throw new InputError(err.problems.map((p) => `${where}: ${p}`), file !== undefined ? { file } : {});
    }
    return parseWith(GpuSchema, readJsonFile(nameOrSpec), where, { file: nameOrSpec });
  }
  return parseWith(GpuSchema, nameOrSpec, where, file !== undefined ? { file } : {});
}

export interface ClusterOverrides {
  nodes?: number;
  gpusPerNode?: number;
  slotsPerGpu?: number;
}

function checkOverride(name: keyof ClusterOverrides, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v > 0)) {
    throw new InputError(`--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive integer, got ${v}`);
  }
}

/**
 * A cluster preset name or JSON file (ClusterSchema), with the GPU resolved and slots per GPU
 * fixed for `model`: an explicit `slotsPerGpu` (override, else the cluster's) wins, else
 * `floor(expertMemoryBytes / (L * model.expertBytes))`. `overrides` replace the shape.
 * `expertMemoryBytes` of the result defaults to `slotsPerGpu * L * expertBytes`.
 * Throws InfeasibleError when the memory budget holds no slot or cannot hold the asked slots.
 */
export function resolveCluster(nameOrPath: string, model: Model, overrides: ClusterOverrides = {}): Cluster {
  let input: ClusterInput;
  let file: string | undefined;
  const preset = findPreset(CLUSTER_PRESETS, nameOrPath);
  if (preset !== undefined) input = parseWith(ClusterSchema, preset, 'cluster');
  else if (!looksLikePath(nameOrPath)) throw unknownPreset('cluster', nameOrPath, CLUSTER_PRESETS);
  else {
    file = nameOrPath;
    input = parseWith(ClusterSchema, readJsonFile(nameOrPath), 'cluster', { file });
  }
  return clusterOf(input, model, overrides, file ?? nameOrPath, file);
}

/** The GPU of a cluster given by its shape alone (`clusterOfShape` without a GPU). */
export const DEFAULT_GPU = 'H800';

/**
 * A cluster given by its shape and a GPU preset name or GPU JSON file (default `DEFAULT_GPU`),
 * named `NxG GPU`; the slots must fit the GPU's memory (InfeasibleError otherwise).
 */
export function clusterOfShape(model: Model, shape: { nodes: number; gpusPerNode: number; slotsPerGpu: number }, gpu: string = DEFAULT_GPU): Cluster {
  const g = resolveGpu(gpu, 'gpu');
  const input = parseWith(ClusterSchema, { name: `${shape.nodes}x${shape.gpusPerNode} ${g.name}`, ...shape, gpu: g }, 'cluster');
  return clusterOf(input, model, {}, input.name!, undefined);
}

function clusterOf(input: ClusterInput, model: Model, overrides: ClusterOverrides, label: string, file: string | undefined): Cluster {
  checkOverride('nodes', overrides.nodes);
  checkOverride('gpusPerNode', overrides.gpusPerNode);
  checkOverride('slotsPerGpu', overrides.slotsPerGpu);
  const gpu = resolveGpu(input.gpu, 'cluster.gpu', file);
  const layers = model.moeLayerIds.length;
  const bytesPerSlot = layers * model.expertBytes;
  const loc = file !== undefined ? { file } : {};
  let slotsPerGpu = overrides.slotsPerGpu ?? input.slotsPerGpu;
  if (slotsPerGpu === undefined) {
    const budget = input.expertMemoryBytes as number; // the schema guarantees one of the two
    slotsPerGpu = Math.floor(budget / bytesPerSlot);
    if (slotsPerGpu < 1) {
      throw new InfeasibleError(
        `cluster.expertMemoryBytes: ${budget} bytes per GPU hold no expert slot of ${model.name} (one slot = ${layers} layers x ${model.expertBytes} bytes = ${bytesPerSlot} bytes)`,
        loc,
      );
    }
  }
  const needed = slotsPerGpu * bytesPerSlot;
  const budget = input.expertMemoryBytes ?? needed;
  if (needed > budget) {
    throw new InfeasibleError(
      `cluster.slotsPerGpu: ${slotsPerGpu} slots of ${model.name} need ${needed} bytes per GPU but expertMemoryBytes is ${budget}; at most ${Math.floor(budget / bytesPerSlot)} slots fit`,
      loc,
    );
  }
  if (budget > gpu.memoryBytes) {
    throw new InfeasibleError(
      `cluster: ${slotsPerGpu} slots x ${bytesPerSlot} bytes = ${budget} bytes of expert weights exceed ${gpu.name} memory ${gpu.memoryBytes}; at most ${Math.floor(gpu.memoryBytes / bytesPerSlot)} slots fit`,
      loc,
    );
  }
  const nodes = overrides.nodes ?? input.nodes;
  const gpusPerNode = overrides.gpusPerNode ?? input.gpusPerNode;
  const changed = overrides.nodes !== undefined || overrides.gpusPerNode !== undefined;
  const baseName = input.name ?? (file !== undefined ? basename(file).replace(/\.json$/i, '') : label);
  return {
    name: changed ? `${baseName} as ${nodes}x${gpusPerNode}` : baseName,
    nodes,
    gpusPerNode,
    slotsPerGpu,
    gpu,
    expertMemoryBytes: budget,
  };
}
