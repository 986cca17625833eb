// Timings for planning: gram + eigSym at two sizes, one predictor epoch at SmolLM-135M scale.
//   npm run build && node dist/bench/native-bench.js [--quick] [--threads=N]
import { performance } from 'node:perf_hooks';

import * as native from '../src/native/index.js';

const quick = process.argv.includes('--quick');
const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

async function time<T>(label: string, run: () => Promise<T>): Promise<T> {
  const start = performance.now(), cpu = process.cpuUsage();
  const result = await run();
  const used = process.cpuUsage(cpu);
  // CPU seconds (all threads) stay meaningful when other processes share the cores.
  console.log(`${label}: ${((performance.now() - start) / 1000).toFixed(2)} s wall, ${((used.user + used.system) / 1e6).toFixed(2)} s CPU`);
  return result;
}

const flag = process.argv.find((a) => a.startsWith('--threads='));
const threads = flag ? Number(flag.slice('--threads='.length)) : native.defaultThreads();
console.log(`OpenBLAS threads: ${threads}`);
for (const n of quick ? [512] : [1536, 4096]) {
  const G = new Float64Array(n * n);
  const W = random(n * n);
  await time(`gramAccumulate ${n}x${n} (one square layer)`, () => native.gramAccumulate(G, W, n, n, threads));
  await time(`eigSym n=${n}`, () => native.eigSym(G, n, threads));
}

const layers = 30, rank = quick ? 64 : 576, cols = 576;
const V = random(layers * rank * cols);
const targets = Int32Array.from({ length: layers - 2 }, (_, i) => i + 1);
await time(`trainPredictor 1 epoch, cols=${cols} rank=${rank} layers=${layers} (${targets.length * rank} samples, batch 64)`, () =>
  native.trainPredictor({ V, layers, rank, cols, targets, seed: 0, epochs: 1, threads }),
);
