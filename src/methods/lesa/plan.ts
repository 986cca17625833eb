import { layerTensorName, type LayerTensor } from '../../arch/index.js';
import type { Plan, Recipe } from '../../plan/recipe.js';
import type { MethodContext } from '../method.js';
import { recorded } from '../options.js';
import { identityRecipes, perGapPlan } from '../per-gap.js';
import { lesaOptions, lesaOptionsOf } from './options.js';

/**
 * LESA's plan: every linear weight of a new layer between j and j+1 is predicted from
 * the two neighbours' SVD coefficients; the other tensors come from --fill.
 */
export function lesaPlan(ctx: MethodContext): Plan {
  const { layout } = ctx;
  const o = lesaOptionsOf(ctx);
  const silence = o.zeroOut ? identityRecipes(ctx) : new Map<string, Recipe>();
  const name = (i: number, lt: LayerTensor) => layerTensorName(layout.arch, i, lt);
  return perGapPlan(ctx, 'lesa', { seed: ctx.options.seed, ...recorded(lesaOptions, o) }, true, (j) => `LESA(${j},${j + 1})${o.zeroOut ? ', outputs zeroed' : ''}`,
    (j, lt): Recipe => {
      const quiet = silence.get(lt.type);
      if (quiet) return quiet;
      if (lt.role === 'linear') return { kind: 'predicted', type: lt.type, left: j };
      if (o.fill === 'layer0') return { kind: 'copy', src: name(0, lt) };
      return { kind: 'mean', srcs: [name(j, lt), name(j + 1, lt)] };
    });
}

/** The weight types a plan asks LESA to predict, and the gaps each is needed for. */
export function predictedGaps(plan: Plan): Map<string, number[]> {
  const gaps = new Map<string, number[]>();
  for (const t of plan.tensors) {
    if (t.recipe.kind !== 'predicted') continue;
    const list = gaps.get(t.recipe.type) ?? [];
    if (!list.includes(t.recipe.left)) list.push(t.recipe.left);
    gaps.set(t.recipe.type, list);
  }
  return gaps;
}
