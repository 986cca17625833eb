/**
 * Typed, validated face of the C++ addon (native/src). Every argument is checked here;
 * invalid ones throw (sync functions) or reject (async ones) with a TypeError/RangeError
 * before any native work starts. Async functions run off the main thread; the typed
 * arrays they receive must not be modified until their promise settles.
 * The addon is loaded on first use, so importing this module never fails.
 */
import { statSync } from 'node:fs';

import { DTYPE_SIZES, FLOAT_DTYPES, type FloatDType } from '../checkpoint/types.js';

import { loadNative, withCallerStack } from './binding.js';
import { predictorLayout } from './predictor-layout.js';
import {
  describe, elements, expectDim, expectF32, expectF64, expectFinite, expectI32, expectOneOf, expectOptions, expectSafeInteger, expectU8,
} from './validate.js';

export { blasCoreTypeFor, isNativeAvailable, nativeAddonPath, NATIVE_FIX } from './binding.js';
export { predictorLayout, predictorParams, type ParamBlock, type PredictorLayout } from './predictor-layout.js';
export { copySpan, copySpans, countNonFiniteRaw, isCheckedDtype, Sha256, type CheckedDtype, type SpanCopy, type SpansCopied } from './io.js';

const DTYPES = FLOAT_DTYPES;

const MAX_EIG_N = 32766; // dsyevd's workspace, 1 + 6n + 2n^2, must fit a 32-bit int
const MAX_MLP_COLS = 2 ** 30; // the first layer's row stride 2*cols is a BLAS int

/** Little-endian bytes of `dtype` to f32 (one output allocation, no other copy). */
export function toF32(bytes: Uint8Array, dtype: FloatDType): Float32Array {
  const src = expectU8(bytes, 'bytes');
  const d = expectOneOf(dtype, 'dtype', DTYPES);
  if (src.length % DTYPE_SIZES[d] !== 0) {
    throw new RangeError(`Expected a byte length divisible by ${DTYPE_SIZES[d]} for bytes (${d}) but received ${src.length}`);
  }
  const out = new Float32Array(src.length / DTYPE_SIZES[d]);
  loadNative().toF32(src, out, d);
  return out;
}

/** f32 to little-endian `dtype` bytes, rounding to nearest even; NaN stays NaN, f16 overflow is Inf. */
export function fromF32(x: Float32Array, dtype: FloatDType): Uint8Array {
  const src = expectF32(x, 'x');
  const d = expectOneOf(dtype, 'dtype', DTYPES);
  const out = new Uint8Array(src.length * DTYPE_SIZES[d]);
  loadNative().fromF32(src, out, d);
  return out;
}

export function countNonFinite(x: Float32Array): number {
  return loadNative().countNonFinite(expectF32(x, 'x'));
}

/**
 * G (rows x rows, row-major) += W W^T in f64 for W (rows x cols). G's upper triangle is
 * authoritative and G leaves fully symmetric. Scratch memory stays under ~64 MB.
 */
export async function gramAccumulate(G: Float64Array, W: Float32Array, rows: number, cols: number, threads?: number): Promise<void> {
  const r = expectDim(rows, 'rows');
  const c = expectDim(cols, 'cols');
  expectF64(G, 'G', elements([r, r], 'G'), 'rows*rows');
  expectF32(W, 'W', elements([r, c], 'W'), 'rows*cols');
  useThreads(threads);
  return withCallerStack(() => loadNative().gramAccumulate(G, W, r, c));
}

export interface Eigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Row-major n x n, column k the unit eigenvector of values[k] (largest-|entry| positive). This IS the input G. */
  vectors: Float64Array;
}

/**
 * Symmetric eigendecomposition (LAPACK dsyevd) of G (n x n, row-major, upper triangle read).
 * G is overwritten in place by the eigenvectors, so no second n x n array exists besides
 * LAPACK's own workspace (about 2 n^2 doubles while it runs).
 */
export async function eigSym(G: Float64Array, n: number, threads?: number): Promise<Eigen> {
  const size = expectDim(n, 'n', MAX_EIG_N);
  expectF64(G, 'G', size * size, 'n*n');
  const values = new Float64Array(size);
  useThreads(threads);
  await withCallerStack(() => loadNative().eigSym(G, values, size));
  return { values, vectors: G };
}

/**
 * Coefficients V (rank x cols) = diag(1/S) U^T W, for U (rows x rank, row-major, e.g. the
 * eigenvectors' first `rank` columns), S (rank) and W (rows x cols). A Float64Array U takes the
 * f64 route (dgemm on f64 copies of W); a Float32Array U one sgemm, about 3x faster
 * (bench/coefficient_precision.ts measures both). Rows k with S[k] <= relTol * max(S) are exactly zero.
 */
export async function coefficients(
  U: Float64Array | Float32Array, S: Float64Array, W: Float32Array, rows: number, rank: number, cols: number, relTol: number, threads?: number,
): Promise<Float32Array> {
  const r = expectDim(rows, 'rows');
  const k = expectDim(rank, 'rank');
  const c = expectDim(cols, 'cols');
  if (U instanceof Float32Array) expectF32(U, 'U', elements([r, k], 'U'), 'rows*rank');
  else expectF64(U, 'U', elements([r, k], 'U'), 'rows*rank');
  expectF64(S, 'S', k, 'rank');
  for (let i = 0; i < k; i++) {
    if (!(Number.isFinite(S[i]) && S[i] >= 0)) throw new RangeError(`Expected finite non-negative S[${i}] but received ${S[i]}`);
  }
  expectF32(W, 'W', elements([r, c], 'W'), 'rows*cols');
  const tol = expectFinite(relTol, 'relTol', 0);
  const V = new Float32Array(elements([k, c], 'V'));
  useThreads(threads);
  await withCallerStack(() => U instanceof Float32Array
    ? loadNative().coefficientsF32(U, S, W, V, r, k, c, tol)
    : loadNative().coefficients(U, S, W, V, r, k, c, tol));
  return V;
}

/** rows x cols = US (rows x rank) * V (rank x cols), f32 sgemm. */
export async function reconstruct(US: Float32Array, V: Float32Array, rows: number, rank: number, cols: number, threads?: number): Promise<Float32Array> {
  const r = expectDim(rows, 'rows');
  const k = expectDim(rank, 'rank');
  const c = expectDim(cols, 'cols');
  expectF32(US, 'US', elements([r, k], 'US'), 'rows*rank');
  expectF32(V, 'V', elements([k, c], 'V'), 'rank*cols');
  const out = new Float32Array(elements([r, c], 'output'));
  useThreads(threads);
  await withCallerStack(() => loadNative().reconstruct(US, V, out, r, k, c));
  return out;
}

/** Coefficient blocks [layers][rank][cols] as f32 little-endian at `offset` in a scratch file. */
export interface CoefficientFile {
  path: string;
  offset: number;
}

export type ProgressCallback = (epoch: number, batchDone: number, batchTotal: number, runningLoss: number) => void;

export interface TrainPredictorOptions {
  /** All layers' coefficient blocks, [layers][rank][cols]; in memory or in a file (read per mini-batch). */
  V: Float32Array | CoefficientFile;
  layers: number;
  rank: number;
  cols: number;
  /** Target layers i (1 <= i <= layers-2); each contributes `rank` samples ([V[i-1][k], V[i+1][k]] -> V[i][k]). */
  targets: Int32Array;
  seed: number;
  hidden?: number;
  /** Passes over the samples; or give `steps` instead. */
  epochs?: number;
  /**
   * Exactly this many AdamW steps, cycling epochs (each freshly shuffled, as with `epochs`);
   * the last epoch stops early. steps = epochs * ceil(samples / batch) is the same run as `epochs`.
   */
  steps?: number;
  batch?: number;
  lr?: number;
  weightDecay?: number;
  lambda?: number;
  /** Starting parameters (predictorLayout order); default PyTorch's Linear init from `seed`. */
  init?: Float32Array;
  /** epoch and batchDone count from 1; runningLoss is the epoch's mean batch loss so far. At most ~10 calls/s. */
  onProgress?: ProgressCallback;
  /** BLAS threads (default defaultThreads()); the result depends on it. */
  threads?: number;
}

export interface TrainedPredictor {
  /** Packed as predictorLayout(hidden, cols) describes. */
  params: Float32Array;
  /** Mean mini-batch loss of each epoch (the last one over the steps it ran). */
  epochLosses: Float64Array;
  /** Optimizer steps taken. */
  steps: number;
}

export const TRAIN_DEFAULTS = { hidden: 256, epochs: 10, batch: 64, lr: 1e-3, weightDecay: 0.01, lambda: 5e-4 } as const;

const TRAIN_KEYS = ['V', 'layers', 'rank', 'cols', 'targets', 'seed', 'init', 'onProgress', 'steps', 'threads', ...Object.keys(TRAIN_DEFAULTS)];

/** Mini-batches (= optimizer steps) in one epoch of `samples` samples. */
export function stepsPerEpoch(samples: number, batch: number): number {
  return Math.ceil(samples / batch);
}

/**
 * Trains LESA's predictor (docs/method.md section 2, items 3-6) with AdamW on shuffled
 * mini-batches; deterministic for a given seed and OpenBLAS thread count. Rejects when the
 * loss becomes NaN/Inf, naming the epoch.
 */
export async function trainPredictor(options: TrainPredictorOptions): Promise<TrainedPredictor> {
  const o = expectOptions(options, 'options', TRAIN_KEYS);
  const layers = expectDim(o.layers, 'layers');
  if (layers < 3) throw new RangeError(`Expected layers >= 3 (a target needs two neighbours) but received ${layers}`);
  const rank = expectDim(o.rank, 'rank');
  const cols = expectDim(o.cols, 'cols', MAX_MLP_COLS);
  const total = elements([layers, rank, cols], 'V');
  const source = coefficientSource(o.V, total);
  const targets = expectI32(o.targets, 'targets');
  if (targets.length === 0) throw new RangeError('Expected at least one target layer for targets but received an empty Int32Array');
  for (const t of targets) {
    if (t < 1 || t > layers - 2) throw new RangeError(`Expected target layers in [1, ${layers - 2}] for targets but received ${t}`);
  }
  if (targets.length * rank > 2 ** 32 - 1) throw new RangeError(`Too many samples: ${targets.length} targets * rank ${rank} exceeds 2^32-1`);
  const seed = expectSafeInteger(o.seed, 'seed');
  const hidden = expectDim(o.hidden ?? TRAIN_DEFAULTS.hidden, 'hidden');
  const batch = expectDim(o.batch ?? TRAIN_DEFAULTS.batch, 'batch');
  if (o.epochs !== undefined && o.steps !== undefined) throw new TypeError('Expected epochs or steps, not both');
  const perEpoch = stepsPerEpoch(targets.length * rank, batch);
  const steps = o.steps !== undefined ? expectDim(o.steps, 'steps', 2 ** 40) : expectDim(o.epochs ?? TRAIN_DEFAULTS.epochs, 'epochs') * perEpoch;
  if (!Number.isSafeInteger(steps)) throw new RangeError(`Too many steps: ${steps}`);
  const epochs = Math.ceil(steps / perEpoch);
  const lr = expectFinite(o.lr ?? TRAIN_DEFAULTS.lr, 'lr', 0);
  const weightDecay = expectFinite(o.weightDecay ?? TRAIN_DEFAULTS.weightDecay, 'weightDecay', 0);
  const lambda = expectFinite(o.lambda ?? TRAIN_DEFAULTS.lambda, 'lambda', 0, 1);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new TypeError(`Expected function or undefined for onProgress but received ${typeof o.onProgress}`);
  }
  const params = new Float32Array(predictorLayout(hidden, cols).total);
  if (o.init !== undefined) params.set(expectF32(o.init, 'init', params.length, 'predictorLayout(hidden, cols).total'));
  const epochLosses = new Float64Array(epochs);
  useThreads(o.threads as number | undefined);
  await withCallerStack(() =>
    loadNative().trainPredictor({
      ...source, layers, rank, cols, targets, hidden, epochs, steps, batch, lr, weightDecay, lambda, seed,
      initialize: o.init === undefined, params, epochLosses, onProgress: o.onProgress,
    }),
  );
  return { params, epochLosses, steps };
}

function coefficientSource(V: unknown, total: number): { V?: Float32Array; path?: string; offset: number } {
  if (V instanceof Float32Array) return { V: expectF32(V, 'V', total, 'layers*rank*cols'), offset: 0 };
  if (typeof V !== 'object' || V === null || ArrayBuffer.isView(V)) {
    throw new TypeError(`Expected Float32Array or { path, offset } for V but received ${describe(V)}`);
  }
  const file = expectOptions(V, 'V', ['path', 'offset']);
  if (typeof file.path !== 'string' || file.path === '') throw new TypeError(`Expected non-empty string for V.path but received ${String(file.path)}`);
  const offset = expectSafeInteger(file.offset, 'V.offset');
  const size = statSync(file.path).size;
  if (size < offset + total * 4) {
    throw new RangeError(`Expected ${file.path} to hold ${total * 4} bytes from offset ${offset} but it has ${size} bytes`);
  }
  return { path: file.path, offset };
}

/** MLP forward for `rows` samples with inputs [left[k], right[k]] (each rows x cols) -> rows x cols. */
export async function predictRows(
  params: Float32Array, hidden: number, cols: number, left: Float32Array, right: Float32Array, rows: number, threads?: number,
): Promise<Float32Array> {
  const h = expectDim(hidden, 'hidden');
  const c = expectDim(cols, 'cols', MAX_MLP_COLS);
  const r = expectDim(rows, 'rows');
  expectF32(params, 'params', predictorLayout(h, c).total, 'predictorLayout(hidden, cols).total');
  const n = elements([r, c], 'left');
  expectF32(left, 'left', n, 'rows*cols');
  expectF32(right, 'right', n, 'rows*cols');
  const out = new Float32Array(n);
  useThreads(threads);
  await withCallerStack(() => loadNative().predictRows(params, h, c, left, right, out, r));
  return out;
}

let startThreads: number | undefined;

/** OpenBLAS's thread count at start-up (OPENBLAS_NUM_THREADS, else the cores): what a BLAS call gets without `threads`. */
export function defaultThreads(): number {
  startThreads ??= loadNative().getThreads();
  return startThreads;
}

/**
 * Every BLAS call names its thread count (default: defaultThreads()). OpenBLAS keeps one count
 * per process, set here just before the job is queued: calls running at once must ask for the
 * same count (LESA's scheduler runs either several one-thread jobs or one all-thread job).
 */
function useThreads(threads: number | undefined): void {
  const n = expectDim(threads ?? defaultThreads(), 'threads', 4096);
  if (loadNative().getThreads() !== n) loadNative().setThreads(n);
}

/** OpenBLAS threads (low level; BLAS calls set their own, see useThreads). */
export function setThreads(n: number): void {
  defaultThreads();
  loadNative().setThreads(expectDim(n, 'n', 4096));
}

export function getThreads(): number {
  return loadNative().getThreads();
}

/** The OpenBLAS kernel family in use (e.g. "SkylakeX", "Haswell"; "Prescott" is the slow SSE3 fallback). */
export function blasCoreName(): string {
  return loadNative().blasCoreName();
}

/** Bound on the f64 scratch of gramAccumulate/coefficients (default 64 MiB); larger is slightly faster. */
export function setScratchBytes(bytes: number): void {
  loadNative().setScratchBytes(expectSafeInteger(bytes, 'bytes', 1));
}
