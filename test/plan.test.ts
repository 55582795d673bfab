import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { buildPlanFile, formatJson, jsonErrorOffset, parsePlan, placementFromJson, readPlanFile, stringifyPlan, writeFileAtomic, writePlanFile } from '../src/plan.js';
import { dispatchOf, log2phyOf } from '../src/placement.js';
import { PlanSchema } from '../src/schemas.js';
import { makeShape } from '../src/types.js';
import { tinyCluster, tinyFixture, tinyModel } from './plan-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'moe-placer-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const provenance = {
  tool: 'moe-placer',
  version: '0.0.0-test',
  solver: 'round-robin',
  objective: 'balance' as const,
  options: { zeta: 1, alpha: 'x' },
  seed: 7,
  inputDigests: { workload: 'abc', model: 'def' },
  wallTimeSeconds: 0.5,
};

function fullPlan() {
  const f = tinyFixture();
  const plan = buildPlanFile({ model: f.model, cluster: f.cluster, placement: f.placement, metrics: f.evaluation, bounds: { maxLoadLowerBound: f.evaluation.maxLoad * 0.8 }, provenance });
  return { f, plan };
}

describe('buildPlanFile', () => {
  it('fills every field from the placement and the evaluation, valid under PlanSchema', () => {
    const { f, plan } = fullPlan();
    expect(PlanSchema.safeParse(plan).success).toBe(true);
    expect(plan.format).toBe('moe-placer.plan/1');
    expect(plan.slotsPerGpu).toBe(3);
    expect(plan.phy2log).toEqual(f.placement.phy2log.map((r) => Array.from(r)));
    expect(plan.log2phy).toEqual(f.placement.phy2log.map((r) => log2phyOf(r, 8)));
    // logcnt: replicas per expert, summing to P.
    plan.logcnt!.forEach((row, l) => {
      expect(row.reduce((a, b) => a + b, 0)).toBe(12);
      row.forEach((c, e) => expect(c).toBe(plan.phy2log[l].filter((x) => x === e).length));
    });
    // Full dispatch [L][NG][E] = the default rule.
    expect(plan.dispatch!.length).toBe(2);
    expect(plan.dispatch![1].length).toBe(4);
    expect(plan.dispatch![1].flat()).toEqual(Array.from(dispatchOf(f.placement, 1)));
    expect(plan.metrics!.maxLoad).toBe(f.evaluation.maxLoad);
    expect(plan.metrics!.perLayer.map((m) => m.layer)).toEqual([0, 1]);
    expect(plan.metrics!.perLayer[1].interNodeBytes).toBe(f.evaluation.perLayer[1].interNodeBytes);
    // gap = (maxLoad - bound) / maxLoad
    expect(plan.bounds!.maxLoadGap).toBeCloseTo(0.2, 12);
    // records sorted for stable output
    expect(Object.keys(plan.provenance!.options)).toEqual(['alpha', 'zeta']);
    expect(Object.keys(plan.cluster.gpu.sources!)).toEqual(['memoryBytes', 'rdmaBandwidth']);
  });

  it('gives the same bytes whatever the key order of its inputs', () => {
    const f = tinyFixture();
    const a = stringifyPlan(buildPlanFile({ model: f.model, cluster: f.cluster, placement: f.placement, provenance }));
    const shuffled = Object.fromEntries(Object.entries(f.model).reverse()) as typeof f.model;
    const cluster = Object.fromEntries(Object.entries(f.cluster).reverse()) as typeof f.cluster;
    const prov = { ...Object.fromEntries(Object.entries(provenance).reverse()), options: { alpha: 'x', zeta: 1 } } as typeof provenance;
    const b = stringifyPlan(buildPlanFile({ model: shuffled, cluster, placement: f.placement, provenance: prov }));
    expect(b).toBe(a);
    expect(Object.keys(JSON.parse(a)).slice(0, 4)).toEqual(['format', 'model', 'cluster', 'slotsPerGpu']);
  });

  it('refuses a placement that does not fit the cluster or is invalid', () => {
    const f = tinyFixture();
    expect(() => buildPlanFile({ model: f.model, cluster: tinyCluster(makeShape(1, 4, 3)), placement: f.placement })).toThrow(/differs from cluster/);
    const bad = { ...f.placement, phy2log: f.placement.phy2log.map((r) => r.slice()) };
    bad.phy2log[1].fill(0);
    expect(() => buildPlanFile({ model: f.model, cluster: f.cluster, placement: bad })).toThrow(InputError);
  });
});

describe('formatJson', () => {
  it('puts arrays of numbers on one line and indents the rest', () => {
    expect(formatJson({ a: [[1, 2], [3]], b: { c: 'x', d: undefined }, e: [] }, '')).toBe('{\n  "a": [\n    [1,2],\n    [3]\n  ],\n  "b": {\n    "c": "x"\n  },\n  "e": []\n}');
  });
  it('refuses non-finite numbers', () => {
    expect(() => formatJson({ a: Infinity }, '')).toThrow(/non-finite/);
    expect(() => formatJson([1, NaN, 2], '')).toThrow(/non-finite/);
  });
  it('writes every number of a one-line array as JSON.stringify does', () => {
    const nums = [0, -0, 1, -7, 9, 10, 99, 100, 2147483647, -2147483647, -2147483648, 2147483648, 0.1, 1 / 3, 1e21, 1.5e-7, -2.5e300, 2 ** 53, 123456789.125];
    expect(formatJson(nums, '')).toBe(`[${nums.map((v) => JSON.stringify(v)).join(',')}]`);
    expect(formatJson([1, 'a', true, null], '')).toBe('[1,"a",true,null]');
    const ints = Array.from({ length: 4001 }, (_, i) => i - 2000);
    expect(formatJson(ints, '')).toBe(JSON.stringify(ints));
    // Long arrays with long number texts among the integers (the writer's room grows).
    const long = Array.from({ length: 20000 }, (_, i) => (i % 7 === 3 ? -1.2345678901234567e-300 * i : i % 1000));
    expect(formatJson({ a: [long, long] }, '')).toBe(`{\n  "a": [\n    ${JSON.stringify(long)},\n    ${JSON.stringify(long)}\n  ]\n}`);
  });
  it('writes strings and keys as UTF-8 JSON', () => {
    const v = { 'clé "x"': ['naïve ✓', 'tab\t', '\u0000'], n: { deep: [[]] } };
    expect(formatJson(v, '')).toBe(`{\n  ${JSON.stringify('clé "x"')}: [${['naïve ✓', 'tab\t', '\u0000'].map((x) => JSON.stringify(x)).join(',')}],\n  "n": {\n    "deep": [\n      []\n    ]\n  }\n}`);
    expect(JSON.parse(formatJson(v, ''))).toEqual(v);
  });
});

describe('parsePlan', () => {
  it('accepts what PlanSchema accepts, in its key order, with tables copied', () => {
    const { plan } = fullPlan();
    const shuffled = Object.fromEntries(Object.entries(plan).reverse());
    const p = parsePlan(shuffled);
    expect(p).toEqual(PlanSchema.parse(plan));
    expect(Object.keys(p)).toEqual(Object.keys(PlanSchema.parse(shuffled)));
    expect(p.dispatch).not.toBe(plan.dispatch);
    expect(p.dispatch![0][0]).not.toBe(plan.dispatch![0][0]);
  });
  it("names a bad table entry with PlanSchema's message", () => {
    const { plan } = fullPlan();
    const bad = (patch: (p: typeof plan) => void): string[] => {
      const p = structuredClone(plan);
      patch(p);
      const direct = PlanSchema.safeParse(p);
      expect(direct.success).toBe(false);
      try {
        parsePlan(p, { file: 'x.json' });
      } catch (err) {
        expect(err).toBeInstanceOf(InputError);
        return [...(err as InputError).problems];
      }
      throw new Error('parsePlan accepted a bad plan');
    };
    expect(bad((p) => (p.dispatch![1][2][0] = 1.5))).toEqual(['x.json: plan.dispatch[1][2][0]: Invalid input: expected int, received number']);
    expect(bad((p) => ((p.phy2log[0] as unknown[])[3] = '4'))).toEqual(['x.json: plan.phy2log[0][3]: Invalid input: expected number, received string']);
    expect(bad((p) => ((p as { logcnt: unknown }).logcnt = [1, 2])).length).toBe(2);
    expect(bad((p) => ((p as { format: string }).format = 'other')).join()).toMatch(/plan\.format/);
  });
});

describe('jsonErrorOffset', () => {
  it('finds the first syntax error, -1 for valid JSON', () => {
    expect(jsonErrorOffset('{"a": [1, 2], "b": {"c": null}}')).toBe(-1);
    expect(jsonErrorOffset('{"a": [1,\n}')).toBe(10);
    expect(jsonErrorOffset('{"a" 1}')).toBe(5);
    expect(jsonErrorOffset('[1, 2] x')).toBe(7);
    expect(jsonErrorOffset('"abc')).toBe(4);
    expect(jsonErrorOffset('[01]')).toBe(2);
  });
});

describe('plan file round trip', () => {
  it('build -> write -> read gives the same placement, and re-serialises byte for byte', () => {
    const { f, plan } = fullPlan();
    const path = join(dir, 'plan.json');
    writePlanFile(path, plan);
    const text = readFileSync(path, 'utf8');
    const back = readPlanFile(path);
    expect(back.placement.phy2log).toEqual(f.placement.phy2log);
    expect(back.placement.dispatch!.map((d) => Array.from(d))).toEqual([0, 1].map((l) => Array.from(dispatchOf(f.placement, l))));
    expect(back.model).toEqual(f.model);
    expect(back.cluster).toEqual(f.cluster);
    expect(back.plan).toEqual(plan);
    expect(stringifyPlan(back.plan)).toBe(text);
    writePlanFile(path, back.plan);
    expect(readFileSync(path, 'utf8')).toBe(text);
    // A plan as buildPlanFile returned it is written as it is: the same bytes.
    writePlanFile(path, plan, true);
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  it('leaves no temporary file behind, on success and on failure', () => {
    const sub = join(dir, 'atomic');
    mkdirSync(sub);
    const { plan } = fullPlan();
    writePlanFile(join(sub, 'p.json'), plan);
    expect(readdirSync(sub)).toEqual(['p.json']);
    // Renaming over a folder fails after the temp file was written: it must be removed.
    mkdirSync(join(sub, 'taken'));
    expect(() => writePlanFile(join(sub, 'taken'), plan)).toThrow(InputError);
    expect(readdirSync(sub).sort()).toEqual(['p.json', 'taken']);
    // Missing folder: nothing written at all.
    expect(() => writeFileAtomic(join(sub, 'nope', 'x.json'), 'x')).toThrow(/cannot write/);
    expect(readdirSync(sub).sort()).toEqual(['p.json', 'taken']);
  });

  it('reads a minimal plan when the model and cluster are given', () => {
    const f = tinyFixture();
    const path = join(dir, 'minimal.json');
    writeFileSync(path, JSON.stringify({ phy2log: f.placement.phy2log.map((r) => Array.from(r)) }));
    const back = readPlanFile(path, { model: f.model, cluster: f.cluster });
    expect(back.placement.phy2log).toEqual(f.placement.phy2log);
    expect(back.placement.dispatch).toBeNull();
    expect(back.plan.dispatch!.length).toBe(2);
    expect(() => readPlanFile(path)).toThrow(/needs the model and the cluster/);
    // placementFromJson directly, with a dispatch table
    const d = [0, 1].map((l) => {
      const t = dispatchOf(f.placement, l);
      return Array.from({ length: 4 }, (_, g) => Array.from(t.subarray(g * 8, g * 8 + 8)));
    });
    const p = placementFromJson({ phy2log: f.placement.phy2log.map((r) => Array.from(r)), dispatch: d }, f.model, f.shape, 'x.json');
    expect(Array.from(p.dispatch![1])).toEqual(Array.from(dispatchOf(f.placement, 1)));
  });
});

describe('readPlanFile errors name the file and the field', () => {
  const { f, plan } = fullPlan();
  const write = (name: string, doc: unknown): string => {
    const path = join(dir, name);
    writeFileSync(path, typeof doc === 'string' ? doc : JSON.stringify(doc));
    return path;
  };
  const clone = () => JSON.parse(JSON.stringify(plan));

  it('bad expert id', () => {
    const doc = clone();
    doc.phy2log[1][3] = 99;
    const path = write('bad-id.json', doc);
    expect(() => readPlanFile(path)).toThrow(`${path}: plan.phy2log[1][3]: 99 is not an integer in -1..7`);
  });
  it('wrong format literal (schema)', () => {
    const doc = clone();
    doc.format = 'moe-placer.plan/9';
    const path = write('bad-format.json', doc);
    expect(() => readPlanFile(path)).toThrow(/bad-format\.json: plan\.format: /);
  });
  it('logcnt disagreeing with phy2log', () => {
    const doc = clone();
    doc.logcnt[0][2] += 1;
    const path = write('bad-logcnt.json', doc);
    expect(() => readPlanFile(path)).toThrow(/plan\.logcnt\[0\]\[2\]/);
  });
  it('dispatch pointing at a slot of another expert', () => {
    const doc = clone();
    const e0slot = doc.dispatch[0][0][0];
    doc.dispatch[0][0][1] = e0slot;
    const path = write('bad-dispatch.json', doc);
    expect(() => readPlanFile(path)).toThrow(/bad-dispatch\.json: plan\.dispatch\[0\]\[0\]\[1\]/);
  });
  it('invalid JSON names the line', () => {
    const path = write('broken.json', '{\n  "format": "moe-placer.plan/1",\n  "phy2log" [1]\n}');
    expect(() => readPlanFile(path)).toThrow(/broken\.json:3: invalid JSON/);
  });
  it('a given cluster of another shape', () => {
    const path = write('ok.json', plan);
    expect(() => readPlanFile(path, { cluster: tinyCluster(makeShape(1, 4, 3)) })).toThrow(/differs from the given cluster/);
    expect(readPlanFile(path, { model: tinyModel() }).placement.phy2log).toEqual(f.placement.phy2log);
  });
  it('not a plan at all', () => {
    const path = write('other.json', { hello: 1 });
    expect(() => readPlanFile(path)).toThrow(/not a plan/);
  });
});
