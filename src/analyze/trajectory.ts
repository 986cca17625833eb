/**
 * The paper's picture: where each layer's coefficient block sits along depth. The top singular
 * row of every V_i (row 0: the coefficients on the direction of largest S) is one point per
 * layer; a 2-D PCA of those L points shows whether they trace a smooth path.
 */

export interface Pca2 {
  /** One [x, y] per input row (layer), in input order. */
  coords: [number, number][];
  /** Fraction of the total variance along PC1 and PC2. */
  explained: [number, number];
  /** Total variance (sum over dimensions, population, i.e. divided by n). */
  totalVariance: number;
}

/**
 * Eigen-decomposition of a small symmetric matrix (n × n, row-major) by cyclic Jacobi rotations.
 * Returns eigenvalues descending and the eigenvectors as columns of a row-major n × n matrix.
 */
export function jacobiEigen(A: Float64Array, n: number, maxSweeps = 100): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(A);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0, diag = 0;
    for (let p = 0; p < n; p++) {
      diag += a[p * n + p] * a[p * n + p];
      for (let q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) { // A <- A J (columns p, q)
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) { // A <- J^T A (rows p, q)
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (const [c, i] of order.entries()) vectors[r * n + c] = v[r * n + i];
  return { values, vectors };
}

/**
 * 2-D PCA of m points in d dimensions (rows of `points`). Computed through the m × m Gram
 * matrix of the centred points (m = layers is small, d = columns may be thousands):
 * Xc Xc^T = Q Λ Q^T, PC scores = Q Λ^½. Signs: PC1 runs from the first point towards the last
 * (first point's x ≤ last point's x), PC2 so that the first point has y ≤ 0.
 */
export function pca2(points: ArrayLike<number>[]): Pca2 {
  const m = points.length;
  if (m === 0) return { coords: [], explained: [0, 0], totalVariance: 0 };
  const d = points[0].length;
  const mean = new Float64Array(d);
  for (const p of points) for (let c = 0; c < d; c++) mean[c] += p[c] / m;
  const X = points.map((p) => Float64Array.from({ length: d }, (_, c) => p[c] - mean[c]));
  const K = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = i; j < m; j++) {
      let s = 0;
      const a = X[i], b = X[j];
      for (let c = 0; c < d; c++) s += a[c] * b[c];
      K[i * m + j] = s; K[j * m + i] = s;
    }
  }
  const { values, vectors } = jacobiEigen(K, m);
  let trace = 0;
  for (let i = 0; i < m; i++) trace += K[i * m + i];
  const score = (comp: number) => {
    if (comp >= m) return new Float64Array(m);
    const lam = Math.max(values[comp], 0);
    return Float64Array.from({ length: m }, (_, i) => vectors[i * m + comp] * Math.sqrt(lam));
  };
  const x = score(0), y = score(1);
  if (x[0] > x[m - 1]) for (let i = 0; i < m; i++) x[i] = -x[i];
  if (y[0] > 0) for (let i = 0; i < m; i++) y[i] = -y[i];
  const ev = (k: number) => (trace > 0 && k < m ? Math.max(values[k], 0) / trace : 0);
  return {
    coords: Array.from({ length: m }, (_, i) => [x[i], y[i]] as [number, number]),
    explained: [ev(0), ev(1)],
    totalVariance: trace / m,
  };
}

/** Row `row` of a rank × cols block, as a copy in f64. */
export function blockRow(block: Float32Array, cols: number, row = 0): Float64Array {
  return Float64Array.from(block.subarray(row * cols, (row + 1) * cols));
}

/**
 * Smoothness of a path through points (any dimension): mean distance between consecutive
 * points divided by the mean distance between all pairs. About 1 for points in random order,
 * well below 1 for a smooth path (a straight line of evenly spaced points scores 3/(m+1)).
 */
export function pathRoughness(points: ArrayLike<number>[]): number {
  const m = points.length;
  if (m < 3) return NaN;
  const dist = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let s = 0;
    for (let c = 0; c < a.length; c++) s += (a[c] - b[c]) * (a[c] - b[c]);
    return Math.sqrt(s);
  };
  let step = 0, all = 0, pairs = 0;
  for (let i = 1; i < m; i++) step += dist(points[i - 1], points[i]);
  for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) { all += dist(points[i], points[j]); pairs++; }
  return all > 0 ? (step / (m - 1)) / (all / pairs) : NaN;
}
