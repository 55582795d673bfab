import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eplbPlacement } from '../src/eplb.js';
import { evaluate } from '../src/cost.js';
import { maxAssignment } from '../src/migrate/assignment.js';
import { alignGpus, applyAlignment } from '../src/migrate/align.js';
import { checkMovePath, rebalanceWithBudget } from '../src/migrate/budget.js';
import { migrationBetween, movesBetween } from '../src/migrate/moves.js';
import { alignPlacement, rebalance } from '../src/migrate/rebalance.js';
import { dispatchOf, dispatchOfShares, validatePlacement } from '../src/placement.js';
import { readPlanFile } from '../src/plan.js';
import { replay } from '../src/replay.js';
import { Rng } from '../src/rng.js';
import { makeShape, type Placement, type Shape, type Workload } from '../src/types.js';
import { writeTrace } from '../src/workload/index.js';
import { countsOfTrace } from '../src/workload/tokens.js';
import { ensureBuilt, runCli } from './cli-helpers.js';
import { randomTrace, TINY_CLUSTER, TINY_MODEL, tinyCluster, tinyModel } from './plan-fixtures.js';

const SPEEDS = { nvlinkBandwidth: 100, rdmaBandwidth: 10 };

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) for (let i = 0; i <= p.length; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  return out;
}

/** A random valid layer: every expert once, the other slots random experts (no GPU duplicates). */
function randomRow(E: number, shape: Shape, rng: Rng): Int32Array {
  const S = shape.slotsPerGpu;
  for (;;) {
    const row = new Int32Array(shape.numSlots);
    const ids = Array.from({ length: shape.numSlots }, (_, i) => (i < E ? i : Math.floor(rng.next() * E)));
    for (let i = ids.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [ids[i], ids[j]] = [ids[j], ids[i]];
    }
    row.set(ids);
    let ok = true;
    for (let g = 0; g < shape.numGpus && ok; g++) ok = new Set(row.subarray(g * S, g * S + S)).size === S;
    if (ok) return row;
  }
}

function randomPlacement(L: number, E: number, shape: Shape, seed: number): Placement {
  const rng = new Rng(seed);
  return { numLayers: L, numExperts: E, shape, phy2log: Array.from({ length: L }, () => randomRow(E, shape, rng)), dispatch: null };
}

/** The placement with nodes and the GPUs of each node permuted, and slots shuffled in each GPU. */
function relabelled(p: Placement, seed: number): Placement {
  const rng = new Rng(seed);
  const { nodes, gpusPerNode: GPN, slotsPerGpu: S } = p.shape;
  const shuffle = (n: number): number[] => {
    const a = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };
  const phy2log = p.phy2log.map((row) => {
    const nodePerm = shuffle(nodes);
    const out = new Int32Array(row.length);
    for (let n = 0; n < nodes; n++) {
      const gpuPerm = shuffle(GPN);
      for (let i = 0; i < GPN; i++) {
        const slotPerm = shuffle(S);
        const src = n * GPN + i;
        const dst = nodePerm[n] * GPN + gpuPerm[i];
        for (let s = 0; s < S; s++) out[dst * S + slotPerm[s]] = row[src * S + s];
      }
    }
    return out;
  });
  return { ...p, phy2log, dispatch: null };
}

/** Moves by definition: each new slot whose expert its GPU did not hold before. */
function bruteMoves(from: Placement, to: Placement): number {
  const S = to.shape.slotsPerGpu;
  let n = 0;
  for (let l = 0; l < to.numLayers; l++) {
    for (let p = 0; p < to.shape.numSlots; p++) {
      const g = Math.floor(p / S);
      const e = to.phy2log[l][p];
      if (e >= 0 && !from.phy2log[l].subarray(g * S, g * S + S).includes(e)) n++;
    }
  }
  return n;
}

describe('maxAssignment', () => {
  it('finds the best permutation (brute force up to 6 x 6)', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 40; trial++) {
      const n = 1 + (trial % 6);
      const v = Float64Array.from({ length: n * n }, () => Math.floor(rng.next() * 20) - 5);
      const perm = maxAssignment(v, n);
      expect(new Set(perm).size).toBe(n);
      const value = (p: ArrayLike<number>): number => Array.from({ length: n }, (_, i) => v[i * n + p[i]]).reduce((a, b) => a + b, 0);
      const best = Math.max(...permutations(n).map(value));
      expect(value(perm)).toBe(best);
    }
  });
});

describe('alignment', () => {
  const shape = makeShape(3, 2, 3);
  const E = 12;

  it('undoes any relabelling of nodes, GPUs and slots: no moves', () => {
    const cur = randomPlacement(3, E, shape, 1);
    const next = relabelled(cur, 2);
    expect(bruteMoves(cur, next)).toBeGreaterThan(0);
    const aligned = alignPlacement(cur, next);
    expect(aligned.phy2log).toEqual(cur.phy2log);
    expect(movesBetween(cur, aligned).moves.length).toBe(0);
  });

  it('keeps each GPU content and maps the dispatch with it: the same loads on counts', () => {
    const model = tinyModel();
    const E8 = model.experts;
    const cluster = tinyCluster(shape);
    const trace = randomTrace(2, E8, 2, 400, 20, 5);
    const counts: Workload = { kind: 'counts', counts: countsOfTrace(trace), meta: { format: 'test' } };
    const cur = randomPlacement(2, E8, shape, 7);
    const next = eplbPlacement(countsOfTrace(trace).counts, E8, shape);
    const aligned = alignPlacement(cur, next);
    validatePlacement(aligned);
    const a = evaluate({ model, cluster, placement: next, workload: counts });
    const b = evaluate({ model, cluster, placement: aligned, workload: counts });
    for (let l = 0; l < 2; l++) expect(b.perLayer[l].maxLoad).toBeCloseTo(a.perLayer[l].maxLoad, 9);
    expect(bruteMoves(cur, aligned)).toBeLessThanOrEqual(bruteMoves(cur, next));
    // Without relabelling only slots move inside GPUs: the same moves over links.
    const kept = alignPlacement(cur, next, false);
    expect(bruteMoves(cur, kept)).toBe(bruteMoves(cur, next));
  });

  it('is optimal: no node/GPU relabelling keeps more experts on their GPU (brute force, 2 x 2)', () => {
    const small = makeShape(2, 2, 2);
    const rng = new Rng(11);
    for (let trial = 0; trial < 10; trial++) {
      const a = randomRow(6, small, rng);
      const b = randomRow(6, small, rng);
      const map = alignGpus(a, b, 6, small, true);
      const kept = (m: ArrayLike<number>): number => {
        let k = 0;
        for (let g = 0; g < 4; g++) for (let i = 0; i < 2; i++) if (a.subarray(m[g] * 2, m[g] * 2 + 2).includes(b[g * 2 + i])) k++;
        return k;
      };
      let best = 0;
      for (const np of permutations(2)) for (const g0 of permutations(2)) for (const g1 of permutations(2)) best = Math.max(best, kept([np[0] * 2 + g0[0], np[0] * 2 + g0[1], np[1] * 2 + g1[0], np[1] * 2 + g1[1]]));
      expect(kept(map)).toBe(best);
      const al = applyAlignment(a, b, null, map, 6, small);
      expect([...al.phy2log].sort()).toEqual([...b].sort());
    }
  });
});

describe('moves and schedule', () => {
  const shape = makeShape(2, 3, 3);
  it('counts exactly the copies, from holders, and schedules one send and one receive per GPU per round', () => {
    const from = randomPlacement(4, 10, shape, 21);
    const to = randomPlacement(4, 10, shape, 22);
    const m = migrationBetween(from, to, 50, SPEEDS);
    expect(m.movedExperts).toBe(bruteMoves(from, to));
    expect(m.movedBytes).toBe(50 * m.movedExperts);
    expect(m.nvlinkMoves + m.rdmaMoves).toBe(m.movedExperts);
    expect(m.perLayer.reduce((a, b) => a + b, 0)).toBe(m.movedExperts);
    const S = shape.slotsPerGpu;
    const rounds = new Map<number, { send: Set<number>; recv: Set<number> }>();
    let seconds = new Map<number, number>();
    for (const x of m.moves) {
      expect(from.phy2log[x.layer].subarray(x.fromGpu * S, x.fromGpu * S + S)).toContain(x.expert);
      expect(to.phy2log[x.layer][x.toSlot]).toBe(x.expert);
      expect(Math.floor(x.toSlot / S)).toBe(x.toGpu);
      const sameNode = Math.floor(x.fromGpu / 3) === Math.floor(x.toGpu / 3);
      expect(x.link).toBe(sameNode ? 'nvlink' : 'rdma');
      // A same-node source is used whenever one exists.
      if (!sameNode) for (let h = Math.floor(x.toGpu / 3) * 3; h < Math.floor(x.toGpu / 3) * 3 + 3; h++) if (h !== x.toGpu) expect(from.phy2log[x.layer].subarray(h * S, h * S + S)).not.toContain(x.expert);
      const r = rounds.get(x.round) ?? { send: new Set(), recv: new Set() };
      expect(r.send.has(x.fromGpu)).toBe(false);
      expect(r.recv.has(x.toGpu)).toBe(false);
      r.send.add(x.fromGpu);
      r.recv.add(x.toGpu);
      rounds.set(x.round, r);
      seconds.set(x.round, Math.max(seconds.get(x.round) ?? 0, 50 / (x.link === 'nvlink' ? 100 : 10)));
    }
    expect(rounds.size).toBe(m.rounds);
    expect(m.rounds).toBeGreaterThanOrEqual(m.minRounds);
    expect(m.estimatedSeconds).toBeCloseTo([...seconds.values()].reduce((a, b) => a + b, 0), 9);
    expect(migrationBetween(from, from, 50, SPEEDS).movedExperts).toBe(0);
  });
});

/**
 * Mean over layers of mean / smooth max (p-norm, p = 32) of the GPU loads `counts` put on `p`
 * (every source sends counts[e] / NG of expert e to the slot its dispatch names): what the budgeted
 * rebalance maximises, recomputed from scratch.
 */
function smoothBalance(p: Placement, counts: Float64Array[]): number {
  const { numGpus: NG, slotsPerGpu: S } = p.shape;
  const E = p.numExperts;
  let total = 0;
  for (let l = 0; l < p.numLayers; l++) {
    const d = dispatchOf(p, l);
    const load = new Float64Array(NG);
    for (let g = 0; g < NG; g++) for (let e = 0; e < E; e++) load[Math.floor(d[g * E + e] / S)] += counts[l][e] / NG;
    const max = Math.max(...load);
    const mean = load.reduce((a, b) => a + b, 0) / NG;
    const norm = max * load.reduce((a, v) => a + (v / max) ** 32, 0) ** (1 / 32);
    total += mean / norm;
  }
  return total / p.numLayers;
}

/** Skewed random expert loads (a few hot experts), seeded. */
function skewedLoads(E: number, rng: Rng): Float64Array {
  return Float64Array.from({ length: E }, () => Math.round(1000 * rng.next() ** 3 + 10 * rng.next()));
}

describe('budget moves', () => {
  it('score the state they make exactly (smooth max and copies recomputed from scratch) and never raise the max, compound moves too', () => {
    const kinds = new Set<string>();
    for (const [shape, E] of [[makeShape(4, 8, 2), 48], [makeShape(2, 4, 2), 12], [makeShape(2, 3, 3), 14]] as const) {
      for (let seed = 0; seed < 6; seed++) {
        const rng = new Rng(100 + seed);
        const r = checkMovePath(randomRow(E, shape, rng), skewedLoads(E, rng), shape, E, 200);
        expect(r.copyErrors).toBe(0);
        expect(r.maxRises).toBe(0);
        expect(r.normError).toBeLessThan(1e-9);
        for (const k of r.kinds) kinds.add(k);
      }
    }
    // Every kind of move is taken somewhere, compounds (two slots per GPU) among them.
    for (const k of ['1', '2', '3']) expect(kinds).toContain(k);
    expect([...kinds].some((k) => k.includes('+'))).toBe(true);
  });

  it('two slots per GPU: at most the budget, valid, the copies counted, smooth balance never lower as the budget grows', () => {
    const shape = makeShape(4, 8, 2);
    const E = 48;
    const rng = new Rng(7);
    const loads = [skewedLoads(E, rng), skewedLoads(E, rng), skewedLoads(E, rng)];
    const stale = eplbPlacement(loads.map((c) => Float64Array.from(c).reverse()), E, shape);
    expectBudgetsMonotone(stale, loads, [0, 1, 2, 3, 5, 8, 13, 21, 40, 80], E, shape);
  });
});

/**
 * For growing budgets: the rebalanced plan is valid, spends at most the budget (copies counted by
 * brute force), its smooth balance never drops, and the largest budget beats the running plan.
 */
function expectBudgetsMonotone(stale: Placement, loads: Float64Array[], budgets: number[], E: number, shape: Shape, each?: (budget: number, p: Placement) => void): void {
  let prev = -Infinity;
  for (const budget of budgets) {
    const r = rebalanceWithBudget(stale, loads, budget);
    const p: Placement = { ...r.placement, dispatch: r.placement.phy2log.map((row, l) => dispatchOfShares(row, r.shares[l], E, shape)) };
    validatePlacement(p, 'rebalanced');
    expect(r.copies).toBeLessThanOrEqual(budget);
    expect(bruteMoves(stale, p)).toBe(r.copies);
    const b = smoothBalance(p, loads);
    expect(b).toBeGreaterThanOrEqual(prev - 1e-12);
    prev = b;
    each?.(budget, p);
  }
  expect(prev).toBeGreaterThan(smoothBalance(stale, loads));
}

describe('rebalancing within a budget', () => {
  const model = tinyModel();
  const shape = makeShape(2, 2, 3); // 12 slots, 8 experts
  const cluster = tinyCluster(shape);
  const trace = randomTrace(2, 8, 2, 2000, 40, 9);
  const counts: Workload = { kind: 'counts', counts: countsOfTrace(trace), meta: { format: 'test' } };
  const loads = countsOfTrace(trace).counts;
  // Running plan: balanced for the reversed popularity (so it is badly placed for this one).
  const stale = eplbPlacement(loads.map((c) => Float64Array.from(c).reverse()), 8, shape);
  const maxLoad = (p: Placement): number => evaluate({ model, cluster, placement: p, workload: counts }).maxLoad;

  it('spends at most the budget, stays valid, and never loses (smooth) balance as the budget grows', () => {
    expectBudgetsMonotone(stale, loads, [0, 1, 2, 4, 8, 24], 8, shape, (budget, p) => {
      if (budget === 0) expect(maxLoad(p)).toBeLessThanOrEqual(maxLoad(stale) * (1 + 1e-9)); // shares alone never hurt
    });
  });

  it('takes the aligned re-plan when it fits the budget, else the budgeted rebalance', () => {
    const replan = eplbPlacement(loads, 8, shape);
    const free = rebalance({ current: stale, replan, loads, expertBytes: 10, speeds: SPEEDS });
    expect(free.method).toBe('replan');
    const tight = rebalance({ current: stale, replan, loads, maxMoves: 2, expertBytes: 10, speeds: SPEEDS });
    expect(tight.method).toBe('budget');
    expect(tight.migration.movedExperts).toBeLessThanOrEqual(2);
    expect(tight.replanMoves).toBe(free.migration.movedExperts);
    validatePlacement(tight.placement);
  });
});

describe('replay', () => {
  it('scores every window after the first with plans fitted before it; static moves nothing; budget holds', async () => {
    const model = tinyModel();
    const shape = makeShape(2, 2, 3);
    const cluster = tinyCluster(shape);
    const windows = [1, 2, 3, 4].map((s) => ({ name: `w${s}`, workload: { kind: 'trace', trace: randomTrace(2, 8, 2, 600, 20, 100 + s), meta: { format: 'test' } } as Workload }));
    const r = await replay({ model, cluster, windows, policies: ['static', 'eplb', 'budget'], maxMovedExperts: 2, timeLimitSeconds: 5 });
    expect(r.windows).toEqual(['w1', 'w2', 'w3', 'w4']);
    for (const p of r.policies) {
      expect(p.perWindow.map((w) => w.window)).toEqual([1, 2, 3]);
      expect(p.perWindow[0].movedExperts).toBe(0); // the first served window runs the initial plan
    }
    const [st, , budget] = r.policies;
    expect(st.totalMovedBytes).toBe(0);
    // All start from the same plan, so the first window scores alike.
    expect(budget.perWindow[0].balancedness).toBeCloseTo(st.perWindow[0].balancedness, 12);
    for (const w of budget.perWindow) expect(w.movedExperts).toBeLessThanOrEqual(2);
    expect(budget.perWindow.slice(1).every((w) => w.rebalanced)).toBe(true);
  });
});

describe('CLI', () => {
  let dir: string;
  const p = (n: string): string => join(dir, n);
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'moe-migrate-'));
    writeFileSync(p('model.json'), JSON.stringify(TINY_MODEL));
    writeFileSync(p('cluster.json'), JSON.stringify(TINY_CLUSTER));
    const model = tinyModel();
    await writeTrace(p('a.mpt'), randomTrace(2, 8, 2, 800, 20, 1), model);
    await writeTrace(p('b.mpt'), randomTrace(2, 8, 2, 800, 20, 2), model);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('plan --from records moves within the budget and reads back', async () => {
    const base = ['--model', p('model.json'), '--cluster', p('cluster.json'), '--workers', '1'];
    expect((await runCli(['plan', ...base, '--workload', p('a.mpt'), '--solver', 'eplb', '--out', p('cur.json')])).code).toBe(0);
    const r = await runCli(['plan', ...base, '--workload', p('b.mpt'), '--objective', 'balance', '--from', p('cur.json'), '--max-moved-experts', '1', '--out', p('new.json'), '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.migration.movedExperts).toBeLessThanOrEqual(1);
    const back = readPlanFile(p('new.json'));
    const mig = back.plan.migration!;
    expect(mig.moves.length).toBe(mig.movedExperts);
    expect(mig.maxMovedExperts).toBe(1);
    const cur = readPlanFile(p('cur.json')).placement;
    expect(bruteMoves(cur, back.placement)).toBe(mig.movedExperts);
  });

  it('refuses a running plan of another shape, and a budget without --from (exit 2, nothing written)', async () => {
    const base = ['--model', p('model.json'), '--cluster', p('cluster.json'), '--workload', p('b.mpt')];
    const other = await runCli(['plan', ...base, '--slots-per-gpu', '4', '--from', p('cur.json'), '--out', p('x.json')]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/--from: .*shape 2x2x3.*2x2x4/);
    expect(other.stderr).toContain('--nodes 2 --gpus-per-node 2 --slots-per-gpu 3');
    const nobase = await runCli(['plan', ...base, '--max-moved-experts', '3', '--out', p('x.json')]);
    expect(nobase.code).toBe(2);
    expect(nobase.stderr).toContain('--max-moved-experts: a move budget needs --from');
    expect(existsSync(p('x.json'))).toBe(false);
  });

  it('replay cuts a trace into windows and writes the JSON', async () => {
    const r = await runCli([
      'replay', '--model', p('model.json'), '--cluster', p('cluster.json'), '--windows', p('a.mpt'), '--window-requests', '5',
      '--policies', 'static,eplb-keep,budget', '--max-moved-experts', '2', '--workers', '1', '--out', p('replay.json'),
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('eplb-keep');
    const j = JSON.parse(readFileSync(p('replay.json'), 'utf8'));
    expect(j.format).toBe('moe-placer.replay/1');
    expect(j.windows.length).toBe(4);
    expect(j.policies.map((x: { name: string }) => x.name)).toEqual(['static', 'eplb-keep', 'budget']);
    // The report plots it.
    const rep = await runCli(['report', '--plan', p('new.json'), '--workload', p('b.mpt'), '--replay', p('replay.json'), '--out', p('r.html')]);
    expect(rep.code).toBe(0);
    expect(readFileSync(p('r.html'), 'utf8')).toContain('eplb-keep');
    const bad = await runCli(['replay', '--model', p('model.json'), '--cluster', p('cluster.json'), '--windows', p('a.mpt'), '--policies', 'eplb,magic']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--policies: unknown "magic"');
  });
});
