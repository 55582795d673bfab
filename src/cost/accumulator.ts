/**
 * Per-layer counting of the cost model (DESIGN.md, "The cost model"): loads and dispatch messages
 * per GPU, streamed chunk by chunk through a reusable `LayerAccumulator`.
 *
 * Per token on source GPU s (node n(s), local index l(s) = s mod G) with weight w, every chosen
 * expert e is served by slot `dispatch[s*E+e]` on GPU d and load[d] += w. Then
 * - `normal`: D = the distinct destination GPUs. Each remote node m touched gets one RDMA message
 *   s -> landing GPU q = (m, l(s)), which forwards one NVLink message to every GPU of D in m other
 *   than itself; inside n(s), s sends one NVLink message to every GPU of D other than s.
 *   Note the NVLink sender in node m is always q = m*G + l(s) (for m = n(s), q = s), and the
 *   receivers are the GPUs of D in m whose local index differs from l(s).
 * - `low-latency`: one message per (token, chosen expert) whose GPU d != s, NVLink if d is on n(s),
 *   RDMA otherwise; no deduplication.
 *
 * Three kernels implement this, all exact (they agree up to the order of float additions):
 * - `direct`: per token, one update per message (any shape);
 * - `grouped` (normal, G <= 8): per token and touched node, the G-bit mask v of GPUs used there is
 *   binned into `hist[q][v]` (q = the NVLink sender of that node); the per-receiver NVLink updates
 *   are derived from the histogram when the call ends. Uses one 32-bit GPU mask per token when
 *   NG <= 32 (`mask`), per-node masks otherwise (`nodes`);
 * - `pairs` (low-latency, NG <= 1024): weighted (source, destination) pair counts `[NG*NG]`, turned
 *   into loads and messages when the call ends.
 * `accumulateLayer` picks the grouped/pairs kernels when the chunk is large enough to pay for the
 * final derivation, the direct one otherwise. `accumulateUniformNormal` is the grouped kernels for
 * tokens of one weight (the sampled tokens of a counts layer), counting in integers: the same
 * values bit for bit, several times faster.
 */
import { InputError } from '../errors.js';
import type { Mode } from '../schemas.js';
import type { Shape, TokenSets } from '../types.js';

/** Popcount of 8-bit masks. */
const POP8 = new Uint8Array(256);
for (let v = 1; v < 256; v++) POP8[v] = POP8[v >> 1] + (v & 1);

/** Largest GPUs per node of the grouped normal kernel (histogram rows of 2^G entries). */
const GROUPED_MAX_G = 8;
/** Largest cluster of the pairs low-latency kernel ([NG*NG] pair counts). */
const PAIRS_MAX_NG = 1024;

/**
 * Accumulating counters of one layer, reusable across chunks of tokens (streaming) and across
 * layers (`reset`). All counters are weighted token-MESSAGES in the dispatch direction: multiply by
 * `dispatchBytesPerToken` for dispatch bytes. The combine sends the same messages back, so the
 * combine bytes out of GPU d are `rdmaIn[d] * combineBytesPerToken`, and so on.
 * Every public counter is complete after each `accumulateLayer` call.
 */
export class LayerAccumulator {
  readonly shape: Shape;
  /** [NG] weighted (token, expert) pairs served by each GPU. */
  readonly load: Float64Array;
  /** [NG] RDMA messages sent by each GPU (dispatch direction). */
  readonly rdmaOut: Float64Array;
  /** [NG] RDMA messages received by each GPU (the landing GPUs in normal mode). */
  readonly rdmaIn: Float64Array;
  /** [NG] NVLink messages sent by each GPU (sources and forwarding landing GPUs). */
  readonly nvlOut: Float64Array;
  /** [NG] NVLink messages received by each GPU. */
  readonly nvlIn: Float64Array;
  /** [NG] RDMA messages caused by the tokens of each SOURCE GPU. */
  readonly interMsgs: Float64Array;
  /** [NG] NVLink messages (direct and forwarded) caused by the tokens of each SOURCE GPU. */
  readonly intraMsgs: Float64Array;
  /** [NG] sum over the tokens of each SOURCE GPU of weight x remote nodes touched. */
  readonly remoteNodes: Float64Array;
  /** [NG] weighted tokens of each SOURCE GPU. */
  readonly tokens: Float64Array;
  /** [NG*NG] messages from GPU s (row) to GPU d (column), every hop; null unless requested. */
  readonly matrix: Float64Array | null;

  // ---- scratch of the kernels (internal) ----
  /** @internal [NG] node, local index, first GPU of the node, 1 << local index. */
  readonly nodeOf: Int32Array;
  readonly localOf: Int32Array;
  readonly nodeBase: Int32Array;
  readonly bitOf: Int32Array;
  /** @internal [P] GPU of each slot. */
  readonly slotGpu: Int32Array;
  /** @internal per-token deduplication stamps [NG] / [nodes] and the current stamp. */
  readonly gpuStamp: Int32Array;
  readonly nodeStamp: Int32Array;
  stamp = 0;
  /** @internal [NG] distinct destinations of the current token (direct kernel). */
  readonly dests: Int32Array;
  /** @internal [nodes] per-node GPU masks of the current token and [nodes+1] touched nodes. */
  readonly nodeMask: Int32Array;
  readonly touched: Int32Array;
  /** @internal [NG] per-source scratch sum of the grouped kernels (all zero between calls). */
  readonly perSource: Float64Array;
  /** @internal [NG * 2^G] histogram of the grouped kernel (lazily allocated, all zero between calls). */
  hist: Float64Array | null = null;
  /** @internal [NG*NG] pair counts of the pairs kernel (lazily allocated, all zero between calls). */
  pairs: Float64Array | null = null;
  /** @internal [NG*E] destination GPU per (source, expert), rebuilt per call. */
  destGpu: Int32Array = new Int32Array(0);
  /** @internal scratch of `accumulateUniformNormal` (lazily allocated). */
  uniform: UniformScratch | null = null;

  constructor(shape: Shape, withMatrix = false) {
    const NG = shape.numGpus;
    if (!(NG >= 1 && NG <= 65536) || NG !== shape.nodes * shape.gpusPerNode) {
      throw new InputError(`cluster shape ${shape.nodes} x ${shape.gpusPerNode} = ${NG} GPUs is not supported (1..65536)`, { field: 'cluster' });
    }
    this.shape = shape;
    this.load = new Float64Array(NG);
    this.rdmaOut = new Float64Array(NG);
    this.rdmaIn = new Float64Array(NG);
    this.nvlOut = new Float64Array(NG);
    this.nvlIn = new Float64Array(NG);
    this.interMsgs = new Float64Array(NG);
    this.intraMsgs = new Float64Array(NG);
    this.remoteNodes = new Float64Array(NG);
    this.tokens = new Float64Array(NG);
    this.matrix = withMatrix ? new Float64Array(NG * NG) : null;
    const G = shape.gpusPerNode;
    this.nodeOf = new Int32Array(NG);
    this.localOf = new Int32Array(NG);
    this.nodeBase = new Int32Array(NG);
    this.bitOf = new Int32Array(NG);
    for (let g = 0; g < NG; g++) {
      const m = Math.floor(g / G);
      this.nodeOf[g] = m;
      this.localOf[g] = g - m * G;
      this.nodeBase[g] = m * G;
      this.bitOf[g] = G <= 31 ? 1 << (g - m * G) : 0;
    }
    this.slotGpu = new Int32Array(shape.numSlots);
    for (let p = 0; p < shape.numSlots; p++) this.slotGpu[p] = Math.floor(p / shape.slotsPerGpu);
    this.gpuStamp = new Int32Array(NG);
    this.nodeStamp = new Int32Array(shape.nodes);
    this.dests = new Int32Array(NG);
    this.perSource = new Float64Array(NG);
    this.nodeMask = new Int32Array(shape.nodes);
    this.touched = new Int32Array(shape.nodes + 1);
  }

  /** Zero every counter (keeps the buffers). */
  reset(): void {
    this.load.fill(0);
    this.rdmaOut.fill(0);
    this.rdmaIn.fill(0);
    this.nvlOut.fill(0);
    this.nvlIn.fill(0);
    this.interMsgs.fill(0);
    this.intraMsgs.fill(0);
    this.remoteNodes.fill(0);
    this.tokens.fill(0);
    this.matrix?.fill(0);
  }
}

/** Which counting kernel to use; `auto` is what `accumulateLayer` does. */
export type Kernel = 'auto' | 'direct' | 'mask' | 'nodes' | 'pairs';

/**
 * Add the tokens of one chunk of a layer to `acc`.
 *
 * @param tokens   token sets: `experts [n*k]` (< E), `source [n]` (< NG), `weight [n]`.
 * @param phy2log  [P] logical expert per slot; every dispatch entry must hold its expert.
 * @param dispatch [NG*E] slot used by source GPU g for expert e.
 * @throws InputError naming the bad dispatch entry, token source or expert id (the tables are
 *   checked when there are tokens to count).
 */
export function accumulateLayer(acc: LayerAccumulator, tokens: TokenSets, phy2log: Int32Array, dispatch: Int32Array, numExperts: number, mode: Mode): void {
  accumulateLayerWith(acc, tokens, phy2log, dispatch, numExperts, mode, 'auto');
}

/**
 * `accumulateLayer` with an explicit kernel (for tests and benchmarks). A kernel that does not fit
 * the mode or shape (e.g. `pairs` in normal mode, `mask` with more than 32 GPUs) falls back to
 * `direct`.
 * @internal
 */
export function accumulateLayerWith(
  acc: LayerAccumulator,
  tokens: TokenSets,
  phy2log: Int32Array,
  dispatch: Int32Array,
  numExperts: number,
  mode: Mode,
  kernel: Kernel,
): void {
  if (mode !== 'normal' && mode !== 'low-latency') throw new InputError(`unknown mode ${String(mode)}`, { field: 'mode' });
  const E = numExperts;
  checkTokens(tokens, E, acc.shape.numGpus);
  const { n, k } = tokens;
  // No tokens: nothing to count, the tables are not looked at (the balance solve scores its
  // candidates on empty token sets, a table check per candidate for nothing).
  if (n === 0) return;
  const dg = destGpuTable(acc, phy2log, dispatch, E);
  const { numGpus: NG, gpusPerNode: G } = acc.shape;
  // Stamps grow by one per token: clear them before they could overflow.
  if (acc.stamp > 0x7fffffff - n - 1) {
    acc.gpuStamp.fill(0);
    acc.nodeStamp.fill(0);
    acc.stamp = 0;
  }
  if (mode === 'normal') {
    const groupedOk = G <= GROUPED_MAX_G;
    let use = kernel;
    if (use === 'auto') use = groupedOk && 4 * n * k >= NG << G ? (NG <= 32 && acc.shape.nodes <= 8 ? 'mask' : 'nodes') : 'direct';
    if (use === 'mask' && !(groupedOk && NG <= 32)) use = 'direct';
    if (use === 'nodes' && !groupedOk) use = 'direct';
    if (use === 'mask' || use === 'nodes') {
      if (acc.hist === null) acc.hist = new Float64Array(NG << G);
      if (use === 'mask') normalMask(acc, tokens, dg, E);
      else normalNodes(acc, tokens, dg, E);
      flushHist(acc);
    } else {
      normalDirect(acc, tokens, dg, E);
    }
  } else {
    const pairsOk = NG <= PAIRS_MAX_NG;
    let use = kernel;
    if (use === 'auto') use = pairsOk && 4 * n * k >= NG * NG ? 'pairs' : 'direct';
    if (use === 'pairs' && pairsOk) {
      if (acc.pairs === null) acc.pairs = new Float64Array(NG * NG);
      lowLatencyPairs(acc, tokens, dg, E);
      flushPairs(acc);
    } else {
      lowLatencyDirect(acc, tokens, dg, E);
    }
  }
}

/**
 * Rebuild `acc.destGpu [NG*E]` (GPU serving expert e for source g) from the dispatch table,
 * checking that every entry is a slot of this cluster holding its expert. Returns the table.
 */
function destGpuTable(acc: LayerAccumulator, phy2log: Int32Array, dispatch: Int32Array, numExperts: number): Int32Array {
  const { numGpus, numSlots } = acc.shape;
  if (phy2log.length !== numSlots) throw new InputError(`phy2log has ${phy2log.length} slots, expected ${numSlots}`, { field: 'phy2log' });
  if (!(Number.isInteger(numExperts) && numExperts >= 1 && numExperts <= 65536)) {
    throw new InputError(`numExperts ${numExperts} out of range 1..65536`, { field: 'numExperts' });
  }
  const size = numGpus * numExperts;
  if (dispatch.length !== size) {
    throw new InputError(`dispatch table has ${dispatch.length} entries, expected ${numGpus} GPUs x ${numExperts} experts`, { field: 'dispatch' });
  }
  if (acc.destGpu.length < size) acc.destGpu = new Int32Array(size);
  const out = acc.destGpu;
  const gpuOf = acc.slotGpu;
  for (let g = 0, i = 0; g < numGpus; g++) {
    for (let e = 0; e < numExperts; e++, i++) {
      const p = dispatch[i];
      // (p >>> 0: a negative slot is out of range too)
      if (p >>> 0 >= numSlots || phy2log[p] !== e) badDispatch(phy2log, p, g, e, numSlots);
      out[i] = gpuOf[p];
    }
  }
  return out;
}

/** The InputError of a dispatch entry `p` (source g, expert e) that is no slot or holds another expert. */
function badDispatch(phy2log: Int32Array, p: number, g: number, e: number, numSlots: number): never {
  if (!(p >= 0 && p < numSlots)) throw new InputError(`source GPU ${g} has no slot for expert ${e} (got ${p})`, { field: `dispatch[${g}][${e}]` });
  throw new InputError(`slot ${p} used by GPU ${g} holds expert ${phy2log[p]}, not ${e}`, { field: `dispatch[${g}][${e}]` });
}

/** Array lengths, expert ids < E and sources < NG, before any counter is touched. */
function checkTokens(ts: TokenSets, E: number, NG: number): void {
  const { n, k, experts, source, weight } = ts;
  if (!(Number.isInteger(n) && n >= 0 && Number.isInteger(k) && k >= 1)) throw new InputError(`token sets: bad size n=${n}, k=${k}`, { field: 'tokens' });
  if (experts.length < n * k || source.length < n || weight.length < n) {
    throw new InputError(`token sets: ${n} tokens x top-${k} need experts[${n * k}], source[${n}], weight[${n}]`, { field: 'tokens' });
  }
  if (orOf(experts, n * k) >= E) {
    const i = experts.subarray(0, n * k).findIndex((e) => e >= E);
    if (i >= 0) throw new InputError(`token ${Math.floor(i / k)} uses expert ${experts[i]}, the model has ${E}`, { field: `tokens.experts[${i}]` });
  }
  if (orOf(source, n) >= NG) {
    const i = source.subarray(0, n).findIndex((s) => s >= NG);
    if (i >= 0) throw new InputError(`token ${i} has source GPU ${source[i]}, the cluster has ${NG}`, { field: `tokens.source[${i}]` });
  }
}

/**
 * Bitwise OR of `a[0..len)`: a cheap upper bound of the maximum (exact check only when it is not
 * below the limit). Reads two ids per step through a 32-bit view when aligned.
 */
function orOf(a: Uint16Array, len: number): number {
  let or = 0;
  let i = 0;
  if ((a.byteOffset & 3) === 0 && len >= 64) {
    const words = new Int32Array(a.buffer, a.byteOffset, len >>> 1); // int32 keeps the loop in small integers
    for (let j = 0; j < words.length; j++) or |= words[j];
    or = (or | (or >>> 16)) & 0xffff;
    i = words.length * 2;
  }
  for (; i < len; i++) or |= a[i];
  return or;
}

// ------------------------------------------------------------------------------------------------
// Kernels. Hot loops: typed arrays in locals, no allocation, no property writes per token.

/** Normal mode, one update per message. */
function normalDirect(acc: LayerAccumulator, ts: TokenSets, dg: Int32Array, E: number): void {
  const { n, k, experts, source, weight } = ts;
  const { load, rdmaOut, rdmaIn, nvlOut, nvlIn, interMsgs, intraMsgs, remoteNodes, tokens: tok, matrix, nodeOf, localOf, gpuStamp, nodeStamp, dests } = acc;
  const NG = acc.shape.numGpus;
  const G = acc.shape.gpusPerNode;
  let stamp = acc.stamp;
  for (let t = 0; t < n; t++) {
    const s = source[t];
    const w = weight[t];
    const row = s * E;
    const base = t * k;
    stamp++;
    let nd = 0;
    for (let j = 0; j < k; j++) {
      const d = dg[row + experts[base + j]];
      load[d] += w;
      if (gpuStamp[d] !== stamp) {
        gpuStamp[d] = stamp;
        dests[nd++] = d;
      }
    }
    const ns = nodeOf[s];
    const l = localOf[s];
    let remote = 0;
    let intra = 0;
    for (let j = 0; j < nd; j++) {
      const d = dests[j];
      if (d === s) continue;
      const m = nodeOf[d];
      if (m === ns) {
        nvlOut[s] += w;
        nvlIn[d] += w;
        intra++;
        if (matrix !== null) matrix[s * NG + d] += w;
        continue;
      }
      const q = m * G + l; // landing GPU
      if (nodeStamp[m] !== stamp) {
        nodeStamp[m] = stamp;
        rdmaIn[q] += w;
        remote++;
        if (matrix !== null) matrix[s * NG + q] += w;
      }
      if (d !== q) {
        nvlOut[q] += w;
        nvlIn[d] += w;
        intra++;
        if (matrix !== null) matrix[q * NG + d] += w;
      }
    }
    tok[s] += w;
    rdmaOut[s] += w * remote;
    interMsgs[s] += w * remote;
    remoteNodes[s] += w * remote;
    intraMsgs[s] += w * intra;
  }
  acc.stamp = stamp;
}

/**
 * Normal mode, NG <= 32 and G <= 8: one 32-bit GPU mask per token, binned per node into `hist`
 * (best with few nodes). In normal mode the RDMA messages of a token = its remote nodes, so one
 * per-source sum (`perSource`) feeds rdmaOut, interMsgs and remoteNodes once per call.
 */
function normalMask(acc: LayerAccumulator, ts: TokenSets, dg: Int32Array, E: number): void {
  const { n, k, experts, source, weight } = ts;
  const { load, rdmaIn, intraMsgs, tokens: tok, matrix, nodeOf, localOf } = acc;
  const hist = acc.hist!;
  const perSource = acc.perSource;
  const { numGpus: NG, gpusPerNode: G, nodes } = acc.shape;
  const VM = (1 << G) - 1;
  for (let t = 0; t < n; t++) {
    const s = source[t];
    const w = weight[t];
    const row = s * E;
    const base = t * k;
    let gm = 0;
    for (let j = 0; j < k; j++) {
      const d = dg[row + experts[base + j]];
      load[d] += w;
      gm |= 1 << d;
    }
    const l = localOf[s];
    // own node: s sends over NVLink to the GPUs of its node the token uses
    const own = nodeOf[s] * G;
    const vo = (gm >>> own) & VM;
    hist[(s << G) + vo] += w; // vo = 0 lands in bin 0, ignored
    let intra = POP8[vo] - ((vo >>> l) & 1);
    gm &= ~(VM << own);
    let remote = 0;
    if (gm !== 0) {
      for (let m = 0; m < nodes; m++) {
        const sh = m * G;
        const v = (gm >>> sh) & VM; // GPUs of remote node m used by the token
        if (v === 0) continue;
        const q = sh + l; // landing GPU: RDMA in, then NVLink to the other GPUs of v
        hist[(q << G) + v] += w;
        rdmaIn[q] += w;
        intra += POP8[v] - ((v >>> l) & 1);
        remote++;
        if (matrix !== null) matrix[s * NG + q] += w;
      }
    }
    tok[s] += w;
    perSource[s] += w * remote;
    intraMsgs[s] += w * intra;
  }
  flushPerSource(acc);
}

/** Add `perSource` (RDMA messages = remote nodes per source, normal mode) to its three counters; zero it. */
function flushPerSource(acc: LayerAccumulator): void {
  const { perSource, rdmaOut, interMsgs, remoteNodes } = acc;
  for (let g = 0; g < perSource.length; g++) {
    const x = perSource[g];
    rdmaOut[g] += x;
    interMsgs[g] += x;
    remoteNodes[g] += x;
    perSource[g] = 0;
  }
}

/** Normal mode, G <= 8, any NG: per-node GPU masks of the token, binned into `hist`. */
function normalNodes(acc: LayerAccumulator, ts: TokenSets, dg: Int32Array, E: number): void {
  const { n, k, experts, source, weight } = ts;
  const { load, rdmaOut, rdmaIn, interMsgs, intraMsgs, remoteNodes, tokens: tok, matrix, nodeOf, localOf, bitOf, nodeMask, touched } = acc;
  const hist = acc.hist!;
  const NG = acc.shape.numGpus;
  const G = acc.shape.gpusPerNode;
  for (let t = 0; t < n; t++) {
    const s = source[t];
    const w = weight[t];
    const row = s * E;
    const base = t * k;
    let nt = 0;
    for (let j = 0; j < k; j++) {
      const d = dg[row + experts[base + j]];
      load[d] += w;
      const m = nodeOf[d];
      const old = nodeMask[m];
      nodeMask[m] = old | bitOf[d];
      touched[nt] = m;
      nt += old === 0 ? 1 : 0;
    }
    const ns = nodeOf[s];
    const l = localOf[s];
    let remote = 0;
    let intra = 0;
    for (let i = 0; i < nt; i++) {
      const m = touched[i];
      const v = nodeMask[m];
      nodeMask[m] = 0;
      const q = m * G + l;
      hist[(q << G) + v] += w;
      intra += POP8[v] - ((v >>> l) & 1);
      const r = m !== ns ? 1 : 0;
      remote += r;
      rdmaIn[q] += w * r;
      if (matrix !== null && r === 1) matrix[s * NG + q] += w;
    }
    tok[s] += w;
    rdmaOut[s] += w * remote;
    interMsgs[s] += w * remote;
    remoteNodes[s] += w * remote;
    intraMsgs[s] += w * intra;
  }
}

/**
 * NVLink messages from `hist`: sender q (local index l) with mask v in its node sends one message,
 * weight hist[q][v], to every GPU of v except local index l. Zeroes `hist`.
 */
function flushHist(acc: LayerAccumulator): void {
  const hist = acc.hist!;
  const { nvlOut, nvlIn, matrix, localOf, nodeBase } = acc;
  const NG = acc.shape.numGpus;
  const G = acc.shape.gpusPerNode;
  const V = 1 << G;
  for (let q = 0; q < NG; q++) {
    const l = localOf[q];
    const mb = nodeBase[q];
    const notOwn = ~(1 << l);
    const off = q << G;
    hist[off] = 0; // bin 0 (no GPU of the node used) collects branch-free writes; nothing to send
    for (let v = 1; v < V; v++) {
      const h = hist[off + v];
      if (h === 0) continue;
      hist[off + v] = 0;
      let bits = v & notOwn;
      nvlOut[q] += h * POP8[bits];
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        nvlIn[mb + b] += h;
        if (matrix !== null) matrix[q * NG + mb + b] += h;
      }
    }
  }
}

/** Low-latency mode, one update per message. */
function lowLatencyDirect(acc: LayerAccumulator, ts: TokenSets, dg: Int32Array, E: number): void {
  const { n, k, experts, source, weight } = ts;
  const { load, rdmaOut, rdmaIn, nvlOut, nvlIn, interMsgs, intraMsgs, remoteNodes, tokens: tok, matrix, nodeOf, nodeStamp } = acc;
  const NG = acc.shape.numGpus;
  let stamp = acc.stamp;
  for (let t = 0; t < n; t++) {
    const s = source[t];
    const w = weight[t];
    const ns = nodeOf[s];
    const row = s * E;
    const base = t * k;
    stamp++;
    let remote = 0;
    let inter = 0;
    let intra = 0;
    for (let j = 0; j < k; j++) {
      const d = dg[row + experts[base + j]];
      load[d] += w;
      if (d === s) continue;
      const m = nodeOf[d];
      if (m === ns) {
        nvlIn[d] += w;
        intra++;
      } else {
        rdmaIn[d] += w;
        inter++;
        if (nodeStamp[m] !== stamp) {
          nodeStamp[m] = stamp;
          remote++;
        }
      }
      if (matrix !== null) matrix[s * NG + d] += w;
    }
    tok[s] += w;
    nvlOut[s] += w * intra;
    rdmaOut[s] += w * inter;
    interMsgs[s] += w * inter;
    intraMsgs[s] += w * intra;
    remoteNodes[s] += w * remote;
  }
  acc.stamp = stamp;
}

/**
 * Low-latency mode: weighted (source, destination) pair counts; distinct remote nodes per token
 * from a 32-bit node mask (nodes <= 32) or from node stamps.
 */
function lowLatencyPairs(acc: LayerAccumulator, ts: TokenSets, dg: Int32Array, E: number): void {
  const { n, k, experts, source, weight } = ts;
  const { remoteNodes, tokens: tok, nodeOf, nodeStamp } = acc;
  const pairs = acc.pairs!;
  const NG = acc.shape.numGpus;
  if (acc.shape.nodes <= 32) {
    for (let t = 0; t < n; t++) {
      const s = source[t];
      const w = weight[t];
      const row = s * E;
      const pr = s * NG;
      const base = t * k;
      let nm = 0;
      for (let j = 0; j < k; j++) {
        const d = dg[row + experts[base + j]];
        pairs[pr + d] += w;
        nm |= 1 << nodeOf[d];
      }
      tok[s] += w;
      remoteNodes[s] += w * popcount32(nm & ~(1 << nodeOf[s]));
    }
    return;
  }
  let stamp = acc.stamp;
  for (let t = 0; t < n; t++) {
    const s = source[t];
    const w = weight[t];
    const row = s * E;
    const pr = s * NG;
    const base = t * k;
    stamp++;
    let touchedNodes = 0;
    for (let j = 0; j < k; j++) {
      const d = dg[row + experts[base + j]];
      pairs[pr + d] += w;
      const m = nodeOf[d];
      touchedNodes += nodeStamp[m] !== stamp ? 1 : 0;
      nodeStamp[m] = stamp;
    }
    tok[s] += w;
    remoteNodes[s] += w * (touchedNodes - (nodeStamp[nodeOf[s]] === stamp ? 1 : 0));
  }
  acc.stamp = stamp;
}

function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Loads and messages from `pairs` (low-latency). Zeroes `pairs`. */
function flushPairs(acc: LayerAccumulator): void {
  const pairs = acc.pairs!;
  const { load, rdmaOut, rdmaIn, nvlOut, nvlIn, interMsgs, intraMsgs, matrix, nodeOf } = acc;
  const NG = acc.shape.numGpus;
  for (let s = 0; s < NG; s++) {
    const ns = nodeOf[s];
    const pr = s * NG;
    let nvl = 0;
    let rdma = 0;
    for (let d = 0; d < NG; d++) {
      const p = pairs[pr + d];
      if (p === 0) continue;
      pairs[pr + d] = 0;
      load[d] += p;
      if (d === s) continue;
      if (nodeOf[d] === ns) {
        nvlIn[d] += p;
        nvl += p;
      } else {
        rdmaIn[d] += p;
        rdma += p;
      }
      if (matrix !== null) matrix[pr + d] += p;
    }
    nvlOut[s] += nvl;
    intraMsgs[s] += nvl;
    rdmaOut[s] += rdma;
    interMsgs[s] += rdma;
  }
}

/**
 * `accumulateLayer` in normal mode for tokens that all weigh `w` (`tokens.weight` is not read), in
 * one call on an accumulator whose counters are all zero (just made or `reset`), leaving `acc.load`
 * zero: the sampled tokens of a counts-only layer, whose loads come from the counts
 * (`countsLoadsAfterTokens`, which may follow as after `accumulateLayer`).
 *
 * Every other counter gets exactly (bit for bit) the value `accumulateLayer` gives it, at a
 * fraction of the cost: a sum of c equal terms w from zero depends on c only, so the counters
 * that grow by w (tokens per source, RDMA messages into each landing GPU, the histogram bins of the
 * grouped kernels) are counted in integers and turned into floats at the end through the table
 * of those sums (`uniformSums`); the per-token sums (w x remote nodes, w x NVLink messages) are
 * added in token order as the grouped kernels add them, and the NVLink counters come from the
 * histogram as theirs do (`flushHist`).
 *
 * Applies only where `accumulateLayer` would take a grouped kernel (G <= 8 and enough tokens, see
 * `accumulateLayerWith`; the direct kernel adds in another order), with at most 32 nodes and no
 * traffic matrix: returns false otherwise, having changed nothing (the caller then uses
 * `accumulateLayer`). `tokensValid`: the tokens are known to be within the model and cluster
 * (sampleTokensFromCounts' own for them), not checked again.
 * @throws InputError as `accumulateLayer` (bad dispatch entry, token source or expert id).
 * @internal
 */
export function accumulateUniformNormal(
  acc: LayerAccumulator,
  tokens: TokenSets,
  w: number,
  phy2log: Int32Array,
  dispatch: Int32Array,
  numExperts: number,
  tokensValid = false,
): boolean {
  const { n, k } = tokens;
  const { numGpus: NG, gpusPerNode: G } = acc.shape;
  if (acc.matrix !== null || G > GROUPED_MAX_G || !(4 * n * k >= NG << G) || acc.shape.nodes > 32) return false;
  const E = numExperts;
  const dg = destGpuTable(acc, phy2log, dispatch, E);
  if (!tokensValid) checkTokens(tokens, E, NG);
  if (n === 0) return true;
  const scratch = uniformScratch(acc, E);
  // One hot loop per function below: each is optimized whole from its first calls (a loop
  // optimized in the middle of a function deoptimizes on the code after it, not yet run).
  if (NG <= 32 && acc.shape.nodes <= 8) {
    gpuBits(dg, NG * E, scratch.code);
    uniformMask(acc, tokens, w, E, scratch);
  } else {
    nodeCodes(dg, NG * E, acc.nodeOf, acc.bitOf, scratch.code);
    uniformNodes(acc, tokens, w, E, scratch);
  }
  // Counts -> the sums accumulateLayer builds (no count exceeds the tokens), the histogram sent
  // as flushHist sends it.
  const sums = uniformSums(w, n, scratch);
  countsToSums(scratch.tokCnt, sums, acc.tokens);
  countsToSums(scratch.rdmaCnt, sums, acc.rdmaIn);
  flushHistCounts(acc, scratch.histCnt, sums);
  flushPerSource(acc);
  return true;
}

/** Integer counters of `accumulateUniformNormal` (all zero between calls) and its table of sums. */
export interface UniformScratch {
  /** [NG] tokens per source GPU. */
  tokCnt: Int32Array;
  /** [NG] RDMA messages into each (landing) GPU. */
  rdmaCnt: Int32Array;
  /** [NG * 2^G] the grouped kernels' histogram, in tokens. */
  histCnt: Int32Array;
  /** [NG*E] per (source, expert): the serving GPU's node << 8 | its bit in the node (nodes kernel), or 1 << GPU (mask kernel). */
  code: Int32Array;
  /** sums[c] = w + w + ... (c terms, from 0). */
  sums: Float64Array;
}

function uniformScratch(acc: LayerAccumulator, E: number): UniformScratch {
  const NG = acc.shape.numGpus;
  const G = acc.shape.gpusPerNode;
  acc.uniform ??= { tokCnt: new Int32Array(NG), rdmaCnt: new Int32Array(NG), histCnt: new Int32Array(NG << G), code: new Int32Array(0), sums: new Float64Array(0) };
  if (acc.uniform.code.length < NG * E) acc.uniform.code = new Int32Array(NG * E);
  return acc.uniform;
}

/** sums[c] for c = 0..most: c terms w added one after the other from 0, as a counter grows. */
function uniformSums(w: number, most: number, scratch: UniformScratch): Float64Array {
  if (scratch.sums.length < most + 1) scratch.sums = new Float64Array(most + 1);
  const sums = scratch.sums;
  let x = 0;
  sums[0] = 0;
  for (let c = 1; c <= most; c++) {
    x += w;
    sums[c] = x;
  }
  return sums;
}

/** out[g] = sums[counts[g]]; zeroes `counts`. */
function countsToSums(counts: Int32Array, sums: Float64Array, out: Float64Array): void {
  for (let g = 0; g < counts.length; g++) {
    out[g] = sums[counts[g]];
    counts[g] = 0;
  }
}

/** [NG*E] 1 << GPU of `dg` (the mask kernel's table). */
function gpuBits(dg: Int32Array, size: number, out: Int32Array): void {
  for (let i = 0; i < size; i++) out[i] = 1 << dg[i];
}

/** [NG*E] node << 8 | bit in the node of the GPUs of `dg` (the nodes kernel's table). */
function nodeCodes(dg: Int32Array, size: number, nodeOf: Int32Array, bitOf: Int32Array, out: Int32Array): void {
  for (let i = 0; i < size; i++) {
    const d = dg[i];
    out[i] = (nodeOf[d] << 8) | bitOf[d];
  }
}

/** `flushHist` on the histogram in tokens: bin weight sums[count]. Zeroes `histCnt`. */
function flushHistCounts(acc: LayerAccumulator, histCnt: Int32Array, sums: Float64Array): void {
  const { nvlOut, nvlIn, localOf, nodeBase } = acc;
  const NG = acc.shape.numGpus;
  const G = acc.shape.gpusPerNode;
  const V = 1 << G;
  for (let q = 0; q < NG; q++) {
    const l = localOf[q];
    const mb = nodeBase[q];
    const notOwn = ~(1 << l);
    const off = q << G;
    histCnt[off] = 0; // bin 0 (no GPU of the node used): nothing to send
    for (let v = 1; v < V; v++) {
      const c = histCnt[off + v];
      if (c === 0) continue;
      histCnt[off + v] = 0;
      const h = sums[c];
      let bits = v & notOwn;
      nvlOut[q] += h * POP8[bits];
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        nvlIn[mb + b] += h;
      }
    }
  }
}

/** `normalMask` in integer counts (see accumulateUniformNormal). */
function uniformMask(acc: LayerAccumulator, ts: TokenSets, w: number, E: number, scratch: UniformScratch): void {
  const { n, k, experts, source } = ts;
  const { intraMsgs, perSource, nodeOf, localOf } = acc;
  const { gpusPerNode: G, nodes } = acc.shape;
  const { tokCnt, rdmaCnt, histCnt, code: bit } = scratch;
  const VM = (1 << G) - 1;
  for (let t = 0; t < n; t++) {
    const s = source[t];
    const row = s * E;
    const base = t * k;
    let gm = 0;
    for (let j = 0; j < k; j++) gm |= bit[row + experts[base + j]];
    const l = localOf[s];
    const own = nodeOf[s] * G;
    const vo = (gm >>> own) & VM;
    histCnt[(s << G) + vo]++; // vo = 0 lands in bin 0, ignored
    let intra = POP8[vo] - ((vo >>> l) & 1);
    gm &= ~(VM << own);
    let remote = 0;
    if (gm !== 0) {
      for (let m = 0; m < nodes; m++) {
        const sh = m * G;
        const v = (gm >>> sh) & VM;
        if (v === 0) continue;
        const q = sh + l;
        histCnt[(q << G) + v]++;
        rdmaCnt[q]++;
        intra += POP8[v] - ((v >>> l) & 1);
        remote++;
      }
    }
    tokCnt[s]++;
    perSource[s] += w * remote;
    intraMsgs[s] += w * intra;
  }
}

/** `normalNodes` in integer counts (see accumulateUniformNormal); at most 32 nodes. */
function uniformNodes(acc: LayerAccumulator, ts: TokenSets, w: number, E: number, scratch: UniformScratch): void {
  const { n, k, experts, source } = ts;
  const { intraMsgs, perSource, nodeOf, localOf, nodeMask } = acc;
  const G = acc.shape.gpusPerNode;
  const { tokCnt, rdmaCnt, histCnt, code } = scratch;
  for (let t = 0; t < n; t++) {
    const s = source[t];
    const row = s * E;
    const base = t * k;
    // The nodes the token uses (a bit each) and its GPUs in each of them.
    let used = 0;
    for (let j = 0; j < k; j++) {
      const c = code[row + experts[base + j]];
      const m = c >>> 8;
      used |= 1 << m;
      nodeMask[m] |= c & 255;
    }
    const ns = nodeOf[s];
    const l = localOf[s];
    let remote = 0;
    let intra = 0;
    while (used !== 0) {
      const m = 31 - Math.clz32(used & -used);
      used &= used - 1;
      const v = nodeMask[m];
      nodeMask[m] = 0;
      const q = m * G + l;
      histCnt[(q << G) + v]++;
      intra += POP8[v] - ((v >>> l) & 1);
      const r = m !== ns ? 1 : 0;
      remote += r;
      rdmaCnt[q] += r;
    }
    tokCnt[s]++;
    perSource[s] += w * remote;
    intraMsgs[s] += w * intra;
  }
}

/**
 * Exact loads of a counts-only layer: every source GPU g sends `counts[e] / NG` of expert e's
 * tokens to the GPU of slot `dispatch[g*E+e]`. Overwrites `acc.load` ([NG]).
 *
 * @param counts   [E] token counts of the layer.
 * @param phy2log  [P] logical expert per slot.
 * @param dispatch [NG*E] dispatch table.
 */
export function countsLoads(acc: LayerAccumulator, counts: Float64Array, phy2log: Int32Array, dispatch: Int32Array, numExperts: number): void {
  if (counts.length !== numExperts) throw new InputError(`counts have ${counts.length} experts, expected ${numExperts}`, { field: 'counts' });
  countsLoadsOf(acc, counts, destGpuTable(acc, phy2log, dispatch, numExperts), numExperts);
}

/**
 * `countsLoads` on `acc.destGpu` as the last `accumulateLayer` call on `acc`, with tokens, built
 * and checked it (for the same phy2log and dispatch): the table is not rebuilt.
 * @internal
 */
export function countsLoadsAfterTokens(acc: LayerAccumulator, counts: Float64Array, numExperts: number): void {
  if (counts.length !== numExperts) throw new InputError(`counts have ${counts.length} experts, expected ${numExperts}`, { field: 'counts' });
  countsLoadsOf(acc, counts, acc.destGpu, numExperts);
}

function countsLoadsOf(acc: LayerAccumulator, counts: Float64Array, dg: Int32Array, numExperts: number): void {
  const NG = acc.shape.numGpus;
  const load = acc.load;
  load.fill(0);
  // counts[e] / NG, divided once per expert (the same values as dividing at every source)
  const share = new Float64Array(numExperts);
  for (let e = 0; e < numExperts; e++) share[e] = counts[e] / NG;
  for (let g = 0; g < NG; g++) {
    const row = g * numExperts;
    for (let e = 0; e < numExperts; e++) load[dg[row + e]] += share[e];
  }
}
