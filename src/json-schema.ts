/**
 * JSON Schemas of the files moe-placer reads and writes, generated from the zod schemas (zod 4
 * `z.toJSONSchema`, draft 2020-12) into `schemas/*.schema.json`. Cross-field rules (ascending
 * layer ids, groups dividing experts, ...) are checked by zod only and do not appear here.
 *
 * Regenerate with `npm run build && node dist/src/json-schema.js [dir]` (default `schemas/`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ClusterSchema, GpuSchema, ModelSchema, PlanSchema } from './schemas.js';

const TARGETS: ReadonlyArray<{ file: string; schema: z.ZodType; title: string; description: string }> = [
  {
    file: 'plan.schema.json',
    schema: PlanSchema,
    title: 'moe-placer plan',
    description: 'A placement plan (format moe-placer.plan/1): phy2log [L][P], log2phy, logcnt, dispatch [L][NG][E], metrics, bounds, provenance.',
  },
  {
    file: 'model.schema.json',
    schema: ModelSchema,
    title: 'moe-placer model',
    description: 'A Mixture-of-Experts model: MoE layers, experts, top-k, groups, bytes and FLOPs per expert and token.',
  },
  {
    file: 'cluster.schema.json',
    schema: ClusterSchema,
    title: 'moe-placer cluster',
    description: 'A GPU cluster: nodes, GPUs per node, GPU preset name or spec, slots per GPU or an expert memory budget.',
  },
  {
    file: 'gpu.schema.json',
    schema: GpuSchema,
    title: 'moe-placer GPU',
    description: 'A GPU spec: memory, HBM bandwidth, dense FP8/BF16 FLOP/s, NVLink and RDMA bandwidth per direction.',
  },
];

/** File name -> JSON text (2-space indent, trailing newline) of every schema, in a fixed order. */
export function generateJsonSchemas(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of TARGETS) {
    // `input`: what a file may contain before defaults are applied (what the readers accept).
    const body = z.toJSONSchema(t.schema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
    const { $schema, ...rest } = body;
    const doc = { $schema, title: t.title, description: t.description, ...rest };
    out[t.file] = JSON.stringify(doc, null, 2) + '\n';
  }
  return out;
}

/** Write every schema into `dir` (created if missing); returns the paths written. */
export function writeJsonSchemas(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [file, text] of Object.entries(generateJsonSchemas())) {
    const path = join(dir, file);
    writeFileSync(path, text);
    written.push(path);
  }
  return written;
}

function isMain(): boolean {
  const arg = process.argv[1];
  return arg !== undefined && import.meta.url === pathToFileURL(resolve(arg)).href;
}

if (isMain()) {
  for (const p of writeJsonSchemas(process.argv[2] ?? 'schemas')) process.stdout.write(`${p}\n`);
}
