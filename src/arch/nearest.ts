import type { ModelConfig } from '../checkpoint/types.js';
import type { ArchTable } from './schema.js';

/** A tensor name with its layer and expert indices replaced: model.layers.N.mlp.experts.{e}.w1.weight. */
function kind(name: string): string {
  return name.replace(/\.layers\.\d+\./, '.layers.N.').replace(/\.experts\.\d+\./, '.experts.{e}.');
}

function tableKinds(t: ArchTable): { all: Set<string>; required: string[] } {
  // A tensor only some layers hold (an MoE's dense or sparse MLP) is not required of every checkpoint.
  const layer = t.layerTensors.map((lt) => ({ name: kind(`${t.layerPrefix}N.${lt.suffix}`), optional: lt.optional || lt.only !== undefined }));
  const globals = t.globalTensors.map((g) => ({ name: g.name, optional: g.optional }));
  const both = [...layer, ...globals];
  return { all: new Set(both.map((x) => x.name)), required: both.filter((x) => !x.optional).map((x) => x.name) };
}

function configKeysMissing(config: ModelConfig, t: ArchTable): string[] {
  const key = t.textConfig !== null && !(t.textConfig.flatAllowed && config[t.textConfig.key] === undefined) ? t.textConfig.key : null;
  const nested = key === null ? config : config[key];
  if (key !== null && (!nested || typeof nested !== 'object')) return [key];
  const text = nested as ModelConfig;
  const at = (k: string) => (key === null ? k : `${key}.${k}`);
  const missing = text[t.depthKey] === undefined ? [at(t.depthKey)] : [];
  if (t.experts && !t.experts.countKeys.some((k) => text[k] !== undefined)) missing.push(at(t.experts.countKeys[0]));
  return missing;
}

const list = (xs: string[], n = 4) => xs.slice(0, n).join(', ') + (xs.length > n ? `, … (${xs.length} in all)` : '');

/**
 * For an unsupported model_type: the supported family whose tensor names overlap the
 * checkpoint's most, and what differs. Names are compared with layer/expert indices removed,
 * over the family's layer prefix and its global tensors (shared over the union of the
 * checkpoint's and the family's required ones; ties go to the earlier table); what lies
 * elsewhere (a vision tower) would be copied unchanged and is only counted.
 */
export function unsupportedMessage(config: ModelConfig, tensorNames: string[], families: readonly ArchTable[]): string {
  const kinds = new Set(tensorNames.map(kind));
  let best: { t: ArchTable; score: number; unknown: string[]; missing: string[]; copied: string[] } | undefined;
  for (const t of families) {
    const { all, required } = tableKinds(t);
    const prefix = kind(`${t.layerPrefix}0.`);
    const have = [...kinds].filter((n) => n.startsWith(prefix) || all.has(n));
    const shared = have.filter((n) => all.has(n)).length;
    const missing = required.filter((n) => !kinds.has(n));
    const score = shared / (have.length + missing.length || 1);
    if (!best || score > best.score) {
      best = { t, score, missing, unknown: have.filter((n) => !all.has(n)), copied: [...kinds].filter((n) => !have.includes(n)) };
    }
  }
  if (!best || best.score === 0) return '; no supported family shares its tensor names';
  const parts = [`nearest supported family: ${best.t.family} (model_type ${best.t.modelTypes.join('/')})`];
  if (best.unknown.length) parts.push(`layer tensors it does not know: ${list(best.unknown)}`);
  if (best.missing.length) parts.push(`tensors it needs but the checkpoint lacks: ${list(best.missing)}`);
  const keys = configKeysMissing(config, best.t);
  if (keys.length) parts.push(`config keys it needs but config.json lacks: ${keys.join(', ')}`);
  if (best.copied.length) parts.push(`${best.copied.length} other tensor kinds (${list([...new Set(best.copied.map((n) => n.split('.')[0]))], 3)}) would be copied unchanged`);
  return `; ${parts.join('; ')}`;
}
