/**
 * compare (src/compare.ts and `moe-placer compare`): slot levels, memory arithmetic, the fit /
 * score split, the binding resource, throughput against time, the batch scaling, the CLI's JSON
 * and text output and its exit code 2 on bad flags.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from '../src/cost.js';
import {
  bestRows,
  compare,
  compareSplit,
  expertMemoryBudget,
  levelsOf,
  parseSlotLevels,
  resolveCompareCluster,
  resourceTime,
  slotBytes,
  type CompareRow,
} from '../src/compare.js';
import { InputError } from '../src/errors.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { ModelSchema, type Model } from '../src/schemas.js';
import type { Workload } from '../src/types.js';
import { loadWorkload, writeTrace } from '../src/workload/index.js';
import { countsOfTrace } from '../src/workload/tokens.js';
import { ensureBuilt, runCli, type RunResult } from './cli-helpers.js';
import { randomTrace, TINY_MODEL } from './plan-fixtures.js';

let dir: string;
const p = (name: string): string => join(dir, name);
const model: Model = ModelSchema.parse(TINY_MODEL);
/** 2 x 2 H100, 9000 bytes of expert memory: slots of 2 layers x 1000 bytes, at most 4 fit. */
const CLUSTER_A = { name: 'tiny-a', nodes: 2, gpusPerNode: 2, gpu: 'H100', expertMemoryBytes: 9000 };
/** 1 x 4 H20, 2 slots, no budget: the whole GPU memory. */
const CLUSTER_B = { name: 'tiny-b', nodes: 1, gpusPerNode: 4, gpu: 'H20', slotsPerGpu: 2 };

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

beforeAll(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'moe-placer-compare-'));
  writeFileSync(p('model.json'), JSON.stringify(TINY_MODEL));
  writeFileSync(p('a.json'), JSON.stringify(CLUSTER_A));
  writeFileSync(p('b.json'), JSON.stringify(CLUSTER_B));
  await writeTrace(p('trace.mpt'), randomTrace(2, 8, 2, 600, 24, 3));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const close = (a: number, b: number, rel = 1e-9): void => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.max(Math.abs(a), Math.abs(b), 1e-300));

describe('slot levels', () => {
  it('reads N, A..B and lists, sorted without repeats', () => {
    expect(parseSlotLevels('9')).toEqual([9]);
    expect(parseSlotLevels('8..12')).toEqual([8, 9, 10, 11, 12]);
    expect(parseSlotLevels('12, 8,10,8')).toEqual([8, 10, 12]);
    expect(parseSlotLevels('2..3,9')).toEqual([2, 3, 9]);
  });

  it('rejects empty ranges, non-integers and empty items, naming the field', () => {
    expect(() => parseSlotLevels('12..8', '--slots-per-gpu')).toThrow(/^--slots-per-gpu: range 12\.\.8 is empty \(12 > 8\)/);
    expect(() => parseSlotLevels('x')).toThrow(InputError);
    expect(() => parseSlotLevels('0')).toThrow(/not a positive integer/);
    expect(() => parseSlotLevels('8,,9')).toThrow(/empty item/);
    expect(() => parseSlotLevels('')).toThrow(/empty item/);
    expect(() => parseSlotLevels('1..1000')).toThrow(/at most 64/);
  });
});

describe('clusters and memory', () => {
  it('resolves presets, files and GPU-NODESxGPUS shapes', () => {
    const v3 = resolveModel('deepseek-v3');
    const h20 = resolveCompareCluster('h20-18x8', v3);
    expect([h20.nodes, h20.gpusPerNode, h20.gpu.name, h20.slotsPerGpu]).toEqual([18, 8, 'H20', 2]); // ceil(256 / 144)
    expect(expertMemoryBudget(v3, h20)).toBe(96e9);
    const preset = resolveCompareCluster('h20-4x8', v3);
    expect(preset.slotsPerGpu).toBe(12);
    expect(expertMemoryBudget(v3, preset)).toBe(32e9);
    expect(expertMemoryBudget(v3, resolveCompareCluster('h800-4x8', v3))).toBe(80e9);
    expect(resolveCompareCluster(p('a.json'), model).slotsPerGpu).toBe(4);
    expect(() => resolveCompareCluster('no-such', v3)).toThrow(/unknown cluster "no-such".*GPU-NODESxGPUS/);
    expect(() => resolveCompareCluster('q99-2x8', v3)).toThrow(/unknown cluster/);
  });

  it('plans only the levels that hold every expert and fit the budget', () => {
    const a = resolveCluster(p('a.json'), model);
    const { fits, skipped } = levelsOf(model, a, [1, 2, 3, 4, 5, 6]);
    expect(slotBytes(model)).toBe(2000);
    expect(fits.map((l) => l.slotsPerGpu)).toEqual([2, 3, 4]);
    for (const l of fits) {
      expect(l.memoryBytesPerGpu).toBe(l.slotsPerGpu * 2 * 1000);
      expect(l.memoryBytesPerGpu).toBeLessThanOrEqual(9000);
      expect(l.redundantExperts).toBe(4 * l.slotsPerGpu - 8);
      expect(l.cluster.slotsPerGpu).toBe(l.slotsPerGpu);
    }
    expect(skipped.map((s) => [s.slotsPerGpu, s.memoryBytesPerGpu])).toEqual([
      [1, 2000],
      [5, 10000],
      [6, 12000],
    ]);
    expect(skipped[0].reason).toMatch(/4 slots hold fewer than the 8 experts/);
    expect(skipped[1].reason).toMatch(/exceed the expert memory budget/);
    // An explicit budget replaces the cluster's, capped by the GPU memory.
    expect(levelsOf(model, a, [5, 6], 12000).fits.map((l) => l.slotsPerGpu)).toEqual([5, 6]);
    expect(levelsOf(model, a, [2], 1e15).fits[0].memoryBudgetBytes).toBe(80e9);
  });
});

describe('the fit / score split', () => {
  const trace = randomTrace(2, 8, 2, 300, 10, 1);
  const w: Workload = { kind: 'trace', trace, meta: { format: 'test' } };

  it('splits a trace by request parity, scores counts in-sample, takes a second workload as held-out', () => {
    const s = compareSplit(w);
    expect(s.heldOut).toBe(true);
    expect(s.split).toMatch(/even-numbered requests, scored on the odd-numbered/);
    if (s.fit.kind !== 'trace' || s.score.kind !== 'trace') throw new Error('expected traces');
    expect(s.fit.trace.numTokens + s.score.trace.numTokens).toBe(300);
    expect(s.fit.trace.numRequests).toBe(5);
    const counts: Workload = { kind: 'counts', counts: countsOfTrace(trace), meta: { format: 'test' } };
    const c = compareSplit(counts);
    expect([c.heldOut, c.fit === c.score]).toEqual([false, true]);
    expect(c.split).toMatch(/^in-sample: per-layer counts have no requests/);
    const h = compareSplit(counts, w);
    expect([h.heldOut, h.fit, h.score]).toEqual([true, counts, w]);
    const one: Workload = { kind: 'trace', trace: { ...trace, numRequests: 1, request: new Uint32Array(300) }, meta: { format: 'test' } };
    expect(() => compareSplit(one)).toThrow(/1 request/);
  });
});

describe('compare', () => {
  it('rows per fitting level, mode and solver; throughput consistent with time; shares and scaling exact', async () => {
    const w = await loadWorkload(p('trace.mpt'), model);
    const split = compareSplit(w);
    const clusters = [resolveCompareCluster(p('a.json'), model), resolveCompareCluster(p('b.json'), model)];
    const args = { model, clusters, slotsPerGpu: [1, 2, 3, 4, 5, 6], modes: ['normal', 'low-latency'] as const, solvers: ['eplb', 'round-robin'], split, seed: 1 };
    const out = await compare(args);
    const r = out.result;
    // tiny-a: 2, 3, 4 (1: too few slots; 5, 6: over 9000 bytes); tiny-b: 2..6 (1: too few slots).
    expect(r.rows.length).toBe((3 + 5) * 2 * 2);
    expect(r.skipped.map((s) => `${s.cluster}:${s.slotsPerGpu}`)).toEqual(['tiny-a:1', 'tiny-a:5', 'tiny-a:6', 'tiny-b:1']);
    const scored = split.score.kind === 'trace' ? split.score.trace.numTokens : NaN;
    for (const row of r.rows) {
      expect(row.gpus * row.slotsPerGpu).toBeGreaterThanOrEqual(8);
      expect(row.memoryBytesPerGpu).toBe(row.slotsPerGpu * 2000);
      expect(row.memoryBytesPerGpu).toBeLessThanOrEqual(row.memoryBudgetBytes);
      expect(row.redundantExperts).toBe(row.gpus * row.slotsPerGpu - 8);
      expect(row.batchTokens).toBe(scored);
      close(row.tokensPerSecondPerGpu, row.batchTokens / row.timeSeconds / row.gpus);
      close(row.timeSecondsPerLayer * row.layers, row.timeSeconds);
      close(row.dispatchSecondsPerLayer + row.computeSecondsPerLayer + row.combineSecondsPerLayer, row.timeSecondsPerLayer);
      const s = row.resources.seconds;
      close(s.compute + s.nvlink + s.rdma, row.timeSeconds);
      close(row.resources.shares.compute + row.resources.shares.nvlink + row.resources.shares.rdma, 1);
      expect(s[row.resources.binds]).toBe(Math.max(s.compute, s.nvlink, s.rdma));
    }
    // Every row is its placement scored on the held-out half.
    r.rows.forEach((row, i) => {
      const ev = evaluate({ model, cluster: out.clusters[i], placement: out.placements[i], workload: split.score, options: { mode: row.mode } });
      close(ev.timeSeconds, row.timeSeconds);
      close(ev.interNodeBytes, row.interNodeBytes);
      // The link split of the evaluator: dispatch + combine = max(rdma, nvlink) in every layer.
      for (const m of ev.perLayer) close(m.dispatchSeconds + m.combineSeconds, Math.max(m.rdmaSeconds, m.nvlinkSeconds));
    });
    // The best row per cluster and mode has the most tokens / s per GPU.
    expect(r.best.length).toBe(4);
    for (const b of r.best) {
      const group = r.rows.filter((x) => x.cluster === b.cluster && x.mode === b.mode);
      expect(b.tokensPerSecondPerGpu).toBe(Math.max(...group.map((x) => x.tokensPerSecondPerGpu)));
    }
    expect(bestRows(r.rows)).toEqual(r.best);

    // The same plans at 1000 tokens per GPU: times and bytes scale exactly, the rest does not move.
    const scaled = (await compare({ ...args, tokensPerGpu: 1000 })).result;
    expect(scaled.tokensPerGpu).toBe(1000);
    scaled.rows.forEach((row: CompareRow, i) => {
      const base = r.rows[i];
      const f = (1000 * row.gpus) / base.batchTokens;
      close(row.batchScale, f);
      close(row.batchTokens, 1000 * row.gpus);
      close(row.timeSeconds, base.timeSeconds * f);
      close(row.computeSecondsPerLayer, base.computeSecondsPerLayer * f);
      close(row.interNodeBytes, base.interNodeBytes * f);
      close(row.tokensPerSecondPerGpu, base.tokensPerSecondPerGpu);
      expect(row.balancedness).toBe(base.balancedness);
      expect(row.resources.binds).toBe(base.resources.binds);
    });
  });

  it('says which resource binds from the per-layer split', () => {
    const layer = (compute: number, dispatch: number, combine: number, rdma: number, nvlink: number) => ({
      layer: 0, tokens: 1, interNodeBytes: 0, intraNodeBytes: 0, dispatchSeconds: dispatch, computeSeconds: compute, combineSeconds: combine,
      rdmaSeconds: rdma, nvlinkSeconds: nvlink, timeSeconds: compute + dispatch + combine, maxLoad: 1, meanLoad: 1, balancedness: 1, maxOverMean: 1, remoteNodesPerToken: 0,
    });
    const r = resourceTime([layer(1, 1, 2, 3, 1), layer(1, 0.5, 1, 0.5, 1.5)]);
    expect(r.seconds).toEqual({ compute: 2, rdma: 3, nvlink: 1.5 });
    expect(r.binds).toBe('rdma');
    expect(resourceTime([layer(5, 1, 1, 2, 1)]).binds).toBe('compute');
    expect(resourceTime([]).shares).toEqual({ compute: 0, nvlink: 0, rdma: 0 });
  });

  it('throws when a cluster has no level that fits', async () => {
    const trace = randomTrace(2, 8, 2, 100, 4, 1);
    const split = compareSplit({ kind: 'trace', trace, meta: { format: 'test' } });
    const a = resolveCompareCluster(p('a.json'), model);
    await expect(compare({ model, clusters: [a], slotsPerGpu: [7], split, solvers: ['eplb'] })).rejects.toThrow(/tiny-a: no slots level fits: 7 slots/);
  });
});

describe('moe-placer compare', () => {
  const base = (): string[] => ['compare', '--model', p('model.json'), '--workload', p('trace.mpt'), '--clusters', `${p('a.json')},${p('b.json')}`];

  it('--json: the library result, as JSON; text: the table, the best rows, what was skipped', async () => {
    const flags = ['--slots-per-gpu', '1..3', '--solvers', 'eplb,round-robin', '--modes', 'normal,low-latency'];
    const [jr, tr] = await Promise.all([runCli([...base(), ...flags, '--json']), runCli([...base(), ...flags])]);
    const doc = JSON.parse(ok(jr).stdout) as Record<string, unknown> & { rows: CompareRow[] };
    expect(doc.command).toBe('compare');
    expect(doc.format).toBe('moe-placer.compare/1');
    expect(doc.split).toMatch(/held-out/);
    const w = await loadWorkload(p('trace.mpt'), model);
    const lib = await compare({
      model,
      clusters: [resolveCompareCluster(p('a.json'), model), resolveCompareCluster(p('b.json'), model)],
      slotsPerGpu: [1, 2, 3],
      modes: ['normal', 'low-latency'],
      solvers: ['eplb', 'round-robin'],
      split: compareSplit(w),
    });
    const strip = (rows: CompareRow[]): unknown[] => rows.map(({ planSeconds: _drop, ...rest }) => rest);
    expect(strip(doc.rows)).toEqual(strip(JSON.parse(JSON.stringify(lib.result.rows)) as CompareRow[]));
    expect(doc.skipped).toEqual(lib.result.skipped);
    expect(doc.best).toEqual(lib.result.best);

    const text = ok(tr).stdout;
    expect(text).toMatch(/cluster\s+GPU\s+slots\s+redundant\s+expert mem\/GPU\s+mode\s+solver\s+dispatch ms\s+compute ms\s+combine ms\s+MoE ms\s+tok\/s\/GPU\s+balancedness\s+inter-node\s+binds/);
    expect(text).toContain('best per cluster and mode');
    expect(text).toContain('tiny-a at 1 slots per GPU: 4 GPUs x 1 slots = 4 slots hold fewer than the 8 experts');
    expect(text.split('\n').filter((l) => /^tiny-[ab]\s+H(100|20)\s/.test(l)).length).toBe(doc.rows.length);
    expect(text).toContain('held-out: fitted on the even-numbered requests');
  });

  it('--html writes one self-contained page with the compare data embedded', async () => {
    const r = ok(await runCli([...base(), '--slots-per-gpu', '2', '--solvers', 'eplb,optimize', '--time-limit', '2', '--html', p('c.html'), '--json']));
    const doc = JSON.parse(r.stdout) as { rows: CompareRow[]; html: string };
    expect(doc.html).toBe(p('c.html'));
    const html = readFileSync(p('c.html'), 'utf8');
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/<link\b|@import|url\(\s*["']?https?:/i);
    const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
    const data = JSON.parse(m![1]) as { compare: { rows: CompareRow[] }; plan: { plan: { name: string }; baseline: { name: string } } };
    expect(data.compare.rows.map((x) => x.tokensPerSecondPerGpu)).toEqual(doc.rows.map((x) => x.tokensPerSecondPerGpu));
    expect([data.plan.plan.name, data.plan.baseline.name]).toEqual(['optimize', 'eplb']);
    for (const id of ['compare-table', 'chart-frontier', 'chart-tps', 'chart-compare-time', 'chart-binds', 'chart-heatmap-plan', 'chart-loads-plan', 'chart-layer-time-plan']) {
      expect(html).toContain(`id="${id}"`);
    }
  });

  it('--expert-memory-gb replaces every cluster\'s budget', async () => {
    // 5000 bytes per GPU: 2 slots of 2 x 1000 bytes fit, 3 do not.
    const r = ok(await runCli([...base(), '--slots-per-gpu', '2..3', '--solvers', 'eplb', '--expert-memory-gb', '0.000005', '--json']));
    const doc = JSON.parse(r.stdout) as { rows: CompareRow[]; skipped: { cluster: string; slotsPerGpu: number; memoryBudgetBytes: number; reason: string }[] };
    expect(doc.rows.map((x) => `${x.cluster}:${x.slotsPerGpu}:${x.memoryBudgetBytes}`)).toEqual(['tiny-a:2:5000', 'tiny-b:2:5000']);
    expect(doc.skipped.map((x) => `${x.cluster}:${x.slotsPerGpu}`)).toEqual(['tiny-a:3', 'tiny-b:3']);
    expect(doc.skipped[0].reason).toBe('3 slots x 2 MoE layers x 1.00 kB = 6.00 kB per GPU exceed the expert memory budget of 5.00 kB');
  });

  const cases: { name: string; args: () => string[]; match: RegExp }[] = [
    { name: 'unknown cluster', args: () => ['compare', '--model', 'deepseek-v3', '--workload', p('trace.mpt'), '--clusters', 'h800-4x8,no-such-cluster'], match: /--clusters: unknown cluster "no-such-cluster"/ },
    { name: 'empty slots range', args: () => [...base(), '--slots-per-gpu', '12..8'], match: /--slots-per-gpu: range 12\.\.8 is empty/ },
    { name: 'bad slots', args: () => [...base(), '--slots-per-gpu', 'eight'], match: /--slots-per-gpu: "eight" is not a positive integer/ },
    { name: 'no level fits', args: () => [...base(), '--slots-per-gpu', '7'], match: /--slots-per-gpu: cluster tiny-a at 7 slots per GPU does not fit: .*exceed the expert memory budget/ },
    { name: 'unknown mode', args: () => [...base(), '--modes', 'normal,fast'], match: /--modes: unknown mode "fast"; known: normal, low-latency/ },
    { name: 'unknown solver', args: () => [...base(), '--solvers', 'eplb,magic'], match: /--solvers: unknown solver "magic"/ },
    { name: 'missing clusters', args: () => ['compare', '--model', p('model.json'), '--workload', p('trace.mpt')], match: /missing --clusters/ },
    { name: 'html folder missing', args: () => [...base(), '--html', p('nowhere/c.html')], match: /--html: folder .* does not exist/ },
  ];
  it.each(cases)('exit 2 naming the flag: $name', async ({ args, match }) => {
    const r = await runCli(args());
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(match);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toBe('');
  });
});
