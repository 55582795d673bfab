/**
 * Bench: how long the CLI takes to write a balance plan for the real DeepSeek-V3 SGLang counts
 * (58 MoE layers x 256 experts), beyond its start-up: EP32 (h800-4x8, 288 slots) and EP144
 * (h800-18x8, 2 slots per GPU), default workers. Each round runs `moe-placer presets` (the start-up:
 * node, the CLI's modules, a table), then the two plans, in fresh processes; the figures are the
 * medians over the rounds, and beyond start-up = median plan - median presets. Also the plan's own
 * wall time (provenance.wallTimeSeconds: solve, evaluate, bounds; not reading the counts nor
 * writing the file). Target: under 0.5 s beyond start-up (issue 11).
 *
 *     npm run build && node dist/bench/balance-speed.js [--runs 5]
 *
 * Prints a table and writes bench/results/balance-speed.json; the plans go to bench/results/tmp/
 * and are removed after. Needs ../shared/data (skips without it).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { dataPath, flag, median, printTable, ROOT, SPLITS, writeResult } from './common.js';

const WORKLOAD = 'deepseek-v3-sglang/prefill_in4096.json';
const TARGET_SECONDS = 0.5;
const workload = dataPath(...WORKLOAD.split('/'));
if (!workload) {
  console.log(`bench/balance-speed: ${WORKLOAD} not found under ../shared/data; skipped`);
  process.exit(0);
}
const runs = Number(flag('runs', '5'));
const TMP = join(ROOT, 'bench', 'results', 'tmp');
mkdirSync(TMP, { recursive: true });
const BIN = join(ROOT, 'bin', 'moe-placer.js');

/** Wall seconds of one CLI run in a fresh process (exit code 0 required). */
function timeCli(args: string[]): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  const s = (performance.now() - t) / 1000;
  if (r.status !== 0) throw new Error(`moe-placer ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return s;
}

const scenarios = [
  { scenario: 'EP32', cluster: 'h800-4x8' },
  { scenario: 'EP144', cluster: 'h800-18x8' },
];
const loadBefore = os.loadavg()[0];
const presets: number[] = [];
const plans = scenarios.map(() => ({ cli: [] as number[], wall: [] as number[] }));
for (let round = 0; round < runs; round++) {
  presets.push(timeCli(['presets']));
  scenarios.forEach((sc, i) => {
    const out = join(TMP, `balance-speed-${sc.scenario}.json`);
    plans[i].cli.push(timeCli(['plan', '--model', 'deepseek-v3', '--cluster', sc.cluster, '--workload', workload, '--objective', 'balance', '--out', out]));
    plans[i].wall.push(JSON.parse(readFileSync(out, 'utf8')).provenance.wallTimeSeconds);
  });
}
const loadAfter = os.loadavg()[0];
rmSync(TMP, { recursive: true, force: true });

const startup = median(presets);
const rows = scenarios.map((sc, i) => {
  const plan = median(plans[i].cli);
  const beyond = plan - startup;
  return {
    scenario: sc.scenario,
    cluster: sc.cluster,
    'presets s': startup,
    'plan s': plan,
    'beyond start-up s': beyond,
    'plan() wall s': median(plans[i].wall),
    'target met': beyond < TARGET_SECONDS ? 'yes' : 'no',
  };
});
printTable(`DeepSeek-V3 counts (${WORKLOAD}), objective balance: CLI seconds, median of ${runs} (load average ${loadBefore.toFixed(1)} -> ${loadAfter.toFixed(1)} on ${os.cpus().length} CPUs)`, rows);
const path = writeResult('balance-speed', {
  split: SPLITS.none,
  workload: WORKLOAD,
  runs,
  cpus: os.cpus().length,
  loadAverage: [loadBefore, loadAfter],
  targetSeconds: TARGET_SECONDS,
  rows,
  samples: { presets, plans: scenarios.map((sc, i) => ({ scenario: sc.scenario, cli: plans[i].cli, wall: plans[i].wall })) },
});
console.log(`\nwrote ${path}`);
