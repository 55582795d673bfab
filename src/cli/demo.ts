/**
 * `moe-placer demo`: DeepSeek-V3 on 4 x 8 H800, EPLB against optimize on held-out requests.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { evaluatePlan, metricsReport, plan as planApi, type MetricsReport } from '../api.js';
import { nonNegInt, posInt, posNumber, str, type CommandSpec } from './args.js';
import { bytesText, change, load, ms, num, table } from './text.js';
import { InputError } from '../errors.js';
import { generateTrace } from '../generator.js';
import { writePlanFile } from '../plan.js';
import { resolveCluster, resolveModel } from '../presets.js';
import type { Workload } from '../types.js';
import { filterRequests } from '../workload/tokens.js';
import { jsonFlag, type Runner, solverProgress, clusterLine, modelLine, header, clusterJson, json, interruptible } from './common.js';

export const spec: CommandSpec = {
  name: 'demo',
  summary: 'plan DeepSeek-V3 on 4 x 8 H800 for a synthetic trace with EPLB and optimize, and compare them on held-out requests',
  usage: 'demo [--tokens N] [--seed N] [--time-limit SEC] [--workers N] [--out DIR] [--json]',
  flags: {
    tokens: { kind: posInt, help: 'synthetic tokens (default 131072: one EP32 prefill step)' },
    seed: { kind: nonNegInt, help: 'seed of the trace and the solvers (default 1)' },
    'time-limit': { kind: posNumber, help: 'budget of the optimize search in seconds (default 15)' },
    workers: { kind: posInt, help: 'worker threads (default 2)' },
    out: { kind: str('DIR'), help: 'also write both plans into this folder' },
    ...jsonFlag,
  },
};

/** Marginal-fitting rounds of the demo's synthetic trace. */
const DEMO_FIT_ROUNDS = 2;

interface DemoRow {
  solver: string;
  fit: MetricsReport;
  heldOut: MetricsReport;
  wallTimeSeconds: number;
  interrupted: boolean;
}

export const run: Runner = async (f, ctx) => {
  const started = performance.now();
  const model = resolveModel('deepseek-v3');
  const cluster = resolveCluster('h800-4x8', model);
  // One realistic EP32 prefill step: 32 GPUs x 4096 tokens.
  const tokens = (f.tokens as number | undefined) ?? 131072;
  const seed = (f.seed as number | undefined) ?? 1;
  const timeLimit = (f['time-limit'] as number | undefined) ?? 15;
  const workers = (f.workers as number | undefined) ?? 2;
  const outDir = f.out as string | undefined;
  if (outDir !== undefined) {
    if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new InputError(`--out: ${outDir} is a file, expected a folder`);
    if (!existsSync(dirname(resolve(outDir)))) throw new InputError(`--out: folder ${dirname(outDir)} does not exist`);
  }
  const { signal, dispose } = interruptible(ctx, 'the demo stops after the current search');
  try {
    ctx.progress.update(`generate a synthetic ${model.name} trace (${num(tokens)} tokens)`);
    const t0 = performance.now();
    // Two marginal-fitting rounds (of the default 8) keep generation to a few seconds; the target
    // marginals are the generator's default log-normal popularity anyway.
    const trace = generateTrace({ model, tokens, seed, fitRounds: DEMO_FIT_ROUNDS });
    const generateSeconds = (performance.now() - t0) / 1000;
    if (trace.numRequests < 2) throw new InputError(`--tokens: ${tokens} tokens make ${trace.numRequests} request; the demo needs at least 2 (give 256 or more)`);
    const fitTrace = filterRequests(trace, (r) => r % 2 === 0);
    const heldTrace = filterRequests(trace, (r) => r % 2 === 1);
    const fit: Workload = { kind: 'trace', trace: fitTrace, meta: { format: 'synthetic', notes: ['even requests of the demo trace'] } };
    const held: Workload = { kind: 'trace', trace: heldTrace, meta: { format: 'synthetic', notes: ['odd requests of the demo trace'] } };
    const rows: DemoRow[] = [];
    for (const solver of ['eplb', 'optimize']) {
      if (signal.aborted) break;
      const r = await planApi({
        model,
        cluster,
        workload: fit,
        solver,
        objective: solver === 'optimize' ? 'time' : 'traffic',
        mode: 'normal',
        seed,
        workers,
        timeLimitSeconds: solver === 'optimize' ? timeLimit : undefined,
        onProgress: solverProgress(ctx, solver),
        signal,
      });
      ctx.progress.update(`${solver}: evaluate on the held-out requests`);
      const ev = evaluatePlan({ model, cluster, placement: r.result.placement, workload: held, mode: 'normal' });
      rows.push({
        solver,
        fit: metricsReport(r.evaluation, r.layerBounds, model),
        heldOut: metricsReport(ev.evaluation, ev.layerBounds, model),
        wallTimeSeconds: r.plan.provenance!.wallTimeSeconds,
        interrupted: r.plan.provenance!.interrupted === true,
      });
      if (outDir !== undefined) {
        mkdirSync(outDir, { recursive: true });
        writePlanFile(join(outDir, `${solver}.plan.json`), r.plan);
      }
    }
    ctx.progress.clear();
    const totalSeconds = (performance.now() - started) / 1000;
    if (f.json) {
      ctx.out(
        json({
          command: 'demo',
          model: model.name,
          cluster: clusterJson(cluster),
          tokens: trace.numTokens,
          requests: trace.numRequests,
          seed,
          fitTokens: fitTrace.numTokens,
          heldOutTokens: heldTrace.numTokens,
          generateSeconds,
          totalSeconds,
          results: rows.map((r) => ({ solver: r.solver, wallTimeSeconds: r.wallTimeSeconds, interrupted: r.interrupted, fit: r.fit, heldOut: r.heldOut })),
          out: outDir ?? null,
        }),
      );
    } else {
      ctx.out(
        header(`moe-placer demo: which experts go where for DeepSeek-V3 prefill on 32 H800s`, [
          ['model', modelLine(model)],
          ['cluster', clusterLine(cluster)],
          [
            'workload',
            `synthetic trace (seed ${seed}): ${num(trace.numTokens)} tokens in ${num(trace.numRequests)} requests; plans fitted on the ` +
              `${num(fitTrace.numRequests)} even requests (${num(fitTrace.numTokens)} tokens), scored on the ${num(heldTrace.numRequests)} odd ones (${num(heldTrace.numTokens)} tokens)`,
          ],
        ]),
      );
      ctx.out(demoTable(rows));
      ctx.out(
        `\nnormal (prefill) mode, DeepEP-style dispatch + combine; bytes summed over the ${model.moeLayerIds.length} MoE layers of one pass over the held-out tokens.\n` +
          `eplb = DeepSeek EPLB (balances load; its hierarchical mode keeps expert groups on nodes); optimize = moe-placer's solver, objective time (the cost model's estimated MoE time: traffic against balance).\n` +
          (outDir !== undefined ? `plans written to ${outDir}/eplb.plan.json and ${outDir}/optimize.plan.json\n` : '') +
          `total ${num(totalSeconds, 1)} s (trace generation ${num(generateSeconds, 1)} s)\n`,
      );
    }
    if (signal.aborted) {
      ctx.progress.note('interrupted');
      return 130;
    }
    return 0;
  } finally {
    dispose();
  }
};

function demoTable(rows: DemoRow[]): string {
  const names = rows.map((r) => r.solver);
  const head = ['held-out requests', ...names];
  const withChange = rows.length === 2;
  if (withChange) head.push(`${names[1]} vs ${names[0]}`);
  const out: string[][] = [head];
  const add = (label: string, get: (r: DemoRow) => number, fmt: (x: number) => string): void => {
    const vals = rows.map(get);
    const row = [label, ...vals.map(fmt)];
    if (withChange) row.push(change(vals[0], vals[1]));
    out.push(row);
  };
  add('inter-node bytes', (r) => r.heldOut.interNodeBytes, bytesText);
  add('intra-node bytes', (r) => r.heldOut.intraNodeBytes, bytesText);
  add('remote nodes per token', (r) => r.heldOut.remoteNodesPerToken, (x) => num(x, 3));
  add('balancedness (mean/max)', (r) => r.heldOut.balancedness, (x) => num(x, 3));
  add('max / mean load', (r) => r.heldOut.maxOverMean, (x) => num(x, 3));
  add('max GPU load', (r) => r.heldOut.maxLoad, load);
  add('est. MoE time (ms)', (r) => r.heldOut.timeSeconds, ms);
  add('plan wall time (s)', (r) => r.wallTimeSeconds, (x) => num(x, 2));
  const t = table(out, ['l', ...rows.map(() => 'r' as const), 'r']);
  const notes = rows.filter((r) => r.interrupted).map((r) => `(${r.solver} was interrupted: best plan so far)\n`);
  return t + notes.join('');
}
