/**
 * The HTML report (src/report/, `moe-placer report`) without a browser: the replay schema, the
 * data it embeds (round trip, numbers against the evaluator), self-containment, chart marks
 * against the data, node x node heatmaps on large clusters, and the CLI's exit codes.
 * test/report-browser.test.ts renders the page in Chromium.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eplbPlacement } from '../src/eplb.js';
import { roundRobinPlacement } from '../src/solvers/round-robin.js';
import { evaluate } from '../src/cost.js';
import { InputError } from '../src/errors.js';
import { planSection, reportData } from '../src/report/data.js';
import { embedJson, renderReportHtml } from '../src/report/html.js';
import { parseReplay } from '../src/report/replay.js';
import { makeShape, type Workload } from '../src/types.js';
import { writeTrace } from '../src/workload/index.js';
import { countsOfTrace } from '../src/workload/tokens.js';
import { ensureBuilt, runCli, type RunResult } from './cli-helpers.js';
import { elements, embedded, inside, REPLAY } from './report-helpers.js';
import { randomTrace, TINY_CLUSTER, TINY_MODEL, tinyCluster, tinyModel } from './plan-fixtures.js';

let dir: string;
const p = (name: string): string => join(dir, name);

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

beforeAll(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'moe-placer-report-'));
  writeFileSync(p('model.json'), JSON.stringify(TINY_MODEL));
  writeFileSync(p('cluster.json'), JSON.stringify(TINY_CLUSTER));
  writeFileSync(p('replay.json'), JSON.stringify(REPLAY));
  await writeTrace(p('trace.mpt'), randomTrace(2, 8, 2, 400, 16, 2));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('replay input', () => {
  it('reads the replay --json shape, ignoring extra fields', () => {
    const r = parseReplay(REPLAY);
    expect(r.policies.map((x) => x.name)).toEqual(['static', 'eplb']);
    expect(r.policies[0].perWindow[0]).toEqual({ window: 1, balancedness: 0.75, timeSeconds: 0.01, interNodeBytes: 1e9, movedBytes: 0 });
  });

  it('names the bad field', () => {
    const bad = (mutate: (r: typeof REPLAY) => void): string[] => {
      const r = JSON.parse(JSON.stringify(REPLAY)) as typeof REPLAY;
      mutate(r);
      try {
        parseReplay(r, 'x.json');
      } catch (err) {
        expect(err).toBeInstanceOf(InputError);
        return [...(err as InputError).problems];
      }
      throw new Error('accepted');
    };
    expect(bad((r) => (r.policies[0].perWindow[1].balancedness = 1.5))[0]).toMatch(/^x\.json: replay\.policies\[0\]\.perWindow\[1\]\.balancedness: /);
    expect(bad((r) => (r.policies[1].perWindow[2].window = 9))[0]).toMatch(/replay\.policies\[1\]\.perWindow\[2\]\.window: window 9 is out of range: the replay has 4 windows/);
    expect(bad((r) => (r.policies[1].perWindow[2].window = 1))[0]).toMatch(/window 1 is listed twice for policy eplb/);
    expect(bad((r) => ((r as { format: string }).format = 'moe-placer.plan/1'))[0]).toMatch(/replay\.format/);
    expect(bad((r) => delete (r.policies[0].perWindow[0] as Partial<(typeof r.policies)[0]['perWindow'][0]>).movedBytes)[0]).toMatch(/replay\.policies\[0\]\.perWindow\[0\]\.movedBytes/);
  });
});

describe('report data and page', () => {
  const model = tinyModel();
  const shape = makeShape(2, 2, 3);
  const cluster = tinyCluster(shape);
  const trace = randomTrace(2, 8, 2, 300, 12, 4);
  const workload: Workload = { kind: 'trace', trace, meta: { format: 'test' } };
  const counts = countsOfTrace(trace).counts;
  const plan = { name: 'round-robin', placement: roundRobinPlacement(counts, 8, shape) };
  const baseline = { name: 'eplb', placement: eplbPlacement(counts, 8, shape) };

  it('embeds its data exactly: the page round-trips, every number as the evaluator gives it', () => {
    const section = planSection({ model, cluster, workload, workloadLabel: 'test trace', mode: 'normal', plan, baseline });
    const data = reportData('a </script> title', { plan: section, replay: parseReplay(REPLAY) }, ['a note']);
    const html = renderReportHtml(data);
    expect(embedded(html)).toEqual(JSON.parse(JSON.stringify(data)));
    expect(embedJson({ s: '</script><b>' })).not.toContain('</script>');
    const ev = evaluate({ model, cluster, placement: plan.placement, workload, trafficMatrix: true });
    expect(section.plan.summary.interNodeBytes).toBe(ev.interNodeBytes);
    expect(section.plan.perLayer.map((m) => m.timeSeconds)).toEqual(ev.perLayer.map((m) => m.timeSeconds));
    expect(section.plan.traffic).toEqual(ev.trafficMatrix!.map((m) => Array.from(m, Math.round)));
    expect(section.units).toBe(4);
    expect(section.trafficUnit).toBe('gpu');
    expect(section.layers.map((l) => l.engineLayer)).toEqual([1, 2]);
    const mostInter = ev.perLayer[0].interNodeBytes >= ev.perLayer[1].interNodeBytes ? 0 : 1;
    expect(section.defaultLayer).toBe(mostInter);
  });

  it('is self-contained and draws every chart from the data', () => {
    const section = planSection({ model, cluster, workload, workloadLabel: 'test trace', mode: 'low-latency', plan, baseline });
    const html = renderReportHtml(reportData('t', { plan: section, replay: parseReplay(REPLAY) }));
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/<link\b|@import|url\(\s*["']?https?:|https?:\/\//i);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    for (const id of ['summary-table', 'layer-select', 'chart-heatmap-plan', 'chart-heatmap-baseline', 'chart-loads-plan', 'chart-loads-baseline', 'chart-layer-time-plan', 'chart-layer-time-baseline', 'chart-layer-traffic', 'chart-layer-balance', 'chart-replay-balancedness', 'chart-replay-moved', 'chart-replay-time']) {
      expect(html, id).toContain(`id="${id}"`);
    }
    // Summary cells carry the exact numbers.
    const cells = elements(inside(html, 'summary-table'), 'td', (a) => a['data-metric'] === 'interNodeBytes');
    expect(cells.map((c) => Number(c['data-value']))).toEqual([section.plan.summary.interNodeBytes, section.baseline!.summary.interNodeBytes]);
    // Per-layer time: one rect per layer and part, values from the data.
    const rects = elements(inside(html, 'chart-layer-time-plan'), 'rect', (a) => a.class === 'mark');
    expect(rects.length).toBe(2 * 3);
    for (const r of rects) {
      const m = section.plan.perLayer[Number(r['data-index'])];
      const key = `${r['data-series']}Seconds` as 'dispatchSeconds' | 'computeSeconds' | 'combineSeconds';
      expect(Number(r['data-value'])).toBe(m[key]);
    }
    const overlay = elements(inside(html, 'chart-layer-time-plan'), 'circle', (a) => a.class === 'mark');
    expect(overlay.map((c) => Number(c['data-value']))).toEqual(section.baseline!.perLayer.map((m) => m.timeSeconds));
    // Replay lines: one point per (policy, window it has).
    const moved = elements(inside(html, 'chart-replay-moved'), 'circle', (a) => a.class === 'mark');
    expect(moved.map((c) => [c['data-series'], Number(c['data-index']), Number(c['data-value'])])).toEqual(
      REPLAY.policies.flatMap((pol) => pol.perWindow.map((w) => [pol.name, w.window, w.movedBytes])),
    );
    // The layer options, the default one selected.
    const options = elements(inside(html, 'layer-select'), 'option');
    expect(options.map((o) => Number(o.value))).toEqual([0, 1]);
    expect(inside(html, 'layer-select')).toContain(`value="${section.defaultLayer}" selected`);
  });

  it('draws node x node heatmaps above 64 GPUs, with the same bytes', () => {
    const big = makeShape(9, 8, 1);
    const bigCluster = tinyCluster(big);
    const placement = roundRobinPlacement(counts, 8, big);
    const section = planSection({ model, cluster: bigCluster, workload, workloadLabel: 'w', mode: 'normal', plan: { name: 'rr', placement } });
    expect([section.trafficUnit, section.units, section.baseline]).toEqual(['node', 9, null]);
    const ev = evaluate({ model, cluster: bigCluster, placement, workload, trafficMatrix: true });
    for (let l = 0; l < 2; l++) {
      const gpuTotal = ev.trafficMatrix![l].reduce((s, x) => s + x, 0);
      const nodeTotal = section.plan.traffic[l].reduce((s, x) => s + x, 0);
      expect(Math.abs(nodeTotal - gpuTotal)).toBeLessThanOrEqual(81); // 81 rounded cells
      expect(section.plan.loads[l].length).toBe(72);
    }
    expect(section.notes.join(' ')).toMatch(/node x node/);
  });

  it('scales every extensive figure to a batch size, leaving throughput alone', () => {
    const one = planSection({ model, cluster, workload, workloadLabel: 'w', mode: 'normal', plan });
    const big = planSection({ model, cluster, workload, workloadLabel: 'w', mode: 'normal', plan, batchTokens: 3000 });
    const f = 3000 / one.plan.summary.batchTokens;
    expect(big.plan.summary.timeSeconds).toBeCloseTo(one.plan.summary.timeSeconds * f, 12);
    expect(big.plan.perLayer[1].interNodeBytes).toBeCloseTo(one.plan.perLayer[1].interNodeBytes * f, 3);
    expect(big.layers[0].maxLoadLowerBound).toBeCloseTo(one.layers[0].maxLoadLowerBound * f, 1);
    expect(big.plan.summary.tokensPerSecondPerGpu).toBeCloseTo(one.plan.summary.tokensPerSecondPerGpu, 6);
  });
});

describe('moe-placer report', () => {
  it('writes the page for a plan against EPLB on the workload, with a replay', async () => {
    ok(await runCli(['plan', '--model', p('model.json'), '--cluster', p('cluster.json'), '--workload', p('trace.mpt'), '--solver', 'round-robin', '--out', p('plan.json')]));
    const r = ok(await runCli(['report', '--plan', p('plan.json'), '--workload', p('trace.mpt'), '--replay', p('replay.json'), '--out', p('r.html'), '--json']));
    const doc = JSON.parse(r.stdout) as { bytes: number; baseline: string; sections: string[]; notes: string[] };
    expect(doc.baseline).toBe('eplb');
    expect(doc.sections).toEqual(['plan', 'replay']);
    expect(doc.notes.join(' ')).toMatch(/is the workload the plan was fitted on: in-sample for round-robin/);
    expect(doc.notes.join(' ')).toMatch(/in-sample for EPLB/);
    const html = readFileSync(p('r.html'), 'utf8');
    expect(Buffer.byteLength(html)).toBe(doc.bytes);
    const data = embedded(html);
    expect(data.plan!.plan.name).toBe('round-robin');
    expect(data.replay!.policies.length).toBe(2);
    // A baseline file instead of EPLB; text output.
    ok(await runCli(['plan', '--model', p('model.json'), '--cluster', p('cluster.json'), '--workload', p('trace.mpt'), '--solver', 'contiguous', '--out', p('base.json')]));
    const t = ok(await runCli(['report', '--plan', p('plan.json'), '--workload', p('trace.mpt'), '--baseline', p('base.json'), '--out', p('r2.html')]));
    expect(t.stdout).toMatch(/^wrote .*r2\.html \([\d,]+ bytes\): round-robin vs contiguous on /);
    expect(embedded(readFileSync(p('r2.html'), 'utf8')).plan!.baseline!.name).toBe('contiguous');
  });

  it('exit 2 on bad input, naming the flag or field, writing nothing', async () => {
    writeFileSync(p('bad-replay.json'), JSON.stringify({ ...REPLAY, windows: [] }));
    const cases: [string[], RegExp][] = [
      [['--replay', p('bad-replay.json')], /^moe-placer: \S*bad-replay\.json: replay\.windows: /],
      [['--replay', p('none.json')], /none\.json/],
      [['--baseline', p('none.json')], /^moe-placer: \S*none\.json: no such file/],
      [['--mode', 'fast'], /--mode: expected one of normal, low-latency/],
    ];
    for (const [extra, match] of cases) {
      const r = await runCli(['report', '--plan', p('plan.json'), '--workload', p('trace.mpt'), '--out', p('bad.html'), ...extra]);
      expect(r.code, `${extra.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(match);
    }
    const missing = await runCli(['report', '--plan', p('plan.json'), '--out', p('bad.html')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing --workload/);
    expect(() => readFileSync(p('bad.html'))).toThrow();
  });
});
