/**
 * The report page's only script (inline, no network): it reads the embedded report data and draws
 * the layer-dependent charts of the plan section for the layer chosen in `#layer-select` (initially
 * `#layer=N` of the page address, else the data's `defaultLayer`): the traffic heatmaps of the plan
 * and of the baseline (one shared colour scale, square-root) and their per-GPU load bars against the
 * layer's max-load lower bound. Every cell carries `data-src`, `data-dst`, `data-bytes`; every bar
 * `data-gpu`, `data-load`; each chart `data-layer`, so that the page can be checked against the data.
 *
 * Kept as plain ES2020 in a string: the library is compiled without DOM types, and the page must
 * run as it is in any current browser.
 */
export const PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var P = data.plan;
  if (!P) return;
  var SVGNS = ['http:', '', 'www.w3.org', '2000', 'svg'].join('/');
  var VIRIDIS = [[68,1,84],[72,40,120],[62,74,137],[49,104,142],[38,130,142],[31,158,137],[53,183,121],[109,205,89],[180,222,44],[253,231,37]];
  function color(t) {
    if (!(t > 0)) return '#f3f3f5';
    t = Math.min(1, t) * (VIRIDIS.length - 1);
    var i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return 'rgb(' + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f); }).join(',') + ')';
  }
  function bytes(v) {
    var u = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'], i = 0;
    while (Math.abs(v) >= 999.5 && i < u.length - 1) { v /= 1000; i++; }
    if (i === 0) return Math.round(v) + ' B';
    return v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2) + ' ' + u[i];
  }
  function num(v, d) {
    var s = Math.abs(v).toFixed(d || 0).split('.');
    return (v < 0 ? '-' : '') + s[0].replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (s[1] ? '.' + s[1] : '');
  }
  function el(name, attrs, parent, text) {
    var e = document.createElementNS(SVGNS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function title(parent, text) { el('title', {}, parent, text); }
  function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }
  var unit = P.trafficUnit === 'node' ? 'node' : 'GPU';
  var U = P.units, G = P.cluster.gpusPerNode;

  function heatmap(svg, view, l, vmax) {
    clear(svg);
    svg.setAttribute('data-layer', String(l));
    if (!view) return;
    var m = view.traffic[l], size = 440, left = 56, top = 12, cell = size / U;
    svg.setAttribute('viewBox', '0 0 ' + (left + size + 16) + ' ' + (top + size + 70));
    var g = el('g', { 'class': 'cells' }, svg);
    for (var s = 0; s < U; s++) {
      for (var d = 0; d < U; d++) {
        var v = m[s * U + d];
        var r = el('rect', { 'class': 'cell', x: (left + d * cell).toFixed(2), y: (top + s * cell).toFixed(2), width: (cell + 0.05).toFixed(2), height: (cell + 0.05).toFixed(2),
          fill: color(vmax > 0 ? Math.sqrt(v / vmax) : 0), 'data-src': s, 'data-dst': d, 'data-bytes': String(v) }, g);
        title(r, unit + ' ' + s + ' \u2192 ' + unit + ' ' + d + ': ' + bytes(v));
      }
    }
    if (unit === 'GPU' && G > 1 && G < U) {
      for (var b = G; b < U; b += G) {
        el('line', { x1: left + b * cell, x2: left + b * cell, y1: top, y2: top + size, stroke: '#fff', 'stroke-width': 1.5 }, svg);
        el('line', { x1: left, x2: left + size, y1: top + b * cell, y2: top + b * cell, stroke: '#fff', 'stroke-width': 1.5 }, svg);
      }
    }
    var groups = unit === 'GPU' ? U / G : U, step = size / groups;
    for (var n = 0; n < groups; n++) {
      var lab = unit === 'GPU' && G > 1 ? 'node ' + n : String(n);
      if (groups <= 24 || n % Math.ceil(groups / 24) === 0) {
        el('text', { x: left - 6, y: top + step * (n + 0.5) + 4, 'text-anchor': 'end', fill: '#555', 'font-size': 11 }, svg, lab);
        el('text', { x: left + step * (n + 0.5), y: top + size + 14, 'text-anchor': 'middle', fill: '#555', 'font-size': 11 }, svg, lab);
      }
    }
    el('text', { x: left + size / 2, y: top + size + 30, 'text-anchor': 'middle', fill: '#333', 'font-size': 12 }, svg, 'destination ' + unit + ' (rows: source ' + unit + ')');
    // Colour legend: a gradient from 0 to the shared maximum.
    var defs = el('defs', {}, svg), grad = el('linearGradient', { id: svg.id + '-grad' }, defs);
    for (var i = 0; i <= 10; i++) el('stop', { offset: (i * 10) + '%', 'stop-color': color(i / 10 || 1e-9) }, grad);
    el('rect', { x: left, y: top + size + 42, width: size, height: 10, fill: 'url(#' + svg.id + '-grad)' }, svg);
    el('text', { x: left, y: top + size + 66, fill: '#555', 'font-size': 11 }, svg, '0');
    el('text', { x: left + size, y: top + size + 66, 'text-anchor': 'end', fill: '#555', 'font-size': 11, 'class': 'vmax', 'data-bytes': String(vmax) }, svg, bytes(vmax) + ' (colour: square root of bytes)');
  }

  function ticks(hi) {
    var raw = hi / 4, mag = Math.pow(10, Math.floor(Math.log10(raw))), step = 10 * mag;
    [1, 2, 2.5, 5, 10].some(function (m) { if (m * mag >= raw) { step = m * mag; return true; } return false; });
    var out = [];
    for (var v = 0; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
    if (out[out.length - 1] < hi) out.push(out[out.length - 1] + step);
    return out;
  }

  function loadBars(svg, view, l, hi) {
    clear(svg);
    svg.setAttribute('data-layer', String(l));
    if (!view) return;
    var loads = view.loads[l], NG = loads.length, W = 512, H = 262, left = 64, right = 10, top = 30, bottom = 34;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    var tk = ticks(hi), ymax = tk[tk.length - 1];
    var pw = W - left - right, ph = H - top - bottom, slot = pw / NG;
    function y(v) { return top + ph * (1 - v / ymax); }
    tk.forEach(function (tv) {
      el('line', { x1: left, x2: W - right, y1: y(tv), y2: y(tv), stroke: '#e3e3e3' }, svg);
      el('text', { x: left - 6, y: y(tv) + 4, 'text-anchor': 'end', fill: '#555', 'font-size': 11 }, svg, num(tv));
    });
    var max = Math.max.apply(null, loads), g = el('g', { 'class': 'bars' }, svg);
    for (var i = 0; i < NG; i++) {
      var v = loads[i], node = Math.floor(i / G);
      var r = el('rect', { 'class': 'bar', x: (left + slot * i + slot * 0.1).toFixed(2), y: y(v).toFixed(2), width: Math.max(0.5, slot * 0.8).toFixed(2), height: Math.max(0, y(0) - y(v)).toFixed(2),
        fill: v === max ? '#e15759' : node % 2 ? '#7aa6d6' : '#4e79a7', 'data-gpu': i, 'data-load': String(v) }, g);
      title(r, 'GPU ' + i + ' (node ' + node + '): load ' + num(v, v % 1 ? 1 : 0));
    }
    var bound = P.layers[l].maxLoadLowerBound, mean = view.perLayer[l].meanLoad;
    el('line', { 'class': 'bound', x1: left, x2: W - right, y1: y(bound), y2: y(bound), stroke: '#b8001f', 'stroke-width': 1.5, 'stroke-dasharray': '6 3', 'data-load': String(bound) }, svg);
    el('line', { 'class': 'mean', x1: left, x2: W - right, y1: y(mean), y2: y(mean), stroke: '#333', 'stroke-width': 1.2, 'stroke-dasharray': '2 3', 'data-load': String(mean) }, svg);
    // Legend above the plot.
    el('line', { x1: left, x2: left + 22, y1: 12, y2: 12, stroke: '#b8001f', 'stroke-width': 1.5, 'stroke-dasharray': '6 3' }, svg);
    el('text', { x: left + 27, y: 16, fill: '#333', 'font-size': 11 }, svg, 'max-load lower bound ' + num(bound));
    el('line', { x1: left + 210, x2: left + 232, y1: 12, y2: 12, stroke: '#333', 'stroke-width': 1.2, 'stroke-dasharray': '2 3' }, svg);
    el('text', { x: left + 237, y: 16, fill: '#333', 'font-size': 11 }, svg, 'mean ' + num(mean));
    el('rect', { x: left + 330, y: 6, width: 11, height: 11, fill: '#e15759' }, svg);
    el('text', { x: left + 346, y: 16, fill: '#333', 'font-size': 11 }, svg, 'largest ' + num(max, max % 1 ? 1 : 0));
    el('text', { x: left + 4, y: H - 8, fill: '#555', 'font-size': 11 }, svg, 'GPUs 0..' + (NG - 1) + ' (shades alternate by node)');
  }

  function stats(id, view, l) {
    var box = document.getElementById(id);
    if (!box || !view) return;
    var m = view.perLayer[l];
    box.innerHTML = '';
    [['inter-node', bytes(m.interNodeBytes), m.interNodeBytes], ['intra-node', bytes(m.intraNodeBytes), m.intraNodeBytes], ['max load', num(m.maxLoad, m.maxLoad % 1 ? 1 : 0), m.maxLoad],
     ['balancedness', m.balancedness.toFixed(3), m.balancedness], ['MoE time', (m.timeSeconds * 1000).toFixed(m.timeSeconds >= 0.1 ? 1 : 3) + ' ms', m.timeSeconds]].forEach(function (x) {
      var s = document.createElement('span');
      s.className = 'stat';
      s.setAttribute('data-value', String(x[2]));
      s.innerHTML = '<b></b> ';
      s.firstChild.textContent = x[0];
      s.appendChild(document.createTextNode(x[1]));
      box.appendChild(s);
    });
  }

  var sel = document.getElementById('layer-select');
  function show(l) {
    var views = [P.plan, P.baseline].filter(Boolean), vmax = 0, ymax = P.layers[l].maxLoadLowerBound;
    views.forEach(function (v) {
      v.traffic[l].forEach(function (x) { if (x > vmax) vmax = x; });
      v.loads[l].forEach(function (x) { if (x > ymax) ymax = x; });
    });
    ymax = ymax > 0 ? ymax * 1.04 : 1;
    heatmap(document.getElementById('chart-heatmap-plan'), P.plan, l, vmax);
    loadBars(document.getElementById('chart-loads-plan'), P.plan, l, ymax);
    stats('layer-stats-plan', P.plan, l);
    if (P.baseline) {
      heatmap(document.getElementById('chart-heatmap-baseline'), P.baseline, l, vmax);
      loadBars(document.getElementById('chart-loads-baseline'), P.baseline, l, ymax);
      stats('layer-stats-baseline', P.baseline, l);
    }
    sel.value = String(l);
    var info = P.layers[l];
    document.getElementById('layer-caption').textContent = 'MoE layer ' + info.layer + ' (engine layer ' + info.engineLayer + ')' + (l === P.defaultLayer ? ': the layer with the most inter-node bytes' : '');
    document.getElementById('layer-panel').setAttribute('data-layer', String(l));
  }
  var m = /layer=(\d+)/.exec(location.hash), first = m ? Number(m[1]) : P.defaultLayer;
  if (!(first >= 0 && first < P.layers.length)) first = P.defaultLayer;
  sel.addEventListener('change', function () {
    show(Number(sel.value));
    if (history.replaceState) history.replaceState(null, '', '#layer=' + sel.value);
  });
  show(first);
})();
`;
