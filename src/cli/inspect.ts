import { linearTypes, resolveLayout, textConfig } from '../arch/index.js';
import { openCheckpoint } from '../checkpoint/checkpoint.js';
import { UserError } from '../errors.js';
import { resolveModel } from './hub.js';
import type { Command, CommandIO } from './command.js';

export const inspectCommand: Command = {
  summary: 'Show what lesa sees in a checkpoint: architecture, depth, per-layer shapes and dtypes, parameters, size.',
  positionals: 'DIR',
  options: {},
  async run(_v: Record<string, unknown>, pos: string[], io: CommandIO) {
    if (pos.length !== 1) throw new UserError('usage: lesa inspect DIR');
    const ckpt = await openCheckpoint((await resolveModel(pos[0])).dir);
    try {
      const layout = resolveLayout(ckpt.config, ckpt.tensors);
      let params = 0;
      for (const t of ckpt.tensors.values()) params += t.shape.reduce((a, b) => a * b, 1);
      const layerTensors = layout.layerTensors.map((lt) => ({ type: lt.type, role: lt.role, ...(lt.only ? { only: lt.only } : {}), ...layout.typeInfo.get(lt.type)! }));
      const data = {
        dir: ckpt.dir,
        family: layout.arch.family,
        model_type: ckpt.config.model_type,
        layers: layout.layers,
        ...(layout.kinds ? { layer_kinds: layout.kinds } : {}),
        parameters: params,
        weight_bytes: ckpt.weightBytes,
        linear_types: linearTypes(layout.arch).filter((t) => layout.typeInfo.has(t)),
        layer_tensors: layerTensors,
        globals: layout.globals.map((n) => ({ name: n, ...layout.globalInfo.get(n)! })),
        per_layer_config: perLayerConfig(textConfig(ckpt.config, layout.arch), layout.arch.perLayerConfigLists),
        aux_files: ckpt.auxFiles,
      };
      const lines = [
        `${ckpt.dir}`,
        `  architecture  ${layout.arch.family} (model_type ${String(ckpt.config.model_type)})`,
        `  layers        ${layout.layers}`,
        ...(layout.kinds ? [`  MLP kinds     ${layout.kinds.map((k) => (k === 'sparse' ? 'S' : 'D')).join('')} (S experts, D dense)`] : []),
        `  parameters    ${(params / 1e6).toFixed(1)}M`,
        `  size on disk  ${(ckpt.weightBytes / 1e6).toFixed(1)} MB`,
        `  per layer:`,
        ...layerTensors.map((t) => `    ${t.type.padEnd(28)} ${t.role.padEnd(7)} ${t.dtype.padEnd(5)} [${t.shape.join(', ')}]${'only' in t ? ` (${t.only} layers)` : ''}`),
        `  global:`,
        ...data.globals.map((g) => `    ${g.name.padEnd(28)} ${g.dtype.padEnd(5)} [${g.shape.join(', ')}]`),
      ];
      io.print(lines.join('\n'), data);
    } finally {
      await ckpt.close();
    }
  },
};

function perLayerConfig(text: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => k in text).map((k) => [k, text[k]]));
}
