import type { Method } from '../method.js';
import { lesaPlan, stepsPerType } from './plan.js';
import { lesaOptions, lesaOptionsOf } from './options.js';
import { exportPredictors, exportTarget } from './export.js';
import { preparePredicted, predictedResources } from './predicted.js';
import { prepareOnTorch, startTorch, torchResources } from './torch.js';
import { defaultThreads } from '../../native/index.js';
import { UserError } from '../../errors.js';
import { interiorLayers, predictWeight, train, trainingFlops, typeSeed, type Predictor } from './predictor.js';

/**
 * LESA (Yang et al., ACL 2025): per linear weight type, decompose, train the predictor on
 * every interior layer (its own seed per type, typeSeed), and predict the new layers.
 */
export const lesa: Method = {
  name: 'lesa',
  summary: 'new linear weights predicted from the neighbours\' SVD coefficients by a learned MLP per weight type',
  reference: 'https://arxiv.org/abs/2502.13794',
  alignment: 'optional',
  options: lesaOptions,
  plan: lesaPlan,
  resources: (plan, ctx) => (['cuda', 'cpu-torch'].includes(lesaOptionsOf(ctx).device) ? torchResources(plan, ctx) : predictedResources(plan, ctx)),
  async prepare(ckpt, plan, ctx, hooks) {
    const o = lesaOptionsOf(ctx);
    if (o.device !== 'cpu') hooks.phase('start torch', { device: o.device });
    const torch = await startTorch(o.device, ctx.options.threads ?? defaultThreads());
    if (torch) {
      if (exportTarget()) {
        await torch.worker.close();
        throw new UserError('exporting the predictors (LESA_EXPORT_PREDICTORS) needs --device cpu');
      }
      try {
        const prepared = await prepareOnTorch(ckpt, plan, ctx, hooks, torch.worker, torch.hello);
        await torch.worker.close();
        return { ...prepared, record: { compute: torch.record } };
      } catch (e) {
        await torch.worker.kill();
        throw e;
      }
    }
    const exported = exportTarget() ? new Map<string, { p: Predictor; cols: number }>() : undefined;
    const steps = stepsPerType(ctx);
    const prepared = await preparePredicted(ckpt, plan, ctx, hooks, async (d, step, phase) => {
      const { options } = ctx;
      phase('train', { type: d.type, samples: (d.layers - 2) * d.rank });
      // Blocks are indexed by position among the layers holding the type (d.sources): a new
      // layer between j and j+1 (always of one kind, per-gap.ts) sits between two adjacent blocks.
      const p = await train(d, interiorLayers(d.layers), o, typeSeed(options.seed, d.type),
        (done, steps, epoch, loss) => step(done, steps, { epoch, loss }));
      exported?.set(d.type, { p, cols: d.cols });
      return {
        layer: (j, US, threads) => predictWeight(d, p, d.sources.indexOf(j), d.sources.indexOf(j) + 1, US, threads),
        detail: { steps: p.steps, finalLoss: p.epochLosses[p.epochLosses.length - 1] },
      };
    }, (type, cols) => trainingFlops(o, steps[type], cols));
    try {
      if (exported) await exportPredictors(exportTarget()!, exported);
    } catch (e) {
      await prepared.dispose?.();
      throw e;
    }
    return prepared;
  },
};
