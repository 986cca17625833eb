import type { ArchTable, LayerTensor } from '../schema.js';
import { attentionProjections, llamaGlobals } from './llama.js';

const experts: LayerTensor[] = [
  { type: 'router', suffix: 'mlp.gate.weight', role: 'linear' },
  { type: 'expert{e}_gate_proj', suffix: 'mlp.experts.{e}.gate_proj.weight', role: 'linear' },
  { type: 'expert{e}_up_proj', suffix: 'mlp.experts.{e}.up_proj.weight', role: 'linear' },
  { type: 'expert{e}_down_proj', suffix: 'mlp.experts.{e}.down_proj.weight', role: 'linear' },
];

/**
 * lesa grows only checkpoints whose every layer is sparse (what released Qwen MoE models
 * have): a dense layer (in mlp_only_layers, or off the decoder_sparse_step grid) has other tensors.
 */
const qwenExperts = {
  countKeys: ['num_experts', 'num_local_experts'],
  everyLayerSparseWhen: { mlp_only_layers: [], decoder_sparse_step: 1 },
};

/** Qwen3-MoE: Qwen3's attention (q/k norms) and a router + experts MLP in every layer. */
export const qwen3Moe: ArchTable = {
  family: 'qwen3_moe',
  modelTypes: ['qwen3_moe'],
  architectures: ['Qwen3MoeForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: [
    { type: 'input_layernorm', suffix: 'input_layernorm.weight', role: 'norm' },
    ...attentionProjections,
    { type: 'q_norm', suffix: 'self_attn.q_norm.weight', role: 'norm' },
    { type: 'k_norm', suffix: 'self_attn.k_norm.weight', role: 'norm' },
    { type: 'q_bias', suffix: 'self_attn.q_proj.bias', role: 'bias', optional: true },
    { type: 'k_bias', suffix: 'self_attn.k_proj.bias', role: 'bias', optional: true },
    { type: 'v_bias', suffix: 'self_attn.v_proj.bias', role: 'bias', optional: true },
    { type: 'o_bias', suffix: 'self_attn.o_proj.bias', role: 'bias', optional: true },
    { type: 'post_attention_layernorm', suffix: 'post_attention_layernorm.weight', role: 'norm' },
    ...experts,
  ],
  globalTensors: llamaGlobals,
  perLayerConfigLists: ['layer_types'],
  layerIndexConfigKeys: ['max_window_layers'],
  normIdentity: 1,
  residualOutputs: ['o_proj', 'expert{e}_down_proj'],
  residualScales: [],
  experts: qwenExperts,
  units: null,
};

/** Qwen2-MoE (Qwen1.5-MoE): q/k/v biases, routed experts plus a gated shared expert. */
export const qwen2Moe: ArchTable = {
  ...qwen3Moe,
  family: 'qwen2_moe',
  modelTypes: ['qwen2_moe'],
  architectures: ['Qwen2MoeForCausalLM'],
  layerTensors: [
    { type: 'input_layernorm', suffix: 'input_layernorm.weight', role: 'norm' },
    ...attentionProjections,
    { type: 'q_bias', suffix: 'self_attn.q_proj.bias', role: 'bias' },
    { type: 'k_bias', suffix: 'self_attn.k_proj.bias', role: 'bias' },
    { type: 'v_bias', suffix: 'self_attn.v_proj.bias', role: 'bias' },
    { type: 'post_attention_layernorm', suffix: 'post_attention_layernorm.weight', role: 'norm' },
    ...experts,
    { type: 'shared_expert_gate_proj', suffix: 'mlp.shared_expert.gate_proj.weight', role: 'linear' },
    { type: 'shared_expert_up_proj', suffix: 'mlp.shared_expert.up_proj.weight', role: 'linear' },
    { type: 'shared_expert_down_proj', suffix: 'mlp.shared_expert.down_proj.weight', role: 'linear' },
    { type: 'shared_expert_gate', suffix: 'mlp.shared_expert_gate.weight', role: 'linear' },
  ],
  residualOutputs: ['o_proj', 'expert{e}_down_proj', 'shared_expert_down_proj'],
};
