import type { ArchTable } from '../schema.js';
import { attentionProjections, mlpProjections } from './llama.js';

/**
 * Gemma 3 text models: four norms per layer (sandwich), q/k norms, and RMSNorm computed
 * as x * (1 + w), so the identity norm weight is 0.
 */
export const gemma3: ArchTable = {
  family: 'gemma3',
  modelTypes: ['gemma3_text'],
  architectures: ['Gemma3ForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: [
    { type: 'input_layernorm', suffix: 'input_layernorm.weight', role: 'norm' },
    ...attentionProjections,
    { type: 'q_norm', suffix: 'self_attn.q_norm.weight', role: 'norm' },
    { type: 'k_norm', suffix: 'self_attn.k_norm.weight', role: 'norm' },
    { type: 'post_attention_layernorm', suffix: 'post_attention_layernorm.weight', role: 'norm' },
    { type: 'pre_feedforward_layernorm', suffix: 'pre_feedforward_layernorm.weight', role: 'norm' },
    { type: 'post_feedforward_layernorm', suffix: 'post_feedforward_layernorm.weight', role: 'norm' },
    ...mlpProjections,
  ],
  globalTensors: [
    { name: 'model.embed_tokens.weight' },
    { name: 'model.norm.weight' },
    { name: 'lm_head.weight', optional: true },
  ],
  perLayerConfigLists: ['layer_types'],
  layerIndexConfigKeys: [],
  normIdentity: 0,
  residualOutputs: ['o_proj', 'down_proj'],
  residualScales: ['post_attention_layernorm', 'post_feedforward_layernorm'],
  experts: null,
  units: {
    mlp: { rows: ['gate_proj', 'up_proj'], cols: ['down_proj'] },
    heads: { q: ['q_proj'], kv: ['k_proj', 'v_proj'], o: ['o_proj'] },
  },
};
