/**
 * The assignment problem solved exactly: the Hungarian method (Kuhn-Munkres with potentials,
 * O(n^3)) on a dense n x n matrix. Used to match the GPUs and nodes of a new placement to those of
 * the running one so that as many experts as possible stay where they are.
 */

/**
 * A permutation `perm` (row i -> column perm[i]) of largest total `value[i*n + perm[i]]`.
 * `value` is [n*n] row-major; any finite numbers.
 */
export function maxAssignment(value: Float64Array, n: number): Int32Array {
  // Minimise cost = -value with the shortest-augmenting-path form of the Hungarian method
  // (1-based internal arrays; column 0 is the virtual start).
  const INF = Number.POSITIVE_INFINITY;
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const match = new Int32Array(n + 1); // column j -> row (1-based), 0 = free
  const way = new Int32Array(n + 1);
  const minv = new Float64Array(n + 1);
  const used = new Uint8Array(n + 1);
  for (let i = 1; i <= n; i++) {
    match[0] = i;
    let j0 = 0;
    minv.fill(INF);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = match[j0];
      let delta = INF;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = -value[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[match[j]] += delta;
          v[j] -= delta;
        } else minv[j] -= delta;
      }
      j0 = j1;
    } while (match[j0] !== 0);
    do {
      const j1 = way[j0];
      match[j0] = match[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const perm = new Int32Array(n);
  for (let j = 1; j <= n; j++) perm[match[j] - 1] = j - 1;
  return perm;
}
