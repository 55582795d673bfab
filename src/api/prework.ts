/**
 * The work of `plan()` on a counts workload that does not depend on the solver's placement, done
 * beside the solve: in a worker thread, on a core the single-threaded solve leaves idle, while
 * this thread solves. It is
 * - the evaluation's sampled tokens of every layer (the tokens `evaluate` would draw itself:
 *   `sampleTokensFromCounts` with the same size and seeds), and
 * - the per-layer max-load lower bounds (`maxLoadLowerBound` of the layer's counts).
 * The worker writes them into shared memory layer by layer and publishes how many layers are done;
 * when the solve ends, this thread takes what is done and computes the rest itself, so the results
 * are the same whether the worker finished, finished part, or never started (a failing worker only
 * means this thread does more of it).
 */
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { maxLoadLowerBound } from '../bounds/max-load.js';
import { deriveSeed, Rng } from '../rng.js';
import type { TokenSets } from '../types.js';
import { sampleTokensFromCounts } from '../workload/sample.js';

/** What the worker computes, and where it writes it (the typed arrays over SharedArrayBuffers). */
export interface PreworkJob {
  /** [L][E] the counts of every layer. */
  counts: Float64Array[];
  /** Experts per token and tokens of each layer's sample (0: bounds only). */
  k: number;
  n: number;
  numGpus: number;
  slotsPerGpu: number;
  /** The evaluation's seed: layer l draws with deriveSeed(seed, l). */
  seed: number;
  /** [L*n*k] the layers' sampled experts, layer l from l*n*k. */
  experts: Uint16Array;
  /** [L] the layers' bounds. */
  bounds: Float64Array;
  /**
   * [4]: layers sampled, layers bounded (each published after the layer's data is written), and
   * the stop flags of the samples and of the bounds (set by the thread that takes the results).
   */
  state: Int32Array;
}

const SAMPLED = 0;
const BOUNDED = 1;
const STOP_SAMPLES = 2;
const STOP_BOUNDS = 3;

/** A job with its shared arrays, nothing done yet. */
export function preworkJob(counts: Float64Array[], k: number, n: number, numGpus: number, slotsPerGpu: number, seed: number): PreworkJob {
  const L = counts.length;
  return {
    counts,
    k,
    n,
    numGpus,
    slotsPerGpu,
    seed,
    experts: new Uint16Array(new SharedArrayBuffer(2 * L * n * k)),
    bounds: new Float64Array(new SharedArrayBuffer(8 * L)),
    state: new Int32Array(new SharedArrayBuffer(16)),
  };
}

/**
 * The worker's loop: every layer's sample (in layer order, until told to stop), then every layer's
 * bound (likewise), each published once written.
 */
export function runPrework(job: PreworkJob): void {
  const { counts, k, n, numGpus, state } = job;
  const L = counts.length;
  if (n > 0) {
    const size = n * k;
    const into: TokenSets = { n, k, experts: new Uint16Array(0), source: new Uint16Array(n), weight: new Float64Array(n) };
    for (let l = 0; l < L && Atomics.load(state, STOP_SAMPLES) === 0; l++) {
      // (a layer without tokens is not evaluated on a sample)
      if (hasTokens(counts[l])) {
        into.experts = job.experts.subarray(l * size, (l + 1) * size);
        sampleTokensFromCounts(counts[l], k, n, numGpus, new Rng(deriveSeed(job.seed, l)), into);
      }
      Atomics.store(state, SAMPLED, l + 1);
      Atomics.notify(state, SAMPLED);
    }
  }
  for (let l = 0; l < L && Atomics.load(state, STOP_BOUNDS) === 0; l++) {
    job.bounds[l] = layerBound(job, l);
    Atomics.store(state, BOUNDED, l + 1);
    Atomics.notify(state, BOUNDED);
  }
}

/** Block (at most `ms`) until counter `at` of the job's state reaches `want`. */
function waitFor(state: Int32Array, at: number, want: number, ms: number): void {
  const until = Date.now() + ms;
  for (let v = Atomics.load(state, at); v < want && Date.now() < until; v = Atomics.load(state, at)) Atomics.wait(state, at, v, 50);
}

function hasTokens(counts: Float64Array): boolean {
  for (let e = 0; e < counts.length; e++) if (counts[e] > 0) return true;
  return false;
}

function layerBound(job: PreworkJob, l: number): number {
  return maxLoadLowerBound(Float64Array.from(job.counts[l]), job.numGpus, job.slotsPerGpu);
}

/**
 * The samples published so far ([L], null for the layers not sampled), after telling the worker
 * to stop sampling. Layer l's is what sampleTokensFromCounts(counts[l], k, n, numGpus, new
 * Rng(deriveSeed(seed, l))) returns; all share their `source` and `weight` arrays.
 */
export function preworkSamples(job: PreworkJob): (TokenSets | null)[] {
  const { state, counts, n, k, numGpus } = job;
  Atomics.store(state, STOP_SAMPLES, 1);
  const done = Atomics.load(state, SAMPLED);
  const out: (TokenSets | null)[] = new Array<TokenSets | null>(counts.length).fill(null);
  if (done === 0 || n === 0) return out;
  const source = new Uint16Array(n);
  for (let i = 0, g = 0; i < n; i++) {
    source[i] = g;
    g = g + 1 === numGpus ? 0 : g + 1;
  }
  const weight = new Float64Array(n).fill(1);
  for (let l = 0; l < done; l++) out[l] = { n, k, experts: job.experts.subarray(l * n * k, (l + 1) * n * k), source, weight };
  return out;
}

/** [L] every layer's bound: those published so far, the others computed here (the worker told to stop). */
export function preworkBounds(job: PreworkJob): Float64Array {
  const { state } = job;
  Atomics.store(state, STOP_SAMPLES, 1);
  Atomics.store(state, STOP_BOUNDS, 1);
  const done = Atomics.load(state, BOUNDED);
  const out = job.bounds.slice();
  for (let l = done; l < job.counts.length; l++) out[l] = layerBound(job, l);
  return out;
}

/**
 * Whether a CPU is likely free for the worker: more than one, and the load average of the last
 * minute at least half a CPU below their number (this run itself counts about one). Without a
 * free CPU the worker, at its low priority, gets little done, and the process waits for it to
 * stop at exit: V3 EP144 on 2 CPUs beside one busy process, 0.75 s beyond start-up without it,
 * 0.83 s with it; on an idle machine 0.69 s without, 0.57 s with.
 */
function coreLooksFree(): boolean {
  const cpus = availableParallelism();
  return cpus > 1 && loadavg()[0] < cpus - 0.5;
}

/** How long MOE_PLACER_PREWORK=wait waits for the worker at most. */
const WAIT_MS = 60_000;

/** The compiled worker entry next to this module, or null (running from TypeScript sources). */
function workerFile(): string | null {
  const url = import.meta.url;
  if (!url.endsWith('.js')) return null;
  const path = fileURLToPath(new URL('./prework-worker.js', url));
  return existsSync(path) ? path : null;
}

/** A job started in a worker thread (see the module comment). */
export class Prework {
  readonly job: PreworkJob;
  private worker: Worker | null = null;
  private readonly wait: boolean;

  /**
   * Start the worker on `counts` (L layers of E counts), for samples of `n` tokens of `k` experts
   * over `numGpus` GPUs (n = 0: bounds only) with `slotsPerGpu` slots, evaluation seed `seed`. No
   * worker is started when no CPU looks free (`coreLooksFree`) or from TypeScript sources:
   * `samples` and `bounds` then leave everything to this thread.
   */
  constructor(counts: Float64Array[], k: number, n: number, numGpus: number, slotsPerGpu: number, seed: number) {
    // MOE_PLACER_PREWORK: `off`, no worker; `on`, a worker whatever the load; `wait`, `on` with
    // the results taken once the worker is done (tests).
    const mode = process.env.MOE_PLACER_PREWORK;
    this.wait = mode === 'wait';
    const file = mode === 'on' || mode === 'wait' || (mode !== 'off' && coreLooksFree()) ? workerFile() : null;
    // (no worker: no shared arrays for samples either)
    this.job = preworkJob(counts, k, file === null ? 0 : n, numGpus, slotsPerGpu, seed);
    if (file === null) return;
    try {
      const w = new Worker(file, { workerData: this.job });
      // Never keeps the process alive; a failing worker has published complete layers only.
      w.unref();
      w.on('error', () => {});
      this.worker = w;
    } catch {
      this.worker = null;
    }
  }

  /** `preworkSamples` of the job. */
  samples(): (TokenSets | null)[] {
    if (this.wait && this.worker && this.job.n > 0) waitFor(this.job.state, SAMPLED, this.job.counts.length, WAIT_MS);
    return preworkSamples(this.job);
  }

  /** `preworkBounds` of the job; the worker is then stopped. */
  bounds(): Float64Array {
    if (this.wait && this.worker) waitFor(this.job.state, BOUNDED, this.job.counts.length, WAIT_MS);
    const out = preworkBounds(this.job);
    this.dispose();
    return out;
  }

  /** Stop the worker (it ends by itself after its last layer). */
  dispose(): void {
    Atomics.store(this.job.state, STOP_SAMPLES, 1);
    Atomics.store(this.job.state, STOP_BOUNDS, 1);
    if (this.worker) void this.worker.terminate();
    this.worker = null;
  }
}
