import type { ArchTable } from '../schema.js';
import { attentionProjections, llamaGlobals, mlpProjections } from './llama.js';

/**
 * OLMo 2: norms after each branch (no input norm), RMSNorms over the whole query and key
 * projections (heads × head_dim wide, so they are permuted with the heads).
 */
export const olmo2: ArchTable = {
  family: 'olmo2',
  modelTypes: ['olmo2'],
  architectures: ['Olmo2ForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: [
    ...attentionProjections,
    { type: 'q_norm', suffix: 'self_attn.q_norm.weight', role: 'norm' },
    { type: 'k_norm', suffix: 'self_attn.k_norm.weight', role: 'norm' },
    { type: 'post_attention_layernorm', suffix: 'post_attention_layernorm.weight', role: 'norm' },
    ...mlpProjections,
    { type: 'post_feedforward_layernorm', suffix: 'post_feedforward_layernorm.weight', role: 'norm' },
  ],
  globalTensors: llamaGlobals,
  perLayerConfigLists: [],
  layerIndexConfigKeys: [],
  normIdentity: 1,
  residualOutputs: ['o_proj', 'down_proj'],
  residualScales: ['post_attention_layernorm', 'post_feedforward_layernorm'],
  experts: null,
  units: {
    mlp: { rows: ['gate_proj', 'up_proj'], cols: ['down_proj'] },
    heads: { q: ['q_proj', 'q_norm'], kv: ['k_proj', 'v_proj', 'k_norm'], o: ['o_proj'] },
  },
};
