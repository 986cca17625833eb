/** A permutation as a gather: aligned unit k is original unit perm[k]. */
export type Perm = Int32Array;

export function identityPerm(n: number): Perm {
  return Int32Array.from({ length: n }, (_, k) => k);
}

export function isPermutation(p: ArrayLike<number>, n: number): boolean {
  if (p.length !== n) return false;
  const seen = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const v = p[k];
    if (!Number.isInteger(v) || v < 0 || v >= n || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

/** A row-major matrix with its rows gathered in blocks of `block` rows: out block k = x block perm[k]. */
export function gatherRows(x: Float32Array, cols: number, perm: Perm, block: number): Float32Array {
  const stride = block * cols;
  if (x.length !== perm.length * stride) throw new Error(`internal: gatherRows of ${x.length} elements by ${perm.length} blocks of ${stride}`);
  const out = new Float32Array(x.length);
  for (let k = 0; k < perm.length; k++) out.set(x.subarray(perm[k] * stride, (perm[k] + 1) * stride), k * stride);
  return out;
}

/** A row-major rows×cols matrix with its columns gathered in blocks of `block` columns. */
export function gatherCols(x: Float32Array, rows: number, perm: Perm, block: number): Float32Array {
  const cols = perm.length * block;
  if (x.length !== rows * cols) throw new Error(`internal: gatherCols of ${x.length} elements as ${rows}×${cols}`);
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let k = 0; k < perm.length; k++) out.set(x.subarray(base + perm[k] * block, base + (perm[k] + 1) * block), base + k * block);
  }
  return out;
}

/** Composition: first `inner`, then `outer` (gather semantics: result[k] = inner[outer[k]]). */
export function compose(inner: Perm, outer: Perm): Perm {
  return Int32Array.from(outer, (o) => inner[o]);
}
