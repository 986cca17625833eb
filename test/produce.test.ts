import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint } from '../src/checkpoint/types.js';
import { produce } from '../src/execute/produce.js';

/** Large enough that the addon's check runs over many vector lanes and unrolled blocks. */
const CHECK_CHUNK = 1 << 22;
import type { OutputTensor } from '../src/plan/recipe.js';

/** A checkpoint of one BF16 tensor with NaN/Inf at `bad` (elements), the rest 1.0. */
function oneTensor(n: number, bad: number[]): Checkpoint {
  const raw = Buffer.alloc(2 * n);
  for (let i = 0; i < n; i++) raw.writeUInt16LE(0x3f80, 2 * i);
  for (const [k, i] of bad.entries()) raw.writeUInt16LE(k % 2 ? 0x7f80 : 0x7fc0, 2 * i); // Inf, NaN
  return {
    dir: '/nowhere', config: {}, auxFiles: [], weightBytes: raw.byteLength,
    tensors: new Map([['w', { dtype: 'BF16', shape: [n], file: 'f', start: 0, byteLength: raw.byteLength }]]),
    readRaw: async () => raw,
    readF32: async () => { throw new Error('a copy must not convert the whole tensor'); },
    close: async () => {},
  } as unknown as Checkpoint;
}

const copyOf = (n: number): OutputTensor => ({ name: 'out', dtype: 'BF16', shape: [n], recipe: { kind: 'copy', src: 'w' } });

test('copy of an in-memory view: the raw NaN/Inf check counts every bad element and returns the raw bytes untouched', async () => {
  const n = 2 * CHECK_CHUNK + 3;
  const clean = oneTensor(n, []);
  const bytes = await produce(clean, copyOf(n));
  assert.ok(Buffer.from(bytes).equals(await clean.readRaw('w')));
  for (const bad of [[0], [n - 1], [CHECK_CHUNK - 1, CHECK_CHUNK], [0, CHECK_CHUNK, 2 * CHECK_CHUNK, n - 1]]) {
    await assert.rejects(produce(oneTensor(n, bad), copyOf(n)), new RegExp(`tensor w holds ${bad.length} NaN/Inf values`), `bad at ${bad}`);
  }
});
