/**
 * The canonical trace format: binary `mpt` and JSON-lines `mpt-jsonl`. Round trips (with and
 * without rank / weight, gzipped or not, 1- and 2-byte ids, several chunks), files built by hand
 * from the documented layout, and every error case naming file / line / field.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Trace } from '../src/types.js';
import { detectFormat, loadWorkload, readTrace, writeTrace } from '../src/workload/index.js';
import { expectInputError, TINY, tempDir, traceDims, uniformTrace, WIDE } from './workload-helpers.js';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

function expectSameTrace(a: Trace, b: Trace): void {
  expect(b.numLayers).toBe(a.numLayers);
  expect(b.numExperts).toBe(a.numExperts);
  expect(b.topK).toBe(a.topK);
  expect(b.numTokens).toBe(a.numTokens);
  expect(b.numRequests).toBe(a.numRequests);
  expect(Array.from(b.request)).toEqual(Array.from(a.request));
  expect(Array.from(b.rank)).toEqual(Array.from(a.rank));
  expect(b.weight === null ? null : Array.from(b.weight)).toEqual(a.weight === null ? null : Array.from(a.weight));
  for (let l = 0; l < a.numLayers; l++) expect(Array.from(b.experts[l])).toEqual(Array.from(a.experts[l]));
}

/**
 * An mpt file built by hand from the documented layout (independent of the writer). `cut` drops
 * bytes at the end; ids written with `idBytes`.
 */
function handMpt(header: Record<string, unknown>, chunks: { request: number[]; rank?: number[]; weight?: number[]; ids: number[][] }[], end = true): Buffer {
  const parts: Buffer[] = [];
  const json = Buffer.from(JSON.stringify(header));
  const pre = Buffer.alloc(8);
  pre.write('MPT1', 0, 'latin1');
  pre.writeUInt32LE(json.length, 4);
  parts.push(pre, json);
  const idBytes = header.idBytes as number;
  for (const c of chunks) {
    const n = c.request.length;
    const b = Buffer.alloc(4 + n * 4 + (c.rank ? n * 4 : 0) + (c.weight ? n * 4 : 0));
    let o = b.writeUInt32LE(n, 0);
    for (const r of c.request) o = b.writeUInt32LE(r, o);
    for (const r of c.rank ?? []) o = b.writeInt32LE(r, o);
    for (const w of c.weight ?? []) o = b.writeFloatLE(w, o);
    parts.push(b);
    for (const layer of c.ids) {
      const ib = Buffer.alloc(layer.length * idBytes);
      layer.forEach((v, i) => (idBytes === 1 ? ib.writeUInt8(v, i) : ib.writeUInt16LE(v, 2 * i)));
      parts.push(ib);
    }
  }
  if (end) parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

const TINY_HEADER = { format: 'moe-placer.trace', version: 1, numLayers: 2, numExperts: 8, topK: 2, idBytes: 1, hasRank: false, hasWeight: false, numTokens: 3, numRequests: 2 };
// 3 tokens in 2 chunks; layer 0 ids then layer 1 ids per chunk
const TINY_CHUNKS = [
  { request: [0, 0], ids: [[0, 1, 2, 3], [4, 5, 6, 7]] },
  { request: [1], ids: [[7, 6], [5, 4]] },
];

describe('mpt binary format', () => {
  it('reads a file built by hand from the documented layout', async () => {
    const f = tmp.put('hand.mpt', handMpt(TINY_HEADER, TINY_CHUNKS));
    expect(await detectFormat(f)).toBe('mpt');
    const w = await loadWorkload(f, TINY);
    if (w.kind !== 'trace') throw new Error('trace expected');
    expect(w.meta.format).toBe('mpt');
    expect(w.meta.digest).toBe(createHash('sha256').update(readFileSync(f)).digest('hex'));
    expect(Array.from(w.trace.request)).toEqual([0, 0, 1]);
    expect(Array.from(w.trace.experts[0])).toEqual([0, 1, 2, 3, 7, 6]);
    expect(Array.from(w.trace.experts[1])).toEqual([4, 5, 6, 7, 5, 4]);
    expect(Array.from(w.trace.rank)).toEqual([-1, -1, -1]);
    expect(w.trace.weight).toBeNull();
    // numTokens unknown (null): arrays grow while reading; rank and weight present; 2-byte ids
    const g = tmp.put('grow.mpt', handMpt({ ...TINY_HEADER, numTokens: null, hasRank: true, hasWeight: true, idBytes: 2 }, [
      { request: [0, 0], rank: [3, -1], weight: [0.5, 2], ids: [[0, 1, 2, 3], [4, 5, 6, 7]] },
      { request: [1], rank: [0], weight: [1], ids: [[7, 6], [5, 4]] },
    ]), true);
    const tr = (await readTrace(g, TINY)).trace;
    expect(tr.numTokens).toBe(3);
    expect(Array.from(tr.rank)).toEqual([3, -1, 0]);
    expect(Array.from(tr.weight!)).toEqual([0.5, 2, 1]);
    expect(Array.from(tr.experts[1])).toEqual([4, 5, 6, 7, 5, 4]);
  });

  it('writes the documented layout (header fields, chunks, end marker)', async () => {
    const tr = uniformTrace(traceDims(TINY), 5, 3, { rank: 17 });
    const f = join(tmp.dir, 'w.mpt');
    const { bytes } = await writeTrace(f, tr, TINY, { chunkTokens: 2 });
    const buf = readFileSync(f);
    expect(buf.length).toBe(bytes);
    expect(buf.toString('latin1', 0, 4)).toBe('MPT1');
    const h = JSON.parse(buf.toString('utf8', 8, 8 + buf.readUInt32LE(4)));
    expect(h).toMatchObject({ format: 'moe-placer.trace', version: 1, numLayers: 2, numExperts: 8, topK: 2, idBytes: 1, hasRank: true, hasWeight: false, numTokens: 5, model: 'tiny', moeLayerIds: [1, 3] });
    expect(h.numRequests).toBe(tr.numRequests);
    // 3 chunks (2+2+1 tokens) of 4+4n+4n+2*2n bytes each, then the 4-byte end marker
    const body = [2, 2, 1].reduce((s, n) => s + 4 + 8 * n + 4 * n, 0);
    expect(buf.length).toBe(8 + buf.readUInt32LE(4) + body + 4);
    expect(buf.readUInt32LE(buf.length - 4)).toBe(0);
    // no stray temp file next to it
    expect(readdirSync(tmp.dir)).toEqual(['w.mpt']);
  });

  for (const gzip of [false, true]) {
    for (const [rank, weight] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      it(`round trip: gzip ${gzip}, rank ${rank}, weight ${weight}`, async () => {
        const tr = uniformTrace(traceDims(TINY), 50, 7 + Number(rank) * 2 + Number(weight), { rank: rank ? 17 : 0, weight: weight ? 64 : undefined });
        const f = join(tmp.dir, gzip ? 't.mpt.gz' : 't.mpt');
        await writeTrace(f, tr, TINY, { chunkTokens: 16 });
        expect(readFileSync(f)[0] === 0x1f).toBe(gzip);
        const w = await loadWorkload(f, TINY);
        if (w.kind !== 'trace') throw new Error('trace expected');
        expectSameTrace(tr, w.trace);
        expect(w.meta.notes!.includes('no source rank recorded')).toBe(!rank);
      });
    }
  }

  it('round trip with 2-byte ids (300 experts) and an empty trace', async () => {
    const tr = uniformTrace(traceDims(WIDE), 40, 11, { weight: 64 });
    const f = join(tmp.dir, 'wide.mpt');
    await writeTrace(f, tr, WIDE, { chunkTokens: 7 });
    const h = JSON.parse(readFileSync(f).toString('utf8', 8, 8 + readFileSync(f).readUInt32LE(4)));
    expect(h.idBytes).toBe(2);
    expectSameTrace(tr, (await readTrace(f, WIDE)).trace);
    expect(tr.experts[0].some((e) => e >= 256)).toBe(true);
    const empty: Trace = { ...tr, numTokens: 0, numRequests: 0, request: new Uint32Array(0), rank: new Int32Array(0), weight: null, experts: [new Uint16Array(0), new Uint16Array(0)] };
    const g = join(tmp.dir, 'empty.mpt');
    await writeTrace(g, empty, WIDE);
    expectSameTrace(empty, (await readTrace(g, WIDE)).trace);
  });

  it('gzip choice follows the magic bytes, not the name', async () => {
    const tr = uniformTrace(traceDims(TINY), 9, 5);
    const f = join(tmp.dir, 'gz-inside.bin');
    await writeTrace(f, tr, TINY, { gzip: true });
    expect(readFileSync(f)[0]).toBe(0x1f);
    expectSameTrace(tr, (await readTrace(f, TINY)).trace);
    const g = join(tmp.dir, 'plain.gz');
    await writeTrace(g, tr, TINY, { gzip: false });
    expectSameTrace(tr, (await readTrace(g, TINY)).trace);
  });

  it('truncation anywhere is an error naming the file', async () => {
    const tr = uniformTrace(traceDims(TINY), 20, 2, { rank: 17, weight: 64 });
    const f = join(tmp.dir, 'full.mpt');
    await writeTrace(f, tr, TINY, { chunkTokens: 8 });
    const full = readFileSync(f);
    const hlen = full.readUInt32LE(4);
    const cuts: [number, string][] = [
      [6, 'inside the header'],
      [8 + hlen - 3, 'inside the header'],
      [8 + hlen + 2, 'inside chunk 0 (count)'],
      [8 + hlen + 4 + 5, 'inside chunk 0 (request ids)'],
      [8 + hlen + 4 + 8 * 4 + 3, 'inside chunk 0 (rank)'],
      [full.length - 5, 'inside chunk 2 (ids of layer 1)'],
      [full.length - 4, 'after 3 complete chunks (20 tokens), before the end marker'],
    ];
    for (const [n, where] of cuts) {
      const p = tmp.put(`cut${n}.mpt`, full.subarray(0, n));
      await expectInputError(loadWorkload(p, TINY), [p, 'truncated mpt file', where]);
    }
    const gz = gzipSync(full);
    const pg = tmp.put('cut.mpt.gz', gz.subarray(0, gz.length - 20));
    await expectInputError(loadWorkload(pg, TINY), [pg, 'truncated gzip']);
    const trailing = tmp.put('trailing.mpt', Buffer.concat([full, Buffer.from([1, 2, 3])]));
    await expectInputError(loadWorkload(trailing, TINY), [trailing, '3 bytes of trailing data after the end marker']);
  });

  it('content errors name the header field or the token and layer', async () => {
    const put = (name: string, header: Record<string, unknown>, chunks = TINY_CHUNKS): string => tmp.put(name, handMpt(header, chunks));
    const cases: [string, Record<string, unknown>, typeof TINY_CHUNKS | undefined, string[]][] = [
      ['experts.mpt', { ...TINY_HEADER, numExperts: 16 }, undefined, ['header.numExperts', 'trace has 16 experts per layer, model tiny has 8']],
      ['topk.mpt', { ...TINY_HEADER, topK: 1 }, undefined, ['header.topK', 'wrong top-k: trace has top-1, model tiny has top-2']],
      ['layers.mpt', { ...TINY_HEADER, numLayers: 3 }, undefined, ['header.numLayers', 'trace has 3 MoE layers, model tiny has 2']],
      ['version.mpt', { ...TINY_HEADER, version: 2 }, undefined, ['header.version', 'unsupported version 2']],
      ['idbytes.mpt', { ...TINY_HEADER, idBytes: 3 }, undefined, ['header.idBytes', 'must be 1 or 2']],
      ['flag.mpt', { ...TINY_HEADER, hasRank: 'no' }, undefined, ['header.hasRank', 'must be true or false']],
      ['count.mpt', { ...TINY_HEADER, numTokens: 2 }, undefined, ['numTokens', 'chunk 1 brings the token count to 3, header says numTokens 2']],
      ['few.mpt', { ...TINY_HEADER, numTokens: 4 }, undefined, ['header.numTokens', 'file holds 3 tokens, header says 4']],
      ['huge.mpt', { ...TINY_HEADER, numTokens: 1e12 }, undefined, ['header.numTokens', 'more than the file can hold']],
      ['range.mpt', TINY_HEADER, [TINY_CHUNKS[0], { request: [1], ids: [[7, 6], [5, 9]] }], ['experts[layer 1][token 2][1]', 'expert id 9 out of range 0..7']],
      ['dup.mpt', TINY_HEADER, [{ request: [0, 0], ids: [[0, 1, 3, 3], [4, 5, 6, 7]] }, TINY_CHUNKS[1]], ['experts[layer 0][token 1][1]', 'expert id 3 listed twice']],
      ['req.mpt', TINY_HEADER, [TINY_CHUNKS[0], { request: [2], ids: [[7, 6], [5, 4]] }], ['request[token 2]', 'request id 2 >= numRequests 2']],
    ];
    for (const [name, header, chunks, parts] of cases) {
      const p = put(name, header, chunks);
      await expectInputError(loadWorkload(p, TINY), [p, ...parts]);
    }
    const w = tmp.put('weight.mpt', handMpt({ ...TINY_HEADER, hasWeight: true }, [
      { request: [0, 0], weight: [1, NaN], ids: TINY_CHUNKS[0].ids },
      { request: [1], weight: [1], ids: TINY_CHUNKS[1].ids },
    ]));
    await expectInputError(loadWorkload(w, TINY), [w, 'weight[token 1]', 'weight NaN is not finite']);
    const r = tmp.put('rank.mpt', handMpt({ ...TINY_HEADER, hasRank: true }, [
      { request: [0, 0], rank: [0, -2], ids: TINY_CHUNKS[0].ids },
      { request: [1], rank: [1], ids: TINY_CHUNKS[1].ids },
    ]));
    await expectInputError(loadWorkload(r, TINY), [r, 'rank[token 1]', 'rank -2 < -1']);
    const badJson = Buffer.concat([Buffer.from('MPT1'), Buffer.from([5, 0, 0, 0]), Buffer.from('{"a":'), Buffer.alloc(4)]);
    const bj = tmp.put('badjson.mpt', badJson);
    await expectInputError(loadWorkload(bj, TINY), [bj, 'unreadable JSON']);
  });

  it('writeTrace rejects inconsistent traces and leaves no file behind', async () => {
    const tr = uniformTrace(traceDims(TINY), 4, 1);
    const bad = { ...tr, experts: [tr.experts[0], tr.experts[1].map((e, i) => (i === 3 ? 8 : e))] };
    const f = join(tmp.dir, 'bad.mpt');
    await expectInputError(writeTrace(f, bad, TINY), ['trace.experts[1][token 1][1]', 'expert id 8 out of range']);
    await expectInputError(writeTrace(f, tr, { ...TINY, experts: 16 }), ['trace.numExperts', "model tiny's 16 experts"]);
    await expectInputError(writeTrace(f, { ...tr, numRequests: 1 }, TINY), ['trace.request', '>= numRequests 1']);
    expect(existsSync(f)).toBe(false);
    expect(readdirSync(tmp.dir)).toEqual([]);
  });
});

describe('mpt-jsonl text format', () => {
  it('reads hand-written lines: optional fields, renumbered requests, blank lines', async () => {
    const text = [
      '{"request":5,"rank":3,"weight":2,"experts":[[0,1],[2,3]]}',
      '',
      '{"request":5,"experts":[[4,5],[6,7]]}',
      '{"request":2,"rank":-1,"experts":[[7,0],[1,2]]}',
      '{"experts":[[3,4],[5,6]]}',
    ].join('\n');
    const f = tmp.put('t.jsonl', text);
    expect(await detectFormat(f)).toBe('mpt-jsonl');
    const w = await loadWorkload(f, TINY);
    if (w.kind !== 'trace') throw new Error('trace expected');
    const tr = w.trace;
    expect(w.meta.format).toBe('mpt-jsonl');
    expect(tr.numTokens).toBe(4);
    expect(tr.numRequests).toBe(3);
    expect(Array.from(tr.request)).toEqual([0, 0, 1, 2]);
    expect(Array.from(tr.rank)).toEqual([3, -1, -1, -1]);
    expect(Array.from(tr.weight!)).toEqual([2, 1, 1, 1]);
    expect(Array.from(tr.experts[0])).toEqual([0, 1, 4, 5, 7, 0, 3, 4]);
    expect(Array.from(tr.experts[1])).toEqual([2, 3, 6, 7, 1, 2, 5, 6]);
    expect(w.meta.notes).toContain('request ids renumbered 0.. in order of first appearance');
  });

  for (const name of ['t.jsonl', 't.jsonl.gz']) {
    it(`round trip through writeTrace (${name})`, async () => {
      const tr = uniformTrace(traceDims(TINY), 30, 21, { rank: 17, weight: 64 });
      const f = join(tmp.dir, name);
      await writeTrace(f, tr, TINY);
      const raw = readFileSync(f);
      const text = (name.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
      expect(text.split('\n').filter(Boolean)).toHaveLength(30);
      expectSameTrace(tr, (await readTrace(f, TINY)).trace);
    });
  }

  it('line errors name the file, the 1-based line and the field', async () => {
    const good = '{"request":0,"experts":[[0,1],[2,3]]}';
    const cases: [string, string[]][] = [
      ['{"request":0,"experts":[[0,1],[2,3,4]]}', ['experts[1]', 'wrong top-k width: 3 expert ids, model tiny has top-2']],
      ['{"request":0,"experts":[[0,1]]}', ['experts', '1 layers, model tiny has 2 MoE layers']],
      ['{"request":0,"experts":[[0,8],[2,3]]}', ['experts[0][1]', 'expert id 8 out of range 0..7']],
      ['{"request":0,"experts":[[0,1],[3,3]]}', ['experts[1][1]', 'expert id 3 listed twice']],
      ['{"request":0,"experts":[[0,1.5],[2,3]]}', ['experts[0][1]', 'must be an integer, got 1.5']],
      ['{"request":-1,"experts":[[0,1],[2,3]]}', ['request', 'non-negative integer, got -1']],
      ['{"request":0,"rank":-2,"experts":[[0,1],[2,3]]}', ['rank', 'integer >= -1']],
      ['{"request":0,"weight":-1,"experts":[[0,1],[2,3]]}', ['weight', 'finite non-negative number, got -1']],
      ['{"request":0,"weight":"1","experts":[[0,1],[2,3]]}', ['weight', 'got "1"']],
      ['{"request":0,"rnak":1,"experts":[[0,1],[2,3]]}', ['rnak', 'unknown field']],
      ['{"request":0}', ['experts', 'missing']],
      ['{"request":0,"experts":[[0,1],[2,3]]', ['unreadable JSON']],
      ['[1,2]', ['each line must be a JSON object']],
    ];
    for (let i = 0; i < cases.length; i++) {
      const [line, parts] = cases[i];
      const f = tmp.put(`e${i}.jsonl`, `${good}\n\n${line}\n${good}\n`);
      await expectInputError(loadWorkload(f, TINY), [`${f}:3`, ...parts]);
    }
    const blank = tmp.put('blank.jsonl.gz', gzipSync(Buffer.from('{"request":0,"experts":[[0,1],[2,3]]}\n')).subarray(0, 20));
    await expectInputError(loadWorkload(blank, TINY), [blank, 'truncated gzip']);
  });
});

it('writes atomically: an existing file is replaced whole', async () => {
  const a = uniformTrace(traceDims(TINY), 10, 1);
  const b = uniformTrace(traceDims(TINY), 3, 2);
  const f = join(tmp.dir, 'x.mpt');
  await writeTrace(f, a, TINY);
  await writeTrace(f, b, TINY);
  expectSameTrace(b, (await readTrace(f, TINY)).trace);
  writeFileSync(join(tmp.dir, 'c.json'), JSON.stringify({ logical_count: [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]] }));
  await expectInputError(readTrace(join(tmp.dir, 'c.json'), TINY), ['c.json', 'not a per-token trace']);
});
