import type { ArchTable } from '../schema.js';
import { gemma3 } from './gemma3.js';
import { mistral } from './mistral.js';

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
    textConfigKey: 'text_config',
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
