import type { Checkpoint } from '../checkpoint/types.js';
import type { ModelLayout } from '../arch/index.js';
import { eigSym, gramAccumulate } from '../native/index.js';
import type { LesaOptions } from '../methods/lesa/options.js';
import { STEP_MATCHED } from '../methods/lesa/budget.js';
import { basis, decompose, readLayer, release, type Decomposition } from '../methods/lesa/decompose.js';
import type { Reporter } from '../progress/reporter.js';
import { interiorLayers, predictWeight, train, typeSeed } from '../methods/lesa/predictor.js';
import { randomInBasis } from '../methods/rand-svd.js';
import { frobenius } from '../execute/f32.js';
import { closeness, sizeMatchedRandom, type Closeness } from './loo.js';

/**
 * Shape of a matrix alone: the share of its energy in its mean row (‖mean row‖²·rows/‖W‖²,
 * 1 when every row is the same) and σ₁/‖W‖_F (1 for rank one). A collapsed predictor gives
 * near-identical rows: both near 1.
 */
export interface Shape {
  meanRowShare: number;
  sigma1Share: number;
}

export type Information = Closeness & Shape;

/** Guesses of a held-out layer, in the order tables list them. */
export const GUESSES = ['lesa', 'lesa-step-matched', 'rand-svd', 'random'] as const;
export type Guess = (typeof GUESSES)[number];

export interface InformationRow {
  type: string;
  layer: number;
  truth: Shape;
  guesses: Record<Guess, Information>;
}

export interface InformationResult {
  /** AdamW steps of each LESA budget per type (leave-one-out trains on L-3 layers). */
  steps: Record<string, { lesa: number; 'lesa-step-matched': number }>;
  rows: InformationRow[];
  /** Mean over the held-out layers, per type. */
  summary: Record<string, { truth: Shape; guesses: Record<Guess, Information> }>;
}

/** σ₁ from the Gram matrix of the shorter side (f64), so it is exact up to rounding, unlike power iteration. */
export async function shapeOf(w: Float32Array, rows: number, cols: number): Promise<Shape> {
  const fro = frobenius(w);
  if (fro === 0) return { meanRowShare: 0, sigma1Share: 0 };
  const mean = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) mean[c] += w[r * cols + c];
  let mm = 0;
  for (let c = 0; c < cols; c++) mm += (mean[c] / rows) ** 2;
  const short = Math.min(rows, cols);
  let m = w;
  if (cols < rows) {
    m = new Float32Array(w.length);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m[c * rows + r] = w[r * cols + c];
  }
  const G = new Float64Array(short * short);
  await gramAccumulate(G, m, short, Math.max(rows, cols));
  const { values } = await eigSym(G, short);
  return { meanRowShare: (mm * rows) / (fro * fro), sigma1Share: Math.sqrt(Math.max(values[0], 0)) / fro };
}

async function information(guess: Float32Array, truth: Float32Array, rows: number, cols: number): Promise<Information> {
  return { ...closeness(guess, truth), ...await shapeOf(guess, rows, cols) };
}

/**
 * The seed of each guess's draws at one (seed, type, held-out layer). LESA keeps the seed
 * `lesa analyze --loo` trains with. The controls hash their own name in: offsets such as seed+1
 * made seed s's random matrix the same stream as seed s+1's rand-svd coefficients, so a
 * spread over consecutive seeds was not over independent draws.
 */
export function guessSeeds(seed: number, type: string, layer: number): { lesa: number; 'rand-svd': number; random: number } {
  return {
    lesa: (typeSeed(seed, type) ^ layer) >>> 0,
    'rand-svd': typeSeed(seed, `${type}#rand-svd@${layer}`),
    random: typeSeed(seed, `${type}#random@${layer}`),
  };
}

/**
 * For each held-out interior layer i of one type: LESA trained without layer i at the given
 * budget and at Llama-3-8B's step count for this type, rand-svd (random coefficients in the
 * same basis) and a size-matched random matrix, both at the neighbours' mean norm, each
 * compared with the true layer and described by its shape. The basis includes layer i.
 */
export async function informationForType(
  ckpt: Checkpoint, layout: ModelLayout, d: Decomposition, layers: number[], lesa: LesaOptions, seed: number,
  onLayer?: (done: number, total: number) => void,
): Promise<{ rows: InformationRow[]; steps: { lesa: number; 'lesa-step-matched': number } }> {
  const rows: InformationRow[] = [];
  const US = basis(d);
  const budgets = { lesa: { ...lesa, predictorSteps: lesa.predictorSteps === STEP_MATCHED ? null : lesa.predictorSteps }, 'lesa-step-matched': { ...lesa, predictorSteps: STEP_MATCHED } } as const;
  const steps = { lesa: 0, 'lesa-step-matched': 0 };
  for (const [k, i] of layers.entries()) {
    const [prev, truth, next] = await Promise.all([i - 1, i, i + 1].map((j) => readLayer(ckpt, layout, d.type, j)));
    const guesses: Partial<Record<Guess, Information>> = {};
    const seeds = guessSeeds(seed, d.type, i);
    for (const name of ['lesa', 'lesa-step-matched'] as const) {
      const p = await train(d, interiorLayers(d.layers, [i]), budgets[name], seeds.lesa);
      steps[name] = p.steps;
      guesses[name] = await information(await predictWeight(d, p, i - 1, i + 1, US), truth, d.rows, d.cols);
    }
    const norm = (frobenius(prev) + frobenius(next)) / 2;
    guesses['rand-svd'] = await information(await randomInBasis(d, US, seeds['rand-svd'], norm), truth, d.rows, d.cols);
    guesses.random = await information(sizeMatchedRandom(prev, next, seeds.random), truth, d.rows, d.cols);
    rows.push({ type: d.type, layer: i, truth: await shapeOf(truth, d.rows, d.cols), guesses: guesses as Record<Guess, Information> });
    onLayer?.(k + 1, layers.length);
  }
  return { rows, steps };
}

/** Mean of every metric over the held-out layers of each type. */
export function summarizeInformation(rows: InformationRow[]): InformationResult['summary'] {
  const out: InformationResult['summary'] = {};
  for (const type of new Set(rows.map((r) => r.type))) {
    const rs = rows.filter((r) => r.type === type);
    const mean = <T extends object>(pick: (r: InformationRow) => T): T => {
      const keys = Object.keys(pick(rs[0])) as (keyof T)[];
      return Object.fromEntries(keys.map((key) => [key, rs.reduce((a, r) => a + (pick(r)[key] as number), 0) / rs.length])) as T;
    };
    out[type] = {
      truth: mean((r) => r.truth),
      guesses: Object.fromEntries(GUESSES.map((g) => [g, mean((r) => r.guesses[g])])) as Record<Guess, Information>,
    };
  }
  return out;
}

/** The table `lesa analyze --information` prints (means over the held-out layers). */
export function formatInformation(result: InformationResult, layers: number[]): string {
  const f = (x: number) => x.toFixed(3).padStart(8);
  const label: Record<Guess, string> = { lesa: 'LESA', 'lesa-step-matched': `LESA ${STEP_MATCHED} steps`, 'rand-svd': 'rand-svd', random: 'random' };
  const lines = [
    `Does LESA carry information? Held-out layers ${layers.join(', ')} (leave-one-layer-out; the SVD basis includes the held-out layer).`,
    'cos: cosine(Ŵ, W); ratio: ‖Ŵ‖/‖W‖; meanrow: ‖mean row‖²·rows/‖Ŵ‖²; σ1/F: σ₁/‖Ŵ‖_F. Means over the held-out layers.',
    `${'type'.padEnd(10)} ${'guess'.padEnd(24)} ${'steps'.padStart(7)} ${['cos', 'ratio', 'meanrow', 'σ1/F'].map((h) => h.padStart(8)).join('')}`,
  ];
  for (const [type, s] of Object.entries(result.summary)) {
    lines.push(`${type.padEnd(10)} ${'truth W'.padEnd(24)} ${''.padStart(7)} ${f(1)}${f(1)}${f(s.truth.meanRowShare)}${f(s.truth.sigma1Share)}`);
    for (const g of GUESSES) {
      const x = s.guesses[g];
      const steps = g === 'lesa' || g === 'lesa-step-matched' ? String(result.steps[type][g]) : '';
      lines.push(`${''.padEnd(10)} ${label[g].padEnd(24)} ${steps.padStart(7)} ${f(x.cosine)}${f(x.normRatio)}${f(x.meanRowShare)}${f(x.sigma1Share)}`);
    }
  }
  return lines.join('\n');
}

/** informationForType for every requested type, one decomposition at a time. */
export async function informationStudy(
  ckpt: Checkpoint, layout: ModelLayout, o: { types: string[]; layers: number[]; lesa: LesaOptions; seed: number; scratchDir: string }, reporter: Reporter,
): Promise<InformationResult> {
  const rows: InformationRow[] = [];
  const steps: InformationResult['steps'] = {};
  for (const [t, type] of o.types.entries()) {
    const where = { type, typeIndex: t + 1, types: o.types.length };
    reporter.phase('decompose', where);
    const d = await decompose(ckpt, layout, type, { scratchDir: o.scratchDir, maxMemory: o.lesa.maxMemory });
    try {
      const r = await informationForType(ckpt, layout, d, o.layers, o.lesa, o.seed,
        (done, total) => reporter.progress(done, total, { ...where, phase: 'information' }));
      rows.push(...r.rows);
      steps[type] = r.steps;
    } finally {
      await release(d);
    }
  }
  return { steps, rows, summary: summarizeInformation(rows) };
}
