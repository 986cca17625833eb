import { UserError } from '../../errors.js';
import { countNonFinite, predictRows, reconstruct, stepsPerEpoch, trainPredictor } from '../../native/index.js';
import type { LesaOptions } from './options.js';
import { fnv1a } from '../../execute/f32.js';
import { basis, block, type Decomposition } from './decompose.js';
import { trainingSteps } from './budget.js';

export interface Predictor {
  params: Float32Array;
  hidden: number;
  epochLosses: Float64Array;
  steps: number;
}

/** `step` counts from 1 to `steps` over all epochs. */
export type TrainProgress = (step: number, steps: number, epoch: number, loss: number) => void;

/** Fits G_T on samples ([V_{i-1}[k], V_{i+1}[k]] -> V_i[k]) for every target layer i, for trainingSteps AdamW steps. */
export async function train(d: Decomposition, targets: number[], o: LesaOptions, seed: number, onProgress?: TrainProgress): Promise<Predictor> {
  const V = d.V.kind === 'memory' ? d.V.data : { path: d.V.path, offset: d.V.offset };
  const steps = trainingSteps(o, d.type, targets.length * d.rank);
  const perEpoch = stepsPerEpoch(targets.length * d.rank, o.batch);
  const { params, epochLosses } = await trainPredictor({
    V, layers: d.layers, rank: d.rank, cols: d.cols, targets: Int32Array.from(targets),
    hidden: o.hidden, steps, batch: o.batch, lr: o.lr, weightDecay: o.weightDecay, lambda: o.lambda,
    seed, onProgress: onProgress && ((epoch, b, _bt, loss) => onProgress((epoch - 1) * perEpoch + b, steps, epoch, loss)),
    // Batch-64 GEMMs are too small to share: a second BLAS thread cost 3x the CPU for no gain
    // (bench/native-bench.ts). One thread also makes training independent of --threads.
    threads: 1,
  });
  return { params, hidden: o.hidden, epochLosses, steps };
}

/** FLOPs of `steps` training steps of a predictor for `cols`-wide coefficients (forward and backward of the 2C→H→H→C MLP per sample), for scheduling. */
export function trainingFlops(o: Pick<LesaOptions, 'batch' | 'hidden'>, steps: number, cols: number): number {
  return 6 * steps * o.batch * (3 * o.hidden * cols + o.hidden * o.hidden);
}

/** W' = U diag(S) G_T([V_left, V_right]) for a layer between `left` and `right`. */
export async function predictWeight(d: Decomposition, p: Predictor, left: number, right: number, US = basis(d), threads?: number): Promise<Float32Array> {
  const v = await predictRows(p.params, p.hidden, d.cols, await block(d, left), await block(d, right), d.rank, threads);
  const w = await reconstruct(US, v, d.rows, d.rank, d.cols, threads);
  const bad = countNonFinite(w);
  if (bad > 0) throw new UserError(`the predicted ${d.type} between layers ${left} and ${right} holds ${bad} NaN/Inf values; try a smaller --lr or fewer --epochs`);
  return w;
}

/** Targets of the training set: every interior layer (1..L-2), minus `exclude`. */
export function interiorLayers(L: number, exclude: number[] = []): number[] {
  const out: number[] = [];
  for (let i = 1; i <= L - 2; i++) if (!exclude.includes(i)) out.push(i);
  return out;
}

/** A per-type seed, so that types train on independent streams whatever their order. */
export function typeSeed(seed: number, type: string): number {
  return fnv1a(seed ^ 0x9e3779b9, type);
}
