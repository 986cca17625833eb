/**
 * A small, paranoid safetensors reader (format and rules: docs/safetensors.md).
 *
 * Only the header is read here; tensor data is read by offset later (checkpoint.ts).
 * Every size is checked against 2^53 before use; every failure is a CheckpointError.
 */
import type { FileHandle } from 'node:fs/promises';
import * as fsp from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { DTYPE_SIZES, type DType } from './types.js';
import { CheckpointError, ioError, openRead, q } from './errors.js';
import { parseStrictJson, JsonSyntaxError, type Json } from './json.js';

/** Largest header accepted (same cap as the reference Rust implementation). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Largest single read/write call (fs calls are limited to 2^31-1 bytes). */
export const IO_CHUNK = 1 << 30;

/** One tensor of a safetensors file; begin/end are relative to the start of the data section. */
export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N: the header JSON length in bytes (padding included). */
  headerLength: number;
  /** 8 + N: absolute offset of the first data byte. */
  dataStart: number;
  fileSize: number;
  metadata: Record<string, string> | null;
  /** Tensors in header order. */
  tensors: SafetensorsEntry[];
}

const FIX = 'the file is corrupt or not a safetensors file: re-download or re-convert it';

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

/** Element count with checked arithmetic; null when it exceeds 2^53 - 1. */
export function checkedNumel(shape: readonly number[]): number | null {
  if (shape.some((d) => d === 0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}

/** Byte length of a tensor, or null on overflow. */
export function checkedByteLength(dtype: DType, shape: readonly number[]): number | null {
  const n = checkedNumel(shape);
  if (n === null) return null;
  const b = n * DTYPE_SIZES[dtype];
  return Number.isSafeInteger(b) ? b : null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Validate the header JSON bytes (the N bytes after the length prefix) of a file of
 * `fileSize` bytes. Pure: no I/O.
 */
export function parseHeaderBytes(headerBytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const N = headerBytes.length;
  const dataStart = 8 + N;
  const err = (kind: ConstructorParameters<typeof CheckpointError>[0], what: string, tensor?: string) =>
    new CheckpointError(kind, `${file}: ${tensor !== undefined ? `tensor ${q(tensor)}: ` : ''}${what}; ${FIX}`, { file, tensor });

  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw err('HeaderInvalidUtf8', 'the header is not valid UTF-8');
  }
  let root: Json;
  try {
    root = parseStrictJson(text, { integersOnly: true, maxDepth: 8 });
  } catch (e) {
    if (e instanceof JsonSyntaxError) {
      if (e.duplicateKey !== undefined) throw err('HeaderDuplicateKey', `the header repeats the key ${q(e.duplicateKey)}`);
      throw err('HeaderInvalidJson', `the header is not valid JSON (${e.message})`);
    }
    throw e;
  }
  if (!(root instanceof Map)) throw err('HeaderNotObject', 'the header JSON is not an object');
  // As the reference implementation: no leading whitespace (trailing padding is fine).
  if (text[0] !== '{') throw err('HeaderInvalidJson', 'the header does not start with "{"');

  let metadata: Record<string, string> | null = null;
  const tensors: SafetensorsEntry[] = [];
  const dataSize = fileSize - dataStart;

  for (const [name, v] of root) {
    if (name === '__metadata__') {
      if (v === null) continue;
      if (!(v instanceof Map)) throw err('InvalidMetadata', '__metadata__ is not an object');
      const md: Record<string, string> = {};
      for (const [k, s] of v) {
        if (typeof s !== 'string') throw err('InvalidMetadata', `__metadata__ value of ${q(k)} is not a string`);
        // defineProperty: a "__proto__" key is stored as data, never as the prototype.
        Object.defineProperty(md, k, { value: s, enumerable: true, writable: true, configurable: true });
      }
      metadata = md;
      continue;
    }
    if (!(v instanceof Map)) throw err('InvalidTensorEntry', 'the entry is not an object', name);
    const keys = [...v.keys()];
    const expected = ['data_offsets', 'dtype', 'shape'];
    if (keys.length !== 3 || [...keys].sort().some((k, j) => k !== expected[j])) {
      throw err('InvalidTensorEntry', `the entry has keys [${keys.map(q).join(', ')}], expected exactly dtype, shape, data_offsets`, name);
    }
    const dtype = v.get('dtype');
    const shape = v.get('shape');
    const offs = v.get('data_offsets');
    if (typeof dtype !== 'string') throw err('InvalidTensorEntry', 'dtype is not a string', name);
    if (!isDType(dtype)) throw err('UnknownDtype', `unknown dtype ${q(dtype)} (known: ${Object.keys(DTYPE_SIZES).join(', ')})`, name);
    if (!Array.isArray(shape)) throw err('InvalidTensorEntry', 'shape is not an array', name);
    if (shape.length > 64) throw err('InvalidShape', `shape has ${shape.length} dimensions (at most 64)`, name);
    for (const d of shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        throw err('InvalidShape', `shape ${q(JSON.stringify(shape))} holds a dimension that is not a non-negative integer below 2^53`, name);
      }
    }
    if (!Array.isArray(offs) || offs.length !== 2) throw err('InvalidOffsets', 'data_offsets is not a pair [begin, end]', name);
    const [begin, end] = offs;
    if (typeof begin !== 'number' || typeof end !== 'number' || !Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin) {
      throw err('InvalidOffsets', `data_offsets ${q(JSON.stringify(offs))} is not [begin, end] with 0 <= begin <= end < 2^53`, name);
    }
    const shp = shape as number[];
    const bytes = checkedByteLength(dtype, shp);
    if (bytes === null) throw err('SizeOverflow', `shape ${JSON.stringify(shp)} of ${dtype} is larger than 2^53 bytes`, name);
    if (end - begin !== bytes) {
      throw err('SizeMismatch', `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${JSON.stringify(shp)} of ${dtype} needs ${bytes}`, name);
    }
    if (end > dataSize) {
      throw err('OffsetsOutOfBounds', `data_offsets [${begin}, ${end}] end past the data section (${dataSize} bytes)`, name);
    }
    tensors.push({ name, dtype, shape: shp, begin, end });
  }

  // Contiguous from 0, no overlap, no gap: sort by (begin, end) and walk.
  const sorted = tensors.map((t, j) => j).sort((a, b) => tensors[a].begin - tensors[b].begin || tensors[a].end - tensors[b].end);
  let pos = 0;
  for (const j of sorted) {
    const t = tensors[j];
    if (t.begin !== pos) {
      const what = t.begin < pos ? `overlaps the previous tensor (which ends at ${pos})` : `leaves a gap (previous data ends at ${pos})`;
      throw err('OffsetsNotContiguous', `data_offsets [${t.begin}, ${t.end}] ${what}`, t.name);
    }
    pos = t.end;
  }
  if (pos !== dataSize) {
    throw err('FileLengthMismatch', `the tensor data ends at byte ${dataStart + pos} but the file has ${fileSize} bytes`);
  }
  return { headerLength: N, dataStart, fileSize, metadata, tensors };
}

/** Read exactly `length` bytes at `position`, in chunks; a short read means the file shrank. */
export async function readExactly(fh: FileHandle, buf: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const want = Math.min(IO_CHUNK, buf.length - done);
    let r;
    try {
      r = await fh.read(buf, done, want, position + done);
    } catch (e) {
      throw ioError(e, `${file}: reading ${buf.length} bytes at ${position}`, file);
    }
    if (r.bytesRead === 0) {
      throw new CheckpointError('FileChanged', `${file}: the file ended at byte ${position + done} while reading (it changed or was truncated after validation); do not modify the input while lesa runs`, { file });
    }
    done += r.bytesRead;
  }
}

/** Read and validate the header of an open file whose size is `fileSize`. */
export async function readHeader(fh: FileHandle, fileSize: number, file: string): Promise<SafetensorsHeader> {
  if (fileSize < 8) {
    throw new CheckpointError('FileTooSmall', `${file}: ${fileSize} bytes, shorter than the 8-byte header length; ${FIX}`, { file });
  }
  const lenBuf = Buffer.alloc(8);
  await readExactly(fh, lenBuf, 0, file);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError('HeaderTooLarge', `${file}: header length ${n} is above the ${MAX_HEADER_BYTES}-byte cap; ${FIX}`, { file });
  }
  const N = Number(n);
  if (8 + N > fileSize) {
    throw new CheckpointError('HeaderPastEof', `${file}: header length ${N} reaches past the end of the ${fileSize}-byte file; ${FIX}`, { file });
  }
  const hb = Buffer.alloc(N);
  await readExactly(fh, hb, 8, file);
  return parseHeaderBytes(hb, fileSize, file);
}

/** Parse a whole safetensors file held in memory (tests, fuzzing). */
export function parseSafetensorsBytes(bytes: Uint8Array, file = '<buffer>'): SafetensorsHeader {
  if (bytes.length < 8) {
    throw new CheckpointError('FileTooSmall', `${file}: ${bytes.length} bytes, shorter than the 8-byte header length; ${FIX}`, { file });
  }
  const n = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError('HeaderTooLarge', `${file}: header length ${n} is above the ${MAX_HEADER_BYTES}-byte cap; ${FIX}`, { file });
  }
  const N = Number(n);
  if (8 + N > bytes.length) {
    throw new CheckpointError('HeaderPastEof', `${file}: header length ${N} reaches past the end of the ${bytes.length}-byte file; ${FIX}`, { file });
  }
  return parseHeaderBytes(bytes.subarray(8, 8 + N), bytes.length, file);
}

export interface OpenedSafetensors {
  header: SafetensorsHeader;
  stat: Stats;
}

/** Open a file, check that it is a regular file, validate its header, close it. */
export async function readSafetensorsFile(file: string): Promise<OpenedSafetensors> {
  // stat before open: opening a FIFO would block forever.
  let st: Stats;
  try {
    st = await fsp.stat(file);
  } catch (e) {
    throw ioError(e, file, file);
  }
  if (!st.isFile()) throw new CheckpointError('NotAFile', `${file}: not a regular file; weight files must be regular files`, { file });
  const fh = await openRead(file);
  try {
    const st2 = await fh.stat();
    if (!st2.isFile() || st2.ino !== st.ino || st2.dev !== st.dev) {
      throw new CheckpointError('FileChanged', `${file}: the file was replaced while opening it; do not modify the input while lesa runs`, { file });
    }
    const header = await readHeader(fh, st2.size, file);
    return { header, stat: st2 };
  } finally {
    await fh.close().catch(() => undefined);
  }
}
