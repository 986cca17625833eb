import { resolve } from 'node:path';
import { bytesOf, writeSafetensorsFile } from '../../checkpoint/single-file.js';
import { predictorLayout } from '../../native/predictor-layout.js';
import type { Predictor } from './predictor.js';

/**
 * A test hook, not an option: with LESA_EXPORT_PREDICTORS=FILE, `lesa expand --method lesa`
 * also writes every trained predictor to FILE (safetensors, f32), named like PyTorch's
 * `nn.Linear`s of python/lesa_py/oracle.py's Predictor: `{type}.fc1.weight` [H, 2C],
 * `{type}.fc1.bias`, fc2, fc3. With `lesa decompose`'s U, S, V the tests recompute every
 * predicted tensor independently.
 */
export const EXPORT_PREDICTORS_ENV = 'LESA_EXPORT_PREDICTORS';

export function exportTarget(): string | undefined {
  const f = process.env[EXPORT_PREDICTORS_ENV];
  return f ? resolve(f) : undefined;
}

const TORCH_NAMES = { W1: 'fc1.weight', b1: 'fc1.bias', W2: 'fc2.weight', b2: 'fc2.bias', W3: 'fc3.weight', b3: 'fc3.bias' } as const;

export async function exportPredictors(target: string, predictors: ReadonlyMap<string, { p: Predictor; cols: number }>): Promise<void> {
  const types = [...predictors.keys()].sort();
  await writeSafetensorsFile(target, types.flatMap((type) => {
    const { p, cols } = predictors.get(type)!;
    return predictorLayout(p.hidden, cols).blocks.map((b) => ({
      name: `${type}.${TORCH_NAMES[b.name]}`, dtype: 'F32' as const, shape: [...b.shape],
      chunks: () => [bytesOf(p.params.subarray(b.offset, b.offset + b.length))],
    }));
  }));
}
