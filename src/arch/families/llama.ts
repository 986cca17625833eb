import type { ArchTable, LayerTensor } from '../schema.js';

/** The four attention projections, as Llama names them (shared by every family but Phi-3). */
export const attentionProjections: LayerTensor[] = [
  { type: 'q_proj', suffix: 'self_attn.q_proj.weight', role: 'linear' },
  { type: 'k_proj', suffix: 'self_attn.k_proj.weight', role: 'linear' },
  { type: 'v_proj', suffix: 'self_attn.v_proj.weight', role: 'linear' },
  { type: 'o_proj', suffix: 'self_attn.o_proj.weight', role: 'linear' },
];

/** The gated MLP's three projections. */
export const mlpProjections: LayerTensor[] = [
  { type: 'gate_proj', suffix: 'mlp.gate_proj.weight', role: 'linear' },
  { type: 'up_proj', suffix: 'mlp.up_proj.weight', role: 'linear' },
  { type: 'down_proj', suffix: 'mlp.down_proj.weight', role: 'linear' },
];

/** Attention + gated MLP + two RMSNorms: the shape shared by Llama, Mistral, Qwen2/3. */
export const llamaLayer: LayerTensor[] = [
  { type: 'input_layernorm', suffix: 'input_layernorm.weight', role: 'norm' },
  ...attentionProjections,
  { type: 'post_attention_layernorm', suffix: 'post_attention_layernorm.weight', role: 'norm' },
  ...mlpProjections,
];

export const llamaGlobals = [
  { name: 'model.embed_tokens.weight' },
  { name: 'model.norm.weight' },
  { name: 'lm_head.weight', optional: true }, // absent when tie_word_embeddings
];

const optionalBiases: LayerTensor[] = [
  { type: 'q_bias', suffix: 'self_attn.q_proj.bias', role: 'bias', optional: true },
  { type: 'k_bias', suffix: 'self_attn.k_proj.bias', role: 'bias', optional: true },
  { type: 'v_bias', suffix: 'self_attn.v_proj.bias', role: 'bias', optional: true },
  { type: 'o_bias', suffix: 'self_attn.o_proj.bias', role: 'bias', optional: true },
  { type: 'gate_bias', suffix: 'mlp.gate_proj.bias', role: 'bias', optional: true },
  { type: 'up_bias', suffix: 'mlp.up_proj.bias', role: 'bias', optional: true },
  { type: 'down_bias', suffix: 'mlp.down_proj.bias', role: 'bias', optional: true },
];

export const llama: ArchTable = {
  family: 'llama',
  modelTypes: ['llama'],
  architectures: ['LlamaForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: [...llamaLayer, ...optionalBiases], // attention_bias / mlp_bias
  globalTensors: llamaGlobals,
  perLayerConfigLists: [],
  layerIndexConfigKeys: [],
  normIdentity: 1,
  residualOutputs: ['o_proj', 'down_proj'],
  residualScales: [],
  experts: null,
  units: {
    mlp: { rows: ['gate_proj', 'up_proj', 'gate_bias', 'up_bias'], cols: ['down_proj'] },
    heads: { q: ['q_proj', 'q_bias'], kv: ['k_proj', 'v_proj', 'k_bias', 'v_bias'], o: ['o_proj'] },
  },
};
