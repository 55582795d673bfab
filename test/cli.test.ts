/**
 * The compiled CLI as a user runs it (`node bin/moe-placer.js ...`), on small inputs in a temp
 * folder: every command, the plan -> evaluate -> export round trips, exit codes and messages of
 * bad input, and Ctrl-C during `plan`.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOLVERS } from '../src/solvers/registry.js';
import { evaluate } from '../src/cost.js';
import { readPlanFile } from '../src/plan.js';
import { CLUSTER_PRESETS, GPU_PRESETS, MODEL_PRESETS } from '../src/presets.js';
import { ModelSchema, type Model } from '../src/schemas.js';
import { loadWorkload, readTrace, writeTrace } from '../src/workload/index.js';
import { TINY_MODEL as TINY, TINY_CLUSTER } from './plan-fixtures.js';
import { ensureBuilt, ROOT, runCli, type RunResult } from './cli-helpers.js';
import { uniformTrace } from './workload-helpers.js';


let dir: string;
let model: Model;
const p = (name: string): string => join(dir, name);
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const base = (): string[] => ['--model', p('model.json'), '--cluster', p('cluster.json'), '--workload', p('trace.mpt')];

beforeAll(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'moe-placer-cli-'));
  writeFileSync(p('model.json'), JSON.stringify(TINY));
  writeFileSync(p('cluster.json'), JSON.stringify(TINY_CLUSTER));
  model = ModelSchema.parse(TINY);
  // The trace every test uses comes from the CLI's own generator.
  ok(await runCli(['generate', '--model', p('model.json'), '--tokens', '3000', '--requests', '24', '--seed', '5', '--out', p('trace.mpt')]));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('presets, help, version', () => {
  it('lists every preset and solver, as text and as JSON', async () => {
    const [text, json] = await Promise.all([runCli(['presets']), runCli(['presets', '--json'])]);
    ok(text);
    for (const name of [...Object.keys(MODEL_PRESETS), ...Object.keys(GPU_PRESETS), ...Object.keys(CLUSTER_PRESETS), ...Object.keys(SOLVERS)]) {
      expect(text.stdout).toContain(name);
    }
    const doc = JSON.parse(ok(json).stdout) as Record<string, Record<string, unknown>>;
    expect(Object.keys(doc.models).sort()).toEqual(Object.keys(MODEL_PRESETS).sort());
    expect(Object.keys(doc.gpus).sort()).toEqual(Object.keys(GPU_PRESETS).sort());
    expect(Object.keys(doc.clusters).sort()).toEqual(Object.keys(CLUSTER_PRESETS).sort());
    // Models come out resolved: every one passes the schema.
    for (const m of Object.values(doc.models)) expect(ModelSchema.safeParse(m).success).toBe(true);
  });

  it('prints the package version and help', async () => {
    const [v, help, planHelp] = await Promise.all([runCli(['--version']), runCli(['help']), runCli(['plan', '--help'])]);
    expect(ok(v).stdout.trim()).toBe(version);
    for (const cmd of ['plan', 'evaluate', 'export', 'generate', 'presets', 'demo']) expect(ok(help).stdout).toContain(cmd);
    for (const flag of ['--model', '--cluster', '--workload', '--slots-per-gpu', '--time-limit', '--out']) expect(ok(planHelp).stdout).toContain(flag);
  });
});

describe('generate', () => {
  it('writes a canonical trace the workload reader reads back', async () => {
    const { trace, meta } = await readTrace(p('trace.mpt'), model);
    expect(meta.format).toBe('mpt');
    expect(trace.numTokens).toBe(3000);
    expect(trace.numRequests).toBe(24);
    expect(trace.numLayers).toBe(2);
    // A token's k experts are distinct in every layer.
    for (const ex of trace.experts) for (let t = 0; t < trace.numTokens; t++) expect(ex[2 * t]).not.toBe(ex[2 * t + 1]);
  });

  it('is deterministic for a seed and reports in JSON', async () => {
    const r = ok(await runCli(['generate', '--model', p('model.json'), '--tokens', '3000', '--requests', '24', '--seed', '5', '--out', p('again.mpt'), '--json']));
    const doc = JSON.parse(r.stdout) as { tokens: number; requests: number; bytes: number };
    expect(doc.tokens).toBe(3000);
    expect(readFileSync(p('again.mpt'))).toEqual(readFileSync(p('trace.mpt')));
    expect(doc.bytes).toBe(readFileSync(p('trace.mpt')).length);
  });
});

interface PlanJson {
  interNodeBytes: number;
  intraNodeBytes: number;
  maxLoad: number;
  meanLoad: number;
  balancedness: number;
  timeSeconds: number;
  maxLoadLowerBound: number;
  mode: string;
  perLayer: { layer: number; engineLayer: number; interNodeBytes: number; maxLoad: number; maxLoadLowerBound: number }[];
}

function expectSameMetrics(a: PlanJson, b: Pick<PlanJson, 'interNodeBytes' | 'intraNodeBytes' | 'maxLoad' | 'balancedness' | 'timeSeconds'>): void {
  expect(a.interNodeBytes).toBeCloseTo(b.interNodeBytes, 6);
  expect(a.intraNodeBytes).toBeCloseTo(b.intraNodeBytes, 6);
  expect(a.maxLoad).toBeCloseTo(b.maxLoad, 9);
  expect(a.balancedness).toBeCloseTo(b.balancedness, 12);
  expect(a.timeSeconds).toBeCloseTo(b.timeSeconds, 12);
}

describe('plan and evaluate', () => {
  for (const solver of Object.keys(SOLVERS)) {
    it(`plan --solver ${solver} writes a valid plan whose metrics evaluate reproduces`, async () => {
      const out = p(`plan-${solver}.json`);
      const r = ok(await runCli(['plan', ...base(), '--solver', solver, '--workers', '1', '--seed', '3', '--out', out, '--json']));
      const printed = JSON.parse(r.stdout) as PlanJson & { out: string; solver: string };
      expect(printed.solver).toBe(solver);
      const { plan, placement } = readPlanFile(out); // validates schema, placement and derived maps
      expect(plan.provenance?.solver).toBe(solver);
      expect(plan.provenance?.tool).toBe('moe-placer');
      expect(plan.provenance?.version).toBe(version);
      expect(plan.provenance?.seed).toBe(3);
      expect(plan.provenance?.interrupted).toBe(false);
      expect(plan.provenance?.inputDigests.workload).toBe(createHash('sha256').update(readFileSync(p('trace.mpt'))).digest('hex'));
      expectSameMetrics(printed, plan.metrics!);
      // The bound is a lower bound, per layer and overall.
      expect(plan.bounds!.maxLoadLowerBound!).toBeLessThanOrEqual(plan.metrics!.maxLoad + 1e-9);
      for (const l of printed.perLayer) expect(l.maxLoadLowerBound).toBeLessThanOrEqual(l.maxLoad + 1e-9);
      expect(printed.perLayer.map((l) => l.engineLayer)).toEqual(TINY.moeLayerIds);
      // Each layer's mean load is total routed pairs / GPUs = 3000 * 2 / 4.
      expect(printed.meanLoad).toBeCloseTo(1500, 9);

      const ev = JSON.parse(ok(await runCli(['evaluate', '--plan', out, '--workload', p('trace.mpt'), '--json'])).stdout) as PlanJson;
      expectSameMetrics(ev, printed);
      expect(ev.mode).toBe('normal');
      // ... and so does the evaluator called directly on the plan file.
      const direct = evaluate({ model: plan.model, cluster: readPlanFile(out).cluster, placement, workload: await loadWorkload(p('trace.mpt'), model) });
      expectSameMetrics(ev, direct);
    });
  }

  it('contiguous puts expert p mod E in slot p', () => {
    const { plan } = readPlanFile(p('plan-contiguous.json'));
    for (const row of plan.phy2log) expect(row).toEqual(Array.from({ length: 12 }, (_, s) => s % 8));
  });

  it('gives the same optimize plan for 1 and 2 workers', async () => {
    await Promise.all([
      runCli(['plan', ...base(), '--workers', '1', '--seed', '9', '--out', p('w1.json')]).then(ok),
      runCli(['plan', ...base(), '--workers', '2', '--seed', '9', '--out', p('w2.json')]).then(ok),
    ]);
    const a = readPlanFile(p('w1.json')).plan;
    const b = readPlanFile(p('w2.json')).plan;
    expect(a.phy2log).toEqual(b.phy2log);
    expect(a.dispatch).toEqual(b.dispatch);
  });

  it('plans on counts-only workloads and says the traffic is estimated', async () => {
    const counts = [
      [900, 700, 500, 400, 300, 200, 100, 50],
      [50, 100, 200, 300, 400, 500, 700, 900],
    ];
    writeFileSync(p('counts.json'), JSON.stringify(counts));
    const r = ok(await runCli(['plan', '--model', p('model.json'), '--cluster', p('cluster.json'), '--workload', p('counts.json'), '--solver', 'eplb', '--out', p('counts-plan.json'), '--json']));
    const doc = JSON.parse(r.stdout) as PlanJson & { estimated: boolean };
    expect(doc.estimated).toBe(true);
    // Loads of counts are exact: each layer routes 3150 pairs over 4 GPUs.
    expect(doc.meanLoad).toBeCloseTo(3150 / 4, 9);
    const text = ok(await runCli(['evaluate', '--plan', p('counts-plan.json'), '--workload', p('counts.json')]));
    expect(text.stdout).toMatch(/counts only/);
  });

  it('prints a readable summary table', async () => {
    const r = ok(await runCli(['evaluate', '--plan', p('plan-eplb.json'), '--workload', p('trace.mpt'), '--mode', 'low-latency']));
    for (const s of ['inter-node bytes', 'intra-node bytes', 'max GPU load', 'balancedness', 'est. MoE time', 'lower bound', 'low-latency']) expect(r.stdout).toContain(s);
  });
});

describe('export', () => {
  it('writes every format; engine files evaluate like the plan they came from', async () => {
    // The eplb plan uses the default dispatch rule, which engine files imply, so metrics must agree.
    const planFile = p('plan-eplb.json');
    const { plan } = readPlanFile(planFile);
    const formats = ['sglang', 'eplb', 'trtllm', 'vllm-ascend'];
    await Promise.all(formats.map((f) => runCli(['export', '--plan', planFile, '--format', f, '--out', p(`out.${f}`)]).then(ok)));

    const sglang = JSON.parse(readFileSync(p('out.sglang'), 'utf8')) as { physical_to_logical_map: number[][] };
    expect(sglang.physical_to_logical_map).toHaveLength(3); // every engine layer
    expect(sglang.physical_to_logical_map[1]).toEqual(plan.phy2log[0]);
    expect(sglang.physical_to_logical_map[2]).toEqual(plan.phy2log[1]);
    const eplb = JSON.parse(readFileSync(p('out.eplb'), 'utf8')) as { phy2log: number[][]; logcnt: number[][] };
    expect(eplb.phy2log).toEqual(plan.phy2log);
    for (const row of eplb.logcnt) expect(row.reduce((a, b) => a + b, 0)).toBe(12);
    expect(readFileSync(p('out.trtllm'), 'utf8')).toMatch(/num_slots:\s*12/);
    const ascend = JSON.parse(readFileSync(p('out.vllm-ascend'), 'utf8')) as { layer_list: { device_list: { device_expert: number[] }[] }[] };
    expect(ascend.layer_list).toHaveLength(2);
    expect(ascend.layer_list[0].device_list.map((d) => d.device_expert)).toEqual([0, 1, 2, 3].map((g) => plan.phy2log[0].slice(3 * g, 3 * g + 3)));

    const evals = await Promise.all(
      formats.map((f) =>
        runCli(['evaluate', '--plan', p(`out.${f}`), '--workload', p('trace.mpt'), '--model', p('model.json'), '--cluster', p('cluster.json'), '--json']).then(ok),
      ),
    );
    for (const r of evals) expectSameMetrics(JSON.parse(r.stdout) as PlanJson, plan.metrics!);
  });

  it('traffic-csv adds up to the evaluated bytes and loads', async () => {
    const planFile = p('plan-optimize.json');
    ok(await runCli(['export', '--plan', planFile, '--format', 'traffic-csv', '--workload', p('trace.mpt'), '--out', p('traffic.csv')]));
    const ev = JSON.parse(ok(await runCli(['evaluate', '--plan', planFile, '--workload', p('trace.mpt'), '--json'])).stdout) as PlanJson;
    const lines = readFileSync(p('traffic.csv'), 'utf8').trim().split('\n');
    expect(lines[0]).toBe('kind,layer,engine_layer,src_gpu,dst_gpu,src_node,dst_node,bytes,load');
    let inter = 0;
    let intra = 0;
    const load = [0, 0];
    for (const line of lines.slice(1)) {
      const c = line.split(',');
      if (c[0] === 'traffic') {
        if (c[5] !== c[6]) inter += Number(c[7]);
        else intra += Number(c[7]);
      } else load[Number(c[1])] += Number(c[8]);
    }
    expect(inter).toBeCloseTo(ev.interNodeBytes, 3);
    expect(intra).toBeCloseTo(ev.intraNodeBytes, 3);
    expect(load).toEqual([6000, 6000]); // 3000 tokens x top-2 per layer
  });
});

describe.concurrent('bad input: exit 2, one line naming the flag or file, no output file', () => {
  const cases: { name: string; args: () => string[]; match: RegExp }[] = [
    { name: 'unknown model preset', args: () => ['plan', '--model', 'no-such-model', '--cluster', 'tiny-2x2', '--workload', p('trace.mpt'), '--out', p('bad.json')], match: /--model: .*no-such-model/ },
    { name: 'unknown cluster preset', args: () => ['plan', '--model', p('model.json'), '--cluster', 'h900-9x9', '--workload', p('trace.mpt'), '--out', p('bad.json')], match: /--cluster: .*h900-9x9/ },
    { name: 'bad flag value', args: () => ['plan', ...base(), '--nodes', 'x', '--out', p('bad.json')], match: /^moe-placer: --nodes: expected a positive integer, got "x"$/ },
    { name: 'bad enum value', args: () => ['plan', ...base(), '--objective', 'trafic', '--out', p('bad.json')], match: /--objective: .*did you mean traffic/ },
    { name: 'missing --out', args: () => ['plan', ...base()], match: /missing --out/ },
    { name: 'missing workload file', args: () => ['plan', '--model', p('model.json'), '--cluster', p('cluster.json'), '--workload', p('nope.mpt'), '--out', p('bad.json')], match: /nope\.mpt: no such file/ },
    { name: 'fewer slots than experts', args: () => ['plan', ...base(), '--slots-per-gpu', '1', '--out', p('bad.json')], match: /8 experts need at least 8 slots; 2x2 GPUs x 1 slot = 4; use --slots-per-gpu 2 or more/ },
    { name: 'unknown flag', args: () => ['plan', ...base(), '--node', '2', '--out', p('bad.json')], match: /unknown flag --node; did you mean --nodes\?/ },
    { name: 'unknown command', args: () => ['plna'], match: /unknown command "plna"; did you mean plan\?/ },
    { name: 'traffic-csv without workload', args: () => ['export', '--plan', p('plan-eplb.json'), '--format', 'traffic-csv', '--out', p('bad.json')], match: /--workload/ },
    { name: 'engine file without model', args: () => ['evaluate', '--plan', p('out.sglang'), '--workload', p('trace.mpt')], match: /out\.sglang: .*--model, --cluster/ },
    { name: 'workload of another model', args: () => ['plan', '--model', 'switch-base-128', '--cluster', 'tiny-2x2', '--slots-per-gpu', '32', '--workload', p('trace.mpt'), '--out', p('bad.json')], match: /trace\.mpt/ },
    { name: 'output folder missing', args: () => ['plan', ...base(), '--out', p('no/such/dir/plan.json')], match: /--out: folder .* does not exist/ },
  ];
  it.for(cases.map((c) => [c.name, c] as const))('%s', async ([, c], { expect }) => {
    const r = await runCli(c.args());
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^moe-placer: /);
    expect(lines[0]).toMatch(c.match);
    expect(lines[0]).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
    expect(existsSync(p('bad.json'))).toBe(false);
  });
});

describe('Ctrl-C during plan', () => {
  it('writes the best plan so far, marked interrupted, and exits 130', async () => {
    // Big enough that optimize takes many seconds: 24 layers x 128 experts. Two workers: the search
    // runs in the pool, so the main thread is free to take the signal.
    const big = { ...TINY, name: 'big', numHiddenLayers: 24, moeLayerIds: Array.from({ length: 24 }, (_, i) => i), experts: 128, topK: 8 };
    writeFileSync(p('big-model.json'), JSON.stringify(big));
    writeFileSync(p('big-cluster.json'), JSON.stringify({ name: 'big', nodes: 4, gpusPerNode: 4, slotsPerGpu: 9, gpu: 'H100' }));
    const bigModel = ModelSchema.parse(big);
    await writeTrace(p('big.mpt'), uniformTrace({ numLayers: 24, numExperts: 128, topK: 8 }, 2000, 1, { blocks: 32 }), bigModel);
    const out = p('interrupted.json');
    let sent = false;
    const r = await runCli(
      ['plan', '--model', p('big-model.json'), '--cluster', p('big-cluster.json'), '--workload', p('big.mpt'), '--workers', '2', '--out', out],
      {
        env: { MOE_PLACER_PROGRESS: '1' }, // progress lines on a non-terminal stderr tell when the search runs
        onStderr: (chunk, kill) => {
          if (!sent && /optimize: layer/.test(chunk)) {
            sent = true;
            kill('SIGINT');
          }
        },
      },
    );
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupt/);
    const { plan } = readPlanFile(out); // a complete, valid plan
    expect(plan.provenance?.interrupted).toBe(true);
    expect(plan.phy2log).toHaveLength(24);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });
});
