import type { Checkpoint } from '../../checkpoint/types.js';
import { layersWith } from '../../arch/index.js';
import { defaultThreads } from '../../native/index.js';
import type { Plan } from '../../plan/recipe.js';
import { UserError } from '../../errors.js';
import type { MethodContext, PrepareHooks, Prepared } from '../method.js';
import { trainingSteps } from './budget.js';
import { decompositionRank, readLayer, REL_TOL } from './decompose.js';
import { lesaOptionsOf } from './options.js';
import { predictedGaps } from './plan.js';
import { prepareTypes, type TypeBuilder } from './predicted.js';
import { predictedBytes, type PrepareResources } from '../../plan/resources.js';
import { interiorLayers, typeSeed } from './predictor.js';
import { TorchWorker, type Hello } from './torch-worker.js';

/** Share of the GPU's memory --device cuda may take when --max-memory is not given. */
const GPU_SHARE = 0.9;

const size = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(2)} MB`);

/** What lesa.json records of a run on the torch path (the bytes depend on it). */
export interface TorchRecord { device: 'cuda' | 'cpu-torch'; torch: string; gpu?: string }

/**
 * Bytes the worker holds on the device for one type: G and eigh's copy and workspace (f64),
 * U (f64, then f32), the coefficient blocks V and the basis U·diag(S) (f32), a few layers in flight.
 * With `retain`, the L input layers too (f32), so that they cross the pipe once, not twice.
 */
export function deviceBytes(rows: number, cols: number, layers: number, retain: boolean): number {
  const rank = decompositionRank(rows, cols, layers);
  const base = 3 * 8 * rows * rows + 8 * rows * rank + 4 * layers * rank * cols + 4 * rows * rank + 3 * 8 * rows * cols;
  return base + (retain ? 4 * layers * rows * cols : 0);
}

/**
 * The torch device a run takes: `--device auto` probes for a GPU and answers undefined (use the
 * addon) when torch is missing or sees none; cuda and cpu-torch start the worker or fail with its reason.
 */
export async function startTorch(device: string, threads: number): Promise<{ worker: TorchWorker; hello: Hello; record: TorchRecord } | undefined> {
  if (device === 'cpu') return undefined;
  const asked = device === 'cpu-torch' ? 'cpu' : device === 'cuda' ? 'cuda' : 'auto';
  let started: { worker: TorchWorker; hello: Hello };
  try {
    started = await TorchWorker.start(asked, threads);
  } catch (e) {
    if (asked === 'auto') return undefined;
    throw e instanceof UserError ? new UserError(`--device ${device}: ${e.message}`) : e;
  }
  const { worker, hello } = started;
  if (asked === 'auto' && hello.device !== 'cuda') {
    await worker.close();
    return undefined;
  }
  const record: TorchRecord = { device: hello.device === 'cuda' ? 'cuda' : 'cpu-torch', torch: hello.torch, ...(hello.gpu ? { gpu: hello.gpu } : {}) };
  return { worker, hello, record };
}

/**
 * LESA's preparation on the torch worker: per type (one at a time), TS streams the L layers it
 * reads with the paranoid reader as f32, the worker decomposes, trains and predicts on its
 * device and sends the new layers back, which prepareTypes parks exactly as for the addon.
 * Phases: gram (streaming in), eig, coefficients, train, predict.
 */
export async function prepareOnTorch(ckpt: Checkpoint, plan: Plan, ctx: MethodContext, hooks: PrepareHooks, worker: TorchWorker, hello: Hello): Promise<Prepared> {
  const { layout, options } = ctx;
  const o = lesaOptionsOf(ctx);
  const budget = ctx.options.methodOptions.maxMemory === undefined && hello.memory ? Math.floor(hello.memory * GPU_SHARE) : o.maxMemory;
  const gaps = predictedGaps(plan);
  const build: TypeBuilder = async (type, _threads, step) => {
    // Blocks are indexed by position among the layers holding the type (an MoE mixing dense
    // and sparse MLPs holds some types in some layers only), as on the addon path.
    const sources = layersWith(layout, type);
    const L = sources.length;
    const targets = interiorLayers(L);
    const [rows, cols] = layout.typeInfo.get(type)!.shape;
    const rank = Math.min(rows, L * cols);
    const need = deviceBytes(rows, cols, L, false);
    const where = hello.device === 'cuda' ? 'GPU memory' : 'memory';
    if (need > budget) {
      throw new UserError(`--device ${hello.device === 'cuda' ? 'cuda' : 'cpu-torch'}: ${type} needs ${size(need)} of ${where} and --max-memory allows ${size(budget)}; give a larger --max-memory`);
    }
    const retain = deviceBytes(rows, cols, L, true) <= budget;
    worker.listen = (m) => {
      const { event, phase, ...detail } = m;
      if (event === 'phase') hooks.phase(String(phase), { type, ...detail });
      else step(String(phase))(Number(detail.done), Number(detail.total), Object.fromEntries(Object.entries(detail).filter(([k]) => k !== 'done' && k !== 'total')));
    };
    hooks.phase('gram', { type });
    await worker.send({
      op: 'type', type, rows, cols, layers: L, retain, targets, gaps: gaps.get(type)!.map((j) => sources.indexOf(j)),
      steps: trainingSteps(o, type, targets.length * rank), batch: o.batch, lr: o.lr, weightDecay: o.weightDecay,
      lambda: o.lambda, hidden: o.hidden, seed: typeSeed(options.seed, type), relTol: REL_TOL,
    });
    // Layer i+1 is read (and checked) while layer i crosses the pipe.
    const order = Array.from({ length: (retain ? 1 : 2) * L }, (_, n) => n % L);
    let next = readLayer(ckpt, layout, type, sources[order[0]]);
    for (let n = 0; n < order.length; n++) {
      const w = await next;
      if (n + 1 < order.length) {
        next = readLayer(ckpt, layout, type, sources[order[n + 1]]);
        next.catch(() => {}); // awaited next turn; if the write below fails first, its error is the one to report
      }
      await worker.write(w);
    }
    return {
      async layer(j) {
        const m = await worker.next();
        if (m.event !== 'layer' || m.left !== sources.indexOf(j) || m.data?.length !== rows * cols) throw new Error(`internal: the PyTorch worker sent ${m.event} ${String(m.left)} for ${type}@${j}`);
        return m.data;
      },
      async release() {
        const m = await worker.next();
        if (m.event !== 'done') throw new Error(`internal: the PyTorch worker sent ${m.event} instead of done for ${type}`);
      },
    };
  };
  return prepareTypes(plan, ctx, hooks, build, async (one) => {
    for (let t = 0; t < gaps.size; t++) await one(t, options.threads ?? defaultThreads());
  });
}

/**
 * --dry-run's estimate for the torch path: host memory is a few layer-sized f32 buffers (TS: the
 * layer crossing the pipe, the next one being read, a predicted one; the worker: its copies), the
 * device holds one type at a time (deviceBytes, listed per type).
 */
export function torchResources(plan: Plan, ctx: MethodContext): PrepareResources {
  const L = ctx.layout.layers; // an upper bound where a type skips layers
  const shapes = [...predictedGaps(plan).keys()].map((t) => [t, ...ctx.layout.typeInfo.get(t)!.shape] as const);
  const largest = Math.max(0, ...shapes.map(([, r, c]) => 4 * r * c));
  const notes = shapes.map(([t, r, c]) => `${t}: device memory ${size(deviceBytes(r, c, L, false))}, ${size(deviceBytes(r, c, L, true))} with its input layers kept there (sent once)`);
  return { memoryBytes: 6 * largest, scratchBytes: predictedBytes(plan), notes };
}
