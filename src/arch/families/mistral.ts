import type { ArchTable } from '../schema.js';
import { llamaGlobals, llamaLayer } from './llama.js';

export const mistral: ArchTable = {
  family: 'mistral',
  modelTypes: ['mistral'],
  architectures: ['MistralForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: llamaLayer,
  globalTensors: llamaGlobals,
  perLayerConfigLists: ['layer_types'],
  layerIndexConfigKeys: [],
  normIdentity: 1,
  residualOutputs: ['o_proj', 'down_proj'],
  residualScales: [],
  experts: null,
  units: {
    mlp: { rows: ['gate_proj', 'up_proj'], cols: ['down_proj'] },
    heads: { q: ['q_proj'], kv: ['k_proj', 'v_proj'], o: ['o_proj'] },
  },
};
