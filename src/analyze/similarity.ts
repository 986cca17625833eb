/**
 * Layer-to-layer similarity of one weight type, from its stacked SVD W_i = U diag(S) V_i.
 *
 * - `coefficient`: cosine between the flattened coefficient blocks V_i and V_j (every
 *   component weighted equally).
 * - `weight`: cosine between W_i and W_j themselves. U has orthonormal columns, so
 *   <W_i, W_j> = sum_k S_k^2 <V_i[k,:], V_j[k,:]>: the same blocks with row k weighted by S_k^2,
 *   exact, without rebuilding the weights.
 */

export interface SimilarityMatrices {
  layers: number;
  /** layers × layers, row-major. */
  coefficient: Float64Array;
  weight: Float64Array;
}

/** Both cosine matrices for blocks[i] (rank × cols, row-major) and singular values S (rank). */
export function similarity(blocks: Float32Array[], S: ArrayLike<number>, cols: number): SimilarityMatrices {
  const L = blocks.length;
  const rank = S.length;
  const plain = new Float64Array(L * L), weighted = new Float64Array(L * L);
  for (let i = 0; i < L; i++) {
    for (let j = i; j < L; j++) {
      const a = blocks[i], b = blocks[j];
      let p = 0, w = 0;
      for (let k = 0; k < rank; k++) {
        let s = 0;
        const o = k * cols;
        for (let c = 0; c < cols; c++) s += a[o + c] * b[o + c];
        p += s;
        w += S[k] * S[k] * s;
      }
      plain[i * L + j] = plain[j * L + i] = p;
      weighted[i * L + j] = weighted[j * L + i] = w;
    }
  }
  return { layers: L, coefficient: normalise(plain, L), weight: normalise(weighted, L) };
}

/** Gram matrix -> cosine matrix; a zero row/column gives cosine 0 (and 1 on its diagonal). */
export function normalise(G: Float64Array, L: number): Float64Array {
  const out = new Float64Array(L * L);
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < L; j++) {
      const n = Math.sqrt(G[i * L + i] * G[j * L + j]);
      out[i * L + j] = i === j ? 1 : n > 0 ? Math.max(-1, Math.min(1, G[i * L + j] / n)) : 0;
    }
  }
  return out;
}

/** Mean of the off-diagonal band |i - j| = k (k = 1: adjacent layers). */
export function bandMean(M: Float64Array, L: number, k = 1): number {
  let s = 0;
  for (let i = 0; i + k < L; i++) s += M[i * L + i + k];
  return L > k ? s / (L - k) : NaN;
}

/** Rows of an L × L row-major matrix, for JSON. */
export function toRows(M: Float64Array, L: number): number[][] {
  return Array.from({ length: L }, (_, i) => Array.from(M.subarray(i * L, (i + 1) * L)));
}
