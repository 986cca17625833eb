import { layerTensorName, type ModelLayout, tensorsOfLayer } from '../arch/index.js';
import { UserError } from '../errors.js';
import type { Plan } from './recipe.js';

/**
 * `--scale TYPE=FACTOR`: multiply the new layers' tensors of each type by a factor after the
 * method made them (mergekit #198: q/k × 0.707, o_proj/down_proj × 0.5 on duplicated layers).
 * Original layers and globals are untouched. Identity starts survive it: their silenced
 * tensors are zeros (0 × f = 0), and the other tensors of a silenced branch never reach the
 * residual stream. The one exception is a silencing norm filled with a non-zero value
 * (Gemma's (1 + w) post-norms hold −1): scaling that one is refused.
 */
export function applyScales(plan: Plan, layout: ModelLayout, scales: Record<string, number>): Plan {
  const types = Object.keys(scales);
  if (types.length === 0) return plan;
  const known = layout.layerTensors.map((lt) => lt.type);
  const unknown = types.filter((t) => !known.includes(t));
  if (unknown.length > 0) throw new UserError(`--scale: this model's layers have no ${unknown.join(', ')}; layer tensor types: ${known.join(', ')}`);
  const byName = new Map(plan.tensors.map((t) => [t.name, t]));
  const tensors = plan.tensors.map((t) => ({ ...t }));
  const out = new Map(tensors.map((t) => [t.name, t]));
  for (const layer of plan.layers.filter((l) => l.kind === 'new')) {
    for (const lt of tensorsOfLayer(layout, layer.source).filter((x) => x.type in scales)) {
      const name = layerTensorName(layout.arch, layer.out, lt);
      const r = byName.get(name)!.recipe;
      const factor = scales[lt.type];
      if (r.kind === 'fill' && r.value !== 0 && layout.arch.residualScales.includes(lt.type) && factor !== 1) {
        throw new UserError(`--scale ${lt.type}: in ${plan.method}'s new layers this norm is filled with ${r.value} to silence the block; scaling it would break the identity start`);
      }
      out.get(name)!.scale = factor;
    }
  }
  return { ...plan, tensors, options: { ...plan.options, scale: { ...scales } } };
}
