/**
 * Tool version and content digests recorded in plan provenance.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Workload } from '../types.js';


export const TOOL_NAME = 'moe-placer';

let cachedVersion: string | undefined;

/** The tool version from package.json (the nearest one named moe-placer above this module). */
export function toolVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === TOOL_NAME && typeof pkg.version === 'string') return (cachedVersion = pkg.version);
      } catch {
        // not ours; keep looking
      }
    }
    dir = dirname(dir);
  }
  return (cachedVersion = '0.0.0-unknown');
}


/** JSON text with object keys sorted at every level (the canonical form hashed for digests). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) return v;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as Record<string, unknown>).sort()) out[k] = (v as Record<string, unknown>)[k];
    return out;
  });
}

/** sha256 (hex) of the canonical JSON of `value`. */
export function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/**
 * sha256 (hex) of a workload: `meta.digest` (the bytes read) when the reader recorded one, else
 * a hash of the arrays themselves (generated or filtered workloads).
 */
export function workloadDigest(workload: Workload): string {
  if (workload.meta.digest) return workload.meta.digest;
  const h = createHash('sha256');
  const view = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (workload.kind === 'trace') {
    const t = workload.trace;
    h.update(JSON.stringify([t.numLayers, t.numExperts, t.topK, t.numTokens, t.numRequests]));
    h.update(view(t.request));
    h.update(view(t.rank));
    if (t.weight) h.update(view(t.weight));
    for (const ex of t.experts) h.update(view(ex));
  } else {
    const c = workload.counts;
    h.update(JSON.stringify([c.numLayers, c.numExperts]));
    for (const row of c.counts) h.update(view(row));
  }
  return h.digest('hex');
}
