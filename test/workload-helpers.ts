/** Models and small helpers shared by the workload reader tests. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Rng } from '../src/rng.js';
import { ModelSchema, type Model, type ModelInput } from '../src/schemas.js';
import type { Trace } from '../src/types.js';

export const DATA = '/work/shared/data';

function model(m: Omit<ModelInput, 'hiddenSize' | 'expertBytes' | 'dispatchBytesPerToken' | 'combineBytesPerToken' | 'expertFlopsPerToken'> & { hiddenSize: number; intermediate: number }): Model {
  const { intermediate, ...rest } = m;
  return ModelSchema.parse({
    ...rest,
    expertBytes: 3 * m.hiddenSize * intermediate,
    dispatchBytesPerToken: m.hiddenSize + (m.hiddenSize / 128) * 4,
    combineBytesPerToken: 2 * m.hiddenSize,
    expertFlopsPerToken: 6 * m.hiddenSize * intermediate,
  });
}

const range = (a: number, b: number, step = 1): number[] => {
  const out: number[] = [];
  for (let i = a; i <= b; i += step) out.push(i);
  return out;
};

export const DEEPSEEK_V3 = model({
  name: 'deepseek-v3', numHiddenLayers: 61, moeLayerIds: range(3, 60), experts: 256, topK: 8, groups: 8, topKGroups: 4,
  sharedExperts: 1, hiddenSize: 7168, intermediate: 2048,
});
export const DEEPSEEK_V2_LITE = model({
  name: 'deepseek-v2-lite', numHiddenLayers: 27, moeLayerIds: range(1, 26), experts: 64, topK: 6, sharedExperts: 2,
  hiddenSize: 2048, intermediate: 1408,
});
export const LLAMA4_MAVERICK = model({
  name: 'llama4-maverick', numHiddenLayers: 48, moeLayerIds: range(1, 47, 2), experts: 128, topK: 1, sharedExperts: 1,
  hiddenSize: 5120, intermediate: 8192,
});
export const SWITCH_BASE = model({
  name: 'switch-base-128', numHiddenLayers: 12, moeLayerIds: range(1, 11, 2), experts: 128, topK: 1, hiddenSize: 768, intermediate: 3072,
});
/** 4 engine layers, MoE on 1 and 3, 8 experts, top-2. */
export const TINY = model({ name: 'tiny', numHiddenLayers: 4, moeLayerIds: [1, 3], experts: 8, topK: 2, hiddenSize: 128, intermediate: 256 });
/** 3 engine layers, MoE on 0 and 2, 4 experts, top-1. */
export const TINY_TOP1 = model({ name: 'tiny1', numHiddenLayers: 3, moeLayerIds: [0, 2], experts: 4, topK: 1, hiddenSize: 128, intermediate: 256 });
/** 2 MoE layers (all layers MoE), 300 experts (2-byte ids), top-3. */
export const WIDE = model({ name: 'wide', numHiddenLayers: 2, moeLayerIds: [0, 1], experts: 300, topK: 3, hiddenSize: 128, intermediate: 256 });

/** A fresh temp folder; `cleanup()` removes it. */
export function tempDir(): { dir: string; put: (name: string, content: string | Uint8Array, gzip?: boolean) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'moe-wl-'));
  return {
    dir,
    put(name, content, gzip = false) {
      const p = join(dir, name);
      mkdirSync(dirname(p), { recursive: true });
      const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
      writeFileSync(p, gzip ? gzipSync(bytes) : bytes);
      return p;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Await `p`, expect an InputError whose message contains every part (file, line, field...). */
export async function expectInputError(p: Promise<unknown>, parts: (string | RegExp)[]): Promise<string> {
  const { InputError } = await import('../src/errors.js');
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (!(err instanceof InputError)) throw new Error(`expected an InputError, got ${err === undefined ? 'success' : String((err as Error)?.stack ?? err)}`);
  for (const part of parts) {
    if (typeof part === 'string' ? !err.message.includes(part) : !part.test(err.message)) {
      throw new Error(`InputError message ${JSON.stringify(err.message)} lacks ${String(part)}`);
    }
  }
  return err.message;
}

/** Layers, experts and top-k of a synthetic trace. */
export interface TraceDims {
  numLayers: number;
  numExperts: number;
  topK: number;
}

export function traceDims(model: Model): TraceDims {
  return { numLayers: model.moeLayerIds.length, numExperts: model.experts, topK: model.topK };
}

export interface UniformTraceOptions {
  /** Requests as consecutive runs of 1..runs tokens (random lengths; default 4), or ... */
  runs?: number;
  /** ... as `blocks` contiguous blocks of about T / blocks tokens (request floor(t blocks / T)). */
  blocks?: number;
  /** Source ranks drawn in -1..rank-2 (-1 = none recorded); default none. */
  rank?: number;
  /** Weights drawn in {0, 1/16, ..., weight/16}; default none (null). */
  weight?: number;
  /** The first expert of layer 0 of token t is the one at this index of 0..E-1 (then uniform). */
  firstId?: (t: number) => number;
}

/**
 * A seeded uniform random trace: each token's top-k ids distinct (a partial Fisher-Yates shuffle
 * per token); draws in the order request runs, expert ids layer by layer, ranks, weights.
 */
export function uniformTrace(dims: TraceDims, T: number, seed: number, opts: UniformTraceOptions = {}): Trace {
  const rng = new Rng(seed);
  const { numLayers: L, numExperts: E, topK: k } = dims;
  const request = new Uint32Array(T);
  let numRequests: number;
  if (opts.blocks !== undefined) {
    const R = opts.blocks;
    for (let t = 0; t < T; t++) request[t] = R === 0 ? 0 : Math.floor((t * R) / T);
    numRequests = R;
  } else {
    const runs = opts.runs ?? 4;
    let r = 0;
    for (let t = 0; t < T; ) {
      const len = 1 + rng.int(runs);
      for (let i = 0; i < len && t < T; i++) request[t++] = r;
      r++;
    }
    numRequests = r;
  }
  const perm = new Uint16Array(E);
  const experts = Array.from({ length: L }, (_, l) => {
    const ex = new Uint16Array(T * k);
    for (let t = 0; t < T; t++) {
      for (let e = 0; e < E; e++) perm[e] = e;
      for (let j = 0; j < k; j++) {
        const p = j === 0 && l === 0 && opts.firstId ? opts.firstId(t) : j + rng.int(E - j);
        [perm[j], perm[p]] = [perm[p], perm[j]];
        ex[t * k + j] = perm[j];
      }
    }
    return ex;
  });
  const rank = opts.rank;
  const weight = opts.weight;
  return {
    numLayers: L,
    numExperts: E,
    topK: k,
    numTokens: T,
    numRequests,
    request,
    rank: Int32Array.from({ length: T }, () => (rank ? rng.int(rank) - 1 : -1)),
    weight: weight !== undefined ? Float32Array.from({ length: T }, () => Math.round(rng.next() * weight) / 16) : null,
    experts,
  };
}
