import { Piscina } from 'piscina';
import { describe, expect, it } from 'vitest';
import { plan } from '../src/api.js';
import { maxLoadLowerBound } from '../src/bounds/max-load.js';
import { evaluate } from '../src/cost.js';
import { validatePlacement } from '../src/placement.js';
import { resolveCluster, resolveModel } from '../src/presets.js';
import { Rng } from '../src/rng.js';
import { refineNodes } from '../src/search/improve.js';
import { NodeState, searchNodes } from '../src/search/node-search.js';
import type { LayerResult } from '../src/search/layer.js';
import { packGroup } from '../src/search/replicate.js';
import type { Placement, Trace, Workload } from '../src/types.js';
import { makeShape } from '../src/types.js';
import { buildLayerTasks, LATE_RESERVE, layerDeadline, optimize, SHARE_CAP, threadsFor, workerPath } from '../src/solvers/optimize.js';
import { eplbSolver } from '../src/solvers/eplb.js';

/** A random node-level problem with clustered token sets. */
function randomNodeProblem(rng: Rng, N: number, E: number, k: number, K: number, lowLatency: boolean) {
  const setSrc = new Int32Array(K);
  const setW = new Float64Array(K);
  const setEx = new Uint16Array(K * k);
  for (let i = 0; i < K; i++) {
    setSrc[i] = rng.int(N);
    setW[i] = 1 + rng.int(3);
    const base = rng.int(E);
    const used = new Set<number>();
    for (let j = 0; j < k; j++) {
      let e = rng.next() < 0.6 ? (base + rng.int(4)) % E : rng.int(E);
      while (used.has(e)) e = (e + 1) % E;
      used.add(e);
      setEx[i * k + j] = e;
    }
  }
  const D = 2;
  const loads = new Float64Array(N * E * D);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < k; j++) {
      const e = setEx[i * k + j];
      for (let n = 0; n < N; n++) {
        loads[(n * E + e) * D] += setW[i] / N;
        if (i % 2 === 0) loads[(n * E + e) * D + 1] += setW[i] / N;
      }
    }
  }
  const total = loads.reduce((a, b) => a + b, 0) / 2;
  return {
    nodes: N,
    experts: E,
    slotsPerNode: Math.ceil((E * 1.3) / N),
    k,
    setSrc,
    setW,
    setEx,
    lowLatency,
    dims: D,
    loads,
    nodeCap: Float64Array.from([(total / N) * 1.3, (total / N) * 0.8]),
    gpuCap: total / N,
  };
}

function initialHas(N: number, E: number): Uint8Array {
  const has = new Uint8Array(E * N);
  for (let e = 0; e < E; e++) has[e * N + (e % N)] = 1;
  return has;
}

/**
 * A random 4-node, 16-expert state started from `initialHas`, with node caps 5% above the start's
 * node loads (so the start is feasible and the caps bind) and room for its slots.
 */
function bindingState(rng: Rng, lowLatency: boolean): NodeState {
  const N = 4;
  const E = 16;
  const prob = randomNodeProblem(rng, N, E, 4, 400, lowLatency);
  const st = new NodeState(prob);
  st.init(initialHas(N, E));
  for (let d = 0; d < prob.dims; d++) {
    let max = 0;
    for (let m = 0; m < N; m++) max = Math.max(max, st.nodeLoad[m * prob.dims + d]);
    prob.nodeCap[d] = max * 1.05;
  }
  prob.slotsPerNode = Math.max(prob.slotsPerNode, ...Array.from(st.slotsUsed));
  st.init(initialHas(N, E));
  return st;
}

describe('node-level search', () => {
  for (const lowLatency of [false, true]) {
    it(`keeps the incremental cost equal to a full recomputation (${lowLatency ? 'low-latency' : 'normal'})`, () => {
      const rng = new Rng(7);
      const N = 3;
      const E = 12;
      const st = new NodeState(randomNodeProblem(rng, N, E, 3, 200, lowLatency));
      st.init(initialHas(N, E));
      expect(st.cost).toBeCloseTo(st.fullCost(), 9);
      for (let step = 0; step < 300; step++) {
        const mark = st.mark();
        const costBefore = st.cost;
        const hasBefore = st.has.slice();
        const srvBefore = st.srv.slice();
        const loadBefore = st.nodeLoad.slice();
        const e = rng.int(E);
        const m = rng.int(N);
        const op = rng.int(3);
        if (op === 0 && !st.has[e * N + m]) st.addReplica(e, m);
        else if (op === 1 && st.has[e * N + m] && st.holders[e] > 1) st.dropReplica(e, m);
        else st.reserve(e);
        expect(st.cost).toBeCloseTo(st.fullCost(), 9);
        if (rng.next() < 0.5) {
          st.rollback(mark);
          expect(st.cost).toBeCloseTo(costBefore, 9);
          expect(Array.from(st.has)).toEqual(Array.from(hasBefore));
          expect(Array.from(st.srv)).toEqual(Array.from(srvBefore));
          for (let i = 0; i < loadBefore.length; i++) expect(st.nodeLoad[i]).toBeCloseTo(loadBefore[i], 9);
        } else st.commit();
        // Every source is served by a node that holds the expert, locally when possible.
        for (let n = 0; n < N; n++) {
          for (let x = 0; x < E; x++) {
            const s = st.srv[n * E + x];
            expect(st.has[x * N + s]).toBe(1);
            if (st.has[x * N + n]) expect(s).toBe(n);
          }
        }
      }
    });
  }

  it('annealing never returns a worse feasible layout than its start', () => {
    const st = bindingState(new Rng(3), false);
    const start = st.cost;
    expect(st.feasible()).toBe(true);
    const stats = searchNodes(st, { iterations: 3000, rng: new Rng(1) });
    expect(st.feasible()).toBe(true);
    expect(st.cost).toBeLessThanOrEqual(start + 1e-9);
    expect(st.cost).toBeCloseTo(st.fullCost(), 9);
    expect(stats.bestCost).toBeCloseTo(st.cost, 9);
  });
});

/**
 * A random packGroup instance: 2 + [0, gpus) GPUs of 1 + [0, slots) slots, m experts (up to
 * `free(g, S)` slots left free) of E ids, every expert's demand from each of 1 + [0, sources)
 * sources in 1 + [0, dims) dimensions, a fifth of the chunks empty.
 */
function packInstance(rng: Rng, o: { gpus: number; slots: number; free: (g: number, S: number) => number; sources: number; dims: number; load: () => number }) {
  const g = 2 + rng.int(o.gpus);
  const S = 1 + rng.int(o.slots);
  const m = Math.max(1, g * S - rng.int(o.free(g, S)));
  const E = m + rng.int(3);
  const ex = Int32Array.from(rng.shuffle(Array.from({ length: E }, (_, e) => e)).slice(0, m));
  const sources = 1 + rng.int(o.sources);
  const D = 1 + rng.int(o.dims);
  const start = new Int32Array(m + 1);
  const src: number[] = [];
  for (let x = 0; x < m; x++) {
    for (let s = 0; s < sources; s++) src.push(s);
    start[x + 1] = src.length;
  }
  const load = new Float64Array(src.length * D);
  for (let i = 0; i < load.length; i++) load[i] = rng.next() < 0.2 ? 0 : o.load();
  const gpus = Int32Array.from({ length: g }, (_, i) => i);
  return { g, S, m, E, ex, sources, D, start, src, load, gpus };
}

describe('packGroup', () => {
  it('places every expert, respects slots and dispatches every chunk to a replica of its expert', () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 20; trial++) {
      const { g, S, m, E, ex, sources, D, start, src, load, gpus } = packInstance(rng, { gpus: 4, slots: 3, free: (g, S) => g * S, sources: 5, dims: 2, load: () => rng.next() * 10 });
      const phy2log = new Int32Array(g * S).fill(-2);
      const dispatch = new Int32Array(sources * E).fill(-2);
      const r = packGroup(ex, { start, src: Int32Array.from(src), load }, gpus, S, E, new Float64Array(D).fill(1), phy2log, dispatch);
      const held = new Set(Array.from(phy2log).filter((e) => e >= 0));
      for (const e of ex) expect(held.has(e)).toBe(true);
      for (const e of phy2log) expect(e === -1 || Array.from(ex).includes(e)).toBe(true);
      // No GPU holds an expert twice (there are never more replicas than GPUs here).
      for (let h = 0; h < g; h++) {
        const row = Array.from(phy2log.subarray(h * S, h * S + S)).filter((e) => e >= 0);
        expect(new Set(row).size).toBe(row.length);
      }
      const gpuLoad = new Float64Array(g);
      for (let x = 0; x < m; x++) {
        for (let c = start[x]; c < start[x + 1]; c++) {
          const slot = dispatch[src[c] * E + ex[x]];
          expect(phy2log[slot]).toBe(ex[x]);
          gpuLoad[Math.floor(slot / S)] += load[c * D];
        }
      }
      expect(r.maxLoad).toBeCloseTo(Math.max(...gpuLoad), 9);
      // Never worse than the trivial bound total / g by more than the largest chunk... and never below it.
      const total = gpuLoad.reduce((a, b) => a + b, 0);
      expect(r.maxLoad).toBeGreaterThanOrEqual(total / g - 1e-9);
    }
  });
});

describe('packGroup refinement', () => {
  it('stops at a local optimum: no chunk move, replica swap or replica move off the top GPU lowers the largest height', () => {
    const rng = new Rng(31);
    for (let t = 0; t < 40; t++) {
      const { g, S, m, E, ex, sources, D, start, src, load, gpus } = packInstance(rng, { gpus: 6, slots: 4, free: (g) => g + 1, sources: 6, dims: 3, load: () => Math.exp(rng.normal()) * 10 });
      const scale = Float64Array.from({ length: D }, () => 0.5 + rng.next());
      const phy2log = new Int32Array(g * S);
      const dispatch = new Int32Array(sources * E);
      packGroup(ex, { start, src: Int32Array.from(src), load }, gpus, S, E, scale, phy2log, dispatch);
      // Loads per slot (= replica) and per GPU, from the result.
      const slotLoad = new Float64Array(g * S * D);
      for (let x = 0; x < m; x++) for (let c = start[x]; c < start[x + 1]; c++) for (let d = 0; d < D; d++) slotLoad[dispatch[src[c] * E + ex[x]] * D + d] += load[c * D + d];
      const gpuLoad = (h: number, d: number): number => {
        let sum = 0;
        for (let j = 0; j < S; j++) sum += slotLoad[(h * S + j) * D + d];
        return sum;
      };
      const height = (h: number, delta: (d: number) => number): number => {
        let y = 0;
        for (let d = 0; d < D; d++) y = Math.max(y, (gpuLoad(h, d) + delta(d)) * scale[d]);
        return y;
      };
      const heights = Array.from(gpus, (h) => height(h, () => 0));
      const top = Math.max(...heights);
      const hmax = heights.indexOf(top);
      const holds = (h: number, e: number): boolean => Array.from(phy2log.subarray(h * S, h * S + S)).includes(e);
      let best = 0;
      for (let j = 0; j < S; j++) {
        const a = hmax * S + j;
        const xa = phy2log[a];
        if (xa < 0) continue;
        const ra = (d: number): number => slotLoad[a * D + d];
        // Chunks of xa served by slot a, to another replica of xa.
        const x = Array.from(ex).indexOf(xa);
        for (let c = start[x]; c < start[x + 1]; c++) {
          if (dispatch[src[c] * E + xa] !== a || load[c * D] <= 0) continue;
          for (let b = 0; b < g * S; b++) {
            const h = Math.floor(b / S);
            if (h === hmax || phy2log[b] !== xa) continue;
            best = Math.max(best, top - Math.max(height(hmax, (d) => -load[c * D + d]), height(h, (d) => load[c * D + d])));
          }
        }
        for (let b = 0; b < g * S; b++) {
          const h = Math.floor(b / S);
          if (h === hmax || holds(h, xa)) continue;
          const xb = phy2log[b];
          if (xb >= 0 && holds(hmax, xb)) continue;
          const rb = (d: number): number => (xb < 0 ? 0 : slotLoad[b * D + d]);
          best = Math.max(best, top - Math.max(height(hmax, (d) => rb(d) - ra(d)), height(h, (d) => ra(d) - rb(d))));
        }
      }
      expect(best, `case ${t}: g ${g}, S ${S}, m ${m}, D ${D}`).toBeLessThanOrEqual(1e-9 * top);
    }
  });
});

/** A small clustered trace: requests draw a topic; topics prefer a block of experts. */
function clusteredTrace(L: number, E: number, k: number, tokens: number, seed: number): Trace {
  const rng = new Rng(seed);
  const request = new Uint32Array(tokens);
  const experts: Uint16Array[] = Array.from({ length: L }, () => new Uint16Array(tokens * k));
  const perReq = 8;
  for (let t = 0; t < tokens; t++) {
    const r = Math.floor(t / perReq);
    request[t] = r;
    const topic = new Rng(seed * 1000 + r).int(4);
    for (let l = 0; l < L; l++) {
      const used = new Set<number>();
      for (let j = 0; j < k; j++) {
        let e = rng.next() < 0.7 ? (topic * (E / 4) + rng.int(E / 4)) % E : rng.int(E);
        while (used.has(e)) e = (e + 1) % E;
        used.add(e);
        experts[l][t * k + j] = e;
      }
    }
  }
  return { numLayers: L, numExperts: E, topK: k, numTokens: tokens, numRequests: Math.ceil(tokens / perReq), request, rank: new Int32Array(tokens).fill(-1), weight: null, experts };
}

describe('optimize', () => {
  const model = resolveModel('deepseek-v2-lite');
  const L = model.moeLayerIds.length;
  const trace = clusteredTrace(L, model.experts, model.topK, 800, 5);
  const workload: Workload = { kind: 'trace', trace, meta: { format: 'test' } };
  const cluster = resolveCluster('h800-4x8', model, { nodes: 4, gpusPerNode: 2, slotsPerGpu: 10 });
  const shape = makeShape(4, 2, 10);
  const base = { model, cluster, shape, workload, mode: 'normal' as const, seed: 3 };

  it('gives valid plans that cut traffic against its balanced plan within the load cap', async () => {
    const bal = await optimize({ ...base, objective: 'balance' }, { proposalsPerExpert: 20 });
    const tr = await optimize({ ...base, objective: 'traffic' }, { proposalsPerExpert: 20 });
    for (const r of [bal, tr]) validatePlacement(r.placement, 'plan', true);
    const eb = evaluate({ model, cluster, placement: bal.placement, workload });
    const et = evaluate({ model, cluster, placement: tr.placement, workload });
    expect(et.interNodeBytes).toBeLessThan(eb.interNodeBytes);
  });

  it('balances counts no worse than EPLB in any layer, and never below the load bound', async () => {
    const rng = new Rng(9);
    const E = model.experts;
    const counts = Array.from({ length: L }, () => Float64Array.from({ length: E }, () => Math.floor(Math.exp(rng.normal() * 1.2) * 100)));
    const cw: Workload = { kind: 'counts', counts: { numLayers: L, numExperts: E, counts }, meta: { format: 'test' } };
    const input = { ...base, workload: cw, objective: 'balance' as const };
    const ours = evaluate({ model, cluster, placement: (await optimize(input)).placement, workload: cw, options: { sampleTokens: 8 } });
    const ep = evaluate({ model, cluster, placement: (await eplbSolver.solve(input)).placement, workload: cw, options: { sampleTokens: 8 } });
    for (let l = 0; l < L; l++) {
      expect(ours.perLayer[l].maxLoad).toBeLessThanOrEqual(ep.perLayer[l].maxLoad * (1 + 1e-9));
      expect(ours.perLayer[l].maxLoad).toBeGreaterThanOrEqual(maxLoadLowerBound(counts[l], shape.numGpus, shape.slotsPerGpu) * (1 - 1e-9));
    }
  });

  it('is deterministic for a seed, and the same with 1 or 2 workers', async () => {
    const a = await optimize({ ...base, objective: 'traffic', workers: 1 }, { proposalsPerExpert: 10 });
    const b = await optimize({ ...base, objective: 'traffic', workers: 2 }, { proposalsPerExpert: 10 });
    const c = await optimize({ ...base, objective: 'traffic', workers: 1, seed: 4 }, { proposalsPerExpert: 10 });
    const flat = (p: typeof a) => p.placement.phy2log.flatMap((r) => Array.from(r)).concat(p.placement.dispatch!.flatMap((r) => Array.from(r)));
    expect(flat(b)).toEqual(flat(a));
    expect(flat(c)).not.toEqual(flat(a));
  });

  it('runs layers that only pack (objective balance, one node) in this thread, with the plan a worker pool gives', async () => {
    const tasksOf = (objective: 'balance' | 'traffic', input = base) => buildLayerTasks({ ...input, objective });
    expect(threadsFor(tasksOf('balance'), 8)).toBe(1);
    expect(threadsFor(tasksOf('traffic'), 8)).toBe(8);
    expect(threadsFor(tasksOf('traffic'), 100)).toBe(L);
    const oneNode = { ...base, cluster: resolveCluster('h800-4x8', model, { nodes: 1, gpusPerNode: 8, slotsPerGpu: 10 }), shape: makeShape(1, 8, 10) };
    expect(threadsFor(tasksOf('traffic', oneNode), 8)).toBe(1);
    const flat = (p: Placement) => p.phy2log.flatMap((r) => Array.from(r)).concat(p.dispatch!.flatMap((r) => Array.from(r)));
    const one = await optimize({ ...base, objective: 'balance', workers: 1 });
    const four = await optimize({ ...base, objective: 'balance', workers: 4 });
    expect(flat(four.placement)).toEqual(flat(one.placement));
    // The same layers solved by the worker entry in a pool of 2 threads.
    const pool = new Piscina({ filename: workerPath(), minThreads: 2, maxThreads: 2 });
    try {
      const results = (await Promise.all(tasksOf('balance').map((t) => pool.run(t)))) as LayerResult[];
      expect(flat({ ...one.placement, phy2log: results.map((r) => r.phy2log), dispatch: results.map((r) => r.dispatch) })).toEqual(flat(one.placement));
    } finally {
      await pool.destroy();
    }
  });

  it('with a time limit that does not bind: no layer cut, the same plan as without a limit, for 1 and 2 workers', async () => {
    const free = await optimize({ ...base, objective: 'traffic', workers: 1 });
    const limited = [1, 2].map((workers) => optimize({ ...base, objective: 'traffic', workers, timeLimitSeconds: 120 }));
    const flat = (p: typeof free) => p.placement.phy2log.flatMap((r) => Array.from(r)).concat(p.placement.dispatch!.flatMap((r) => Array.from(r)));
    for (const r of await Promise.all(limited)) {
      expect(r.info?.cutByTimeLimit).toEqual([]);
      expect(flat(r)).toEqual(flat(free));
    }
    expect(free.info?.cutByTimeLimit).toBeUndefined();
  });

  it('with a time limit that binds: the cut layers are reported, and the plan is still valid', async () => {
    const r = await optimize({ ...base, objective: 'traffic', workers: 1, timeLimitSeconds: 1e-3 });
    validatePlacement(r.placement, 'plan', true);
    const cut = r.info?.cutByTimeLimit as number[];
    // 0.8 ms of budget: every layer starts past its deadline and keeps its balanced layout.
    expect(cut).toEqual(Array.from({ length: L }, (_, l) => l));
    expect(r.info?.chosen).toEqual({ balance: L });
    // plan() records it in the plan's provenance.
    const out = await plan({ model, cluster, workload, objective: 'traffic', seed: 3, workers: 1, timeLimitSeconds: 1e-3 });
    expect((out.plan.provenance?.options.solverInfo as { cutByTimeLimit?: number[] }).cutByTimeLimit).toEqual(cut);
  });

  it('layerDeadline: a reserve per later round, at most SHARE_CAP shares, at least one share of the time left; never after the end', () => {
    const b = { end: 10_000, total: 10_000, layers: 10, workers: 2 };
    const reserve = (LATE_RESERVE * b.total * 2) / 10;
    // At the start: 5 rounds of 2 layers; share 2000 ms, so SHARE_CAP shares would pass the end
    // less 4 rounds' reserve: the reserve decides (here both give 8000 ms).
    expect(SHARE_CAP * 2000).toBeGreaterThanOrEqual(b.end - 4 * reserve);
    expect(layerDeadline(b, 0, 0)).toBeCloseTo(b.end - 4 * reserve, 9);
    expect(layerDeadline(b, 1, 0)).toBeCloseTo(b.end - 4 * reserve, 9);
    expect(layerDeadline(b, 9, 0)).toBe(b.end);
    // Many layers: SHARE_CAP shares decide (40 rounds of one layer, share 250 ms).
    expect(layerDeadline({ ...b, layers: 40, workers: 1 }, 0, 0)).toBeCloseTo(SHARE_CAP * 250, 9);
    // Late: the reserve no longer fits; the time left is shared over the rounds left (5 at layer 1).
    expect(layerDeadline(b, 1, 9_000)).toBeCloseTo(9_000 + 1_000 / 5, 9);
    expect(layerDeadline(b, 3, 20_000)).toBe(b.end);
    // One worker: a round is one layer.
    expect(layerDeadline({ ...b, workers: 1 }, 0, 0)).toBeCloseTo(Math.min(b.end - 9 * (LATE_RESERVE * b.total) / 10, SHARE_CAP * 1000), 9);
  });

  for (const lowLatency of [false, true]) {
    it(`keeps the FM gain tables equal to a full recomputation, and relocation gains exact (${lowLatency ? 'low-latency' : 'normal'})`, () => {
      const rng = new Rng(11);
      const N = 3;
      const E = 12;
      const st = new NodeState(randomNodeProblem(rng, N, E, 3, 200, lowLatency));
      st.init(initialHas(N, E));
      st.computeGains();
      for (let step = 0; step < 60; step++) {
        // A move of expert e, tracked; gains of experts whose serving did not change must match.
        const e = rng.int(E);
        const m = rng.int(N);
        const srvBefore = st.srv.slice();
        st.trackGains = true;
        if (!st.has[e * N + m]) st.addReplica(e, m);
        else if (st.holders[e] > 1) st.dropReplica(e, m);
        st.reserve(e);
        st.trackGains = false;
        st.commit();
        const tracked = st.relGain.slice();
        const trackedAdd = st.addGain.slice();
        st.computeGains();
        for (let f = 0; f < E; f++) {
          let same = true;
          for (let n = 0; n < N; n++) if (st.srv[n * E + f] !== srvBefore[n * E + f]) same = false;
          if (!same) continue;
          for (let j = f * N * N; j < (f + 1) * N * N; j++) expect(tracked[j]).toBeCloseTo(st.relGain[j], 9);
          for (let j = f * N; j < (f + 1) * N; j++) expect(trackedAdd[j]).toBeCloseTo(st.addGain[j], 9);
        }
      }
      // For a single-holder expert, the relocation gain is the exact change of the move.
      for (let e = 0; e < E; e++) {
        if (st.holders[e] !== 1) continue;
        let a = 0;
        while (!st.has[e * N + a]) a++;
        for (let b = 0; b < N; b++) {
          if (b === a) continue;
          const mark = st.mark();
          const before = st.cost;
          st.addReplica(e, b);
          st.dropReplica(e, a);
          expect(st.cost - before).toBeCloseTo(st.relGain[(e * N + a) * N + b], 9);
          st.rollback(mark);
        }
      }
    });
  }

  it('FM refinement ends feasible, never worse than its start, with the cost equal to a full recomputation', () => {
    for (const lowLatency of [false, true]) {
      const st = bindingState(new Rng(lowLatency ? 5 : 4), lowLatency);
      const start = st.cost;
      const stats = refineNodes(st, { passes: 10, lambda: 10 });
      expect(st.feasible()).toBe(true);
      expect(st.cost).toBeLessThanOrEqual(start + 1e-9);
      expect(st.cost).toBeCloseTo(st.fullCost(), 9);
      expect(stats.bestCost).toBeCloseTo(st.cost, 9);
      expect(stats.moves).toBeGreaterThan(0);
    }
  });
});
