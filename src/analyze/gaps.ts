import type { ModelLayout } from '../arch/index.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { readLayer } from '../methods/lesa/decompose.js';

export interface LayerPredictability {
  layer: number;
  /** ‖(W_{i−1}+W_{i+1})/2 − W_i‖ / ‖W_i‖ over all linear weights of the layer together. */
  relError: number;
}

export interface GapScore {
  /** The gap after original layer `after`. */
  after: number;
  /** Mean leave-one-out error of the gap's two layers (those that have two neighbours). */
  score: number;
}

/**
 * Leave-one-layer-out predictability by the neighbours' mean, for every interior layer: how
 * smooth the stack is around each layer. Cheap — each tensor is read once, three layers of
 * one type in memory at a time, no training — unlike LESA's predictor, whose leave-one-out
 * errors sit at the random-matrix level on the models we measured (bench/results/fidelity.md),
 * so its ranking would be noise.
 */
export async function neighbourPredictability(ckpt: Checkpoint, layout: ModelLayout, types: string[],
  onRead?: (done: number, total: number) => void): Promise<LayerPredictability[]> {
  const L = layout.layers;
  const err = new Float64Array(L), norm = new Float64Array(L);
  for (const [t, type] of types.entries()) {
    let prev = await readLayer(ckpt, layout, type, 0);
    let cur = await readLayer(ckpt, layout, type, 1);
    for (let i = 1; i <= L - 2; i++) {
      const next = await readLayer(ckpt, layout, type, i + 1);
      for (let e = 0; e < cur.length; e++) {
        const d = (prev[e] + next[e]) / 2 - cur[e];
        err[i] += d * d;
        norm[i] += cur[e] * cur[e];
      }
      [prev, cur] = [cur, next];
      onRead?.(t * L + i + 2, types.length * L);
    }
  }
  const out: LayerPredictability[] = [];
  for (let i = 1; i <= L - 2; i++) out.push({ layer: i, relError: Math.sqrt(err[i] / (norm[i] || 1)) });
  return out;
}

/** Every gap after layer 0..L−2, scored by its layers' leave-one-out errors (lower: smoother). */
export function scoreGaps(layers: LayerPredictability[], L: number): GapScore[] {
  const err = new Map(layers.map((l) => [l.layer, l.relError]));
  const gaps: GapScore[] = [];
  for (let j = 0; j <= L - 2; j++) {
    const known = [j, j + 1].filter((i) => err.has(i)).map((i) => err.get(i)!);
    if (known.length) gaps.push({ after: j, score: known.reduce((s, x) => s + x, 0) / known.length });
  }
  return gaps;
}

/** Positions for `n` new layers: the best-scored gaps, each once, cycling again if n exceeds them; sorted. */
export function bestGaps(gaps: GapScore[], n: number): number[] {
  const ranked = [...gaps].sort((a, b) => a.score - b.score || a.after - b.after);
  return Array.from({ length: n }, (_, k) => ranked[k % ranked.length].after).sort((a, b) => a - b);
}
