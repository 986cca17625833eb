/**
 * Architecture knowledge is data: one table per model family (families/*.ts), validated
 * strictly when the registry loads, so a broken table fails at import, not mid-expansion.
 */

export type TensorRole = 'linear' | 'norm' | 'bias';

/** What a layer's MLP is in MoE checkpoints that mix both: a router + experts, or one dense MLP. */
export type LayerKind = 'sparse' | 'dense';

export interface LayerTensor {
  /** Short type name, unique within the table: q_proj, input_layernorm, q_bias... */
  type: string;
  /** Name after `${layerPrefix}${i}.`, e.g. "self_attn.q_proj.weight". */
  suffix: string;
  role: TensorRole;
  /** May be absent (then absent in every layer): e.g. Llama's attention_bias. */
  optional?: boolean;
  /** Present only in layers of this kind (MoE tables whose config can make some layers dense). */
  only?: LayerKind;
}

export interface GlobalTensor {
  name: string;
  optional?: boolean;
}

/**
 * Hidden units a layer's function is invariant to permuting (for neuron alignment): MLP
 * units (rows of the `rows` types, columns of the `cols` types) and attention heads (blocks
 * of head_dim rows of `q` types per query head and of `kv` types per key/value head, blocks
 * of columns of `o` types per query head; grouped-query structure kept). Biases and norms
 * as wide as the projection are permuted with it.
 */
export interface UnitSymmetries {
  mlp: { rows: string[]; cols: string[] };
  heads: { q: string[]; kv: string[]; o: string[] };
}

/** The expert-index placeholder in a layer tensor's type and suffix (MoE tables). */
export const EXPERT = '{e}';

export interface ArchTable {
  family: string;
  /** config.model_type values this table serves. */
  modelTypes: string[];
  /** config.architectures values this table serves. */
  architectures: string[];
  /**
   * The nested language-model config of multimodal wrappers (`key`: "text_config"): the depth,
   * per-layer lists, layer-index keys and head counts are read and written there. `flatAllowed`:
   * a config without the key keeps them at the top level (Qwen2-VL's hub configs).
   */
  textConfig: { key: string; flatAllowed: boolean } | null;
  /** config key (in the text config) that holds the number of decoder layers. */
  depthKey: string;
  /** Per-layer tensor names start with `${layerPrefix}${index}.`. */
  layerPrefix: string;
  layerTensors: LayerTensor[];
  globalTensors: GlobalTensor[];
  /** Config arrays with one entry per layer (grown with the depth): layer_types... */
  perLayerConfigLists: string[];
  /** Config integers that name a layer index boundary (remapped to the new depth): max_window_layers... */
  layerIndexConfigKeys: string[];
  /**
   * Value of a norm weight that makes the norm an identity scale: 1 for x*w norms,
   * 0 for Gemma's x*(1+w) norms. Used by the `random` method.
   */
  normIdentity: 0 | 1;
  /** Linear types that write into the residual stream (zeroed for an identity block). */
  residualOutputs: string[];
  /**
   * Norms applied to a branch's output just before the residual add (Gemma's post-norms).
   * When present, an identity block sets these to zero scale instead of zeroing the
   * projections: a norm of an all-zero input has a ~1/sqrt(eps) gradient, which blows up.
   */
  residualScales: string[];
  /**
   * Mixture-of-experts: layer tensors whose type and suffix hold `{e}` exist once per expert,
   * e = 0..count-1, count read from the first of `countKeys` present in the text config.
   * Lists of types (residualOutputs, residualScales) may name the placeholder types.
   * `denseLayers`: the config keys that make some layers dense, read as transformers does
   * (layer i is sparse iff i is not in `listKey` and (i + 1) % `stepKey` == 0); null when every
   * layer is sparse. Layer tensors marked `only` exist in layers of that kind alone.
   */
  experts: { countKeys: string[]; denseLayers: { listKey: string; stepKey: string } | null } | null;
  /** null when the units cannot be permuted tensor by tensor (fused projections, experts): no neuron alignment. */
  units: UnitSymmetries | null;
}

const TABLE_KEYS = new Set<keyof ArchTable>([
  'family', 'modelTypes', 'architectures', 'textConfig', 'depthKey', 'layerPrefix', 'layerTensors',
  'globalTensors', 'perLayerConfigLists', 'layerIndexConfigKeys', 'normIdentity', 'residualOutputs', 'residualScales',
  'experts', 'units',
]);
const LAYER_TENSOR_KEYS = new Set(['type', 'suffix', 'role', 'optional', 'only']);
const GLOBAL_TENSOR_KEYS = new Set(['name', 'optional']);
const ROLES = new Set<TensorRole>(['linear', 'norm', 'bias']);

function fail(family: string, what: string): never {
  throw new Error(`architecture table '${family}' is invalid: ${what}`);
}

function checkKeys(family: string, where: string, obj: object, allowed: Set<string>): void {
  for (const k of Object.keys(obj)) if (!allowed.has(k)) fail(family, `unknown key '${k}' in ${where}`);
}

function checkStrings(family: string, key: string, v: unknown, nonEmpty: boolean): void {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s.length === 0)) fail(family, `${key} must be an array of non-empty strings`);
  if (nonEmpty && v.length === 0) fail(family, `${key} must not be empty`);
  if (new Set(v).size !== v.length) fail(family, `${key} has duplicates`);
}

/** Throws on any unknown key, missing field or inconsistency. */
export function validateTable(t: ArchTable): ArchTable {
  const fam = typeof t.family === 'string' && t.family ? t.family : '?';
  checkKeys(fam, 'the table', t, TABLE_KEYS as Set<string>);
  for (const k of TABLE_KEYS) if (!(k in t)) fail(fam, `missing key '${k}'`);
  checkStrings(fam, 'modelTypes', t.modelTypes, true);
  checkStrings(fam, 'architectures', t.architectures, true);
  checkStrings(fam, 'perLayerConfigLists', t.perLayerConfigLists, false);
  checkStrings(fam, 'layerIndexConfigKeys', t.layerIndexConfigKeys, false);
  checkStrings(fam, 'residualOutputs', t.residualOutputs, false);
  checkStrings(fam, 'residualScales', t.residualScales, false);
  if (typeof t.depthKey !== 'string' || !t.depthKey) fail(fam, 'depthKey must be a non-empty string');
  if (t.textConfig !== null) {
    if (!t.textConfig || typeof t.textConfig !== 'object') fail(fam, 'textConfig must be an object or null');
    checkKeys(fam, 'textConfig', t.textConfig, new Set(['key', 'flatAllowed']));
    if (typeof t.textConfig.key !== 'string' || !t.textConfig.key) fail(fam, 'textConfig.key must be a non-empty string');
    if (typeof t.textConfig.flatAllowed !== 'boolean') fail(fam, 'textConfig.flatAllowed must be boolean');
  }
  if (typeof t.layerPrefix !== 'string' || !t.layerPrefix.endsWith('.')) fail(fam, "layerPrefix must end with '.'");
  if (t.normIdentity !== 0 && t.normIdentity !== 1) fail(fam, 'normIdentity must be 0 or 1');
  if (!Array.isArray(t.layerTensors) || t.layerTensors.length === 0) fail(fam, 'layerTensors must be a non-empty array');
  const types = new Set<string>();
  const suffixes = new Set<string>();
  for (const lt of t.layerTensors) {
    checkKeys(fam, `layerTensors entry ${JSON.stringify(lt)}`, lt, LAYER_TENSOR_KEYS);
    if (typeof lt.type !== 'string' || !lt.type) fail(fam, 'layerTensors entry without type');
    if (typeof lt.suffix !== 'string' || !lt.suffix) fail(fam, `layer tensor ${lt.type} without suffix`);
    if (!ROLES.has(lt.role)) fail(fam, `layer tensor ${lt.type} has unknown role '${String(lt.role)}'`);
    if (lt.optional !== undefined && typeof lt.optional !== 'boolean') fail(fam, `layer tensor ${lt.type}: optional must be boolean`);
    if (lt.only !== undefined && lt.only !== 'sparse' && lt.only !== 'dense') fail(fam, `layer tensor ${lt.type}: only must be 'sparse' or 'dense'`);
    if (lt.only !== undefined && !t.experts?.denseLayers) fail(fam, `layer tensor ${lt.type} is marked only '${lt.only}' but the table's experts have no denseLayers keys`);
    if (types.has(lt.type)) fail(fam, `duplicate layer tensor type ${lt.type}`);
    if (suffixes.has(lt.suffix)) fail(fam, `duplicate layer tensor suffix ${lt.suffix}`);
    types.add(lt.type);
    suffixes.add(lt.suffix);
    if (lt.type.includes(EXPERT) !== lt.suffix.includes(EXPERT)) fail(fam, `layer tensor ${lt.type}: the expert placeholder ${EXPERT} must be in both type and suffix or in neither`);
  }
  checkExperts(fam, t);
  for (const r of t.residualOutputs) {
    const lt = t.layerTensors.find((x) => x.type === r);
    if (!lt || lt.role !== 'linear') fail(fam, `residualOutputs names '${r}', which is not a linear layer tensor`);
  }
  for (const r of t.residualScales) {
    const lt = t.layerTensors.find((x) => x.type === r);
    if (!lt || lt.role !== 'norm') fail(fam, `residualScales names '${r}', which is not a norm layer tensor`);
  }
  checkUnits(fam, t);
  if (!Array.isArray(t.globalTensors)) fail(fam, 'globalTensors must be an array');
  for (const g of t.globalTensors) {
    checkKeys(fam, `globalTensors entry ${JSON.stringify(g)}`, g, GLOBAL_TENSOR_KEYS);
    if (typeof g.name !== 'string' || !g.name) fail(fam, 'globalTensors entry without name');
    if (g.name.startsWith(t.layerPrefix)) fail(fam, `global tensor ${g.name} lies under the layer prefix`);
  }
  return t;
}

function checkExperts(fam: string, t: ArchTable): void {
  const perExpert = t.layerTensors.some((lt) => lt.suffix.includes(EXPERT));
  if (t.experts === null) {
    if (perExpert) fail(fam, `layer tensors use ${EXPERT} but the table has no experts entry`);
    return;
  }
  if (!t.experts || typeof t.experts !== 'object') fail(fam, 'experts must be an object or null');
  checkKeys(fam, 'experts', t.experts, new Set(['countKeys', 'denseLayers']));
  checkStrings(fam, 'experts.countKeys', t.experts.countKeys, true);
  const dense = t.experts.denseLayers;
  if (dense !== null) {
    if (!dense || typeof dense !== 'object') fail(fam, 'experts.denseLayers must be an object or null');
    checkKeys(fam, 'experts.denseLayers', dense, new Set(['listKey', 'stepKey']));
    if (typeof dense.listKey !== 'string' || !dense.listKey || typeof dense.stepKey !== 'string' || !dense.stepKey) fail(fam, 'experts.denseLayers needs listKey and stepKey');
    if (t.perLayerConfigLists.includes(dense.listKey) || t.layerIndexConfigKeys.includes(dense.stepKey)) fail(fam, 'experts.denseLayers keys are rewritten from the layer kinds, not grown as lists or indices');
  }
  if (!perExpert) fail(fam, `experts is set but no layer tensor uses ${EXPERT}`);
  const sparseOnly = t.layerTensors.filter((lt) => lt.suffix.includes(EXPERT) && lt.only !== 'sparse' && dense !== null);
  if (sparseOnly.length > 0) fail(fam, `expert tensor ${sparseOnly[0].type} must be marked only 'sparse' when some layers can be dense`);
  if (t.units !== null) fail(fam, 'neuron alignment (units) is not described for experts; set units to null');
}

function checkUnits(fam: string, t: ArchTable): void {
  if (t.units === null) return;
  const u = t.units as unknown as Record<string, Record<string, unknown>>;
  if (!u || typeof u !== 'object') fail(fam, 'units must be an object or null');
  checkKeys(fam, 'units', u, new Set(['mlp', 'heads']));
  checkKeys(fam, 'units.mlp', u.mlp ?? fail(fam, 'units.mlp missing'), new Set(['rows', 'cols']));
  checkKeys(fam, 'units.heads', u.heads ?? fail(fam, 'units.heads missing'), new Set(['q', 'kv', 'o']));
  const where: [string, unknown, Set<TensorRole>][] = [
    ['units.mlp.rows', u.mlp.rows, new Set(['linear', 'bias'])], ['units.mlp.cols', u.mlp.cols, new Set(['linear'])],
    // A norm may follow the heads only when it spans the whole projection (OLMo 2's q/k norms).
    ['units.heads.q', u.heads.q, new Set(['linear', 'bias', 'norm'])], ['units.heads.kv', u.heads.kv, new Set(['linear', 'bias', 'norm'])],
    ['units.heads.o', u.heads.o, new Set(['linear'])],
  ];
  const seen = new Set<string>();
  for (const [key, list, roles] of where) {
    checkStrings(fam, key, list, true);
    for (const type of list as string[]) {
      const lt = t.layerTensors.find((x) => x.type === type);
      if (!lt || !roles.has(lt.role)) fail(fam, `${key} names '${type}', which is not a ${[...roles].join('/')} layer tensor`);
      if (seen.has(type)) fail(fam, `units names '${type}' twice`);
      seen.add(type);
    }
    if (!(list as string[]).some((type) => t.layerTensors.find((x) => x.type === type && !x.optional && x.role === 'linear'))) {
      fail(fam, `${key} must name at least one required linear tensor`);
    }
  }
}

export function linearTypes(t: ArchTable): string[] {
  return t.layerTensors.filter((x) => x.role === 'linear').map((x) => x.type);
}

/** The table for a checkpoint with `count` experts per layer: every `{e}` type listed once per expert. */
export function expandExperts(t: ArchTable, count: number): ArchTable {
  const each = (s: string) => (s.includes(EXPERT) ? [...Array(count).keys()].map((e) => s.replaceAll(EXPERT, String(e))) : [s]);
  return {
    ...t,
    layerTensors: t.layerTensors.flatMap((lt) => each(lt.type).map((type, e) => ({ ...lt, type, suffix: each(lt.suffix)[e] }))),
    residualOutputs: t.residualOutputs.flatMap(each),
    residualScales: t.residualScales.flatMap(each),
  };
}
