import type { ArchTable, LayerTensor } from '../schema.js';
import { mlpProjections } from './llama.js';
import { qwen2 } from './qwen2.js';
import { qwen3 } from './qwen3.js';

/** A dense family's layer without its MLP: what its MoE sibling keeps. */
const attentionOf = (dense: ArchTable) => dense.layerTensors.filter((lt) => !mlpProjections.includes(lt));

const experts: LayerTensor[] = [
  { type: 'router', suffix: 'mlp.gate.weight', role: 'linear', only: 'sparse' },
  { type: 'expert{e}_gate_proj', suffix: 'mlp.experts.{e}.gate_proj.weight', role: 'linear', only: 'sparse' },
  { type: 'expert{e}_up_proj', suffix: 'mlp.experts.{e}.up_proj.weight', role: 'linear', only: 'sparse' },
  { type: 'expert{e}_down_proj', suffix: 'mlp.experts.{e}.down_proj.weight', role: 'linear', only: 'sparse' },
];

/** A dense layer's MLP (in mlp_only_layers, or off the decoder_sparse_step grid): Llama's three projections. */
const denseMlp: LayerTensor[] = mlpProjections.map((lt) => ({ ...lt, only: 'dense' }));

const qwenExperts = {
  countKeys: ['num_experts', 'num_local_experts'],
  denseLayers: { listKey: 'mlp_only_layers', stepKey: 'decoder_sparse_step' },
};

/** Qwen3-MoE: Qwen3's attention (q/k norms, optional biases); a router + experts MLP, or a dense one where the config says. */
export const qwen3Moe: ArchTable = {
  ...qwen3,
  family: 'qwen3_moe',
  modelTypes: ['qwen3_moe'],
  architectures: ['Qwen3MoeForCausalLM'],
  layerTensors: [...attentionOf(qwen3), ...experts, ...denseMlp],
  residualOutputs: ['o_proj', 'expert{e}_down_proj', 'down_proj'],
  experts: qwenExperts,
  units: null,
};

/** Qwen2-MoE (Qwen1.5-MoE): Qwen2's attention (q/k/v biases), routed experts plus a gated shared expert. */
export const qwen2Moe: ArchTable = {
  ...qwen2,
  family: 'qwen2_moe',
  modelTypes: ['qwen2_moe'],
  architectures: ['Qwen2MoeForCausalLM'],
  layerTensors: [
    ...attentionOf(qwen2),
    ...experts,
    { type: 'shared_expert_gate_proj', suffix: 'mlp.shared_expert.gate_proj.weight', role: 'linear', only: 'sparse' },
    { type: 'shared_expert_up_proj', suffix: 'mlp.shared_expert.up_proj.weight', role: 'linear', only: 'sparse' },
    { type: 'shared_expert_down_proj', suffix: 'mlp.shared_expert.down_proj.weight', role: 'linear', only: 'sparse' },
    { type: 'shared_expert_gate', suffix: 'mlp.shared_expert_gate.weight', role: 'linear', only: 'sparse' },
    ...denseMlp,
  ],
  residualOutputs: ['o_proj', 'expert{e}_down_proj', 'shared_expert_down_proj', 'down_proj'],
  experts: qwenExperts,
  units: null,
};
