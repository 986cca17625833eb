import type { ArchTable } from '../schema.js';
import { llamaGlobals, llamaLayer, mlpProjections } from './llama.js';

/**
 * Mixtral: Mistral's attention, and a sparse MLP of a router and `num_local_experts` experts
 * (w1 gate, w3 up, w2 down), stored per expert as 2-D tensors (the hub's and transformers'
 * on-disk form). An output layer carries its source's router and all its experts.
 */
export const mixtral: ArchTable = {
  family: 'mixtral',
  modelTypes: ['mixtral'],
  architectures: ['MixtralForCausalLM'],
  textConfig: null,
  depthKey: 'num_hidden_layers',
  layerPrefix: 'model.layers.',
  layerTensors: [
    ...llamaLayer.filter((lt) => !mlpProjections.includes(lt)),
    { type: 'router', suffix: 'block_sparse_moe.gate.weight', role: 'linear' },
    { type: 'expert{e}_w1', suffix: 'block_sparse_moe.experts.{e}.w1.weight', role: 'linear' },
    { type: 'expert{e}_w3', suffix: 'block_sparse_moe.experts.{e}.w3.weight', role: 'linear' },
    { type: 'expert{e}_w2', suffix: 'block_sparse_moe.experts.{e}.w2.weight', role: 'linear' },
  ],
  globalTensors: llamaGlobals,
  perLayerConfigLists: ['layer_types'],
  layerIndexConfigKeys: [],
  normIdentity: 1,
  residualOutputs: ['o_proj', 'expert{e}_w2'],
  residualScales: [],
  experts: { countKeys: ['num_local_experts'], denseLayers: null },
  units: null,
};
