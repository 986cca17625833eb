/** Path rules for untrusted names (index weight_map, manifests) and output locations. */
import * as path from 'node:path';
import * as fsp from 'node:fs/promises';
import { CheckpointError, ioError, q } from './errors.js';

/** `child` is `parent` or lies below it (both absolute and normalized). */
export function isInsideOrEqual(child: string, parent: string): boolean {
  if (child === parent) return true;
  const p = parent.endsWith(path.sep) ? parent : parent + path.sep;
  return child.startsWith(p);
}

/**
 * Lexical check of a relative file name from an untrusted file: not empty, not absolute
 * (POSIX or Windows), no backslash, no NUL, no empty, "." or ".." segment.
 */
export function checkRelativeName(name: string, where: string, file: string): void {
  const bad = (why: string) =>
    new CheckpointError('PathEscape', `${where}: file name ${q(name)} ${why}; names must be relative paths inside the checkpoint directory`, { file });
  if (name.length === 0) throw bad('is empty');
  if (name.length > 4096) throw bad('is too long');
  if (name.includes('\0')) throw bad('contains a NUL byte');
  if (name.includes('\\')) throw bad('contains a backslash');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw bad('is absolute');
  for (const seg of name.split('/')) {
    if (seg === '..') throw bad('contains ".."');
    if (seg === '' || seg === '.') throw bad('has an empty or "." segment');
  }
}

/**
 * Roots a file of checkpoint directory `realDir` may resolve into: the directory itself,
 * plus, for a Hugging Face cache snapshot (`<repo>/snapshots/<rev>`), the repository's
 * `<repo>/blobs` directory that its symlinks point to.
 */
export function allowedRoots(realDir: string): string[] {
  const roots = [realDir];
  const parent = path.dirname(realDir);
  if (path.basename(parent) === 'snapshots') roots.push(path.join(path.dirname(parent), 'blobs'));
  return roots;
}

/** realpath of `rel` inside `realDir`, refusing anything that resolves outside the allowed roots. */
export async function resolveInside(realDir: string, rel: string, where: string): Promise<string> {
  const joined = path.join(realDir, rel);
  let real: string;
  try {
    real = await fsp.realpath(joined);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new CheckpointError('MissingFile', `${where}: ${q(rel)} does not exist in ${realDir}; restore the file or re-download the checkpoint`, { file: joined });
    }
    if (code === 'ELOOP') {
      throw new CheckpointError('PathEscape', `${where}: ${q(rel)} is a symlink loop; remove it`, { file: joined });
    }
    throw ioError(e, `${where}: ${joined}`, joined);
  }
  if (!allowedRoots(realDir).some((r) => isInsideOrEqual(real, r))) {
    throw new CheckpointError('PathEscape', `${where}: ${q(rel)} resolves to ${real}, outside ${realDir}; replace the symlink by the file itself`, { file: joined });
  }
  return real;
}
