import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Checkpoint, FloatDType } from '../../checkpoint/types.js';
import { layersWith, type ModelLayout } from '../../arch/index.js';
import { defaultThreads, fromF32 } from '../../native/index.js';
import type { Plan } from '../../plan/recipe.js';
import { predictedBytes, type PrepareResources } from '../../plan/resources.js';
import type { MethodContext, PrepareHooks, Prepared } from '../method.js';
import { basis, coefficientBytes, coefficientsInMemory, decompose, decompositionRank, release, workingSetBytes, type Decomposition } from './decompose.js';
import { lesaOptionsOf } from './options.js';
import { predictedGaps } from './plan.js';
import { runScheduled, runsAlone, schedulePeak, type Job } from './schedule.js';

/** Weight types processed at once (each on one BLAS thread) when their working sets fit in --max-memory together. */
export const MAX_CONCURRENT_TYPES = 2;

/** Progress of one type's own phase (LESA's training): done and total counts, with details. */
export type TypeProgress = (done: number, total: number, detail?: Record<string, unknown>) => void;

/**
 * What a method does with one type's decomposition: returns the builder of the layer between
 * j and j+1 (given U·diag(S) as f32, and the BLAS threads its native calls take), after any
 * learning of its own (reported through `step`).
 */
export type LayerBuilder = (d: Decomposition, step: TypeProgress, phase: PrepareHooks['phase']) => Promise<{
  layer(j: number, US: Float32Array, threads: number): Promise<Float32Array>;
  detail?: Record<string, unknown>;
}>;

/** FLOPs a method spends on one type (of `cols`-wide layers) beyond the decomposition (LESA: training its predictor). */
export type BuildCost = (type: string, cols: number) => number;

/**
 * One scheduling job per weight type: its working set, its spilled coefficient bytes, and its
 * FLOPs: Gram and coefficient GEMMs (2·rows·rank·cols per layer each), the eigendecomposition
 * (≈ 9·rows³), and what the method adds.
 */
function typeJobs(layout: ModelLayout, types: string[], maxMemory: number, cost?: BuildCost): Job[] {
  return types.map((type) => {
    const [rows, cols] = layout.typeInfo.get(type)!.shape;
    const layers = layersWith(layout, type).length;
    const spilled = !coefficientsInMemory(rows, cols, layers, maxMemory);
    const rank = decompositionRank(rows, cols, layers);
    const work = 2 * layers * rows * cols * (rows + rank) + 9 * rows ** 3 + (cost?.(type, cols) ?? 0);
    return { name: type, bytes: workingSetBytes(rows, cols, layers, maxMemory), scratch: spilled ? coefficientBytes(rows, cols, layers) : 0, work };
  });
}

/** Memory and scratch of decomposing every predicted type under the scheduler (for --dry-run). */
export function predictedResources(plan: Plan, ctx: MethodContext): PrepareResources {
  const types = [...predictedGaps(plan).keys()];
  const slots = Math.min(MAX_CONCURRENT_TYPES, ctx.options.threads ?? defaultThreads());
  const { maxMemory } = lesaOptionsOf(ctx);
  const jobs = typeJobs(ctx.layout, types, maxMemory);
  const peak = schedulePeak(jobs, maxMemory, slots);
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  const notes = jobs.map((j, i) => `${j.name}: working set ${gb(j.bytes)}${j.scratch ? `, coefficient blocks spilled (${gb(j.scratch)})` : ''}, ${runsAlone(jobs, i, maxMemory, slots) ? 'alone on every thread' : 'beside another type'}`);
  return { memoryBytes: peak.bytes, scratchBytes: predictedBytes(plan) + peak.scratch, notes };
}

/**
 * Per linear weight type: decompose, let the method build the new layers from the
 * decomposition, and park them in a scratch file until the executor writes them in output
 * order.
 *
 * With two or more BLAS threads (--threads, default the cores), two types run at once, each
 * on one BLAS thread, whenever their working sets (workingSetBytes) fit in --max-memory
 * together: batch-64 training GEMMs are too small to share threads, so a second type uses the
 * second core far better. A type too large to share the budget with any other (gate/up of an
 * 8B model) runs alone on every thread. Each native call names its thread count, but OpenBLAS
 * keeps one per process: the scheduler never runs a one-thread and an all-thread type together. Builders seed per type, so the bytes do
 * not depend on the order or the overlap.
 */
export async function preparePredicted(ckpt: Checkpoint, plan: Plan, ctx: MethodContext, hooks: PrepareHooks, build: LayerBuilder, cost?: BuildCost): Promise<Prepared> {
  const { layout } = ctx;
  const o = lesaOptionsOf(ctx);
  const blasThreads = ctx.options.threads ?? defaultThreads();
  const byAddon: TypeBuilder = async (type, threads, step) => {
    hooks.phase('decompose', { type });
    const d = await decompose(ckpt, layout, type, {
      scratchDir: hooks.scratchDir, maxMemory: o.maxMemory, threads,
      step: (what, done, total) => step(what)(done, total),
    });
    const builder = await build(d, step('train'), hooks.phase);
    hooks.phase('predict', { type, ...builder.detail });
    const US = basis(d);
    return { layer: (j) => builder.layer(j, US, threads), release: () => release(d) };
  };
  const jobs = typeJobs(layout, [...predictedGaps(plan).keys()], o.maxMemory, cost);
  return prepareTypes(plan, ctx, hooks, byAddon, (run) => runScheduled(jobs, o.maxMemory, Math.min(MAX_CONCURRENT_TYPES, blasThreads), blasThreads, run));
}

/** One weight type's new layers, built however the device does it (the addon's decomposition, or the torch worker). */
export type TypeBuilder = (type: string, threads: number, step: (phase: string) => TypeProgress) => Promise<{
  layer(j: number): Promise<Float32Array>;
  release(): Promise<void>;
}>;

/** Runs `one(t, threads)` for every type index, in whatever order and overlap the caller allows. */
export type TypeRunner = (one: (t: number, threads: number) => Promise<void>) => Promise<void>;

/** Builds every predicted type with `build` (scheduled by `run`) and parks its new layers, converted to the type's dtype, in a scratch file. */
export async function prepareTypes(plan: Plan, ctx: MethodContext, hooks: PrepareHooks, build: TypeBuilder, run: TypeRunner): Promise<Prepared> {
  const { layout } = ctx;
  const wanted = predictedGaps(plan);
  const types = [...wanted.keys()];
  const scratch = join(hooks.scratchDir, 'predicted.bin');
  const fh: FileHandle = await open(scratch, 'w+');
  const where = new Map<string, { offset: number; length: number }>(); // key: type@left
  let offset = 0;
  const one = async (t: number, type: string, threads: number) => {
    const step = (phase: string) => (done: number, total: number, detail: Record<string, unknown> = {}) =>
      hooks.progress(done, total, { type, typeIndex: t + 1, types: types.length, phase, ...detail });
    const builder = await build(type, threads, step);
    const dtype = layout.typeInfo.get(type)!.dtype as FloatDType;
    const gaps = wanted.get(type)!;
    for (const [g, j] of gaps.entries()) {
      const bytes = fromF32(await builder.layer(j), dtype);
      const at = offset; // reserved before the await: the other worker writes too
      offset += bytes.byteLength;
      await fh.write(bytes, 0, bytes.byteLength, at);
      where.set(`${type}@${j}`, { offset: at, length: bytes.byteLength });
      step('predict')(g + 1, gaps.length);
    }
    await builder.release();
  };
  try {
    await run((t, threads) => one(t, types[t], threads));
  } catch (e) {
    await fh.close();
    throw e;
  }
  const recipes = new Map(plan.tensors.flatMap((t) => (t.recipe.kind === 'predicted' ? [[t.name, `${t.recipe.type}@${t.recipe.left}`] as const] : [])));
  return {
    async produce(name) {
      const loc = where.get(recipes.get(name)!)!;
      const out = new Uint8Array(loc.length);
      await fh.read(out, 0, loc.length, loc.offset);
      return out;
    },
    async dispose() {
      await fh.close();
    },
  };
}
