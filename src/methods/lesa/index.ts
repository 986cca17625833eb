import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fromF32, getThreads, setThreads } from '../../native/index.js';
import type { FloatDType } from '../../checkpoint/types.js';
import type { Method, Prepared } from '../method.js';
import { basis, decompose } from './decompose.js';
import { lesaPlan, predictedGaps } from './plan.js';
import { interiorLayers, predictWeight, train, typeSeed } from './predictor.js';

/** Weight types processed at once (each decomposes, trains and predicts on one BLAS thread). */
export const MAX_CONCURRENT_TYPES = 2;

/**
 * LESA (Yang et al., ACL 2025): per linear weight type, decompose, train the predictor on
 * every interior layer, predict the new layers, and park them in a scratch file until the
 * executor writes them in output order.
 *
 * With two or more BLAS threads (--threads, default the cores), two types run at once, each
 * on one BLAS thread: batch-64 training GEMMs are too small to share threads, so a second
 * type uses the second core far better. OpenBLAS's thread count is global, so it stays 1
 * for the whole phase. Every type has its own seed (typeSeed) and its own parameters, so the
 * output bytes equal a sequential run on one thread. Memory: at most two decompositions.
 */
export const lesa: Method = {
  name: 'lesa',
  summary: 'new linear weights predicted from the neighbours\' SVD coefficients by a learned MLP per weight type',
  reference: 'https://arxiv.org/abs/2502.13794',
  alignment: 'optional',
  plan: lesaPlan,
  async prepare(ckpt, plan, ctx, hooks): Promise<Prepared> {
    const { layout, options } = ctx;
    const o = options.lesa;
    const wanted = predictedGaps(plan);
    const types = [...wanted.keys()];
    const scratch = join(hooks.scratchDir, 'predicted.bin');
    const fh: FileHandle = await open(scratch, 'w+');
    const where = new Map<string, { offset: number; length: number }>(); // key: type@left
    let offset = 0;
    const one = async (t: number, type: string) => {
      const step = (phase: string) => (done: number, total: number, detail: Record<string, unknown> = {}) =>
        hooks.progress(done, total, { type, typeIndex: t + 1, types: types.length, phase, ...detail });
      hooks.phase('decompose', { type });
      const d = await decompose(ckpt, layout, type, {
        scratchDir: hooks.scratchDir, maxMemory: o.maxMemory,
        step: (what, done, total) => step(what)(done, total),
      });
      hooks.phase('train', { type, samples: (layout.layers - 2) * d.rank });
      const p = await train(d, interiorLayers(layout.layers), o, typeSeed(options.seed, type),
        (epoch, b, bt, loss) => step('train')((epoch - 1) * bt + b, o.epochs * bt, { epoch, loss }));
      hooks.phase('predict', { type, finalLoss: p.epochLosses[p.epochLosses.length - 1] });
      const US = basis(d);
      const dtype = layout.typeInfo.get(type)!.dtype as FloatDType;
      const gaps = wanted.get(type)!;
      for (const [g, j] of gaps.entries()) {
        const bytes = fromF32(await predictWeight(d, p, j, j + 1, US), dtype);
        const at = offset; // reserved before the await: the other worker writes too
        offset += bytes.byteLength;
        await fh.write(bytes, 0, bytes.byteLength, at);
        where.set(`${type}@${j}`, { offset: at, length: bytes.byteLength });
        step('predict')(g + 1, gaps.length);
      }
    };
    const blasThreads = getThreads();
    const workers = Math.min(MAX_CONCURRENT_TYPES, types.length, blasThreads);
    if (workers > 1) setThreads(1);
    let next = 0, failed = false;
    const worker = async () => {
      while (!failed && next < types.length) {
        const t = next++;
        try {
          await one(t, types[t]);
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    try {
      const settled = await Promise.allSettled(Array.from({ length: workers }, worker));
      const bad = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (bad) throw bad.reason;
    } catch (e) {
      await fh.close();
      throw e;
    } finally {
      if (workers > 1) setThreads(blasThreads);
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
