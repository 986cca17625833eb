import { layerHolds, layerTensorName } from '../arch/index.js';
import type { Recipe } from '../plan/recipe.js';
import { fnv1a } from '../execute/f32.js';
import type { Method } from './method.js';
import { recorded, withDefaults, type OptionTable } from './options.js';
import { perGapPlan } from './per-gap.js';

/** FNV-1a of the tensor name from the seed mixed into FNV's offset basis: each tensor gets its own stream. */
export function tensorSeed(seed: number, name: string): number {
  return fnv1a(0x811c9dc5 ^ seed, name);
}

const randomOptions = {
  matchNorm: { type: 'boolean', default: false, help: 'rescale each new matrix to the mean Frobenius norm of its neighbours' },
} as const satisfies OptionTable;

/** Control: a fresh layer of the right size and no structure. */
export const random: Method = {
  name: 'random',
  summary: 'fresh init: normal(0, initializer_range) matrices, identity norms, zero biases (--match-norm rescales to the neighbours)',
  reference: 'https://arxiv.org/abs/2502.13794',
  options: randomOptions,
  plan(ctx) {
    const { layout, config, options } = ctx;
    const { matchNorm } = withDefaults(randomOptions, options.methodOptions);
    const std = typeof config.initializer_range === 'number' ? config.initializer_range : 0.02;
    const L = layout.layers;
    return perGapPlan(ctx, 'random', { seed: options.seed, ...recorded(randomOptions, { matchNorm }), std }, false, (j) => `random${matchNorm ? ' (norm-matched)' : ''} after ${j}`,
      (j, lt): Recipe => {
        if (lt.role === 'norm') return { kind: 'fill', value: layout.arch.normIdentity };
        if (lt.role === 'bias') return { kind: 'zeros' };
        const name = `${layerTensorName(layout.arch, j, lt)}#new-after-${j}`;
        // A neighbour of the other kind (mixed MoE) has no tensor of this type to match.
        const neighbours = (j + 1 < L && layerHolds(layout, j + 1, lt) ? [j, j + 1] : [j]).map((i) => layerTensorName(layout.arch, i, lt));
        return { kind: 'random', seed: tensorSeed(options.seed, name), std, matchNormOf: matchNorm ? neighbours : undefined };
      });
  },
};
