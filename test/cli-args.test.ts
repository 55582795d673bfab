/** The CLI's flag parser and text helpers, in process. */
import { describe, expect, it } from 'vitest';
import { bool, closest, editDistance, nonNegNumber, oneOf, parseFlags, posInt, str, type CommandSpec } from '../src/cli/args.js';
import { Progress } from '../src/cli/progress.js';
import { change, num, table } from '../src/cli/text.js';
import { formatBytes } from '../src/api.js';
import { InputError } from '../src/errors.js';

const spec: CommandSpec = {
  name: 'plan',
  summary: 'test',
  usage: 'plan',
  flags: {
    out: { kind: str('FILE'), help: 'output', required: true },
    nodes: { kind: posInt, help: 'nodes' },
    eps: { kind: nonNegNumber, help: 'slack' },
    mode: { kind: oneOf(['normal', 'low-latency']), help: 'mode' },
    json: { kind: bool, help: 'json' },
  },
};

function problems(argv: string[]): string[] {
  try {
    parseFlags(spec, argv);
  } catch (err) {
    if (err instanceof InputError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('editDistance / closest', () => {
  it('counts edits, a swap of neighbours as one', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('plna', 'plan')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
  });

  it('suggests only close names', () => {
    expect(closest('node', ['nodes', 'out'])).toBe('nodes');
    expect(closest('slots', ['slots-per-gpu', 'seed'])).toBe('slots-per-gpu'); // prefix
    expect(closest('zzzz', ['plan', 'demo'])).toBeUndefined();
  });
});

describe('parseFlags', () => {
  it('reads --name value, --name=value and booleans', () => {
    expect(parseFlags(spec, ['--out', 'a.json', '--nodes=4', '--eps', '0.5', '--json', '--mode', 'low-latency'])).toEqual({
      out: 'a.json',
      nodes: 4,
      eps: 0.5,
      json: true,
      mode: 'low-latency',
    });
    expect(parseFlags(spec, ['--json=false', '--out', 'x'])).toEqual({ json: false, out: 'x' });
    expect(parseFlags(spec, ['--help'])).toEqual({ help: true });
  });

  it('names the flag in every problem', () => {
    expect(problems(['--out', 'x', '--nodes', 'x'])).toEqual(['--nodes: expected a positive integer, got "x"']);
    expect(problems(['--out', 'x', '--nodes', '0'])).toEqual(['--nodes: expected a positive integer, got "0"']);
    expect(problems(['--out', 'x', '--nodes', '2.5'])).toEqual(['--nodes: expected a positive integer, got "2.5"']);
    expect(problems(['--out', 'x', '--eps', '-1'])).toEqual(['--eps: expected a non-negative number, got "-1"']);
    expect(problems(['--out', 'x', '--mode', 'decode'])).toEqual(['--mode: expected one of normal, low-latency, got "decode"']);
    expect(problems(['--out', 'x', '--mode', 'normall'])[0]).toMatch(/did you mean normal\?/);
    expect(problems(['--out'])).toEqual(['--out: missing value (expected FILE)']);
    expect(problems(['--out', '--json'])).toEqual(['--out: missing value (expected FILE)']);
    expect(problems(['--out', 'a', '--out', 'b'])).toEqual(['--out: given more than once']);
    expect(problems(['--nodes', '2'])).toEqual(['plan: missing --out FILE (output)']);
    expect(problems(['--out', 'x', '--node', '2'])[0]).toMatch(/^plan: unknown flag --node; did you mean --nodes\?/);
    expect(problems(['--out', 'x', 'stray'])[0]).toMatch(/^plan: unexpected argument "stray"/);
  });
});

describe('text helpers', () => {
  it('formats numbers, bytes and changes', () => {
    expect(num(1234567.891, 2)).toBe('1,234,567.89');
    expect(num(-1234)).toBe('-1,234');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(14_898_694_048)).toBe('14.9 GB');
    expect(formatBytes(2000)).toBe('2.00 kB');
    expect(change(10, 8)).toBe('-20.0%');
    expect(change(0, 0)).toBe('0.0%');
  });

  it('aligns tables', () => {
    expect(table([['a', 'bb'], ['ccc', '1']], ['l', 'r'])).toBe('a    bb\n---  --\nccc   1\n');
  });

  it('draws progress only when enabled', () => {
    const written: string[] = [];
    const stream = { isTTY: false, write: (s: string) => (written.push(s), true) };
    new Progress(stream, {}).update('stage', 0.5);
    expect(written).toEqual([]);
    new Progress(stream, { MOE_PLACER_PROGRESS: '1' }).update('stage', 0.5);
    expect(written).toEqual(['moe-placer: stage 50%\n']);
    const tty = { isTTY: true, columns: 80, write: (s: string) => (written.push(s), true) };
    written.length = 0;
    const p = new Progress(tty, {});
    p.update('solve', 0.25);
    p.clear();
    expect(written[0]).toContain('[######..................] 25% solve');
    expect(written[1]).toBe('\r\x1b[K');
  });
});
