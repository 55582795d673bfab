import { describe, expect, it } from 'vitest';
import { LpModel, autoBackend, loadHighs, solveLp, toCplexLp } from '../src/lp/index.js';
import type { LpOptions, LpResult } from '../src/lp/index.js';
import { withHighs } from '../src/lp/highs.js';
import { Rng } from '../src/rng.js';

const BACKENDS: LpOptions[] = [{ backend: 'jsls' }, { backend: 'highs' }, { backend: 'highs', highsInput: 'lp-text' }];

async function solveAll(build: () => LpModel): Promise<LpResult[]> {
  const out: LpResult[] = [];
  for (const o of BACKENDS) out.push(await solveLp(build(), o));
  return out;
}

function expectAllOptimal(rs: LpResult[], objective: number): void {
  for (const r of rs) {
    expect(r.status, `${r.backend}: ${r.message ?? ''}`).toBe('optimal');
    expect(r.objective).toBeCloseTo(objective, 6);
    expect(r.feasible).toBe(true);
    expect(r.integral).toBe(true);
  }
}

/** 0/1 knapsack: values [10,13,7,8,4], weights [5,6,4,3,2], capacity 10. */
function knapsack(integer: boolean): LpModel {
  const v = [10, 13, 7, 8, 4];
  const w = [5, 6, 4, 3, 2];
  const m = new LpModel('max');
  for (let i = 0; i < 5; i++) m.addVar(`item${i}`, { lb: 0, ub: 1, integer, obj: v[i] });
  m.addConstraint(w.map((wi, i) => [i, wi] as const), { ub: 10 });
  return m;
}

/** 3x3 assignment, cost [[4,1,3],[2,0,5],[3,2,2]]: optimum 1 + 2 + 2 = 5. */
function assignment(integer: boolean): LpModel {
  const c = [
    [4, 1, 3],
    [2, 0, 5],
    [3, 2, 2],
  ];
  const m = new LpModel('min');
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) m.addVar(undefined, { ub: 1, integer, obj: c[i][j] });
  for (let i = 0; i < 3; i++) m.addConstraint(Int32Array.from([0, 1, 2], (j) => i * 3 + j), new Float64Array([1, 1, 1]), { lb: 1, ub: 1 });
  for (let j = 0; j < 3; j++) m.addConstraint([0, 1, 2].map((i) => [i * 3 + j, 1] as const), { lb: 1, ub: 1 });
  return m;
}

/**
 * min x0 + 2 x1 - x2 + x3 s.t. x0 + x1 + x2 = 1, x0 - x1 = -3.5, x0 in [-5,5], x1 free, x2 in [-1,2],
 * x3 in [-3,4]. By hand: x1 = x0 + 3.5, x2 = -2.5 - 2 x0, objective 5 x0 + 9.5 + x3, x2 <= 2 gives
 * x0 >= -2.25: x = (-2.25, 1.25, 2, -3), objective -4.75. With x0 integer: x0 = -2, objective -3.5.
 */
function equalities(x0Integer: boolean): LpModel {
  const m = new LpModel('min');
  m.addVar('x0', { lb: -5, ub: 5, obj: 1, integer: x0Integer });
  m.addVar('x1', { lb: -Infinity, obj: 2 });
  m.addVar('x2', { lb: -1, ub: 2, obj: -1 });
  m.addVar('x3', { lb: -3, ub: 4, obj: 1 });
  m.addConstraint([[0, 1], [1, 1], [2, 1]], { lb: 1, ub: 1 });
  m.addConstraint([[0, 1], [1, -1]], { lb: -3.5, ub: -3.5 });
  return m;
}

describe('LpModel', () => {
  it('merges repeated variables in a row and drops zero coefficients', () => {
    const m = new LpModel();
    m.addVars(3);
    m.addConstraint([[2, 1], [0, 2], [2, 3], [1, 0]], { ub: 4 });
    const { start, index, value } = m.rows();
    expect(Array.from(start)).toEqual([0, 2]);
    expect(Array.from(index)).toEqual([0, 2]);
    expect(Array.from(value)).toEqual([2, 4]);
  });

  it('rejects bad input with a SolverError', () => {
    const m = new LpModel();
    m.addVar();
    expect(() => m.addConstraint([[1, 1]], { ub: 1 })).toThrow(/no variable 1/);
    expect(() => m.addConstraint([[0, NaN]], { ub: 1 })).toThrow(/coefficient/);
    expect(() => m.addVar('y', { lb: Infinity })).toThrow(/bounds/);
    expect(() => m.addConstraint([0], [1, 2], {})).toThrow(/indices/);
  });

  it('checks integrality and feasibility of a point', () => {
    const m = new LpModel();
    m.addVar('a', { integer: true, ub: 3 });
    m.addVar('b', { lb: -1 });
    m.addConstraint([[0, 1], [1, 1]], { lb: 1, ub: 2 });
    expect(m.isIntegral([2, 0.5])).toBe(true);
    expect(m.isIntegral([1.5, 0])).toBe(false);
    expect(m.isIntegral([2 + 1e-9, 0.5])).toBe(true);
    expect(m.violation([1, 0.5])).toBe(0);
    expect(m.violation([4, 0])).toBeGreaterThan(0); // a > 3 and the row > 2
    expect(m.violation([0, -2])).toBeGreaterThan(0); // b < -1
  });

  it('auto uses jsls for small models and HiGHS for big ones', () => {
    expect(autoBackend(knapsack(true))).toBe('jsls');
    const big = new LpModel();
    big.addVars(301);
    expect(autoBackend(big)).toBe('highs');
  });

  it('writes LP text with safe names, free variables, bounds and generals', () => {
    const text = toCplexLp(equalities(true));
    expect(text).toContain('Minimize');
    expect(text).toContain(' x1 free');
    expect(text).toContain(' -1 <= x2 <= 2');
    expect(text).toContain(' -5 <= x0 <= 5');
    expect(text).toMatch(/Generals\n x0\n/);
    expect(text).toContain(' r1: + 1 x0 - 1 x1 = -3.5');
    expect(text).not.toMatch(/item|NaN|Infinity/);
  });
});

describe('solveLp on both backends', () => {
  it('knapsack MIP: 22 (items 0, 3, 4), relaxation 23', async () => {
    const rs = await solveAll(() => knapsack(true));
    expectAllOptimal(rs, 22);
    for (const r of rs) expect(Array.from(r.x, Math.round)).toEqual([1, 0, 0, 1, 1]);
    expectAllOptimal(await solveAll(() => knapsack(false)), 23);
  });

  it('assignment: 5 as LP and as MIP', async () => {
    for (const integer of [false, true]) {
      const rs = await solveAll(() => assignment(integer));
      expectAllOptimal(rs, 5);
      for (const r of rs) expect(Array.from(r.x, (v) => Math.round(v) + 0)).toEqual([0, 1, 0, 1, 0, 0, 0, 0, 1]);
    }
  });

  it('equalities, free and negative bounds; variables at a negative bound are returned', async () => {
    const rs = await solveAll(() => equalities(false));
    expectAllOptimal(rs, -4.75);
    for (const r of rs) {
      expect(r.x[0]).toBeCloseTo(-2.25, 6);
      expect(r.x[1]).toBeCloseTo(1.25, 6);
      expect(r.x[2]).toBeCloseTo(2, 6);
      expect(r.x[3]).toBeCloseTo(-3, 6);
    }
    const ri = await solveAll(() => equalities(true));
    expectAllOptimal(ri, -3.5);
    for (const r of ri) expect(r.x[0]).toBeCloseTo(-2, 6);
  });

  it('objective offset is included', async () => {
    const rs = await solveAll(() => {
      const m = knapsack(true);
      m.objectiveOffset = 100;
      return m;
    });
    expectAllOptimal(rs, 122);
    for (const r of rs) if (r.bestBound !== undefined) expect(r.bestBound).toBeCloseTo(122, 6);
  });

  it('infeasible: x + y >= 5 with x, y <= 2', async () => {
    for (const integer of [false, true]) {
      const rs = await solveAll(() => {
        const m = new LpModel('min');
        m.addVar('x', { ub: 2, integer, obj: 1 });
        m.addVar('y', { ub: 2, obj: 1 });
        m.addConstraint([[0, 1], [1, 1]], { lb: 5 });
        return m;
      });
      for (const r of rs) {
        expect(r.status, r.backend).toBe('infeasible');
        expect(r.objective).toBe(Infinity);
      }
    }
  });

  it('unbounded: max x + y with x - y <= 1', async () => {
    for (const integer of [false, true]) {
      const rs = await solveAll(() => {
        const m = new LpModel('max');
        m.addVar('x', { obj: 1, integer });
        m.addVar('y', { obj: 1 });
        m.addConstraint([[0, 1], [1, -1]], { ub: 1 });
        return m;
      });
      for (const r of rs) {
        expect(r.status, r.backend).toBe('unbounded');
        expect(r.objective).toBe(Infinity);
      }
    }
  });

  it('trivially infeasible bounds are answered without a backend', async () => {
    const m = new LpModel();
    m.addVar('z', { lb: 0.2, ub: 0.8, integer: true });
    const r = await solveLp(m);
    expect(r.status).toBe('infeasible');
    expect(r.backend).toBe('trivial');
  });

  it('uncapacitated facility location equals enumeration of open sets', async () => {
    const f = [10, 12, 8];
    const c = [
      [3, 9, 7, 14, 5],
      [8, 2, 6, 4, 11],
      [9, 8, 3, 6, 2],
    ];
    let best = Infinity;
    for (let open = 1; open < 8; open++) {
      let cost = 0;
      for (let i = 0; i < 3; i++) if (open & (1 << i)) cost += f[i];
      for (let j = 0; j < 5; j++) {
        let cj = Infinity;
        for (let i = 0; i < 3; i++) if (open & (1 << i)) cj = Math.min(cj, c[i][j]);
        cost += cj;
      }
      best = Math.min(best, cost);
    }
    const rs = await solveAll(() => {
      const m = new LpModel('min');
      const y = [0, 1, 2].map((i) => m.addVar(`open${i}`, { ub: 1, integer: true, obj: f[i] }));
      for (let j = 0; j < 5; j++) {
        const xs = [0, 1, 2].map((i) => m.addVar(undefined, { ub: 1, obj: c[i][j] }));
        m.addConstraint(xs.map((x) => [x, 1] as const), { lb: 1, ub: 1 });
        for (let i = 0; i < 3; i++) m.addConstraint([[xs[i], 1], [y[i], -1]], { ub: 0 });
      }
      return m;
    });
    expectAllOptimal(rs, best);
  });

  it('random bounded packing MIPs agree across backends', async () => {
    const rng = new Rng(7);
    for (let trial = 0; trial < 12; trial++) {
      const n = 4 + rng.int(6);
      const rows = 2 + rng.int(4);
      const cost = Array.from({ length: n }, () => 1 + rng.int(20));
      const ub = Array.from({ length: n }, () => 1 + rng.int(4));
      const isInt = Array.from({ length: n }, () => rng.next() < 0.6);
      const a = Array.from({ length: rows }, () => Array.from({ length: n }, () => rng.int(7)));
      const b = Array.from({ length: rows }, () => 5 + rng.int(20));
      const build = (): LpModel => {
        const m = new LpModel('max');
        for (let j = 0; j < n; j++) m.addVar(undefined, { ub: ub[j], integer: isInt[j], obj: cost[j] });
        for (let r = 0; r < rows; r++) m.addConstraint(a[r].map((v, j) => [j, v] as const), { lb: -1, ub: b[r] });
        return m;
      };
      const rs = await solveAll(build);
      expectAllOptimal(rs, rs[1].objective);
    }
  });
});

describe('time limits and HiGHS runtime recovery', () => {
  /** Jeroslow: 2 (x1 + ... + xn) = n, n odd, x binary. Infeasible; plain branch and bound needs ~2^(n/2) nodes. */
  function jeroslow(n: number): LpModel {
    const m = new LpModel('max');
    for (let j = 0; j < n; j++) m.addVar(undefined, { ub: 1, integer: true, obj: j === 0 ? 1 : 0 });
    m.addConstraint(Int32Array.from({ length: n }, (_, j) => j), new Float64Array(n).fill(2), { lb: n, ub: n });
    return m;
  }

  it('a jsls MIP that runs into its timeout is time-limit, never infeasible or optimal', async () => {
    const r = await solveLp(jeroslow(41), { backend: 'jsls', timeLimitSeconds: 0.2 });
    expect(r.status).toBe('time-limit');
    expect(r.integral && r.feasible).toBe(false); // no integral point exists
    expect(r.objective).toBeNaN();
    const h = await solveLp(jeroslow(41), { backend: 'highs', timeLimitSeconds: 10 });
    expect(h.status).toBe('infeasible');
  });

  it('drops the runtime after a native abort and keeps it after a validation error', async () => {
    const h1 = await loadHighs();
    await expect(withHighs((h) => h.createModel({ numCols: 1, numRows: 0, colCost: [NaN], colLower: [0], colUpper: [1], rowLower: [], rowUpper: [], matrix: { format: 'csr', numRows: 0, numCols: 1, starts: [0], indices: [], values: [] } }))).rejects.toThrow();
    expect(await loadHighs()).toBe(h1);
    // HiGHS' LP reader aborts the Wasm runtime on a two-sided row.
    await expect(withHighs((h) => h.createModel({ format: 'lp', data: 'Minimize\n obj: x\nSubject To\n r: -1 <= x + y <= 1\nEnd\n' }))).rejects.toThrow();
    const h2 = await loadHighs();
    expect(h2).not.toBe(h1);
    const r = await solveLp(knapsack(true), { backend: 'highs' });
    expect(r.status).toBe('optimal');
    expect(r.objective).toBeCloseTo(22, 9);
  });
});
