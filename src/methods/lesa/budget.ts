import { UserError } from '../../errors.js';
import { stepsPerEpoch } from '../../native/index.js';
import type { LesaOptions } from './options.js';

/**
 * Llama-3-8B (the paper's main model): hidden 4096, intermediate 14336, 32 layers, 32 query
 * and 8 key/value heads of 128. A type's rank is its out-dim (L * in-dim exceeds it), so an
 * epoch is out-dim * (32 - 2) / batch steps.
 */
export const LLAMA3_8B = { hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8 } as const;

const kv = (LLAMA3_8B.hidden / LLAMA3_8B.heads) * LLAMA3_8B.kvHeads;

/** Out-dim of each weight type at Llama-3-8B's shape (fused types: the sum of their parts). */
export const LLAMA3_8B_OUT: Readonly<Record<string, number>> = {
  q_proj: LLAMA3_8B.hidden, k_proj: kv, v_proj: kv, o_proj: LLAMA3_8B.hidden,
  gate_proj: LLAMA3_8B.intermediate, up_proj: LLAMA3_8B.intermediate, down_proj: LLAMA3_8B.hidden,
  qkv_proj: LLAMA3_8B.hidden + 2 * kv, gate_up_proj: 2 * LLAMA3_8B.intermediate,
};

/** The step-matched budget's name: what `--predictor-steps` accepts besides a number. */
export const STEP_MATCHED = 'llama-3-8b';

/** Optimizer steps a type of Llama-3-8B gets from `epochs` epochs of batch `batch`. */
export function llamaSteps(type: string, epochs: number, batch: number): number {
  const out = LLAMA3_8B_OUT[type];
  if (out === undefined) {
    throw new UserError(`--predictor-steps ${STEP_MATCHED}: no Llama-3-8B counterpart for weight type "${type}" (known: ${Object.keys(LLAMA3_8B_OUT).join(', ')}); give a number of steps`);
  }
  return epochs * stepsPerEpoch(out * (LLAMA3_8B.layers - 2), batch);
}

/** AdamW steps a type's predictor trains for on `samples` samples: --predictor-steps, else --epochs passes. */
export function trainingSteps(o: Pick<LesaOptions, 'epochs' | 'batch' | 'predictorSteps'>, type: string, samples: number): number {
  if (typeof o.predictorSteps === 'number') return o.predictorSteps;
  if (o.predictorSteps === STEP_MATCHED) return llamaSteps(type, o.epochs, o.batch);
  return o.epochs * stepsPerEpoch(samples, o.batch);
}
