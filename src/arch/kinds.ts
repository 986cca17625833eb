import type { ModelConfig } from '../checkpoint/types.js';
import { UserError } from '../errors.js';
import type { ArchTable, LayerKind } from './schema.js';

/**
 * The kind of each layer of an MoE checkpoint whose config can make layers dense, read as
 * transformers reads it (Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer): layer i has the experts
 * iff i is not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0. null for tables
 * without dense layers. `where` prefixes key names in messages (a wrapper's "text_config.").
 */
export function layerKinds(arch: ArchTable, text: ModelConfig, layers: number, where: string): LayerKind[] | null {
  const keys = arch.experts?.denseLayers;
  if (!keys) return null;
  const list = text[keys.listKey] ?? []; // null is transformers' default too
  const step = text[keys.stepKey] === undefined ? 1 : text[keys.stepKey];
  if (!Number.isSafeInteger(step) || (step as number) < 1) {
    throw new UserError(`config.json "${where}${keys.stepKey}" must be a positive integer (every step-th layer has the experts), got ${JSON.stringify(step)}`);
  }
  if (!Array.isArray(list) || list.some((i) => !Number.isSafeInteger(i) || i < 0 || i >= layers) || new Set(list).size !== list.length) {
    throw new UserError(`config.json "${where}${keys.listKey}" must list distinct layer indices 0..${layers - 1} (the layers with a dense MLP), got ${JSON.stringify(list).slice(0, 200)}`);
  }
  return kindsOf(layers, list as number[], step as number);
}

function kindsOf(layers: number, denseList: number[], step: number): LayerKind[] {
  return [...Array(layers).keys()].map((i) => (!denseList.includes(i) && (i + 1) % step === 0 ? 'sparse' : 'dense'));
}

/**
 * The dense-layer keys of an output config whose layer i has kind `kinds[i]`: the source's step
 * kept (list empty) when the step alone still yields every kind, else every dense layer listed
 * explicitly with step 1. A source whose keys were absent keeps them absent while all is sparse.
 */
export function denseLayerKeys(arch: ArchTable, src: ModelConfig, kinds: LayerKind[]): Record<string, unknown> {
  const keys = arch.experts!.denseLayers!;
  const step = (src[keys.stepKey] === undefined ? 1 : src[keys.stepKey]) as number;
  const same = (a: LayerKind[]) => a.every((k, i) => k === kinds[i]);
  const out: Record<string, unknown> = {};
  if (same(kindsOf(kinds.length, [], step))) {
    if (src[keys.listKey] !== undefined) out[keys.listKey] = [];
    if (src[keys.stepKey] !== undefined) out[keys.stepKey] = step;
    return out;
  }
  out[keys.listKey] = kinds.flatMap((k, i) => (k === 'dense' ? [i] : []));
  out[keys.stepKey] = 1;
  return out;
}
