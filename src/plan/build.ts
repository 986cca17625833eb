import type { ModelConfig, TensorRef } from '../checkpoint/types.js';
import { type LayerTensor, layerTensorName, type ModelLayout, tensorsOfLayer } from '../arch/index.js';
import { growConfig } from './config.js';
import type { LayerOrigin, OutputTensor, Plan, Recipe } from './recipe.js';

/** One output layer: where it comes from and how each of its tensors is made. */
export interface OutputLayer {
  origin: Omit<LayerOrigin, 'out'>;
  recipe: (lt: LayerTensor) => Recipe;
}

export type SourceInfo = Pick<TensorRef, 'dtype' | 'shape'>;

/**
 * Assembles a plan from an output layer sequence: the first global tensor (embeddings),
 * then every layer's tensors in table order, then the remaining globals, all copied. An
 * output layer has its source layer's kind (MoE checkpoints mixing dense and sparse MLPs).
 */
export function assemblePlan(
  method: string,
  options: Record<string, unknown>,
  layout: ModelLayout,
  config: ModelConfig,
  sequence: OutputLayer[],
): Plan {
  const { arch } = layout;
  const layers: LayerOrigin[] = sequence.map((s, out) => ({ out, ...s.origin }));
  const tensors: OutputTensor[] = [];
  const copyGlobal = (name: string) => {
    const info = layout.globalInfo.get(name)!;
    tensors.push({ name, dtype: info.dtype, shape: info.shape, recipe: { kind: 'copy', src: name } });
  };
  const [first, ...rest] = layout.globals;
  if (first) copyGlobal(first);
  sequence.forEach((s, out) => {
    for (const lt of tensorsOfLayer(layout, s.origin.source)) {
      const info = layout.typeInfo.get(lt.type)!;
      tensors.push({ name: layerTensorName(arch, out, lt), dtype: info.dtype, shape: info.shape, recipe: s.recipe(lt) });
    }
  });
  rest.forEach(copyGlobal);
  return {
    method,
    options,
    sourceLayers: layout.layers,
    targetLayers: sequence.length,
    layers,
    tensors,
    config: growConfig(config, layout, layers),
  };
}

/** The recipe that copies layer `layer`'s tensor of this type. */
export function copyOf(layout: ModelLayout, layer: number, lt: LayerTensor): Recipe {
  return { kind: 'copy', src: layerTensorName(layout.arch, layer, lt) };
}

export function originalLayer(layout: ModelLayout, source: number): OutputLayer {
  return { origin: { kind: 'original', source, how: `original ${source}` }, recipe: (lt) => copyOf(layout, source, lt) };
}
