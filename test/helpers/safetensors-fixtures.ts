/** Fixtures for checkpoint tests: raw safetensors bytes, checkpoint dirs, tree hashes, Python. */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { DTYPE_SIZES, type DType, type TensorSpec } from '../../src/checkpoint/types.js';

/** The project's venv (scripts/test.sh exports LESA_PYTHON; the default is where setup_python.sh puts it). */
export const PYTHON = process.env.LESA_PYTHON ?? path.join(os.homedir(), '.cache', 'lesa', 'venv', 'bin', 'python');

let pyOk: boolean | null = null;
/** That python exists and imports safetensors and torch. */
export function hasPython(): boolean {
  if (pyOk === null) {
    if (!fs.existsSync(PYTHON)) pyOk = false;
    else pyOk = spawnSync(PYTHON, ['-c', 'import safetensors, torch'], { encoding: 'utf8', timeout: 60_000 }).status === 0;
  }
  return pyOk;
}
export const NO_PYTHON = `skipped: ${PYTHON} with safetensors and torch is not available`;

export function runPython(code: string, args: string[] = []): string {
  const r = spawnSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export async function tmpDir(prefix = 'lesa-ckpt-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
export const randInt = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

export function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

export interface TensorData extends TensorSpec {
  data: Uint8Array;
}

export function byteLen(dtype: DType, shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[dtype];
}

/** A random tensor set: random dtypes, shapes including scalars and zero-size tensors. */
export function randomTensors(r: () => number, n: number, maxDim = 6): TensorData[] {
  const dtypes = Object.keys(DTYPE_SIZES) as DType[];
  const out: TensorData[] = [];
  for (let i = 0; i < n; i++) {
    const dtype = dtypes[randInt(r, 0, dtypes.length - 1)];
    const rank = randInt(r, 0, 3);
    const shape = Array.from({ length: rank }, () => (r() < 0.1 ? 0 : randInt(r, 1, maxDim)));
    const name = r() < 0.1 ? String(i) : `model.layers.${i}.w${randInt(r, 0, 99)}`;
    out.push({ name, dtype, shape, data: randomBytes(r, byteLen(dtype, shape)) });
  }
  return out;
}

/** A safetensors file from raw header text and data; `declaredLength` overrides the prefix. */
export function rawSafetensors(headerText: string, data: Uint8Array = new Uint8Array(0), declaredLength?: bigint): Buffer {
  const h = Buffer.from(headerText, 'utf8');
  const pre = Buffer.alloc(8);
  pre.writeBigUInt64LE(declaredLength ?? BigInt(h.length));
  return Buffer.concat([pre, h, data]);
}

/** A well-formed safetensors file (header in the given order, data contiguous). */
export function buildSafetensors(tensors: TensorData[], metadata: Record<string, string> | null = { format: 'pt' }): Buffer {
  const hdr: Record<string, unknown> = {};
  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let off = 0;
  for (const t of tensors) {
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] })}`);
    off += t.data.length;
  }
  void hdr;
  let text = `{${parts.join(',')}}`;
  while (Buffer.byteLength(text) % 8 !== 0) text += ' ';
  return rawSafetensors(text, Buffer.concat(tensors.map((t) => t.data)));
}

export const TINY_CONFIG = { model_type: 'llama', num_hidden_layers: 2, hidden_size: 4 };

/** Write a checkpoint directory: config.json plus the given files (Buffers or JSON values). */
export async function writeCheckpointDir(dir: string, files: Record<string, Buffer | string | object>, config: unknown = TINY_CONFIG): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  if (config !== undefined) await fsp.writeFile(path.join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  for (const [name, v] of Object.entries(files)) {
    const p = path.join(dir, name);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, Buffer.isBuffer(v) ? v : typeof v === 'string' ? v : JSON.stringify(v));
  }
  return dir;
}

/** sha256 of every entry under `dir` (symlinks by their target text, never followed). */
export async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    const entries = await fsp.readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const abs = path.join(dir, r);
      if (e.isSymbolicLink()) out[r] = 'link:' + (await fsp.readlink(abs));
      else if (e.isDirectory()) { out[r + '/'] = 'dir'; await walk(r); }
      else if (e.isFile()) out[r] = createHash('sha256').update(await fsp.readFile(abs)).digest('hex');
      else out[r] = 'other';
    }
  };
  await walk('');
  return out;
}

/** Reject after `ms` (each fuzz case is time-bounded). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms); });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Directory entries of `dir` whose names contain `.lesa-` (temp/old/scratch leftovers). */
export async function leftovers(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).filter((n) => n.includes('.lesa-'));
}
