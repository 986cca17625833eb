/**
 * MoE and image-text wrapper tables: the expert placeholder and the nested text config, at
 * the shapes of real hub checkpoints (Mixtral-8x7B, Qwen3-30B-A3B, Gemma 3 4B), with shapes
 * only (no weights).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { families, linearTypes, resolveLayout } from '../src/arch/index.js';
import { validateTable, type ArchTable } from '../src/arch/schema.js';
import type { DType } from '../src/checkpoint/types.js';
import { growConfig } from '../src/plan/config.js';
import type { LayerOrigin } from '../src/plan/recipe.js';

type Shapes = Map<string, { dtype: DType; shape: number[] }>;
const dtype: DType = 'BF16';

function attention(t: Shapes, p: string, h: number, heads: number, kv: number, hd: number): void {
  t.set(`${p}input_layernorm.weight`, { dtype, shape: [h] });
  t.set(`${p}self_attn.q_proj.weight`, { dtype, shape: [heads * hd, h] });
  t.set(`${p}self_attn.k_proj.weight`, { dtype, shape: [kv * hd, h] });
  t.set(`${p}self_attn.v_proj.weight`, { dtype, shape: [kv * hd, h] });
  t.set(`${p}self_attn.o_proj.weight`, { dtype, shape: [h, heads * hd] });
  t.set(`${p}post_attention_layernorm.weight`, { dtype, shape: [h] });
}

/** Mixtral-8x7B as the hub stores it: per-expert 2-D w1/w2/w3 under block_sparse_moe. */
function mixtral8x7b(L = 32, E = 8) {
  const [h, inter, vocab] = [4096, 14336, 32000];
  const t: Shapes = new Map([['model.embed_tokens.weight', { dtype, shape: [vocab, h] }]]);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    attention(t, p, h, 32, 8, 128);
    t.set(`${p}block_sparse_moe.gate.weight`, { dtype, shape: [E, h] });
    for (let e = 0; e < E; e++) {
      t.set(`${p}block_sparse_moe.experts.${e}.w1.weight`, { dtype, shape: [inter, h] });
      t.set(`${p}block_sparse_moe.experts.${e}.w2.weight`, { dtype, shape: [h, inter] });
      t.set(`${p}block_sparse_moe.experts.${e}.w3.weight`, { dtype, shape: [inter, h] });
    }
  }
  t.set('model.norm.weight', { dtype, shape: [h] });
  t.set('lm_head.weight', { dtype, shape: [vocab, h] });
  const config = { model_type: 'mixtral', num_hidden_layers: L, hidden_size: h, intermediate_size: inter, num_local_experts: E, num_attention_heads: 32, num_key_value_heads: 8 };
  return { config, tensors: t };
}

test('Mixtral-8x7B: router and 8 experts per layer resolve to per-expert weight types', () => {
  const { config, tensors } = mixtral8x7b();
  const layout = resolveLayout(config, tensors);
  assert.equal(layout.layers, 32);
  assert.equal(layout.layerTensors.length, 2 + 4 + 1 + 8 * 3);
  const lin = linearTypes(layout.arch);
  assert.deepEqual(lin.slice(0, 5), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'router']);
  assert.ok(lin.includes('expert7_w2') && !lin.some((x) => x.includes('{e}')));
  assert.deepEqual(layout.arch.residualOutputs, ['o_proj', ...Array.from({ length: 8 }, (_, e) => `expert${e}_w2`)]);
  assert.deepEqual(layout.typeInfo.get('expert3_w2')?.shape, [4096, 14336]);
  // The registered table keeps its placeholder: expansion is per checkpoint.
  assert.ok(families.find((f) => f.family === 'mixtral')!.layerTensors.some((lt) => lt.type === 'expert{e}_w1'));
});

test('MoE layouts: the expert count comes from the config and must match the files', () => {
  const { config, tensors } = mixtral8x7b(2, 4);
  assert.throws(() => resolveLayout({ ...config, num_local_experts: 5 }, tensors), /missing tensor model\.layers\.0\.block_sparse_moe\.experts\.4\.w1\.weight/);
  assert.throws(() => resolveLayout({ ...config, num_local_experts: 3 }, tensors), /experts\.3\..*unknown per-layer tensor/);
  assert.throws(() => resolveLayout({ ...config, num_local_experts: undefined }, tensors), /"num_local_experts" \(experts per layer\) must be a positive integer/);
  const missing = new Map(tensors);
  missing.delete('model.layers.1.block_sparse_moe.experts.2.w3.weight');
  assert.throws(() => resolveLayout(config, missing), /missing tensor model\.layers\.1\.block_sparse_moe\.experts\.2\.w3\.weight: present in some layers/);
});

/** Qwen3-30B-A3B's shapes (fewer layers): 128 experts per sparse layer, a dense MLP in the layers `dense` names. */
function qwen3Moe30b(L: number, dense: number[] = [], E = 128) {
  const [h, inter, moe, vocab] = [2048, 6144, 768, 151936];
  const t: Shapes = new Map([['model.embed_tokens.weight', { dtype, shape: [vocab, h] }]]);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    attention(t, p, h, 32, 4, 128);
    t.set(`${p}self_attn.q_norm.weight`, { dtype, shape: [128] });
    t.set(`${p}self_attn.k_norm.weight`, { dtype, shape: [128] });
    if (dense.includes(i)) {
      t.set(`${p}mlp.gate_proj.weight`, { dtype, shape: [inter, h] });
      t.set(`${p}mlp.up_proj.weight`, { dtype, shape: [inter, h] });
      t.set(`${p}mlp.down_proj.weight`, { dtype, shape: [h, inter] });
      continue;
    }
    t.set(`${p}mlp.gate.weight`, { dtype, shape: [E, h] });
    for (let e = 0; e < E; e++) {
      t.set(`${p}mlp.experts.${e}.gate_proj.weight`, { dtype, shape: [moe, h] });
      t.set(`${p}mlp.experts.${e}.up_proj.weight`, { dtype, shape: [moe, h] });
      t.set(`${p}mlp.experts.${e}.down_proj.weight`, { dtype, shape: [h, moe] });
    }
  }
  t.set('model.norm.weight', { dtype, shape: [h] });
  t.set('lm_head.weight', { dtype, shape: [vocab, h] });
  const config = { model_type: 'qwen3_moe', num_hidden_layers: L, hidden_size: h, intermediate_size: inter, num_experts: E, decoder_sparse_step: 1, mlp_only_layers: [] as number[], max_window_layers: 2 };
  return { config, tensors: t };
}

const origins = (sources: number[], fresh: number[]): LayerOrigin[] => sources.map((source, out) => ({ out, source, kind: fresh.includes(out) ? 'new' : 'original', how: '' }));

test('Qwen3-30B-A3B shapes: 128 experts read from num_experts; every layer sparse stays so', () => {
  const { config, tensors: t } = qwen3Moe30b(3);
  const layout = resolveLayout(config, t);
  assert.equal(linearTypes(layout.arch).filter((x) => layout.typeInfo.has(x)).length, 4 + 1 + 3 * 128);
  assert.deepEqual(layout.kinds, ['sparse', 'sparse', 'sparse']);
  assert.deepEqual(layout.layerTensors.filter((lt) => lt.only === 'dense'), [], 'no dense MLP in an all-sparse checkpoint');
  // The config's keys name dense layers whose files hold experts: refused, naming the keys.
  assert.throws(() => resolveLayout({ ...config, mlp_only_layers: [0] }, t), /model\.layers\.0\.mlp\.gate\.weight belongs to a sparse MLP, but config\.json makes layer 0 dense \(mlp_only_layers, decoder_sparse_step\)/);
  assert.throws(() => resolveLayout({ ...config, decoder_sparse_step: 2 }, t), /layer 0 dense/);
  // An unknown Qwen-named MoE: nearest qwen3_moe, and the dense MLP some layers may have is not "needed".
  assert.throws(() => resolveLayout({ ...config, model_type: 'qwen9_moe' }, t), (e: Error) =>
    /nearest supported family: qwen3_moe/.test(e.message) && !/needs but the checkpoint lacks/.test(e.message));
  const grown = growConfig(config, layout, origins([0, 1, 1, 2], [2]));
  assert.equal(grown.num_hidden_layers, 4);
  assert.equal(grown.max_window_layers, 3);
  assert.deepEqual([grown.num_experts, grown.mlp_only_layers, grown.decoder_sparse_step], [128, [], 1]);
});

test('MoE with dense layers: each layer\'s kind read as transformers does, output keys rebuilt from the sources', () => {
  // transformers: sparse iff i not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0.
  const stepped = qwen3Moe30b(6, [0, 2, 4], 4);
  const cfgStep = { ...stepped.config, decoder_sparse_step: 2 };
  const layout = resolveLayout(cfgStep, stepped.tensors);
  assert.deepEqual(layout.kinds, ['dense', 'sparse', 'dense', 'sparse', 'dense', 'sparse']);
  assert.deepEqual(layout.typeInfo.get('gate_proj')?.shape, [6144, 2048]);
  // Stacked twice the step pattern still holds: the step is kept and the list stays empty.
  const twice = growConfig(cfgStep, layout, origins([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]));
  assert.deepEqual([twice.mlp_only_layers, twice.decoder_sparse_step], [[], 2]);
  // A copy of layer 5 after it breaks the pattern: every dense output layer is listed, step 1.
  const copied = growConfig(cfgStep, layout, origins([0, 1, 2, 3, 4, 5, 5], [6]));
  assert.deepEqual([copied.mlp_only_layers, copied.decoder_sparse_step], [[0, 2, 4], 1]);
  const listed = qwen3Moe30b(5, [1, 2], 4);
  const cfgList = { ...listed.config, mlp_only_layers: [2, 1] };
  const l2 = resolveLayout(cfgList, listed.tensors);
  assert.deepEqual(l2.kinds, ['sparse', 'dense', 'dense', 'sparse', 'sparse']);
  const g = growConfig(cfgList, l2, origins([0, 1, 1, 2, 3, 4], [2]));
  assert.deepEqual([g.mlp_only_layers, g.decoder_sparse_step], [[1, 2, 3], 1]);
  assert.deepEqual(cfgList.mlp_only_layers, [2, 1], 'the input config is not modified');
  // Malformed keys: one line naming the key.
  for (const bad of [[5], [-1], [1, 1], [1.5], '1', { 0: 1 }]) {
    assert.throws(() => resolveLayout({ ...cfgList, mlp_only_layers: bad as unknown as number[] }, listed.tensors), /"mlp_only_layers" must list distinct layer indices 0\.\.4/, JSON.stringify(bad));
  }
  for (const bad of [0, -2, 1.5, '2', null]) {
    assert.throws(() => resolveLayout({ ...cfgStep, decoder_sparse_step: bad as unknown as number }, stepped.tensors), /"decoder_sparse_step" must be a positive integer/, JSON.stringify(bad));
  }
  // A dense layer missing its MLP, and a dense MLP in a sparse layer.
  const noMlp = new Map(listed.tensors);
  noMlp.delete('model.layers.2.mlp.down_proj.weight');
  assert.throws(() => resolveLayout(cfgList, noMlp), /missing tensor model\.layers\.2\.mlp\.down_proj\.weight: present in some dense layers/);
  assert.throws(() => resolveLayout({ ...cfgList, mlp_only_layers: [2] }, listed.tensors), /model\.layers\.1\.mlp\.gate_proj\.weight belongs to a dense MLP, but config\.json makes layer 1 sparse/);
  assert.throws(() => resolveLayout({ ...cfgList, mlp_only_layers: null as unknown as number[] }, listed.tensors), /belongs to a dense MLP/, 'null is transformers\' empty list');
});

test('Gemma 3 4B wrapper: depth and layer_types live in text_config, every other key is untouched', () => {
  const [L, h, inter, vocab] = [3, 2560, 10240, 262208];
  const t: Shapes = new Map([['language_model.model.embed_tokens.weight', { dtype, shape: [vocab, h] }]]);
  for (let i = 0; i < L; i++) {
    const p = `language_model.model.layers.${i}.`;
    attention(t, p, h, 8, 4, 256);
    for (const n of ['pre_feedforward_layernorm', 'post_feedforward_layernorm']) t.set(`${p}${n}.weight`, { dtype, shape: [h] });
    t.set(`${p}self_attn.q_norm.weight`, { dtype, shape: [256] });
    t.set(`${p}self_attn.k_norm.weight`, { dtype, shape: [256] });
    t.set(`${p}mlp.gate_proj.weight`, { dtype, shape: [inter, h] });
    t.set(`${p}mlp.up_proj.weight`, { dtype, shape: [inter, h] });
    t.set(`${p}mlp.down_proj.weight`, { dtype, shape: [h, inter] });
  }
  t.set('language_model.model.norm.weight', { dtype, shape: [h] });
  t.set('multi_modal_projector.mm_input_projection_weight', { dtype, shape: [1152, h] });
  t.set('vision_tower.vision_model.post_layernorm.weight', { dtype, shape: [1152] });
  const text = { model_type: 'gemma3_text', num_hidden_layers: L, hidden_size: h, intermediate_size: inter, layer_types: ['sliding_attention', 'sliding_attention', 'full_attention'] };
  const config = { model_type: 'gemma3', architectures: ['Gemma3ForConditionalGeneration'], text_config: text, vision_config: { num_hidden_layers: 27 }, mm_tokens_per_image: 256 };
  const layout = resolveLayout(config, t);
  assert.equal(layout.arch.family, 'gemma3_vlm');
  assert.deepEqual(layout.globals, ['language_model.model.embed_tokens.weight', 'language_model.model.norm.weight', 'multi_modal_projector.mm_input_projection_weight', 'vision_tower.vision_model.post_layernorm.weight']);
  const layers: LayerOrigin[] = [0, 1, 2, 2].map((source, out) => ({ out, source, kind: out === 3 ? 'new' : 'original', how: '' }));
  const grown = growConfig(config, layout, layers);
  assert.deepEqual(grown.text_config, { ...text, num_hidden_layers: 4, layer_types: ['sliding_attention', 'sliding_attention', 'full_attention', 'full_attention'] });
  assert.deepEqual({ ...grown, text_config: null }, { ...config, text_config: null });
  assert.equal(config.text_config.num_hidden_layers, 3, 'the input config is not modified');
  assert.throws(() => resolveLayout({ ...config, text_config: [text] }, t), /"text_config" must be an object .* got an array/);
  assert.throws(() => resolveLayout({ ...config, text_config: { ...text, layer_types: ['full_attention'] } }, t), /"text_config\.layer_types" must list one entry per layer \(3\)/);
});

test('the expert placeholder is validated strictly', () => {
  const mixtral = families.find((f) => f.family === 'mixtral')!;
  const withTensors = (f: (lts: ArchTable['layerTensors']) => ArchTable['layerTensors']) => ({ ...mixtral, layerTensors: f(mixtral.layerTensors) });
  assert.throws(() => validateTable(withTensors((l) => [...l, { type: 'expert_w9', suffix: 'block_sparse_moe.experts.{e}.w9.weight', role: 'linear' }])), /placeholder \{e\} must be in both type and suffix/);
  assert.throws(() => validateTable({ ...mixtral, experts: null }), /use \{e\} but the table has no experts entry/);
  assert.throws(() => validateTable({ ...mixtral, experts: { countKeys: [], denseLayers: null } }), /experts\.countKeys must not be empty/);
  assert.throws(() => validateTable({ ...mixtral, experts: { countKeys: ['n'], denseLayers: null, extra: 1 } as unknown as ArchTable['experts'] }), /unknown key 'extra' in experts/);
  const llama = families.find((f) => f.family === 'llama')!;
  assert.throws(() => validateTable({ ...llama, experts: { countKeys: ['n'], denseLayers: null } }), /no layer tensor uses \{e\}/);
  assert.throws(() => validateTable({ ...mixtral, units: llama.units }), /\(units\) is not described for experts/);
  assert.throws(() => validateTable({ ...llama, textConfig: { key: '', flatAllowed: false } }), /textConfig\.key must be a non-empty string/);
  assert.throws(() => validateTable({ ...llama, textConfig: { key: 'text_config' } as unknown as ArchTable['textConfig'] }), /textConfig\.flatAllowed must be boolean/);
});

test('Qwen2.5-VL: the hub\'s flat config and transformers\' nested text_config both resolve and grow in place', () => {
  const [L, h, inter, vocab] = [3, 3584, 18944, 152064];
  const t: Shapes = new Map([['model.embed_tokens.weight', { dtype, shape: [vocab, h] }]]);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    attention(t, p, h, 28, 4, 128);
    for (const [x, n] of [['q', 28], ['k', 4], ['v', 4]] as const) t.set(`${p}self_attn.${x}_proj.bias`, { dtype, shape: [n * 128] });
    t.set(`${p}mlp.gate_proj.weight`, { dtype, shape: [inter, h] });
    t.set(`${p}mlp.up_proj.weight`, { dtype, shape: [inter, h] });
    t.set(`${p}mlp.down_proj.weight`, { dtype, shape: [h, inter] });
  }
  t.set('model.norm.weight', { dtype, shape: [h] });
  t.set('lm_head.weight', { dtype, shape: [vocab, h] });
  t.set('visual.blocks.0.attn.qkv.weight', { dtype, shape: [3840, 1280] });
  const text = { num_hidden_layers: L, hidden_size: h, intermediate_size: inter, max_window_layers: 2, num_attention_heads: 28, num_key_value_heads: 4 };
  const flat = { model_type: 'qwen2_5_vl', architectures: ['Qwen2_5_VLForConditionalGeneration'], ...text, vision_config: { depth: 32 } };
  const nested = { model_type: 'qwen2_5_vl', architectures: ['Qwen2_5_VLForConditionalGeneration'], text_config: text, vision_config: { depth: 32 } };
  const layers: LayerOrigin[] = [0, 1, 1, 2].map((source, out) => ({ out, source, kind: out === 2 ? 'new' : 'original', how: '' }));
  const flatLayout = resolveLayout(flat, t);
  assert.equal(flatLayout.arch.family, 'qwen2_vl');
  assert.ok(flatLayout.globals.includes('visual.blocks.0.attn.qkv.weight'));
  const g1 = growConfig(flat, flatLayout, layers);
  assert.deepEqual([g1.num_hidden_layers, g1.max_window_layers, 'text_config' in g1], [4, 3, false]);
  const g2 = growConfig(nested, resolveLayout(nested, t), layers);
  assert.deepEqual(g2.text_config, { ...text, num_hidden_layers: 4, max_window_layers: 3 });
  assert.equal(g2.num_hidden_layers, undefined);
  assert.throws(() => resolveLayout({ ...nested, text_config: null }, t), /"text_config" must be an object/);
});
