/** Hashes: verify an output directory against its lesa.json, and hash an input checkpoint. */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { Checkpoint } from './types.js';
import { CheckpointError, ioError, openRead, q } from './errors.js';
import { parseStrictJson, JsonSyntaxError, type Json } from './json.js';
import { checkRelativeName, isInsideOrEqual } from './paths.js';
import { MANIFEST_NAME } from './checkpoint.js';
import { readExactly, readHeader } from './safetensors.js';

/** sha256 (hex) of a file, streaming. */
export async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 16 << 20 })) h.update(chunk as Buffer);
  } catch (e) {
    throw ioError(e, file, file);
  }
  return h.digest('hex');
}

export interface VerifyReport {
  dir: string;
  ok: boolean;
  /** Files hashed. */
  checked: number;
  mismatched: { file: string; expected: string; actual: string }[];
  /** In lesa.json but not in the directory. */
  missing: string[];
  /** In the directory but not in lesa.json. */
  extra: string[];
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await fsp.readdir(path.join(root, rel), { withFileTypes: true });
  for (const e of entries) {
    const r = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...(await walk(root, r)));
    else out.push(r);
  }
  return out;
}

/** Recompute the sha256 of every file listed in `dir`/lesa.json; report mismatched, missing and extra files. */
export async function verifyOutput(dir: string): Promise<VerifyReport> {
  let real: string;
  try {
    real = await fsp.realpath(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CheckpointError('MissingInput', `${dir}: no such directory`, { file: dir });
    throw ioError(e, dir, dir);
  }
  const mf = path.join(real, MANIFEST_NAME);
  let text: string;
  try {
    text = await fsp.readFile(mf, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CheckpointError('ManifestMissing', `${real}: no ${MANIFEST_NAME}; only directories written by lesa can be verified`, { file: mf });
    throw ioError(e, mf, mf);
  }
  const bad = (why: string) => new CheckpointError('ManifestInvalid', `${mf}: ${why}; the manifest is damaged: re-run lesa expand`, { file: mf });
  let m: Json;
  try {
    m = parseStrictJson(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw bad(`not valid JSON (${e.message})`);
    throw e;
  }
  if (!(m instanceof Map)) throw bad('not a JSON object');
  const files = m.get('files');
  if (!(files instanceof Map)) throw bad('"files" is missing or not an object');

  const report: VerifyReport = { dir: real, ok: true, checked: 0, mismatched: [], missing: [], extra: [] };
  for (const [name, expected] of files) {
    if (typeof expected !== 'string' || !/^[0-9a-f]{64}$/.test(expected)) throw bad(`files[${q(name)}] is not a sha256 hex digest`);
    checkRelativeName(name, mf, mf);
    if (name === MANIFEST_NAME) throw bad('lists itself');
    const abs = path.join(real, name);
    let st: fs.Stats;
    try {
      st = await fsp.lstat(abs);
    } catch {
      report.missing.push(name);
      continue;
    }
    if (!st.isFile()) {
      // A symlink or directory where a file should be: never follow it out.
      const target = await fsp.realpath(abs).catch(() => null);
      if (target === null || !isInsideOrEqual(target, real) || !(await fsp.stat(target)).isFile()) {
        report.mismatched.push({ file: name, expected, actual: st.isSymbolicLink() ? 'symlink' : 'not a file' });
        continue;
      }
    }
    const actual = await hashFile(abs);
    report.checked++;
    if (actual !== expected) report.mismatched.push({ file: name, expected, actual });
  }
  for (const f of await walk(real)) {
    if (f !== MANIFEST_NAME && !files.has(f)) report.extra.push(f);
  }
  report.extra.sort();
  report.ok = report.mismatched.length === 0 && report.missing.length === 0 && report.extra.length === 0;
  return report;
}

export interface CheckpointHash {
  /** sha256 over the sorted "name sha256\n" lines of the weight files (manifest source.sha256). */
  sha256: string;
  /** sha256 of each weight file, by relative name. */
  files: Record<string, string>;
}

function weightFilesOf(ckpt: Checkpoint & { weightFiles?: string[] }): string[] {
  let rels = ckpt.weightFiles;
  if (rels === undefined) {
    const set = new Set<string>();
    for (const t of ckpt.tensors.values()) set.add(path.relative(ckpt.dir, t.file).split(path.sep).join('/'));
    rels = [...set];
  }
  return [...rels].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The source hash and per-file hashes of an input checkpoint. Reads every weight file once. */
export async function hashCheckpointFiles(ckpt: Checkpoint & { weightFiles?: string[] }): Promise<CheckpointHash> {
  const files: Record<string, string> = {};
  let lines = '';
  for (const rel of weightFilesOf(ckpt)) {
    const h = await hashFile(path.join(ckpt.dir, rel));
    files[rel] = h;
    lines += `${rel} ${h}\n`;
  }
  return { sha256: createHash('sha256').update(lines, 'utf8').digest('hex'), files };
}

/**
 * The source hash of an input checkpoint (manifest `source.sha256`): sha256 over the
 * lines "<relative name> <sha256 of the file>\n" of the weight files, sorted by name.
 * Reads every weight file (minutes for a 70B model).
 */
export async function hashCheckpoint(ckpt: Checkpoint & { weightFiles?: string[] }): Promise<string> {
  return (await hashCheckpointFiles(ckpt)).sha256;
}

/**
 * A cheap identity of an input checkpoint (reads headers only): sha256 over the lines
 * "<relative name> <file size> <sha256 of the length prefix and header>\n" of the weight
 * files, sorted by name. Equal for byte-identical copies; any header or size change alters it.
 */
export async function fingerprintCheckpoint(ckpt: Checkpoint & { weightFiles?: string[] }): Promise<string> {
  let lines = '';
  for (const rel of weightFilesOf(ckpt)) {
    const abs = path.join(ckpt.dir, rel);
    const fh = await openRead(abs);
    try {
      const st = await fh.stat();
      const header = await readHeader(fh, st.size, abs);
      const hb = Buffer.allocUnsafeSlow(header.dataStart);
      await readExactly(fh, hb, 0, abs);
      lines += `${rel} ${st.size} ${createHash('sha256').update(hb).digest('hex')}\n`;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }
  return createHash('sha256').update(lines, 'utf8').digest('hex');
}
