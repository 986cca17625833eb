import { layerTensorName } from '../arch/index.js';
import type { Method } from './method.js';
import { identityRecipes, perGapPlan } from './per-gap.js';

/**
 * OpT-DeUS's idea (arXiv 2508.08011), reimplemented from the paper: align layer j's neurons
 * to layer j+1's, fuse by averaging, silence the new block's outputs so the expanded model
 * starts as the original. With equal neuron counts and uniform marginals the optimal
 * transport plan is a permutation matrix divided by n; we apply it rescaled by n (a plain
 * permutation), as intended. The public code leaves the 1/n in, which shrinks the fused
 * input projections to ~1/n of their size (docs/methods.md).
 */
export const otFuse: Method = {
  name: 'ot-fuse',
  summary: 'neurons/heads of layer j aligned to layer j+1 by optimal assignment, averaged; outputs silenced (identity start)',
  reference: 'https://arxiv.org/abs/2508.08011',
  alignment: 'required',
  plan(ctx) {
    const silence = identityRecipes(ctx);
    return perGapPlan(ctx, 'ot-fuse', {}, true, (j) => `aligned mean of ${j},${j + 1}, outputs silenced`, (j, lt) =>
      silence.get(lt.type) ?? {
        kind: 'mean',
        srcs: [layerTensorName(ctx.layout.arch, j, lt), layerTensorName(ctx.layout.arch, j + 1, lt)],
      }, 'bottom'); // measured best for identity starts on both models (docs/study.md)
  },
};
