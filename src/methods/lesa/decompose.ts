import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readFinite } from '../../checkpoint/finite.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { layersWith, layerTensorName, type ModelLayout } from '../../arch/index.js';
import { coefficients, eigSym, gramAccumulate } from '../../native/index.js';

/** Components with S <= REL_TOL * S[0] are numerically zero (Gram eigenvalues carry ~1e-16 relative error). */
export const REL_TOL = 1e-6;

/** Coefficient blocks V_i of all layers, [L][rank][cols] f32, in memory or in a scratch file. */
export type VStore = { kind: 'memory'; data: Float32Array } | { kind: 'file'; path: string; offset: number };

/** The stacked SVD of one weight type: W_i = U diag(S) V_i for every layer i. */
export interface Decomposition {
  type: string;
  rows: number;
  cols: number;
  rank: number;
  /** How many layers hold the type: the coefficient blocks V_0..V_{layers-1}. */
  layers: number;
  /** The source layer of each block, ascending (every layer but in an MoE mixing dense and sparse MLPs). */
  sources: number[];
  /** rows × rank, row-major, f64. */
  U: Float64Array;
  /** rank singular values, descending. */
  S: Float64Array;
  V: VStore;
}

export interface DecomposeHooks {
  step?(what: 'gram' | 'eig' | 'coefficients', done: number, total: number): void;
  scratchDir: string;
  maxMemory: number;
  /** BLAS threads (default: native defaultThreads()). */
  threads?: number;
}

export async function readLayer(ckpt: Checkpoint, layout: ModelLayout, type: string, i: number): Promise<Float32Array> {
  const lt = layout.layerTensors.find((t) => t.type === type)!;
  const name = layerTensorName(layout.arch, i, lt);
  return readFinite(ckpt, name, 'refusing to decompose it');
}

/**
 * Gram route to the thin SVD of [W_1 | ... | W_L]: G = sum W_i W_i^T in f64 one layer at a
 * time, G = U diag(S^2) U^T, then V_i = diag(1/S) U^T W_i. Never holds the concatenation.
 * The layers are those holding the type: in an MoE mixing dense and sparse MLPs, an expert's
 * stack is the sparse layers' and the dense MLP's the dense layers'.
 */
export async function decompose(ckpt: Checkpoint, layout: ModelLayout, type: string, hooks: DecomposeHooks): Promise<Decomposition> {
  const [rows, cols] = layout.typeInfo.get(type)!.shape;
  const sources = layersWith(layout, type);
  const L = sources.length;
  const G = new Float64Array(rows * rows);
  for (let i = 0; i < L; i++) {
    await gramAccumulate(G, await readLayer(ckpt, layout, type, sources[i]), rows, cols, hooks.threads);
    hooks.step?.('gram', i + 1, L);
  }
  hooks.step?.('eig', 0, 1);
  const { values, vectors } = await eigSym(G, rows, hooks.threads);
  hooks.step?.('eig', 1, 1);
  const rank = decompositionRank(rows, cols, L);
  const S = new Float64Array(rank);
  for (let k = 0; k < rank; k++) S[k] = Math.sqrt(Math.max(values[k], 0));
  const U = rank === rows ? vectors : firstColumns(vectors, rows, rank);
  const blockLen = rank * cols;
  // f32 coefficients: 2.4x less CPU than f64 at Llama-3-8B's gate_proj, and within 4e-7 of them
  // on every SmolLM2 type (bench/results/coefficient-precision.md).
  const U32 = Float32Array.from(U);
  const V = await storeBlocks(L, blockLen, coefficientsInMemory(rows, cols, L, hooks.maxMemory), hooks, type, async (i) => {
    const block = await coefficients(U32, S, await readLayer(ckpt, layout, type, sources[i]), rows, rank, cols, REL_TOL, hooks.threads);
    hooks.step?.('coefficients', i + 1, L);
    return block;
  });
  return { type, rows, cols, rank, layers: L, sources, U, S, V };
}

/**
 * Peak bytes one weight type holds from Gram to prediction, for scheduling types side by side:
 * G (then U, in place) in f64, plus the larger of dsyevd's 2n^2 + 6n + 1 f64 workspace and what
 * follows the eigendecomposition (coefficient blocks when kept in memory, the f32 copy of U then the f32 basis, a few
 * layer-sized buffers). An upper bound: the phases do not overlap.
 */
export function workingSetBytes(rows: number, cols: number, layers: number, maxMemory: number): number {
  const rank = decompositionRank(rows, cols, layers);
  const vInMemory = coefficientsInMemory(rows, cols, layers, maxMemory) ? coefficientBytes(rows, cols, layers) : 0;
  const eig = 8 * (2 * rows * rows + 6 * rows + 1);
  const after = vInMemory + 4 * rows * rank + 3 * 4 * rank * cols + 3 * 4 * rows * cols + (rank < rows ? 8 * rows * rank : 0);
  return 8 * rows * rows + Math.max(eig, after);
}

/** Bytes of one type's coefficient blocks (f32), in memory up to maxMemory, else in a scratch file. */
export function coefficientBytes(rows: number, cols: number, layers: number): number {
  return layers * decompositionRank(rows, cols, layers) * cols * 4;
}

/** Singular vectors kept for a type of `layers` [rows, cols] weights: all of them (the stack's rank bound). */
export function decompositionRank(rows: number, cols: number, layers: number): number {
  return Math.min(rows, layers * cols);
}

/** Whether a type's coefficient blocks stay in memory (else they go to a scratch file). */
export function coefficientsInMemory(rows: number, cols: number, layers: number, maxMemory: number): boolean {
  return coefficientBytes(rows, cols, layers) <= maxMemory;
}

/** Deletes the scratch file of spilled coefficient blocks (a type's blocks are not needed after its predictions). */
export async function release(d: Decomposition): Promise<void> {
  if (d.V.kind === 'file') await rm(d.V.path, { force: true });
}

function firstColumns(m: Float64Array, rows: number, k: number): Float64Array {
  const out = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) out.set(m.subarray(r * rows, r * rows + k), r * k);
  return out;
}

async function storeBlocks(L: number, blockLen: number, inMemory: boolean, hooks: DecomposeHooks, type: string, make: (i: number) => Promise<Float32Array>): Promise<VStore> {
  if (inMemory) {
    const data = new Float32Array(L * blockLen);
    for (let i = 0; i < L; i++) data.set(await make(i), i * blockLen);
    return { kind: 'memory', data };
  }
  const path = join(hooks.scratchDir, `V-${type}.f32`);
  const fh = await open(path, 'w');
  try {
    for (let i = 0; i < L; i++) {
      const b = await make(i);
      await fh.write(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), 0, b.byteLength, i * blockLen * 4);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { kind: 'file', path, offset: 0 };
}

/** Layer i's coefficient block (rank × cols). */
export async function block(d: Decomposition, i: number): Promise<Float32Array> {
  const len = d.rank * d.cols;
  if (d.V.kind === 'memory') return d.V.data.subarray(i * len, (i + 1) * len);
  const out = new Float32Array(len);
  const fh = await open(d.V.path, 'r');
  try {
    await fh.read(new Uint8Array(out.buffer), 0, len * 4, d.V.offset + i * len * 4);
  } finally {
    await fh.close();
  }
  return out;
}

/** U diag(S) as f32 rows × rank: the shared basis every layer of this type is built from. */
export function basis(d: Decomposition): Float32Array {
  const out = new Float32Array(d.rows * d.rank);
  for (let r = 0; r < d.rows; r++) for (let k = 0; k < d.rank; k++) out[r * d.rank + k] = d.U[r * d.rank + k] * d.S[k];
  return out;
}
