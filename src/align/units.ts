import { layerTensorName, type LayerTensor, type ModelLayout, textConfig } from '../arch/index.js';
import type { ModelConfig } from '../checkpoint/types.js';
import { UserError } from '../errors.js';

/** How a layer's permutable units sit in its tensors, resolved for one checkpoint. */
export interface UnitGeometry {
  /** MLP hidden units. */
  mlpUnits: number;
  queryHeads: number;
  kvHeads: number;
  headDim: number;
  /** Present tensor types by how they are permuted. */
  mlpRows: LayerTensor[];
  mlpCols: LayerTensor[];
  qRows: LayerTensor[];
  kvRows: LayerTensor[];
  oCols: LayerTensor[];
}

function positiveInt(v: unknown): number | undefined {
  return Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : undefined;
}

/** Reads head counts from config.json and checks every permuted tensor's shape against them. */
export function unitGeometry(layout: ModelLayout, config: ModelConfig): UnitGeometry {
  const { arch } = layout;
  const units = arch.units;
  if (!units) {
    const why = arch.experts
      ? 'each expert has its own MLP units, which one per-layer permutation does not describe'
      : "its fused projections (one tensor holding several units' kinds) are not described per unit";
    throw new UserError(`neuron alignment is not available for ${arch.family}: ${why}`);
  }
  const present = (types: string[]) => layout.layerTensors.filter((lt) => types.includes(lt.type));
  const g = {
    mlpRows: present(units.mlp.rows), mlpCols: present(units.mlp.cols),
    qRows: present(units.heads.q), kvRows: present(units.heads.kv), oCols: present(units.heads.o),
  };
  const shape = (lt: LayerTensor) => layout.typeInfo.get(lt.type)!.shape;
  const cfg = textConfig(config, arch);
  const queryHeads = positiveInt(cfg.num_attention_heads);
  if (!queryHeads) throw new UserError('neuron alignment needs config.json "num_attention_heads" (a positive integer)');
  const kvHeads = cfg.num_key_value_heads === undefined ? queryHeads : positiveInt(cfg.num_key_value_heads);
  if (!kvHeads || queryHeads % kvHeads !== 0) {
    throw new UserError(`neuron alignment needs num_attention_heads (${queryHeads}) to be a multiple of num_key_value_heads (${String(cfg.num_key_value_heads)})`);
  }
  const qOut = shape(g.qRows[0])[0];
  const headDim = qOut / queryHeads;
  if (!Number.isInteger(headDim)) throw new UserError(`${g.qRows[0].type} has ${qOut} rows, not a multiple of num_attention_heads = ${queryHeads}`);
  const mlpUnits = shape(g.mlpRows[0])[0];
  const expect = (lts: LayerTensor[], axis: 0 | 1, n: number, what: string) => {
    for (const lt of lts) {
      const s = shape(lt);
      const size = s.length === 1 ? s[0] : s[axis];
      if (size !== n) throw new UserError(`cannot align: ${lt.type} has ${size} ${axis === 0 ? 'rows' : 'columns'} where ${n} (${what}) were expected`);
    }
  };
  expect(g.mlpRows, 0, mlpUnits, 'MLP units');
  expect(g.mlpCols, 1, mlpUnits, 'MLP units');
  expect(g.qRows, 0, queryHeads * headDim, 'query heads × head_dim');
  expect(g.kvRows, 0, kvHeads * headDim, 'key/value heads × head_dim');
  expect(g.oCols, 1, queryHeads * headDim, 'query heads × head_dim');
  return { mlpUnits, queryHeads, kvHeads, headDim, ...g };
}

export type PermutedAxis = 'mlpRows' | 'mlpCols' | 'qRows' | 'kvRows' | 'oCols';

/** Full tensor name → its layer and how alignment permutes it, for every tensor it permutes. */
export function permutedTensors(layout: ModelLayout, geo: UnitGeometry): Map<string, { layer: number; axis: PermutedAxis }> {
  const out = new Map<string, { layer: number; axis: PermutedAxis }>();
  for (const axis of ['mlpRows', 'mlpCols', 'qRows', 'kvRows', 'oCols'] as const) {
    for (const lt of geo[axis]) for (let i = 0; i < layout.layers; i++) out.set(layerTensorName(layout.arch, i, lt), { layer: i, axis });
  }
  return out;
}
