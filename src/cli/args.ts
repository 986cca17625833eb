import { UserError } from '../errors.js';
import { describeBound, describeDefault, type OptionSpec, type OptionValue } from '../methods/options.js';
import type { Flag } from './command.js';

/** sharp-style checks: every message says what was expected and what was received. */
export function intArg(name: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UserError(`Expected integer between ${min} and ${max} for --${name} but received ${JSON.stringify(v)}`);
  }
  return n;
}

export function numArg(name: string, v: string | undefined, min: number, max: number, exclusiveMin = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n > max || (exclusiveMin ? n <= min : n < min)) {
    throw new UserError(`Expected number ${exclusiveMin ? 'above' : 'from'} ${min} ${exclusiveMin ? 'up to' : 'to'} ${max} for --${name} but received ${JSON.stringify(v)}`);
  }
  return n;
}

export function choiceArg<T extends string>(name: string, v: string | undefined, choices: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!choices.includes(v as T)) throw new UserError(`Expected one of ${choices.join(', ')} for --${name} but received ${JSON.stringify(v)}`);
  return v as T;
}

export function listArg(name: string, v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  const parts = v.split(',').map((s) => s.trim());
  return parts.map((p) => intArg(name, p, 0)!);
}

/** --scale TYPE=FACTOR, repeatable and/or comma-separated: {type: factor}. */
export function scaleArg(v: string[] | undefined): Record<string, number> | undefined {
  if (v === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const item of v.flatMap((s) => s.split(','))) {
    const m = /^\s*([A-Za-z0-9_.]+)\s*=\s*(\S+)\s*$/.exec(item);
    const factor = m ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(factor)) throw new UserError(`Expected TYPE=FACTOR (e.g. down_proj=0.5) for --scale but received ${JSON.stringify(item)}`);
    if (m[1] in out) throw new UserError(`--scale: ${m[1]} is given twice`);
    out[m[1]] = factor;
  }
  return out;
}

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1e3, KB: 1e3, M: 1e6, MB: 1e6, G: 1e9, GB: 1e9, T: 1e12, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };

/** "5GB", "512MiB", "1e9" → bytes. */
export function bytesArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m ? UNITS[m[2].toUpperCase()] : undefined;
  const n = m && unit ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UserError(`Expected a size such as 5GB or 512MiB for --${name} but received ${JSON.stringify(v)}`);
  return n;
}

/** A method option's value from its flag, checked against its declared bound (src/methods/options.ts). */
export function optionArg(flag: string, spec: OptionSpec, v: string | boolean | undefined): OptionValue | undefined {
  switch (spec.type) {
    case 'int': return intArg(flag, v as string | undefined, spec.min, spec.max);
    case 'number': return numArg(flag, v as string | undefined, spec.min, spec.max, spec.exclusiveMin);
    case 'choice': return choiceArg(flag, v as string | undefined, spec.choices);
    case 'bytes': return bytesArg(flag, v as string | undefined);
    case 'boolean': return v ? true : undefined;
    case 'int-or-name': {
      const name = spec.names.find((n) => n === v);
      if (name !== undefined || v === undefined) return name;
      const n = Number(v);
      if (typeof v !== 'string' || !/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < spec.min || n > spec.max) {
        throw new UserError(`Expected an integer between ${spec.min} and ${spec.max} or ${spec.names.map((x) => JSON.stringify(x)).join(' or ')} for --${flag} but received ${JSON.stringify(v)}`);
      }
      return n;
    }
  }
}

/** A method option as a parseArgs flag with its --help line. */
export function optionFlag(spec: OptionSpec): Flag {
  return { type: spec.type === 'boolean' ? 'boolean' : 'string', help: `${spec.help}; ${describeBound(spec)}`, shows: spec.type === 'boolean' ? undefined : describeDefault(spec) };
}
