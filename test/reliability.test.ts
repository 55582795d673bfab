/**
 * Reliability of the compiled CLI run as a child process (`node bin/moe-placer.js ...`):
 *
 * - worker faults (MOE_PLACER_FAULT, honoured by worker threads only, so `--workers 2`): a worker
 *   that throws or dies once on a layer is retried and the run gives the very plan of a clean run;
 *   one that fails twice ends the run with exit 1, one stderr line naming the layer and its seed,
 *   no stack trace and no output or temporary file;
 * - the wall-clock budget: `plan --time-limit T` on an input the optimizer would work on for ~40 s
 *   ends within 1.1 T, both as the solver reports it and as the process takes;
 * - reproducibility: the same inputs and seed give byte-identical plan files for 1 and 2 workers
 *   (optimize and eplb), apart from the wall times, the creation time and the worker count the
 *   provenance records; the provenance names the input digests, options, seed and version.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/api.js';
import { generateTrace } from '../src/generator.js';
import { readPlanFile } from '../src/plan.js';
import { resolveModel } from '../src/presets.js';
import { deriveSeed } from '../src/rng.js';
import { ModelSchema } from '../src/schemas.js';
import { writeTrace } from '../src/workload/index.js';
import { TINY_MODEL as TINY, TINY_CLUSTER } from './plan-fixtures.js';
import { ensureBuilt, ROOT, runCli, type RunResult } from './cli-helpers.js';

/** Plan seed of every run here. */
const SEED = 7;

let dir: string;
const p = (name: string): string => join(dir, name);
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/**
 * `plan` on the tiny model and trace. eps 0.3 gives the traffic search room, so the annealing (and
 * its random streams) decides the plan, not only the balanced start.
 */
const planArgs = (out: string, workers: number, solver = 'optimize'): string[] => [
  'plan',
  '--model', p('model.json'),
  '--cluster', p('cluster.json'),
  '--workload', p('trace.mpt'),
  '--solver', solver,
  '--eps', '0.3',
  '--seed', String(SEED),
  '--workers', String(workers),
  '--out', out,
];

/** A plan file's text without what legitimately differs between runs: wall times, creation time, worker count. */
function stripRunFields(text: string): string {
  const dropped = text.replace(/^\s*"(wallTimeSeconds|wallSeconds|createdAt|workers)": [^\n]*\n/gm, '');
  // Exactly these 4 lines go: the two wall times, createdAt and options.workers.
  expect(text.split('\n').length - dropped.split('\n').length).toBe(4);
  // A removed last member leaves a dangling comma; drop it so the rest compares as text.
  return dropped.replace(/,(\n\s*[}\]])/g, '$1');
}

const tempFiles = (): string[] => readdirSync(dir).filter((f) => f.includes('.tmp'));

beforeAll(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'moe-placer-rel-'));
  writeFileSync(p('model.json'), JSON.stringify(TINY));
  writeFileSync(p('cluster.json'), JSON.stringify(TINY_CLUSTER));
  const model = ModelSchema.parse(TINY);
  await writeTrace(p('trace.mpt'), generateTrace({ model, tokens: 2000, requests: 16, seed: 5 }), model);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('worker faults (--workers 2)', () => {
  const runs: Record<string, RunResult> = {};

  beforeAll(async () => {
    // throw-always:0 writes over an existing file, which must survive the failed run untouched.
    writeFileSync(p('fault-throw-always-0.json'), 'an earlier plan\n');
    const kinds = ['clean', 'throw:1', 'exit:1', 'throw-always:1', 'throw-always:0'];
    const results = await Promise.all(
      kinds.map((k) => runCli(planArgs(p(`fault-${k.replace(':', '-')}.json`), 2), { env: k === 'clean' ? {} : { MOE_PLACER_FAULT: k } })),
    );
    kinds.forEach((k, i) => (runs[k] = results[i]));
  });

  for (const kind of ['throw:1', 'exit:1']) {
    it(`${kind}: the layer is retried, exit 0, and the plan is the clean run's`, () => {
      ok(runs[kind]);
      const file = p(`fault-${kind.replace(':', '-')}.json`);
      const { plan } = readPlanFile(file); // schema, placement and derived maps valid
      expect(plan.provenance?.interrupted).toBe(false);
      expect(plan.phy2log).toHaveLength(2);
      // Each layer's search is seeded from (seed, layer): a retried layer comes out the same.
      const clean = readFileSync(p('fault-clean.json'), 'utf8');
      expect(stripRunFields(readFileSync(file, 'utf8'))).toBe(stripRunFields(clean));
    });
  }

  it('throw-always:1: exit 1, one line naming layer 1 and its seed, no stack trace, no output or temp file', () => {
    const r = runs['throw-always:1'];
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^moe-placer: /);
    expect(lines[0]).toMatch(/\blayer 1\b/);
    // The seed named is the one layer 1 was solved with: deriveSeed(plan seed, layer).
    expect(lines[0]).toContain(`seed ${deriveSeed(SEED, 1)}`);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(p('fault-throw-always-1.json'))).toBe(false);
    expect(tempFiles()).toEqual([]);
  });

  it('throw-always:0 over an existing file: exit 1 naming layer 0, the old file is left as it was', () => {
    const r = runs['throw-always:0'];
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`layer 0 (seed ${deriveSeed(SEED, 0)})`);
    expect(readFileSync(p('fault-throw-always-0.json'), 'utf8')).toBe('an earlier plan\n');
    expect(tempFiles()).toEqual([]);
  });
});

describe.concurrent('bad workloads through the binary: exit 2, one line naming the file, no output file', () => {
  const cases: { name: string; file: string; bytes: () => Buffer }[] = [
    { name: 'truncated gzip', file: 'cut.mpt.gz', bytes: () => gzipSync(readFileSync(p('trace.mpt'))).subarray(0, 300) },
    { name: 'random bytes', file: 'noise.bin', bytes: () => Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 113 + 7) % 256)) },
    // 4 layer rows: the model has 3 engine layers, 2 of them MoE.
    { name: 'counts of another model', file: 'rows.csv', bytes: () => Buffer.from('1,2,3,4,5,6,7,8\n'.repeat(4)) },
  ];
  it.for(cases.map((c) => [c.name, c] as const))('%s', async ([, c], { expect }) => {
    writeFileSync(p(c.file), c.bytes());
    const out = p(`bad-${c.file}.json`);
    const r = await runCli(['plan', '--model', p('model.json'), '--cluster', p('cluster.json'), '--workload', p(c.file), '--workers', '1', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^moe-placer: /);
    expect(lines[0]).toContain(p(c.file));
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(out)).toBe(false);
  });
});

describe('--time-limit', () => {
  it('a 5 s budget on a search of ~40 s: the run ends within 1.1 x 5 s, process start-up included', async () => {
    // DeepSeek-V2-Lite (26 MoE layers x 64 experts, top-6) on 4 x 8 GPUs with 3 slots each:
    // unconstrained, optimize takes ~40 s on 2 loaded cores for these 8,000 tokens.
    const model = resolveModel('deepseek-v2-lite');
    await writeTrace(p('v2.mpt'), generateTrace({ model, tokens: 8000, seed: 1, fitRounds: 0 }), model);
    const T = 5;
    const out = p('v2-plan.json');
    const t0 = performance.now();
    const r = await runCli([
      'plan', '--model', 'deepseek-v2-lite', '--cluster', 'h800-4x8', '--slots-per-gpu', '3', '--workload', p('v2.mpt'),
      '--objective', 'traffic', '--time-limit', String(T), '--workers', '2', '--out', out, '--json',
    ]);
    const wall = (performance.now() - t0) / 1000;
    ok(r);
    const { plan } = readPlanFile(out);
    const solverWall = plan.provenance!.wallTimeSeconds;
    const report = `process ${wall.toFixed(2)} s, plan() ${solverWall.toFixed(2)} s, limit ${T} s`;
    expect(plan.provenance?.interrupted, report).toBe(false);
    expect(plan.provenance?.options.timeLimitSeconds, report).toBe(T);
    // The budget bound the search: it was not over long before the limit.
    expect(solverWall, report).toBeGreaterThan(0.5 * T);
    expect(solverWall, report).toBeLessThanOrEqual(1.1 * T);
    expect(wall, report).toBeLessThanOrEqual(1.1 * T);
  });
});

describe('reproducibility', () => {
  for (const solver of ['optimize', 'eplb']) {
    it(`${solver}: the same inputs and seed give the same plan bytes for 1 and 2 workers; provenance records the inputs`, async () => {
      const files = [1, 2].map((w) => p(`repro-${solver}-w${w}.json`));
      await Promise.all([1, 2].map((w, i) => runCli(planArgs(files[i], w, solver)).then(ok)));
      const [a, b] = files.map((f) => readFileSync(f, 'utf8'));
      expect(stripRunFields(a)).toBe(stripRunFields(b));

      const { plan } = readPlanFile(files[1]);
      const prov = plan.provenance!;
      expect(prov.tool).toBe('moe-placer');
      expect(prov.version).toBe(version);
      expect(prov.solver).toBe(solver);
      expect(prov.seed).toBe(SEED);
      expect(prov.objective).toBe('traffic');
      expect(prov.options).toMatchObject({ eps: 0.3, mode: 'normal', workers: 2 });
      // The workload digest is the sha256 of the bytes read; model and cluster digests hash the echoed inputs.
      expect(prov.inputDigests.workload).toBe(createHash('sha256').update(readFileSync(p('trace.mpt'))).digest('hex'));
      expect(prov.inputDigests.model).toBe(digestOf(plan.model));
      expect(prov.inputDigests.model).toMatch(/^[0-9a-f]{64}$/);
      expect(prov.inputDigests.cluster).toMatch(/^[0-9a-f]{64}$/);
      expect(readPlanFile(files[0]).plan.provenance!.options.workers).toBe(1);
    });
  }
});
