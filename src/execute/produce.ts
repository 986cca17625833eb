import { readFinite as readChecked } from '../checkpoint/finite.js';
import { DTYPE_SIZES, isFloatDType, numel, type Checkpoint, type FloatDType } from '../checkpoint/types.js';
import { UserError } from '../errors.js';
import { countNonFinite, fromF32, toF32 } from '../native/index.js';
import type { Prepared } from '../methods/method.js';
import type { OutputTensor } from '../plan/recipe.js';
import { CHECK_CHUNK } from '../plan/resources.js';
import { frobenius } from './f32.js';
import { gaussian } from './rng.js';

const readFinite = (ckpt: Checkpoint, name: string) => readChecked(ckpt, name, 'the checkpoint is damaged');

/** NaN/Inf count of raw float bytes, converted to f32 a chunk at a time (a copy holds only its raw bytes). */
function countNonFiniteRaw(raw: Uint8Array, dtype: FloatDType): number {
  const step = CHECK_CHUNK * DTYPE_SIZES[dtype];
  let bad = 0;
  for (let at = 0; at < raw.byteLength; at += step) bad += countNonFinite(toF32(raw.subarray(at, Math.min(at + step, raw.byteLength)), dtype));
  return bad;
}

/** The bytes of one output tensor, made by its recipe. Memory: this tensor (and its f32 sources). */
export async function produce(ckpt: Checkpoint, t: OutputTensor, prepared?: Prepared): Promise<Uint8Array> {
  const r = t.recipe;
  const n = numel(t.shape);
  const dtype = t.dtype as FloatDType;
  switch (r.kind) {
    case 'copy': {
      const raw = await ckpt.readRaw(r.src);
      if (isFloatDType(t.dtype)) {
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
