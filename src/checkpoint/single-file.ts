import { open, rename, rm } from 'node:fs/promises';
import type { TensorSpec } from './types.js';
import { planShards } from './writer.js';

/** One tensor of a small side file: its spec and, in order, the chunks of its bytes. */
export interface SideTensor extends TensorSpec {
  chunks(): AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/**
 * Writes tensors to one safetensors file (`lesa decompose`, the exported LESA predictors):
 * to a temporary sibling first, renamed into place when complete, removed on failure.
 */
export async function writeSafetensorsFile(target: string, tensors: readonly SideTensor[]): Promise<void> {
  const shard = planShards(tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })), Number.MAX_SAFE_INTEGER).shards[0];
  const tmp = `${target}.lesa-tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      let pos = 0;
      const put = async (b: Uint8Array) => { await fh.write(b, 0, b.byteLength, pos); pos += b.byteLength; };
      await put(shard.header);
      for (const t of tensors) for await (const c of t.chunks()) await put(c);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
}

export function bytesOf(x: Float64Array | Float32Array): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}
