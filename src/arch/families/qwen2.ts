import type { ArchTable } from '../schema.js';
import { llamaGlobals, llamaLayer } from './llama.js';

/** Qwen2: Llama layout plus q/k/v biases (always present); sliding window by layer index. */
export const qwen2: ArchTable = {
  family: 'qwen2',
  modelTypes: ['qwen2'],
  architectures: ['Qwen2ForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: [
    ...llamaLayer,
    { type: 'q_bias', suffix: 'self_attn.q_proj.bias', role: 'bias' },
    { type: 'k_bias', suffix: 'self_attn.k_proj.bias', role: 'bias' },
    { type: 'v_bias', suffix: 'self_attn.v_proj.bias', role: 'bias' },
  ],
  globalTensors: llamaGlobals,
  perLayerConfigLists: ['layer_types'],
  layerIndexConfigKeys: ['max_window_layers'],
  normIdentity: 1,
  residualOutputs: ['o_proj', 'down_proj'],
  residualScales: [],
  experts: null,
  units: {
    mlp: { rows: ['gate_proj', 'up_proj'], cols: ['down_proj'] },
    heads: { q: ['q_proj', 'q_bias'], kv: ['k_proj', 'v_proj', 'k_bias', 'v_bias'], o: ['o_proj'] },
  },
};
