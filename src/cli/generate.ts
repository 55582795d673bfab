/**
 * `moe-placer generate`: a synthetic routing trace.
 */
import { nonNegInt, posInt, str, type CommandSpec } from './args.js';
import { num } from './text.js';
import { InputError } from '../errors.js';
import { generateTrace } from '../generator.js';
import type { Counts } from '../types.js';
import { writeTrace } from '../workload/index.js';
import { countsOfTrace } from '../workload/tokens.js';
import { jsonFlag, type Runner, resolveModelFlag, checkOutFile, loadWorkloadFlag, json } from './common.js';

export const spec: CommandSpec = {
  name: 'generate',
  summary: 'write a synthetic routing trace in the canonical trace format',
  usage: 'generate --model M [--counts FILE] --tokens N [--requests R] [--seed N] --out trace.mpt [--json]',
  flags: {
    model: { kind: str('M'), help: 'model preset name or model JSON file', required: true },
    counts: { kind: str('FILE'), help: 'per-layer expert counts (or a trace) whose marginals to match' },
    tokens: { kind: posInt, help: 'tokens to generate', required: true },
    requests: { kind: posInt, help: 'requests the tokens are split into (default tokens / 128)' },
    seed: { kind: nonNegInt, help: 'random seed (default 0)' },
    out: { kind: str('FILE'), help: 'trace file: .mpt binary, .jsonl text, .gz gzipped', required: true },
    ...jsonFlag,
  },
};

export const run: Runner = async (f, ctx) => {
  const model = resolveModelFlag(f.model as string);
  const out = f.out as string;
  checkOutFile(out);
  const tokens = f.tokens as number;
  const requests = f.requests as number | undefined;
  if (requests !== undefined && requests > tokens) throw new InputError(`--requests: ${requests} requests cannot share ${tokens} tokens; give at most --tokens`);
  let counts: Counts | undefined;
  if (f.counts !== undefined) {
    const w = await loadWorkloadFlag(f.counts as string, model, ctx);
    counts = w.kind === 'counts' ? w.counts : countsOfTrace(w.trace);
  }
  const seed = (f.seed as number | undefined) ?? 0;
  ctx.progress.update(`generate ${num(tokens)} tokens`);
  const trace = generateTrace({ model, tokens, seed, counts, requests });
  ctx.progress.update(`write ${out}`);
  const { bytes } = await writeTrace(out, trace, model);
  ctx.progress.clear();
  if (f.json) {
    ctx.out(json({ command: 'generate', out, model: model.name, tokens: trace.numTokens, requests: trace.numRequests, layers: trace.numLayers, seed, bytes, counts: f.counts ?? null }));
  } else {
    ctx.out(
      `wrote ${out}: ${num(trace.numTokens)} tokens in ${num(trace.numRequests)} requests, ${trace.numLayers} MoE layers of ${model.name}, seed ${seed}` +
        `${f.counts !== undefined ? `, marginals of ${f.counts as string}` : ''} (${num(bytes)} bytes)\n`,
    );
  }
  return 0;
};
