/**
 * A small flag parser for the CLI (no dependency): `--name value`, `--name=value` and boolean
 * `--name`. Every value is checked against its kind; problems are InputErrors naming the flag
 * (`--nodes: expected a positive integer, got "x"`), unknown flags and commands come with the
 * closest known name.
 */
import { InputError } from '../errors.js';

export type FlagKind =
  | { type: 'string'; metavar: string }
  | { type: 'int'; min: number; max?: number; what: string }
  | { type: 'number'; min: number; exclusiveMin?: boolean; what: string }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'bool' };

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  required?: boolean;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** One-line synopsis after `moe-placer`. */
  usage: string;
  flags: Record<string, FlagSpec>;
  /** Extra lines for `help <command>`. */
  details?: string[];
}

export type FlagValue = string | number | boolean;
export type ParsedFlags = Record<string, FlagValue | undefined>;

// Shared flag kinds.
export const str = (metavar: string): FlagKind => ({ type: 'string', metavar });
export const posInt: FlagKind = { type: 'int', min: 1, what: 'a positive integer' };
export const nonNegInt: FlagKind = { type: 'int', min: 0, max: 0xffffffff, what: 'an integer in 0..4294967295' };
export const posNumber: FlagKind = { type: 'number', min: 0, exclusiveMin: true, what: 'a positive number' };
export const nonNegNumber: FlagKind = { type: 'number', min: 0, what: 'a non-negative number' };
export const bool: FlagKind = { type: 'bool' };
export const oneOf = (values: readonly string[]): FlagKind => ({ type: 'enum', values });

/** Edit distance of two short strings (insert, delete, substitute, swap two neighbours: 1 each). */
export function editDistance(a: string, b: string): number {
  const n = b.length;
  let prev2 = new Array<number>(n + 1).fill(0);
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = new Array<number>(n + 1);
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) cur[j] = Math.min(cur[j], prev2[j - 2] + 1);
    }
    prev2 = prev;
    prev = cur;
  }
  return prev[n];
}

/** The known name closest to `name`, when it is close enough to be a likely typo (or a prefix). */
export function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.startsWith(name) && name.length >= 2 ? 0.5 : editDistance(name, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.min(2, Math.floor(name.length / 3))) ? best : undefined;
}

export function metavarOf(kind: FlagKind): string {
  switch (kind.type) {
    case 'string':
      return kind.metavar;
    case 'int':
      return 'N';
    case 'number':
      return 'X';
    case 'enum':
      return kind.values.join('|');
    case 'bool':
      return '';
  }
}

function convert(flag: string, kind: FlagKind, raw: string): FlagValue {
  const bad = (what: string): never => {
    throw new InputError(`--${flag}: expected ${what}, got ${JSON.stringify(raw)}`);
  };
  switch (kind.type) {
    case 'string':
      // One-letter metavars (M, C, W) make no word: `--model: expected a m` would be gibberish.
      if (raw === '') bad(kind.metavar.length > 1 ? `a ${kind.metavar.toLowerCase()}` : 'a non-empty value');
      return raw;
    case 'int': {
      if (!/^[+-]?\d+$/.test(raw.trim())) bad(kind.what);
      const v = Number(raw);
      if (!Number.isSafeInteger(v) || v < kind.min || (kind.max !== undefined && v > kind.max)) bad(kind.what);
      return v;
    }
    case 'number': {
      const v = raw.trim() === '' ? NaN : Number(raw);
      if (!Number.isFinite(v) || v < kind.min || (kind.exclusiveMin === true && v === kind.min)) bad(kind.what);
      return v;
    }
    case 'enum':
      if (!kind.values.includes(raw)) {
        const near = closest(raw, kind.values);
        throw new InputError(`--${flag}: expected one of ${kind.values.join(', ')}, got ${JSON.stringify(raw)}${near ? ` (did you mean ${near}?)` : ''}`);
      }
      return raw;
    case 'bool':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      return bad('true or false');
  }
}

/**
 * Parse `argv` (the words after the command) against `spec`. `--help` / `-h` yields `{ help: true }`.
 * Throws InputError for unknown flags, missing or bad values, repeated flags, stray arguments and
 * missing required flags.
 */
export function parseFlags(spec: CommandSpec, argv: readonly string[]): ParsedFlags {
  const out: ParsedFlags = {};
  const known = Object.keys(spec.flags);
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--help' || word === '-h') return { help: true };
    if (!word.startsWith('--') || word === '--') {
      throw new InputError(`${spec.name}: unexpected argument ${JSON.stringify(word)}; flags look like --name value (see moe-placer help ${spec.name})`);
    }
    const eq = word.indexOf('=');
    const name = eq >= 0 ? word.slice(2, eq) : word.slice(2);
    const flag = spec.flags[name];
    if (!flag) {
      const near = closest(name, known);
      throw new InputError(`${spec.name}: unknown flag --${name}${near ? `; did you mean --${near}?` : ''} (see moe-placer help ${spec.name})`);
    }
    if (out[name] !== undefined) throw new InputError(`--${name}: given more than once`);
    let raw: string;
    if (eq >= 0) raw = word.slice(eq + 1);
    else if (flag.kind.type === 'bool') {
      out[name] = true;
      continue;
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new InputError(`--${name}: missing value (expected ${metavarOf(flag.kind) || 'a value'})`);
      }
      raw = next;
      i++;
    }
    out[name] = convert(name, flag.kind, raw);
  }
  const missing = known.filter((k) => spec.flags[k].required && out[k] === undefined);
  if (missing.length > 0) {
    throw new InputError(
      missing.map((k) => `${spec.name}: missing --${k} ${metavarOf(spec.flags[k].kind)} (${spec.flags[k].help})`.replace(/ +\(/, ' (')),
    );
  }
  return out;
}

/** Help text of one command. */
export function commandHelp(spec: CommandSpec): string {
  const lines = [`moe-placer ${spec.name}: ${spec.summary}`, '', `usage: moe-placer ${spec.usage}`, ''];
  const rows = Object.entries(spec.flags).map(([name, f]) => {
    const mv = metavarOf(f.kind);
    return [`--${name}${mv ? ` ${mv}` : ''}`, f.help + (f.required ? ' (required)' : '')];
  });
  const width = Math.min(34, Math.max(...rows.map((r) => r[0].length)));
  for (const [left, right] of rows) {
    lines.push(left.length > width ? `  ${left}\n  ${' '.repeat(width)}  ${right}` : `  ${left.padEnd(width)}  ${right}`);
  }
  lines.push(`  ${'--help'.padEnd(width)}  this help`);
  if (spec.details) lines.push('', ...spec.details);
  return lines.join('\n') + '\n';
}
