// LESA's coefficient GEMMs V_i = diag(1/S)·Uᵀ·W_i in f64 (dgemm on f64 copies) against f32 (one
// sgemm): error on a real model's every weight type, and speed side by side (issue 13).
//   node dist/bench/coefficient_precision.js MODEL_DIR [--shape ROWSxCOLS] [--threads N]
// Per type: the largest relative difference of V (‖V32−V64‖_F/‖V64‖_F over layers), each route's
// reconstruction error ‖U·diag(S)·V − W‖_F/‖W‖_F, and the CPU seconds of both routes, alternating
// per layer so both see the same load. --shape adds one timing at a real model's shape (random data).
import { performance } from 'node:perf_hooks';
import { linearTypes, resolveLayout } from '../src/arch/index.js';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';
import { REL_TOL, readLayer } from '../src/methods/lesa/decompose.js';
import * as native from '../src/native/index.js';

const args = process.argv.slice(2);
const opt = (name: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const threads = Number(opt('--threads') ?? native.defaultThreads());

function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

async function timed<T>(run: () => Promise<T>): Promise<[T, number, number]> {
  const t = performance.now(), c = process.cpuUsage();
  const out = await run();
  const u = process.cpuUsage(c);
  return [out, (performance.now() - t) / 1000, (u.user + u.system) / 1e6];
}

const rows: string[] = [];
if (args[0] && !args[0].startsWith('--')) {
  const ckpt = await openCheckpoint(args[0]);
  const layout = resolveLayout(ckpt.config, ckpt.tensors);
  console.log(`| type | shape | rank | max ‖V32−V64‖/‖V64‖ | recon err f64 | recon err f32 | CPU s f64 | CPU s f32 |\n|---|---|---|---|---|---|---|---|`);
  for (const type of linearTypes(layout.arch).filter((t) => layout.typeInfo.has(t))) {
    const [r, c] = layout.typeInfo.get(type)!.shape;
    const L = layout.layers;
    const G = new Float64Array(r * r);
    for (let i = 0; i < L; i++) await native.gramAccumulate(G, await readLayer(ckpt, layout, type, i), r, c, threads);
    const { values, vectors } = await native.eigSym(G, r, threads);
    const rank = Math.min(r, L * c);
    const S = Float64Array.from({ length: rank }, (_, k) => Math.sqrt(Math.max(values[k], 0)));
    const U = new Float64Array(r * rank);
    for (let i = 0; i < r; i++) U.set(vectors.subarray(i * r, i * r + rank), i * rank);
    const U32 = Float32Array.from(U);
    const US = Float32Array.from(U, (u, i) => u * S[i % rank]);
    let dV = 0, e64 = 0, e32 = 0, cpu64 = 0, cpu32 = 0;
    for (let i = 0; i < L; i++) {
      const W = await readLayer(ckpt, layout, type, i);
      const [V64, , c64] = await timed(() => native.coefficients(U, S, W, r, rank, c, REL_TOL, threads));
      const [V32, , c32] = await timed(() => native.coefficients(U32, S, W, r, rank, c, REL_TOL, threads));
      cpu64 += c64; cpu32 += c32;
      dV = Math.max(dV, relDiff(V32, V64));
      e64 = Math.max(e64, relDiff(await native.reconstruct(US, V64, r, rank, c, threads), W));
      e32 = Math.max(e32, relDiff(await native.reconstruct(US, V32, r, rank, c, threads), W));
    }
    const e = (x: number) => x.toExponential(2);
    rows.push(`| ${type} | ${r}×${c} | ${rank} | ${e(dV)} | ${e(e64)} | ${e(e32)} | ${cpu64.toFixed(2)} | ${cpu32.toFixed(2)} |`);
    console.log(rows[rows.length - 1]);
  }
}
const shape = opt('--shape');
if (shape) {
  const [r, c] = shape.split('x').map(Number);
  const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const U32 = rand(r * r), U = Float64Array.from(U32), S = new Float64Array(r).fill(1), W = rand(r * c);
  const flop = 2 * r * r * c;
  for (const [name, u] of [['f64', U], ['f32', U32], ['f64', U], ['f32', U32]] as const) {
    const [, wall, cpu] = await timed(() => native.coefficients(u, S, W, r, r, c, REL_TOL, threads));
    console.log(`shape ${r}x${c} ${name}: ${wall.toFixed(2)} s wall, ${cpu.toFixed(2)} s CPU, ${(flop / wall / 1e9).toFixed(0)} GFLOP/s (threads ${threads})`);
  }
}
