/**
 * The solvers by name, as the CLI's `--solver NAME` and the library's `plan()` look them up.
 */
import { InputError } from '../errors.js';
import { contiguousSolver } from './contiguous.js';
import { eplbSolver } from './eplb.js';
import { optimizeSolver } from './optimize.js';
import { roundRobinSolver } from './round-robin.js';
import type { Solver } from './types.js';

/**
 * Every registered solver: `optimize` (the default) and the baselines `contiguous` (the engines'
 * default), `round-robin`, `eplb` (DeepSeek EPLB).
 */
export const SOLVERS: Record<string, Solver> = {
  [optimizeSolver.name]: optimizeSolver,
  [contiguousSolver.name]: contiguousSolver,
  [roundRobinSolver.name]: roundRobinSolver,
  [eplbSolver.name]: eplbSolver,
};

/** The solver called `name`; an unknown name is an InputError listing the known ones. */
export function getSolver(name: string): Solver {
  const s = Object.prototype.hasOwnProperty.call(SOLVERS, name) ? SOLVERS[name] : undefined;
  if (!s) throw new InputError(`unknown solver "${name}"; known: ${Object.keys(SOLVERS).join(', ')}`, { field: 'solver' });
  return s;
}
