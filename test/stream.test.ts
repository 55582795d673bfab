/**
 * Streaming over mpt traces (src/workload/stream.ts, src/cost/stream.ts): streamIndex equals
 * indexWorkload on traces below the set cap, the token sample keeps totals exact and is
 * deterministic, evaluateStream equals evaluate, the piecewise writer round-trips, isLargeTrace,
 * and truncated or foreign files give InputErrors naming the file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { evaluate, evaluateStream, type Evaluation } from '../src/cost.js';
import { InputError } from '../src/errors.js';
import { Rng } from '../src/rng.js';
import { makeShape, type Placement, type WorkloadIndex } from '../src/types.js';
import { indexWorkload } from '../src/workload/indexer.js';
import { expertLoadsOfLayer } from '../src/workload/tokens.js';
import { mptHeaderOf, readTrace, writeTrace } from '../src/workload/index.js';
import { MptWriter } from '../src/workload/mpt-stream.js';
import { isLargeTrace, streamIndex, workloadOfIndex } from '../src/workload/stream.js';
import { toyCluster, toyModel } from './cost-helpers.js';
import { tempDir, TINY, traceDims, uniformTrace, WIDE } from './workload-helpers.js';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

const arr = (a: ArrayLike<number>): number[] => Array.from(a);

function expectSameIndex(a: WorkloadIndex, b: WorkloadIndex): void {
  expect(a.numGpus).toBe(b.numGpus);
  expect(a.samples).toBe(b.samples);
  expect(a.estimated).toBe(b.estimated);
  expect(a.layers.length).toBe(b.layers.length);
  a.layers.forEach((la, l) => {
    const lb = b.layers[l];
    expect(arr(la.expertLoad)).toEqual(arr(lb.expertLoad));
    expect(arr(la.sampleLoad)).toEqual(arr(lb.sampleLoad));
    expect(la.sampled).toBe(lb.sampled);
    expect(la.sets.n).toBe(lb.sets.n);
    expect(la.sets.k).toBe(lb.sets.k);
    expect(arr(la.sets.experts)).toEqual(arr(lb.sets.experts));
    expect(arr(la.sets.source)).toEqual(arr(lb.sets.source));
    expect(arr(la.sets.weight)).toEqual(arr(lb.sets.weight));
  });
}

async function expectInputErrorNaming(p: Promise<unknown>, file: string, pattern: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  expect((err as InputError).message).toContain(file);
  expect((err as InputError).message).toMatch(pattern);
}

describe('streamIndex', () => {
  it('equals indexWorkload on a trace below the set cap (ranks, weights, many chunks, gzip)', async () => {
    const tr = uniformTrace(traceDims(WIDE), 700, 1, { runs: 6, rank: 9, weight: 48 });
    const w = { kind: 'trace' as const, trace: tr, meta: { format: 'mpt' } };
    for (const [name, chunkTokens] of [
      ['a.mpt', 37],
      ['b.mpt.gz', 1000],
    ] as const) {
      const path = `${tmp.dir}/${name}`;
      await writeTrace(path, tr, WIDE, { chunkTokens });
      for (const NG of [6, 16]) {
        const opts = { samples: 3, seed: 7, maxSets: 4096 };
        const s = await streamIndex(path, WIDE, NG, opts);
        expectSameIndex(s, indexWorkload(w, WIDE.topK, NG, opts));
        expect(s.numTokens).toBe(700);
        expect(s.numRequests).toBe(tr.numRequests);
        expect(s.layers.every((x) => !x.sampled)).toBe(true);
      }
    }
  });

  it('keeps sets exact past maxSets tokens while the distinct sets fit (same as indexWorkload)', async () => {
    // TINY: 8 experts, top-2 -> at most 28 sets per source; 4 sources -> at most 112 distinct.
    const tr = uniformTrace(traceDims(TINY), 3000, 2, { runs: 6 });
    const path = `${tmp.dir}/t.mpt`;
    await writeTrace(path, tr, TINY, { chunkTokens: 256 });
    const s = await streamIndex(path, TINY, 4, { maxSets: 150, seed: 3 });
    expectSameIndex(s, indexWorkload({ kind: 'trace', trace: tr, meta: { format: 'mpt' } }, TINY.topK, 4, { maxSets: 150, seed: 3 }));
    for (const li of s.layers) {
      expect(li.sampled).toBe(false);
      expect(li.sets.n).toBeLessThanOrEqual(112);
      expect(li.sets.weight.reduce((a, b) => a + b, 0)).toBe(3000);
    }
  });

  it('samples beyond maxSets distinct sets: exact loads and totals, deterministic, chunking-invariant', async () => {
    const T = 3000;
    const tr = uniformTrace(traceDims(WIDE), T, 3, { runs: 6, weight: 48 });
    let total = 0;
    for (let t = 0; t < T; t++) total += tr.weight![t];
    const exact = indexWorkload({ kind: 'trace', trace: tr, meta: { format: 'mpt' } }, WIDE.topK, 8, { samples: 2, seed: 5 });
    const a = `${tmp.dir}/a.mpt`;
    const b = `${tmp.dir}/b.mpt`;
    await writeTrace(a, tr, WIDE, { chunkTokens: 50 });
    await writeTrace(b, tr, WIDE, { chunkTokens: 1111 });
    const s1 = await streamIndex(a, WIDE, 8, { maxSets: 400, seed: 5, samples: 2 });
    const s2 = await streamIndex(b, WIDE, 8, { maxSets: 400, seed: 5, samples: 2 });
    const s3 = await streamIndex(a, WIDE, 8, { maxSets: 400, seed: 6, samples: 2 });
    expectSameIndex(s1, s2); // same seed, other chunk boundaries: the same sample
    s1.layers.forEach((li, l) => {
      expect(li.sampled).toBe(true);
      expect(li.sets.n).toBeLessThanOrEqual(400);
      expect(arr(li.expertLoad)).toEqual(arr(exact.layers[l].expertLoad));
      expect(arr(li.sampleLoad)).toEqual(arr(exact.layers[l].sampleLoad));
      const w = li.sets.weight.reduce((x, y) => x + y, 0);
      expect(Math.abs(w - total) / total).toBeLessThan(1e-12);
      // every set is a real token's (source, sorted expert set)
      for (let i = 0; i < li.sets.n; i++) {
        const ids = arr(li.sets.experts.subarray(i * 3, i * 3 + 3));
        expect(ids).toEqual([...ids].sort((x, y) => x - y));
        expect(new Set(ids).size).toBe(3);
      }
    });
    expect(arr(s3.layers[0].sets.experts)).not.toEqual(arr(s1.layers[0].sets.experts));
  });

  it('samples tokens uniformly over the stream', async () => {
    // Layer 0's first id of token t is its tenth of the trace (0..9): the scaled weight of each
    // tenth in the sample estimates T/10; a reservoir biased to early or late tokens fails.
    const T = 4000;
    const tr = uniformTrace(traceDims(WIDE), T, 4, { runs: 6, firstId: (t) => Math.floor((t * 10) / T) });
    const path = `${tmp.dir}/u.mpt`;
    await writeTrace(path, tr, WIDE, { chunkTokens: 300 });
    const tenth = new Float64Array(10);
    const seeds = 16;
    for (let seed = 0; seed < seeds; seed++) {
      const s = await streamIndex(path, WIDE, 1, { maxSets: 500, seed, samples: 0 });
      const sets = s.layers[0].sets;
      for (let i = 0; i < sets.n; i++) {
        for (let j = 0; j < 3; j++) {
          const e = sets.experts[i * 3 + j];
          if (e < 10) tenth[e] += sets.weight[i] / seeds;
        }
      }
    }
    // ids 0..9 also occur as 2nd/3rd ids of other tokens (~3 * 2/300 of tokens each): expected
    // T/10 + T * 2 * (1/299) ~ 427; sd of each estimate ~ 4%.
    for (let d = 0; d < 10; d++) expect(Math.abs(tenth[d] - 424) / 424).toBeLessThan(0.15);
  });

  it('plugs into the solver input: counts stand-in with the exact loads and the file digest', async () => {
    const tr = uniformTrace(traceDims(TINY), 200, 5, { runs: 6 });
    const path = `${tmp.dir}/w.mpt`;
    await writeTrace(path, tr, TINY);
    const s = await streamIndex(path, TINY, 2);
    const w = workloadOfIndex(s);
    expect(w.kind).toBe('counts');
    if (w.kind !== 'counts') return;
    expect(arr(w.counts.counts[1])).toEqual(arr(s.layers[1].expertLoad));
    expect(w.counts.counts[1].reduce((a, b) => a + b, 0)).toBe(200 * TINY.topK);
    const loaded = await readTrace(path, TINY);
    expect(w.meta.digest).toBe(loaded.meta.digest);
  });

  it('rejects a truncated file, a non-mpt file and bad options with InputErrors', async () => {
    const tr = uniformTrace(traceDims(TINY), 300, 6, { runs: 6 });
    const path = `${tmp.dir}/cut.mpt`;
    await writeTrace(path, tr, TINY, { chunkTokens: 100 });
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 4)); // end marker dropped
    await expectInputErrorNaming(streamIndex(path, TINY, 2), path, /truncated mpt file: ended after 3 complete chunks \(300 tokens\)/);
    writeFileSync(path, bytes.subarray(0, bytes.length - 50)); // inside the last chunk
    await expectInputErrorNaming(streamIndex(path, TINY, 2), path, /truncated mpt file: ended inside chunk 2/);
    const json = tmp.put('counts.json', '[[1,2]]');
    await expectInputErrorNaming(streamIndex(json, TINY, 2), json, /not an mpt trace/);
    await expectInputErrorNaming(streamIndex(`${tmp.dir}/missing.mpt`, TINY, 2), 'missing.mpt', /no such file/);
    await expect(streamIndex(path, TINY, 0)).rejects.toThrow(/numGpus/);
    await expect(streamIndex(path, TINY, 2, { maxSets: 0 })).rejects.toThrow(/maxSets/);
  });

  it('names the token of the whole trace for a bad id in a later chunk', async () => {
    const tr = uniformTrace(traceDims(TINY), 30, 7, { runs: 6 });
    const path = `${tmp.dir}/bad.mpt`;
    await writeTrace(path, tr, TINY, { chunkTokens: 10 });
    const bytes = Buffer.from(readFileSync(path));
    const header = bytes.readUInt32LE(4);
    // chunk: u32 n, u32[10] request, then 2 layers of 10 x 2 one-byte ids
    const chunkBytes = 4 + 40 + 2 * 20;
    const layer1Token3 = 8 + header + 2 * chunkBytes + 4 + 40 + 20 + 3 * 2;
    bytes[layer1Token3 + 1] = 200; // id out of range 0..7
    writeFileSync(path, bytes);
    await expectInputErrorNaming(streamIndex(path, TINY, 2), path, /experts\[layer 1\]\[token 23\]\[1\].*expert id 200 out of range/);
  });
});

/** phy2log per layer: every expert once, the spare slots random replicas (seeded). */
function randomPlacement(L: number, E: number, shape: ReturnType<typeof makeShape>, seed: number): Placement {
  const rng = new Rng(seed);
  const phy2log: Int32Array[] = [];
  for (let l = 0; l < L; l++) {
    const p = new Int32Array(shape.numSlots);
    for (let i = 0; i < shape.numSlots; i++) p[i] = i < E ? i : rng.int(E);
    phy2log.push(rng.shuffle(p));
  }
  return { numLayers: L, numExperts: E, shape, phy2log, dispatch: null };
}

function expectClose(a: number, b: number, what: string): void {
  const scale = Math.max(Math.abs(a), Math.abs(b), 1e-300);
  expect(Math.abs(a - b) / scale, `${what}: ${a} vs ${b}`).toBeLessThan(1e-9);
}

function expectSameEvaluation(s: Evaluation, e: Evaluation): void {
  expect(s.estimated).toBe(e.estimated);
  expect(s.mode).toBe(e.mode);
  for (const key of ['interNodeBytes', 'intraNodeBytes', 'maxLoad', 'meanLoad', 'balancedness', 'maxOverMean', 'remoteNodesPerToken', 'timeSeconds'] as const) {
    expectClose(s[key], e[key], key);
  }
  expect(s.perLayer.length).toBe(e.perLayer.length);
  s.perLayer.forEach((m, l) => {
    for (const [key, v] of Object.entries(m)) expectClose(v as number, (e.perLayer[l] as unknown as Record<string, number>)[key], `layer ${l} ${key}`);
    s.loads[l].forEach((x, g) => expectClose(x, e.loads[l][g], `load ${l} ${g}`));
  });
  if (e.trafficMatrix) e.trafficMatrix.forEach((m, l) => m.forEach((x, i) => expectClose(s.trafficMatrix![l][i], x, `matrix ${l} ${i}`)));
}

describe('evaluateStream', () => {
  const model = toyModel(12, 3);

  it('equals evaluate on the loaded trace (both modes, ranks and weights, traffic matrix)', async () => {
    const tr = uniformTrace(traceDims(model), 1500, 8, { runs: 6, rank: 9, weight: 48 });
    const path = `${tmp.dir}/e.mpt.gz`;
    await writeTrace(path, tr, model, { chunkTokens: 97 });
    const workload = { kind: 'trace' as const, trace: tr, meta: { format: 'mpt' } };
    for (const [nodes, G, S] of [
      [3, 2, 3],
      [2, 4, 2],
    ]) {
      const shape = makeShape(nodes, G, S);
      const cluster = toyCluster(shape);
      const placement = randomPlacement(4, 12, shape, nodes);
      for (const mode of ['normal', 'low-latency'] as const) {
        const options = { mode, overlap: mode === 'normal' };
        const e = evaluate({ model, cluster, placement, workload, options, trafficMatrix: true });
        const s = await evaluateStream({ path, model, cluster, placement, options, trafficMatrix: true });
        expectSameEvaluation(s, e);
        expect(s.numTokens).toBe(1500);
        s.expertLoads.forEach((row, l) => expect(arr(row)).toEqual(arr(expertLoadsOfLayer(workload, l))));
        expect(s.meta.path).toBe(path);
      }
    }
  });

  it('checks the placement before reading and reports a truncated file', async () => {
    const tr = uniformTrace(traceDims(model), 200, 9, { runs: 6 });
    const path = `${tmp.dir}/p.mpt`;
    await writeTrace(path, tr, model, { chunkTokens: 64 });
    const shape = makeShape(2, 2, 4);
    const cluster = toyCluster(shape);
    const placement = randomPlacement(4, 12, shape, 1);
    await expect(evaluateStream({ path, model, cluster: toyCluster(makeShape(2, 2, 3)), placement })).rejects.toThrow(/placement shape 2x2x4/);
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, 200));
    await expectInputErrorNaming(evaluateStream({ path, model, cluster, placement }), path, /truncated mpt file/);
  });
});

describe('MptWriter', () => {
  it('appends pieces into one file that reads back as their concatenation (plain and gzip)', async () => {
    const a = uniformTrace(traceDims(TINY), 120, 10, { runs: 6, weight: 48 });
    const b = uniformTrace(traceDims(TINY), 80, 11, { runs: 6, weight: 48 });
    const R = a.numRequests + b.numRequests;
    for (const name of ['pieces.mpt', 'pieces.mpt.gz']) {
      const path = `${tmp.dir}/${name}`;
      const header = { ...mptHeaderOf(a, TINY), numTokens: 200, numRequests: R };
      const w = await MptWriter.open(path, header, { chunkTokens: 50 });
      await w.append(a);
      await w.append({ ...b, request: b.request.map((r) => r + a.numRequests) });
      expect((await w.close()).numTokens).toBe(200);
      const { trace } = await readTrace(path, TINY);
      expect(trace.numTokens).toBe(200);
      expect(trace.numRequests).toBe(R);
      expect(arr(trace.request)).toEqual([...arr(a.request), ...arr(b.request).map((r) => r + a.numRequests)]);
      expect(arr(trace.weight!)).toEqual([...arr(a.weight!), ...arr(b.weight!)]);
      for (let l = 0; l < 2; l++) expect(arr(trace.experts[l])).toEqual([...arr(a.experts[l]), ...arr(b.experts[l])]);
    }
  });

  it('rejects pieces that do not fit the header and leaves no file behind', async () => {
    const a = uniformTrace(traceDims(TINY), 50, 12, { runs: 6 });
    const path = `${tmp.dir}/bad.mpt`;
    const w = await MptWriter.open(path, { ...mptHeaderOf(a, TINY), numTokens: 100 });
    await w.append(a);
    await expect(w.append({ ...a, request: a.request.map((r) => r + a.numRequests) })).rejects.toThrow(/request id \d+ >= numRequests/);
    await expect(w.append({ ...a, weight: new Float32Array(50).fill(1) })).rejects.toThrow(/no weights/);
    await expect(w.close()).rejects.toThrow(/50 tokens written, the header says 100/);
    await expect(readTrace(path, TINY)).rejects.toThrow(/no such file/);
  });
});

describe('isLargeTrace', () => {
  it('decides from the header token count, else the file size; other formats are not large', async () => {
    const tr = uniformTrace(traceDims(TINY), 100, 13, { runs: 6 });
    const path = `${tmp.dir}/s.mpt`;
    await writeTrace(path, tr, TINY);
    // in memory: 100 tokens x (8 + 2 layers x 2 ids x 2 B) = 1600 B
    expect(await isLargeTrace(path)).toBe(false);
    expect(await isLargeTrace(path, { maxBytes: 1599 })).toBe(true);
    expect(await isLargeTrace(path, { maxBytes: 1600 })).toBe(false);
    const gz = `${tmp.dir}/s.mpt.gz`;
    await writeTrace(gz, tr, TINY);
    expect(await isLargeTrace(gz, { maxBytes: 1599 })).toBe(true);
    // numTokens null: from the size (per token in file 4 + 4 B, in memory 16 B: twice the chunk bytes)
    const open = `${tmp.dir}/n.mpt`;
    const w = await MptWriter.open(open, { ...mptHeaderOf(tr, TINY), numTokens: null });
    await w.append(tr);
    await w.close();
    const size = readFileSync(open).length;
    expect(await isLargeTrace(open, { maxBytes: 2 * size - 10 })).toBe(true);
    expect(await isLargeTrace(open, { maxBytes: 2 * size })).toBe(false);
    expect(await isLargeTrace(tmp.put('c.json', '[[1,2]]'), { maxBytes: 0 })).toBe(false);
    expect(await isLargeTrace(tmp.dir, { maxBytes: 0 })).toBe(false);
    await expect(isLargeTrace(`${tmp.dir}/none.mpt`)).rejects.toThrow(InputError);
  });
});
