// The native addon's conversions and linear algebra, checked against naive JS references
// on small random inputs, plus the argument fuzz. The predictor is in native-predictor.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { loadNative } from '../src/native/binding.js';
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

const randomF32 = (n: number, rand: () => number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
const f32FromBits = (b: number) => new Float32Array(new Uint32Array([b >>> 0]).buffer)[0];
const u16 = (bytes: Uint8Array) => new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);

/** Every finite f16 value, by its definition (subnormal m*2^-24, normal 2^(e-15)*(1+m/1024)). */
function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (e === 0 ? m * 2 ** -24 : 2 ** (e - 15) * (1 + m / 1024));
}

/** Round x to the nearest of `grid` (ascending positive values, index = bit pattern), ties to even. */
function nearestEven(x: number, value: (bits: number) => number, maxBits: number, infBits: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  let lo = 0, hi = maxBits; // binary search the largest pattern <= a
  if (a >= value(maxBits)) lo = hi;
  else while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (value(mid) <= a) lo = mid; else hi = mid; }
  if (value(lo) === a) return sign | lo;
  const up = lo + 1, upValue = lo === maxBits ? 2 * value(maxBits) - value(maxBits - 1) : value(up);
  const dLo = a - value(lo), dUp = upValue - a;
  const pick = dLo < dUp ? lo : dUp < dLo ? up : lo % 2 === 0 ? lo : up;
  return sign | (pick > maxBits ? infBits : pick);
}

test('F32 round trip is exact, also from an unaligned byte offset', () => {
  const x = randomF32(101, rng(1));
  const bytes = native.fromF32(x, 'F32');
  assert.deepEqual(new Float32Array(bytes.buffer), x);
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  assert.deepEqual(native.toF32(shifted.subarray(3), 'F32'), x);
});

test('F16 and BF16 decode every bit pattern like the format definition', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bytes = new Uint8Array(all.buffer);
  const f16 = native.toF32(bytes, 'F16');
  const bf16 = native.toF32(bytes, 'BF16');
  for (let h = 0; h < 65536; h++) {
    const want16 = f16Value(h);
    if (Number.isNaN(want16)) assert.ok(Number.isNaN(f16[h]), `f16 ${h}`);
    else assert.ok(Object.is(f16[h], want16), `f16 ${h.toString(16)}: ${f16[h]} vs ${want16}`);
    const want = f32FromBits(h << 16);
    assert.ok(Object.is(bf16[h], want) || (Number.isNaN(want) && Number.isNaN(bf16[h])), `bf16 ${h}`);
  }
});

test('F16/BF16 encoding rounds to nearest even; NaN stays NaN, f16 overflow is Inf', () => {
  const rand = rng(2);
  const cases = [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519.99, 65520, 1e6, 2 ** -24, 2 ** -25,
    1.5 * 2 ** -25, 2 ** -26, 3 * 2 ** -25, -0, 0, 1e-40, -1e-45, Infinity, -Infinity, 3.4e38];
  const bits = new Uint32Array(20000).map(() => (rand() * 2 ** 32) >>> 0);
  const x = new Float32Array([...cases, ...new Float32Array(bits.buffer)]);
  const bf16Value = (b: number) => f32FromBits(b << 16);
  const f16 = u16(native.fromF32(x, 'F16'));
  const bf16 = u16(native.fromF32(x, 'BF16'));
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i])) {
      assert.ok(Number.isNaN(f16Value(f16[i])) && Number.isNaN(bf16Value(bf16[i])), `NaN at ${i}`);
      continue;
    }
    assert.equal(f16[i], nearestEven(x[i], f16Value, 0x7bff, 0x7c00), `f16 of ${x[i]}`);
    assert.equal(bf16[i], nearestEven(x[i], bf16Value, 0x7f7f, 0x7f80), `bf16 of ${x[i]}`);
  }
  assert.deepEqual([...f16.subarray(0, 8)], [0x3c04, 0x3c0c, 0x3c00, 0x3c02, 0x7bff, 0x7bff, 0x7c00, 0x7c00]);
  assert.deepEqual([...bf16.subarray(0, 2)], [0x3f80, 0x3f82]);
});

test('countNonFinite counts NaN and +-Inf only', () => {
  const x = randomF32(1000, rng(3));
  for (const i of [5, 77, 500, 999]) x[i] = [NaN, Infinity, -Infinity, NaN][i % 4];
  x[6] = 3.4e38;
  assert.equal(native.countNonFinite(x), [...x].filter((v) => !Number.isFinite(v)).length);
});

function matmul(A: ArrayLike<number>, B: ArrayLike<number>, n: number, k: number, m: number, transA = false): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += (transA ? A[t * n + i] : A[i * k + t]) * B[t * m + j];
      out[i * m + j] = s;
    }
  return out;
}

const transpose = (A: ArrayLike<number>, r: number, c: number) => matmul(A, identity(r), c, r, r, true);
const identity = (n: number) => Float64Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
const frob = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => frob(Array.from(a, (v, i) => v - b[i])) / frob(b);

for (const scratch of [64 << 20, 3 * 8 * 8]) {
  test(`gramAccumulate adds W W^T in f64 and leaves G symmetric (scratch ${scratch} B)`, async () => {
    native.setScratchBytes(scratch); // the small limit forces several column chunks
    try {
      const rand = rng(4), rows = 8, cols = 21;
      const W = randomF32(rows * cols, rand);
      const base = new Float64Array(rows * rows); // a symmetric starting G
      const seed = randomF32(rows * rows, rand);
      for (let i = 0; i < rows; i++) for (let j = 0; j < rows; j++) base[i * rows + j] = seed[Math.min(i, j) * rows + Math.max(i, j)];
      const G = base.slice();
      await native.gramAccumulate(G, W, rows, cols);
      const want = matmul(W, transpose(W, rows, cols), rows, cols, rows).map((v, i) => v + base[i]);
      assert.ok(maxAbsDiff(G, want) < 1e-12, `gram off by ${maxAbsDiff(G, want)}`);
      assert.deepEqual(G, transpose(G, rows, rows));
    } finally {
      native.setScratchBytes(64 << 20);
    }
  });
}

test('eigSym: A v = lambda v, orthonormal vectors, descending values, deterministic sign', async () => {
  const rand = rng(5);
  for (const n of [1, 2, 7, 40]) {
    const B = randomF32(n * (n + 2), rand);
    const A = matmul(B, transpose(B, n, n + 2), n, n + 2, n).map((v, i) => v - (i % (n + 1) === 0 ? 1 : 0)); // indefinite
    const { values, vectors } = await native.eigSym(A.slice(), n);
    const norm = frob(A);
    const AV = matmul(A, vectors, n, n, n);
    for (let k = 0; k < n; k++) {
      for (let i = 0; i < n; i++) assert.ok(Math.abs(AV[i * n + k] - values[k] * vectors[i * n + k]) < 1e-12 * norm, `residual n=${n} k=${k}`);
      if (k > 0) assert.ok(values[k - 1] >= values[k], 'descending');
      const column = Array.from({ length: n }, (_, i) => vectors[i * n + k]);
      const big = column.reduce((best, v) => (Math.abs(v) > Math.abs(best) ? v : best), 0);
      assert.ok(big > 0, 'largest-magnitude entry positive');
    }
    assert.ok(maxAbsDiff(matmul(vectors, vectors, n, n, n, true), identity(n)) < 1e-12, 'V^T V = I');
    const trace = Array.from({ length: n }, (_, i) => A[i * n + i]).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(values.reduce((a, b) => a + b, 0) - trace) < 1e-10 * norm);
  }
});

test('eigSym overwrites G with the eigenvectors (no second n x n array)', async () => {
  const G = new Float64Array([2, 1, 1, 2]);
  const { values, vectors } = await native.eigSym(G, 2);
  assert.equal(vectors, G);
  assert.ok(maxAbsDiff(values, [3, 1]) < 1e-14);
  assert.ok(maxAbsDiff(vectors, [Math.SQRT1_2, Math.SQRT1_2, Math.SQRT1_2, -Math.SQRT1_2]) < 1e-14);
});

/** The LESA factorisation pipeline over `layers` blocks of rows x cols; returns per-layer V and US. */
async function factorise(Ws: Float32Array[], rows: number, cols: number, relTol: number) {
  const G = new Float64Array(rows * rows);
  for (const W of Ws) await native.gramAccumulate(G, W, rows, cols);
  const { values, vectors: U } = await native.eigSym(G, rows);
  const S = values.map((v) => Math.sqrt(Math.max(v, 0)));
  const Vs = await Promise.all(Ws.map((W) => native.coefficients(U, S, W, rows, rows, cols, relTol)));
  const US = Float32Array.from(U, (u, i) => u * S[i % rows]);
  return { S, Vs, US };
}

const shapes = [
  { name: 'wide', rows: 6, cols: 20, layers: 1, inner: 0 },
  { name: 'tall', rows: 20, cols: 6, layers: 1, inner: 0 },
  { name: 'rank-deficient', rows: 10, cols: 12, layers: 1, inner: 3 },
  { name: 'three layers, tall per layer', rows: 9, cols: 4, layers: 3, inner: 0 },
];
for (const { name, rows, cols, layers, inner } of shapes) {
  test(`coefficients + reconstruct reproduce W (${name})`, async () => {
    const rand = rng(6);
    const Ws = Array.from({ length: layers }, () =>
      inner ? Float32Array.from(matmul(randomF32(rows * inner, rand), randomF32(inner * cols, rand), rows, inner, cols)) : randomF32(rows * cols, rand),
    );
    const relTol = 1e-6;
    const { S, Vs, US } = await factorise(Ws, rows, cols, relTol);
    for (let i = 0; i < layers; i++) {
      const W = await native.reconstruct(US, Vs[i], rows, rows, cols);
      assert.ok(relErr(W, Ws[i]) <= 1e-5, `layer ${i} rel err ${relErr(W, Ws[i])}`);
    }
    // Rows of [V_1 | ... | V_L] are orthonormal where S is kept, exactly zero elsewhere.
    const kept = Array.from(S, (s) => s > relTol * S[0]);
    const expectedRank = Math.min(rows, inner || cols * layers);
    assert.equal(kept.filter(Boolean).length, expectedRank);
    for (let a = 0; a < rows; a++) {
      for (let b = 0; b < rows; b++) {
        let dot = 0;
        for (const V of Vs) for (let j = 0; j < cols; j++) dot += V[a * cols + j] * V[b * cols + j];
        const want = a === b && kept[a] ? 1 : 0;
        if (!kept[a] || !kept[b]) assert.equal(dot, 0);
        else assert.ok(Math.abs(dot - want) < 1e-5, `V V^T [${a},${b}] = ${dot}`);
      }
    }
  });
}

test('coefficients zero rows with S <= relTol * S[0] and match diag(1/S) U^T W elsewhere', async () => {
  const rand = rng(7), rows = 5, rank = 4, cols = 9;
  const U = Float64Array.from(randomF32(rows * rank, rand));
  const S = new Float64Array([2, 1, 2e-3, 0]);
  const W = randomF32(rows * cols, rand);
  for (const scratch of [64 << 20, 8 * (rows + rank) * 2]) {
    native.setScratchBytes(scratch);
    const V = await native.coefficients(U, S, W, rows, rank, cols, 1e-3);
    native.setScratchBytes(64 << 20);
    const UtW = matmul(U, W, rank, rows, cols, true);
    for (let k = 0; k < rank; k++)
      for (let j = 0; j < cols; j++) {
        const want = k < 2 ? UtW[k * cols + j] / S[k] : 0;
        assert.ok(Math.abs(V[k * cols + j] - want) <= 1e-6 * Math.max(1, Math.abs(want)), `V[${k},${j}]`);
        if (k >= 2) assert.equal(V[k * cols + j], 0);
      }
  }
});

test('coefficients from an f32 U: the f64 route within f32 rounding, same zeroed rows', async () => {
  const rand = rng(9), rows = 40, rank = 30, cols = 25;
  const U = Float64Array.from(randomF32(rows * rank, rand));
  const S = Float64Array.from({ length: rank }, (_, k) => (k < 27 ? 3 / (k + 1) : 1e-9));
  const W = randomF32(rows * cols, rand);
  const V64 = await native.coefficients(U, S, W, rows, rank, cols, 1e-6);
  const V32 = await native.coefficients(Float32Array.from(U), S, W, rows, rank, cols, 1e-6);
  for (let k = 0; k < rank; k++)
    for (let j = 0; j < cols; j++) {
      const a = V32[k * cols + j], b = V64[k * cols + j];
      if (k >= 27) assert.equal(a, 0);
      // f32 rounding of u_k·w grows with sqrt(rows); dividing by S_k scales it up.
      else assert.ok(Math.abs(a - b) <= 2e-6 * Math.sqrt(rows) * (1 + Math.abs(b)) / S[k], `V[${k},${j}] ${a} vs ${b}`);
    }
  await assert.rejects(native.coefficients(new Float32Array(3), S, W, rows, rank, cols, 0), /U/);
});

test('reconstruct matches a naive product', async () => {
  const rand = rng(8), rows = 7, rank = 5, cols = 11;
  const US = randomF32(rows * rank, rand), V = randomF32(rank * cols, rand);
  const out = await native.reconstruct(US, V, rows, rank, cols);
  assert.ok(maxAbsDiff(out, matmul(US, V, rows, rank, cols)) < 1e-6);
});

test('setThreads / getThreads', () => {
  const before = native.getThreads();
  native.setThreads(1);
  assert.equal(native.getThreads(), 1);
  native.setThreads(before);
  assert.equal(native.getThreads(), before);
});

test('OpenBLAS kernels follow the CPU flags, not the fallback for unknown models', () => {
  assert.equal(native.blasCoreTypeFor('flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl\n'), 'SkylakeX');
  assert.equal(native.blasCoreTypeFor('flags\t\t: fpu sse2 avx avx2 fma\n'), 'Haswell');
  assert.equal(native.blasCoreTypeFor('flags\t\t: fpu sse2 sse4_2 avx\n'), undefined);
  assert.equal(native.blasCoreTypeFor('processor : 0\n'), undefined);
  const script = `const n = await import(${JSON.stringify(new URL('../src/native/index.js', import.meta.url).href)});
    console.log(n.blasCoreName());`;
  const { OPENBLAS_CORETYPE: _, ...env } = process.env;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const core = child.stdout.trim();
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return; // not Linux: OpenBLAS's own detection
  }
  const wanted = process.arch === 'x64' ? native.blasCoreTypeFor(cpuinfo) : undefined;
  if (wanted) assert.equal(core.toLowerCase(), wanted.toLowerCase());
});

// ---- argument fuzz -------------------------------------------------------------------

const isArgError = (e: unknown) => e instanceof TypeError || e instanceof RangeError;

async function expectArgError(name: string, call: () => unknown): Promise<void> {
  let error: unknown;
  try {
    await call();
  } catch (e) {
    error = e;
  }
  assert.ok(isArgError(error), `${name}: expected TypeError/RangeError, got ${String(error)}`);
}

test('every entry point rejects wrong types, lengths, dims and options from the TS layer', async () => {
  const f32 = (n: number) => new Float32Array(n);
  const f64 = (n: number) => new Float64Array(n);
  const bad: Array<[string, () => unknown]> = [
    ['toF32 number', () => native.toF32(3 as never, 'F16')],
    ['toF32 odd length', () => native.toF32(new Uint8Array(3), 'F16')],
    ['toF32 dtype', () => native.toF32(new Uint8Array(4), 'F8' as never)],
    ['fromF32 f64', () => native.fromF32(f64(2) as never, 'F16')],
    ['fromF32 missing dtype', () => (native.fromF32 as (x: unknown) => unknown)(f32(2))],
    ['countNonFinite array', () => native.countNonFinite([1, 2] as never)],
    ['gram negative rows', () => native.gramAccumulate(f64(9), f32(9), -3, 3)],
    ['gram NaN cols', () => native.gramAccumulate(f64(9), f32(9), 3, NaN)],
    ['gram fractional', () => native.gramAccumulate(f64(9), f32(9), 3, 2.5)],
    ['gram huge', () => native.gramAccumulate(f64(9), f32(9), 2 ** 40, 3)],
    ['gram short G', () => native.gramAccumulate(f64(8), f32(9), 3, 3)],
    ['gram swapped types', () => native.gramAccumulate(f32(9) as never, f64(9) as never, 3, 3)],
    ['gram string dim', () => native.gramAccumulate(f64(9), f32(9), '3' as never, 3)],
    ['eig short', () => native.eigSym(f64(8), 3)],
    ['eig too large', () => native.eigSym(f64(1), 40000)],
    ['eig zero', () => native.eigSym(f64(0), 0)],
    ['coefficients S NaN', () => native.coefficients(f64(4), new Float64Array([1, NaN]), f32(6), 2, 2, 3, 0)],
    ['coefficients S negative', () => native.coefficients(f64(4), new Float64Array([1, -1]), f32(6), 2, 2, 3, 0)],
    ['coefficients relTol Inf', () => native.coefficients(f64(4), f64(2), f32(6), 2, 2, 3, Infinity)],
    ['coefficients relTol missing', () => (native.coefficients as (...a: unknown[]) => unknown)(f64(4), f64(2), f32(6), 2, 2, 3)],
    ['coefficients W length', () => native.coefficients(f64(4), f64(2), f32(7), 2, 2, 3, 0)],
    ['reconstruct V length', () => native.reconstruct(f32(4), f32(5), 2, 2, 3)],
    ['reconstruct null', () => native.reconstruct(null as never, f32(6), 2, 2, 3)],
    ['predictRows params length', () => native.predictRows(f32(3), 2, 2, f32(2), f32(2), 1)],
    ['predictRows rows', () => native.predictRows(f32(native.predictorLayout(2, 2).total), 2, 2, f32(2), f32(2), 0)],
    ['setThreads 0', () => native.setThreads(0)],
    ['setScratchBytes -1', () => native.setScratchBytes(-1)],
  ];
  const V = f32(4 * 2 * 3);
  const good = { V, layers: 4, rank: 2, cols: 3, targets: new Int32Array([1, 2]), seed: 1 };
  const trainBad: Array<[string, unknown]> = [
    ['no options', undefined],
    ['array options', []],
    ['missing seed', { ...good, seed: undefined }],
    ['negative seed', { ...good, seed: -1 }],
    ['missing V', { ...good, V: undefined }],
    ['V wrong length', { ...good, V: f32(5) }],
    ['V f64', { ...good, V: f64(24) }],
    ['V file missing path', { ...good, V: { offset: 0 } }],
    ['V file bad offset', { ...good, V: { path: '/dev/null', offset: -1 } }],
    ['V file too short', { ...good, V: { path: '/dev/null', offset: 0 } }],
    ['layers 2', { ...good, layers: 2 }],
    ['target 0', { ...good, targets: new Int32Array([0]) }],
    ['target L-1', { ...good, targets: new Int32Array([3]) }],
    ['no targets', { ...good, targets: new Int32Array(0) }],
    ['targets plain array', { ...good, targets: [1, 2] }],
    ['hidden 0', { ...good, hidden: 0 }],
    ['epochs NaN', { ...good, epochs: NaN }],
    ['batch 1.5', { ...good, batch: 1.5 }],
    ['lr negative', { ...good, lr: -1 }],
    ['lr Inf', { ...good, lr: Infinity }],
    ['lambda 2', { ...good, lambda: 2 }],
    ['weightDecay string', { ...good, weightDecay: '0.1' }],
    ['init wrong length', { ...good, init: f32(3) }],
    ['onProgress not function', { ...good, onProgress: 5 }],
    ['unknown option', { ...good, learningRate: 1e-3 }],
  ];
  for (const [name, call] of bad) await expectArgError(name, call);
  for (const [name, opts] of trainBad) await expectArgError(`trainPredictor ${name}`, () => native.trainPredictor(opts as never));
  assert.match(
    await native.gramAccumulate(f64(9), f32(9), -3, 3).then(() => '', (e: Error) => e.message),
    /^Expected positive integer <= 2147483647 for rows but received -3$/,
  );
});

test('random garbage arguments never crash; failures are TypeError/RangeError', async () => {
  const rand = rng(9);
  const pool = (): unknown => {
    const n = Math.floor(rand() * 5);
    const picks = [undefined, null, -3, 0, 1, 2, 3, 2.5, NaN, Infinity, 2 ** 40, 'F16', {}, [], () => 0,
      new Float32Array(n), new Float64Array(n), new Int32Array(n), new Uint8Array(n * 2), 1e-3];
    return picks[Math.floor(rand() * picks.length)];
  };
  const raw = loadNative() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const api = native as unknown as Record<string, (...a: unknown[]) => unknown>;
  const names = ['toF32', 'fromF32', 'countNonFinite', 'gramAccumulate', 'eigSym', 'coefficients', 'reconstruct', 'predictRows', 'trainPredictor'];
  for (let trial = 0; trial < 3000; trial++) {
    const name = names[trial % names.length];
    const args = Array.from({ length: Math.floor(rand() * 9) }, pool);
    for (const fn of [api[name], raw[name]]) {
      try {
        await fn(...args);
      } catch (e) {
        assert.ok(isArgError(e), `${name}(${args.map(String).join(', ')}): ${String(e)}`);
      }
    }
  }
});

test('the raw binding checks argument counts and types', () => {
  const raw = loadNative() as unknown as Record<string, (...a: unknown[]) => unknown>;
  assert.throws(() => raw.gramAccumulate(), TypeError);
  assert.throws(() => raw.gramAccumulate(new Float64Array(4), new Float32Array(4), 2), TypeError);
  assert.throws(() => raw.eigSym(new Float32Array(4), new Float64Array(2), 2), TypeError);
  assert.throws(() => raw.eigSym(new Float64Array(4), new Float64Array(2), -2), TypeError);
  assert.throws(() => raw.reconstruct(new Float32Array(1), new Float32Array(1), new Float32Array(1), 9, 9, 9), RangeError);
  assert.throws(() => raw.trainPredictor({}), TypeError);
  assert.throws(() => raw.toF32('abc', new Float32Array(1), 'F32'), TypeError);
  assert.throws(() => raw.fromF32(new Float32Array(1), new Uint8Array(2), 'F8'), TypeError);
});

test('a missing addon fails with the commands that fix it; importing alone does not load it', () => {
  const script = `const n = await import(${JSON.stringify(new URL('../src/native/index.js', import.meta.url).href)});
    try { n.getThreads(); } catch (e) { console.log(e.message); }`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, LESA_NATIVE_ADDON: '/nonexistent/lesa_native.node' }, encoding: 'utf8',
  });
  assert.equal(child.status, 0, child.stderr);
  assert.match(child.stdout, /Cannot load the lesa native addon \/nonexistent\/lesa_native.node/);
  assert.ok(child.stdout.includes('apt-get install -y libopenblas-dev liblapacke-dev && npm run build:native'), child.stdout);
});
