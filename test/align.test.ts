// Neuron alignment's pieces: the assignment solver against brute force, and the gathers
// that permute rows/columns in blocks against index arithmetic.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { maxAssignment } from '../src/align/assign.js';
import { compose, gatherCols, gatherRows, identityPerm, isPermutation } from '../src/align/permute.js';
import { rng } from './helpers/safetensors-fixtures.js';


function* permutations(n: number): Generator<number[]> {
  if (n === 0) { yield []; return; }
  for (const p of permutations(n - 1)) for (let i = 0; i <= p.length; i++) yield [...p.slice(0, i), n - 1, ...p.slice(i)];
}

test('maxAssignment finds the best of all n! pairings (random, tied and negative similarities)', () => {
  const rand = rng(7);
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + (trial % 7);
    const sim = Float64Array.from({ length: n * n }, () => (trial % 3 === 0 ? Math.round(rand() * 3) : rand() * 2 - 1));
    let best = -Infinity;
    for (const p of permutations(n)) best = Math.max(best, p.reduce((a, x, y) => a + sim[y * n + x], 0));
    const { perm, total } = maxAssignment(sim, n);
    assert.ok(isPermutation(perm, n));
    assert.ok(Math.abs(total - best) < 1e-9, `n=${n}: ${total} vs brute force ${best}`);
  }
});

test('maxAssignment recovers a planted permutation of noisy unit features', () => {
  const rand = rng(3);
  const n = 200, d = 16;
  const a = Float64Array.from({ length: n * d }, () => rand() * 2 - 1);
  const planted = identityPerm(n).sort(() => rand() - 0.5);
  // b's unit planted[k] is a's unit k plus noise
  const b = new Float64Array(n * d);
  for (let k = 0; k < n; k++) for (let c = 0; c < d; c++) b[planted[k] * d + c] = a[k * d + c] + 0.05 * (rand() - 0.5);
  const sim = new Float64Array(n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) for (let c = 0; c < d; c++) sim[y * n + x] += a[y * d + c] * b[x * d + c];
  assert.deepEqual([...maxAssignment(sim, n).perm], [...planted]);
});

test('gatherRows/gatherCols move whole blocks by the gather rule, and compose chains gathers', () => {
  const rows = 6, cols = 4;
  const x = Float32Array.from({ length: rows * cols }, (_, i) => i);
  const p = Int32Array.from([2, 0, 1]);
  const r = gatherRows(x, cols, p, 2); // blocks of 2 rows
  for (let k = 0; k < 3; k++) for (let i = 0; i < 2; i++) for (let c = 0; c < cols; c++) {
    assert.equal(r[(k * 2 + i) * cols + c], x[(p[k] * 2 + i) * cols + c]);
  }
  const q = Int32Array.from([1, 0]);
  const cl = gatherCols(x, rows, q, 2); // blocks of 2 columns
  for (let i = 0; i < rows; i++) for (let k = 0; k < 2; k++) for (let j = 0; j < 2; j++) {
    assert.equal(cl[i * cols + k * 2 + j], x[i * cols + q[k] * 2 + j]);
  }
  const inner = Int32Array.from([3, 1, 0, 2]), outer = Int32Array.from([2, 3, 1, 0]);
  const v = Float32Array.from([10, 11, 12, 13]);
  assert.deepEqual([...gatherRows(gatherRows(v, 1, inner, 1), 1, outer, 1)], [...gatherRows(v, 1, compose(inner, outer), 1)]);
  assert.ok(!isPermutation([0, 0, 1], 3) && !isPermutation([0, 1], 3) && isPermutation([1, 2, 0], 3));
});

test('gap ranking: each gap scored by the mean leave-one-out error of its interior layers; the best n, cycling', async () => {
  const { scoreGaps, bestGaps } = await import('../src/analyze/gaps.js');
  // L = 5: interior layers 1..3
  const gaps = scoreGaps([{ layer: 1, relError: 0.5 }, { layer: 2, relError: 0.9 }, { layer: 3, relError: 0.1 }], 5);
  assert.deepEqual(gaps.map((g) => g.after), [0, 1, 2, 3]);
  const score = Object.fromEntries(gaps.map((g) => [g.after, g.score]));
  assert.equal(score[0], 0.5); // only layer 1 is interior
  assert.ok(Math.abs(score[1] - 0.7) < 1e-12 && Math.abs(score[2] - 0.5) < 1e-12);
  assert.equal(score[3], 0.1);
  assert.deepEqual(bestGaps(gaps, 2), [0, 3]); // 0.1 (gap 3), then 0.5 tied by gaps 0 and 2: the lower index
  assert.deepEqual(bestGaps(gaps, 6), [0, 0, 2, 3, 3, 1].sort((a, b) => a - b));
});
