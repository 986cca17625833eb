import type { Checkpoint, ModelConfig } from '../checkpoint/types.js';
import type { ModelLayout } from '../arch/index.js';
import type { PlacementStrategy } from '../plan/placement.js';
import type { Plan } from '../plan/recipe.js';
import type { PrepareResources } from '../plan/resources.js';

export interface LesaOptions {
  epochs: number;
  lambda: number;
  hidden: number;
  lr: number;
  batch: number;
  weightDecay: number;
  /** Other tensors of a predicted layer: neighbours' mean, or layer 0's (the notebooks). */
  fill: 'mean' | 'layer0';
  /** Zero o_proj/down_proj of predicted layers: the expanded model starts as the original. */
  zeroOut: boolean;
  /** Bytes of coefficient blocks kept in memory before spilling to a scratch file. */
  maxMemory: number;
}

export interface ExpandOptions {
  targetLayers: number;
  after?: number[];
  placement?: PlacementStrategy | 'llama-pro';
  seed: number;
  /** random: rescale each matrix to the neighbours' mean Frobenius norm. */
  matchNorm: boolean;
  /** Permute every layer's MLP units and attention heads to match the layer before (src/align). */
  align: boolean;
  lesa: LesaOptions;
  /** --scale: new layers' tensors of a type times a factor (src/plan/scale.ts). */
  scale?: Record<string, number>;
}

export const defaultLesaOptions: LesaOptions = {
  epochs: 10, lambda: 5e-4, hidden: 256, lr: 1e-3, batch: 64, weightDecay: 0.01,
  fill: 'mean', zeroOut: false, maxMemory: 4 * 2 ** 30,
};

export interface MethodContext {
  layout: ModelLayout;
  config: ModelConfig;
  options: ExpandOptions;
}

/** Progress of long preparation work (LESA's decomposition and training). */
export interface PrepareHooks {
  phase(name: string, detail?: Record<string, unknown>): void;
  progress(done: number, total: number, detail?: Record<string, unknown>): void;
  scratchDir: string;
}

/** What a method learned before execution; `produce` serves its `predicted` recipes. */
export interface Prepared {
  produce(tensorName: string): Promise<Uint8Array>;
  dispose(): Promise<void>;
}

export interface Method {
  name: string;
  summary: string;
  reference: string;
  /**
   * Neuron alignment: 'required' (the method is defined on aligned layers), 'optional'
   * (`--align` changes what it builds), absent (`--align` would change nothing but bytes: refused).
   */
  alignment?: 'required' | 'optional';
  /** Pure: which output tensor comes from which inputs. No weights read. */
  plan(ctx: MethodContext): Plan;
  /** What `prepare` will hold in memory and on scratch disk, from shapes alone (for --dry-run). */
  resources?(plan: Plan, ctx: MethodContext): PrepareResources;
  /** Methods that learn from the weights (LESA) do it here, streaming. */
  prepare?(ckpt: Checkpoint, plan: Plan, ctx: MethodContext, hooks: PrepareHooks): Promise<Prepared>;
}
