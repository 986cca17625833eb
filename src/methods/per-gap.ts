import type { LayerTensor } from '../arch/index.js';
import { UserError } from '../errors.js';
import { assemblePlan, type OutputLayer, originalLayer } from '../plan/build.js';
import { interleave, placeGaps, placeLlamaPro, type PlacementStrategy } from '../plan/placement.js';
import type { Plan, Recipe } from '../plan/recipe.js';
import type { MethodContext } from './method.js';

/** Positions ("after original layer j") for per-gap methods: --after, else by `placement`. */
function positions(ctx: MethodContext, interpolating: boolean, placement: PlacementStrategy | 'llama-pro'): number[] {
  const L = ctx.layout.layers;
  const { targetLayers, after } = ctx.options;
  if (!Number.isSafeInteger(targetLayers) || targetLayers <= L) {
    throw new UserError(`--target-layers must be larger than the model's ${L} layers, got ${targetLayers}`);
  }
  const added = targetLayers - L;
  const pos = placement === 'llama-pro' && !after
    ? placeLlamaPro(L, added)
    : placeGaps(L, added, { after, strategy: placement === 'llama-pro' ? undefined : placement });
  if (interpolating) {
    const bad = pos.find((j) => j > L - 2);
    if (bad !== undefined) throw new UserError(`this method builds a layer from layers j and j+1, so it cannot go after the last layer (${bad}); choose positions 0..${L - 2}`);
    const kinds = ctx.layout.kinds;
    const mixed = kinds ? pos.find((j) => kinds[j] !== kinds[j + 1]) : undefined;
    if (mixed !== undefined) {
      const fine = [...Array(L - 1).keys()].filter((j) => kinds![j] === kinds![j + 1]);
      throw new UserError(`this method builds a layer from layers j and j+1, but layer ${mixed} has a ${kinds![mixed]} MLP and layer ${mixed + 1} a ${kinds![mixed + 1]} one (mlp_only_layers / decoder_sparse_step); place new layers with --after between layers of one kind (${fine.length ? fine.join(',') : 'none in this model'}) or use a copying method (copy, llama-pro, solar, stack)`);
    }
  }
  return pos;
}

/**
 * A plan that inserts one layer per position, made by `newLayer(j, lt)`. Without --placement or
 * --after, positions follow `defaultPlacement` (the paper's "top" unless a method measured better).
 */
export function perGapPlan(
  ctx: MethodContext,
  method: string,
  options: Record<string, unknown>,
  interpolating: boolean,
  how: (j: number) => string,
  newLayer: (j: number, lt: LayerTensor) => Recipe,
  defaultPlacement: PlacementStrategy = 'top',
): Plan {
  const { layout } = ctx;
  const placement = ctx.options.placement ?? defaultPlacement;
  const pos = positions(ctx, interpolating, placement);
  const sequence: OutputLayer[] = interleave(layout.layers, pos).map((e) =>
    e.kind === 'original'
      ? originalLayer(layout, e.source)
      : {
          origin: { kind: 'new', source: e.after, between: interpolating ? [e.after, e.after + 1] : undefined, how: how(e.after) },
          recipe: (lt: LayerTensor) => newLayer(e.after, lt),
        });
  return assemblePlan(method, { targetLayers: ctx.options.targetLayers, placement: ctx.options.after ? 'after' : placement, positions: pos, ...options }, layout, ctx.config, sequence);
}

/**
 * How an identity block silences its branches: zero-scale post-norms where the family has
 * them (Gemma), else zero residual projections (o_proj, down_proj and their biases).
 */
export function identityRecipes(ctx: MethodContext): Map<string, Recipe> {
  const { arch } = ctx.layout;
  if (arch.residualScales.length > 0) {
    return new Map(arch.residualScales.map((t) => [t, { kind: 'fill', value: arch.normIdentity - 1 } as Recipe]));
  }
  return new Map([...residualTypes(ctx)].map((t) => [t, { kind: 'zeros' } as Recipe]));
}

/** Linear and bias types whose output is added to the residual stream (o_proj, down_proj and their biases). */
export function residualTypes(ctx: MethodContext): Set<string> {
  const { arch } = ctx.layout;
  const outs = arch.layerTensors.filter((t) => arch.residualOutputs.includes(t.type));
  const biasSuffixes = new Set(outs.map((t) => t.suffix.replace(/\.weight$/, '.bias')));
  return new Set([...outs.map((t) => t.type), ...arch.layerTensors.filter((t) => biasSuffixes.has(t.suffix)).map((t) => t.type)]);
}
