/**
 * piscina worker entry: solves one layer. Runs from compiled JS (dist/solvers/worker.js); result
 * arrays of the task arrive transferred; the (small) result is cloned back.
 */
import { solveLayer, type LayerResult, type LayerTask } from '../src/search/layer.js';

export default function run(task: LayerTask): LayerResult {
  return solveLayer(task);
}
