/**
 * The HTML report: one self-contained file (inline CSS, inline SVG, one inline script, the data
 * embedded as JSON; no network, no external file) built from a `ReportData` (report/data.ts).
 *
 * Sections, each present when its data is:
 * - plan: the summary of the plan and its baseline side by side; a layer selector driving the GPU x
 *   GPU traffic heatmaps and the per-GPU load bars against the max-load bound (drawn by the page
 *   script, report/page-script.ts); the per-layer time breakdown (dispatch / compute / combine) of
 *   each; inter-node bytes and balancedness per layer.
 * - compare: the table of rows, the best row per cluster and mode, the frontier (balancedness
 *   against inter-node bytes), tokens/s per GPU, the time split and the binding resource per row.
 * - replay: balancedness, moved bytes and MoE time per window, one line per policy.
 *
 * Charts have ids (`chart-...`) and their marks data attributes (report/svg.ts); tables carry
 * `data-value` on each number cell: the page can be checked against the embedded JSON.
 */
import { formatBytes } from '../api.js';
import type { CompareResult, CompareRow } from '../compare.js';
import type { PlanSection, PlacementView, ReportData } from './data.js';
import { PAGE_SCRIPT } from './page-script.js';
import type { Replay } from './replay.js';
import { esc, lineChart, PALETTE, PART_COLORS, scatterChart, stackedBars, stackedColumns, type Series } from './svg.js';

/** x with `d` decimals and thousands separators. */
export function fmtNum(x: number, d = 0): string {
  if (!Number.isFinite(x)) return String(x);
  const [int, frac] = Math.abs(x).toFixed(d).split('.');
  return `${x < 0 ? '-' : ''}${int.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}${frac !== undefined ? `.${frac}` : ''}`;
}

/** Seconds as milliseconds, 3 significant-ish digits. */
export function fmtMs(seconds: number): string {
  const v = seconds * 1000;
  return `${fmtNum(v, v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3)} ms`;
}

const fmtPct = (x: number): string => `${(x * 100).toFixed(0)}%`;
const fmtLoad = (x: number): string => fmtNum(x, Number.isInteger(x) ? 0 : 1);

/** The embedded data: JSON with `<` escaped so that no `</script>` can end the element early. */
export function embedJson(data: unknown): string {
  return JSON.stringify(data).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const CSS = `
:root { --ink: #1f2430; --muted: #5b6170; --line: #e4e6eb; --card: #fff; --bg: #f5f6f8; --accent: #4e79a7; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { background: #1f2a3a; color: #fff; padding: 22px 32px 18px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .sub { color: #c9d2e0; font-size: 13px; }
main { max-width: 1320px; margin: 0 auto; padding: 18px 24px 40px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px 18px; margin: 0 0 18px; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
h2 { font-size: 17px; margin: 0 0 10px; font-weight: 600; }
h3 { font-size: 14px; margin: 14px 0 6px; font-weight: 600; color: #333; }
p.note, ul.notes { color: var(--muted); font-size: 12.5px; margin: 6px 0 0; }
ul.notes { padding-left: 18px; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
th, td { padding: 4px 7px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; background: #fafbfc; }
th.group { text-align: center; border-bottom: 1px solid #d5d9e0; }
#compare-table { font-size: 12px; }
#compare-table th { white-space: normal; vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #f1f7ee; }
.better { color: #2f7d32; } .worse { color: #b3261e; }
.scroll { overflow-x: auto; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 14px 22px; }
.grid2 > div { min-width: 0; }
.layer-bar { display: flex; align-items: center; gap: 12px; margin: 2px 0 10px; flex-wrap: wrap; }
select { font: inherit; padding: 3px 6px; border: 1px solid #c7cbd3; border-radius: 5px; background: #fff; }
#layer-caption { color: var(--muted); }
.stats { display: flex; gap: 14px; flex-wrap: wrap; font-size: 12.5px; color: #333; margin: 2px 0 4px; }
.stats b { color: var(--muted); font-weight: 600; margin-right: 3px; }
.kpis { display: flex; gap: 12px; flex-wrap: wrap; margin: 4px 0 12px; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 150px; background: #fbfcfd; }
.kpi .k { color: var(--muted); font-size: 12px; } .kpi .v { font-size: 18px; font-weight: 600; }
.tag { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11.5px; background: #eef1f6; color: #334; }
.tag.compute { background: #fde9d6; } .tag.rdma { background: #fbe0e0; } .tag.nvlink { background: #dfeaf6; }
svg.chart { display: block; max-width: 100%; height: auto; }
.muted { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 8px 0 24px; }
`;

function notesList(notes: readonly string[]): string {
  return notes.length > 0 ? `<ul class="notes">${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '';
}

/** A number cell: the text shown and the exact value in `data-value`. */
function numCell(value: number, text: string, attrs = ''): string {
  return `<td class="num"${attrs} data-value="${value}">${esc(text)}</td>`;
}

/** Relative change of b against a, signed, with a colour for better / worse (`lowerIsBetter`). */
function changeCell(a: number, b: number, lowerIsBetter: boolean): string {
  if (a === 0) return '<td class="num">-</td>';
  const r = (b - a) / Math.abs(a);
  const cls = Math.abs(r) < 0.0005 ? '' : (r < 0) === lowerIsBetter ? 'better' : 'worse';
  return `<td class="num ${cls}">${r >= 0 ? '+' : ''}${(r * 100).toFixed(1)}%</td>`;
}

// ---------------------------------------------------------------------------------------------
// Plan section

interface Metric {
  key: string;
  label: string;
  get: (v: PlacementView) => number;
  fmt: (x: number) => string;
  lowerIsBetter: boolean;
}

const PLAN_METRICS: Metric[] = [
  { key: 'interNodeBytes', label: 'inter-node bytes (RDMA)', get: (v) => v.summary.interNodeBytes, fmt: formatBytes, lowerIsBetter: true },
  { key: 'intraNodeBytes', label: 'intra-node bytes (NVLink)', get: (v) => v.summary.intraNodeBytes, fmt: formatBytes, lowerIsBetter: true },
  { key: 'remoteNodesPerToken', label: 'remote nodes per token', get: (v) => v.summary.remoteNodesPerToken, fmt: (x) => x.toFixed(3), lowerIsBetter: true },
  { key: 'balancedness', label: 'balancedness (mean / max load)', get: (v) => v.summary.balancedness, fmt: (x) => x.toFixed(3), lowerIsBetter: false },
  { key: 'maxOverMean', label: 'max / mean load', get: (v) => v.summary.maxOverMean, fmt: (x) => x.toFixed(3), lowerIsBetter: true },
  { key: 'maxLoad', label: 'max GPU load', get: (v) => v.summary.maxLoad, fmt: fmtLoad, lowerIsBetter: true },
  { key: 'dispatchSecondsPerLayer', label: 'dispatch per layer', get: (v) => v.summary.dispatchSecondsPerLayer, fmt: fmtMs, lowerIsBetter: true },
  { key: 'computeSecondsPerLayer', label: 'compute per layer', get: (v) => v.summary.computeSecondsPerLayer, fmt: fmtMs, lowerIsBetter: true },
  { key: 'combineSecondsPerLayer', label: 'combine per layer', get: (v) => v.summary.combineSecondsPerLayer, fmt: fmtMs, lowerIsBetter: true },
  { key: 'timeSeconds', label: 'MoE time, all layers', get: (v) => v.summary.timeSeconds, fmt: fmtMs, lowerIsBetter: true },
  { key: 'tokensPerSecondPerGpu', label: 'tokens / s per GPU (MoE layers)', get: (v) => v.summary.tokensPerSecondPerGpu, fmt: (x) => fmtNum(x), lowerIsBetter: false },
];

function summaryTable(p: PlanSection): string {
  const views = [p.plan, ...(p.baseline ? [p.baseline] : [])];
  const head = `<tr><th>metric</th>${views.map((v) => `<th class="num">${esc(v.name)}</th>`).join('')}${p.baseline ? `<th class="num">${esc(p.plan.name)} vs ${esc(p.baseline.name)}</th>` : ''}</tr>`;
  const rows = PLAN_METRICS.map((m) => {
    const cells = views.map((v, i) => numCell(m.get(v), m.fmt(m.get(v)), ` data-placement="${i === 0 ? 'plan' : 'baseline'}" data-metric="${m.key}"`)).join('');
    const change = p.baseline ? changeCell(m.get(p.baseline), m.get(p.plan), m.lowerIsBetter) : '';
    return `<tr><td>${esc(m.label)}</td>${cells}${change}</tr>`;
  });
  const binds = `<tr><td>binds (share of the MoE time)</td>${views
    .map((v) => `<td class="num" data-metric="binds" data-value="${v.summary.resources.binds}">${bindsText(v.summary.resources)}</td>`)
    .join('')}${p.baseline ? '<td></td>' : ''}</tr>`;
  return `<div class="scroll"><table id="summary-table"><thead>${head}</thead><tbody>${rows.join('')}${binds}</tbody></table></div>`;
}

/** The binding resource as a tag, with every share (or, `short`, its own share only). */
function bindsText(r: CompareRow['resources'], short = false): string {
  if (short) return `<span class="tag ${r.binds}">${RESOURCE_NAMES[r.binds]}</span> ${fmtPct(r.shares[r.binds])}`;
  const parts = (['compute', 'nvlink', 'rdma'] as const).filter((k) => r.shares[k] >= 0.005).map((k) => `${RESOURCE_NAMES[k]} ${fmtPct(r.shares[k])}`);
  return `<span class="tag ${r.binds}">${RESOURCE_NAMES[r.binds]}</span> <span class="muted">${esc(parts.join(', '))}</span>`;
}

const RESOURCE_NAMES = { compute: 'compute', nvlink: 'NVLink', rdma: 'RDMA' } as const;

function planHtml(p: PlanSection): string {
  const out: string[] = [];
  const c = p.cluster;
  const NG = c.nodes * c.gpusPerNode;
  const b = p.baseline;
  const cats = p.layers.map((l) => String(l.engineLayer));
  out.push(`<section class="card" id="plan-summary"><h2>${esc(p.plan.name)}${b ? ` vs ${esc(b.name)}` : ''}: ${esc(p.model)} on ${esc(c.name)}</h2>`);
  out.push(
    `<p class="note">${esc(`${c.nodes} nodes x ${c.gpusPerNode} ${c.gpu} (${NG} GPUs), ${c.slotsPerGpu} slots per GPU; ${p.mode} mode; scored on ${p.workload}; batch ${fmtNum(p.plan.summary.batchTokens)} tokens`)}</p>`,
  );
  out.push('<div class="kpis">');
  const kpi = (k: string, v: string, id: string, value: number): string => `<div class="kpi" id="${id}" data-value="${value}"><div class="k">${esc(k)}</div><div class="v">${esc(v)}</div></div>`;
  out.push(kpi(`${p.plan.name}: tokens / s per GPU`, fmtNum(p.plan.summary.tokensPerSecondPerGpu), 'kpi-tps', p.plan.summary.tokensPerSecondPerGpu));
  out.push(kpi(`${p.plan.name}: inter-node bytes`, formatBytes(p.plan.summary.interNodeBytes), 'kpi-inter', p.plan.summary.interNodeBytes));
  out.push(kpi(`${p.plan.name}: balancedness`, p.plan.summary.balancedness.toFixed(3), 'kpi-balance', p.plan.summary.balancedness));
  if (b) out.push(kpi(`MoE time vs ${b.name}`, `${p.plan.summary.timeSeconds >= b.summary.timeSeconds ? '+' : ''}${((p.plan.summary.timeSeconds / b.summary.timeSeconds - 1) * 100).toFixed(1)}%`, 'kpi-time-change', p.plan.summary.timeSeconds / b.summary.timeSeconds - 1));
  out.push('</div>');
  out.push(summaryTable(p));
  out.push(notesList(p.notes));
  out.push('</section>');

  // The layer panel: drawn by the page script.
  const options = p.layers.map((l) => `<option value="${l.layer}"${l.layer === p.defaultLayer ? ' selected' : ''}>MoE layer ${l.layer} (engine ${l.engineLayer})</option>`).join('');
  const unit = p.trafficUnit === 'node' ? 'node x node' : 'GPU x GPU';
  const col = (key: 'plan' | 'baseline', v: PlacementView): string =>
    `<div><h3>${esc(v.name)}: ${unit} traffic (dispatch + combine bytes)</h3><div class="stats" id="layer-stats-${key}"></div>` +
    `<svg id="chart-heatmap-${key}" class="chart heatmap" data-chart="heatmap" viewBox="0 0 512 522" width="100%"></svg>` +
    `<h3>${esc(v.name)}: load per GPU against the max-load lower bound</h3><svg id="chart-loads-${key}" class="chart loads" data-chart="loads" viewBox="0 0 512 250" width="100%"></svg></div>`;
  out.push(
    `<section class="card" id="layer-panel" data-layer="${p.defaultLayer}"><h2>One layer</h2>` +
      `<div class="layer-bar"><label for="layer-select">layer</label><select id="layer-select">${options}</select><span id="layer-caption"></span></div>` +
      `<noscript><p class="note">The heatmaps and load bars are drawn by the page's inline script; enable JavaScript to see them.</p></noscript>` +
      `<div class="grid2">${col('plan', p.plan)}${b ? col('baseline', b) : ''}</div>` +
      `<p class="note">Rows send, columns receive; ${p.trafficUnit === 'gpu' ? 'white lines separate nodes (blocks on the diagonal are NVLink traffic inside a node, the rest crosses nodes by RDMA)' : 'the diagonal is traffic inside a node'}. Both heatmaps share one colour scale, both load charts one axis.</p></section>`,
  );

  // Per-layer time breakdown.
  const timeSeries = (v: PlacementView): Series[] => [
    { name: 'dispatch', color: PART_COLORS.dispatch, values: v.perLayer.map((m) => m.dispatchSeconds) },
    { name: 'compute', color: PART_COLORS.compute, values: v.perLayer.map((m) => m.computeSeconds) },
    { name: 'combine', color: PART_COLORS.combine, values: v.perLayer.map((m) => m.combineSeconds) },
  ];
  const yMax = Math.max(...p.plan.perLayer.map((m) => m.timeSeconds), ...(b ? b.perLayer.map((m) => m.timeSeconds) : []));
  out.push('<section class="card" id="layer-times"><h2>Estimated MoE time per layer</h2>');
  out.push(`<h3>${esc(p.plan.name)}${b ? ` (dashed: ${esc(b.name)}'s total)` : ''}</h3>`);
  out.push(
    stackedColumns({
      id: 'chart-layer-time-plan',
      categories: cats,
      series: timeSeries(p.plan),
      overlay: b ? { name: `${b.name} total`, color: '#333', values: b.perLayer.map((m) => m.timeSeconds) } : undefined,
      yLabel: 'ms',
      xLabel: 'engine layer',
      format: (x) => fmtNum(x * 1000, yMax * 1000 >= 10 ? 0 : 2),
      yMax,
    }),
  );
  if (b) {
    out.push(`<h3>${esc(b.name)}</h3>`);
    out.push(stackedColumns({ id: 'chart-layer-time-baseline', categories: cats, series: timeSeries(b), yLabel: 'ms', xLabel: 'engine layer', format: (x) => fmtNum(x * 1000, yMax * 1000 >= 10 ? 0 : 2), yMax }));
  }
  out.push('<p class="note">Layer time = dispatch + compute + combine of the cost model: the busiest GPU\'s link and the busiest GPU\'s expert GEMMs.</p></section>');

  const views = [p.plan, ...(b ? [b] : [])];
  out.push('<section class="card" id="layer-traffic"><h2>Per layer, side by side</h2><h3>Inter-node bytes</h3>');
  out.push(
    lineChart({
      id: 'chart-layer-traffic',
      categories: cats,
      series: views.map((v, i) => ({ name: v.name, color: PALETTE[i], values: v.perLayer.map((m) => m.interNodeBytes) })),
      yLabel: 'inter-node bytes',
      xLabel: 'engine layer',
      format: formatBytes,
      yMin: 0,
      height: 250,
    }),
  );
  out.push('<h3>Balancedness (mean / max GPU load)</h3>');
  out.push(
    lineChart({
      id: 'chart-layer-balance',
      categories: cats,
      series: views.map((v, i) => ({ name: v.name, color: PALETTE[i], values: v.perLayer.map((m) => m.balancedness) })),
      yLabel: 'balancedness',
      xLabel: 'engine layer',
      format: (x) => x.toFixed(2),
      yMax: 1,
      height: 250,
    }),
  );
  out.push('</section>');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Compare section

/** Short label of a compare row. */
export function rowLabel(r: CompareRow): string {
  return `${r.cluster} · ${r.slotsPerGpu} slots · ${r.mode} · ${r.solver}`;
}

function compareTable(c: CompareResult): string {
  const bestRows = new Set(c.best.map((b) => b.row));
  const head =
    '<tr><th rowspan="2">cluster</th><th rowspan="2">GPU</th><th class="num" rowspan="2">slots</th><th class="num" rowspan="2">redundant</th><th class="num" rowspan="2">expert memory / GPU</th>' +
    '<th rowspan="2">mode</th><th rowspan="2">solver</th><th class="num group" colspan="3">per MoE layer</th><th class="num" rowspan="2">MoE time</th>' +
    '<th class="num" rowspan="2">tokens / s per GPU</th><th class="num" rowspan="2">balanced</th><th class="num" rowspan="2">inter-node</th><th rowspan="2">binds</th></tr>' +
    '<tr><th class="num">dispatch</th><th class="num">compute</th><th class="num">combine</th></tr>';
  const rows = c.rows.map((r, i) => {
    const mem = `${formatBytes(r.memoryBytesPerGpu)} / ${formatBytes(r.memoryBudgetBytes)}`;
    return (
      `<tr data-row="${i}"${bestRows.has(i) ? ' class="best"' : ''}><td>${esc(r.cluster)}</td><td>${esc(`${r.gpu} x ${r.gpus}`)}</td>` +
      numCell(r.slotsPerGpu, String(r.slotsPerGpu), ' data-field="slotsPerGpu"') +
      numCell(r.redundantExperts, String(r.redundantExperts), ' data-field="redundantExperts"') +
      numCell(r.memoryBytesPerGpu, mem, ' data-field="memoryBytesPerGpu"') +
      `<td>${esc(r.mode)}</td><td>${esc(r.solver)}</td>` +
      numCell(r.dispatchSecondsPerLayer, fmtMs(r.dispatchSecondsPerLayer), ' data-field="dispatchSecondsPerLayer"') +
      numCell(r.computeSecondsPerLayer, fmtMs(r.computeSecondsPerLayer), ' data-field="computeSecondsPerLayer"') +
      numCell(r.combineSecondsPerLayer, fmtMs(r.combineSecondsPerLayer), ' data-field="combineSecondsPerLayer"') +
      numCell(r.timeSeconds, fmtMs(r.timeSeconds), ' data-field="timeSeconds"') +
      numCell(r.tokensPerSecondPerGpu, fmtNum(r.tokensPerSecondPerGpu), ' data-field="tokensPerSecondPerGpu"') +
      numCell(r.balancedness, r.balancedness.toFixed(3), ' data-field="balancedness"') +
      numCell(r.interNodeBytes, formatBytes(r.interNodeBytes), ' data-field="interNodeBytes"') +
      `<td data-field="binds" data-value="${r.resources.binds}">${bindsText(r.resources, true)}</td></tr>`
    );
  });
  return `<div class="scroll"><table id="compare-table"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table></div>`;
}

function compareHtml(c: CompareResult): string {
  const out: string[] = [];
  out.push(`<section class="card" id="compare-summary"><h2>Clusters and redundancy: ${esc(c.model)}</h2>`);
  out.push(`<p class="note">${esc(`Split: ${c.split}. Objective of the solvers that take one: ${c.objective}; seed ${c.seed}.`)}${c.interrupted ? ' <b>Interrupted: not every row was planned.</b>' : ''}</p>`);
  if (c.best.length > 0) {
    const head = '<tr><th>cluster</th><th>mode</th><th>best solver</th><th class="num">slots</th><th class="num">tokens / s / GPU</th><th class="num">vs first cluster</th></tr>';
    const rows = c.best.map(
      (b) =>
        `<tr data-row="${b.row}"><td>${esc(b.cluster)}</td><td>${esc(b.mode)}</td><td>${esc(b.solver)}</td><td class="num">${b.slotsPerGpu}</td>` +
        numCell(b.tokensPerSecondPerGpu, fmtNum(b.tokensPerSecondPerGpu)) +
        numCell(b.vsFirstCluster, `${b.vsFirstCluster.toFixed(2)}x`) +
        '</tr>',
    );
    out.push(`<h3>Best per cluster and mode</h3><div class="scroll"><table id="best-table"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table></div>`);
  }
  out.push('<h3>Every row</h3>');
  out.push(compareTable(c));
  if (c.skipped.length > 0) {
    out.push(`<h3>Not planned (do not fit)</h3><ul class="notes" id="skipped">${c.skipped.map((s) => `<li data-cluster="${esc(s.cluster)}" data-slots="${s.slotsPerGpu}">${esc(`${s.cluster} at ${s.slotsPerGpu} slots per GPU: ${s.reason}`)}</li>`).join('')}</ul>`);
  }
  out.push(notesList(c.notes));
  out.push('</section>');
  if (c.rows.length === 0) return out.join('\n');

  const labels = c.rows.map(rowLabel);
  const solvers = [...new Set(c.rows.map((r) => r.solver))];
  const clusterNames = [...new Set(c.rows.map((r) => r.cluster))];
  out.push('<section class="card" id="compare-charts"><h2>Frontier: balance against inter-node traffic</h2>');
  out.push(
    scatterChart({
      id: 'chart-frontier',
      points: c.rows.map((r, i) => ({ x: r.interNodeBytes, y: r.balancedness, label: labels[i], group: `${r.cluster} ${r.mode}`, marker: solvers.indexOf(r.solver) % 2 === 1 ? 'square' : 'circle' })),
      xLabel: 'inter-node bytes',
      yLabel: 'balancedness',
      formatX: formatBytes,
      formatY: (x) => x.toFixed(3),
      markerLegend: solvers.slice(0, 2).map((s, i) => ({ name: s, marker: i === 1 ? 'square' : 'circle' })),
    }),
  );
  out.push('<p class="note">Up and to the left is better: more balanced GPUs and less RDMA traffic. Each point is one row of the table.</p>');
  const barColor = c.rows.map((r) => PALETTE[clusterNames.indexOf(r.cluster) % PALETTE.length]);
  out.push('<h3>Tokens per second per GPU (MoE layers)</h3>');
  out.push(
    stackedBars({
      id: 'chart-tps',
      categories: labels,
      series: [{ name: 'tokens / s / GPU', color: PALETTE[0], values: c.rows.map((r) => r.tokensPerSecondPerGpu) }],
      barColors: barColor,
      legend: clusterNames.map((n, i) => ({ name: n, color: PALETTE[i % PALETTE.length] })),
      xLabel: 'tokens / s / GPU',
      format: (x) => fmtNum(x),
    }),
  );
  out.push('<h3>Time per MoE layer: dispatch, compute, combine</h3>');
  out.push(
    stackedBars({
      id: 'chart-compare-time',
      categories: labels,
      series: [
        { name: 'dispatch', color: PART_COLORS.dispatch, values: c.rows.map((r) => r.dispatchSecondsPerLayer) },
        { name: 'compute', color: PART_COLORS.compute, values: c.rows.map((r) => r.computeSecondsPerLayer) },
        { name: 'combine', color: PART_COLORS.combine, values: c.rows.map((r) => r.combineSecondsPerLayer) },
      ],
      xLabel: 'ms per MoE layer (mean over layers)',
      format: (x) => fmtNum(x * 1000, Math.max(...c.rows.map((r) => r.timeSecondsPerLayer)) * 1000 >= 10 ? 0 : 2),
    }),
  );
  out.push('<h3>Where the time goes: the binding resource</h3>');
  out.push(
    stackedBars({
      id: 'chart-binds',
      categories: labels,
      series: [
        { name: 'compute', color: PART_COLORS.compute, values: c.rows.map((r) => r.resources.shares.compute) },
        { name: 'NVLink', color: '#76b7b2', values: c.rows.map((r) => r.resources.shares.nvlink) },
        { name: 'RDMA', color: '#e15759', values: c.rows.map((r) => r.resources.shares.rdma) },
      ],
      xLabel: 'share of the estimated MoE time',
      format: fmtPct,
      endLabel: (i) => RESOURCE_NAMES[c.rows[i].resources.binds],
    }),
  );
  out.push('</section>');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Replay section

function replayHtml(r: Replay): string {
  const series = (get: (w: Replay['policies'][number]['perWindow'][number]) => number): Series[] =>
    r.policies.map((p, i) => {
      const values: (number | null)[] = r.windows.map(() => null);
      for (const w of p.perWindow) values[w.window] = get(w);
      return { name: p.name, color: PALETTE[i % PALETTE.length], values };
    });
  const out: string[] = ['<section class="card" id="replay"><h2>Replay: policies window by window</h2>'];
  out.push(`<p class="note">${esc(`${r.windows.length} windows, ${r.policies.length} policies (${r.policies.map((p) => p.name).join(', ')}).`)}</p>`);
  out.push('<h3>Balancedness</h3>');
  out.push(lineChart({ id: 'chart-replay-balancedness', categories: r.windows, series: series((w) => w.balancedness), yLabel: 'balancedness', xLabel: 'window', format: (x) => x.toFixed(3), yMax: 1, height: 250 }));
  out.push('<h3>Moved expert bytes</h3>');
  out.push(lineChart({ id: 'chart-replay-moved', categories: r.windows, series: series((w) => w.movedBytes), yLabel: 'moved bytes', xLabel: 'window', format: formatBytes, yMin: 0, height: 250 }));
  out.push('<h3>Estimated MoE time</h3>');
  out.push(lineChart({ id: 'chart-replay-time', categories: r.windows, series: series((w) => w.timeSeconds), yLabel: 'MoE time', xLabel: 'window', format: fmtMs, yMin: 0, height: 250 }));
  out.push('</section>');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// The page

/** The self-contained HTML page of `data`. */
export function renderReportHtml(data: ReportData): string {
  const body: string[] = [];
  if (data.compare) body.push(compareHtml(data.compare));
  if (data.plan) body.push(planHtml(data.plan));
  if (data.replay) body.push(replayHtml(data.replay));
  const sections = [data.compare ? 'compare' : '', data.plan ? 'plan' : '', data.replay ? 'replay' : ''].filter(Boolean).join(' ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="${esc(`${data.tool} ${data.version}`)}">
<title>${esc(data.title)}</title>
<style>${CSS}</style>
</head>
<body data-sections="${sections}">
<header><h1>${esc(data.title)}</h1><div class="sub">${esc(`${data.tool} ${data.version}`)} · estimates of the moe-placer cost model (DESIGN.md), not measurements</div></header>
<main>
${data.notes.length > 0 ? `<section class="card" id="report-notes">${notesList(data.notes)}</section>` : ''}
${body.join('\n')}
</main>
<footer>One self-contained file: the data behind every chart is embedded below as JSON (id report-data).</footer>
<script type="application/json" id="report-data">${embedJson(data)}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
