import type { ModelConfig } from '../checkpoint/types.js';
import type { ArchTable } from '../arch/index.js';
import type { LayerOrigin } from './recipe.js';

/**
 * The output config: depth set, every per-layer list rebuilt from each output layer's
 * source, and layer-index thresholds remapped. Nothing else changes.
 */
export function growConfig(config: ModelConfig, arch: ArchTable, layers: LayerOrigin[]): ModelConfig {
  const out: ModelConfig = structuredClone(config);
  out[arch.depthKey] = layers.length;
  for (const key of arch.perLayerConfigLists) {
    const v = config[key];
    if (Array.isArray(v)) out[key] = layers.map((l) => structuredClone(v[l.source]));
  }
  for (const key of arch.layerIndexConfigKeys) {
    const v = config[key];
    // "layers with index >= v behave differently": keep each output layer on its source's side.
    if (Number.isSafeInteger(v)) out[key] = layers.filter((l) => l.source < (v as number)).length;
  }
  return out;
}
