import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { parseSafetensorsBytes, readSafetensorsFile, checkedNumel, MAX_HEADER_BYTES } from '../src/checkpoint/safetensors.js';
import { CheckpointError, CHECKPOINT_ERROR_KINDS, type CheckpointErrorKind } from '../src/checkpoint/errors.js';
import { parseStrictJson, JsonSyntaxError, stringifyJson } from '../src/checkpoint/json.js';
import { planShards } from '../src/checkpoint/writer.js';
import { CheckpointWriter } from '../src/checkpoint/writer.js';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';
import { buildSafetensors, hasPython, NO_PYTHON, rawSafetensors, runPython, tmpDir, type TensorData } from './helpers/safetensors-fixtures.js';

function rejects(bytes: Uint8Array, kind: CheckpointErrorKind) {
  assert.throws(() => parseSafetensorsBytes(bytes, '/x/f.safetensors'), (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.ok(!e.message.includes('\n'));
    assert.ok(e.message.includes('/x/f.safetensors'));
    return true;
  });
}

const f32 = (name: string, shape: number[]): TensorData => ({ name, dtype: 'F32', shape, data: new Uint8Array(shape.reduce((a, b) => a * b, 1) * 4) });

test('every error kind has a doc line', () => {
  for (const [k, doc] of Object.entries(CHECKPOINT_ERROR_KINDS)) assert.ok(doc.length > 10, k);
});

test('parses a well-formed file, header order kept, integer-like names kept in order', () => {
  const h = parseSafetensorsBytes(buildSafetensors([f32('b', [2]), f32('10', [1]), f32('a', []), f32('z', [0, 3])], { format: 'pt', x: 'y' }));
  assert.deepEqual(h.tensors.map((t) => t.name), ['b', '10', 'a', 'z']);
  assert.deepEqual(h.metadata, { format: 'pt', x: 'y' });
  assert.deepEqual(h.tensors[2], { name: 'a', dtype: 'F32', shape: [], begin: 12, end: 16 });
  assert.equal(h.tensors[3].begin, h.tensors[3].end);
  assert.equal(h.dataStart % 8, 0);
});

test('empty header {} and null metadata are accepted', () => {
  assert.equal(parseSafetensorsBytes(rawSafetensors('{}')).tensors.length, 0);
  assert.equal(parseSafetensorsBytes(rawSafetensors('{"__metadata__":null}')).metadata, null);
});

test('each rule has its error kind', () => {
  const d8 = new Uint8Array(8);
  rejects(new Uint8Array(5), 'FileTooSmall');
  rejects(rawSafetensors('{}', undefined, BigInt(MAX_HEADER_BYTES + 1)), 'HeaderTooLarge');
  rejects(rawSafetensors('{}', undefined, 2n ** 64n - 1n), 'HeaderTooLarge');
  rejects(rawSafetensors('{}', undefined, 100n), 'HeaderPastEof');
  const bad = rawSafetensors('{"a":"x"}');
  bad[8 + 6] = 0xff;
  rejects(bad, 'HeaderInvalidUtf8');
  rejects(rawSafetensors(' {}'), 'HeaderInvalidJson');
  rejects(rawSafetensors('{"a":1.0}'), 'HeaderInvalidJson');
  rejects(rawSafetensors('{}\0\0'), 'HeaderInvalidJson');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8), 'HeaderDuplicateKey');
  rejects(rawSafetensors('{"__metadata__":{"k":1}}'), 'InvalidMetadata');
  rejects(rawSafetensors('{"__metadata__":[]}'), 'InvalidMetadata');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}', d8), 'InvalidTensorEntry');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[2]}}', d8), 'InvalidTensorEntry');
  rejects(rawSafetensors('{"a":[]}'), 'InvalidTensorEntry');
  rejects(rawSafetensors('{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}', d8), 'UnknownDtype');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', d8), 'InvalidShape');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}', d8), 'InvalidShape');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}', d8), 'SizeOverflow');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}', d8), 'InvalidOffsets');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}', d8), 'InvalidOffsets');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', d8), 'SizeMismatch');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', d8), 'OffsetsOutOfBounds');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', d8), 'OffsetsNotContiguous');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', d8), 'OffsetsNotContiguous');
  rejects(rawSafetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', d8), 'FileLengthMismatch');
  rejects(rawSafetensors('[]'), 'HeaderNotObject');
  rejects(rawSafetensors('{"a":1}'), 'InvalidTensorEntry');
});

test('checked arithmetic', () => {
  assert.equal(checkedNumel([]), 1);
  assert.equal(checkedNumel([0, 2 ** 52]), 0);
  assert.equal(checkedNumel([2 ** 26, 2 ** 26]), 2 ** 52);
  assert.equal(checkedNumel([2 ** 26, 2 ** 26, 2]), null);
  assert.equal(checkedNumel([2 ** 27, 2 ** 27]), null);
});

test('strict JSON: duplicates, depth, order, escapes', () => {
  assert.throws(() => parseStrictJson('{"a":1,"a":2}'), (e: unknown) => e instanceof JsonSyntaxError && e.duplicateKey === 'a');
  assert.throws(() => parseStrictJson('['.repeat(100000) + ']'.repeat(100000)), JsonSyntaxError);
  const m = parseStrictJson('{"2":1,"1":2,"s":"\\u00e9\\n"}') as Map<string, unknown>;
  assert.deepEqual([...m.keys()], ['2', '1', 's']);
  assert.equal(m.get('s'), '\u00e9\n');
  assert.throws(() => parseStrictJson('"\u0001"'), JsonSyntaxError);
  assert.throws(() => parseStrictJson('{"a":1}x'), JsonSyntaxError);
  assert.deepEqual(parseStrictJson(' [1, -2.5e3, true, null] '), [1, -2500, true, null]);
});

test('readSafetensorsFile refuses a FIFO without blocking', async () => {
  const d = await tmpDir();
  const { spawnSync } = await import('node:child_process');
  const fifo = path.join(d, 'f.safetensors');
  if (spawnSync('mkfifo', [fifo]).status !== 0) return;
  await assert.rejects(readSafetensorsFile(fifo), (e: unknown) => e instanceof CheckpointError && e.kind === 'NotAFile');
  await fsp.rm(d, { recursive: true });
});

const GOLDEN_PY = `
import sys, json, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
t = {
  'w.f32': torch.randn(3, 4, generator=g),
  'w.f16': torch.randn(5, generator=g).half(),
  'w.bf16': torch.randn(2, 3, generator=g).bfloat16(),
  'w.f64': torch.randn(2, generator=g).double(),
  'i.i64': torch.tensor([1, -2, 3]),
  'i.i32': torch.tensor([[7, -8]], dtype=torch.int32),
  'i.i16': torch.tensor([300], dtype=torch.int16),
  'i.i8': torch.tensor([-5, 6], dtype=torch.int8),
  'i.u8': torch.tensor([250], dtype=torch.uint8),
  'b.bool': torch.tensor([True, False, True]),
  'f8.e4m3': torch.randn(4, generator=g).to(torch.float8_e4m3fn),
  'f8.e5m2': torch.randn(4, generator=g).to(torch.float8_e5m2),
  'scalar': torch.tensor(2.5),
  'empty': torch.zeros(0, 7),
  '0': torch.ones(1),
}
save_file(t, sys.argv[1], metadata={'format': 'pt', 'note': 'golden'})
print(json.dumps({k: {'shape': list(v.shape), 'hex': v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()} for k, v in t.items()}))
`;

test('golden bytes: a file written by Python safetensors parses and reads back exactly', { skip: !hasPython() && NO_PYTHON }, async () => {
  const d = await tmpDir();
  await fsp.writeFile(path.join(d, 'config.json'), '{"model_type":"x"}');
  const file = path.join(d, 'model.safetensors');
  const expected = JSON.parse(runPython(GOLDEN_PY, [file])) as Record<string, { shape: number[]; hex: string }>;
  const h = (await readSafetensorsFile(file)).header;
  assert.deepEqual(h.metadata, { format: 'pt', note: 'golden' });
  assert.equal(h.tensors.length, Object.keys(expected).length);
  const ck = await openCheckpoint(d);
  try {
    const dt: Record<string, string> = { 'w.f32': 'F32', 'w.f16': 'F16', 'w.bf16': 'BF16', 'w.f64': 'F64', 'i.i64': 'I64', 'i.i32': 'I32', 'i.i16': 'I16', 'i.i8': 'I8', 'i.u8': 'U8', 'b.bool': 'BOOL', 'f8.e4m3': 'F8_E4M3', 'f8.e5m2': 'F8_E5M2', scalar: 'F32', empty: 'F32', '0': 'F32' };
    for (const [name, e] of Object.entries(expected)) {
      const ref = ck.tensors.get(name)!;
      assert.ok(ref, name);
      assert.equal(ref.dtype, dt[name], name);
      assert.deepEqual(ref.shape, e.shape, name);
      assert.equal((await ck.readRaw(name)).toString('hex'), e.hex, name);
    }
  } finally {
    await ck.close();
  }
  await fsp.rm(d, { recursive: true });
});

const READ_PY = `
import sys, json, torch
from safetensors import safe_open
out = {}
with safe_open(sys.argv[1], 'pt') as f:
  meta = f.metadata()
  for k in f.keys():
    v = f.get_tensor(k)
    out[k] = {'dtype': str(v.dtype), 'shape': list(v.shape), 'hex': v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()}
print(json.dumps({'meta': meta, 'tensors': out}))
`;

test('golden bytes: lesa output is read by Python safetensors, and is byte-identical to what Python writes', { skip: !hasPython() && NO_PYTHON }, async () => {
  const d = await tmpDir();
  const src = path.join(d, 'py.safetensors');
  const expected = JSON.parse(runPython(GOLDEN_PY, [src])) as Record<string, { shape: number[]; hex: string }>;
  const pyHeader = (await readSafetensorsFile(src)).header;
  // Write the same tensors, in the order Python laid them out, with lesa.
  const specs = pyHeader.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  const out = path.join(d, 'out');
  const w = await CheckpointWriter.create(out, { specs });
  for (const t of pyHeader.tensors) await w.writeTensor(t.name, Buffer.from(expected[t.name].hex, 'hex'));
  await w.finalize({ method: 'test' });
  const back = JSON.parse(runPython(READ_PY, [path.join(out, 'model.safetensors')])) as { meta: Record<string, string>; tensors: Record<string, { shape: number[]; hex: string }> };
  assert.deepEqual(back.meta, { format: 'pt' });
  for (const [name, e] of Object.entries(expected)) {
    assert.deepEqual(back.tensors[name].shape, e.shape, name);
    assert.equal(back.tensors[name].hex, e.hex, name);
  }
  // With the same metadata, the bytes are identical to the Python library's.
  const plan = planShards(specs);
  assert.equal(plan.shards.length, 1);
  const pyBytes = await fsp.readFile(src);
  const pyAgain = path.join(d, 'py2.safetensors');
  runPython(`
import sys, torch
from safetensors.torch import load_file, save_file
save_file(load_file(sys.argv[1]), sys.argv[2], metadata={'format': 'pt'})
`, [src, pyAgain]);
  assert.ok(pyBytes.length > 0);
  assert.deepEqual(await fsp.readFile(path.join(out, 'model.safetensors')), await fsp.readFile(pyAgain));
  await fsp.rm(d, { recursive: true });
});

test('stringifyJson: JSON.stringify(v, null, 2) byte for byte, except integral floats it was told about keep .0', () => {
  const plain = { a: 1, 'b.c': [1, 'x', null, true, { d: [] }, {}], e: { f: -0.5, g: 1e21, h: undefined, i: [undefined] }, 'ü"': '\u2028' };
  assert.equal(stringifyJson(plain), JSON.stringify(plain, null, 2));
  const text = '{"a": 30.0, "b": 1e5, "c": [1.0, 2, 3.5], "d": {"e": 10000.0, "f": 7}, "g": 1e-6, "h": 2, "i": 1.0e21}';
  const floats = new Set<string>();
  const parsed = parseStrictJson(text, { floatPaths: floats });
  const plainParsed = JSON.parse(JSON.stringify(Object.fromEntries([...(parsed as Map<string, unknown>)].map(([k, v]) => [k, v instanceof Map ? Object.fromEntries(v) : v]))));
  const out = stringifyJson(plainParsed, floats);
  assert.deepEqual(JSON.parse(out), JSON.parse(text), 'same values');
  // Python's json reads these back as floats; 7, 2 and 1e21 (written in exponent form) need nothing.
  for (const want of ['"a": 30.0', '"b": 100000.0', '  1.0,\n', '  2.0,\n', '"e": 10000.0', '"f": 7', '"g": 0.000001', '"h": 2', '"i": 1e+21']) {
    assert.ok(out.includes(want), `${want} in ${out}`);
  }
  if (hasPython()) {
    const types = runPython('import json,sys; d=json.loads(sys.argv[1]); print(json.dumps([type(x).__name__ for x in (d["a"], d["b"], *d["c"], d["d"]["e"], d["d"]["f"], d["g"], d["h"], d["i"])]))', [out]);
    assert.deepEqual(JSON.parse(types), ['float', 'float', 'float', 'float', 'float', 'float', 'int', 'float', 'int', 'float']);
  }
});
