import type { Reporter } from '../progress/reporter.js';

export interface CommandIO {
  json: boolean;
  quiet: boolean;
  reporter: Reporter;
  /** Result for stdout: JSON with --json, else the command's own text. */
  print(text: string, data: unknown): void;
}

/** One flag: how node's parseArgs reads it, and what --help says about it. */
export interface Flag {
  type: 'string' | 'boolean';
  short?: string;
  /** May be given more than once (parsed to a list). */
  multiple?: boolean;
  /** One line for --help. */
  help?: string;
  /** The default, as --help shows it. */
  shows?: string;
}

export interface Command {
  summary: string;
  options: Record<string, Flag>;
  positionals: string;
  run(values: Record<string, string | boolean | undefined>, positionals: string[], io: CommandIO): Promise<void>;
  /** Python module that receives the raw arguments instead. */
  passThrough?: string;
  /** Further flags, parsed like `options` and listed under their own heading in --help (expand's per-method options). */
  groups?: { title: string; flags: Record<string, Flag> }[];
}

/** One --help line per flag: name, value, meaning, default. */
export function flagLines(flags: Record<string, Flag>): string[] {
  const rows = Object.entries(flags).map(([k, o]) => [`  ${o.short ? `-${o.short}, ` : ''}--${k}${o.type === 'string' ? ' VALUE' : ''}`, `${o.help ?? ''}${o.shows !== undefined ? ` (default ${o.shows})` : ''}`]);
  const width = Math.max(0, ...rows.map(([a]) => a.length)) + 2;
  return rows.map(([a, b]) => (b ? `${a.padEnd(width)}${b}` : a));
}
