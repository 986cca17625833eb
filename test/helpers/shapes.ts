import type { DType } from '../../src/checkpoint/types.js';

/** Shapes only, no weights: a Llama-family model of any size lives in a Map. */
export function llamaShapes(L: number, h: number, inter: number, heads: number, kv: number, vocab: number, dtype: DType = 'BF16') {
  const hd = h / heads;
  const t = new Map<string, { dtype: DType; shape: number[] }>();
  t.set('model.embed_tokens.weight', { dtype, shape: [vocab, h] });
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    t.set(`${p}input_layernorm.weight`, { dtype, shape: [h] });
    t.set(`${p}self_attn.q_proj.weight`, { dtype, shape: [heads * hd, h] });
    t.set(`${p}self_attn.k_proj.weight`, { dtype, shape: [kv * hd, h] });
    t.set(`${p}self_attn.v_proj.weight`, { dtype, shape: [kv * hd, h] });
    t.set(`${p}self_attn.o_proj.weight`, { dtype, shape: [h, heads * hd] });
    t.set(`${p}post_attention_layernorm.weight`, { dtype, shape: [h] });
    t.set(`${p}mlp.gate_proj.weight`, { dtype, shape: [inter, h] });
    t.set(`${p}mlp.up_proj.weight`, { dtype, shape: [inter, h] });
    t.set(`${p}mlp.down_proj.weight`, { dtype, shape: [h, inter] });
  }
  t.set('model.norm.weight', { dtype, shape: [h] });
  t.set('lm_head.weight', { dtype, shape: [vocab, h] });
  const config = { model_type: 'llama', num_hidden_layers: L, hidden_size: h, intermediate_size: inter };
  return { config, tensors: t };
}
