/** Running the real CLI (dist/src/cli/bin.js) as a child process, with a time limit. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/test/helpers/cli.js → dist/src/cli/bin.js */
export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/bin.js');

export interface CliResult {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export interface SpawnOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called with each stderr chunk (and the child), e.g. to send a signal at a progress line. */
  onStderr?: (text: string, child: ChildProcess) => void;
}

/** Spawn `node bin.js ...args`; on timeout SIGKILL it and report timedOut. Never rejects. */
export function runLesa(args: string[], o: SpawnOptions = {}): Promise<CliResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: o.cwd,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { if (stdout.length < 1 << 20) stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 1 << 20) stderr += d;
      o.onStderr?.(stderr, child);
    });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, o.timeoutMs ?? 30_000);
    child.on('error', (e) => { stderr += `spawn error: ${e.message}`; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ args, code, signal, stdout, stderr, timedOut, ms: performance.now() - t0 });
    });
  });
}

/** Map `items` through `fn` with at most `limit` running at once; results in input order. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** One digest of every entry under `dir` (names, types, contents, modes; symlinks by target). */
export async function treeDigest(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (rel: string) => {
    const entries = (await fsp.readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const abs = path.join(dir, r);
      if (e.isSymbolicLink()) h.update(`L ${r} ${await fsp.readlink(abs)}\n`);
      else if (e.isDirectory()) { h.update(`D ${r}\n`); await walk(r); }
      else if (e.isFile()) {
        const st = await fsp.stat(abs);
        h.update(`F ${r} ${st.mode} ${st.size} `).update(await fsp.readFile(abs)).update('\n');
      } else h.update(`O ${r}\n`);
    }
  };
  await walk('');
  return h.digest('hex');
}

/** Names in `parent` that are lesa temp/scratch siblings of the output `out` (or of anything). */
export async function siblingsOf(parent: string, out?: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(parent);
  } catch {
    return [];
  }
  return names.filter((n) => (out === undefined ? /\.lesa-(tmp|scratch)-/.test(n) : n.startsWith(`.${out}.lesa-`)));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** The lines of a CLI's stderr that are not progress: --json events, "• phase" lines, progress bars. */
export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{"event"') && !l.startsWith('• ') && !/^ {2}[█░]/.test(l));
}

/** How an outcome is classified in summaries. */
export function classify(r: CliResult): 'ok' | 'user-error' | 'internal-error' | 'crash' | 'hang' | 'other' {
  if (r.timedOut) return 'hang';
  if (r.signal !== null) return 'crash';
  if (r.code === 0) return 'ok';
  if (r.code === 2) return 'user-error';
  if (r.code === 1) return 'internal-error';
  return r.code !== null && r.code > 128 ? 'crash' : 'other';
}
