import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultThreads, fromF32 } from '../../native/index.js';
import type { FloatDType } from '../../checkpoint/types.js';
import { predictedBytes } from '../../plan/resources.js';
import type { Method, Prepared } from '../method.js';
import { basis, coefficientBytes, coefficientsInMemory, decompose, release, workingSetBytes } from './decompose.js';
import { runScheduled, runsAlone, schedulePeak, type Job } from './schedule.js';
import type { ModelLayout } from '../../arch/index.js';
import { lesaPlan, predictedGaps } from './plan.js';
import { lesaOptions, lesaOptionsOf } from './options.js';
import { exportPredictors, exportTarget } from './export.js';
import { interiorLayers, predictWeight, train, typeSeed, type Predictor } from './predictor.js';

/** Weight types processed at once (each on one BLAS thread) when their working sets fit in --max-memory together. */
export const MAX_CONCURRENT_TYPES = 2;

/** One scheduling job per weight type: its working set and its spilled coefficient bytes. */
function typeJobs(layout: ModelLayout, types: string[], maxMemory: number): Job[] {
  return types.map((type) => {
    const [rows, cols] = layout.typeInfo.get(type)!.shape;
    const spilled = !coefficientsInMemory(rows, cols, layout.layers, maxMemory);
    return { name: type, bytes: workingSetBytes(rows, cols, layout.layers, maxMemory), scratch: spilled ? coefficientBytes(rows, cols, layout.layers) : 0 };
  });
}

/**
 * LESA (Yang et al., ACL 2025): per linear weight type, decompose, train the predictor on
 * every interior layer, predict the new layers, and park them in a scratch file until the
 * executor writes them in output order.
 *
 * With two or more BLAS threads (--threads, default the cores), two types run at once, each
 * on one BLAS thread, whenever their working sets (workingSetBytes) fit in --max-memory
 * together: batch-64 training GEMMs are too small to share threads, so a second type uses the
 * second core far better. A type too large to share the budget with any other (gate/up of an
 * 8B model) runs alone on every thread. Each native call names its thread count, but OpenBLAS
 * keeps one per process: the scheduler never runs a one-thread and an all-thread type together. Every type has its own seed (typeSeed),
 * so the bytes do not depend on the order or the overlap.
 */
export const lesa: Method = {
  name: 'lesa',
  summary: 'new linear weights predicted from the neighbours\' SVD coefficients by a learned MLP per weight type',
  reference: 'https://arxiv.org/abs/2502.13794',
  alignment: 'optional',
  options: lesaOptions,
  plan: lesaPlan,
  resources(plan, ctx) {
    const types = [...predictedGaps(plan).keys()];
    const slots = Math.min(MAX_CONCURRENT_TYPES, ctx.options.threads ?? defaultThreads());
    const { maxMemory } = lesaOptionsOf(ctx);
    const jobs = typeJobs(ctx.layout, types, maxMemory);
    const peak = schedulePeak(jobs, maxMemory, slots);
    const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
    const notes = jobs.map((j, i) => `${j.name}: working set ${gb(j.bytes)}${j.scratch ? `, coefficient blocks spilled (${gb(j.scratch)})` : ''}, ${runsAlone(jobs, i, maxMemory, slots) ? 'alone on every thread' : 'beside another type'}`);
    return { memoryBytes: peak.bytes, scratchBytes: predictedBytes(plan) + peak.scratch, notes };
  },
  async prepare(ckpt, plan, ctx, hooks): Promise<Prepared> {
    const { layout, options } = ctx;
    const o = lesaOptionsOf(ctx);
    const wanted = predictedGaps(plan);
    const types = [...wanted.keys()];
    const scratch = join(hooks.scratchDir, 'predicted.bin');
    const fh: FileHandle = await open(scratch, 'w+');
    const where = new Map<string, { offset: number; length: number }>(); // key: type@left
    let offset = 0;
    const exported = exportTarget() ? new Map<string, { p: Predictor; cols: number }>() : undefined;
    const one = async (t: number, type: string, threads: number) => {
      const step = (phase: string) => (done: number, total: number, detail: Record<string, unknown> = {}) =>
        hooks.progress(done, total, { type, typeIndex: t + 1, types: types.length, phase, ...detail });
      hooks.phase('decompose', { type });
      const d = await decompose(ckpt, layout, type, {
        scratchDir: hooks.scratchDir, maxMemory: o.maxMemory, threads,
        step: (what, done, total) => step(what)(done, total),
      });
      hooks.phase('train', { type, samples: (layout.layers - 2) * d.rank });
      const p = await train(d, interiorLayers(layout.layers), o, typeSeed(options.seed, type),
        (epoch, b, bt, loss) => step('train')((epoch - 1) * bt + b, o.epochs * bt, { epoch, loss }));
      exported?.set(type, { p, cols: d.cols });
      hooks.phase('predict', { type, finalLoss: p.epochLosses[p.epochLosses.length - 1] });
      const US = basis(d);
      const dtype = layout.typeInfo.get(type)!.dtype as FloatDType;
      const gaps = wanted.get(type)!;
      for (const [g, j] of gaps.entries()) {
        const bytes = fromF32(await predictWeight(d, p, j, j + 1, US, threads), dtype);
        const at = offset; // reserved before the await: the other worker writes too
        offset += bytes.byteLength;
        await fh.write(bytes, 0, bytes.byteLength, at);
        where.set(`${type}@${j}`, { offset: at, length: bytes.byteLength });
        step('predict')(g + 1, gaps.length);
      }
      await release(d);
    };
    const blasThreads = options.threads ?? defaultThreads();
    const jobs = typeJobs(layout, types, o.maxMemory);
    try {
      await runScheduled(jobs, o.maxMemory, Math.min(MAX_CONCURRENT_TYPES, blasThreads), blasThreads, (t, threads) => one(t, types[t], threads));
      if (exported) await exportPredictors(exportTarget()!, exported);
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
  },
};
