import { open, type FileHandle } from 'node:fs/promises';

/**
 * User errors of the checkpoint layer. Every failure caused by the input (a malformed or
 * hostile checkpoint), the output location or the disk is a `CheckpointError` with one of a
 * closed set of kinds; anything else thrown from src/checkpoint is an internal bug.
 * The CLI prints `message` (one line: the file, the tensor, the problem and the fix) and
 * exits 2.
 */

/** The closed set of error kinds, each with its doc line. */
export const CHECKPOINT_ERROR_KINDS = {
  // --- one safetensors file ---
  /** The file is shorter than the 8-byte header length prefix. */
  FileTooSmall: 'the file is shorter than the 8-byte header length',
  /** The declared header length exceeds the 100 MB cap. */
  HeaderTooLarge: 'the declared header length is above the 100 MB cap',
  /** The declared header length reaches past the end of the file. */
  HeaderPastEof: 'the declared header length reaches past the end of the file',
  /** The header bytes are not valid UTF-8. */
  HeaderInvalidUtf8: 'the header is not valid UTF-8',
  /** The header is not valid JSON (or does not start with "{", or holds a non-integer number). */
  HeaderInvalidJson: 'the header is not valid JSON',
  /** The header JSON repeats a key in one object. */
  HeaderDuplicateKey: 'the header JSON repeats a key',
  /** The header JSON is valid but not an object. */
  HeaderNotObject: 'the header JSON is not an object',
  /** `__metadata__` is not an object of string values. */
  InvalidMetadata: '__metadata__ is not a string-to-string object',
  /** A tensor entry is not exactly {dtype, shape, data_offsets} of the right JSON types. */
  InvalidTensorEntry: 'a tensor entry is not exactly {dtype, shape, data_offsets}',
  /** A tensor's dtype is not one lesa knows (types.ts DTYPE_SIZES). */
  UnknownDtype: 'a tensor has a dtype lesa does not know',
  /** A shape holds a negative, fractional or unsafe (> 2^53) dimension. */
  InvalidShape: 'a shape holds a negative, fractional or too large dimension',
  /** data_offsets is not two safe non-negative integers with begin <= end. */
  InvalidOffsets: 'data_offsets is not [begin, end] with 0 <= begin <= end',
  /** An element count or byte size exceeds 2^53 (checked arithmetic). */
  SizeOverflow: 'an element count or byte size exceeds 2^53',
  /** end - begin differs from numel * dtype size. */
  SizeMismatch: 'a tensor byte range differs from numel * dtype size',
  /** A tensor's byte range ends past the end of the file. */
  OffsetsOutOfBounds: 'a tensor byte range ends past the end of the file',
  /** Tensor byte ranges overlap, leave a gap, or do not start at 0. */
  OffsetsNotContiguous: 'tensor byte ranges overlap, leave a gap or do not start at 0',
  /** The tensor data ends before the end of the file (trailing bytes). */
  FileLengthMismatch: 'the tensor data ends before the end of the file',
  /** A file changed (size, inode or mtime) between validation and reading. */
  FileChanged: 'a file changed after its header was validated',
  /** A path that must be a regular file is something else (directory, FIFO, device). */
  NotAFile: 'a path that must be a regular file is not one',
  // --- a checkpoint directory ---
  /** The input directory does not exist or is not a directory. */
  MissingInput: 'the input directory does not exist or is not a directory',
  /** The input directory has no config.json. */
  MissingConfig: 'the checkpoint has no config.json',
  /** config.json is not a valid JSON object. */
  InvalidConfig: 'config.json is not a JSON object',
  /** model.safetensors.index.json is malformed. */
  InvalidIndex: 'model.safetensors.index.json is malformed',
  /** The index's weight_map and the files' headers disagree. */
  IndexMismatch: 'the index weight_map and the safetensors headers disagree',
  /** A file named by the index (or needed otherwise) does not exist. */
  MissingFile: 'a file the checkpoint needs does not exist',
  /** A path is absolute, contains "..", or resolves (through symlinks) outside its directory. */
  PathEscape: 'a path leaves the checkpoint directory',
  /** The directory holds only pickle weights (pytorch_model*.bin, *.pt, *.pth, *.ckpt). */
  PickleRefused: 'the checkpoint holds only pickle weights; lesa never unpickles',
  /** The directory holds no weight files at all. */
  NoWeights: 'the checkpoint holds no weight files',
  /** Two weight files hold a tensor of the same name. */
  DuplicateTensor: 'two weight files hold a tensor of the same name',
  /** A tensor asked for is not in the checkpoint. */
  MissingTensor: 'a tensor asked for is not in the checkpoint',
  /** A tensor's dtype cannot be converted to f32 (only F32, F16, BF16 can). */
  UnsupportedDtype: 'a tensor dtype cannot be converted to f32',
  // --- output ---
  /** The output exists and --force was not given (or it is not a lesa output). */
  OutputExists: 'the output already exists',
  /** The output is the input directory or inside it. */
  OutputInsideInput: 'the output is the input directory or inside it',
  /** The input directory is inside the output directory. */
  InputInsideOutput: 'the input directory is inside the output directory',
  /** The disk filled up while writing the output. */
  DiskFull: 'the disk filled up while writing',
  /** Any other operating-system error (permissions, I/O error). */
  IoError: 'an operating-system error while reading or writing',
  /** A directory to verify has no lesa.json. */
  ManifestMissing: 'the directory has no lesa.json',
  /** lesa.json is malformed. */
  ManifestInvalid: 'lesa.json is malformed',
} as const;

export type CheckpointErrorKind = keyof typeof CHECKPOINT_ERROR_KINDS;

export interface CheckpointErrorDetails {
  /** The file concerned (absolute path), when there is one. */
  file?: string;
  /** The tensor concerned, when there is one. */
  tensor?: string;
  cause?: unknown;
}

/** A user error: bad input, bad output location, full disk. The message is one line. */
export class CheckpointError extends Error {
  readonly kind: CheckpointErrorKind;
  readonly file?: string;
  readonly tensor?: string;

  constructor(kind: CheckpointErrorKind, message: string, details: CheckpointErrorDetails = {}) {
    super(message.replace(/[\r\n]+/g, ' '), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'CheckpointError';
    this.kind = kind;
    if (details.file !== undefined) this.file = details.file;
    if (details.tensor !== undefined) this.tensor = details.tensor;
  }
}

export function isCheckpointError(e: unknown, kind?: CheckpointErrorKind): e is CheckpointError {
  return e instanceof CheckpointError && (kind === undefined || e.kind === kind);
}

/** Quote a name for a one-line message (JSON quoting: control characters escaped, length capped). */
export function q(s: string): string {
  const t = s.length > 200 ? s.slice(0, 200) + '…' : s;
  return JSON.stringify(t);
}

/** Wrap an operating-system error (from fs) into a CheckpointError; pass CheckpointErrors through. */
export function ioError(e: unknown, what: string, file?: string): CheckpointError {
  if (e instanceof CheckpointError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new CheckpointError('DiskFull', `${what}: the disk is full (${msg}); free space or choose another output directory`, { file, cause: e });
  }
  if (code === 'ENOENT') {
    return new CheckpointError('MissingFile', `${what}: not found (${msg})`, { file, cause: e });
  }
  return new CheckpointError('IoError', `${what}: ${msg}; check permissions and the disk`, { file, cause: e });
}

/** An internal error (a bug in lesa, not the user's fault): the CLI prints the stack. */
export class InternalError extends Error {
  constructor(message: string) {
    super(`internal error: ${message}`);
    this.name = 'InternalError';
  }
}

/** Opens `file` for reading; a failure becomes the one-line CheckpointError ioError makes. */
export async function openRead(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'r');
  } catch (e) {
    throw ioError(e, file, file);
  }
}
