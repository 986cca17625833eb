import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';
import { JsonReporter, TerminalReporter } from '../progress/terminal.js';
import { silentReporter, type Reporter } from '../progress/reporter.js';
import { VERSION } from '../version.js';
import { flagLines, type Command, type CommandIO, type Flag } from './command.js';

const COMMON: Record<string, Flag> = {
  json: { type: 'boolean', help: 'machine-readable result on stdout' },
  quiet: { type: 'boolean', short: 'q', help: 'no progress on stderr' },
  help: { type: 'boolean', short: 'h', help: 'this text' },
};

/** Commands load lazily: `lesa inspect` never pays for the native addon. */
const commands: Record<string, () => Promise<Command>> = {
  inspect: async () => (await import('./inspect.js')).inspectCommand,
  expand: async () => (await import('./expand.js')).expandCommand,
  analyze: async () => (await import('./analyze.js')).analyzeCommand,
  verify: async () => (await import('./verify.js')).verifyCommand,
  decompose: async () => (await import('./decompose.js')).decomposeCommand,
  eval: async () => (await import('./python.js')).evalCommand,
  train: async () => (await import('./python.js')).trainCommand,
  compare: async () => (await import('./python.js')).compareCommand,
  methods: async () => (await import('./methods.js')).methodsCommand,
};

function usage(): string {
  return `lesa ${VERSION}: grow a pretrained LLM deeper (LESA and depth up-scaling baselines)

usage: lesa <command> [options]   (lesa <command> --help for its options)

commands:
  inspect DIR              architecture, depth, shapes, dtypes, parameters, size
  expand DIR -o OUT        grow DIR to --target-layers with --method (see lesa methods)
  methods                  the expansion methods, their options with defaults and bounds, and their target rules
  analyze DIR              leave-one-layer-out predictability per weight type (LESA vs copy vs average)
  verify OUT               check an output directory against its lesa.json manifest
  decompose DIR -o FILE    write LESA's stacked SVD factors (U, S, V per weight type) to safetensors
  eval DIR --text DATA     held-out perplexity (DATA as for train); --tasks T1,T2: lm-evaluation-harness accuracy (PyTorch)
  train DIR --train DATA   continued pre-training (PyTorch)
  compare DIR              expand with every method, evaluate and train each, write a report

DIR may also be a Hugging Face hub id ORG/NAME[@REVISION] (safetensors only; honours HF_HOME,
HF_HUB_OFFLINE and HF_TOKEN).

common options: --json (machine-readable result on stdout), --quiet, --help`;
}

function helpFor(name: string, c: Command): string {
  const sections = [['options', c.options], ...(c.groups ?? []).map((g) => [g.title, g.flags] as const), ['common options', COMMON]] as const;
  return [`lesa ${name} ${c.positionals}`, c.summary, ...sections.map(([title, flags]) => `\n${title}:\n${flagLines(flags).join('\n')}`)].join('\n');
}

/** node's parseArgs sees only how each flag is read. */
function parseConfig(c: Command) {
  const all = { ...COMMON, ...c.options, ...Object.assign({}, ...(c.groups ?? []).map((g) => g.flags)) as Record<string, Flag> };
  return Object.fromEntries(Object.entries(all).map(([k, f]) => [k, { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) }]));
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') { process.stdout.write(`${usage()}\n`); return name ? 0 : 2; }
  if (name === '--version') { process.stdout.write(`${VERSION}\n`); return 0; }
  const load = commands[name];
  if (!load) { process.stderr.write(`lesa: unknown command "${name}"\n\n${usage()}\n`); return 2; }
  const cmd = await load();
  if (cmd.passThrough) {
    return (await import('./python.js')).runPython(cmd.passThrough, rest);
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: parseConfig(cmd), allowPositionals: true, strict: true });
  } catch (e) {
    // node's parser explains over several lines; the first says what is wrong
    throw new UserError(`${(e as Error).message.split('\n')[0]} (see lesa ${name} --help)`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) { process.stdout.write(`${helpFor(name, cmd)}\n`); return 0; }
  const json = Boolean(values.json);
  const quiet = Boolean(values.quiet);
  const reporter = quiet ? silentReporter : json ? new JsonReporter() : new TerminalReporter();
  const io: CommandIO = {
    json, quiet, reporter,
    print: (text, data) => process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${text}\n`),
  };
  try {
    await cmd.run(values, parsed.positionals, io);
  } finally {
    reporter.close();
  }
  return 0;
}

function isUserError(e: unknown): boolean {
  return e instanceof UserError || (e instanceof Error && e.name === 'CheckpointError');
}

/** Runs the CLI and sets the exit code: 2 for user errors (one line), 1 for internal ones (stack). */
export async function runCli(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (e) {
    if (isUserError(e)) {
      process.stderr.write(`lesa: ${(e as Error).message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`lesa: internal error, please report it with the command you ran:\n${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    }
  }
}
