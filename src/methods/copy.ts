import { copyOf } from '../plan/build.js';
import type { Method } from './method.js';
import { perGapPlan } from './per-gap.js';

export const copy: Method = {
  name: 'copy',
  summary: 'each new layer is an exact copy of the layer before it',
  reference: 'https://arxiv.org/abs/2502.13794',
  plan: (ctx) => perGapPlan(ctx, 'copy', {}, false, (j) => `copy of ${j}`, (j, lt) => copyOf(ctx.layout, j, lt)),
};
