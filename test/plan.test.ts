import assert from 'node:assert/strict';
import { test } from 'node:test';
import { families, resolveLayout } from '../src/arch/index.js';
import { validateTable, type ArchTable } from '../src/arch/schema.js';
import type { DType } from '../src/checkpoint/types.js';
import { planShards } from '../src/checkpoint/writer.js';
import { UserError } from '../src/errors.js';
import { resolveOptions } from '../src/expand.js';
import { methodByName, methods } from '../src/methods/registry.js';
import { interleave, placeGaps, placeLlamaPro } from '../src/plan/placement.js';
import { llamaShapes } from './helpers/shapes.js';


test('every shipped architecture table validates, and an unknown key is an error', () => {
  assert.ok(families.length >= 5);
  const bad = { ...families[0], extra: 1 } as unknown as ArchTable;
  assert.throws(() => validateTable(bad), /unknown key 'extra'/);
  const noSuffix = { ...families[0], layerTensors: [{ type: 'x', role: 'linear' }] } as unknown as ArchTable;
  assert.throws(() => validateTable(noSuffix), /without suffix/);
});

test('placement: last N gaps (paper), first N, uniform, LLaMA Pro groups, explicit', () => {
  assert.deepEqual(placeGaps(32, 16), [15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]); // 15|16 ... 30|31
  assert.deepEqual(placeGaps(10, 3, { strategy: 'bottom' }), [0, 1, 2]);
  assert.deepEqual(placeGaps(10, 3, { strategy: 'uniform' }), [1, 4, 7]);
  assert.deepEqual(placeLlamaPro(32, 8), [3, 7, 11, 15, 19, 23, 27, 31]);
  assert.deepEqual(placeGaps(10, 2, { after: [7, 2] }), [2, 7]);
  assert.throws(() => placeGaps(10, 10), UserError);
  assert.throws(() => placeGaps(10, 2, { after: [1] }), /names 1 positions but 2/);
  assert.throws(() => placeGaps(10, 1, { after: [10] }), /not an original layer/);
  const seq = interleave(4, [1, 1, 2]);
  assert.deepEqual(seq.map((e) => (e.kind === 'original' ? `o${e.source}` : `n${e.after}`)), ['o0', 'o1', 'n1', 'n1', 'o2', 'n2', 'o3']);
});

test('70B-shaped plans need no memory: LESA 80→120 has the right recipes and bytes', () => {
  const { config, tensors } = llamaShapes(80, 8192, 28672, 64, 8, 128256);
  const layout = resolveLayout(config, tensors);
  const options = resolveOptions({ targetLayers: 120 });
  const plan = methodByName('lesa').plan({ layout, config, options });
  assert.equal(plan.layers.length, 120);
  assert.equal(plan.tensors.length, 3 + 120 * 9);
  const predicted = plan.tensors.filter((t) => t.recipe.kind === 'predicted');
  assert.equal(predicted.length, 40 * 7);
  assert.deepEqual(plan.layers.filter((l) => l.kind === 'new').map((l) => l.between![0]), Array.from({ length: 40 }, (_, k) => 39 + k));
  const shards = planShards(plan.tensors, 5e9);
  const bytes = plan.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 2), 0);
  assert.equal(shards.totalSize, bytes);
  assert.ok(bytes > 200e9 && shards.shards.length > 40);
  assert.equal(plan.config.num_hidden_layers, 120);
});

test('every method plans a 30-layer model; per-gap methods keep originals in order', () => {
  const { config, tensors } = llamaShapes(30, 64, 128, 4, 2, 100, 'F32');
  const layout = resolveLayout(config, tensors);
  for (const m of methods) {
    const target = m.name === 'stack' ? 60 : m.name === 'solar' ? 44 : 45;
    const plan = m.plan({ layout, config, options: resolveOptions({ targetLayers: target }) });
    assert.equal(plan.layers.length, target, m.name);
    const originals = plan.layers.filter((l) => l.kind === 'original').map((l) => l.source);
    assert.deepEqual(originals, Array.from({ length: 30 }, (_, i) => i), m.name);
  }
});

test('config growth: layer_types follow their source layer, max_window_layers is remapped', () => {
  const { tensors } = llamaShapes(6, 64, 128, 4, 2, 100, 'F32');
  const layerTypes = ['full_attention', 'full_attention', 'full_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention'];
  const config = { model_type: 'qwen2', num_hidden_layers: 6, hidden_size: 64, intermediate_size: 128, layer_types: layerTypes, max_window_layers: 3 };
  const qwen = new Map(tensors);
  for (let i = 0; i < 6; i++) for (const x of ['q', 'k', 'v']) qwen.set(`model.layers.${i}.self_attn.${x}_proj.bias`, { dtype: 'F32', shape: [x === 'q' ? 64 : 32] });
  const layout = resolveLayout(config, qwen);
  const plan = methodByName('copy').plan({ layout, config, options: resolveOptions({ targetLayers: 8, after: [1, 4] }) });
  assert.deepEqual(plan.config.layer_types, ['full_attention', 'full_attention', 'full_attention', 'full_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention']);
  assert.equal(plan.config.max_window_layers, 4);
  assert.equal(plan.config.num_hidden_layers, 8);
});

test('layouts reject what the table cannot grow', () => {
  const { config, tensors } = llamaShapes(4, 64, 128, 4, 2, 100, 'F32');
  const missing = new Map(tensors);
  missing.delete('model.layers.2.mlp.up_proj.weight');
  assert.throws(() => resolveLayout(config, missing), /missing tensor model.layers.2.mlp.up_proj.weight/);
  const extra = new Map(tensors);
  extra.set('model.layers.1.mlp.mystery.weight', { dtype: 'F32', shape: [3] });
  assert.throws(() => resolveLayout(config, extra), /unknown per-layer tensor/);
  const shape = new Map(tensors);
  shape.set('model.layers.3.self_attn.q_proj.weight', { dtype: 'F32', shape: [64, 63] });
  assert.throws(() => resolveLayout(config, shape), /every layer must match/);
  assert.throws(() => resolveLayout({ ...config, num_hidden_layers: 3 }, tensors), /belongs to layer 3/);
  assert.throws(() => resolveLayout({ ...config, model_type: 'gpt2' }, tensors), /unsupported architecture model_type "gpt2"; supported: /);
  assert.throws(() => resolveLayout({ ...config, hidden_size: 65 }, tensors), /hidden_size = 65/);
});

test('default placement: the paper\'s top for most methods, bottom for identity starts (measured), explicit wins', () => {
  const { config, tensors } = llamaShapes(8, 64, 128, 4, 2, 100);
  const layout = resolveLayout(config, tensors);
  const plan = (method: string, extra: Record<string, unknown> = {}) =>
    methodByName(method).plan({ layout, config, options: resolveOptions({ targetLayers: 11, ...extra }) });
  const newAfter = (p: ReturnType<typeof plan>) => p.layers.filter((l) => l.kind === 'new').map((l) => l.source);
  assert.deepEqual(newAfter(plan('average')), [4, 5, 6]);
  assert.deepEqual(newAfter(plan('llama-pro')), [0, 1, 2]);
  assert.equal(plan('llama-pro').options.placement, 'bottom');
  assert.deepEqual(newAfter(plan('llama-pro', { placement: 'top' })), [4, 5, 6]);
  assert.deepEqual(newAfter(plan('ot-fuse', { after: [3, 3, 4] })), [3, 3, 4]);
  assert.equal(plan('ot-fuse', { after: [3, 3, 4] }).options.placement, 'after');
});
