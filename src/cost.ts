/**
 * The evaluator of the normative cost model of DESIGN.md ("The cost model"): it scores any placement
 * (phy2log + dispatch table) on any workload, independently of the solver that produced it.
 *
 * Per layer, tokens are streamed through a `LayerAccumulator` (`accumulateLayer`, any number of
 * chunks), then `finishLayer` turns the per-GPU counters into bytes, times and balance figures.
 * `evaluate` does this for every layer of a workload.
 *
 * Counting, per token on source GPU s (node n(s), local index s mod G) with weight w:
 * - every chosen expert e is served by slot `dispatch[s*E+e]` on GPU d; load[d] += w.
 * - `normal`: D = distinct destination GPUs. Each remote node m touched gets one RDMA message
 *   s -> landing GPU (m, s mod G), which forwards one NVLink message to every GPU of D in m other than
 *   itself; inside n(s), s sends one NVLink message to every GPU of D other than s.
 * - `low-latency`: one message per (token, chosen expert) whose GPU is not s, NVLink inside the
 *   node, RDMA across, no deduplication.
 * - combine = the same messages reversed, `combineBytesPerToken` each.
 */
export { accumulateLayer, accumulateLayerWith, countsLoads, LayerAccumulator, type Kernel } from './cost/accumulator.js';
export { evaluate, parseCostOptions } from './cost/evaluate.js';
export { finishLayer, gpuFlops, trafficMatrixOf, type Evaluation, type LayerMetrics } from './cost/metrics.js';
export { evaluateStream, type EvaluateStreamArgs, type StreamEvaluation } from './cost/stream.js';
