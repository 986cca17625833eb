import type { Checkpoint } from '../../checkpoint/types.js';
import type { ModelLayout } from '../../arch/index.js';
import { gaussian } from '../../execute/rng.js';
import type { LesaOptions } from '../../methods/method.js';
import { basis, readLayer, type Decomposition } from '../../methods/lesa/decompose.js';
import { interiorLayers, predictWeight, train, typeSeed } from '../../methods/lesa/predictor.js';
import { closeness, type LooRow } from '../loo.js';

/**
 * Leave-one-layer-out for one weight type on a decomposition the report already holds (so the
 * report decomposes each type once). Same procedure, seeds and controls as `leaveOneOut` in
 * ../loo.ts, with the per-layer seeds taken as unsigned 32-bit (`(typeSeed ^ i) >>> 0`).
 */
export async function looForType(
  ckpt: Checkpoint, layout: ModelLayout, d: Decomposition, layers: number[], lesa: LesaOptions, seed: number,
  onLayer?: (done: number, total: number) => void,
): Promise<LooRow[]> {
  const rows: LooRow[] = [];
  const type = d.type;
  const US = basis(d);
  for (const [k, i] of layers.entries()) {
    const p = await train(d, interiorLayers(d.layers, [i]), lesa, (typeSeed(seed, type) ^ i) >>> 0);
    const predicted = await predictWeight(d, p, i - 1, i + 1, US);
    const [prev, truth, next] = await Promise.all([i - 1, i, i + 1].map((j) => readLayer(ckpt, layout, type, j)));
    const avg = new Float32Array(truth.length);
    for (let e = 0; e < avg.length; e++) avg[e] = (prev[e] + next[e]) / 2;
    const rnd = gaussian(truth.length, (typeSeed(seed + 1, type) ^ i) >>> 0, 1);
    const scale = (frob(prev) + frob(next)) / 2 / frob(rnd);
    for (let e = 0; e < rnd.length; e++) rnd[e] *= scale;
    rows.push({ type, layer: i, lesa: closeness(predicted, truth), copy: closeness(prev, truth), average: closeness(avg, truth), random: closeness(rnd, truth) });
    onLayer?.(k + 1, layers.length);
  }
  return rows;
}

function frob(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** `n` evenly spaced interior layers (1..L-2), all of them when there are no more than `n`. */
export function defaultLooLayers(L: number, n = 8): number[] {
  const interior = interiorLayers(L);
  if (interior.length <= n) return interior;
  const lo = interior[0], hi = interior[interior.length - 1];
  const out = new Set<number>();
  for (let k = 0; k < n; k++) out.add(Math.round(lo + (k * (hi - lo)) / (n - 1)));
  return [...out].sort((a, b) => a - b);
}
