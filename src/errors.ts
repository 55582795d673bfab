/**
 * Typed errors. `InputError` (exit code 2) always names where the bad input is: a file, a line
 * and/or a field path. `SolverError` (exit code 1) is a failure of the search itself.
 */

export interface InputLocation {
  /** File (or folder) the problem was found in. */
  file?: string;
  /** 1-based line number inside `file`. */
  line?: number;
  /** Field path, e.g. `model.topK` or `layers[3].experts[2]`. */
  field?: string;
}

export class MoePlacerError extends Error {
  override name = 'MoePlacerError';
  readonly exitCode: number = 1;
}

/** Bad input: a file, flag or field that does not fit. One line per problem in `problems`. */
export class InputError extends MoePlacerError {
  override name = 'InputError';
  override readonly exitCode = 2;
  readonly problems: readonly string[];
  constructor(message: string | readonly string[], readonly location: InputLocation = {}) {
    const list = typeof message === 'string' ? [message] : message;
    const where = formatLocation(location);
    const problems = list.map((m) => (where ? `${where}: ${m}` : m));
    super(problems.join('\n'));
    this.problems = problems;
  }
}

/** The request cannot be met (e.g. fewer slots than experts); the message says what would fit. */
export class InfeasibleError extends InputError {
  override name = 'InfeasibleError';
}

/** The solver failed (a worker died, an LP reported an unexpected status, ...). Exit code 1. */
export class SolverError extends MoePlacerError {
  override name = 'SolverError';
  constructor(message: string, readonly context: Record<string, unknown> = {}) {
    super(message);
  }
}

export function formatLocation(loc: InputLocation): string {
  const parts: string[] = [];
  if (loc.file !== undefined) parts.push(loc.line !== undefined ? `${loc.file}:${loc.line}` : loc.file);
  else if (loc.line !== undefined) parts.push(`line ${loc.line}`);
  if (loc.field !== undefined && loc.field !== '') parts.push(loc.field);
  return parts.join(': ');
}
