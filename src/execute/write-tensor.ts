import type { Checkpoint, TensorSpan } from '../checkpoint/types.js';
import type { CheckpointWriter } from '../checkpoint/writer.js';
import { isCheckedDtype } from '../native/index.js';
import type { Prepared } from '../methods/method.js';
import type { OutputTensor } from '../plan/recipe.js';
import { nonFiniteInput, produce } from './produce.js';

/** Copies gathered into one native job, at most: bounds the time between progress reports. */
const BATCH_BYTES = 256 << 20;

/**
 * Makes the output tensors, in plan order, and appends them to the writer. A copy of a stored
 * tensor goes through the kernel as a file span (checked for NaN/Inf and hashed on the way,
 * never held, any size), runs of them in one native job; every other tensor is produced in
 * memory and written.
 */
export class OutputTensorWriter {
  private batch: { t: OutputTensor; src: string; span: TensorSpan }[] = [];
  private batchBytes = 0;

  constructor(
    private readonly ckpt: Checkpoint,
    private readonly writer: CheckpointWriter,
    private readonly prepared: Prepared | undefined,
    /** Called as each tensor is written (in order). */
    private readonly onWritten: (t: OutputTensor) => void,
  ) {}

  async write(t: OutputTensor): Promise<void> {
    const r = t.recipe;
    // A scaled copy (--scale) is not the stored bytes: it goes through produce.
    const span = r.kind === 'copy' && t.scale === undefined ? await this.ckpt.span?.(r.src) : undefined;
    if (r.kind === 'copy' && span !== undefined) {
      this.batch.push({ t, src: r.src, span });
      this.batchBytes += span.byteLength;
      if (this.batchBytes >= BATCH_BYTES) await this.flush();
      return;
    }
    await this.flush();
    await this.writer.writeTensor(t.name, await produce(this.ckpt, t, this.prepared));
    this.onWritten(t);
  }

  /** Write the copies gathered so far; call once more after the last write(). */
  async flush(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    if (batch.length === 0) return;
    const bad = await this.writer.copyTensors(batch.map(({ t, span }) => ({ name: t.name, src: span, check: isCheckedDtype(t.dtype) ? t.dtype : undefined })));
    for (const [k, { src }] of batch.entries()) if (bad[k] > 0) throw nonFiniteInput(src, bad[k]);
    for (const { t } of batch) this.onWritten(t);
  }
}
