import type { Checkpoint } from '../checkpoint/types.js';
import type { CheckpointWriter } from '../checkpoint/writer.js';
import { isCheckedDtype } from '../native/index.js';
import type { Prepared } from '../methods/method.js';
import type { OutputTensor } from '../plan/recipe.js';
import { nonFiniteInput, produce } from './produce.js';

/** Bytes a span copy holds: the addon's two 8 MiB buffers (native/src/copy.cc kChunk). */
export const SPAN_COPY_BYTES = 16 << 20;

/**
 * Make one output tensor and append it to the writer. A copy of a stored tensor goes through
 * the kernel as a file span (checked for NaN/Inf and hashed on the way, never held, any
 * size); every other tensor is produced in memory and written.
 */
export async function writeOutputTensor(ckpt: Checkpoint, t: OutputTensor, writer: CheckpointWriter, prepared?: Prepared): Promise<void> {
  const r = t.recipe;
  const span = r.kind === 'copy' ? await ckpt.span?.(r.src) : undefined;
  if (r.kind !== 'copy' || span === undefined) return writer.writeTensor(t.name, await produce(ckpt, t, prepared));
  const bad = await writer.copyTensor(t.name, span, isCheckedDtype(t.dtype) ? t.dtype : undefined);
  if (bad > 0) throw nonFiniteInput(r.src, bad);
}
