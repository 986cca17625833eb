import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import type { Command, CommandIO } from './command.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The PyTorch side's interpreter: $LESA_PYTHON, else the venv scripts/setup_python.sh makes. */
export function pythonPath(): string {
  const explicit = process.env.LESA_PYTHON;
  if (explicit) return explicit;
  const venv = join(process.env.LESA_CACHE ?? join(homedir(), '.cache', 'lesa'), 'venv', 'bin', 'python');
  if (!existsSync(venv)) throw new UserError(`the PyTorch environment is not set up; run: bash ${join(ROOT, 'scripts/setup_python.sh')}`);
  return venv;
}

/** The environment Python runs in: this checkout's package first on PYTHONPATH. */
export function pythonEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PYTHONPATH: [join(ROOT, 'python'), process.env.PYTHONPATH].filter(Boolean).join(':') };
}

/** Runs `python -m module args` with stdio passed through; resolves to its exit status (the Python
 * side has already said what went wrong: 2 with one line for a user error, 1 with a stack). */
export function runPython(module: string, args: string[]): Promise<number> {
  const py = pythonPath();
  const env = pythonEnv();
  return new Promise((resolve, reject) => {
    const child = spawn(py, ['-m', module, ...args], { stdio: 'inherit', env });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('error', (e) => reject(new UserError(`cannot start ${py}: ${e.message}`)));
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      if (code !== null) resolve(code);
      else reject(new UserError(`python -m ${module} stopped by ${signal}`));
    });
  });
}

/** A command that hands its arguments to the Python package unchanged. */
function passThrough(module: string, summary: string, positionals: string): Command {
  return {
    summary: `${summary} (runs python -m ${module}; see its --help)`,
    positionals,
    options: {},
    passThrough: module,
    async run(_v: Record<string, unknown>, _pos: string[], _io: CommandIO) {
      throw new Error('internal: pass-through commands are dispatched before option parsing');
    },
  };
}

export const evalCommand = passThrough('lesa_py.eval', 'Held-out perplexity and lm-eval task accuracy of a checkpoint.', 'DIR [--text DATA [--text-field F]] [--tasks T1,T2]');
export const trainCommand = passThrough('lesa_py.cpt', 'Continued pre-training of an expanded checkpoint.', '--model DIR --train DATA --out DIR');
export const compareCommand = passThrough('lesa_py.compare', 'Expand with every method, evaluate and train each, write a report.', 'DIR --target-layers N --out REPORT');
