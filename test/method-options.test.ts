import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveLayout } from '../src/arch/index.js';
import { resolveOptions } from '../src/expand.js';
import { lesaOptions } from '../src/methods/lesa/options.js';
import { flagOf, withDefaults } from '../src/methods/options.js';
import { catalogue, methodByName, methods } from '../src/methods/registry.js';
import { targetFits } from '../src/methods/targets.js';
import { TRAIN_DEFAULTS } from '../src/native/index.js';
import { runLesa } from './helpers/cli.js';
import { llamaShapes } from './helpers/shapes.js';

test('`lesa methods --json` is the registry: every method, its options with defaults, its target rule', async () => {
  const r = await runLesa(['methods', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const printed = JSON.parse(r.stdout);
  assert.equal(printed.format, 'lesa-methods/1');
  assert.deepEqual(printed.methods, JSON.parse(JSON.stringify(catalogue())));
  assert.deepEqual(printed.methods.map((m: { name: string }) => m.name), methods.map((m) => m.name));
  assert.ok(printed.methods.some((m: { name: string }) => m.name === 'ot-fuse'));
  const lesa = printed.methods.find((m: { name: string }) => m.name === 'lesa');
  for (const [k, v] of Object.entries(TRAIN_DEFAULTS)) assert.equal(lesa.options.find((o: { key: string }) => o.key === k).default, v, k);
  assert.equal(lesa.options.find((o: { key: string }) => o.key === 'maxMemory').record, false);
  const random = printed.methods.find((m: { name: string }) => m.name === 'random');
  assert.deepEqual(random.options.map((o: { flag: string }) => o.flag), ['--match-norm']);
});

test('`lesa expand --help` lists every method option with its meaning and default', async () => {
  const r = await runLesa(['expand', '--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const m of methods) {
    for (const [key, spec] of Object.entries(m.options ?? {})) {
      const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(`--${flagOf(key)} `) || l.trim() === `--${flagOf(key)}`);
      assert.ok(line, `--${flagOf(key)} missing from expand --help`);
      assert.ok(line.includes(spec.help), line);
      if (spec.type === 'int' || spec.type === 'number') assert.ok(line.includes(`(default ${spec.default})`), line);
    }
  }
  assert.match(r.stdout, /--max-memory VALUE +two roles: .*spill.*budget.*\(default 4GiB\)/);
});

test('a method option out of its declared bound is refused naming the bound and the value', async () => {
  const r = await runLesa(['expand', '/nonexistent', '-o', '/tmp/x', '-n', '9', '-m', 'lesa', '--hidden', '70000']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim(), `lesa: Expected integer between 1 and ${lesaOptions.hidden.max} for --hidden but received "70000"`);
  const f = await runLesa(['expand', '/nonexistent', '-o', '/tmp/x', '-n', '9', '--fill', 'zero']);
  assert.equal(f.stderr.trim(), 'lesa: Expected one of mean, layer0 for --fill but received "zero"');
});

test('defaults fill what is not given; lesa.json records every option but memory and device; unknown keys are refused', () => {
  assert.deepEqual(withDefaults(lesaOptions, { epochs: 3 }), { ...TRAIN_DEFAULTS, epochs: 3, predictorSteps: null, fill: 'layer0', zeroOut: false, maxMemory: 4 * 2 ** 30, device: 'cpu' });
  assert.throws(() => withDefaults(lesaOptions, { matchNorm: true }), /unknown option "matchNorm"/);
  const { config, tensors } = llamaShapes(6, 64, 128, 4, 2, 100, 'F32');
  const layout = resolveLayout(config, tensors);
  const plan = methodByName('lesa').plan({ layout, config, options: resolveOptions({ targetLayers: 8, methodOptions: { epochs: 3, maxMemory: 1e6 } }) });
  assert.deepEqual(Object.keys(plan.options), ['targetLayers', 'placement', 'positions', 'seed', 'epochs', 'predictorSteps', 'lambda', 'hidden', 'lr', 'batch', 'weightDecay', 'fill', 'zeroOut', 'stepsPerType']);
  assert.equal(plan.options.epochs, 3);
});

test('each method\'s declared target rule is exactly the set of depths its plan accepts', () => {
  for (const L of [5, 6, 7]) {
    const { config, tensors } = llamaShapes(L, 64, 128, 4, 2, 100, 'F32');
    const layout = resolveLayout(config, tensors);
    for (const m of methods) {
      const rule = catalogue().find((c) => c.name === m.name)!.targets;
      // Per-gap methods: up to one new layer per gap, so that placement never decides.
      const last = m.targets ? 3 * L + 1 : 2 * L - 1;
      for (let T = L - 1; T <= last; T++) {
        let planned = true;
        try { m.plan({ layout, config, options: resolveOptions({ targetLayers: T }) }); } catch { planned = false; }
        assert.equal(planned, targetFits(rule, L, T), `${m.name} L=${L} T=${T}`);
      }
    }
  }
});
