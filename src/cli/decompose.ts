import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { layersWith, linearTypes, resolveLayout } from '../arch/index.js';
import { openCheckpoint } from '../checkpoint/checkpoint.js';
import { bytesOf, writeSafetensorsFile } from '../checkpoint/single-file.js';
import { UserError } from '../errors.js';
import { resolveModel } from './hub.js';
import { block, decompose, type Decomposition } from '../methods/lesa/decompose.js';
import type { Command, CommandIO } from './command.js';

async function* blocks(d: Decomposition): AsyncIterable<Uint8Array> {
  for (let i = 0; i < d.layers; i++) yield bytesOf(await block(d, i));
}

/**
 * Dumps LESA's stacked decomposition (U f64 [rows, rank], S f64 [rank], V f32 [L, rank, cols]
 * per type) as one safetensors file, so others (and the tests) can check it independently.
 */
export const decomposeCommand: Command = {
  summary: 'Write the stacked SVD factors U, S, V of each weight type to a safetensors file.',
  positionals: 'DIR -o FILE.safetensors',
  options: { output: { type: 'string', short: 'o' }, types: { type: 'string' } },
  async run(v, pos, io: CommandIO) {
    const out = v.output as string | undefined;
    if (pos.length !== 1 || !out) throw new UserError('usage: lesa decompose DIR -o FILE.safetensors [--types q_proj,...]');
    const ckpt = await openCheckpoint((await resolveModel(pos[0])).dir);
    const scratch = await mkdtemp(join(tmpdir(), 'lesa-decompose-'));
    const target = resolve(out);
    try {
      const layout = resolveLayout(ckpt.config, ckpt.tensors);
      const all = linearTypes(layout.arch).filter((t) => layout.typeInfo.has(t) && layersWith(layout, t).length === layout.layers);
      const types = (v.types as string | undefined)?.split(',') ?? all;
      for (const t of types) if (!all.includes(t)) throw new UserError(`unknown weight type "${t}"; this model has: ${all.join(', ')}`);
      const decs: Decomposition[] = [];
      for (const type of types) {
        io.reporter.phase('decompose', { type });
        decs.push(await decompose(ckpt, layout, type, { scratchDir: scratch, maxMemory: Infinity }));
      }
      await writeSafetensorsFile(target, decs.flatMap((d) => [
        { name: `${d.type}.U`, dtype: 'F64' as const, shape: [d.rows, d.rank], chunks: () => [bytesOf(d.U)] },
        { name: `${d.type}.S`, dtype: 'F64' as const, shape: [d.rank], chunks: () => [bytesOf(d.S)] },
        { name: `${d.type}.V`, dtype: 'F32' as const, shape: [d.layers, d.rank, d.cols], chunks: () => blocks(d) },
      ]));
      io.print(`wrote ${target}: ${decs.map((d) => `${d.type} rank ${d.rank}`).join(', ')}`, { output: target, types: decs.map((d) => ({ type: d.type, rows: d.rows, cols: d.cols, rank: d.rank, layers: d.layers })) });
    } finally {
      await rm(scratch, { recursive: true, force: true });
      await ckpt.close();
    }
  },
};
