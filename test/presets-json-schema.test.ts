import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateJsonSchemas } from '../src/json-schema.js';

describe('shipped JSON Schemas', () => {
  const fresh = generateJsonSchemas();

  it('equal a fresh generation from the zod schemas (run `node dist/src/json-schema.js` after changing them)', () => {
    const shipped = readdirSync('schemas').filter((f) => f.endsWith('.schema.json')).sort();
    expect(shipped).toEqual(Object.keys(fresh).sort());
    for (const [file, text] of Object.entries(fresh)) expect(readFileSync(`schemas/${file}`, 'utf8'), file).toBe(text);
  });

  it('describe the input files: required fields without defaults, draft 2020-12', () => {
    const model = JSON.parse(fresh['model.schema.json']) as { $schema: string; required: string[]; properties: Record<string, unknown> };
    expect(model.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(model.required).toEqual(expect.arrayContaining(['name', 'moeLayerIds', 'experts', 'topK', 'expertBytes']));
    // Fields with a zod default may be left out of a model file.
    expect(model.required).not.toContain('sharedExperts');
    expect(model.required).not.toContain('groups');
    const plan = JSON.parse(fresh['plan.schema.json']) as { properties: { format: { const?: string } }; required: string[] };
    expect(plan.properties.format.const).toBe('moe-placer.plan/1');
    expect(plan.required).toEqual(expect.arrayContaining(['format', 'model', 'cluster', 'slotsPerGpu', 'phy2log']));
    // Optional per-layer bounds (added to format moe-placer.plan/1 without breaking older files).
    const bounds = (JSON.parse(fresh['plan.schema.json']) as { properties: { bounds: { properties: Record<string, { type?: string }>; required?: string[] } } }).properties.bounds;
    expect(bounds.properties.perLayer.type).toBe('array');
    expect(bounds.required ?? []).toEqual([]);
    const cluster = JSON.parse(fresh['cluster.schema.json']) as { properties: { gpu: { anyOf: unknown[] } } };
    expect(cluster.properties.gpu.anyOf).toHaveLength(2);
  });
});
