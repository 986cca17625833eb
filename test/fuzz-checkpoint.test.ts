/**
 * Fuzz: hundreds of malformed checkpoints. Each must be rejected by openCheckpoint with a
 * CheckpointError (never another exception type), within a time bound, without changing
 * a byte of its input. Deterministic (seeded), so a failure names a reproducible case.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';
import { parseSafetensorsBytes } from '../src/checkpoint/safetensors.js';
import { CheckpointError } from '../src/checkpoint/errors.js';
import { buildSafetensors, hashTree, randInt, rawSafetensors, rng, tmpDir, withTimeout, type TensorData } from './helpers/safetensors-fixtures.js';
import type { DType } from '../src/checkpoint/types.js';

const CASE_MS = 5000;
const CONFIG = JSON.stringify({ model_type: 'llama', num_hidden_layers: 1 });

interface Case {
  label: string;
  /** Build the checkpoint directory in `dir` (which exists and is empty); `outside` is a sibling with a valid file. */
  build(dir: string, outside: string): Promise<void>;
  /** Also check the in-memory parser on these bytes. */
  bytes?: Buffer;
}

const SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, U8: 1 };

/** Valid tensors whose data bytes are never JSON whitespace. */
function baseTensors(r: () => number): TensorData[] {
  const n = randInt(r, 1, 5);
  const dts: DType[] = ['F32', 'F16', 'BF16', 'I64', 'U8'];
  return Array.from({ length: n }, (_, i) => {
    const dtype = dts[randInt(r, 0, dts.length - 1)];
    const shape = Array.from({ length: randInt(r, 1, 2) }, () => randInt(r, 1, 4));
    const len = shape.reduce((a, b) => a * b, 1) * SIZES[dtype];
    return { name: `layers.${i}.w`, dtype, shape, data: new Uint8Array(len).map(() => randInt(r, 0x21, 0xfe)) };
  });
}

function single(bytes: Buffer): Case['build'] {
  return async (dir) => {
    await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
    await fsp.writeFile(path.join(dir, 'model.safetensors'), bytes);
  };
}

function fileCase(label: string, bytes: Buffer): Case {
  return { label, bytes, build: single(bytes) };
}

function headerText(entries: [string, unknown][], meta = true): string {
  const parts = entries.map(([k, v]) => `${JSON.stringify(k)}:${typeof v === 'string' && v.startsWith('RAW:') ? v.slice(4) : JSON.stringify(v)}`);
  if (meta) parts.unshift('"__metadata__":{"format":"pt"}');
  return `{${parts.join(',')}}`;
}

function headerEnd(b: Buffer): { n: number; lastBrace: number } {
  const n = Number(b.readBigUInt64LE(0));
  const text = b.subarray(8, 8 + n);
  return { n, lastBrace: text.lastIndexOf(0x7d) };
}

function generateCases(): Case[] {
  const cases: Case[] = [];
  const r = rng(20261127);

  // 1. header bytes set to bytes that are invalid anywhere in a header (NUL, bad UTF-8)
  for (let i = 0; i < 160; i++) {
    const b = buildSafetensors(baseTensors(r));
    const { n } = headerEnd(b);
    const pos = 8 + randInt(r, 0, n - 1);
    const bad = [0x00, 0xff, 0x80, 0xc0, 0x01, 0x1f][randInt(r, 0, 5)];
    b[pos] = bad;
    cases.push(fileCase(`header byte ${pos} := 0x${bad.toString(16)} #${i}`, b));
  }
  // 2. the length prefix changed (any change breaks the JSON or the data size)
  for (let i = 0; i < 60; i++) {
    const b = buildSafetensors(baseTensors(r));
    const { n } = headerEnd(b);
    const choices = [0n, 1n, BigInt(n - 1), BigInt(n + 1), BigInt(n + randInt(r, 2, 64)), BigInt(Math.max(0, n - randInt(r, 2, 64))),
      BigInt(b.length), BigInt(b.length - 7), 100_000_001n, 2n ** 63n, 2n ** 64n - 1n, BigInt(randInt(r, 0, 2 ** 31))];
    let v = choices[i % choices.length];
    if (v === BigInt(n)) v += 1n;
    b.writeBigUInt64LE(v, 0);
    cases.push(fileCase(`length prefix ${n} -> ${v} #${i}`, b));
  }
  // 3. the header JSON cut short (length fixed up)
  for (let i = 0; i < 60; i++) {
    const b = buildSafetensors(baseTensors(r));
    const { n, lastBrace } = headerEnd(b);
    const cut = randInt(r, 0, lastBrace - 1);
    const text = b.subarray(8, 8 + cut).toString('latin1');
    cases.push(fileCase(`header cut at ${cut} #${i}`, rawSafetensors(Buffer.from(text, 'latin1').toString('utf8'), b.subarray(8 + n))));
  }
  // 4. truncated and extended files
  for (let i = 0; i < 60; i++) {
    const b = buildSafetensors(baseTensors(r));
    const len = [0, 1, 7, 8, 9, randInt(r, 10, b.length - 1), b.length - 1][i % 7];
    cases.push(fileCase(`file truncated to ${len} of ${b.length} #${i}`, b.subarray(0, Math.min(len, b.length - 1))));
  }
  for (let i = 0; i < 20; i++) {
    const b = buildSafetensors(baseTensors(r));
    cases.push(fileCase(`file extended by ${i + 1} #${i}`, Buffer.concat([b, Buffer.alloc(i + 1, 0x41)])));
  }
  // 5. lying offsets
  const lies: [string, (ts: TensorData[]) => [string, unknown][]][] = [
    ['first starts at 1', (ts) => { let o = 1; return ts.map((t) => { const e = [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [o, o + t.data.length] }] as [string, unknown]; o += t.data.length; return e; }); }],
    ['gap', (ts) => { let o = 0; return ts.map((t, j) => { if (j === ts.length - 1) o += 1; const e = [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [o, o + t.data.length] }] as [string, unknown]; o += t.data.length; return e; }); }],
    ['all at 0 (overlap)', (ts) => [...ts, { ...ts[0], name: 'dup.overlap' }].map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [0, t.data.length] }])],
    ['end < begin', (ts) => { let o = 0; return ts.map((t) => { const e = [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [o + t.data.length, o] }] as [string, unknown]; o += t.data.length; return e; }); }],
    ['past eof', (ts) => { let o = 0; return ts.map((t) => { const e = [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [o, o + t.data.length + 1000] }] as [string, unknown]; o += t.data.length; return e; }); }],
    ['size mismatch', (ts) => { let o = 0; return ts.map((t) => { const e = [t.name, { dtype: t.dtype, shape: [...t.shape, 2], data_offsets: [o, o + t.data.length] }] as [string, unknown]; o += t.data.length; return e; }); }],
    ['negative', (ts) => ts.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [-t.data.length, 0] }])],
    ['float', (ts) => ts.map((t) => [t.name, `RAW:{"dtype":"${t.dtype}","shape":[${t.shape}],"data_offsets":[0.0,${t.data.length}.5]}`])],
    ['exponent', (ts) => ts.map((t) => [t.name, `RAW:{"dtype":"${t.dtype}","shape":[${t.shape}],"data_offsets":[0,1e2]}`])],
    ['huge', (ts) => ts.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [0, 2 ** 60] }])],
    ['beyond 2^53', (ts) => ts.map((t) => [t.name, `RAW:{"dtype":"${t.dtype}","shape":[${t.shape}],"data_offsets":[9007199254740993,9007199254741000]}`])],
    ['1e400', (ts) => ts.map((t) => [t.name, `RAW:{"dtype":"${t.dtype}","shape":[${t.shape}],"data_offsets":[0,1e400]}`])],
    ['strings', (ts) => ts.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: ['0', String(t.data.length)] }])],
    ['three offsets', (ts) => ts.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [0, t.data.length, 0] }])],
    ['one offset', (ts) => ts.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [0] }])],
    ['offsets object', (ts) => ts.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: { begin: 0, end: t.data.length } }])],
    ['offsets null', (ts) => ts.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: null }])],
    ['swapped pair', (ts) => { if (ts.length < 2) ts = [...ts, { ...ts[0], name: 'x.extra' }]; let o = 0; const e = ts.map((t) => { const x = [t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [o, o + t.data.length] }] as [string, unknown]; o += t.data.length; return x; }); (e[0][1] as { data_offsets: number[] }).data_offsets = [...(e[1][1] as { data_offsets: number[] }).data_offsets]; return e; }],
  ];
  for (let i = 0; i < 126; i++) {
    const [what, f] = lies[i % lies.length];
    const ts = baseTensors(r);
    const data = Buffer.concat(ts.map((t) => t.data));
    cases.push(fileCase(`offsets: ${what} #${i}`, rawSafetensors(headerText(f(ts)), data)));
  }
  // 6. shapes
  const shapes: unknown[] = [[-1], [1.5], ['2'], [[2]], [null], [2 ** 53], [2 ** 32, 2 ** 32], [2 ** 20, 2 ** 20, 2 ** 20], Array(65).fill(1), 'x', 3, null, { a: 1 }, [1e300]];
  for (let i = 0; i < 42; i++) {
    const sh = shapes[i % shapes.length];
    const raw = JSON.stringify(sh) ?? 'null';
    cases.push(fileCase(`shape ${raw.slice(0, 40)} #${i}`, rawSafetensors(headerText([['w', `RAW:{"dtype":"F32","shape":${raw.replace('1.5', '1.5')},"data_offsets":[0,8]}`]]), Buffer.alloc(8, 0x41))));
  }
  // 7. dtypes
  const dtypes: unknown[] = ['f32', 'Q4_K', '', 'F8_E8M0', 'U16', 'U64', 'toString', '__proto__', 'constructor', 5, null, ['F32'], { F32: 1 }, true, 'F32 ', 'BF16\u0000'];
  for (let i = 0; i < 32; i++) {
    const d = dtypes[i % dtypes.length];
    cases.push(fileCase(`dtype ${JSON.stringify(d)} #${i}`, rawSafetensors(headerText([['w', { dtype: d, shape: [2], data_offsets: [0, 8] }]]), Buffer.alloc(8, 0x41))));
  }
  // 8. JSON structure
  const structs = [
    '[]', '"str"', '1', 'null', 'true', '[' .repeat(5000) + ']'.repeat(5000), '{"a":' .repeat(3000) + '1' + '}'.repeat(3000),
    '{"__metadata__":{"a":1}}', '{"__metadata__":"x"}', '{"__metadata__":{"a":null}}', '{"__metadata__":{"a":"1","a":"2"}}',
    '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}', '{"w":{"dtype":"F32","shape":[2]}}', '{"w":{}}', '{"w":null}', '{"w":"x"}', '{"w":[]}',
    '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    '{"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},}', "{'w':1}", '{w:1}',
    '\ufeff{}', ' {}', '\n{}', '{}x', '{} {}', '{"a":"\\x"}', '{"a":"\\ud800"}x', '{"a":"unterminated}', '{"a":01}', '{"a":-}', '{"a":tru}',
  ];
  for (let i = 0; i < structs.length; i++) {
    const s = structs[i];
    const needsData = s.includes('data_offsets":[0,8]');
    cases.push(fileCase(`json ${s.slice(0, 40)} #${i}`, rawSafetensors(s, needsData ? Buffer.alloc(8, 0x41) : undefined)));
  }

  // 9. directory level
  const good = buildSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: new Uint8Array(8).fill(0x41) }]);
  const withIndex = (wm: unknown, extra: Record<string, Buffer | string> = {}): Case['build'] => async (dir) => {
    await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
    await fsp.writeFile(path.join(dir, 'model-1.safetensors'), good);
    for (const [k, v] of Object.entries(extra)) {
      await fsp.mkdir(path.dirname(path.join(dir, k)), { recursive: true });
      await fsp.writeFile(path.join(dir, k), v);
    }
    await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), typeof wm === 'string' ? wm : JSON.stringify({ metadata: { total_size: 8 }, weight_map: wm }));
  };
  const traversals = ['../outside/model.safetensors', '../../etc/passwd', '/etc/passwd', '/dev/zero', 'C:\\x.safetensors', 'c:/x.safetensors', 'sub/../../outside/model.safetensors',
    '', '.', './model-1.safetensors', 'sub//model-1.safetensors', 'model-1.safetensors\u0000.txt', '..', 'sub\\..\\model-1.safetensors', '~/x.safetensors', 'missing.safetensors', 'sub/missing.safetensors', 'x'.repeat(5000)];
  for (const [i, t] of traversals.entries()) cases.push({ label: `index path ${JSON.stringify(t.slice(0, 40))} #${i}`, build: withIndex({ w: t }) });
  const indexes = ['[]', '{}', '{"weight_map":[]}', '{"weight_map":{}}', '{"weight_map":{"w":1}}', '{"weight_map":{"w":null}}', '{"weight_map":{"w":["model-1.safetensors"]}}', 'not json', '{"weight_map":{"w":"model-1.safetensors","w":"model-1.safetensors"}}',
    '{"weight_map":{"w":"model-1.safetensors","v":"model-1.safetensors"}}', '{"weight_map":{"v":"model-1.safetensors"}}', '\u00ff'];
  for (const [i, t] of indexes.entries()) cases.push({ label: `index ${t.slice(0, 40)} #${i}`, build: withIndex(t) });
  cases.push({ label: 'index: two names for one file', build: async (dir, outside) => {
    await withIndex({ w: 'model-1.safetensors', v: 'link.safetensors' })(dir, outside);
    await fsp.symlink('model-1.safetensors', path.join(dir, 'link.safetensors'));
  } });
  const link = (name: string, target: (dir: string, outside: string) => string, idx = true): Case => ({
    label: `symlink ${name}`,
    build: async (dir, outside) => {
      await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
      await fsp.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await fsp.symlink(target(dir, outside), path.join(dir, name));
      if (idx) await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: name } }));
    },
  });
  cases.push(link('model.safetensors', (_d, o) => path.join(o, 'model.safetensors'), false));
  cases.push(link('model.safetensors', () => '../outside/model.safetensors', false));
  cases.push(link('evil.safetensors', (_d, o) => path.join(o, 'model.safetensors')));
  cases.push(link('sub/evil.safetensors', (_d, o) => path.join(o, 'model.safetensors')));
  cases.push(link('zero.safetensors', () => '/dev/zero'));
  cases.push(link('loop.safetensors', (d) => path.join(d, 'loop.safetensors')));
  cases.push(link('dangling.safetensors', (d) => path.join(d, 'nothing')));
  cases.push({ label: 'symlinked directory leading out', build: async (dir, outside) => {
    await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
    await fsp.symlink(outside, path.join(dir, 'sub'));
    await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: 'sub/model.safetensors' } }));
  } });
  cases.push({ label: 'config.json symlink leading out', build: async (dir, outside) => {
    await fsp.writeFile(path.join(outside, 'config.json'), CONFIG);
    await fsp.symlink(path.join(outside, 'config.json'), path.join(dir, 'config.json'));
    await fsp.writeFile(path.join(dir, 'model.safetensors'), good);
  } });
  cases.push({ label: 'aux file symlink leading out', build: async (dir, outside) => {
    await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
    await fsp.writeFile(path.join(dir, 'model.safetensors'), good);
    await fsp.symlink(path.join(outside, 'model.safetensors'), path.join(dir, 'tokenizer.json'));
  } });
  cases.push({ label: 'weight file is a FIFO', build: async (dir) => {
    await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
    spawnSync('mkfifo', [path.join(dir, 'model.safetensors')]);
  } });
  cases.push({ label: 'weight file is a directory', build: async (dir) => {
    await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
    await fsp.mkdir(path.join(dir, 'model.safetensors'));
  } });
  const pickles = [['pytorch_model.bin'], ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'pytorch_model.bin.index.json'], ['model.pt'], ['consolidated.00.pth'], ['model.ckpt'], ['weights.pkl']];
  for (const [i, names] of pickles.entries()) {
    cases.push({ label: `pickles only: ${names.join(',')} #${i}`, build: async (dir) => {
      await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
      for (const n of names) await fsp.writeFile(path.join(dir, n), '\x80\x02cos\nsystem\n');
    } });
  }
  cases.push({ label: 'no weights at all', build: async (dir) => { await fsp.writeFile(path.join(dir, 'config.json'), CONFIG); await fsp.writeFile(path.join(dir, 'model.gguf'), 'x'); } });
  cases.push({ label: 'duplicate tensor across files (no index)', build: async (dir) => {
    await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
    await fsp.writeFile(path.join(dir, 'a.safetensors'), good);
    await fsp.writeFile(path.join(dir, 'b.safetensors'), good);
  } });
  const configs: (string | Buffer | null)[] = [null, '', 'not json', '[]', '"x"', '1', 'null', '{"a":', '{"a":1,"a":2}', Buffer.from([0x7b, 0xff, 0x7d]), '{"a":1}x', '['.repeat(10000)];
  for (const [i, c] of configs.entries()) {
    cases.push({ label: `config ${c === null ? 'missing' : JSON.stringify(c.toString()).slice(0, 30)} #${i}`, build: async (dir) => {
      if (c !== null) await fsp.writeFile(path.join(dir, 'config.json'), c);
      await fsp.writeFile(path.join(dir, 'model.safetensors'), good);
    } });
  }
  cases.push({ label: 'config.json is a directory', build: async (dir) => { await fsp.mkdir(path.join(dir, 'config.json')); await fsp.writeFile(path.join(dir, 'model.safetensors'), good); } });
  cases.push({ label: 'one bad shard among good ones', build: async (dir) => {
    await fsp.writeFile(path.join(dir, 'config.json'), CONFIG);
    await fsp.writeFile(path.join(dir, 'a.safetensors'), good);
    await fsp.writeFile(path.join(dir, 'b.safetensors'), good.subarray(0, good.length - 1));
    await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: 'a.safetensors', v: 'b.safetensors' } }));
  } });
  return cases;
}

test('fuzz: ≥500 malformed checkpoints are all rejected with a CheckpointError, inputs unchanged', async (t) => {
  const cases = generateCases();
  assert.ok(cases.length >= 500, `only ${cases.length} cases`);
  const root = await tmpDir('lesa-fuzz-');
  const outside = path.join(root, 'outside');
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(outside, 'model.safetensors'), buildSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: new Uint8Array(8).fill(0x41) }]));
  const failures: string[] = [];
  const kinds = new Map<string, number>();
  for (const [i, c] of cases.entries()) {
    const dir = path.join(root, `case-${i}`);
    await fsp.mkdir(dir);
    await c.build(dir, outside);
    const before = { in: await hashTree(dir), out: await hashTree(outside) };
    let outcome: unknown = 'opened';
    try {
      const ck = await withTimeout(openCheckpoint(dir), CASE_MS, c.label);
      await ck.close();
    } catch (e) {
      outcome = e;
    }
    if (!(outcome instanceof CheckpointError)) {
      failures.push(`${c.label}: ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : String(outcome)}`);
    } else {
      kinds.set(outcome.kind, (kinds.get(outcome.kind) ?? 0) + 1);
      if (outcome.message.includes('\n')) failures.push(`${c.label}: multi-line message`);
    }
    if (c.bytes) {
      try {
        parseSafetensorsBytes(c.bytes);
        failures.push(`${c.label}: parseSafetensorsBytes accepted it`);
      } catch (e) {
        if (!(e instanceof CheckpointError)) failures.push(`${c.label}: parseSafetensorsBytes threw ${String(e)}`);
      }
    }
    const after = { in: await hashTree(dir), out: await hashTree(outside) };
    if (JSON.stringify(after) !== JSON.stringify(before)) failures.push(`${c.label}: input changed`);
    await fsp.rm(dir, { recursive: true, force: true });
  }
  await fsp.rm(root, { recursive: true, force: true });
  assert.deepEqual(failures, [], failures.slice(0, 20).join('\n'));
  // Most error kinds of the reader are reached.
  for (const k of ['HeaderTooLarge', 'HeaderPastEof', 'HeaderInvalidUtf8', 'HeaderInvalidJson', 'HeaderDuplicateKey', 'HeaderNotObject', 'InvalidMetadata', 'InvalidTensorEntry',
    'UnknownDtype', 'InvalidShape', 'InvalidOffsets', 'SizeOverflow', 'SizeMismatch', 'OffsetsOutOfBounds', 'OffsetsNotContiguous', 'FileLengthMismatch', 'FileTooSmall',
    'NotAFile', 'MissingConfig', 'InvalidConfig', 'InvalidIndex', 'IndexMismatch', 'MissingFile', 'PathEscape', 'PickleRefused', 'NoWeights', 'DuplicateTensor']) {
    assert.ok(kinds.has(k), `kind ${k} never reached: ${JSON.stringify([...kinds])}`);
  }
  t.diagnostic(`fuzz: ${cases.length} malformed cases, kinds: ${JSON.stringify(Object.fromEntries([...kinds].sort()))}`);
});

test('fuzz: random byte mutations never throw anything but a CheckpointError', async () => {
  const r = rng(7);
  const root = await tmpDir('lesa-fuzz-');
  let rejected = 0;
  let accepted = 0;
  for (let i = 0; i < 400; i++) {
    const b = buildSafetensors(baseTensors(r));
    const flips = randInt(r, 1, 4);
    for (let k = 0; k < flips; k++) {
      const pos = r() < 0.8 ? randInt(r, 0, Math.min(b.length - 1, 8 + Number(b.readBigUInt64LE(0)))) : randInt(r, 0, b.length - 1);
      b[pos] = r() < 0.5 ? b[pos] ^ (1 << randInt(r, 0, 7)) : randInt(r, 0, 255);
    }
    const dir = path.join(root, `m-${i}`);
    await fsp.mkdir(dir);
    await single(b)(dir, root);
    const before = await hashTree(dir);
    try {
      const ck = await withTimeout(openCheckpoint(dir), CASE_MS, `mutation ${i}`);
      // accepted: it must then be fully readable
      for (const name of ck.tensors.keys()) await ck.readRaw(name);
      await ck.close();
      accepted++;
    } catch (e) {
      assert.ok(e instanceof CheckpointError, `mutation ${i}: ${String(e)}`);
      rejected++;
    }
    assert.deepEqual(await hashTree(dir), before);
    await fsp.rm(dir, { recursive: true });
  }
  await fsp.rm(root, { recursive: true });
  assert.ok(rejected > 200, `rejected ${rejected}, accepted ${accepted}`);
});
