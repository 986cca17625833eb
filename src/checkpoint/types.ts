/** Shared checkpoint types: the contract between I/O (src/checkpoint), plans and methods. */

export const DTYPE_SIZES = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
} as const;
export type DType = keyof typeof DTYPE_SIZES;
/** Floating dtypes lesa can compute with (converted to f32 for math). */
export type FloatDType = 'F32' | 'F16' | 'BF16';
export const FLOAT_DTYPES: readonly FloatDType[] = ['F32', 'F16', 'BF16'];
export const isFloatDType = (d: string): d is FloatDType => (FLOAT_DTYPES as readonly string[]).includes(d);

/** Elements of a tensor of this shape (sizes already validated; see safetensors.ts checkedNumel for untrusted ones). */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A tensor inside a safetensors file, located but not read. */
export interface TensorRef {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute path of the safetensors file. */
  file: string;
  /** Absolute byte offset of the first data byte in `file`. */
  start: number;
  byteLength: number;
}

/** Metadata of one output tensor: what a writer needs before any data exists. */
export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export type ModelConfig = Record<string, unknown>;

/** Where a tensor's stored bytes lie: a descriptor open for reading (until close()) and a range. */
export interface TensorSpan {
  fd: number;
  file: string;
  start: number;
  byteLength: number;
}

export interface Checkpoint {
  /** Absolute, real path of the checkpoint directory. */
  dir: string;
  config: ModelConfig;
  /** Paths (jsonPath) of config.json numbers written as floats, kept floats when it is rewritten. */
  configFloats?: ReadonlySet<string>;
  /** Every tensor, in the order of the source files (index order, then header order). */
  tensors: Map<string, TensorRef>;
  /** Non-weight files to carry over unchanged (tokenizer, generation config, chat template...), relative names. */
  auxFiles: string[];
  /** Total bytes of the weight files. */
  weightBytes: number;
  /** Raw little-endian bytes of one tensor, exactly as stored. */
  readRaw(name: string): Promise<Buffer>;
  /** One tensor converted to f32 (floating dtypes only). */
  readF32(name: string): Promise<Float32Array>;
  /**
   * The stored bytes of one tensor as a file span, for byte-for-byte copies that never hold
   * the tensor; undefined (or no method) when the tensor is not the stored bytes (a permuted view).
   */
  span?(name: string): Promise<TensorSpan | undefined>;
  close(): Promise<void>;
}
