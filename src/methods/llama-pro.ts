import { copyOf } from '../plan/build.js';
import type { Method } from './method.js';
import { identityRecipes, perGapPlan } from './per-gap.js';

/** Identity blocks: the copy's branches add nothing to the residual stream, so the model computes what it did. */
export const llamaPro: Method = {
  name: 'llama-pro',
  summary: 'copy of the layer before, with o_proj and down_proj zeroed (function-preserving)',
  reference: 'https://arxiv.org/abs/2401.02415',
  plan(ctx) {
    const silence = identityRecipes(ctx);
    // Bottom placement measured best for identity starts on both models (docs/study.md).
    return perGapPlan(ctx, 'llama-pro', {}, false, (j) => `copy of ${j}, outputs silenced`,
      (j, lt) => silence.get(lt.type) ?? copyOf(ctx.layout, j, lt), 'bottom');
  },
};
