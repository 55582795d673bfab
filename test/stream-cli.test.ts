/**
 * The streamed path of `plan` and `evaluate` (traces too large to load) gives the same plan and
 * the same metrics as the in-memory path when the trace fits the index exactly. The threshold is
 * lowered with MOE_PLACER_STREAM_BYTES so that a small trace takes the streamed path.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from './cli-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'moe-stream-cli-'));
const trace = join(dir, 'trace.mpt');
const common = ['--model', 'deepseek-v2-lite', '--cluster', 'h800-4x8', '--nodes', '2', '--gpus-per-node', '2', '--slots-per-gpu', '20', '--seed', '3'];

/** The plan without run-specific provenance (wall times, creation time). */
function planCore(path: string): unknown {
  const p = JSON.parse(readFileSync(path, 'utf8'));
  delete p.provenance;
  return p;
}

describe('streamed plan and evaluate', () => {
  beforeAll(async () => {
    ensureBuilt();
    const g = await runCli(['generate', '--model', 'deepseek-v2-lite', '--tokens', '3000', '--seed', '5', '--out', trace]);
    expect(g.code, g.stderr).toBe(0);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('plans and evaluates the same whether the trace is loaded or streamed', async () => {
    const loaded = await runCli(['plan', ...common, '--workload', trace, '--workers', '1', '--out', join(dir, 'a.json'), '--json']);
    const streamed = await runCli(['plan', ...common, '--workload', trace, '--workers', '1', '--out', join(dir, 'b.json'), '--json'], {
      env: { MOE_PLACER_STREAM_BYTES: '1' },
    });
    expect(loaded.code, loaded.stderr).toBe(0);
    expect(streamed.code, streamed.stderr).toBe(0);
    expect(planCore(join(dir, 'b.json'))).toEqual(planCore(join(dir, 'a.json')));
    const e1 = JSON.parse((await runCli(['evaluate', '--plan', join(dir, 'a.json'), '--workload', trace, '--json'])).stdout);
    const e2 = JSON.parse((await runCli(['evaluate', '--plan', join(dir, 'a.json'), '--workload', trace, '--json'], { env: { MOE_PLACER_STREAM_BYTES: '1' } })).stdout);
    for (const key of ['interNodeBytes', 'intraNodeBytes', 'maxLoad', 'balancedness', 'maxLoadLowerBound']) {
      expect(e2[key]).toBeCloseTo(e1[key], 6);
    }
  }, 180_000);
});
