import type { ModelConfig } from '../checkpoint/types.js';
import { type ModelLayout, textConfig } from '../arch/index.js';
import { denseLayerKeys } from '../arch/kinds.js';
import type { LayerOrigin } from './recipe.js';

/**
 * The output config (a wrapper's nested text config for multimodal checkpoints): depth set,
 * every per-layer list rebuilt from each output layer's source, layer-index thresholds
 * remapped, and an MoE's dense layers (mlp_only_layers, decoder_sparse_step) rewritten to each
 * output layer's source kind. Nothing else changes.
 */
export function growConfig(config: ModelConfig, layout: ModelLayout, layers: LayerOrigin[]): ModelConfig {
  const { arch } = layout;
  const out: ModelConfig = structuredClone(config);
  const src = textConfig(config, arch);
  const text = textConfig(out, arch); // the clone's nested object (or the clone itself): written in place
  text[arch.depthKey] = layers.length;
  for (const key of arch.perLayerConfigLists) {
    const v = src[key];
    if (Array.isArray(v)) text[key] = layers.map((l) => structuredClone(v[l.source]));
  }
  for (const key of arch.layerIndexConfigKeys) {
    const v = src[key];
    // "layers with index >= v behave differently": keep each output layer on its source's side.
    if (Number.isSafeInteger(v)) text[key] = layers.filter((l) => l.source < (v as number)).length;
  }
  if (layout.kinds) Object.assign(text, denseLayerKeys(arch, src, layers.map((l) => layout.kinds![l.source])));
  return out;
}
