import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { UserError } from '../errors.js';
import { pythonEnv, pythonPath } from './python.js';

/** A checkpoint argument resolved to a local directory; `hub` when it came from a hub id. */
export interface ModelSource {
  dir: string;
  hub?: { repo: string; revision: string; commit: string };
}

/**
 * A directory argument, or a Hugging Face hub id (`org/name[@rev]`) resolved by
 * python/lesa_py/hub.py through huggingface_hub (which owns the id grammar, the cache,
 * HF_HUB_OFFLINE and the token). An existing path, an absolute one or one starting with
 * "." or "~" is always a path, so Python starts only for arguments that can be hub ids.
 */
export async function resolveModel(arg: string): Promise<ModelSource> {
  if (existsSync(arg) || !arg.includes('/') || /^[./~]/.test(arg)) return { dir: arg };
  const { code, stdout, stderr } = await capture(['-m', 'lesa_py.hub', arg, '--json']);
  if (code !== 0) {
    const line = stderr.trim().split('\n').pop()?.replace(/^lesa: /, '');
    throw new UserError(line || `cannot resolve hub id ${arg} (python exit ${code})`);
  }
  const r = JSON.parse(stdout) as { path: string; repo: string; revision: string; commit: string };
  return { dir: r.path, hub: { repo: r.repo, revision: r.revision, commit: r.commit } };
}

function capture(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const py = pythonPath();
  return new Promise((resolve, reject) => {
    const child = spawn(py, args, { stdio: ['ignore', 'pipe', 'pipe'], env: pythonEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (e) => reject(new UserError(`cannot start ${py}: ${e.message}`)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
