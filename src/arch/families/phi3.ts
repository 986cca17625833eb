import type { ArchTable } from '../schema.js';
import { llamaGlobals } from './llama.js';

/**
 * Phi-3 / Phi-4: Llama's layer with fused projections, q/k/v in one `qkv_proj` and gate/up in
 * one `gate_up_proj`. Each fused tensor is one LESA weight type; neuron alignment is not
 * available (a unit's rows are spread over the fused tensor).
 */
export const phi3: ArchTable = {
  family: 'phi3',
  modelTypes: ['phi3'],
  architectures: ['Phi3ForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: [
    { type: 'input_layernorm', suffix: 'input_layernorm.weight', role: 'norm' },
    { type: 'qkv_proj', suffix: 'self_attn.qkv_proj.weight', role: 'linear' },
    { type: 'o_proj', suffix: 'self_attn.o_proj.weight', role: 'linear' },
    { type: 'post_attention_layernorm', suffix: 'post_attention_layernorm.weight', role: 'norm' },
    { type: 'gate_up_proj', suffix: 'mlp.gate_up_proj.weight', role: 'linear' },
    { type: 'down_proj', suffix: 'mlp.down_proj.weight', role: 'linear' },
  ],
  globalTensors: llamaGlobals,
  perLayerConfigLists: [],
  layerIndexConfigKeys: [],
  normIdentity: 1,
  residualOutputs: ['o_proj', 'down_proj'],
  residualScales: [],
  experts: null,
  units: null,
};
