/**
 * Workload readers on small hand-made files: counts (SGLang, EPLB JSON/CSV, usage), per-request
 * CSV and JSON step traces, format detection from content, natural order, and every error case
 * with the file / line / field it must name.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import type { Trace, Workload } from '../src/types.js';
import { IdChecker, TraceBuilder } from '../src/workload/builder.js';
import { Rng } from '../src/rng.js';
import { detectFormat, loadWorkload, naturalCompare } from '../src/workload/index.js';
import { compressTokenSets, SetCompressor } from '../src/workload/tokens.js';
import { expectInputError, TINY, TINY_TOP1, tempDir } from './workload-helpers.js';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

const sha = (...files: string[]): string => {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(f));
  return h.digest('hex');
};

function countsOf(w: Workload): number[][] {
  if (w.kind !== 'counts') throw new Error(`expected counts, got ${w.kind}`);
  return w.counts.counts.map((r) => Array.from(r));
}

function traceOf(w: Workload): Trace {
  if (w.kind !== 'trace') throw new Error(`expected a trace, got ${w.kind}`);
  return w.trace;
}

/** Token t's ids in MoE layer l. */
const ids = (tr: Trace, l: number, t: number): number[] => Array.from(tr.experts[l].subarray(t * tr.topK, (t + 1) * tr.topK));

// TINY: 4 engine layers, MoE layers at engine ids 1 and 3, 8 experts, top-2.
const ROW_A = [1, 2, 3, 4, 5, 6, 7, 8];
const ROW_B = [8, 0, 0, 0, 0, 0, 0, 28];
const ZERO = [0, 0, 0, 0, 0, 0, 0, 0];

describe('SetCompressor (the one token-set compressor)', () => {
  // 400 tokens, top-3 of 6 experts in random order, 3 sources, integer weights: many repeats.
  const rng = new Rng(8);
  const n = 400;
  const k = 3;
  const experts = new Uint16Array(n * k);
  for (let t = 0; t < n; t++) {
    const perm = rng.shuffle(Uint16Array.from({ length: 6 }, (_, e) => e));
    experts.set(perm.subarray(0, k), t * k);
  }
  const source = Uint16Array.from({ length: n }, () => rng.int(3));
  const weight = Float64Array.from({ length: n }, () => 1 + rng.int(4));
  const all = compressTokenSets({ n, k, experts, source, weight });

  it('merges equal (source, expert set) pairs, sets in order of first appearance, experts ascending', () => {
    // Brute force with string keys.
    const seen = new Map<string, number>();
    const keys: string[] = [];
    const w: number[] = [];
    for (let t = 0; t < n; t++) {
      const key = `${source[t]}:${Array.from(experts.subarray(t * k, t * k + k)).sort((a, b) => a - b).join(',')}`;
      const at = seen.get(key);
      if (at === undefined) {
        seen.set(key, keys.length);
        keys.push(key);
        w.push(weight[t]);
      } else w[at] += weight[t];
    }
    expect(all.n).toBe(keys.length);
    expect(all.n).toBeLessThan(n);
    for (let i = 0; i < all.n; i++) {
      expect(`${all.source[i]}:${Array.from(all.experts.subarray(i * k, i * k + k)).join(',')}`).toBe(keys[i]);
      expect(all.weight[i]).toBe(w[i]);
    }
  });

  it('gives the same sets fed in uneven chunks from a small start (grown on the way)', () => {
    const c = new SetCompressor(k, Infinity, 2);
    for (let a = 0, step = 1; a < n; a += step, step = (step * 3) % 17 + 1) {
      const b = Math.min(n, a + step);
      c.add(experts.subarray(a * k, b * k), source.subarray(a, b), weight.subarray(a, b), b - a);
    }
    expect(c.alive).toBe(true);
    const s = c.sets();
    expect(Array.from(s.experts)).toEqual(Array.from(all.experts));
    expect(Array.from(s.source)).toEqual(Array.from(all.source));
    expect(Array.from(s.weight)).toEqual(Array.from(all.weight));
  });

  it('gives up past max distinct sets', () => {
    const c = new SetCompressor(k, all.n - 1);
    c.add(experts, source, weight, n);
    expect(c.alive).toBe(false);
    const d = new SetCompressor(k, all.n);
    d.add(experts, source, weight, n);
    expect(d.alive).toBe(true);
    expect(d.n).toBe(all.n);
  });
});

describe('naturalCompare', () => {
  it('orders digit runs by value and is a total order', () => {
    const names = ['p10', 'p2', 'p1', 'p01', 'a', 'p1b', 'p1a', 'p100', 'q0'];
    expect([...names].sort(naturalCompare)).toEqual(['a', 'p01', 'p1', 'p1a', 'p1b', 'p2', 'p10', 'p100', 'q0']);
    expect(naturalCompare('prompt_9_data', 'prompt_10_data')).toBeLessThan(0);
    expect(naturalCompare('x', 'x')).toBe(0);
  });
});

describe('TraceBuilder', () => {
  it('keeps committed tokens when it grows', () => {
    const b = new TraceBuilder(2, 8, 2, { capacity: 1 });
    for (let t = 0; t < 10; t++) {
      const i = b.reserve(1);
      b.request[i] = t;
      b.experts[0].set([t % 8, (t + 1) % 8], i * 2);
      b.experts[1].set([(t + 2) % 8, (t + 3) % 8], i * 2);
      b.commit(1);
    }
    const tr = b.finish(10);
    expect(tr.numTokens).toBe(10);
    expect(Array.from(tr.request)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(tr.experts[1].length).toBe(20);
    expect(ids(tr, 1, 9)).toEqual([3, 4]);
    expect(Array.from(tr.rank)).toEqual(new Array(10).fill(-1));
    expect(tr.weight).toBeNull();
  });
});

describe('IdChecker', () => {
  /** Reference: flat index of the first id that is out of range or repeats an earlier id of its token. */
  function firstBad(ids: Uint16Array, k: number, E: number): number {
    for (let t = 0; t < ids.length / k; t++) {
      for (let j = 0; j < k; j++) {
        const e = ids[t * k + j];
        if (e >= E) return t * k + j;
        for (let i = 0; i < j; i++) if (ids[t * k + i] === e) return t * k + j;
      }
    }
    return -1;
  }

  it('finds the same first bad id as a brute-force scan (k = 1, 3, 8)', () => {
    const rng = new Rng(42);
    for (const [k, E] of [[1, 4], [3, 10], [8, 256], [8, 20]]) {
      for (let trial = 0; trial < 300; trial++) {
        const T = 1 + rng.int(12);
        const ids = new Uint16Array(T * k);
        for (let t = 0; t < T; t++) {
          // distinct ids, then maybe one corruption
          const pool = Array.from({ length: E }, (_, e) => e);
          rng.shuffle(pool);
          for (let j = 0; j < k; j++) ids[t * k + j] = pool[j];
        }
        const kind = rng.int(3);
        const pos = rng.int(T * k);
        if (kind === 1) ids[pos] = E + rng.int(3);
        if (kind === 2 && k > 1) {
          const t = Math.floor(pos / k);
          const j = pos % k;
          const other = (j + 1 + rng.int(k - 1)) % k;
          ids[pos] = ids[t * k + other];
        }
        const checker = new IdChecker(E, k);
        const expected = firstBad(ids, k, E);
        expect(checker.checkRange(ids, 0, T)).toBe(expected);
        if (expected >= 0) expect(checker.reason).toBe(ids[expected] >= E ? 'range' : 'duplicate');
      }
    }
  });
});

describe('counts readers', () => {
  it('SGLang logical_count [L_engine][E]: keeps MoE rows, drops zero dense rows, digest of the bytes', async () => {
    const f = tmp.put('dump.json', JSON.stringify({ logical_count: [ZERO, ROW_A, ZERO, ROW_B] }));
    expect(await detectFormat(f)).toBe('sglang-counts');
    const w = await loadWorkload(f, TINY);
    expect(countsOf(w)).toEqual([ROW_A, ROW_B]);
    expect(w.meta.format).toBe('sglang-counts');
    expect(w.meta.path).toBe(f);
    expect(w.meta.digest).toBe(sha(f));
    expect(w.meta.notes!.join('\n')).toContain('engine layers 0,2');
  });

  it('SGLang logical_count with exactly L rows is taken as is; [S][L][E] is summed over S', async () => {
    const f = tmp.put('l.json', JSON.stringify({ logical_count: [ROW_A, ROW_B] }));
    expect(countsOf(await loadWorkload(f, TINY))).toEqual([ROW_A, ROW_B]);
    const g = tmp.put('s.json', JSON.stringify({ logical_count: [[ROW_A, ROW_B], [ROW_B, ROW_A]] }));
    const sum = ROW_A.map((a, i) => a + ROW_B[i]);
    const w = await loadWorkload(g, TINY);
    expect(countsOf(w)).toEqual([sum, sum]);
    expect(w.meta.notes!.join('\n')).toContain('summed 2 recording steps');
  });

  it('gzip is detected from the magic bytes, not the name', async () => {
    const body = JSON.stringify({ logical_count: [ZERO, ROW_A, ZERO, ROW_B] });
    const gz = tmp.put('dump.json', body, true); // gzipped, no .gz suffix
    const plain = tmp.put('plain.json.gz', body); // plain, .gz suffix
    const a = await loadWorkload(gz, TINY);
    const b = await loadWorkload(plain, TINY);
    expect(countsOf(a)).toEqual([ROW_A, ROW_B]);
    expect(countsOf(b)).toEqual([ROW_A, ROW_B]);
    expect(a.meta.digest).toBe(sha(gz)); // digest of the bytes read (compressed)
    expect(a.meta.digest).not.toBe(b.meta.digest);
  });

  it('EPLB JSON matrix and CSV (with or without header, gzipped)', async () => {
    const j = tmp.put('w.json', JSON.stringify([ROW_A, ROW_B]));
    expect(await detectFormat(j)).toBe('eplb-json');
    expect(countsOf(await loadWorkload(j, TINY))).toEqual([ROW_A, ROW_B]);
    const csv = `${ROW_A.join(',')}\r\n${ROW_B.join(', ')}\n\n`;
    const c1 = tmp.put('w.csv', csv);
    expect(await detectFormat(c1)).toBe('counts-csv');
    expect(countsOf(await loadWorkload(c1, TINY))).toEqual([ROW_A, ROW_B]);
    const c2 = tmp.put('h.csv', `e0,e1,e2,e3,e4,e5,e6,e7\n${csv}`, true);
    const w = await loadWorkload(c2, TINY);
    expect(w.meta.format).toBe('counts-csv');
    expect(countsOf(w)).toEqual([ROW_A, ROW_B]);
    expect(w.meta.notes).toContain('header line skipped');
    const c3 = tmp.put('engine.csv', [ZERO, ROW_A, ZERO, ROW_B].map((r) => r.join(',')).join('\n'));
    expect(countsOf(await loadWorkload(c3, TINY))).toEqual([ROW_A, ROW_B]);
  });

  it('expert_usage_by_layer maps engine layer keys to MoE layers', async () => {
    const f = tmp.put('u.json', JSON.stringify({ num_experts: 8, expert_usage_by_layer: { 3: { 0: 5, 7: 2 }, 1: { 4: 9 } } }));
    expect(await detectFormat(f)).toBe('usage-counts');
    expect(countsOf(await loadWorkload(f, TINY))).toEqual([
      [0, 0, 0, 0, 9, 0, 0, 0],
      [5, 0, 0, 0, 0, 0, 0, 2],
    ]);
    const bad = tmp.put('bad.json', JSON.stringify({ expert_usage_by_layer: { 2: { 0: 1 }, 1: {}, 3: {} } }));
    await expectInputError(loadWorkload(bad, TINY), [bad, 'expert_usage_by_layer.2', 'engine layer 2 is not a MoE layer']);
  });

  it('counts errors name the file, line and field', async () => {
    const shape = tmp.put('shape.json', JSON.stringify({ logical_count: [ROW_A, ROW_B, ROW_A] }));
    await expectInputError(loadWorkload(shape, TINY), [shape, 'logical_count [3][8]', 'expected 4 engine layers or 2 MoE layers']);
    const width = tmp.put('width.json', JSON.stringify({ logical_count: [ROW_A, ROW_A.slice(1)] }));
    await expectInputError(loadWorkload(width, TINY), [width, 'logical_count[1]', '7 entries']);
    const experts = tmp.put('experts.json', JSON.stringify({ logical_count: [ROW_A.slice(1), ROW_A.slice(1)] }));
    await expectInputError(loadWorkload(experts, TINY), [experts, 'logical_count[0]', '7 experts, model tiny has 8']);
    const neg = tmp.put('neg.json', JSON.stringify({ logical_count: [ROW_A, [1, 2, -3, 4, 5, 6, 7, 8]] }));
    await expectInputError(loadWorkload(neg, TINY), [`${neg}: logical_count[1][2]`, 'non-negative, got -3']);
    const str = tmp.put('str.json', JSON.stringify({ logical_count: [ROW_A, [1, 2, 3, '4', 5, 6, 7, 8]] }));
    await expectInputError(loadWorkload(str, TINY), [`${str}: logical_count[1][3]`, 'must be a number, got string "4"']);
    const nul = tmp.put('nul.json', JSON.stringify({ logical_count: [ROW_A, [1, 2, 3, null, 5, 6, 7, 8]] }));
    await expectInputError(loadWorkload(nul, TINY), [`${nul}: logical_count[1][3]`, 'got null']);
    const dense = tmp.put('dense.json', JSON.stringify({ logical_count: [ROW_A, ROW_A, ZERO, ROW_B] }));
    await expectInputError(loadWorkload(dense, TINY), [`${dense}: logical_count[0]`, 'engine layer 0 is not a MoE layer of model tiny']);
    const broken = tmp.put('broken.json', '{"logical_count": [\n[1,2,3,4,5,6,7,8],\n[1,2,3,4,5,6,7,8]\n');
    await expectInputError(loadWorkload(broken, TINY), [broken, 'unreadable JSON']);
    const missing = tmp.put('m.json', '{"logical_count_x": 1, "logical_count": null}');
    await expectInputError(loadWorkload(missing, TINY), [missing, 'logical_count']);
    const csvNaN = tmp.put('nan.csv', `${ROW_A.join(',')}\n1,2,nan,4,5,6,7,8\n`);
    await expectInputError(loadWorkload(csvNaN, TINY), [`${csvNaN}:2: column 3`, 'must be a number, got "nan"']);
    const csvNeg = tmp.put('neg.csv', `${ROW_A.join(',')}\n1,2,3,4,5,6,7,-8\n`);
    await expectInputError(loadWorkload(csvNeg, TINY), [`${csvNeg}:2: column 8`, 'non-negative']);
    const csvRagged = tmp.put('ragged.csv', `${ROW_A.join(',')}\n1,2,3\n`);
    await expectInputError(loadWorkload(csvRagged, TINY), [`${csvRagged}:2`, '3 columns']);
    const csvDense = tmp.put('dense.csv', [ZERO, ROW_A, ROW_A, ROW_B].map((r) => r.join(',')).join('\n'));
    await expectInputError(loadWorkload(csvDense, TINY), [`${csvDense}:3`, 'engine layer 2 is not a MoE layer']);
    const zero = tmp.put('zero.json', JSON.stringify([ZERO, ZERO]));
    await expectInputError(loadWorkload(zero, TINY), [zero, 'all counts are zero']);
  });
});

// ---- per-request CSV traces -----------------------------------------------------------------

const HEADER = 'Layer ID,Batch Number,Token,Activated Expert IDs';

/** A CSV trace for TINY: rows grouped by engine layer (1 then 3), then token. */
function csvTrace(tokens: string[], l1: number[][], l3: number[][]): string {
  const q = (s: string): string => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const rows = [HEADER];
  tokens.forEach((tok, i) => rows.push(`1,0,${q(tok)},"[${l1[i].join(', ')}]"`));
  tokens.forEach((tok, i) => rows.push(`3,0,${q(tok)},"[${l3[i].join(', ')}]"`));
  return `${rows.join('\r\n')}\r\n`;
}

describe('per-request CSV traces', () => {
  it('reads a folder in natural order, one request per file, gz or not, quoted tokens', async () => {
    // prompt_1: 2 tokens, prompt_2: 1 token, prompt_10: 3 tokens (with awkward token texts)
    tmp.put('t/prompt_10_data.csv.gz', csvTrace(['a', ',', '"'], [[0, 1], [2, 3], [4, 5]], [[6, 7], [7, 6], [5, 4]]), true);
    tmp.put('t/prompt_2_data.csv', csvTrace(['line\nbreak'], [[3, 2]], [[1, 0]]));
    tmp.put('t/prompt_1_data.csv.gz', csvTrace(['x', 'y'], [[7, 0], [1, 6]], [[2, 5], [3, 4]]), true);
    const dir = join(tmp.dir, 't');
    expect(await detectFormat(dir)).toBe('v2lite-csv');
    const w = await loadWorkload(dir, TINY);
    const tr = traceOf(w);
    expect(w.meta.format).toBe('v2lite-csv');
    expect(tr.numRequests).toBe(3);
    expect(tr.numTokens).toBe(6);
    expect(Array.from(tr.request)).toEqual([0, 0, 1, 2, 2, 2]);
    expect(Array.from(tr.rank)).toEqual([-1, -1, -1, -1, -1, -1]);
    expect(tr.weight).toBeNull();
    expect([0, 1, 2, 3, 4, 5].map((t) => ids(tr, 0, t))).toEqual([[7, 0], [1, 6], [3, 2], [0, 1], [2, 3], [4, 5]]);
    expect([0, 1, 2, 3, 4, 5].map((t) => ids(tr, 1, t))).toEqual([[2, 5], [3, 4], [1, 0], [6, 7], [7, 6], [5, 4]]);
    const files = ['prompt_1_data.csv.gz', 'prompt_2_data.csv', 'prompt_10_data.csv.gz'].map((n) => join(dir, n));
    expect(w.meta.digest).toBe(sha(...files));
  });

  it('reports progress in raw bytes up to the total size', async () => {
    tmp.put('t/a.csv', csvTrace(['x'], [[0, 1]], [[2, 3]]));
    tmp.put('t/b.csv', csvTrace(['y'], [[4, 5]], [[6, 7]]), true);
    const seen: [number, number][] = [];
    await loadWorkload(join(tmp.dir, 't'), TINY, { onProgress: (b, total) => seen.push([b, total]) });
    const total = readFileSync(join(tmp.dir, 't/a.csv')).length + readFileSync(join(tmp.dir, 't/b.csv')).length;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[seen.length - 1]).toEqual([total, total]);
    for (let i = 1; i < seen.length; i++) expect(seen[i][0]).toBeGreaterThanOrEqual(seen[i - 1][0]);
  });

  it('a single CSV file is one request', async () => {
    const f = tmp.put('one.csv.gz', csvTrace(['x', 'y'], [[7, 0], [1, 6]], [[2, 5], [3, 4]]), true);
    const tr = traceOf(await loadWorkload(f, TINY));
    expect(tr.numRequests).toBe(1);
    expect(ids(tr, 1, 1)).toEqual([3, 4]);
  });

  it('CSV errors name the file, line and field', async () => {
    const ok = csvTrace(['x', 'y'], [[7, 0], [1, 6]], [[2, 5], [3, 4]]);
    const lines = ok.split('\r\n');
    const withLine = (i: number, text: string): string => lines.map((l, j) => (j === i ? text : l)).join('\n');
    // line numbers are 1-based: header = line 1, first row = line 2
    const dense = tmp.put('dense.csv', withLine(2, '0,0,y,"[1, 6]"'));
    await expectInputError(loadWorkload(dense, TINY), [`${dense}:3: Layer ID`, 'engine layer 0 is not a MoE layer of model tiny (MoE layers 1,3)']);
    const range = tmp.put('range.csv', withLine(3, '3,0,x,"[2, 8]"'));
    await expectInputError(loadWorkload(range, TINY), [`${range}:4: Activated Expert IDs[1]`, 'expert id 8 out of range 0..7']);
    const width = tmp.put('width.csv', withLine(4, '3,0,y,"[3, 4, 5]"'));
    await expectInputError(loadWorkload(width, TINY), [`${width}:5: Activated Expert IDs`, 'wrong top-k width: 3 expert ids, model tiny has top-2']);
    const dup = tmp.put('dup.csv', withLine(2, '1,0,y,"[6, 6]"'));
    await expectInputError(loadWorkload(dup, TINY), [`${dup}:3: Activated Expert IDs[1]`, 'expert id 6 listed twice']);
    const nonint = tmp.put('nonint.csv', withLine(2, '1,0,y,"[6, x]"'));
    await expectInputError(loadWorkload(nonint, TINY), [`${nonint}:3: Activated Expert IDs[1]`, 'must be a non-negative integer, got "x"']);
    const neg = tmp.put('neg.csv', withLine(2, '1,0,y,"[-1, 2]"'));
    await expectInputError(loadWorkload(neg, TINY), [`${neg}:3: Activated Expert IDs[0]`, 'got "-1"']);
    const layerText = tmp.put('lt.csv', withLine(2, 'one,0,y,"[1, 2]"'));
    await expectInputError(loadWorkload(layerText, TINY), [`${layerText}:3: Layer ID`, 'non-negative integer']);
    const batch = tmp.put('batch.csv', withLine(4, '3,1,y,"[3, 4]"'));
    await expectInputError(loadWorkload(batch, TINY), [`${batch}:5: Batch Number`, 'one file must hold one request']);
    const fewer = tmp.put('fewer.csv', lines.filter((_, i) => i !== 4).join('\n'));
    await expectInputError(loadWorkload(fewer, TINY), [fewer, 'Layer ID', 'engine layer 3 has 1 token rows (from line 4), other layers have 2']);
    const missing = tmp.put('missing.csv', lines.slice(0, 3).join('\n'));
    await expectInputError(loadWorkload(missing, TINY), [missing, 'MoE layer 1 (engine layer 3) has no rows']);
    const header = tmp.put('header.csv', ok.replace('Token', 'Text'));
    await expectInputError(loadWorkload(header, TINY), [`${header}:1`, 'expected the header']);
    const onlyHeader = tmp.put('oh.csv', `${HEADER}\n`);
    await expectInputError(loadWorkload(onlyHeader, TINY), [onlyHeader, 'no token rows']);
    const afterQuote = tmp.put('aq.csv', withLine(2, '1,0,"abc,"[1, 2]"'));
    await expectInputError(loadWorkload(afterQuote, TINY), [`${afterQuote}:3: Token`, 'expected a comma after the quoted token']);
    const unterminated = tmp.put('unterm.csv', withLine(4, '3,0,"y,[3, 4]'));
    await expectInputError(loadWorkload(unterminated, TINY), [`${unterminated}:5: Token`, 'unterminated quoted field']);
  });

  it('folder errors: empty folder, empty file, truncated gzip, other file types', async () => {
    tmp.put('empty/.hidden', 'x');
    await expectInputError(loadWorkload(join(tmp.dir, 'empty'), TINY), [join(tmp.dir, 'empty'), 'empty folder']);
    const good = csvTrace(['x'], [[0, 1]], [[2, 3]]);
    tmp.put('e/p1.csv', good);
    const empty = tmp.put('e/p2.csv', '');
    await expectInputError(loadWorkload(join(tmp.dir, 'e'), TINY), [empty, 'empty file']);
    tmp.put('g/p1.csv', good);
    const gz = gzipSync(Buffer.from(good.repeat(1)));
    const cut = join(tmp.dir, 'g/p2.csv.gz');
    writeFileSync(cut, gz.subarray(0, gz.length - 12));
    await expectInputError(loadWorkload(join(tmp.dir, 'g'), TINY), [cut, 'truncated gzip']);
    tmp.put('r/p1.csv', good);
    const notes = tmp.put('r/zz-notes.md', '# notes\n');
    await expectInputError(loadWorkload(join(tmp.dir, 'r'), TINY), [`${notes}:1`, 'expected the header']);
    const readme = tmp.put('r/README.md', '# notes\n'); // sorts first: decides the format
    await expectInputError(loadWorkload(join(tmp.dir, 'r'), TINY), [`${readme}:1`, 'unknown workload format']);
    tmp.put('c/a.json', JSON.stringify({ logical_count: [ROW_A, ROW_B] }));
    await expectInputError(loadWorkload(join(tmp.dir, 'c'), TINY), [join(tmp.dir, 'c'), 'holds sglang-counts files']);
  });
});

// ---- per-request JSON step traces ---------------------------------------------------------------

// TINY_TOP1: 3 engine layers, MoE at 0 and 2, 4 experts, top-1.
const stepsA = [
  { 0: [[1], [2]], 1: null, 2: [[3], [0]] },
  { 0: [[2]], 1: null, 2: [[1]] },
];
const stepsB = [{ 0: [[0], [0], [3]], 1: null, 2: [[2], [2], [1]] }];

describe('per-request JSON step traces', () => {
  it('reads nested folders in natural order, steps appended in order', async () => {
    tmp.put('m/subj-b/0.json.gz', JSON.stringify(stepsB), true);
    tmp.put('m/subj-a/10.json.gz', JSON.stringify(stepsB), true);
    tmp.put('m/subj-a/2.json', JSON.stringify(stepsA));
    tmp.put('m/subj-a/1.json.gz', JSON.stringify(stepsA), true);
    const dir = join(tmp.dir, 'm');
    expect(await detectFormat(dir)).toBe('maverick-json');
    const w = await loadWorkload(dir, TINY_TOP1);
    const tr = traceOf(w);
    expect(w.meta.format).toBe('maverick-json');
    // order: subj-a/1 (3 tokens), subj-a/2 (3), subj-a/10 (3), subj-b/0 (3)
    expect(tr.numRequests).toBe(4);
    expect(Array.from(tr.request)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    expect(Array.from(tr.experts[0])).toEqual([1, 2, 2, 1, 2, 2, 0, 0, 3, 0, 0, 3]);
    expect(Array.from(tr.experts[1])).toEqual([3, 0, 1, 3, 0, 1, 2, 2, 1, 2, 2, 1]);
    const order = ['subj-a/1.json.gz', 'subj-a/2.json', 'subj-a/10.json.gz', 'subj-b/0.json.gz'].map((n) => join(dir, n));
    expect(w.meta.digest).toBe(sha(...order));
  });

  it('JSON step errors name the file and field', async () => {
    const put = (name: string, doc: unknown): string => tmp.put(name, typeof doc === 'string' ? doc : JSON.stringify(doc), true);
    const dense = put('dense.json', [{ 0: [[1]], 1: [[2]], 2: [[3]] }]);
    await expectInputError(loadWorkload(dense, TINY_TOP1), [dense, '[0]["1"]', 'engine layer 1 is not a MoE layer of model tiny1']);
    const missing = put('missing.json', [stepsA[0], { 0: [[2]], 1: null }]);
    await expectInputError(loadWorkload(missing, TINY_TOP1), [missing, '[1]["2"]', 'missing']);
    const width = put('width.json', [{ 0: [[1, 2]], 1: null, 2: [[3]] }]);
    await expectInputError(loadWorkload(width, TINY_TOP1), [width, '[0]["0"][0]', 'wrong top-k width: 2 expert ids, model tiny1 has top-1']);
    const range = put('range.json', [stepsA[0], { 0: [[2]], 1: null, 2: [[4]] }]);
    await expectInputError(loadWorkload(range, TINY_TOP1), [range, '[1]["2"][0][0]', 'expert id 4 out of range 0..3']);
    const text = put('text.json', [{ 0: [['1']], 1: null, 2: [[3]] }]);
    await expectInputError(loadWorkload(text, TINY_TOP1), [text, '[0]["0"][0][0]', 'must be an integer, got string "1"']);
    const ragged = put('ragged.json', [{ 0: [[1], [2]], 1: null, 2: [[3]] }]);
    await expectInputError(loadWorkload(ragged, TINY_TOP1), [ragged, '[0]["2"]', '1 tokens, MoE layer 0 of this step has 2']);
    const broken = put('broken.json', '[{"0": [[1]], "1": null, "2": [[3]');
    await expectInputError(loadWorkload(broken, TINY_TOP1), [broken, 'unreadable JSON']);
    tmp.put('f/0.json', JSON.stringify(stepsA));
    const none = tmp.put('f/1.json', '[]');
    await expectInputError(loadWorkload(join(tmp.dir, 'f'), TINY_TOP1), [none, 'empty list of steps']);
    const notList = tmp.put('g/1.json', JSON.stringify({ 0: [[1]] }));
    tmp.put('g/0.json', JSON.stringify(stepsA));
    await expectInputError(loadWorkload(join(tmp.dir, 'g'), TINY_TOP1), [notList, 'expected a list of steps']);
    const noTokens = put('nt.json', [{ 0: [], 1: null, 2: [] }]);
    await expectInputError(loadWorkload(noTokens, TINY_TOP1), [noTokens, '[0]["0"]', 'step has no tokens']);
    const dup2 = tmp.put('dup2.json', JSON.stringify([{ 0: null, 1: [[1, 2]], 2: null, 3: [[4, 4]] }]));
    await expectInputError(loadWorkload(dup2, TINY), [dup2, '[0]["3"][0][1]', 'expert id 4 listed twice']);
  });
});

describe('detection and path errors', () => {
  it('rejects missing paths, empty files and unknown content with the path named', async () => {
    const nowhere = join(tmp.dir, 'nope.json');
    await expectInputError(loadWorkload(nowhere, TINY), [nowhere, 'no such file or folder']);
    await expectInputError(detectFormat(nowhere), [nowhere, 'no such file']);
    const empty = tmp.put('empty.json', '');
    await expectInputError(loadWorkload(empty, TINY), [empty, 'empty file']);
    const emptyGz = tmp.put('empty.gz', '', true);
    await expectInputError(loadWorkload(emptyGz, TINY), [emptyGz, 'empty file']);
    const blank = tmp.put('blank.txt', '  \n\n');
    await expectInputError(loadWorkload(blank, TINY), [blank, 'empty file']);
    const prose = tmp.put('prose.txt', 'hello world\nthis is not a workload\n');
    await expectInputError(loadWorkload(prose, TINY), [`${prose}:1`, 'unknown workload format']);
    const obj = tmp.put('obj.json', '{"something": [1, 2]}');
    await expectInputError(loadWorkload(obj, TINY), [obj, 'unknown workload format']);
    const binary = tmp.put('bin.dat', new Uint8Array([0, 1, 2, 3, 250, 251, 7]));
    await expectInputError(loadWorkload(binary, TINY), [binary, 'unknown workload format']);
    const gz = gzipSync(Buffer.from(JSON.stringify({ logical_count: [ROW_A, ROW_B] })));
    const cut = tmp.put('cut.json.gz', gz.subarray(0, gz.length - 10));
    await expectInputError(loadWorkload(cut, TINY), [cut, 'truncated gzip']);
  });

  it('errors are InputErrors with exit code 2 and the location', async () => {
    const f = tmp.put('w.csv', `${ROW_A.join(',')}\n1,x\n`);
    const err = await loadWorkload(f, TINY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).exitCode).toBe(2);
    expect((err as InputError).location).toEqual({ file: f, line: 2, field: 'column 2' });
  });
});
