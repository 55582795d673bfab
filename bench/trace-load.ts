/**
 * Bench: write and load a DeepSeek-V3-shaped canonical trace (58 MoE layers, top-8 of 256 experts),
 * 1M tokens by default (464M expert ids), plain and gzipped. Ids are seeded uniform random,
 * distinct within a token; requests of 1000 tokens.
 *
 *     node dist/bench/trace-load.js [--tokens N] [--seed S] [--no-gzip]
 *
 * Prints a table (tokens, file bytes, write s, load s, load CPU s, tokens/s, token-layers/s) and writes
 * bench/results/trace-load.json. The trace file goes to bench/results/tmp/ and is removed after.
 */
import { mkdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/rng.js';
import { ModelSchema } from '../src/schemas.js';
import type { Trace } from '../src/types.js';
import { loadWorkload, writeTrace } from '../src/workload/index.js';
import { flag, hasFlag, ROOT, SPLITS, writeResult } from './common.js';

const TMP = join(ROOT, 'bench', 'results', 'tmp');

const moeLayerIds = Array.from({ length: 58 }, (_, i) => i + 3);
const model = ModelSchema.parse({
  name: 'deepseek-v3',
  numHiddenLayers: 61,
  moeLayerIds,
  experts: 256,
  topK: 8,
  groups: 8,
  topKGroups: 4,
  sharedExperts: 1,
  hiddenSize: 7168,
  expertBytes: 3 * 7168 * 2048,
  dispatchBytesPerToken: 7168 + 56 * 4,
  combineBytesPerToken: 2 * 7168,
  expertFlopsPerToken: 6 * 7168 * 2048,
});

/** [T] tokens, uniform ids distinct within a token (8 ids per pair of 32-bit draws when no clash). */
function generate(T: number, seed: number, tokensPerRequest: number): Trace {
  const L = 58;
  const k = 8;
  const rng = new Rng(seed);
  const experts: Uint16Array[] = [];
  const seen = new Int32Array(256); // seen[e] = stamp of the last token that took e
  let stamp = 0;
  for (let l = 0; l < L; l++) {
    const ex = new Uint16Array(T * k);
    for (let t = 0; t < T; t++) {
      stamp++;
      let n = 0;
      const base = t * k;
      while (n < k) {
        let r = rng.nextU32();
        for (let b = 0; b < 4 && n < k; b++, r >>>= 8) {
          const e = r & 255;
          if (seen[e] === stamp) continue;
          seen[e] = stamp;
          ex[base + n++] = e;
        }
      }
    }
    experts.push(ex);
  }
  const request = new Uint32Array(T);
  for (let t = 0; t < T; t++) request[t] = Math.floor(t / tokensPerRequest);
  return {
    numLayers: L,
    numExperts: 256,
    topK: k,
    numTokens: T,
    numRequests: Math.ceil(T / tokensPerRequest),
    request,
    rank: new Int32Array(T).fill(-1),
    weight: null,
    experts,
  };
}

function sameTrace(a: Trace, b: Trace): boolean {
  if (a.numTokens !== b.numTokens || a.numRequests !== b.numRequests) return false;
  const bytes = (x: ArrayBufferView): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  if (!bytes(a.request).equals(bytes(b.request)) || !bytes(a.rank).equals(bytes(b.rank))) return false;
  for (let l = 0; l < a.numLayers; l++) if (!bytes(a.experts[l]).equals(bytes(b.experts[l]))) return false;
  return true;
}

interface Row {
  variant: string;
  tokens: number;
  fileBytes: number;
  writeSeconds: number;
  loadSeconds: number;
  /** user + system CPU of the load (the machine is shared; wall time varies with contention) */
  loadCpuSeconds: number;
  tokensPerSecond: number;
  tokenLayersPerSecond: number;
  heapAfterLoadMB: number;
}

async function main(): Promise<void> {
  const T = Number(flag('tokens', '1000000'));
  const seed = Number(flag('seed', '1'));
  const withGzip = !hasFlag('no-gzip');
  mkdirSync(TMP, { recursive: true });
  let t0 = performance.now();
  const trace = generate(T, seed, 1000);
  const genSeconds = (performance.now() - t0) / 1000;
  process.stderr.write(`generated ${T} tokens in ${genSeconds.toFixed(2)} s\n`);
  const rows: Row[] = [];
  const variants: { name: string; file: string }[] = [{ name: 'mpt', file: join(TMP, 'deepseek-v3-1m.mpt') }];
  if (withGzip) variants.push({ name: 'mpt.gz (level 1)', file: join(TMP, 'deepseek-v3-1m.mpt.gz') });
  for (const v of variants) {
    t0 = performance.now();
    await writeTrace(v.file, trace, model);
    const writeSeconds = (performance.now() - t0) / 1000;
    const fileBytes = statSync(v.file).size;
    t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const w = await loadWorkload(v.file, model);
    const cpu = process.cpuUsage(cpu0);
    const loadSeconds = (performance.now() - t0) / 1000;
    const loadCpuSeconds = (cpu.user + cpu.system) / 1e6;
    if (w.kind !== 'trace' || !sameTrace(trace, w.trace)) throw new Error(`${v.name}: loaded trace differs from the one written`);
    const heapAfterLoadMB = Math.round(process.memoryUsage().arrayBuffers / 2 ** 20);
    rmSync(v.file, { force: true });
    rows.push({
      variant: v.name,
      tokens: T,
      fileBytes,
      writeSeconds,
      loadSeconds,
      loadCpuSeconds,
      tokensPerSecond: T / loadSeconds,
      tokenLayersPerSecond: (T * 58) / loadSeconds,
      heapAfterLoadMB,
    });
  }
  const fmt = (x: number, d = 2): string => x.toFixed(d);
  const header = ['variant', 'tokens', 'file bytes', 'write s', 'load s', 'load cpu s', 'tokens/s', 'token-layers/s'];
  const table = rows.map((r) => [
    r.variant,
    String(r.tokens),
    String(r.fileBytes),
    fmt(r.writeSeconds),
    fmt(r.loadSeconds),
    fmt(r.loadCpuSeconds),
    r.tokensPerSecond.toExponential(2),
    r.tokenLayersPerSecond.toExponential(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log('trace-load: DeepSeek-V3 shape (58 MoE layers, top-8 of 256), uniform distinct ids');
  console.log(line(header));
  for (const r of table) console.log(line(r));
  writeResult('trace-load', {
    split: SPLITS.none,
    shape: { numLayers: 58, numExperts: 256, topK: 8, tokensPerRequest: 1000 },
    seed,
    generateSeconds: genSeconds,
    loadAverage: os.loadavg(),
    cpus: os.cpus().length,
    rows,
  });
}

main().catch((err) => {
  process.stderr.write(`trace-load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
