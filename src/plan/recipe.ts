import type { DType, ModelConfig } from '../checkpoint/types.js';

/**
 * How one output tensor is made. Source tensors are named by their full name in the
 * input checkpoint; every recipe produces exactly `shape` elements of `dtype`.
 */
export type Recipe =
  | { kind: 'copy'; src: string }
  | { kind: 'mean'; srcs: string[] }
  | { kind: 'zeros' }
  /** Every element `value` (norm weights: identity or zero scale). */
  | { kind: 'fill'; value: number }
  /** normal(0, std), seeded per tensor; optionally rescaled to the mean Frobenius norm of `matchNormOf`. */
  | { kind: 'random'; seed: number; std: number; matchNormOf?: string[] }
  /** LESA: the predicted linear weight of `type` for a layer between original layers `left` and `left + 1`. */
  | { kind: 'predicted'; type: string; left: number };

export interface OutputTensor {
  name: string;
  dtype: DType;
  shape: number[];
  recipe: Recipe;
  /** Multiply the recipe's result by this (--scale, new layers only; src/plan/scale.ts). */
  scale?: number;
}

/** Where one output layer comes from, for --dry-run, manifests and the CPT trainer. */
export interface LayerOrigin {
  /** Output layer index. */
  out: number;
  /** 'original': an unchanged source layer; 'new': an inserted one. */
  kind: 'original' | 'new';
  /** Source layer this output layer is (original) or is chiefly built from (new). */
  source: number;
  /** For a new layer between two original layers. */
  between?: [number, number];
  /** One short human phrase, e.g. "copy of 14", "mean of 14,15", "LESA(14,15)". */
  how: string;
}

export interface Plan {
  method: string;
  options: Record<string, unknown>;
  sourceLayers: number;
  targetLayers: number;
  layers: LayerOrigin[];
  /** Output tensors in write order. */
  tensors: OutputTensor[];
  /** The output config.json, every per-layer list grown. */
  config: ModelConfig;
}
