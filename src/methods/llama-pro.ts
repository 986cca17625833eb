import { copyOf } from '../plan/build.js';
import type { Method } from './method.js';
import { perGapPlan, residualTypes } from './per-gap.js';

/** Identity blocks: the copy's residual outputs are zero, so the model computes what it did. */
export const llamaPro: Method = {
  name: 'llama-pro',
  summary: 'copy of the layer before, with o_proj and down_proj zeroed (function-preserving)',
  reference: 'https://arxiv.org/abs/2401.02415',
  plan(ctx) {
    const zero = residualTypes(ctx);
    return perGapPlan(ctx, 'llama-pro', {}, false, (j) => `copy of ${j}, outputs zeroed`,
      (j, lt) => (zero.has(lt.type) ? { kind: 'zeros' } : copyOf(ctx.layout, j, lt)));
  },
};
