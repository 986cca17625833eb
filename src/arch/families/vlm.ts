import type { ArchTable } from '../schema.js';
import { gemma3 } from './gemma3.js';
import { mistral } from './mistral.js';
import { qwen2 } from './qwen2.js';

/**
 * Image-text wrappers around a text decoder, in the hub's (and transformers' save) layout:
 * `language_model.model.layers.N`, config nested under `text_config`. Only the decoder
 * grows; the vision tower, projector and every other tensor are copied through unchanged.
 */
function wrapper(text: ArchTable, family: string, modelType: string, architecture: string): ArchTable {
  return {
    ...text,
    family,
    modelTypes: [modelType],
    architectures: [architecture],
    textConfig: { key: 'text_config', flatAllowed: false },
    layerPrefix: 'language_model.model.layers.',
    globalTensors: [
      { name: 'language_model.model.embed_tokens.weight' },
      { name: 'language_model.model.norm.weight' },
      { name: 'language_model.lm_head.weight', optional: true },
    ],
  };
}

export const gemma3Vlm = wrapper(gemma3, 'gemma3_vlm', 'gemma3', 'Gemma3ForConditionalGeneration');
export const mistral3 = wrapper(mistral, 'mistral3', 'mistral3', 'Mistral3ForConditionalGeneration');

/**
 * Qwen2-VL and Qwen2.5-VL: the decoder keeps Qwen2's names (`model.layers.N`), the vision
 * tower is `visual.*`. transformers writes the text keys under `text_config`; the hub's
 * configs keep them at the top level, so both are read.
 */
export const qwen2Vl: ArchTable = {
  ...qwen2,
  family: 'qwen2_vl',
  modelTypes: ['qwen2_vl', 'qwen2_5_vl'],
  architectures: ['Qwen2VLForConditionalGeneration', 'Qwen2_5_VLForConditionalGeneration'],
  textConfig: { key: 'text_config', flatAllowed: true },
};
