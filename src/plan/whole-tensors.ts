/**
 * Node caps one buffer at 4 GiB, so a tensor above that can only be copied byte-for-byte as
 * a file span (src/execute/write-tensor.ts). A plan that would hold such a tensor whole
 * (to average, rescale, predict or permute it) is refused when it is made, before any
 * output exists, with the tensor named.
 */
import { constants } from 'node:buffer';
import type { Checkpoint } from '../checkpoint/types.js';
import { UserError } from '../errors.js';
import type { OutputTensor, Plan } from './recipe.js';
import { DTYPE_SIZES, numel } from '../checkpoint/types.js';

export const MAX_WHOLE_TENSOR_BYTES = constants.MAX_LENGTH;

const COPY_LIKE = 'copy, llama-pro, solar or stack';

const over = (bytes: number): boolean => bytes > MAX_WHOLE_TENSOR_BYTES;

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

/** The tensors a recipe reads whole (a copy reads its source as a span). */
function readWhole(t: OutputTensor): string[] {
  const r = t.recipe;
  if (r.kind === 'mean') return r.srcs;
  if (r.kind === 'random') return r.matchNormOf ?? [];
  return [];
}

/** Throws a UserError naming the first tensor this plan would hold whole above the cap. `permuted`: the tensors alignment reads whole. */
export function refuseWholeTensorsOverCap(ckpt: Checkpoint, plan: Plan, permuted: Iterable<string> = []): void {
  const refuse = (name: string, bytes: number, why: string): never => {
    throw new UserError(`tensor ${name} is ${gib(bytes)}, and ${why}, which holds a whole tensor in memory; Node caps one buffer at 4 GiB, so lesa refuses this plan: use ${COPY_LIKE}, which copy such tensors in chunks`);
  };
  for (const name of permuted) {
    const bytes = ckpt.tensors.get(name)?.byteLength ?? 0;
    if (over(bytes)) refuse(name, bytes, 'alignment (--align or the method) permutes it');
  }
  for (const t of plan.tensors) {
    if (t.recipe.kind !== 'copy' && over(tensorByteSize(t))) refuse(t.name, tensorByteSize(t), `${plan.method} makes it by a "${t.recipe.kind}" recipe`);
    for (const src of readWhole(t)) {
      const bytes = ckpt.tensors.get(src)?.byteLength ?? 0;
      if (over(bytes)) refuse(src, bytes, `${plan.method} reads it for a "${t.recipe.kind}" recipe (output ${t.name})`);
    }
  }
}

/** Plan notes (shown by --dry-run) for the tensors above the cap that are copied in chunks. */
export function overCapNotes(plan: Plan): string[] {
  const big = plan.tensors.filter((t) => t.recipe.kind === 'copy' && over(tensorByteSize(t)));
  if (big.length === 0) return [];
  const largest = big.reduce((a, t) => Math.max(a, tensorByteSize(t)), 0);
  return [`${big.length} tensor${big.length === 1 ? '' : 's'} above Node's 4 GiB buffer cap (largest ${gib(largest)}) copied byte-for-byte in chunks, never held in memory`];
}

/** Bytes of one output tensor as written. */
export function tensorByteSize(t: Pick<OutputTensor, 'shape' | 'dtype'>): number {
  return numel(t.shape) * DTYPE_SIZES[t.dtype];
}
