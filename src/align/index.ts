import { layerTensorName, type LayerTensor, type ModelLayout } from '../arch/index.js';
import type { Checkpoint, FloatDType, ModelConfig } from '../checkpoint/types.js';
import { fromF32, reconstruct } from '../native/index.js';
import { diagonalTotal, maxAssignment } from './assign.js';
import { gatherCols, gatherRows, identityPerm, type Perm } from './permute.js';
import { permutedTensors, unitGeometry, type PermutedAxis, type UnitGeometry } from './units.js';
import type { Reporter } from '../progress/reporter.js';
import { readFinite as readChecked } from '../checkpoint/finite.js';
import { sumSquares } from '../execute/f32.js';

export { maxAssignment } from './assign.js';
export type { Perm } from './permute.js';

/** Per layer: which original unit each aligned unit is (gathers). Layer 0 is the reference. */
export interface LayerPerms {
  mlp: Perm;
  /** Query heads, grouped-query structure kept: heads of one kv group stay together. */
  q: Perm;
  kv: Perm;
}

/** How similar a layer is to the (aligned) layer before it: cosine of their unit features. */
export interface AlignStats {
  layer: number;
  mlpCosineBefore: number;
  mlpCosineAfter: number;
  attnCosineBefore: number;
  attnCosineAfter: number;
}

export interface Alignment {
  geometry: UnitGeometry;
  layers: LayerPerms[];
  stats: AlignStats[];
}

/** a (m×d) · bᵀ (b: n×d), f32 GEMM in the addon. */
async function similarity(a: Float32Array, b: Float32Array, m: number, n: number, d: number, threads?: number): Promise<Float32Array> {
  const bt = new Float32Array(d * n);
  for (let x = 0; x < n; x++) for (let c = 0; c < d; c++) bt[c * n + x] = b[x * d + c];
  return reconstruct(a, bt, m, d, n, threads); // a plain SGEMM: out = a · bt
}

const readFinite = (ckpt: Checkpoint, name: string) => readChecked(ckpt, name, 'refusing to align it');

interface Feat { f: Float32Array; d: number }
interface Features { mlp: Feat; q: Feat; kv: Feat }

/**
 * One row per unit: MLP unit u = [rows u of gate/up, column u of down]; query head h =
 * [its head_dim rows of q, its head_dim columns of o]; kv head = [its rows of k and v].
 */
async function features(ckpt: Checkpoint, layout: ModelLayout, geo: UnitGeometry, i: number): Promise<Features> {
  // Biases are permuted with their weights but carry too little to match on.
  const read = (lts: LayerTensor[]) =>
    Promise.all(lts.filter((lt) => lt.role === 'linear').map((lt) => readFinite(ckpt, layerTensorName(layout.arch, i, lt))));
  /** Unit u's row: its `block` rows of every row-type tensor, then its `block` columns of every column-type tensor. */
  const build = (units: number, block: number, rowTensors: Float32Array[], colTensors: Float32Array[]): Feat => {
    const d = [...rowTensors, ...colTensors].reduce((a, w) => a + w.length / units, 0);
    const f = new Float32Array(units * d);
    const cols = units * block;
    for (let u = 0; u < units; u++) {
      let off = u * d;
      for (const w of rowTensors) {
        const per = w.length / units;
        f.set(w.subarray(u * per, (u + 1) * per), off);
        off += per;
      }
      for (const w of colTensors) {
        for (let r = 0; r < w.length / cols; r++) {
          f.set(w.subarray(r * cols + u * block, r * cols + (u + 1) * block), off);
          off += block;
        }
      }
    }
    return { f, d };
  };
  return {
    mlp: build(geo.mlpUnits, 1, await read(geo.mlpRows), await read(geo.mlpCols)),
    q: build(geo.queryHeads, geo.headDim, await read(geo.qRows), await read(geo.oCols)),
    kv: build(geo.kvHeads, geo.headDim, await read(geo.kvRows), []),
  };
}

/** Heads: kv groups matched as wholes, each scored by its k/v similarity plus its best query-head matching. */
function matchHeads(geo: UnitGeometry, qsim: Float32Array, kvsim: Float32Array): { q: Perm; kv: Perm; total: number; identity: number } {
  const G = geo.queryHeads / geo.kvHeads;
  const nq = geo.queryHeads;
  const nkv = geo.kvHeads;
  const inner: Perm[][] = [];
  const groupSim = new Float64Array(nkv * nkv);
  for (let a = 0; a < nkv; a++) {
    inner.push([]);
    for (let b = 0; b < nkv; b++) {
      const block = new Float64Array(G * G);
      for (let i = 0; i < G; i++) for (let j = 0; j < G; j++) block[i * G + j] = qsim[(a * G + i) * nq + b * G + j];
      const { perm, total } = maxAssignment(block, G);
      inner[a].push(perm);
      groupSim[a * nkv + b] = kvsim[a * nkv + b] + total;
    }
  }
  const { perm: kv, total } = maxAssignment(groupSim, nkv);
  const q = new Int32Array(nq);
  for (let a = 0; a < nkv; a++) for (let i = 0; i < G; i++) q[a * G + i] = kv[a] * G + inner[a][kv[a]][i];
  return { q, kv, total, identity: diagonalTotal(qsim, nq) + diagonalTotal(kvsim, nkv) };
}

function gatherFeatures(x: Features, p: LayerPerms): Features {
  return {
    mlp: { f: gatherRows(x.mlp.f, x.mlp.d, p.mlp, 1), d: x.mlp.d },
    q: { f: gatherRows(x.q.f, x.q.d, p.q, 1), d: x.q.d },
    kv: { f: gatherRows(x.kv.f, x.kv.d, p.kv, 1), d: x.kv.d },
  };
}

/**
 * Chain alignment: layer i's MLP units and attention heads are permuted to best match the
 * already-aligned layer i-1 (max total inner product of unit features = min ‖W_i P − W_{i−1}‖),
 * so every layer ends up in layer 0's coordinates. Memory: two layers' features.
 */
export async function computeAlignment(ckpt: Checkpoint, layout: ModelLayout, config: ModelConfig,
  onLayer?: (done: number, total: number) => void, threads?: number): Promise<Alignment> {
  const geo = unitGeometry(layout, config);
  const layers: LayerPerms[] = [{ mlp: identityPerm(geo.mlpUnits), q: identityPerm(geo.queryHeads), kv: identityPerm(geo.kvHeads) }];
  const stats: AlignStats[] = [];
  let ref = await features(ckpt, layout, geo, 0);
  onLayer?.(1, layout.layers);
  for (let i = 1; i < layout.layers; i++) {
    const cur = await features(ckpt, layout, geo, i);
    const mlpSim = await similarity(ref.mlp.f, cur.mlp.f, geo.mlpUnits, geo.mlpUnits, ref.mlp.d, threads);
    const mlp = maxAssignment(mlpSim, geo.mlpUnits);
    const qsim = await similarity(ref.q.f, cur.q.f, geo.queryHeads, geo.queryHeads, ref.q.d, threads);
    const kvsim = await similarity(ref.kv.f, cur.kv.f, geo.kvHeads, geo.kvHeads, ref.kv.d, threads);
    const heads = matchHeads(geo, qsim, kvsim);
    const norm = (a: number, b: number) => Math.sqrt(a * b) || 1;
    const mlpNorm = norm(sumSquares(ref.mlp.f), sumSquares(cur.mlp.f));
    const attNorm = norm(sumSquares(ref.q.f) + sumSquares(ref.kv.f), sumSquares(cur.q.f) + sumSquares(cur.kv.f));
    stats.push({
      layer: i,
      mlpCosineBefore: diagonalTotal(mlpSim, geo.mlpUnits) / mlpNorm, mlpCosineAfter: mlp.total / mlpNorm,
      attnCosineBefore: heads.identity / attNorm, attnCosineAfter: heads.total / attNorm,
    });
    const p: LayerPerms = { mlp: mlp.perm, q: heads.q, kv: heads.kv };
    layers.push(p);
    ref = gatherFeatures(cur, p);
    onLayer?.(i + 1, layout.layers);
  }
  return { geometry: geo, layers, stats };
}

/** Applies layer `i`'s permutation to one of its tensors (f32). */
export function permuteTensor(x: Float32Array, axis: PermutedAxis, p: LayerPerms, geo: UnitGeometry): Float32Array {
  switch (axis) {
    case 'mlpRows': return gatherRows(x, x.length / geo.mlpUnits, p.mlp, 1);
    case 'mlpCols': return gatherCols(x, x.length / geo.mlpUnits, p.mlp, 1);
    case 'qRows': return gatherRows(x, x.length / (geo.queryHeads * geo.headDim), p.q, geo.headDim);
    case 'kvRows': return gatherRows(x, x.length / (geo.kvHeads * geo.headDim), p.kv, geo.headDim);
    case 'oCols': return gatherCols(x, x.length / (geo.queryHeads * geo.headDim), p.q, geo.headDim);
  }
}

/**
 * The checkpoint seen in aligned coordinates: permuted layer tensors are read, converted,
 * gathered and (for readRaw) converted back to their dtype — exact for f32/f16/bf16 since a
 * permutation only moves values. Every other tensor is read unchanged.
 */
export function alignedCheckpoint(ckpt: Checkpoint, layout: ModelLayout, a: Alignment): Checkpoint {
  const which = permutedTensors(layout, a.geometry);
  const readF32 = async (name: string): Promise<Float32Array> => {
    const x = await ckpt.readF32(name);
    const at = which.get(name);
    return at ? permuteTensor(x, at.axis, a.layers[at.layer], a.geometry) : x;
  };
  return {
    dir: ckpt.dir, config: ckpt.config, tensors: ckpt.tensors, auxFiles: ckpt.auxFiles, weightBytes: ckpt.weightBytes,
    readF32,
    span: ckpt.span ? async (name) => (which.has(name) ? undefined : ckpt.span!(name)) : undefined,
    async readRaw(name) {
      if (!which.has(name)) return ckpt.readRaw(name);
      const dtype = ckpt.tensors.get(name)!.dtype as FloatDType;
      const bytes = fromF32(await readF32(name), dtype);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    close: () => ckpt.close(),
  };
}

/**
 * Aligns a checkpoint for reading (phase "align", progress per layer): the aligned view, the
 * per-layer statistics and their means.
 */
export async function alignForReading(ckpt: Checkpoint, layout: ModelLayout, reporter: Pick<Reporter, 'phase' | 'progress'>, threads?: number):
  Promise<{ ckpt: Checkpoint; summary: Record<string, number>; stats: AlignStats[] }> {
  reporter.phase('align', { layers: layout.layers });
  const a = await computeAlignment(ckpt, layout, ckpt.config, (done, total) => reporter.progress(done, total, { unit: 'layers' }), threads);
  return { ckpt: alignedCheckpoint(ckpt, layout, a), summary: summarizeAlignment(a), stats: a.stats };
}

/** Mean cosines before/after over layers, for summaries. */
export function summarizeAlignment(a: Alignment): Record<string, number> {
  const mean = (f: (s: AlignStats) => number) => a.stats.reduce((t, s) => t + f(s), 0) / Math.max(1, a.stats.length);
  return {
    mlpCosineBefore: mean((s) => s.mlpCosineBefore), mlpCosineAfter: mean((s) => s.mlpCosineAfter),
    attnCosineBefore: mean((s) => s.attnCosineBefore), attnCosineAfter: mean((s) => s.attnCosineAfter),
  };
}
