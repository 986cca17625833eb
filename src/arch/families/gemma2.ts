import type { ArchTable } from '../schema.js';
import { gemma3 } from './gemma3.js';

/** Gemma 2: Gemma 3's layer without the q/k norms (sandwich norms, (1 + w) RMSNorm, layer_types). */
export const gemma2: ArchTable = {
  ...gemma3,
  family: 'gemma2',
  modelTypes: ['gemma2'],
  architectures: ['Gemma2ForCausalLM'],
  layerTensors: gemma3.layerTensors.filter((lt) => lt.type !== 'q_norm' && lt.type !== 'k_norm'),
};
