/**
 * piscina worker entry: solves one layer. Runs from compiled JS (dist/solvers/worker.js); result
 * arrays of the task arrive transferred; the (small) result is cloned back.
 *
 * Fault injection for tests: MOE_PLACER_FAULT=`throw:L`, `exit:L` (first attempt at layer L only)
 * or `throw-always:L` makes the worker fail on layer L, as a crashing or dying worker would.
 */
import { solveLayer, type LayerResult, type LayerTask } from '../search/layer.js';

export default async function run(task: LayerTask & { attempt?: number }): Promise<LayerResult> {
  const fault = process.env.MOE_PLACER_FAULT;
  if (fault) {
    const [kind, layer] = fault.split(':');
    if (Number(layer) === task.layer) {
      if (kind === 'throw-always' || (kind === 'throw' && !task.attempt)) throw new Error(`injected fault on layer ${task.layer}`);
      if (kind === 'exit' && !task.attempt) process.exit(3);
    }
  }
  return solveLayer(task);
}
