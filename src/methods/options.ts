/**
 * A method's options, declared as data next to the method: the CLI flags, their validation,
 * `lesa expand --help`, `lesa methods --json` and what lesa.json records all derive from it.
 * The property name is the option's key in ExpandOptions.methodOptions and in lesa.json;
 * the flag is that name in kebab case (weightDecay → --weight-decay).
 */
interface OptionBase {
  /** One line: what the option changes. */
  help: string;
  /** false: not recorded in lesa.json because it cannot change the written bytes (e.g. memory). */
  record?: boolean;
}

export type OptionSpec =
  | OptionBase & { type: 'int'; default: number; min: number; max: number }
  | OptionBase & { type: 'number'; default: number; min: number; max: number; exclusiveMin?: boolean }
  | OptionBase & { type: 'choice'; default: string; choices: readonly string[] }
  | OptionBase & { type: 'boolean'; default: boolean }
  | OptionBase & { type: 'bytes'; default: number }
  /** An integer in min..max or one of `names`; unset (null) by default: the method's other options decide. */
  | OptionBase & { type: 'int-or-name'; default: null; names: readonly string[]; min: number; max: number };

export type OptionTable = Readonly<Record<string, OptionSpec>>;
export type OptionValue = number | string | boolean | null;

/** The values a table declares, typed: `choice` options become their union of strings. */
export type OptionValues<T extends OptionTable> = {
  -readonly [K in keyof T]: T[K] extends { type: 'boolean' } ? boolean
    : T[K] extends { type: 'choice'; choices: readonly (infer C)[] } ? C
    : T[K] extends { type: 'int-or-name'; names: readonly (infer C)[] } ? number | C | null : number;
};

export function flagOf(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Every option's default, overridden by the values given (keys the table lacks are refused). */
export function withDefaults<T extends OptionTable>(table: T, given: Readonly<Record<string, OptionValue | undefined>> = {}): OptionValues<T> {
  for (const k of Object.keys(given)) {
    if (!(k in table)) throw new TypeError(`unknown option "${k}"; this method takes: ${Object.keys(table).join(', ') || '(none)'}`);
  }
  const out: Record<string, OptionValue> = {};
  for (const [k, spec] of Object.entries(table)) out[k] = given[k] ?? spec.default;
  return out as OptionValues<T>;
}

/** What lesa.json records of a method's options, in declaration order. */
export function recorded(table: OptionTable, values: Readonly<Record<string, OptionValue>>): Record<string, OptionValue> {
  return Object.fromEntries(Object.entries(table).filter(([, s]) => s.record !== false).map(([k]) => [k, values[k]]));
}

/** "4GiB" for 4 * 2^30; plain bytes when no binary unit divides evenly. */
export function formatBytes(n: number): string {
  for (const [unit, size] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return String(n);
}

/** The accepted values, in words, for --help. */
export function describeBound(spec: OptionSpec): string {
  switch (spec.type) {
    case 'int': return `integer ${spec.min}..${spec.max}`;
    case 'number': return `number ${spec.exclusiveMin ? 'above' : 'from'} ${spec.min} ${spec.exclusiveMin ? 'up to' : 'to'} ${spec.max}`;
    case 'choice': return spec.choices.join(' | ');
    case 'bytes': return 'size such as 5GB or 512MiB';
    case 'boolean': return 'flag';
    case 'int-or-name': return `integer ${spec.min}..${spec.max} | ${spec.names.join(' | ')}`;
  }
}

export function describeDefault(spec: OptionSpec): string {
  if (spec.type === 'bytes') return formatBytes(spec.default);
  if (spec.default === null) return 'unset';
  return String(spec.default);
}
