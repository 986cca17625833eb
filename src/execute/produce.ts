import { readFinite as readChecked } from '../checkpoint/finite.js';
import { DTYPE_SIZES, isFloatDType, numel, type Checkpoint, type FloatDType } from '../checkpoint/types.js';
import { UserError } from '../errors.js';
import { countNonFinite, countNonFiniteRaw, fromF32, isCheckedDtype, toF32 } from '../native/index.js';
import type { Prepared } from '../methods/method.js';
import type { OutputTensor } from '../plan/recipe.js';
import { frobenius } from './f32.js';
import { gaussian } from './rng.js';

const readFinite = (ckpt: Checkpoint, name: string) => readChecked(ckpt, name, 'the checkpoint is damaged');

/** The refusal of an input tensor holding `bad` NaN/Inf values. */
export function nonFiniteInput(name: string, bad: number): UserError {
  return new UserError(`input tensor ${name} holds ${bad} NaN/Inf values; the checkpoint is damaged`);
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
      // Only for views that are not stored bytes (aligned layers); stored tensors are copied as spans (write-tensor.ts).
      const raw = await ckpt.readRaw(r.src);
      if (isCheckedDtype(t.dtype)) {
        const bad = await countNonFiniteRaw(raw, t.dtype);
        if (bad > 0) throw nonFiniteInput(r.src, bad);
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
