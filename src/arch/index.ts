import { UserError } from '../errors.js';
import { isFloatDType, type DType, type ModelConfig } from '../checkpoint/types.js';
import { gemma2 } from './families/gemma2.js';
import { gemma3 } from './families/gemma3.js';
import { llama } from './families/llama.js';
import { mistral } from './families/mistral.js';
import { mixtral } from './families/mixtral.js';
import { olmo2 } from './families/olmo2.js';
import { phi3 } from './families/phi3.js';
import { qwen2 } from './families/qwen2.js';
import { qwen3 } from './families/qwen3.js';
import { qwen2Moe, qwen3Moe } from './families/qwen-moe.js';
import { gemma3Vlm, mistral3, qwen2Vl } from './families/vlm.js';
import { layerKinds } from './kinds.js';
import { unsupportedMessage } from './nearest.js';
import { type ArchTable, expandExperts, type LayerKind, type LayerTensor, validateTable } from './schema.js';

export type { ArchTable, LayerKind, LayerTensor } from './schema.js';
export { linearTypes } from './schema.js';

export const families: readonly ArchTable[] = [
  llama, mistral, qwen2, qwen3, gemma2, gemma3, olmo2, phi3, mixtral, qwen2Moe, qwen3Moe, gemma3Vlm, mistral3, qwen2Vl,
].map(validateTable);

const byModelType = new Map<string, ArchTable>();
for (const t of families) for (const m of t.modelTypes) {
  if (byModelType.has(m)) throw new Error(`model_type ${m} claimed by two architecture tables`);
  byModelType.set(m, t);
}

export function supportedModelTypes(): string[] {
  return [...byModelType.keys()].sort();
}

/** The table for this config; with the checkpoint's tensor names, an unknown model_type is answered with the nearest family. */
export function archFor(config: ModelConfig, tensorNames?: Iterable<string>): ArchTable {
  const mt = config.model_type;
  if (typeof mt !== 'string') throw new UserError('config.json has no "model_type"; lesa needs it to know the architecture');
  const t = byModelType.get(mt);
  if (!t) {
    const nearest = tensorNames ? unsupportedMessage(config, [...tensorNames], families) : '';
    throw new UserError(`unsupported architecture model_type "${mt}"; supported: ${supportedModelTypes().join(', ')}${nearest}`);
  }
  return t;
}

/** The config object that holds the language model's keys: the nested text config of a wrapper, else the config itself. */
export function textConfig(config: ModelConfig, arch: ArchTable): ModelConfig {
  if (arch.textConfig === null) return config;
  const v = config[arch.textConfig.key];
  if (v === undefined && arch.textConfig.flatAllowed) return config;
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new UserError(`config.json "${arch.textConfig.key}" must be an object (the ${arch.family} language model's config), got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  }
  return v as ModelConfig;
}

/** The table with its expert placeholders expanded for this checkpoint's expert count. */
function resolveExperts(arch: ArchTable, text: ModelConfig): ArchTable {
  if (!arch.experts) return arch;
  const key = arch.experts.countKeys.find((k) => text[k] !== undefined);
  const count = key === undefined ? undefined : text[key];
  if (!Number.isSafeInteger(count) || (count as number) < 1) {
    throw new UserError(`config.json "${key ?? arch.experts.countKeys[0]}" (experts per layer) must be a positive integer, got ${JSON.stringify(count)}`);
  }
  return expandExperts(arch, count as number);
}

interface ShapeInfo { dtype: DType; shape: number[] }

/** A checkpoint seen through its architecture table: which tensors exist, with which shapes. */
export interface ModelLayout {
  arch: ArchTable;
  layers: number;
  /** Per source layer, sparse (experts) or dense MLP, for MoE configs that mix them; else null. */
  kinds: LayerKind[] | null;
  /** Layer tensors present in this checkpoint (required ones plus present optional ones), table order; `only` ones in some layers. */
  layerTensors: LayerTensor[];
  /** dtype/shape per layer tensor type (identical across the layers that hold it). */
  typeInfo: Map<string, ShapeInfo>;
  /** Non-layer tensors in table order, then any others in checkpoint order (copied through). */
  globals: string[];
  globalInfo: Map<string, ShapeInfo>;
}

export function layerTensorName(arch: ArchTable, layer: number, lt: LayerTensor): string {
  return `${arch.layerPrefix}${layer}.${lt.suffix}`;
}

/** Whether source layer `layer` of this kind holds tensors of `lt` (every layer does unless `lt.only`). */
function holds(kinds: LayerKind[] | null, layer: number, lt: LayerTensor): boolean {
  return lt.only === undefined || kinds === null || kinds[layer] === lt.only;
}

/** The tensors of source layer `layer` (a mixed MoE layer has its kind's MLP only). */
export function tensorsOfLayer(layout: ModelLayout, layer: number): LayerTensor[] {
  return layout.layerTensors.filter((lt) => holds(layout.kinds, layer, lt));
}

export function layerHolds(layout: ModelLayout, layer: number, lt: LayerTensor): boolean {
  return holds(layout.kinds, layer, lt);
}

/** The source layers that hold tensors of this type, ascending. */
export function layersWith(layout: ModelLayout, type: string): number[] {
  const lt = layout.layerTensors.find((t) => t.type === type)!;
  return [...Array(layout.layers).keys()].filter((i) => holds(layout.kinds, i, lt));
}


/** Validates that the checkpoint's tensors are exactly what the table and config describe. */
export function resolveLayout(config: ModelConfig, tensors: Map<string, ShapeInfo>): ModelLayout {
  const table = archFor(config, tensors.keys());
  const text = textConfig(config, table);
  const arch = resolveExperts(table, text);
  const where = text === config ? '' : `${arch.textConfig!.key}.`;
  const L = text[arch.depthKey];
  if (!Number.isSafeInteger(L) || (L as number) < 1) {
    throw new UserError(`config.json "${where}${arch.depthKey}" must be a positive integer, got ${JSON.stringify(L)}`);
  }
  const layers = L as number;
  const kinds = layerKinds(arch, text, layers, where);
  for (const key of arch.perLayerConfigLists) {
    const v = text[key];
    if (v !== undefined && v !== null && (!Array.isArray(v) || v.length !== layers)) {
      throw new UserError(`config.json "${where}${key}" must list one entry per layer (${layers}), got ${Array.isArray(v) ? v.length : typeof v}`);
    }
  }
  const prefix = arch.layerPrefix;
  const bySuffix = new Map(arch.layerTensors.map((lt) => [lt.suffix, lt]));
  const seen = new Map<string, Set<number>>();
  const globals: string[] = [];
  for (const name of tensors.keys()) {
    if (!name.startsWith(prefix)) { globals.push(name); continue; }
    const rest = name.slice(prefix.length);
    const dot = rest.indexOf('.');
    const idxText = rest.slice(0, dot);
    const lt = bySuffix.get(rest.slice(dot + 1));
    if (dot <= 0 || !/^(0|[1-9]\d*)$/.test(idxText)) throw new UserError(`tensor ${name} is under "${prefix}" but has no layer index`);
    const idx = Number(idxText);
    if (idx >= layers) throw new UserError(`tensor ${name} belongs to layer ${idx}, but config.json says ${where}${arch.depthKey} = ${layers}`);
    if (!lt) throw new UserError(`tensor ${name}: unknown per-layer tensor for the ${arch.family} table; lesa cannot grow a layer it does not fully know`);
    if (!holds(kinds, idx, lt)) throw new UserError(`tensor ${name} belongs to a ${lt.only} MLP, but config.json makes layer ${idx} ${kinds![idx]} (${denseKeysText(arch, where)})`);
    if (!seen.has(lt.type)) seen.set(lt.type, new Set());
    seen.get(lt.type)!.add(idx);
  }
  const present: LayerTensor[] = [];
  const typeInfo = new Map<string, ShapeInfo>();
  for (const lt of arch.layerTensors) {
    const got = seen.get(lt.type);
    const want = [...Array(layers).keys()].filter((i) => holds(kinds, i, lt));
    if (!got) {
      if (lt.optional || want.length === 0) continue;
      throw new UserError(`missing tensor ${layerTensorName(arch, want[0], lt)} (required by the ${arch.family} table${lt.only ? ` in every ${lt.only} layer` : ''})`);
    }
    if (got.size !== want.length) {
      const missing = want.find((i) => !got.has(i))!;
      throw new UserError(`missing tensor ${layerTensorName(arch, missing, lt)}: present in some ${lt.only ? `${lt.only} ` : ''}layers but not all`);
    }
    const first = tensors.get(layerTensorName(arch, want[0], lt))!;
    const firstName = layerTensorName(arch, want[0], lt);
    const wantDims = lt.role === 'linear' ? 2 : 1;
    if (first.shape.length !== wantDims) throw new UserError(`tensor ${firstName} has shape [${first.shape}] but a ${lt.role} must be ${wantDims}-D`);
    if (!isFloatDType(first.dtype)) throw new UserError(`tensor ${firstName} has dtype ${first.dtype}; lesa handles F32, F16 and BF16 layers`);
    for (const i of want.slice(1)) {
      const t = tensors.get(layerTensorName(arch, i, lt))!;
      if (t.dtype !== first.dtype || t.shape.join() !== first.shape.join()) {
        throw new UserError(`tensor ${layerTensorName(arch, i, lt)} is ${t.dtype}[${t.shape}] but layer ${want[0]} has ${first.dtype}[${first.shape}]; every layer must match`);
      }
    }
    present.push(lt);
    typeInfo.set(lt.type, { dtype: first.dtype, shape: first.shape });
  }
  const known = arch.globalTensors.map((g) => g.name);
  for (const g of arch.globalTensors) {
    if (!g.optional && !tensors.has(g.name)) throw new UserError(`missing tensor ${g.name} (required by the ${arch.family} table)`);
  }
  const orderedGlobals = [...known.filter((n) => tensors.has(n)), ...globals.filter((n) => !known.includes(n))];
  checkConfigShapes(text, arch, typeInfo, tensors);
  const globalInfo = new Map(orderedGlobals.map((n) => [n, tensors.get(n)!]));
  return { arch, layers, kinds, layerTensors: present, typeInfo, globals: orderedGlobals, globalInfo };
}

function denseKeysText(arch: ArchTable, where: string): string {
  const k = arch.experts!.denseLayers!;
  return `${where}${k.listKey}, ${where}${k.stepKey}`;
}

function checkConfigShapes(config: ModelConfig, arch: ArchTable, info: Map<string, ShapeInfo>, tensors: Map<string, ShapeInfo>): void {
  const hidden = config.hidden_size;
  const embName = arch.globalTensors.find((g) => g.name.endsWith('embed_tokens.weight'))?.name ?? '';
  const emb = tensors.get(embName);
  if (typeof hidden === 'number' && emb && emb.shape[1] !== hidden) {
    throw new UserError(`config.json hidden_size = ${hidden} but ${embName} is [${emb.shape}]`);
  }
  const inter = config.intermediate_size;
  const gate = info.get('gate_proj');
  if (typeof inter === 'number' && gate && gate.shape[0] !== inter) {
    throw new UserError(`config.json intermediate_size = ${inter} but the layers' mlp.gate_proj.weight is [${gate.shape}]`);
  }
}
