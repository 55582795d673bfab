/**
 * Runs every benchmark in turn, each in its own process (so that peak memory and timings do not
 * mix): `npm run build && npm run bench [-- name ...]`.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ALL = ['evaluator-throughput', 'trace-load', 'generator-fidelity', 'balance', 'balance-speed', 'search', 'v3-scale', 'bounds', 'scale', 'replay', 'compare'];
const here = dirname(fileURLToPath(import.meta.url));
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ALL;
let failed = 0;
for (const name of names) {
  if (!ALL.includes(name)) {
    console.error(`unknown benchmark "${name}"; known: ${ALL.join(', ')}`);
    process.exit(2);
  }
  console.log(`\n=== bench/${name}`);
  const r = spawnSync(process.execPath, [join(here, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
