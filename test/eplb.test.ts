import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { contiguousPlacement } from '../src/solvers/contiguous.js';
import { balancedPacking, eplbPlacement, eplbSolver, rebalanceExperts, replicateExperts } from '../src/solvers/eplb.js';
import { getSolver, SOLVERS } from '../src/solvers/registry.js';
import { roundRobinLayer } from '../src/solvers/round-robin.js';
import { InputError } from '../src/errors.js';
import { logcntOf } from '../src/placement.js';
import { makeShape, type Shape } from '../src/types.js';

// EPLB README, "Interface and Example" (github.com/deepseek-ai/EPLB): 2 layers x 12 experts,
// 16 replicas, 4 groups, 2 nodes, 8 GPUs.
const README_WEIGHT = [
  [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
  [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
];
const README_PHY2LOG = [
  [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
  [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
];

const arr = (x: ArrayLike<number>): number[] => Array.from(x);

describe('balancedPacking', () => {
  it('puts the heaviest remaining item on the lightest pack with room', () => {
    // 5->p0, 4->p1, 3->p1 (4<5), 2->p0 (5<7), 1->p0 (7=7, lowest index), 1->p1 (p0 full).
    const r = balancedPacking(Float64Array.from([5, 4, 3, 2, 1, 1]), 2);
    expect(arr(r.pack)).toEqual([0, 1, 1, 0, 0, 1]);
    expect(arr(r.rankInPack)).toEqual([0, 0, 1, 1, 2, 2]);
  });
  it('breaks ties by index: stable descending sort, lowest pack', () => {
    const r = balancedPacking(Float64Array.from([1, 1, 1, 1]), 2);
    expect(arr(r.pack)).toEqual([0, 1, 0, 1]);
    expect(arr(r.rankInPack)).toEqual([0, 0, 1, 1]);
  });
  it('is the identity with one item per pack (no sort)', () => {
    const r = balancedPacking(Float64Array.from([1, 3, 2]), 3);
    expect(arr(r.pack)).toEqual([0, 1, 2]);
    expect(arr(r.rankInPack)).toEqual([0, 0, 0]);
  });
  it('rejects uneven packs', () => {
    expect(() => balancedPacking(Float64Array.from([1, 2, 3]), 2)).toThrow(InputError);
  });
});

describe('replicateExperts', () => {
  it('gives each extra replica to the largest load per replica', () => {
    // ratios 10,4,3 -> e0 (5); 5,4,3 -> e0 (3.33).
    const r = replicateExperts(Float64Array.from([10, 4, 3]), 5);
    expect(arr(r.phy2log)).toEqual([0, 1, 2, 0, 0]);
    expect(arr(r.rank)).toEqual([0, 0, 0, 1, 2]);
    expect(arr(r.logcnt)).toEqual([3, 1, 1]);
  });
  it('breaks ties by the lowest expert index', () => {
    // 6,3 -> e0 (3,3 tie) -> e0.
    expect(arr(replicateExperts(Float64Array.from([6, 3]), 4).phy2log)).toEqual([0, 1, 0, 0]);
  });
});

describe('rebalanceExperts', () => {
  it('reproduces the EPLB README example exactly (hierarchical policy)', () => {
    const r = rebalanceExperts(README_WEIGHT.map((w) => Float64Array.from(w)), 16, 4, 2, 8);
    expect(r.phy2log.map(arr)).toEqual(README_PHY2LOG);
    for (let l = 0; l < 2; l++) {
      expect(arr(r.logcnt[l])).toEqual(arr(logcntOf(r.phy2log[l], 12)));
      for (let e = 0; e < 12; e++) {
        const row = arr(r.log2phy[l][e]);
        expect(row.length).toBe(16 - 12 + 1);
        const slots = row.filter((p) => p >= 0);
        expect(slots.length).toBe(r.logcnt[l][e]);
        slots.forEach((p, rank) => {
          expect(r.phy2log[l][p]).toBe(e);
          expect(r.rank[l][p]).toBe(rank);
        });
        expect(row.slice(slots.length).every((p) => p === -1)).toBe(true);
      }
    }
  });

  it('uses the global policy when nodes do not divide groups (hand-computed)', () => {
    // 1 group over 3 nodes -> global. Replicate [8,4,2,2] into 6: e0 (8 -> 4), then 4 vs 4 tie -> e0.
    // Per-replica loads [8/3,4,2,2,8/3,8/3]; pack into 3 GPUs x 2: 4->g0, 8/3->g1, 8/3->g2,
    // 8/3->g1 (tie), 2->g2, 2->g0. EPLB puts both e0 replicas on GPU 1 here.
    const r = rebalanceExperts([Float64Array.from([8, 4, 2, 2])], 6, 1, 3, 3);
    expect(arr(r.phy2log[0])).toEqual([1, 3, 0, 0, 0, 2]);
    expect(arr(r.logcnt[0])).toEqual([3, 1, 1, 1]);
  });

  it('refuses fewer slots than experts', () => {
    expect(() => rebalanceExperts([Float64Array.from([1, 2, 3, 4])], 2, 1, 1, 2)).toThrow(/cannot hold/);
  });
});

describe('baselines', () => {
  it('contiguous: slot p holds expert p mod E', () => {
    const pl = contiguousPlacement(2, 5, makeShape(1, 2, 3));
    expect(arr(pl.phy2log[1])).toEqual([0, 1, 2, 3, 4, 0]);
  });
  it('round-robin: hottest experts on different GPUs, replicas of one expert on distinct GPUs', () => {
    // loads: e2 hottest (two replicas), then e0, e3, e1. 3 GPUs x 2 slots.
    // replicate 4 -> 6: e2 (100 -> 50), then e2 50 vs e0 40 -> e2 (33.3). order e2,e2,e2,e0,e3,e1.
    const shape = makeShape(1, 3, 2);
    const p = roundRobinLayer(Float64Array.from([40, 5, 100, 20]), shape);
    // dealt: i0 e2 -> g0s0, i1 e2 -> g1s0, i2 e2 -> g2s0, i3 e0 -> g0s1, i4 e3 -> g1s1, i5 e1 -> g2s1
    expect(arr(p)).toEqual([2, 0, 2, 3, 2, 1]);
  });
  it('registry lists the baselines and rejects unknown names with the list', () => {
    expect(Object.keys(SOLVERS).sort()).toEqual(['contiguous', 'eplb', 'optimize', 'round-robin']);
    expect(getSolver('eplb')).toBe(eplbSolver);
    expect(() => getSolver('nope')).toThrow(/unknown solver "nope"; known: optimize, contiguous, round-robin, eplb/);
  });
});

// ---------------------------------------------------------------------------------------------
// Independent reference: EPLB's steps written the way the PyTorch reference reads, over plain
// nested arrays ([rows][cols]) with tensor-like helpers, float32 rounding where torch has float32
// tensors, `Array.prototype.sort` (stable) for `sort(descending=True)`, first index for `max`.

const f32 = Math.fround;
type M = number[][];
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const gather = (src: M, idx: M): M => idx.map((row, i) => row.map((j) => src[i][j]));
const inverse = (perm: M): M =>
  perm.map((row) => {
    const inv = new Array<number>(row.length);
    row.forEach((v, i) => (inv[v] = i));
    return inv;
  });

function refBalancedPacking(weight: M, numPacks: number): { pack: M; rank: M } {
  const n = weight[0].length;
  const groupsPerPack = n / numPacks;
  if (groupsPerPack === 1) return { pack: weight.map(() => range(n)), rank: weight.map(() => range(n).map(() => 0)) };
  const pack: M = [];
  const rank: M = [];
  for (const row of weight) {
    const indices = range(n).sort((a, b) => row[b] - row[a]);
    const packWeights = range(numPacks).map(() => 0);
    const packItems = range(numPacks).map(() => 0);
    const p = new Array<number>(n);
    const r = new Array<number>(n);
    for (const group of indices) {
      const candidates = range(numPacks).filter((i) => packItems[i] < groupsPerPack);
      const best = candidates.reduce((a, i) => (packWeights[i] < packWeights[a] ? i : a), candidates[0]);
      p[group] = best;
      r[group] = packItems[best];
      packWeights[best] = f32(packWeights[best] + row[group]);
      packItems[best] += 1;
    }
    pack.push(p);
    rank.push(r);
  }
  return { pack, rank };
}

function refReplicate(weight: M, numPhy: number): { phy2log: M; rank: M; logcnt: M } {
  const n = weight[0].length;
  const phy2log = weight.map(() => range(numPhy));
  const rank = weight.map(() => range(numPhy).map(() => 0));
  const logcnt = weight.map(() => range(n).map(() => 1));
  for (let i = n; i < numPhy; i++) {
    weight.forEach((row, x) => {
      const ratio = row.map((w, j) => f32(w / logcnt[x][j]));
      const idx = ratio.indexOf(Math.max(...ratio));
      phy2log[x][i] = idx;
      rank[x][i] = logcnt[x][idx];
      logcnt[x][idx] += 1;
    });
  }
  return { phy2log, rank, logcnt };
}

function refHierarchical(weight: M, numPhysical: number, numGroups: number, numNodes: number, numGpus: number): M {
  const L = weight.length;
  const E = weight[0].length;
  const groupSize = E / numGroups;
  const groupsPerNode = numGroups / numNodes;
  const phyPerGpu = numPhysical / numGpus;
  const tokensPerGroup = weight.map((row) => range(numGroups).map((g) => row.slice(g * groupSize, (g + 1) * groupSize).reduce((a, b) => f32(a + b), 0)));
  const gp = refBalancedPacking(tokensPerGroup, numNodes);
  const log2mlog = weight.map((_, l) => range(E).map((e) => (gp.pack[l][Math.floor(e / groupSize)] * groupsPerNode + gp.rank[l][Math.floor(e / groupSize)]) * groupSize + (e % groupSize)));
  const mlog2log = inverse(log2mlog);
  // [L * nodes][E / nodes]
  const tokensPerMlog: M = [];
  gather(weight, mlog2log).forEach((row) => {
    for (let n = 0; n < numNodes; n++) tokensPerMlog.push(row.slice((n * E) / numNodes, ((n + 1) * E) / numNodes));
  });
  const rep = refReplicate(tokensPerMlog, numPhysical / numNodes);
  const tokensPerPhy = gather(
    tokensPerMlog.map((row, x) => row.map((w, j) => f32(w / rep.logcnt[x][j]))),
    rep.phy2log,
  );
  const pk = refBalancedPacking(tokensPerPhy, numGpus / numNodes);
  const phy2pphy = pk.pack.map((row, x) => row.map((p, i) => p * phyPerGpu + pk.rank[x][i]));
  const pphy2mlogLocal = gather(rep.phy2log, inverse(phy2pphy));
  const out: M = [];
  for (let l = 0; l < L; l++) {
    const pphy2mlog: number[] = [];
    for (let n = 0; n < numNodes; n++) pphy2mlog.push(...pphy2mlogLocal[l * numNodes + n].map((m) => m + (n * E) / numNodes));
    out.push(pphy2mlog.map((m) => mlog2log[l][m]));
  }
  return out;
}

function refRebalance(weight: M, numReplicas: number, numGroups: number, numNodes: number, numGpus: number): M {
  const w = weight.map((row) => row.map(f32));
  return numGroups % numNodes === 0 ? refHierarchical(w, numReplicas, numGroups, numNodes, numGpus) : refHierarchical(w, numReplicas, 1, 1, numGpus);
}

/** [NG] per-GPU load of one layer, each replica taking load / replicas (values summed in sorted order). */
function gpuLoads(phy2log: ArrayLike<number>, load: ArrayLike<number>, numExperts: number, shape: Shape): number[] {
  const cnt = logcntOf(Int32Array.from(phy2log), numExperts);
  return range(shape.numGpus).map((g) =>
    range(shape.slotsPerGpu)
      .map((i) => load[phy2log[g * shape.slotsPerGpu + i]] / cnt[phy2log[g * shape.slotsPerGpu + i]])
      .sort((a, b) => a - b)
      .reduce((a, b) => a + b, 0),
  );
}

const balancedness = (loads: number[]): number => loads.reduce((a, b) => a + b, 0) / loads.length / Math.max(...loads);

it('the reference re-implementation also reproduces the README example', () => {
  expect(refRebalance(README_WEIGHT, 16, 4, 2, 8)).toEqual(README_PHY2LOG);
});

const DATA = '/work/shared/data/deepseek-v3-sglang';

describe.skipIf(!existsSync(DATA))('EPLB on real DeepSeek-V3 counts (opt-in: /work/shared/data)', () => {
  const files = existsSync(DATA) ? readdirSync(DATA).filter((f) => f.endsWith('.json')).sort() : [];
  const loadsOf = (f: string): number[][] => (JSON.parse(readFileSync(`${DATA}/${f}`, 'utf8')).logical_count as number[][]).slice(3, 61);

  const cases = [
    { name: 'EP32 (4 nodes x 8 GPUs x 9 slots, hierarchical)', shape: makeShape(4, 8, 9) },
    { name: 'EP144 (18 nodes x 8 GPUs x 2 slots, global)', shape: makeShape(18, 8, 2) },
  ];
  for (const { name, shape } of cases) {
    it(`${name}: same per-GPU loads as the reference, invariants hold`, () => {
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) {
        const loads = loadsOf(f);
        expect(loads.length).toBe(58);
        const placement = eplbPlacement(loads.map((r) => Float64Array.from(r)), 256, shape, 8);
        const ref = refRebalance(loads, shape.numSlots, 8, shape.nodes, shape.numGpus);
        let sumEplb = 0;
        let sumTrivial = 0;
        const trivial = contiguousPlacement(1, 256, shape).phy2log[0];
        for (let l = 0; l < loads.length; l++) {
          const row = placement.phy2log[l];
          expect(row.length).toBe(shape.numSlots);
          const cnt = logcntOf(row, 256);
          expect(Math.min(...cnt)).toBeGreaterThanOrEqual(1);
          expect(cnt.reduce((a, b) => a + b, 0)).toBe(shape.numSlots);
          const mine = gpuLoads(row, loads[l], 256, shape);
          expect(mine).toEqual(gpuLoads(ref[l], loads[l], 256, shape));
          // With the same tie rules the slot-by-slot map agrees too.
          expect(arr(row)).toEqual(ref[l]);
          sumEplb += balancedness(mine);
          sumTrivial += balancedness(gpuLoads(trivial, loads[l], 256, shape));
          if (shape.nodes === 4) {
            // Hierarchical: every replica of a group's experts lives on the group's node.
            for (let g = 0; g < 8; g++) {
              const nodes = new Set<number>();
              for (let p = 0; p < shape.numSlots; p++) if (Math.floor(row[p] / 32) === g) nodes.add(Math.floor(p / (shape.slotsPerGpu * 8)));
              expect(nodes.size).toBe(1);
            }
          }
        }
        const meanEplb = sumEplb / loads.length;
        expect(meanEplb).toBeGreaterThan(0.7);
        expect(meanEplb).toBeGreaterThan(sumTrivial / loads.length + 0.2);
      }
    });
  }
});
