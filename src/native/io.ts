/**
 * Byte-level I/O in the addon (native/src/copy.cc), validated here: NaN/Inf counts on raw
 * bytes, a running sha256 per output file, and span copies between file descriptors that
 * check and hash the bytes as the kernel moves them. All of it runs off the main thread.
 */
import { loadNative, withCallerStack } from './binding.js';
import { expectOneOf, expectSafeInteger, expectU8 } from './validate.js';

/** Dtypes whose raw bytes can be checked for NaN/Inf. */
export type CheckedDtype = 'F64' | 'F32' | 'F16' | 'BF16';
export const CHECKED_DTYPE_BYTES: Readonly<Record<CheckedDtype, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2 };
const CHECKED = Object.keys(CHECKED_DTYPE_BYTES) as CheckedDtype[];

export function isCheckedDtype(d: string): d is CheckedDtype {
  return (CHECKED as string[]).includes(d);
}

function expectWhole(length: number, d: CheckedDtype, name: string): void {
  if (length % CHECKED_DTYPE_BYTES[d] !== 0) {
    throw new RangeError(`Expected a byte length divisible by ${CHECKED_DTYPE_BYTES[d]} for ${name} (${d}) but received ${length}`);
  }
}

/** Elements of `bytes` (little-endian `dtype`) that are NaN or ±Inf; the bytes must not change until it settles. */
export async function countNonFiniteRaw(bytes: Uint8Array, dtype: CheckedDtype): Promise<number> {
  const src = expectU8(bytes, 'bytes');
  const d = expectOneOf(dtype, 'dtype', CHECKED);
  expectWhole(src.length, d, 'bytes');
  return withCallerStack(() => loadNative().countNonFiniteRaw(src, d));
}

/** A sha256 fed in order, off the main thread; one update or copy at a time. */
export class Sha256 {
  private readonly handle = loadNative().sha256New();
  private digested = false;

  /** Feed `bytes` (they must not change until the promise settles). */
  async update(bytes: Uint8Array): Promise<void> {
    const b = expectU8(bytes, 'bytes');
    this.live();
    if (b.length === 0) return;
    return withCallerStack(() => loadNative().sha256Update(this.handle, b));
  }

  /** Hex digest; the hash takes no input after it. */
  digest(): string {
    this.live();
    this.digested = true;
    return loadNative().sha256Digest(this.handle);
  }

  private live(): void {
    if (this.digested) throw new Error('Sha256 used after digest()');
  }

  /** The raw handle, for copySpan. */
  get native(): object {
    this.live();
    return this.handle;
  }
}

export interface SpanCopy {
  srcFd: number;
  srcOffset: number;
  dstOffset: number;
  length: number;
  /** Count NaN/Inf of this dtype while copying; undefined: no check. */
  check?: CheckedDtype;
}

export interface SpansCopied {
  /** NaN/Inf count of each span (0 where unchecked). */
  nonFinite: number[];
  /** Some all-zero chunks were not written (holes): the caller must size the file. */
  holes: boolean;
}

const CHECK_CODES: Readonly<Record<CheckedDtype | '', number>> = { '': 0, F64: 1, F32: 2, F16: 3, BF16: 4 };

/**
 * Copy each span, in order, from its srcFd@srcOffset to dstFd@dstOffset through the kernel
 * (copy_file_range, pread/pwrite where it cannot), checking them and feeding `hash` on the
 * way (one native job for them all). A failed system call rejects with an Error carrying
 * `code` and `syscall`, as fs errors do.
 */
export async function copySpans(hash: Sha256, dstFd: number, spans: readonly SpanCopy[]): Promise<SpansCopied> {
  if (!(hash instanceof Sha256)) throw new TypeError('Expected a Sha256 for hash');
  const dst = expectSafeInteger(dstFd, 'dstFd');
  const packed = new Float64Array(4 * spans.length);
  const checks = new Uint8Array(spans.length);
  for (const [k, c] of spans.entries()) {
    packed[4 * k] = expectSafeInteger(c.srcFd, `spans[${k}].srcFd`);
    packed[4 * k + 1] = expectSafeInteger(c.srcOffset, `spans[${k}].srcOffset`);
    packed[4 * k + 2] = expectSafeInteger(c.dstOffset, `spans[${k}].dstOffset`);
    packed[4 * k + 3] = expectSafeInteger(c.length, `spans[${k}].length`);
    const check = c.check === undefined ? '' : expectOneOf(c.check, `spans[${k}].check`, CHECKED);
    if (check !== '') expectWhole(c.length, check, `spans[${k}].length`);
    checks[k] = CHECK_CODES[check];
  }
  const r = await withCallerStack(() => loadNative().copySpans(hash.native, dst, packed, checks));
  return { nonFinite: Array.from(r.nonFinite), holes: r.holes };
}

/** copySpans for one span. */
export async function copySpan(c: SpanCopy & { dstFd: number; hash: Sha256 }): Promise<{ nonFinite: number; holes: boolean }> {
  const r = await copySpans(c.hash, c.dstFd, [c]);
  return { nonFinite: r.nonFinite[0], holes: r.holes };
}
