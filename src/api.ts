/**
 * The high-level library API: what the CLI does, as functions.
 *
 * - `plan`: check that the request can be met, run a solver, score its placement on the workload,
 *   bound the best possible max load and build the plan file (with provenance).
 * - `evaluatePlan`: score any placement on any workload, with the per-layer max-load lower bounds.
 * - `loadPlacement`: a moe-placer plan or an engine placement file (SGLang, EPLB / vLLM,
 *   TensorRT-LLM, vllm-ascend; detected from the content) as a placement + plan file.
 * - `exportPlanFile`: a plan in an engine or simulator format (`traffic-csv` evaluates first).
 * - `metricsReport`: an evaluation as plain JSON-ready numbers (what `--json` prints).
 *
 * The modules by concern are in src/api/ (provenance, feasibility, bounds, plan, files, report);
 * this file re-exports them. Everything here is thin: the work is done by the solvers (src/solvers/), the evaluator (cost.ts),
 * the bounds (bounds/) and the plan file functions (plan.ts).
 */
export * from './api/provenance.js';
export * from './api/feasibility.js';
export * from './api/bounds.js';
export * from './api/plan.js';
export * from './api/files.js';
export * from './api/report.js';
