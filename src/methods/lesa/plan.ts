import { layersWith, layerTensorName, type LayerTensor } from '../../arch/index.js';
import type { Plan, Recipe } from '../../plan/recipe.js';
import type { MethodContext } from '../method.js';
import { UserError } from '../../errors.js';
import { recorded } from '../options.js';
import { identityRecipes, perGapPlan } from '../per-gap.js';
import { trainingSteps } from './budget.js';
import { decompositionRank } from './decompose.js';
import { lesaOptions, lesaOptionsOf } from './options.js';

/**
 * LESA's plan: every linear weight of a new layer between j and j+1 is predicted from
 * the two neighbours' SVD coefficients; the other tensors come from --fill.
 */
export function lesaPlan(ctx: MethodContext): Plan {
  const o = lesaOptionsOf(ctx);
  if (typeof o.predictorSteps === 'number' && ctx.options.methodOptions.epochs !== undefined) {
    throw new UserError('give --epochs or --predictor-steps N, not both (--epochs scales only --predictor-steps llama-3-8b)');
  }
  const options = {
    seed: ctx.options.seed, ...recorded(lesaOptions, o),
    epochs: typeof o.predictorSteps === 'number' ? null : o.epochs, stepsPerType: stepsPerType(ctx),
  };
  const plan = predictedPlan(ctx, 'lesa', options, (j) => `LESA(${j},${j + 1})`);
  for (const type of predictedGaps(plan).keys()) {
    const held = layersWith(ctx.layout, type);
    // The predictor learns layer i from i-1 and i+1 among the layers holding the type.
    if (held.length < 3) throw new UserError(`LESA learns ${type} from layers with a neighbour on each side, but only ${held.length} layer(s) (${held.join(',')}) hold it; use another method or place the new layers elsewhere`);
  }
  return plan;
}

/**
 * A plan whose new layer between j and j+1 has every linear weight built from the type's
 * SVD (a 'predicted' recipe, served by preparePredicted) and the other tensors from --fill;
 * with --zero-out the residual outputs are silenced instead.
 */
export function predictedPlan(ctx: MethodContext, method: string, options: Record<string, unknown>, how: (j: number) => string): Plan {
  const { layout } = ctx;
  const o = lesaOptionsOf(ctx);
  const silence = o.zeroOut ? identityRecipes(ctx) : new Map<string, Recipe>();
  const name = (i: number, lt: LayerTensor) => layerTensorName(layout.arch, i, lt);
  return perGapPlan(ctx, method, options, true, (j) => `${how(j)}${o.zeroOut ? ', outputs zeroed' : ''}`,
    (j, lt): Recipe => {
      const quiet = silence.get(lt.type);
      if (quiet) return quiet;
      if (lt.role === 'linear') return { kind: 'predicted', type: lt.type, left: j };
      // layer0: the first layer holding the type (an MoE's dense-only tensors may skip layer 0).
      if (o.fill === 'layer0') return { kind: 'copy', src: name(layersWith(layout, lt.type)[0], lt) };
      return { kind: 'mean', srcs: [name(j, lt), name(j + 1, lt)] };
    });
}

/** The budget each linear type's predictor trains for, from shapes alone (recorded in lesa.json). */
export function stepsPerType(ctx: MethodContext): Record<string, number> {
  const { layout } = ctx;
  const out: Record<string, number> = {};
  for (const lt of layout.arch.layerTensors) {
    const info = layout.typeInfo.get(lt.type);
    if (lt.role !== 'linear' || !info) continue;
    const [rows, cols] = info.shape;
    const layers = layersWith(layout, lt.type).length;
    const rank = decompositionRank(rows, cols, layers);
    out[lt.type] = trainingSteps(lesaOptionsOf(ctx), lt.type, Math.max(0, layers - 2) * rank);
  }
  return out;
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
