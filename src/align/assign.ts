import { munkres } from 'munkres';
import type { Perm } from './permute.js';

/**
 * The permutation maximising sum_k sim[k][perm[k]] (sim: n×n row-major, row = reference
 * unit, column = candidate unit), by the Hungarian algorithm of the `munkres` package.
 */
export function maxAssignment(sim: ArrayLike<number>, n: number): { perm: Perm; total: number } {
  if (sim.length !== n * n) throw new Error(`internal: maxAssignment of ${sim.length} similarities for n = ${n}`);
  const cost: Float64Array[] = [];
  for (let y = 0; y < n; y++) {
    const row = new Float64Array(n);
    for (let x = 0; x < n; x++) row[x] = -sim[y * n + x];
    cost.push(row);
  }
  const perm = new Int32Array(n).fill(-1);
  for (const [y, x] of munkres(cost)) perm[y] = x;
  let total = 0;
  for (let y = 0; y < n; y++) {
    if (perm[y] < 0) throw new Error(`internal: the assignment left unit ${y} unmatched`);
    total += sim[y * n + perm[y]];
  }
  return { perm, total };
}

/** sum_k sim[k][k]: the similarity of the unpermuted pairing. */
export function diagonalTotal(sim: ArrayLike<number>, n: number): number {
  let t = 0;
  for (let k = 0; k < n; k++) t += sim[k * n + k];
  return t;
}
