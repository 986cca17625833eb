import { UserError } from '../errors.js';
import { countNonFinite } from '../native/index.js';
import type { Checkpoint } from './types.js';

/** A tensor as f32, refused when it holds NaN/Inf; `refusal` says what would have been done with it. */
export async function readFinite(ckpt: Checkpoint, name: string, refusal: string): Promise<Float32Array> {
  const x = await ckpt.readF32(name);
  const bad = countNonFinite(x);
  if (bad > 0) throw new UserError(`tensor ${name} holds ${bad} NaN/Inf values; ${refusal}`);
  return x;
}
