import type { Checkpoint, FloatDType } from '../checkpoint/types.js';
import { DTYPE_SIZES } from '../checkpoint/types.js';
import { UserError } from '../errors.js';
import { countNonFinite, fromF32, toF32 } from '../native/index.js';
import type { Prepared } from '../methods/method.js';
import type { OutputTensor } from '../plan/recipe.js';
import { gaussian } from './rng.js';

const FLOATS = new Set(['F32', 'F16', 'BF16']);

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

async function readFinite(ckpt: Checkpoint, name: string): Promise<Float32Array> {
  const x = await ckpt.readF32(name);
  const bad = countNonFinite(x);
  if (bad > 0) throw new UserError(`input tensor ${name} holds ${bad} NaN/Inf values; the checkpoint is damaged`);
  return x;
}

function frobenius(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** Elements converted at a time by the NaN/Inf check of copied tensors: bounds its f32 view. */
export const CHECK_CHUNK = 1 << 22;

/** NaN/Inf count of raw float bytes, converted to f32 a chunk at a time (a copy holds only its raw bytes). */
function countNonFiniteRaw(raw: Uint8Array, dtype: FloatDType): number {
  const step = CHECK_CHUNK * DTYPE_SIZES[dtype];
  let bad = 0;
  for (let at = 0; at < raw.byteLength; at += step) bad += countNonFinite(toF32(raw.subarray(at, Math.min(at + step, raw.byteLength)), dtype));
  return bad;
}

/** The bytes of one output tensor: its recipe's, times its --scale factor if it has one (in f32). */
export async function produce(ckpt: Checkpoint, t: OutputTensor, prepared?: Prepared): Promise<Uint8Array> {
  const bytes = await produceRecipe(ckpt, t, prepared);
  if (t.scale === undefined) return bytes;
  const x = toF32(bytes, t.dtype as FloatDType);
  // f32 × f32 is exact in f64, so rounding it once gives f32 multiplication (as torch does)
  const f = Math.fround(t.scale);
  for (let i = 0; i < x.length; i++) x[i] *= f;
  return fromF32(x, t.dtype as FloatDType);
}

/** The bytes of one output tensor, made by its recipe. Memory: this tensor (and its f32 sources). */
async function produceRecipe(ckpt: Checkpoint, t: OutputTensor, prepared?: Prepared): Promise<Uint8Array> {
  const r = t.recipe;
  const n = numel(t.shape);
  const dtype = t.dtype as FloatDType;
  switch (r.kind) {
    case 'copy': {
      const raw = await ckpt.readRaw(r.src);
      if (FLOATS.has(t.dtype)) {
        const bad = countNonFiniteRaw(raw, dtype);
        if (bad > 0) throw new UserError(`input tensor ${r.src} holds ${bad} NaN/Inf values; the checkpoint is damaged`);
      }
      return raw;
    }
    case 'mean': {
      // f32 semantics, summed in order then divided: the same numbers torch gives for (a + b) / 2.
      const acc = Float32Array.from(await readFinite(ckpt, r.srcs[0]));
      for (const src of r.srcs.slice(1)) {
        const x = await readFinite(ckpt, src);
        for (let i = 0; i < n; i++) acc[i] = acc[i] + x[i];
      }
      for (let i = 0; i < n; i++) acc[i] = acc[i] / r.srcs.length;
      return fromF32(acc, dtype);
    }
    case 'zeros':
      return new Uint8Array(n * DTYPE_SIZES[t.dtype]);
    case 'fill':
      return fromF32(new Float32Array(n).fill(r.value), dtype);
    case 'random': {
      const x = gaussian(n, r.seed, r.std);
      if (r.matchNormOf) {
        let target = 0;
        for (const src of r.matchNormOf) target += frobenius(await readFinite(ckpt, src)) / r.matchNormOf.length;
        const scale = target / (frobenius(x) || 1);
        for (let i = 0; i < n; i++) x[i] *= scale;
      }
      return fromF32(x, dtype);
    }
    case 'predicted': {
      if (!prepared) throw new Error(`internal: tensor ${t.name} is predicted but the method prepared nothing`);
      return prepared.produce(t.name);
    }
  }
}
