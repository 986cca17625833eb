/** Argument checks for the native API; messages follow "Expected X for name but received Y". */

export const MAX_DIM = 2 ** 31 - 1; // BLAS/LAPACK take 32-bit int dimensions

export function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name} of length ${(v as unknown as { length?: number }).length ?? v.byteLength}`;
  if (Array.isArray(v)) return `Array of length ${v.length}`;
  return typeof v === 'object' ? `object ${v.constructor?.name ?? 'Object'}` : `${typeof v} ${String(v)}`;
}

function fail(kind: 'type' | 'range', expected: string, name: string, v: unknown): never {
  const message = `Expected ${expected} for ${name} but received ${describe(v)}`;
  throw kind === 'type' ? new TypeError(message) : new RangeError(message);
}

function expectNumber(v: unknown, name: string, expected: string): number {
  if (typeof v !== 'number') fail('type', expected, name, v);
  return v;
}

/** Integer in [1, 2^31-1]. */
export function expectDim(v: unknown, name: string, max = MAX_DIM): number {
  const expected = `positive integer${max < Number.MAX_SAFE_INTEGER ? ` <= ${max}` : ''}`;
  const n = expectNumber(v, name, expected);
  if (!Number.isInteger(n) || n < 1 || n > max) fail('range', expected, name, v);
  return n;
}

export function expectSafeInteger(v: unknown, name: string, min = 0): number {
  const expected = `integer >= ${min}`;
  const n = expectNumber(v, name, expected);
  if (!Number.isSafeInteger(n) || n < min) fail('range', expected, name, v);
  return n;
}

export function expectFinite(v: unknown, name: string, min = -Infinity, max = Infinity): number {
  const expected = `finite number${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` <= ${max}` : ''}`;
  const n = expectNumber(v, name, expected);
  if (!Number.isFinite(n) || n < min || n > max) fail('range', expected, name, v);
  return n;
}

type TypedArrayCtor<T> = { new (n: number): T; name: string };

function expectTyped<T extends ArrayLike<number>>(ctor: TypedArrayCtor<T>, v: unknown, name: string, length?: number, how?: string): T {
  if (!(v instanceof (ctor as unknown as Function))) fail('type', ctor.name, name, v);
  const arr = v as T;
  if (length !== undefined && arr.length !== length) {
    fail('range', `${ctor.name} of length ${length}${how ? ` (${how})` : ''}`, name, v);
  }
  return arr;
}

export const expectF32 = (v: unknown, name: string, length?: number, how?: string) => expectTyped(Float32Array, v, name, length, how);
export const expectF64 = (v: unknown, name: string, length?: number, how?: string) => expectTyped(Float64Array, v, name, length, how);
export const expectI32 = (v: unknown, name: string, length?: number, how?: string) => expectTyped(Int32Array, v, name, length, how);
export const expectU8 = (v: unknown, name: string) => expectTyped(Uint8Array, v, name);

export function expectOneOf<T extends string>(v: unknown, name: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) fail('type', `one of ${allowed.join(', ')}`, name, v);
  return v as T;
}

/** A plain options object whose keys are all known (an unknown key is a typo, not a no-op). */
export function expectOptions(v: unknown, name: string, known: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) fail('type', 'options object', name, v);
  for (const key of Object.keys(v)) {
    if (!known.includes(key)) throw new TypeError(`Unknown option ${name}.${key}; known options: ${known.join(', ')}`);
  }
  return v as Record<string, unknown>;
}

/** Length of an array of dims multiplied out, refusing products beyond typed-array range. */
export function elements(dims: number[], name: string): number {
  const n = dims.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(n)) throw new RangeError(`Size of ${name} (${dims.join('*')}) is too large`);
  return n;
}
