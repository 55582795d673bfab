/**
 * Per-request JSON step traces (format `maverick-json`, as recorded with SGLang from
 * Llama-4-Maverick): one (optionally gzipped) JSON file per request holding a list of forward
 * steps,
 *
 *     [ { "0": null, "1": [[e], [e], ...], "2": null, ... "47": [[e], ...] },   // step 0: prefill
 *       { "0": null, "1": [[e]], ... },                                          // decode steps
 *       ... ]
 *
 * Each step maps engine layer ids to null (dense layer) or, for MoE layers, a list over the step's
 * tokens of the token's k expert ids. Step 0 holds every prompt token, later steps usually one
 * decode token. Every MoE layer of the model must be present with the same token count in a step;
 * layers that are not MoE layers must be null. Tokens are appended step by step.
 */
import { InputError } from '../errors.js';
import type { Model } from '../schemas.js';
import { IdChecker, TraceBuilder } from './builder.js';
import { formatIds } from './counts.js';

export class JsonStepsParser {
  private readonly checker: IdChecker;
  private readonly isMoe: Map<string, number>;

  constructor(
    readonly model: Model,
    readonly builder: TraceBuilder,
  ) {
    this.checker = new IdChecker(model.experts, model.topK);
    this.isMoe = new Map(model.moeLayerIds.map((id, l) => [String(id), l]));
  }

  /** Append the tokens of one parsed file as request `request`; returns the tokens added. */
  addFile(doc: unknown, file: string, request: number): number {
    const fail = (msg: string, field?: string): never => {
      throw new InputError(msg, { file, field });
    };
    if (!Array.isArray(doc)) fail(`expected a list of steps, got ${kind(doc)}`);
    const steps = doc as unknown[];
    if (steps.length === 0) fail('empty list of steps');
    const { model, builder } = this;
    const L = model.moeLayerIds.length;
    const k = model.topK;
    const E = model.experts;
    const layerKeys = model.moeLayerIds.map(String);
    let added = 0;
    for (let s = 0; s < steps.length; s++) {
      const step = steps[s];
      if (step === null || typeof step !== 'object' || Array.isArray(step)) fail(`step must be an object of layers, got ${kind(step)}`, `[${s}]`);
      const rec = step as Record<string, unknown>;
      for (const key of Object.keys(rec)) {
        if (this.isMoe.has(key)) continue;
        if (!/^\d+$/.test(key)) fail('layer key must be an engine layer id', `[${s}]["${key}"]`);
        if (rec[key] !== null) {
          fail(
            `engine layer ${key} is not a MoE layer of model ${model.name} (MoE layers ${formatIds(model.moeLayerIds)}) but has routing`,
            `[${s}]["${key}"]`,
          );
        }
      }
      let T = -1;
      for (let l = 0; l < L; l++) {
        const v = rec[layerKeys[l]];
        const field = `[${s}]["${layerKeys[l]}"]`;
        if (!Array.isArray(v)) fail(`MoE layer must be a list of tokens, got ${v === undefined ? 'nothing (missing)' : kind(v)}`, field);
        const toks = v as unknown[];
        if (T < 0) {
          T = toks.length;
          if (T === 0) fail('step has no tokens', field);
        } else if (toks.length !== T) {
          fail(`${toks.length} tokens, MoE layer ${layerKeys[0]} of this step has ${T}`, field);
        }
        const start = l === 0 ? builder.reserve(T) : builder.numTokens;
        const ex = builder.experts[l];
        for (let t = 0; t < T; t++) {
          const ids = toks[t];
          if (!Array.isArray(ids)) fail(`token must be a list of expert ids, got ${kind(ids)}`, `${field}[${t}]`);
          const list = ids as unknown[];
          if (list.length !== k) fail(`wrong top-k width: ${list.length} expert ids, model ${model.name} has top-${k}`, `${field}[${t}]`);
          const base = (start + t) * k;
          for (let j = 0; j < k; j++) {
            const e = list[j];
            if (typeof e !== 'number' || !Number.isInteger(e)) fail(`expert id must be an integer, got ${kind(e)}`, `${field}[${t}][${j}]`);
            if ((e as number) < 0 || (e as number) >= E) fail(`expert id ${e} out of range 0..${E - 1}`, `${field}[${t}][${j}]`);
            ex[base + j] = e as number;
          }
        }
        const bad = this.checker.checkRange(ex, start, start + T);
        if (bad >= 0) {
          const t = Math.floor(bad / k) - start;
          fail(this.checker.describe(ex[bad]), `${field}[${t}][${bad % k}]`);
        }
      }
      builder.request.fill(request, builder.numTokens, builder.numTokens + T);
      builder.commit(T);
      added += T;
    }
    return added;
  }
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}...` : v)}`;
  if (typeof v === 'number') return `number ${v}`;
  return typeof v;
}
