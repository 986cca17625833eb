/** Σ x², accumulated in f64. */
export function sumSquares(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

/** Frobenius norm ‖x‖_F. */
export function frobenius(x: ArrayLike<number>): number {
  return Math.sqrt(sumSquares(x));
}

/**
 * FNV-1a (32-bit) of `name` from `start`: a per-name seed, so that each tensor or weight type
 * draws its own stream whatever the order they are made in.
 */
export function fnv1a(start: number, name: string): number {
  let h = start >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
