import type { Checkpoint, ModelConfig } from '../checkpoint/types.js';
import type { ModelLayout } from '../arch/index.js';
import type { PlacementStrategy } from '../plan/placement.js';
import type { Plan } from '../plan/recipe.js';
import type { PrepareResources } from '../plan/resources.js';
import type { OptionTable, OptionValue } from './options.js';
import type { TargetRule } from './targets.js';

export interface ExpandOptions {
  targetLayers: number;
  after?: number[];
  placement?: PlacementStrategy | 'llama-pro';
  seed: number;
  /** BLAS threads of native numerics (default: OpenBLAS's, the cores); LESA's bytes depend on it. */
  threads?: number;
  /** Permute every layer's MLP units and attention heads to match the layer before (src/align). */
  align: boolean;
  /** The chosen method's own options (Method.options), keyed as it declares them; missing ones take its defaults. */
  methodOptions: Record<string, OptionValue>;
  /** --scale: new layers' tensors of a type times a factor (src/plan/scale.ts). */
  scale?: Record<string, number>;
}

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
  /** Fields lesa.json records of how the preparation ran (e.g. LESA's `compute`: device, torch version, GPU). */
  record?: Record<string, unknown>;
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
  /** The method's own options: flags, defaults, bounds, help (src/methods/options.ts). */
  options?: OptionTable;
  /** Target depths it can build; absent: any deeper (targets.ts anyDeeper). */
  targets?: TargetRule;
  /** Pure: which output tensor comes from which inputs. No weights read. */
  plan(ctx: MethodContext): Plan;
  /** What `prepare` will hold in memory and on scratch disk, from shapes alone (for --dry-run). */
  resources?(plan: Plan, ctx: MethodContext): PrepareResources;
  /** Methods that learn from the weights (LESA) do it here, streaming. */
  prepare?(ckpt: Checkpoint, plan: Plan, ctx: MethodContext, hooks: PrepareHooks): Promise<Prepared>;
}
