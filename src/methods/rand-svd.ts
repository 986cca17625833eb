import { layerTensorName } from '../arch/index.js';
import { gaussian } from '../execute/rng.js';
import { reconstruct } from '../native/index.js';
import { lesaOptions, lesaOptionsOf } from './lesa/options.js';
import { recorded } from './options.js';
import type { Method } from './method.js';
import { readLayer, type Decomposition } from './lesa/decompose.js';
import { predictedPlan } from './lesa/plan.js';
import { preparePredicted, predictedResources } from './lesa/predicted.js';
import { tensorSeed } from './random.js';

/**
 * U·diag(S)·V' with V' standard normal (rank × cols, seeded), rescaled to Frobenius norm
 * `norm`: a layer in the type's own basis that carries no information about its neighbours.
 */
export async function randomInBasis(d: Decomposition, US: Float32Array, seed: number, norm: number, threads?: number): Promise<Float32Array> {
  const w = await reconstruct(US, gaussian(d.rank * d.cols, seed, 1), d.rows, d.rank, d.cols, threads);
  let ss = 0;
  for (let i = 0; i < w.length; i++) ss += w[i] * w[i];
  const scale = ss > 0 ? norm / Math.sqrt(ss) : 0;
  for (let i = 0; i < w.length; i++) w[i] *= scale;
  return w;
}

/** Mean Frobenius norm of the given layers of one type, read from the checkpoint. */
export async function meanNorm(read: (i: number) => Promise<Float32Array>, layers: number[]): Promise<number> {
  let sum = 0;
  for (const i of layers) {
    const w = await read(i);
    let ss = 0;
    for (let e = 0; e < w.length; e++) ss += w[e] * w[e];
    sum += Math.sqrt(ss);
  }
  return sum / layers.length;
}

/** LESA's own declarations of what rand-svd shares with it: the same flags, the same defaults. */
const randSvdOptions = { fill: lesaOptions.fill, zeroOut: lesaOptions.zeroOut, maxMemory: lesaOptions.maxMemory } as const;

/** Control for LESA: its basis, random coefficients; tells whether the learned coefficients carry anything. */
export const randSvd: Method = {
  name: 'rand-svd',
  summary: 'control: U·diag(S)·V\' of the type\'s stacked SVD with random V\' (seeded per tensor), norm-matched to the neighbours; other tensors from --fill',
  reference: 'https://arxiv.org/abs/2502.13794',
  options: randSvdOptions,
  plan(ctx) {
    return predictedPlan(ctx, 'rand-svd', { seed: ctx.options.seed, ...recorded(randSvdOptions, lesaOptionsOf(ctx)) }, (j) => `rand-svd(${j},${j + 1})`);
  },
  resources: predictedResources,
  prepare(ckpt, plan, ctx, hooks) {
    const { layout, options } = ctx;
    return preparePredicted(ckpt, plan, ctx, hooks, async (d) => ({
      async layer(j, US, threads) {
        const lt = layout.layerTensors.find((t) => t.type === d.type)!;
        const seed = tensorSeed(options.seed, `${layerTensorName(layout.arch, j, lt)}#new-after-${j}`);
        const norm = await meanNorm((i) => readLayer(ckpt, layout, d.type, i), [j, j + 1]);
        return randomInBasis(d, US, seed, norm, threads);
      },
    }));
  },
};
