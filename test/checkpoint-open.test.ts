import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';
import { fromF32, isNativeAvailable } from '../src/native/index.js';
import { CheckpointError, type CheckpointErrorKind } from '../src/checkpoint/errors.js';
import { hashCheckpoint, hashCheckpointFiles, fingerprintCheckpoint } from '../src/checkpoint/verify.js';
import { buildSafetensors, hashTree, randomTensors, rng, tmpDir, writeCheckpointDir, type TensorData } from './helpers/safetensors-fixtures.js';

const t = (name: string, dtype: TensorData['dtype'], shape: number[], fill = 1): TensorData => {
  const n = shape.reduce((a, b) => a * b, 1) * ({ F32: 4, F16: 2, BF16: 2, I64: 8 } as Record<string, number>)[dtype];
  return { name, dtype, shape, data: new Uint8Array(n).map((_, i) => (i * 7 + fill) & 0xff) };
};

async function rejectsKind(p: Promise<unknown>, kind: CheckpointErrorKind, re?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

test('single model.safetensors: tensors, raw bytes, aux files, nothing written', async () => {
  const d = await tmpDir();
  const ts = [t('a', 'F32', [2, 3]), t('b', 'I64', [2]), t('c', 'F16', []), t('e', 'BF16', [0, 4])];
  await writeCheckpointDir(d, {
    'model.safetensors': buildSafetensors(ts),
    'tokenizer.json': '{}', 'tokenizer_config.json': '{}', 'generation_config.json': '{}', 'special_tokens_map.json': '{}',
    'tokenizer.model': 'x', 'chat_template.jinja': 'x', 'README.md': '# m',
    'lesa.json': '{}', 'pytorch_model.bin': 'pickle', 'training_args.bin': 'x', '.gitattributes': 'x', 'consolidated.safetensors': 'x',
    'original/params.json': '{}',
  });
  const before = await hashTree(d);
  const ck = await openCheckpoint(d);
  try {
    assert.equal(ck.dir, await fsp.realpath(d));
    assert.deepEqual([...ck.tensors.keys()], ['a', 'b', 'c', 'e']);
    assert.deepEqual(ck.auxFiles, ['README.md', 'chat_template.jinja', 'generation_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json']);
    assert.deepEqual(ck.weightFiles, ['model.safetensors']);
    assert.equal(ck.weightBytes, (await fsp.stat(path.join(d, 'model.safetensors'))).size);
    assert.equal(ck.config.model_type, 'llama');
    for (const x of ts) assert.deepEqual(new Uint8Array(await ck.readRaw(x.name)), x.data, x.name);
    const ref = ck.tensors.get('b')!;
    assert.equal(ref.byteLength, 16);
    assert.equal(ref.file, path.join(ck.dir, 'model.safetensors'));
    await rejectsKind(ck.readRaw('nope'), 'MissingTensor');
    await rejectsKind(ck.readF32('b'), 'UnsupportedDtype');
    // concurrent reads share one handle
    await Promise.all(ts.map((x) => ck.readRaw(x.name)));
  } finally {
    await ck.close();
  }
  assert.deepEqual(await hashTree(d), before);
  await fsp.rm(d, { recursive: true });
});

test('index: index order then header order, extra safetensors ignored, index checks', async () => {
  const d = await tmpDir();
  const f1 = [t('x.2', 'F32', [1]), t('x.1', 'F32', [2])];
  const f2 = [t('y', 'F16', [3])];
  const wm = { 'x.1': 'm-2.safetensors', 'x.2': 'm-2.safetensors', y: 'sub/m-1.safetensors' };
  await writeCheckpointDir(d, {
    'm-2.safetensors': buildSafetensors(f1),
    'sub/m-1.safetensors': buildSafetensors(f2),
    'consolidated.safetensors': buildSafetensors([t('x.1', 'F32', [2])]),
    'model.safetensors.index.json': { metadata: { total_size: 18 }, weight_map: wm },
  });
  const ck = await openCheckpoint(d);
  assert.deepEqual([...ck.tensors.keys()], ['x.2', 'x.1', 'y']);
  assert.deepEqual(ck.weightFiles, ['m-2.safetensors', 'sub/m-1.safetensors']);
  assert.deepEqual(new Uint8Array(await ck.readRaw('y')), f2[0].data);
  await ck.close();

  const idx = (w: unknown) => fsp.writeFile(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: w }));
  await idx({ ...wm, z: 'm-2.safetensors' });
  await rejectsKind(openCheckpoint(d), 'IndexMismatch', /"z"/);
  await idx({ 'x.1': 'm-2.safetensors', y: 'sub/m-1.safetensors' });
  await rejectsKind(openCheckpoint(d), 'IndexMismatch', /"x.2"/);
  await idx({ ...wm, y: 'm-2.safetensors' });
  await rejectsKind(openCheckpoint(d), 'IndexMismatch');
  await idx({ ...wm, y: 'gone.safetensors' });
  await rejectsKind(openCheckpoint(d), 'MissingFile', /gone/);
  await idx({ ...wm, y: '../x.safetensors' });
  await rejectsKind(openCheckpoint(d), 'PathEscape');
  await idx({ ...wm, y: '/etc/passwd' });
  await rejectsKind(openCheckpoint(d), 'PathEscape');
  await idx({ ...wm, y: 'sub/../m-2.safetensors' });
  await rejectsKind(openCheckpoint(d), 'PathEscape');
  await idx({ ...wm, y: 'sub\\m-1.safetensors' });
  await rejectsKind(openCheckpoint(d), 'PathEscape');
  await idx({ ...wm, y: './m-2.safetensors' });
  await rejectsKind(openCheckpoint(d), 'PathEscape');
  await idx({ ...wm, y: 3 });
  await rejectsKind(openCheckpoint(d), 'InvalidIndex');
  await idx({});
  await rejectsKind(openCheckpoint(d), 'InvalidIndex');
  await fsp.writeFile(path.join(d, 'model.safetensors.index.json'), '{"weight_map":{"y":"sub/m-1.safetensors","y":"sub/m-1.safetensors"}}');
  await rejectsKind(openCheckpoint(d), 'InvalidIndex', /duplicate/);
  // symlink leading out
  const outside = await tmpDir();
  await fsp.writeFile(path.join(outside, 'evil.safetensors'), buildSafetensors(f2));
  await fsp.symlink(path.join(outside, 'evil.safetensors'), path.join(d, 'link.safetensors'));
  await idx({ ...wm, y: 'link.safetensors' });
  await rejectsKind(openCheckpoint(d), 'PathEscape', /outside/);
  await fsp.rm(d, { recursive: true });
  await fsp.rm(outside, { recursive: true });
});

test('no index: all *.safetensors, duplicates refused; pickles refused; config errors', async () => {
  const d = await tmpDir();
  await writeCheckpointDir(d, { 'b.safetensors': buildSafetensors([t('b', 'F32', [1])]), 'a.safetensors': buildSafetensors([t('a', 'F32', [1])]) });
  const ck = await openCheckpoint(d);
  assert.deepEqual(ck.weightFiles, ['a.safetensors', 'b.safetensors']);
  await ck.close();
  await fsp.writeFile(path.join(d, 'c.safetensors'), buildSafetensors([t('a', 'F32', [1])]));
  await rejectsKind(openCheckpoint(d), 'DuplicateTensor', /"a"/);

  const p = await tmpDir();
  await writeCheckpointDir(p, { 'pytorch_model-00001-of-00002.bin': 'x', 'pytorch_model.bin.index.json': '{}' });
  await rejectsKind(openCheckpoint(p), 'PickleRefused', /never unpickles/);
  await fsp.rm(path.join(p, 'pytorch_model-00001-of-00002.bin'));
  await rejectsKind(openCheckpoint(p), 'NoWeights');
  await fsp.rm(path.join(p, 'config.json'));
  await rejectsKind(openCheckpoint(p), 'MissingConfig');
  await fsp.writeFile(path.join(p, 'config.json'), '[1]');
  await rejectsKind(openCheckpoint(p), 'InvalidConfig');
  await fsp.writeFile(path.join(p, 'config.json'), '{"a":');
  await rejectsKind(openCheckpoint(p), 'InvalidConfig');
  await rejectsKind(openCheckpoint(path.join(p, 'nope')), 'MissingInput');
  await rejectsKind(openCheckpoint(path.join(p, 'config.json')), 'MissingInput');
  await fsp.rm(d, { recursive: true });
  await fsp.rm(p, { recursive: true });
});

test('Hugging Face cache snapshot: symlinks into ../../blobs are allowed', async () => {
  const root = await tmpDir();
  const repo = path.join(root, 'models--org--m');
  const snap = path.join(repo, 'snapshots', 'abc123');
  await fsp.mkdir(path.join(repo, 'blobs'), { recursive: true });
  await fsp.mkdir(snap, { recursive: true });
  const files: Record<string, Buffer | string> = { 'config.json': JSON.stringify({ model_type: 'llama' }), 'model.safetensors': buildSafetensors([t('w', 'F32', [2])]), 'tokenizer.json': '{}' };
  for (const [name, v] of Object.entries(files)) {
    const h = createHash('sha256').update(v).digest('hex');
    await fsp.writeFile(path.join(repo, 'blobs', h), v);
    await fsp.symlink(`../../blobs/${h}`, path.join(snap, name));
  }
  const ck = await openCheckpoint(snap);
  assert.deepEqual(ck.auxFiles, ['tokenizer.json']);
  assert.equal((await ck.readRaw('w')).length, 8);
  await ck.close();
  await fsp.rm(root, { recursive: true });
});

test('a weight file changed after open is detected at read time', async () => {
  const d = await tmpDir();
  await writeCheckpointDir(d, { 'model.safetensors': buildSafetensors([t('w', 'F32', [2])]) });
  const ck = await openCheckpoint(d);
  await fsp.appendFile(path.join(d, 'model.safetensors'), 'xx');
  await rejectsKind(ck.readRaw('w'), 'FileChanged');
  await ck.close();
  await fsp.rm(d, { recursive: true });
});

test('hashCheckpoint and fingerprintCheckpoint', async () => {
  const d = await tmpDir();
  const r = rng(5);
  await writeCheckpointDir(d, { 'b.safetensors': buildSafetensors(randomTensors(r, 4)), 'a.safetensors': buildSafetensors(randomTensors(r, 3).map((x) => ({ ...x, name: 'z' + x.name }))) });
  const ck = await openCheckpoint(d);
  const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  const ha = sha(await fsp.readFile(path.join(d, 'a.safetensors')));
  const hb = sha(await fsp.readFile(path.join(d, 'b.safetensors')));
  assert.equal(await hashCheckpoint(ck), sha(`a.safetensors ${ha}\nb.safetensors ${hb}\n`));
  assert.deepEqual((await hashCheckpointFiles(ck)).files, { 'a.safetensors': ha, 'b.safetensors': hb });
  const fp = await fingerprintCheckpoint(ck);
  await ck.close();
  // a byte-identical copy has the same fingerprint
  const c = await tmpDir();
  await fsp.cp(d, c, { recursive: true });
  const ck2 = await openCheckpoint(c);
  assert.equal(await fingerprintCheckpoint(ck2), fp);
  await ck2.close();
  await fsp.rm(d, { recursive: true });
  await fsp.rm(c, { recursive: true });
});


test('readF32 converts F32, F16 and BF16 through the native addon', { skip: !isNativeAvailable() && 'skipped: the native addon is not built (npm run build:native)' }, async () => {
  const d = await tmpDir();
  const x = new Float32Array([0, 1, -2.5, 65504, 1e-3, 3.140625]);
  const mk = (name: string, dt: 'F32' | 'F16' | 'BF16'): TensorData => ({ name, dtype: dt, shape: [x.length], data: dt === 'F32' ? new Uint8Array(x.buffer.slice(0)) : fromF32(x, dt) });
  await writeCheckpointDir(d, { 'model.safetensors': buildSafetensors([mk('f32', 'F32'), mk('f16', 'F16'), mk('bf16', 'BF16')]) });
  const ck = await openCheckpoint(d);
  assert.deepEqual(await ck.readF32('f32'), x);
  const h = await ck.readF32('f16');
  const b = await ck.readF32('bf16');
  for (let i = 0; i < x.length; i++) {
    assert.ok(Math.abs(h[i] - x[i]) <= Math.abs(x[i]) * 1e-3 + 1e-6, `f16 ${i}: ${h[i]} vs ${x[i]}`);
    assert.ok(Math.abs(b[i] - x[i]) <= Math.abs(x[i]) * 8e-3 + 1e-6, `bf16 ${i}: ${b[i]} vs ${x[i]}`);
  }
  await ck.close();
  await fsp.rm(d, { recursive: true });
});

void fs;
