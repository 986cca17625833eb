import { layerTensorName } from '../arch/index.js';
import type { Method } from './method.js';
import { perGapPlan } from './per-gap.js';

export const average: Method = {
  name: 'average',
  summary: 'element-wise mean of the two neighbouring layers, every tensor',
  reference: 'https://arxiv.org/abs/2502.13794',
  alignment: 'optional',
  plan: (ctx) => perGapPlan(ctx, 'average', {}, true, (j) => `mean of ${j},${j + 1}`, (j, lt) => ({
    kind: 'mean',
    srcs: [layerTensorName(ctx.layout.arch, j, lt), layerTensorName(ctx.layout.arch, j + 1, lt)],
  })),
};
