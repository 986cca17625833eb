import type { Checkpoint } from '../checkpoint/types.js';
import type { ModelLayout } from '../arch/index.js';
import { frobenius } from '../execute/f32.js';
import { gaussian } from '../execute/rng.js';
import type { LesaOptions } from '../methods/lesa/options.js';
import { basis, decompose, readLayer, type Decomposition } from '../methods/lesa/decompose.js';
import { interiorLayers, predictWeight, train, typeSeed } from '../methods/lesa/predictor.js';
import type { Reporter } from '../progress/reporter.js';

/** How close a guess Ŵ is to the truth W. Relative error alone can be gamed (method.md §4.1). */
export interface Closeness {
  relError: number;
  cosine: number;
  normRatio: number;
}

export interface LooRow {
  type: string;
  layer: number;
  lesa: Closeness;
  copy: Closeness;
  average: Closeness;
  random: Closeness;
}

export function closeness(guess: Float32Array, truth: Float32Array): Closeness {
  let dd = 0, gg = 0, tt = 0, gt = 0;
  for (let i = 0; i < truth.length; i++) {
    const g = guess[i], t = truth[i];
    dd += (g - t) * (g - t); gg += g * g; tt += t * t; gt += g * t;
  }
  const nt = Math.sqrt(tt), ng = Math.sqrt(gg);
  return { relError: Math.sqrt(dd) / nt, cosine: ng > 0 && nt > 0 ? gt / (ng * nt) : 0, normRatio: ng / nt };
}

/** Normal entries at the neighbours' mean Frobenius norm: the control with no structure at all. */
export function sizeMatchedRandom(prev: Float32Array, next: Float32Array, seed: number): Float32Array {
  const rnd = gaussian(prev.length, seed, 1);
  const scale = (frobenius(prev) + frobenius(next)) / 2 / frobenius(rnd);
  for (let e = 0; e < rnd.length; e++) rnd[e] *= scale;
  return rnd;
}

export interface LooOptions {
  types: string[];
  layers: number[];
  lesa: LesaOptions;
  seed: number;
  scratchDir: string;
}

/**
 * Leave-one-layer-out for one weight type on a decomposition already in hand: for each
 * interior layer i, fit the predictor without the samples whose target is i, predict i from
 * i-1 and i+1, and compare with the truth, next to copy, average and a size-matched random
 * matrix. The SVD basis includes layer i (it is the model's own basis).
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
    const rnd = sizeMatchedRandom(prev, next, (typeSeed(seed + 1, type) ^ i) >>> 0);
    rows.push({ type, layer: i, lesa: closeness(predicted, truth), copy: closeness(prev, truth), average: closeness(avg, truth), random: closeness(rnd, truth) });
    onLayer?.(k + 1, layers.length);
  }
  return rows;
}

/** Leave-one-layer-out for every requested type, one decomposition at a time. */
export async function leaveOneOut(ckpt: Checkpoint, layout: ModelLayout, o: LooOptions, reporter: Reporter): Promise<LooRow[]> {
  const rows: LooRow[] = [];
  for (const [t, type] of o.types.entries()) {
    const where = { type, typeIndex: t + 1, types: o.types.length };
    reporter.phase('decompose', where);
    const d = await decompose(ckpt, layout, type, { scratchDir: o.scratchDir, maxMemory: o.lesa.maxMemory });
    rows.push(...await looForType(ckpt, layout, d, o.layers, o.lesa, o.seed,
      (done, total) => reporter.progress(done, total, { ...where, phase: 'leave-one-out' })));
  }
  return rows;
}

/** Mean of each metric per type and method. */
export function summarize(rows: LooRow[]): Record<string, Record<'lesa' | 'copy' | 'average' | 'random', Closeness>> {
  const out: Record<string, Record<string, Closeness>> = {};
  const types = [...new Set(rows.map((r) => r.type))];
  for (const type of types) {
    const rs = rows.filter((r) => r.type === type);
    out[type] = {};
    for (const m of ['lesa', 'copy', 'average', 'random'] as const) {
      const mean = (k: keyof Closeness) => rs.reduce((a, r) => a + r[m][k], 0) / rs.length;
      out[type][m] = { relError: mean('relError'), cosine: mean('cosine'), normRatio: mean('normRatio') };
    }
  }
  return out as ReturnType<typeof summarize>;
}
