import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveLayout } from '../src/arch/index.js';
import { UserError } from '../src/errors.js';
import { resolveOptions } from '../src/expand.js';
import { optionArg } from '../src/cli/args.js';
import { llamaSteps } from '../src/methods/lesa/budget.js';
import { lesaOptions as lesaTable } from '../src/methods/lesa/options.js';
import { methodByName } from '../src/methods/registry.js';
import { llamaShapes } from './helpers/shapes.js';

const TYPES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function lesaOptions(shapes: ReturnType<typeof llamaShapes>, targetLayers: number, methodOptions: Record<string, number | string> = {}) {
  const layout = resolveLayout(shapes.config, shapes.tensors);
  return methodByName('lesa').plan({ layout, config: shapes.config, options: resolveOptions({ targetLayers, methodOptions }) }).options;
}

/** r·(L−2)/64 steps an epoch, written out: the figures issue 12 quotes. */
const perEpoch = (r: number, L: number) => Math.ceil((r * (L - 2)) / 64);

test('LESA defaults to the notebooks: 10 epochs, layer 0 fill', () => {
  assert.equal(lesaTable.epochs.default, 10);
  assert.equal(lesaTable.fill.default, 'layer0');
  const o = lesaOptions(llamaShapes(30, 576, 1536, 9, 3, 100), 33);
  assert.equal(o.epochs, 10);
  assert.equal(o.fill, 'layer0');
  assert.equal(o.predictorSteps, null);
  // SmolLM2-135M at 10 epochs: 840 (k/v, 192 rows) to 6 720 (gate/up, 1 536 rows) steps.
  assert.deepEqual(o.stepsPerType, {
    q_proj: 2520, k_proj: 840, v_proj: 840, o_proj: 2520, gate_proj: 6720, up_proj: 6720, down_proj: 2520,
  });
});

test('--predictor-steps llama-3-8b: a small model gets the steps of Llama-3-8B\'s same type', () => {
  const llama = { q_proj: 4096, k_proj: 1024, v_proj: 1024, o_proj: 4096, gate_proj: 14336, up_proj: 14336, down_proj: 4096 };
  const expected = Object.fromEntries(Object.entries(llama).map(([t, r]) => [t, 10 * perEpoch(r, 32)]));
  assert.equal(expected.k_proj, 4800);
  assert.equal(expected.gate_proj, 67200);
  const small = lesaOptions(llamaShapes(30, 576, 1536, 9, 3, 100), 33, { predictorSteps: 'llama-3-8b' });
  assert.deepEqual(small.stepsPerType, expected);
  // On Llama-3-8B itself, the step-matched budget is its 10-epoch budget.
  const big = lesaOptions(llamaShapes(32, 4096, 14336, 32, 8, 1000), 40);
  assert.deepEqual(big.stepsPerType, expected);
  // --epochs scales it; the fused types are the sums of their parts.
  assert.equal(llamaSteps('q_proj', 3, 64), 3 * 1920);
  assert.equal(llamaSteps('qkv_proj', 10, 64), 10 * perEpoch(6144, 32));
  assert.equal(llamaSteps('gate_up_proj', 10, 64), 10 * perEpoch(28672, 32));
  assert.throws(() => llamaSteps('w_pack', 10, 64), UserError);
});

test('--predictor-steps N: every type trains N steps, whatever its size', () => {
  const o = lesaOptions(llamaShapes(30, 576, 1536, 9, 3, 100), 33, { predictorSteps: 123 });
  assert.deepEqual(o.stepsPerType, Object.fromEntries(TYPES.map((t) => [t, 123])));
  assert.equal(o.predictorSteps, 123);
  assert.equal(optionArg('predictor-steps', lesaTable.predictorSteps, '4800'), 4800);
  assert.equal(optionArg('predictor-steps', lesaTable.predictorSteps, 'llama-3-8b'), 'llama-3-8b');
  for (const bad of ['0', '-3', '1.5', 'paper', '']) assert.throws(() => optionArg('predictor-steps', lesaTable.predictorSteps, bad), /--predictor-steps/);
});
