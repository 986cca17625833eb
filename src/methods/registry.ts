import { UserError } from '../errors.js';
import { average } from './average.js';
import { copy } from './copy.js';
import { lesa } from './lesa/index.js';
import { llamaPro } from './llama-pro.js';
import { otFuse } from './ot-fuse.js';
import type { Method } from './method.js';
import { flagOf, type OptionSpec } from './options.js';
import { random } from './random.js';
import { randSvd } from './rand-svd.js';
import { solar } from './solar.js';
import { stack } from './stack.js';
import { anyDeeper } from './targets.js';

export const methods: readonly Method[] = [lesa, copy, llamaPro, average, random, randSvd, solar, stack, otFuse];

/** Methods `--align` changes, for messages. */
export function alignable(): string {
  return methods.filter((m) => m.alignment).map((m) => m.name).join(', ');
}

export function methodByName(name: string): Method {
  const m = methods.find((x) => x.name === name);
  if (!m) throw new UserError(`unknown method "${name}"; choose one of: ${methods.map((x) => x.name).join(', ')}`);
  return m;
}

/**
 * Every method's own options as CLI flags. Two methods share a flag only by sharing its
 * declaration (rand-svd reuses LESA's --fill): one flag, one meaning.
 */
export function methodFlags(): { flag: string; key: string; spec: OptionSpec; method: Method }[] {
  const out = methods.flatMap((method) => Object.entries(method.options ?? {}).map(([key, spec]) => ({ flag: flagOf(key), key, spec, method })));
  const seen = new Map<string, { spec: OptionSpec; method: string }>();
  for (const o of out) {
    const other = seen.get(o.flag);
    if (other && other.spec !== o.spec) throw new Error(`internal: --${o.flag} is declared by both ${other.method} and ${o.method.name}`);
    if (!other) seen.set(o.flag, { spec: o.spec, method: o.method.name });
  }
  return out;
}

/** The catalogue `lesa methods --json` prints (read by the Python side, python/lesa_py/compare.py). */
export function catalogue() {
  return methods.map((m) => ({
    name: m.name,
    summary: m.summary,
    reference: m.reference,
    alignment: m.alignment ?? null,
    targets: m.targets ?? anyDeeper,
    /** Whether --after/--placement apply; a method with its own target rule places layers by it. */
    placement: !m.targets,
    options: Object.entries(m.options ?? {}).map(([key, spec]) => ({ key, flag: `--${flagOf(key)}`, ...spec, record: spec.record ?? true })),
  }));
}
