// The LESA predictor (native trainPredictor / predictRows) against a plain f64 JS
// implementation of the same MLP, loss and AdamW, whose gradient is itself checked by
// finite differences.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import * as native from '../src/native/index.js';

function rng(seed: number): () => number {
  let s = seed >>> 0; // mulberry32
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randomF32 = (n: number, rand: () => number, scale = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);

/** Parameter offsets, written out independently of predictorLayout. */
function offsets(H: number, C: number) {
  const w1 = 0, b1 = H * 2 * C, w2 = b1 + H, b2 = w2 + H * H, w3 = b2 + H, b3 = w3 + C * H;
  return { w1, b1, w2, b2, w3, b3, total: b3 + C };
}

/** y[s][o] = b[o] + sum_i W[o][i] x[s][i], optional ReLU. */
function linear(x: Float64Array, n: number, inDim: number, p: ArrayLike<number>, w: number, b: number, outDim: number, relu: boolean) {
  const y = new Float64Array(n * outDim);
  for (let s = 0; s < n; s++)
    for (let o = 0; o < outDim; o++) {
      let acc = p[b + o];
      for (let i = 0; i < inDim; i++) acc += p[w + o * inDim + i] * x[s * inDim + i];
      y[s * outDim + o] = relu ? Math.max(acc, 0) : acc;
    }
  return y;
}

function forward(p: ArrayLike<number>, H: number, C: number, x: Float64Array, n: number) {
  const o = offsets(H, C);
  const a1 = linear(x, n, 2 * C, p, o.w1, o.b1, H, true);
  const a2 = linear(a1, n, H, p, o.w2, o.b2, H, true);
  return { a1, a2, pred: linear(a2, n, H, p, o.w3, o.b3, C, false) };
}

function lossOf(pred: Float64Array, y: Float64Array, lambda: number): number {
  let sse = 0, pp = 0, tt = 0;
  pred.forEach((v, i) => { sse += (v - y[i]) ** 2; pp += v * v; tt += y[i] * y[i]; });
  return (1 - lambda) * (sse / pred.length) + lambda * (Math.sqrt(pp) - Math.sqrt(tt)) ** 2;
}

function lossAndGrad(p: Float64Array, H: number, C: number, x: Float64Array, y: Float64Array, n: number, lambda: number) {
  const o = offsets(H, C), g = new Float64Array(o.total);
  const { a1, a2, pred } = forward(p, H, C, x, n);
  const np = Math.sqrt(pred.reduce((s, v) => s + v * v, 0)), nt = Math.sqrt(y.reduce((s, v) => s + v * v, 0));
  const dP = pred.map((v, i) => ((1 - lambda) * 2 * (v - y[i])) / pred.length + (lambda * 2 * (np - nt) * v) / np);
  // One linear layer backward: accumulate dW, db; return dIn masked by the input's ReLU.
  const back = (dOut: Float64Array, outDim: number, inp: Float64Array, inDim: number, w: number, b: number, maskInput: boolean) => {
    const dIn = new Float64Array(n * inDim);
    for (let s = 0; s < n; s++)
      for (let q = 0; q < outDim; q++) {
        const d = dOut[s * outDim + q];
        g[b + q] += d;
        for (let i = 0; i < inDim; i++) {
          g[w + q * inDim + i] += d * inp[s * inDim + i];
          dIn[s * inDim + i] += d * p[w + q * inDim + i];
        }
      }
    if (maskInput) dIn.forEach((_, i) => { if (!(inp[i] > 0)) dIn[i] = 0; });
    return dIn;
  };
  const d2 = back(dP, C, a2, H, o.w3, o.b3, true);
  const d1 = back(d2, H, a1, H, o.w2, o.b2, true);
  back(d1, H, x, 2 * C, o.w1, o.b1, false);
  return { loss: lossOf(pred, y, lambda), grad: g };
}

/** torch.optim.AdamW, betas (0.9, 0.999), eps 1e-8. */
function adamwStep(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, t: number, lr: number, wd: number) {
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - lr * wd;
    m[i] = 0.9 * m[i] + 0.1 * g[i];
    v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
    p[i] -= (lr / (1 - 0.9 ** t)) * (m[i] / (Math.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8));
  }
}

/** All samples of `targets` in order: x = [V[i-1][k], V[i+1][k]], y = V[i][k]. */
function samples(V: Float32Array, rank: number, C: number, targets: number[]) {
  const n = targets.length * rank, x = new Float64Array(n * 2 * C), y = new Float64Array(n * C);
  const row = (layer: number, k: number) => V.subarray((layer * rank + k) * C, (layer * rank + k + 1) * C);
  targets.forEach((i, t) => {
    for (let k = 0; k < rank; k++) {
      const s = t * rank + k;
      x.set(row(i - 1, k), s * 2 * C);
      x.set(row(i + 1, k), s * 2 * C + C);
      y.set(row(i, k), s * C);
    }
  });
  return { n, x, y };
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));

test('the JS reference gradient agrees with finite differences', () => {
  const rand = rng(11), H = 5, C = 3, n = 7, lambda = 0.3;
  const p = Float64Array.from(randomF32(offsets(H, C).total, rand, 0.6));
  const x = Float64Array.from(randomF32(n * 2 * C, rand)), y = Float64Array.from(randomF32(n * C, rand));
  const { grad } = lossAndGrad(p, H, C, x, y, n, lambda);
  for (let i = 0; i < p.length; i += 3) {
    const at = (d: number) => { const q = p.slice(); q[i] += d; return lossOf(forward(q, H, C, x, n).pred, y, lambda); };
    const fd = (at(1e-6) - at(-1e-6)) / 2e-6;
    assert.ok(Math.abs(fd - grad[i]) < 1e-7 * Math.max(1, Math.abs(grad[i])), `param ${i}: fd ${fd} vs ${grad[i]}`);
  }
});

test('predictRows equals the JS forward pass', async () => {
  const rand = rng(12), H = 9, C = 5, rows = 2500; // > the native 1024-row chunk
  const params = randomF32(native.predictorLayout(H, C).total, rand, 0.5);
  const left = randomF32(rows * C, rand), right = randomF32(rows * C, rand);
  const out = await native.predictRows(params, H, C, left, right, rows);
  const x = new Float64Array(rows * 2 * C);
  for (let s = 0; s < rows; s++) {
    x.set(left.subarray(s * C, (s + 1) * C), s * 2 * C);
    x.set(right.subarray(s * C, (s + 1) * C), s * 2 * C + C);
  }
  assert.ok(maxAbsDiff(out, forward(params, H, C, x, rows).pred) < 1e-5);
});

test('predictorLayout matches the documented PyTorch order', () => {
  const layout = native.predictorLayout(4, 3);
  const o = offsets(4, 3);
  assert.deepEqual(layout.blocks.map((b) => [b.name, b.offset, b.shape]), [
    ['W1', o.w1, [4, 6]], ['b1', o.b1, [4]], ['W2', o.w2, [4, 4]], ['b2', o.b2, [4]], ['W3', o.w3, [3, 4]], ['b3', o.b3, [3]],
  ]);
  assert.equal(layout.total, o.total);
  const params = Float32Array.from({ length: o.total }, (_, i) => i);
  assert.equal(native.predictorParams(params, 4, 3).W3[0], o.w3);
});

test('three full-batch steps match forward + backward + AdamW in JS', async () => {
  const rand = rng(13), layers = 4, rank = 5, cols = 3, hidden = 6, targets = [1, 2];
  const lr = 1e-2, weightDecay = 0.1, lambda = 0.3, epochs = 3;
  const V = randomF32(layers * rank * cols, rand);
  const init = randomF32(offsets(hidden, cols).total, rand, 0.5);
  const got = await native.trainPredictor({
    V, layers, rank, cols, targets: Int32Array.from(targets), seed: 1, init, hidden, epochs,
    batch: targets.length * rank, lr, weightDecay, lambda, // one batch per epoch: shuffling cannot matter
  });
  const { n, x, y } = samples(V, rank, cols, targets);
  const p = Float64Array.from(init), m = new Float64Array(p.length), v = new Float64Array(p.length);
  for (let t = 1; t <= epochs; t++) {
    const { loss, grad } = lossAndGrad(p, hidden, cols, x, y, n, lambda);
    assert.ok(Math.abs(got.epochLosses[t - 1] - loss) < 1e-5 * loss, `loss ${t}: ${got.epochLosses[t - 1]} vs ${loss}`);
    adamwStep(p, grad, m, v, t, lr, weightDecay);
  }
  assert.ok(maxAbsDiff(got.params, p) < 1e-5, `params off by ${maxAbsDiff(got.params, p)}`);
});

/** Coefficients that vary linearly with depth, so the middle row is the neighbours' mean. */
function smoothCoefficients(layers: number, rank: number, cols: number, seed: number) {
  const rand = rng(seed), a = randomF32(rank * cols, rand), b = randomF32(rank * cols, rand, 0.3);
  return Float32Array.from({ length: layers * rank * cols }, (_, i) => {
    const layer = Math.floor(i / (rank * cols)), j = i % (rank * cols);
    return a[j] + layer * b[j];
  });
}

test('training learns "target = mean of neighbours" and predicts a held-out layer', async () => {
  const layers = 10, rank = 96, cols = 8;
  const V = smoothCoefficients(layers, rank, cols, 14);
  const targets = Int32Array.from([1, 2, 3, 5, 6, 7, 8]); // layer 4 held out
  const { params, epochLosses } = await native.trainPredictor({ V, layers, rank, cols, targets, seed: 3, hidden: 64, epochs: 30, batch: 32, lr: 3e-3 });
  assert.ok(epochLosses[epochLosses.length - 1] < 0.05 * epochLosses[0], `losses ${[...epochLosses].join(', ')}`);
  const block = (i: number) => V.subarray(i * rank * cols, (i + 1) * rank * cols);
  const pred = await native.predictRows(params, 64, cols, block(3), block(5), rank);
  const truth = block(4);
  const err = Math.sqrt(pred.reduce((s, v, i) => s + (v - truth[i]) ** 2, 0) / truth.reduce((s, v) => s + v * v, 0));
  assert.ok(err < 0.1, `held-out relative error ${err}`);
});

test('same seed gives identical results, another seed different ones; file-backed V equals in-memory V', async () => {
  const layers = 6, rank = 10, cols = 4;
  const V = smoothCoefficients(layers, rank, cols, 15);
  const base = { layers, rank, cols, targets: Int32Array.from([1, 2, 3, 4]), hidden: 8, epochs: 3, batch: 7 }; // 40 samples: partial last batch
  const a = await native.trainPredictor({ ...base, V, seed: 42 });
  const b = await native.trainPredictor({ ...base, V, seed: 42 });
  const c = await native.trainPredictor({ ...base, V, seed: 43 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.params, c.params);
  const dir = mkdtempSync(join(tmpdir(), 'lesa-native-'));
  try {
    const path = join(dir, 'V.f32');
    const prefix = 13; // an unaligned offset
    writeFileSync(path, Buffer.concat([Buffer.alloc(prefix, 7), Buffer.from(V.buffer), Buffer.alloc(5)]));
    const fromFile = await native.trainPredictor({ ...base, V: { path, offset: prefix }, seed: 42 });
    assert.deepEqual(fromFile, a);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('progress reports epochs and batches, ending with the final epoch loss', async () => {
  const layers = 5, rank = 10, cols = 4, batch = 8, epochCount = 4;
  const calls: number[][] = [];
  const result = await native.trainPredictor({
    V: smoothCoefficients(layers, rank, cols, 16), layers, rank, cols, targets: Int32Array.from([1, 2, 3]), seed: 5, hidden: 8,
    epochs: epochCount, batch, onProgress: (...args) => calls.push(args),
  });
  const batchTotal = Math.ceil((3 * rank) / batch);
  assert.ok(calls.length >= 1);
  for (const [epoch, done, total] of calls) {
    assert.equal(total, batchTotal);
    assert.ok(epoch >= 1 && epoch <= epochCount && done >= 1 && done <= total);
  }
  assert.deepEqual(calls.at(-1), [epochCount, batchTotal, batchTotal, result.epochLosses[epochCount - 1]]);
});

test('a diverging loss rejects naming the epoch; a throwing progress callback stops training', async () => {
  const layers = 4, rank = 6, cols = 3;
  const base = { layers, rank, cols, targets: Int32Array.from([1, 2]), seed: 1, hidden: 8 };
  const V = smoothCoefficients(layers, rank, cols, 17);
  await assert.rejects(native.trainPredictor({ ...base, V, lr: 1e30 }), /loss diverged \(NaN\) in epoch \d+ of 10/);
  const poisoned = V.slice();
  poisoned[rank * cols + 2] = NaN;
  await assert.rejects(native.trainPredictor({ ...base, V: poisoned }), /diverged \(NaN\) in epoch 1 of 10/);
  const stop = new Error('stop here');
  await assert.rejects(native.trainPredictor({ ...base, V, onProgress: () => { throw stop; } }), (e) => e === stop);
});

test('steps: N steps cycle epochs (the last cut short); epochs and steps together are refused', async () => {
  const layers = 6, rank = 10, cols = 4;
  const V = smoothCoefficients(layers, rank, cols, 15);
  const base = { V, layers, rank, cols, targets: Int32Array.from([1, 2, 3, 4]), hidden: 8, batch: 7, seed: 5 }; // 6 batches an epoch
  const byEpochs = await native.trainPredictor({ ...base, epochs: 3 });
  const bySteps = await native.trainPredictor({ ...base, steps: 18 });
  assert.deepEqual(bySteps, byEpochs);
  assert.equal(bySteps.steps, 18);
  const cut = await native.trainPredictor({ ...base, steps: 14 });
  assert.equal(cut.steps, 14);
  assert.equal(cut.epochLosses.length, 3);
  assert.deepEqual(cut.epochLosses.subarray(0, 2), byEpochs.epochLosses.subarray(0, 2));
  assert.notEqual(cut.epochLosses[2], byEpochs.epochLosses[2]);
  await assert.rejects(native.trainPredictor({ ...base, epochs: 3, steps: 18 }), /epochs or steps, not both/);
  await assert.rejects(native.trainPredictor({ ...base, steps: 0 }), /steps/);
});
