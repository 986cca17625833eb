import { UserError } from '../errors.js';
import { assemblePlan, copyOf, type OutputLayer, originalLayer } from '../plan/build.js';
import type { Method } from './method.js';
import { MAX_GROWTH, targetFits, type TargetRule } from './targets.js';

const stackTargets: TargetRule = { min: [2, 0], max: [MAX_GROWTH, 0], multipleOfSource: true, why: 'repeats the whole stack' };

/** G_stack: the whole stack repeated k times; every repetition after the first is new. */
export const stack: Method = {
  name: 'stack',
  summary: 'the whole layer stack repeated k times',
  reference: 'https://arxiv.org/abs/2405.15319',
  targets: stackTargets,
  plan(ctx) {
    const { layout, options } = ctx;
    const L = layout.layers;
    const T = options.targetLayers;
    if (options.after) throw new UserError('stack places layers by its own rule; --after does not apply');
    if (!targetFits(stackTargets, L, T)) {
      throw new UserError(`stack repeats the whole ${L}-layer stack: --target-layers must be a multiple of ${L} (${2 * L}, ${3 * L}, ...), got ${T}`);
    }
    const sequence: OutputLayer[] = [];
    for (let r = 0; r < T / L; r++) {
      for (let i = 0; i < L; i++) {
        sequence.push(r === 0 ? originalLayer(layout, i)
          : { origin: { kind: 'new', source: i, how: `copy of ${i} (stack ${r + 1})` }, recipe: (lt) => copyOf(layout, i, lt) });
      }
    }
    return assemblePlan('stack', { targetLayers: T, repeats: T / L }, layout, ctx.config, sequence);
  },
};
