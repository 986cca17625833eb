import { UserError } from '../errors.js';
import { assemblePlan, copyOf, type OutputLayer, originalLayer } from '../plan/build.js';
import type { Method } from './method.js';
import { targetBounds, targetFits, type TargetRule } from './targets.js';

const solarTargets: TargetRule = { min: [1, 1], max: [2, -2], even: true, why: 'm = (2L - target)/2 layers dropped at the seam' };

/** SOLAR depth up-scaling: layers [0, L-m) then [m, L); the overlap's second copies are new. */
export const solar: Method = {
  name: 'solar',
  summary: 'two copies of the stack, the top m layers cut from the first and the bottom m from the second',
  reference: 'https://arxiv.org/abs/2312.15166',
  targets: solarTargets,
  plan(ctx) {
    const { layout, options } = ctx;
    const L = layout.layers;
    const T = options.targetLayers;
    if (options.after) throw new UserError('solar places layers by its own rule; --after does not apply');
    if (!targetFits(solarTargets, L, T)) {
      const valid = [];
      const [lo, hi] = targetBounds(solarTargets, L);
      for (let t = lo; t <= hi; t++) if (targetFits(solarTargets, L, t)) valid.push(t);
      throw new UserError(`solar drops m = (2L - target)/2 layers from each copy, so the target must be even and below 2L-1: with L = ${L}, --target-layers must be one of ${valid.join(', ') || '(none: the model is too shallow)'}; got ${T}`);
    }
    const m = (2 * L - T) / 2;
    const sequence: OutputLayer[] = [];
    for (let i = 0; i < L - m; i++) sequence.push(originalLayer(layout, i));
    for (let i = m; i < L; i++) {
      sequence.push(i < L - m
        ? { origin: { kind: 'new', source: i, how: `copy of ${i} (second stack)` }, recipe: (lt) => copyOf(layout, i, lt) }
        : originalLayer(layout, i));
    }
    return assemblePlan('solar', { targetLayers: T, m }, layout, ctx.config, sequence);
  },
};
