import { describe, expect, it } from 'vitest';
import { roundRobinPlacement } from '../src/solvers/round-robin.js';
import { InputError } from '../src/errors.js';
import { EXPORT_FORMATS, exportPlan, sglangLogicalCount, TRAFFIC_CSV_HEADER } from '../src/formats/export.js';
import { detectImportFormat, importPlacement } from '../src/formats/import.js';
import { parseTrtllmYaml } from '../src/formats/yaml.js';
import { buildPlanFile, stringifyPlan } from '../src/plan.js';
import { resolveModel } from '../src/presets.js';
import { Rng } from '../src/rng.js';
import { makeShape } from '../src/types.js';
import { tinyCluster, tinyFixture } from './plan-fixtures.js';

const f = tinyFixture();
const plan = buildPlanFile({ model: f.model, cluster: f.cluster, placement: f.placement, metrics: f.evaluation });
const ENGINE_FORMATS = ['sglang', 'eplb', 'trtllm', 'vllm-ascend'] as const;

describe('every engine export parses back to the same phy2log', () => {
  for (const fmt of ENGINE_FORMATS) {
    it(fmt, () => {
      const text = exportPlan(plan, fmt);
      expect(detectImportFormat(text)).toBe(fmt);
      for (const how of [fmt, 'auto'] as const) {
        const p = importPlacement(text, how, f.model, f.shape, `out.${fmt}`);
        expect(p.phy2log).toEqual(f.placement.phy2log);
        expect(p.dispatch).toBeNull();
      }
    });
  }
  it('plan files import too, with their dispatch table', () => {
    const p = importPlacement(stringifyPlan(plan), 'auto', f.model, f.shape, 'plan.json');
    expect(p.phy2log).toEqual(f.placement.phy2log);
    expect(p.dispatch!.length).toBe(2);
  });
  it('unknown content is refused', () => {
    expect(() => importPlacement('{"x": 1}', 'auto', f.model, f.shape, 'x.json')).toThrow(/x\.json: cannot tell the placement format/);
  });
});

describe('SGLang --init-expert-location', () => {
  const model = resolveModel('deepseek-v3');
  const shape = makeShape(1, 8, 36);
  const rng = new Rng(3);
  const loads = model.moeLayerIds.map(() => Float64Array.from({ length: 256 }, () => rng.gamma(0.7)));
  const placement = roundRobinPlacement(loads, 256, shape);
  const cluster = { ...tinyCluster(shape), expertMemoryBytes: 1e12 };
  const dsPlan = buildPlanFile({ model, cluster, placement });

  it('has one row per engine layer (61 for DeepSeek-V3), dense rows trivial', () => {
    const doc = JSON.parse(exportPlan(dsPlan, 'sglang'));
    expect(Object.keys(doc)).toEqual(['physical_to_logical_map']);
    const rows = doc.physical_to_logical_map as number[][];
    expect(rows.length).toBe(61);
    for (let id = 0; id < 3; id++) expect(rows[id]).toEqual(Array.from({ length: 288 }, (_, p) => p % 256));
    for (let l = 0; l < 58; l++) expect(rows[3 + l]).toEqual(Array.from(placement.phy2log[l]));
  });
  it('logical_count export: 61 rows, dense rows zero', () => {
    const doc = JSON.parse(sglangLogicalCount(loads, model));
    expect(doc.logical_count.length).toBe(61);
    expect(doc.logical_count[2].every((x: number) => x === 0)).toBe(true);
    expect(doc.logical_count[3 + 7]).toEqual(Array.from(loads[7]));
  });
  it('imports MoE-only maps and names bad entries', () => {
    const rows = placement.phy2log.map((r) => Array.from(r));
    expect(importPlacement(JSON.stringify({ physical_to_logical_map: rows }), 'sglang', model, shape, 's.json').phy2log).toEqual(placement.phy2log);
    rows[4][7] = 256;
    expect(() => importPlacement(JSON.stringify({ physical_to_logical_map: rows }), 'sglang', model, shape, 's.json')).toThrow(
      's.json: physical_to_logical_map[4][7]: 256 is not an expert id in 0..255',
    );
    expect(() => importPlacement(JSON.stringify({ physical_to_logical_map: rows.slice(1) }), 'sglang', model, shape, 's.json')).toThrow(/57 layers, expected 61/);
  });
});

describe('EPLB / vLLM tensors', () => {
  it('pads log2phy to P - E + 1 with -1 and matches logcnt', () => {
    const doc = JSON.parse(exportPlan(plan, 'eplb'));
    expect(Object.keys(doc)).toEqual(['phy2log', 'log2phy', 'logcnt']);
    for (let l = 0; l < 2; l++) {
      for (let e = 0; e < 8; e++) {
        const row = doc.log2phy[l][e] as number[];
        expect(row.length).toBe(12 - 8 + 1);
        const slots = row.filter((p) => p >= 0);
        expect(slots.length).toBe(doc.logcnt[l][e]);
        for (const p of slots) expect(doc.phy2log[l][p]).toBe(e);
        expect(row.slice(slots.length).every((p) => p === -1)).toBe(true);
      }
    }
  });
  it('refuses logcnt or log2phy that disagree with phy2log', () => {
    const doc = JSON.parse(exportPlan(plan, 'eplb'));
    doc.logcnt[1][5] += 1;
    expect(() => importPlacement(JSON.stringify(doc), 'eplb', f.model, f.shape, 'e.json')).toThrow(/e\.json: logcnt\[1\]\[5\]/);
    const doc2 = JSON.parse(exportPlan(plan, 'eplb'));
    const e = doc2.phy2log[0][0];
    doc2.log2phy[0][(e + 1) % 8][0] = 0;
    expect(() => importPlacement(JSON.stringify(doc2), 'eplb', f.model, f.shape, 'e.json')).toThrow(/log2phy\[0\]\[\d\]: slot 0 does not hold/);
  });
});

describe('TensorRT-LLM moe_load_balancer.yaml', () => {
  const text = exportPlan(plan, 'trtllm');
  it('keys the assignments by engine layer id, then num_slots', () => {
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('initial_global_assignments:');
    expect(lines[1]).toBe(`  1: [${plan.phy2log[0].join(', ')}]`);
    expect(lines[2]).toBe(`  2: [${plan.phy2log[1].join(', ')}]`);
    expect(lines.slice(3)).toEqual(['num_slots: 12', 'layer_updates_per_iter: 0']);
  });
  it('reads comments and lists spread over lines', () => {
    const row = plan.phy2log[1];
    const yaml = `# static placement\nnum_slots: 12   # P\ninitial_global_assignments:\n  2: [${row.slice(0, 6).join(', ')},\n      ${row.slice(6).join(', ')}]\n  1: [${plan.phy2log[0].join(',')}]\nlayer_updates_per_iter: 0\n`;
    const lb = parseTrtllmYaml(yaml, 'lb.yaml');
    expect(lb.assignments.map((a) => [a.layerId, a.line])).toEqual([[2, 4], [1, 6]]);
    expect(importPlacement(yaml, 'auto', f.model, f.shape, 'lb.yaml').phy2log).toEqual(f.placement.phy2log);
  });
  it('names the file, line and key of problems', () => {
    expect(() => importPlacement(text.replace('num_slots: 12', 'num_slots: 10'), 'trtllm', f.model, f.shape, 'lb.yaml')).toThrow(/lb\.yaml: num_slots: 10, but the cluster has 12 slots/);
    expect(() => importPlacement(text.replace('  1: [', '  0: ['), 'trtllm', f.model, f.shape, 'lb.yaml')).toThrow(
      /lb\.yaml:2: initial_global_assignments\.0: layer 0 is not a MoE layer/,
    );
    const missing = text.split('\n').filter((l) => !l.startsWith('  2:')).join('\n');
    expect(() => importPlacement(missing, 'trtllm', f.model, f.shape, 'lb.yaml')).toThrow(/initial_global_assignments\.2: missing MoE layer 2/);
    expect(() => importPlacement(text.replace(/ 1: \[\d+/, ' 1: [x'), 'trtllm', f.model, f.shape, 'lb.yaml')).toThrow(/lb\.yaml:2: initial_global_assignments\.1: expected an integer/);
    expect(() => parseTrtllmYaml('num_slots: 4\n', 'lb.yaml')).toThrow(/missing initial_global_assignments/);
  });
});

describe('vllm-ascend expert_map', () => {
  it('lists S experts per device per MoE layer', () => {
    const doc = JSON.parse(exportPlan(plan, 'vllm-ascend'));
    expect(doc.moe_layer_count).toBe(2);
    expect(doc.layer_list.map((x: { layer_id: number }) => x.layer_id)).toEqual([0, 1]);
    const l1 = doc.layer_list[1];
    expect(l1.device_count).toBe(4);
    expect(l1.device_list[2]).toEqual({ device_id: 2, device_expert: plan.phy2log[1].slice(6, 9) });
  });
  it('places devices by device_id and checks counts', () => {
    const doc = JSON.parse(exportPlan(plan, 'vllm-ascend'));
    doc.layer_list[0].device_list.reverse();
    expect(importPlacement(JSON.stringify(doc), 'vllm-ascend', f.model, f.shape, 'm.json').phy2log).toEqual(f.placement.phy2log);
    doc.layer_list[1].device_count = 8;
    expect(() => importPlacement(JSON.stringify(doc), 'vllm-ascend', f.model, f.shape, 'm.json')).toThrow(/m\.json: layer_list\[1\]\.device_count: 8, expected 4/);
  });
});

describe('traffic-csv', () => {
  it('has the documented header and rows that add up to the evaluation', () => {
    const csv = exportPlan(plan, 'traffic-csv', f.evaluation).trimEnd().split('\n');
    expect(csv[0]).toBe(TRAFFIC_CSV_HEADER);
    const rows = csv.slice(1).map((r) => r.split(','));
    expect(rows.every((r) => r.length === 9)).toBe(true);
    for (let l = 0; l < 2; l++) {
      const mine = rows.filter((r) => Number(r[1]) === l);
      expect(mine.every((r) => Number(r[2]) === f.model.moeLayerIds[l])).toBe(true);
      const traffic = mine.filter((r) => r[0] === 'traffic');
      expect(traffic.every((r) => r[3] !== r[4] && r[8] === '' && Number(r[7]) > 0)).toBe(true);
      const inter = traffic.filter((r) => r[5] !== r[6]).reduce((a, r) => a + Number(r[7]), 0);
      const intra = traffic.filter((r) => r[5] === r[6]).reduce((a, r) => a + Number(r[7]), 0);
      expect(inter).toBeCloseTo(f.evaluation.perLayer[l].interNodeBytes, 6);
      expect(intra).toBeCloseTo(f.evaluation.perLayer[l].intraNodeBytes, 6);
      const loads = mine.filter((r) => r[0] === 'load');
      expect(loads.map((r) => Number(r[3]))).toEqual([0, 1, 2, 3]);
      expect(loads.map((r) => Number(r[8]))).toEqual(Array.from(f.evaluation.loads[l]));
      expect(loads.map((r) => Number(r[5]))).toEqual([0, 0, 1, 1]);
    }
  });
  it('needs an evaluation with the traffic matrix', () => {
    expect(() => exportPlan(plan, 'traffic-csv')).toThrow(InputError);
    expect(() => exportPlan(plan, 'traffic-csv', { ...f.evaluation, trafficMatrix: undefined })).toThrow(/trafficMatrix/);
  });
});

describe('engine formats refuse empty slots', () => {
  it('names the slot', () => {
    const p = { ...f.placement, phy2log: f.placement.phy2log.map((r) => r.slice()) };
    // an empty slot on GPU 3 keeps every expert placed (its expert has another replica)
    const cnt = new Map<number, number>();
    for (const e of p.phy2log[1]) cnt.set(e, (cnt.get(e) ?? 0) + 1);
    const slot = Array.from(p.phy2log[1]).findIndex((e) => (cnt.get(e) ?? 0) > 1);
    p.phy2log[1][slot] = -1;
    const withHole = buildPlanFile({ model: f.model, cluster: f.cluster, placement: p });
    for (const fmt of EXPORT_FORMATS.filter((x): x is (typeof ENGINE_FORMATS)[number] => x !== 'traffic-csv')) {
      expect(() => exportPlan(withHole, fmt)).toThrow(`plan.phy2log[1][${slot}]: slot ${slot} of MoE layer 1 is empty`);
    }
  });
});
