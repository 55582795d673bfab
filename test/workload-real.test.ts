/**
 * Opt-in checks of the readers on the real routing data in /work/shared/data (skipped when absent):
 * shapes, token counts cross-checked against an independent parse, natural file order, digests.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { countsOfTrace } from '../src/workload/tokens.js';
import { detectFormat, loadWorkload } from '../src/workload/index.js';
import { DATA, DEEPSEEK_V2_LITE, DEEPSEEK_V3, LLAMA4_MAVERICK, SWITCH_BASE } from './workload-helpers.js';

const V3 = join(DATA, 'deepseek-v3-sglang');
const V2 = join(DATA, 'deepseek-v2-lite-traces');
const MAV = join(DATA, 'llama4-maverick-traces');

function sha256(files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(f));
  return h.digest('hex');
}

describe.skipIf(!existsSync(V3))('real data: DeepSeek-V3 SGLang counts', () => {
  it('every file loads as [58][256] counts equal to engine rows 3..60', async () => {
    for (const name of readdirSync(V3)) {
      const file = join(V3, name);
      const w = await loadWorkload(file, DEEPSEEK_V3);
      expect(w.kind).toBe('counts');
      if (w.kind !== 'counts') continue;
      expect(w.meta.format).toBe('sglang-counts');
      expect(w.meta.digest).toBe(sha256([file]));
      expect(w.counts.numLayers).toBe(58);
      expect(w.counts.numExperts).toBe(256);
      const raw = JSON.parse(readFileSync(file, 'utf8')).logical_count as number[][];
      for (let l = 0; l < 58; l++) expect(Array.from(w.counts.counts[l])).toEqual(raw[l + 3]);
      expect(w.meta.notes!.some((n) => n.includes('engine layers 0..2'))).toBe(true);
    }
  });
});

describe.skipIf(!existsSync(V2))('real data: DeepSeek-V2-Lite CSV traces', () => {
  it('loads 999 requests in natural order with token counts matching the files', async () => {
    expect(await detectFormat(V2)).toBe('v2lite-csv');
    let last = 0;
    const w = await loadWorkload(V2, DEEPSEEK_V2_LITE, { onProgress: (b) => (last = b) });
    if (w.kind !== 'trace') throw new Error('expected a trace');
    const tr = w.trace;
    const dir = join(V2, 'prompts_0001-1000');
    const names = readdirSync(dir);
    expect(tr.numRequests).toBe(names.length);
    expect(tr.numLayers).toBe(26);
    expect(tr.topK).toBe(6);
    // Independent parse: rows per file / 26 layers = tokens of that request (file prompt_{i+1} is request i).
    const perReq = new Uint32Array(tr.numRequests);
    for (let t = 0; t < tr.numTokens; t++) perReq[tr.request[t]]++;
    let total = 0;
    const read: string[] = [];
    for (let i = 1; i <= names.length + 1; i++) {
      const f = join(dir, `prompt_${i}_data.csv.gz`);
      if (!existsSync(f)) continue;
      read.push(f);
      const text = gunzipSync(readFileSync(f));
      let lines = 0;
      for (let p = text.indexOf(10); p >= 0; p = text.indexOf(10, p + 1)) lines++;
      if (text[text.length - 1] !== 10) lines++;
      const tokens = (lines - 1) / 26;
      expect(Number.isInteger(tokens)).toBe(true);
      expect(perReq[read.length - 1]).toBe(tokens);
      total += tokens;
      if (i === 1) {
        // first data row: layer 1, first token of request 0
        const row = text.toString('utf8').split('\n')[1];
        const ids = JSON.parse(row.slice(row.lastIndexOf('"[') + 1).replace(/"\s*$/, ''));
        expect(Array.from(tr.experts[0].subarray(0, 6))).toEqual(ids);
      }
    }
    expect(tr.numTokens).toBe(total);
    expect(w.meta.digest).toBe(sha256(read));
    expect(last).toBe(read.reduce((s, f) => s + readFileSync(f).length, 0));
    const counts = countsOfTrace(tr);
    for (let l = 0; l < 26; l++) expect(counts.counts[l].reduce((a, b) => a + b, 0)).toBe(tr.numTokens * 6);
  });
});

describe.skipIf(!existsSync(MAV))('real data: Llama-4-Maverick JSON step traces', () => {
  it('loads nested subject folders, files in natural order, steps appended in order', async () => {
    expect(await detectFormat(MAV)).toBe('maverick-json');
    const w = await loadWorkload(MAV, LLAMA4_MAVERICK);
    if (w.kind !== 'trace') throw new Error('expected a trace');
    const tr = w.trace;
    const subjects = readdirSync(MAV).sort();
    const files: string[] = [];
    for (const s of subjects) {
      const names = readdirSync(join(MAV, s)).sort((a, b) => parseInt(a) - parseInt(b));
      for (const n of names) files.push(join(MAV, s, n));
    }
    expect(tr.numRequests).toBe(files.length);
    expect(tr.numLayers).toBe(24);
    expect(w.meta.digest).toBe(sha256(files));
    // Independent parse of every file: tokens per request and the routing of its layer-47 tokens.
    let t0 = 0;
    for (let r = 0; r < files.length; r++) {
      const steps = JSON.parse(gunzipSync(readFileSync(files[r])).toString('utf8')) as Record<string, number[][] | null>[];
      const ids = steps.flatMap((st) => st['47']!.map((x) => x[0]));
      expect(tr.request[t0]).toBe(r);
      expect(Array.from(tr.experts[23].subarray(t0, t0 + ids.length))).toEqual(ids);
      t0 += ids.length;
    }
    expect(tr.numTokens).toBe(t0);
  });
});

const SWITCH = join(DATA, 'switch-base-128', 'switch-base-128_expert_statistics_3d.json');

describe.skipIf(!existsSync(SWITCH))('real data: switch-base-128 usage counts', () => {
  it('maps the six engine layer keys onto the MoE layers', async () => {
    const w = await loadWorkload(SWITCH, SWITCH_BASE);
    if (w.kind !== 'counts') throw new Error('expected counts');
    expect(w.meta.format).toBe('usage-counts');
    const raw = JSON.parse(readFileSync(SWITCH, 'utf8')).expert_usage_by_layer as Record<string, Record<string, number>>;
    SWITCH_BASE.moeLayerIds.forEach((id, l) => {
      for (let e = 0; e < 128; e++) expect(w.counts.counts[l][e]).toBe(raw[String(id)][String(e)] ?? 0);
    });
  });
});
