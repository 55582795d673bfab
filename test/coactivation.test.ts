import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Graph from 'graphology';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { Rng } from '../src/rng.js';
import {
  coactivationGraph,
  louvainCommunities,
  parseMetisPartition,
  toMetisGraph,
  type CoactivationAttributes,
  type ExpertAttributes,
} from '../src/search/coactivation.js';
import type { TokenSets } from '../src/types.js';

function sets(k: number, rows: number[][], weights?: number[]): TokenSets {
  const n = rows.length;
  return {
    n,
    k,
    experts: Uint16Array.from(rows.flat()),
    source: new Uint16Array(n),
    weight: Float64Array.from(weights ?? rows.map(() => 1)),
  };
}

function edgeWeight(g: Graph<ExpertAttributes, CoactivationAttributes>, a: number, b: number): number {
  const key = g.edge(String(a), String(b));
  return key === undefined ? 0 : g.getEdgeAttribute(key, 'weight');
}

describe('coactivationGraph', () => {
  it('sums token weights per expert and per pair (hand-computed)', () => {
    const ts = sets(
      3,
      [
        [0, 1, 2],
        [0, 1, 3],
        [4, 1, 0],
        [2, 2, 3], // expert 2 listed twice: counts once
      ],
      [1, 2, 0.5, 1],
    );
    const g = coactivationGraph(ts, 6);
    expect(g.type).toBe('undirected');
    expect(g.order).toBe(6);
    expect(g.nodes()).toEqual(['0', '1', '2', '3', '4', '5']);
    expect(g.nodes().map((n) => g.getNodeAttribute(n, 'load'))).toEqual([3.5, 3.5, 2, 3, 0.5, 0]);
    const expected: [number, number, number][] = [
      [0, 1, 3.5],
      [0, 2, 1],
      [1, 2, 1],
      [0, 3, 2],
      [1, 3, 2],
      [0, 4, 0.5],
      [1, 4, 0.5],
      [2, 3, 1],
    ];
    expect(g.size).toBe(expected.length);
    for (const [a, b, w] of expected) {
      expect(edgeWeight(g, a, b)).toBe(w);
      expect(edgeWeight(g, b, a)).toBe(w);
    }
    expect(g.degree('5')).toBe(0);
  });

  it('totals match the tokens: loads = sum w * distinct, edges = sum w * C(distinct, 2)', () => {
    const rng = new Rng(7);
    const E = 12;
    const k = 4;
    const rows: number[][] = [];
    const ws: number[] = [];
    let loadTotal = 0;
    let pairTotal = 0;
    for (let i = 0; i < 300; i++) {
      const row = Array.from({ length: k }, () => rng.nextU32() % E);
      const w = 1 + (rng.nextU32() % 5);
      const d = new Set(row).size;
      rows.push(row);
      ws.push(w);
      loadTotal += w * d;
      pairTotal += (w * d * (d - 1)) / 2;
    }
    const g = coactivationGraph(sets(k, rows, ws), E);
    let l = 0;
    g.forEachNode((_n, a) => (l += a.load));
    let p = 0;
    g.forEachEdge((_e, a) => (p += a.weight));
    expect(l).toBe(loadTotal);
    expect(p).toBe(pairTotal);
  });

  it('rejects an expert id outside the layer', () => {
    expect(() => coactivationGraph(sets(2, [[0, 9]]), 4)).toThrow(InputError);
  });
});

function fourVertexGraph(): Graph<ExpertAttributes, CoactivationAttributes> {
  const g = new Graph<ExpertAttributes, CoactivationAttributes>({ type: 'undirected' });
  [10, 5, 0, 2.5].forEach((load, e) => g.addNode(String(e), { load }));
  g.addUndirectedEdge('0', '1', { weight: 3 });
  g.addUndirectedEdge('2', '1', { weight: 1 });
  g.addUndirectedEdge('3', '0', { weight: 2 });
  return g;
}

describe('toMetisGraph', () => {
  it('writes a 4-vertex graph as hand-checked', () => {
    // vertex scale 100 / 10 = 10: 100, 50, 0 -> 1, 25; edge scale 60 / 6 = 10: 30, 10, 20.
    const text = toMetisGraph(fourVertexGraph(), 4, { maxVertexWeight: 100, totalEdgeWeight: 60 });
    expect(text).toBe(['4 3 011', '100 2 30 4 20', '50 1 30 3 10', '1 2 10', '25 1 20', ''].join('\n'));
  });

  it('keeps small edges at weight 1 and lists isolated vertices', () => {
    const g = new Graph<ExpertAttributes, CoactivationAttributes>({ type: 'undirected' });
    for (let e = 0; e < 3; e++) g.addNode(String(e), { load: e + 1 });
    g.addUndirectedEdge('0', '1', { weight: 1000 });
    g.addUndirectedEdge('1', '2', { weight: 0.001 });
    const text = toMetisGraph(g, 4, { maxVertexWeight: 6, totalEdgeWeight: 10 });
    // 4 vertices (expert 3 absent from the graph: load 0 -> weight 1, no neighbours).
    expect(text.split('\n')).toEqual(['4 2 011', '2 2 10', '4 1 10 3 1', '6 2 1', '1', '']);
  });

  it('default scaling keeps integer sums far below 2^31', () => {
    const rng = new Rng(3);
    const E = 64;
    const rows = Array.from({ length: 2000 }, () => Array.from({ length: 6 }, () => rng.nextU32() % E));
    const text = toMetisGraph(coactivationGraph(sets(6, rows), E), E);
    const lines = text.trim().split('\n');
    const [n, m, fmt] = lines[0].split(' ');
    expect([Number(n), fmt]).toEqual([E, '011']);
    let vsum = 0;
    let esum = 0;
    let entries = 0;
    let bad = 0;
    for (const line of lines.slice(1)) {
      const xs = line.split(' ').map(Number);
      vsum += xs[0];
      for (let i = 1; i < xs.length; i += 2) {
        if (!(xs[i] >= 1 && xs[i] <= E && xs[i + 1] >= 1)) bad++;
        esum += xs[i + 1];
        entries++;
      }
    }
    expect(bad).toBe(0);
    expect(entries).toBe(2 * Number(m));
    expect(vsum).toBeLessThan(2 ** 31);
    expect(esum).toBeLessThan(2 ** 31);
  });
});

describe('parseMetisPartition', () => {
  it('round-trips a partition written one part per line', () => {
    const part = Int32Array.of(0, 1, 1, 0, 3, 2);
    expect(parseMetisPartition(Array.from(part).join('\n') + '\n\n', 6)).toEqual(part);
  });

  it('names the bad line and checks the count', () => {
    expect(() => parseMetisPartition('0\n1\n', 3)).toThrow(/2 lines, expected 3/);
    try {
      parseMetisPartition('0\nx\n1\n', 3, 'g.part.2');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      expect((e as InputError).message).toContain('g.part.2:2');
    }
    expect(() => parseMetisPartition('0\n-1\n', 2)).toThrow(InputError);
  });
});

/** Two 4-cliques (0-3 and 4-7) joined by one weak token. */
function twoCliques(): TokenSets {
  const rows: number[][] = [];
  const ws: number[] = [];
  for (const base of [0, 4]) {
    for (let i = 0; i < 4; i++) {
      for (let j = i + 1; j < 4; j++) {
        rows.push([base + i, base + j]);
        ws.push(10);
      }
    }
  }
  rows.push([3, 4]);
  ws.push(1);
  return sets(2, rows, ws);
}

describe('louvainCommunities', () => {
  it('separates two obvious cliques, deterministically for a seed', () => {
    const g = coactivationGraph(twoCliques(), 8);
    for (const seed of [1, 2, 99]) {
      const c = louvainCommunities(g, seed);
      expect(Array.from(c)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
      expect(louvainCommunities(g, seed)).toEqual(c);
    }
  });

  it('gives each isolated expert its own community', () => {
    const g = coactivationGraph(sets(2, [[0, 1]]), 4);
    const c = louvainCommunities(g, 5);
    expect(c[0]).toBe(c[1]);
    expect(new Set(c).size).toBe(3);
  });
});

const hasGpmetis = (() => {
  try {
    execFileSync('gpmetis', ['-help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasGpmetis)('gpmetis on our graph file', () => {
  it('cuts the two cliques apart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'coact-'));
    try {
      const file = join(dir, 'g.graph');
      writeFileSync(file, toMetisGraph(coactivationGraph(twoCliques(), 8), 8));
      execFileSync('gpmetis', ['-seed=1', '-ufactor=30', file, '2'], { stdio: 'ignore' });
      const part = parseMetisPartition(readFileSync(`${file}.part.2`, 'utf8'), 8);
      for (let e = 1; e < 4; e++) expect(part[e]).toBe(part[0]);
      for (let e = 5; e < 8; e++) expect(part[e]).toBe(part[4]);
      expect(part[4]).not.toBe(part[0]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
