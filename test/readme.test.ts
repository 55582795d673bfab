import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatValue, loadResults, markedRegions, renderBlock, renderReadme, VIEWS, type Results } from '../bench/readme.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results');

describe.skipIf(!existsSync(RESULTS))('README.md results blocks', () => {
  it('every marked region is what `npm run readme` writes from bench/results', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const results = loadResults(RESULTS);
    const have = markedRegions(readme);
    const want = markedRegions(renderReadme(readme, results));
    expect([...have.keys()]).toEqual([...want.keys()]);
    // One assertion per block, so a failure names the stale result (fix: npm run build && npm run readme).
    for (const [name, text] of want) expect(have.get(name), `README block results:${name}`).toBe(text);
  });

  it('every configured view has its marker in README.md', () => {
    const names = [...markedRegions(readFileSync(join(ROOT, 'README.md'), 'utf8')).keys()];
    for (const name of Object.keys(VIEWS)) expect(names).toContain(name);
  });
});

describe('renderer', () => {
  const traffic = (rows: Record<string, unknown>[], extra: Record<string, unknown> = {}): Results => ({
    search: { bench: 'search', date: '2026-12-01T10:00:00.000Z', fitTokens: 10, heldTokens: 12, workers: 2, rows, ...extra },
  });

  it('shows configured columns only, "-" for a cell a row lacks, and drops a column no row has', () => {
    const block = renderBlock(
      'search',
      traffic([
        { shape: '4x2x10', mode: 'normal', method: 'eplb', 'inter-node GB': 21.17, 'vs eplb %': 0, balancedness: 0.918, 'bal - eplb': 0, 'wall s': 0.04, 'brand new column': 7 },
        { shape: '4x2x10', mode: 'normal', method: 'metis', 'inter-node GB': 17, 'vs eplb %': -19.7, balancedness: 0.919, 'bal - eplb': 0.001, 'wall s': 3.2, 'gap to bound %': 12.34 },
      ]),
    );
    expect(block).toContain('`bench/results/search.json`');
    expect(block).toContain('dated 2026-12-01');
    expect(block).toContain('Split: held-out: fitted on the even-numbered requests');
    expect(block).toContain('Times: 1 run each.');
    expect(block).not.toContain('brand new column');
    expect(block).toContain('| gap to bound |');
    expect(block).toContain('| 4x2x10 | normal | eplb | 21.17 | 0.0% | 0.918 | 0.000 | - | 0.04 |');
    expect(block).toContain('| 4x2x10 | normal | metis | 17.00 | -19.7% | 0.919 | +0.001 | 12.3% | 3.20 |');
    expect(block).not.toContain('intra-node'); // not configured
    const noGap = renderBlock('search', traffic([{ shape: '2x4x10', method: 'ours', 'wall s': 1 }]));
    expect(noGap).not.toContain('gap to bound');
    expect(noGap).not.toContain('| mode |');
  });

  it('takes the split from the JSON when it has one', () => {
    expect(renderBlock('search', traffic([{ shape: 'a', method: 'b' }], { split: 'in-sample: test' }))).toContain('Split: in-sample: test.');
  });

  it('merges repeated runs into their median and says so', () => {
    const runs = [3, 1, 2].map((w) => ({ shape: '4x2x10', mode: 'normal', method: 'ours', 'wall s': w, 'vs eplb %': -10 }));
    const block = renderBlock('search', traffic([...runs, { shape: '4x2x10', mode: 'normal', method: 'eplb', 'wall s': 0.5, 'vs eplb %': 0 }]));
    expect(block).toContain('| 4x2x10 | normal | ours | -10.0% | 2.00 | median of 3 |');
    expect(block).toContain('| 4x2x10 | normal | eplb | 0.0% | 0.50 | 1 run |');
    const same = renderBlock('search', traffic(runs));
    expect(same).toContain('Times: median of 3 runs.');
  });

  it('names a missing result and a missing date plainly', () => {
    expect(renderBlock('search', {})).toContain('`bench/results/search.json` is absent');
    expect(renderBlock('search', { search: { rows: [{ shape: 'x', method: 'y' }] } })).toContain('no date recorded in the file');
  });

  it('rewrites only the marked regions and rejects broken markers', () => {
    const text = 'intro 1.8 s\n<!-- results:search -->\nold 8.7 s\n<!-- /results:search -->\ntail\n';
    const out = renderReadme(text, traffic([{ shape: '8x1x10', mode: 'low-latency', method: 'eplb', 'wall s': 0.02 }]));
    expect(out.startsWith('intro 1.8 s\n<!-- results:search -->\n_Source:')).toBe(true);
    expect(out.endsWith('\n<!-- /results:search -->\ntail\n')).toBe(true);
    expect(out).not.toContain('old 8.7 s');
    expect(renderReadme(out, traffic([{ shape: '8x1x10', mode: 'low-latency', method: 'eplb', 'wall s': 0.02 }]))).toBe(out);
    expect(() => renderReadme('<!-- results:search -->\n', {})).toThrow(/markers/);
    expect(() => renderReadme('<!-- results:nosuch -->\n<!-- /results:nosuch -->', {})).toThrow(/nosuch/);
  });

  it('formats numbers by spec', () => {
    expect(formatValue(-0.00001, '+1%')).toBe('0.0%');
    expect(formatValue(4.81, '+1%')).toBe('+4.8%');
    expect(formatValue(0.0763, '1%*100')).toBe('7.6%');
    expect(formatValue(4680001026, '2/1e9')).toBe('4.68');
    expect(formatValue(6.09e-5, '2e')).toBe('6.09e-5');
    expect(formatValue(1.0007, '3x')).toBe('1.001x');
    expect(formatValue(undefined, '2')).toBe('-');
    expect(formatValue(true)).toBe('yes');
  });
});
