import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The raw addon (native/src). Callers go through ./index.ts, which validates first. */
export interface NativeBinding {
  toF32(src: Uint8Array, dst: Float32Array, dtype: string): void;
  fromF32(src: Float32Array, dst: Uint8Array, dtype: string): void;
  countNonFinite(x: Float32Array): number;
  countNonFiniteRaw(bytes: Uint8Array, dtype: string): Promise<number>;
  sha256New(): object;
  sha256Update(hash: object, bytes: Uint8Array): Promise<void>;
  sha256Digest(hash: object): string;
  copySpans(hash: object, dstFd: number, spans: Float64Array, checks: Uint8Array): Promise<{ nonFinite: Float64Array; holes: boolean }>;
  gramAccumulate(G: Float64Array, W: Float32Array, rows: number, cols: number): Promise<void>;
  eigSym(G: Float64Array, values: Float64Array, n: number): Promise<void>;
  coefficients(U: Float64Array, S: Float64Array, W: Float32Array, V: Float32Array, rows: number, rank: number, cols: number, relTol: number): Promise<void>;
  coefficientsF32(U: Float32Array, S: Float64Array, W: Float32Array, V: Float32Array, rows: number, rank: number, cols: number, relTol: number): Promise<void>;
  reconstruct(US: Float32Array, V: Float32Array, out: Float32Array, rows: number, rank: number, cols: number): Promise<void>;
  trainPredictor(opts: Record<string, unknown>): Promise<void>;
  predictRows(params: Float32Array, hidden: number, cols: number, left: Float32Array, right: Float32Array, out: Float32Array, rows: number): Promise<void>;
  setThreads(n: number): void;
  getThreads(): number;
  blasCoreName(): string;
  setScratchBytes(bytes: number): void;
}

export const NATIVE_FIX = 'apt-get install -y libopenblas-dev liblapacke-dev && npm run build:native';

/** LESA_NATIVE_ADDON overrides the location (the sanitizer build uses it). */
export function nativeAddonPath(): string {
  return process.env.LESA_NATIVE_ADDON ?? fileURLToPath(new URL('../../../native/build/lesa_native.node', import.meta.url));
}

let cached: NativeBinding | undefined;

/**
 * OpenBLAS kernel family for this CPU from /proc/cpuinfo's flags, or undefined. OpenBLAS picks
 * its kernels once, when the library loads, from the CPU model; a model its table does not know
 * (e.g. a newer Xeon behind a VM's generic "Intel(R) Xeon(R) Processor" CPUID) falls back to
 * Prescott's SSE3 kernels, 2x slower for the predictor's sgemm and slower still for dsyrk.
 */
export function blasCoreTypeFor(cpuinfo: string): string | undefined {
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo);
  if (!line) return undefined;
  const flags = new Set(line[1].trim().split(/\s+/));
  if (['avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512cd'].every((f) => flags.has(f))) return 'SkylakeX';
  if (['avx2', 'fma'].every((f) => flags.has(f))) return 'Haswell';
  return undefined;
}

/** Sets OPENBLAS_CORETYPE from the CPU's flags before OpenBLAS loads, unless the user set it. */
function chooseBlasCore(): void {
  if (process.env.OPENBLAS_CORETYPE || process.platform !== 'linux' || process.arch !== 'x64') return;
  let info: string;
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return;
  }
  const core = blasCoreTypeFor(info);
  if (core) process.env.OPENBLAS_CORETYPE = core;
}

export function loadNative(): NativeBinding {
  if (cached) return cached;
  const path = nativeAddonPath();
  chooseBlasCore();
  try {
    cached = createRequire(import.meta.url)(path) as NativeBinding;
  } catch (err) {
    throw new Error(
      `Cannot load the lesa native addon ${path}: ${(err as Error).message}\n` +
        `Fix, from the package root: ${NATIVE_FIX}`,
      { cause: err },
    );
  }
  return cached;
}

export function isNativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}

/** Native rejections carry no JavaScript stack; give them the caller's. */
export async function withCallerStack<T>(run: () => Promise<T>): Promise<T> {
  const caller = new Error();
  try {
    return await run();
  } catch (err) {
    if (err instanceof Error && caller.stack) {
      err.stack = `${err.name}: ${err.message}\n${caller.stack.split('\n').slice(2).join('\n')}`;
    }
    throw err;
  }
}
