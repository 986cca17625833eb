// How far from 0 a control's cosine with a true layer falls by chance: the size-matched random
// control of `lesa analyze --information` (its own seeds, its own generator) over many seeds,
// against 1/√N, the standard deviation of an N(0,1) matrix's cosine with any fixed N-entry matrix.
//   node dist/bench/random_cosine_null.js MODEL_DIR TYPE LAYER [DRAWS=300]
import { resolveLayout } from '../src/arch/index.js';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';
import { guessSeeds } from '../src/analyze/information.js';
import { closeness, sizeMatchedRandom } from '../src/analyze/loo.js';
import { readLayer } from '../src/methods/lesa/decompose.js';

const [dir, type, layerArg, drawsArg] = process.argv.slice(2);
const layer = Number(layerArg), draws = Number(drawsArg ?? 300);
const ckpt = await openCheckpoint(dir);
try {
  const layout = resolveLayout(ckpt.config, ckpt.tensors);
  const [prev, truth, next] = await Promise.all([layer - 1, layer, layer + 1].map((j) => readLayer(ckpt, layout, type, j)));
  const cos: number[] = [];
  for (let s = 0; s < draws; s++) cos.push(closeness(sizeMatchedRandom(prev, next, guessSeeds(s, type, layer).random), truth).cosine);
  const mean = cos.reduce((a, x) => a + x, 0) / draws;
  const sd = Math.sqrt(cos.reduce((a, x) => a + (x - mean) ** 2, 0) / (draws - 1));
  const f = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(4);
  console.log(`${type} layer ${layer}, random control, seeds 0..${draws - 1}: mean ${f(mean)}, sd ${sd.toFixed(4)}, `
    + `min ${f(Math.min(...cos))}, max ${f(Math.max(...cos))}, below 0: ${cos.filter((x) => x < 0).length}/${draws}; 1/√N = ${(1 / Math.sqrt(truth.length)).toFixed(4)} (N = ${truth.length})`);
} finally {
  await ckpt.close();
}
