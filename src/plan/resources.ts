import { DTYPE_SIZES, numel, type Checkpoint } from '../checkpoint/types.js';
import type { OutputTensor, Plan } from './recipe.js';
import { overCapNotes, tensorByteSize } from './whole-tensors.js';

export { tensorByteSize };

/** What executing a plan will take, estimated before any weight is read (shown by --dry-run). */
export interface Resources {
  /** Bytes of the output directory's weights. */
  outputBytes: number;
  /** Peak bytes of tensors and decompositions held at once (the runtime's ~0.1-0.3 GB comes on top). */
  memoryBytes: number;
  /** Peak bytes of the scratch directory next to the output (removed at the end). */
  scratchBytes: number;
  /** One line per fact worth knowing (e.g. how LESA schedules its weight types). */
  notes: string[];
}

/** What a method's preparation adds (LESA's decompositions); see Method.resources. */
export interface PrepareResources {
  memoryBytes: number;
  scratchBytes: number;
  notes: string[];
}


/** Bytes a span copy holds: the addon's two 8 MiB buffers (native/src/copy.cc kChunk). */
export const SPAN_COPY_BYTES = 16 << 20;

/** Bytes of the tensors a plan makes by `predicted` recipes (a method parks them in scratch until written). */
export function predictedBytes(plan: Plan): number {
  return plan.tensors.reduce((a, t) => a + (t.recipe.kind === 'predicted' ? tensorByteSize(t) : 0), 0);
}

/** Bytes held while one output tensor is made and written (src/execute/produce.ts). */
function tensorBytes(ckpt: Checkpoint, t: OutputTensor, aligned: boolean): number {
  const out = tensorByteSize(t);
  const f32 = 4 * numel(t.shape);
  const raw = (name: string) => ckpt.tensors.get(name)?.byteLength ?? out;
  const r = t.recipe;
  switch (r.kind) {
    // A stored tensor is copied as a file span; an aligned view is read, permuted in f32 and converted back.
    case 'copy': return aligned ? raw(r.src) + f32 + out : Math.min(raw(r.src), SPAN_COPY_BYTES);
    case 'mean': return 2 * f32 + raw(r.srcs[0]) + out; // accumulator, one f32 source and its raw bytes, the output
    case 'zeros': return out;
    case 'fill': return f32 + out;
    case 'random': return f32 + (r.matchNormOf ? raw(r.matchNormOf[0]) + f32 : 0) + out;
    case 'predicted': return out;
  }
}

export function estimateResources(ckpt: Checkpoint, plan: Plan, prepare?: PrepareResources): Resources {
  let outputBytes = 0;
  let writePeak = 0;
  for (const t of plan.tensors) {
    outputBytes += tensorByteSize(t);
    writePeak = Math.max(writePeak, tensorBytes(ckpt, t, plan.options.align === true));
  }
  return {
    outputBytes,
    memoryBytes: Math.max(writePeak, prepare?.memoryBytes ?? 0),
    scratchBytes: prepare?.scratchBytes ?? 0,
    notes: [...(prepare?.notes ?? []), ...overCapNotes(plan)],
  };
}
