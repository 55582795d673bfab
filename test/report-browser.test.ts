/**
 * The HTML report in a real browser: headless Chromium loads a report of a small generated trace
 * (a plan against EPLB, a compare of two clusters, a replay), runs its script for the layer named
 * in the address (`#layer=N`), and dumps the DOM; every chart must be there with the numbers of the
 * embedded JSON. Then a screenshot, which must be a non-trivial PNG of the window size.
 *
 * Skips (with a message) where no Chromium is installed: Debian `apt-get install chromium`, or
 * set CHROMIUM=/path/to/chrome. `.ci/run` installs it where it can.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes, plan } from '../src/api.js';
import { compare, compareSplit, resolveCompareCluster } from '../src/compare.js';
import { generateTrace } from '../src/generator.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { planSection, reportData, type ReportData } from '../src/report/data.js';
import { renderReportHtml } from '../src/report/html.js';
import { parseReplay } from '../src/report/replay.js';
import type { Workload } from '../src/types.js';
import { elements, embedded, inside, REPLAY } from './report-helpers.js';

/** A Chromium / Chrome binary: $CHROMIUM, else the first of the usual names on PATH. */
function findChromium(): string | null {
  const candidates = process.env.CHROMIUM ? [process.env.CHROMIUM] : [];
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    for (const d of (process.env.PATH ?? '').split(delimiter)) if (d) candidates.push(join(d, name));
    candidates.push(join('/usr/bin', name));
  }
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not this one
    }
  }
  return null;
}

const CHROMIUM = findChromium();
const hasChromium = CHROMIUM !== null;
if (!hasChromium) {
  console.warn('report-browser.test.ts: skipped: no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)');
}

const LAYER = 5;
let dir: string;
let page: string;
let data: ReportData;

function chromium(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      CHROMIUM!,
      ['--headless', '--disable-gpu', '--no-sandbox', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${join(dir, 'profile')}`, ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${CHROMIUM} failed: ${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

beforeAll(async () => {
  if (!hasChromium) return;
  dir = mkdtempSync(join(tmpdir(), 'moe-placer-browser-'));
  const model = resolveModel('deepseek-v2-lite');
  const trace = generateTrace({ model, tokens: 4000, requests: 40, seed: 7 });
  const workload: Workload = { kind: 'trace', trace, meta: { format: 'generated' } };
  const split = compareSplit(workload);
  const cluster = resolveCluster('h800-4x8', model, { slotsPerGpu: 3 });
  const ours = await plan({ model, cluster, workload: split.fit, solver: 'optimize', objective: 'balance', seed: 1 });
  const eplb = await plan({ model, cluster, workload: split.fit, solver: 'eplb', seed: 1 });
  const section = planSection({
    model,
    cluster,
    workload: split.score,
    workloadLabel: 'generated trace, odd-numbered requests',
    mode: 'normal',
    plan: { name: 'optimize', placement: ours.result.placement },
    baseline: { name: 'eplb', placement: eplb.result.placement },
  });
  const cmp = await compare({
    model,
    clusters: [resolveCompareCluster('h800-4x8', model), resolveCompareCluster('h20-4x8', model)],
    slotsPerGpu: [2, 3],
    solvers: ['eplb', 'round-robin'],
    split,
  });
  data = reportData('moe-placer browser test', { plan: section, compare: cmp.result, replay: parseReplay(REPLAY) }, ['generated for test/report-browser.test.ts']);
  page = join(dir, 'report.html');
  writeFileSync(page, renderReportHtml(data));
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the report in Chromium', () => {
  it.skipIf(!hasChromium)('runs its script and shows every chart with the numbers of the embedded JSON', async () => {
    const dom = await chromium(['--dump-dom', `${pathToFileURL(page).href}#layer=${LAYER}`]);
    expect(embedded(dom)).toEqual(JSON.parse(JSON.stringify(data)));
    const P = data.plan!;
    const U = P.units;
    expect(U).toBe(32);
    // The layer chosen in the address is the one drawn.
    expect(elements(dom, 'section', (a) => a.id === 'layer-panel')[0]['data-layer']).toBe(String(LAYER));
    expect(inside(dom, 'layer-caption')).toContain(`MoE layer ${LAYER} (engine layer ${P.layers[LAYER].engineLayer})`);
    for (const key of ['plan', 'baseline'] as const) {
      const view = P[key]!;
      const heat = inside(dom, `chart-heatmap-${key}`);
      expect(elements(dom, 'svg', (a) => a.id === `chart-heatmap-${key}`)[0]['data-layer']).toBe(String(LAYER));
      const cells = elements(heat, 'rect', (a) => a.class === 'cell');
      expect(cells.length).toBe(U * U);
      for (const c of cells) expect(Number(c['data-bytes'])).toBe(view.traffic[LAYER][Number(c['data-src']) * U + Number(c['data-dst'])]);
      const bars = elements(inside(dom, `chart-loads-${key}`), 'rect', (a) => a.class === 'bar');
      expect(bars.map((b) => Number(b['data-load']))).toEqual(view.loads[LAYER]);
      expect(bars.map((b) => Number(b['data-gpu']))).toEqual(view.loads[LAYER].map((_, g) => g));
      const bound = elements(inside(dom, `chart-loads-${key}`), 'line', (a) => a.class === 'bound');
      expect(Number(bound[0]['data-load'])).toBe(P.layers[LAYER].maxLoadLowerBound);
      const stats = elements(inside(dom, `layer-stats-${key}`), 'span', (a) => a.class === 'stat').map((s) => Number(s['data-value']));
      const m = view.perLayer[LAYER];
      expect(stats).toEqual([m.interNodeBytes, m.intraNodeBytes, m.maxLoad, m.balancedness, m.timeSeconds]);
    }
    // Shown text equals the JSON's numbers, formatted.
    expect(inside(dom, 'kpi-inter')).toContain(formatBytes(P.plan.summary.interNodeBytes));
    const summary = elements(inside(dom, 'summary-table'), 'td', (a) => a['data-metric'] === 'balancedness');
    expect(summary.map((c) => Number(c['data-value']))).toEqual([P.plan.summary.balancedness, P.baseline!.summary.balancedness]);
    // Static charts: present, marks from the data.
    const L = P.layers.length;
    const marks = (id: string, tag = 'rect'): Record<string, string>[] => elements(inside(dom, id), tag, (a) => a.class === 'mark');
    expect(marks('chart-layer-time-plan').length).toBe(3 * L);
    expect(marks('chart-layer-time-baseline').length).toBe(3 * L);
    expect(marks('chart-layer-traffic', 'circle').map((c) => Number(c['data-value']))).toEqual([...P.plan.perLayer, ...P.baseline!.perLayer].map((x) => x.interNodeBytes));
    expect(marks('chart-layer-balance', 'circle').length).toBe(2 * L);
    const C = data.compare!;
    const frontier = [...marks('chart-frontier', 'circle'), ...marks('chart-frontier', 'rect')].sort((a, b) => Number(a['data-index']) - Number(b['data-index']));
    expect(frontier.map((f) => [Number(f['data-x']), Number(f['data-y'])])).toEqual(C.rows.map((r) => [r.interNodeBytes, r.balancedness]));
    expect(marks('chart-tps').map((b) => Number(b['data-value']))).toEqual(C.rows.map((r) => r.tokensPerSecondPerGpu));
    expect(marks('chart-compare-time').length).toBe(3 * C.rows.length);
    expect(marks('chart-binds').length).toBe(3 * C.rows.length);
    const tableTps = elements(inside(dom, 'compare-table'), 'td', (a) => a['data-field'] === 'tokensPerSecondPerGpu');
    expect(tableTps.map((c) => Number(c['data-value']))).toEqual(C.rows.map((r) => r.tokensPerSecondPerGpu));
    for (const id of ['chart-replay-balancedness', 'chart-replay-moved', 'chart-replay-time']) expect(marks(id, 'circle').length).toBe(6);
  });

  it.skipIf(!hasChromium)('takes a screenshot: a PNG of the window, not blank', async () => {
    const png = join(dir, 'report.png');
    await chromium([`--screenshot=${png}`, '--window-size=1400,2000', pathToFileURL(page).href]);
    const buf = readFileSync(png);
    expect(buf.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(buf.toString('ascii', 12, 16)).toBe('IHDR');
    expect([buf.readUInt32BE(16), buf.readUInt32BE(20)]).toEqual([1400, 2000]);
    // A blank page compresses to a few kB; charts and tables do not.
    expect(buf.length).toBeGreaterThan(60_000);
    if (process.env.MOE_PLACER_KEEP_SCREENSHOT) writeFileSync(process.env.MOE_PLACER_KEEP_SCREENSHOT, buf);
  });
});
