import type { ArchTable } from '../schema.js';
import { llamaGlobals, llamaLayer } from './llama.js';

/** Qwen3: Llama layout plus per-head RMSNorms on queries and keys, optional attention bias. */
export const qwen3: ArchTable = {
  family: 'qwen3',
  modelTypes: ['qwen3'],
  architectures: ['Qwen3ForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: [
    ...llamaLayer,
    { type: 'q_norm', suffix: 'self_attn.q_norm.weight', role: 'norm' },
    { type: 'k_norm', suffix: 'self_attn.k_norm.weight', role: 'norm' },
    { type: 'q_bias', suffix: 'self_attn.q_proj.bias', role: 'bias', optional: true },
    { type: 'k_bias', suffix: 'self_attn.k_proj.bias', role: 'bias', optional: true },
    { type: 'v_bias', suffix: 'self_attn.v_proj.bias', role: 'bias', optional: true },
    { type: 'o_bias', suffix: 'self_attn.o_proj.bias', role: 'bias', optional: true },
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
