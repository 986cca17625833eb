/**
 * A strict JSON parser for untrusted headers and indexes. Unlike JSON.parse it
 * - keeps key order of every object (objects are `Map`s, so "0" keys are not reordered),
 * - rejects duplicate keys,
 * - bounds nesting depth (no stack overflow on "[[[[...]]]]"),
 * - optionally rejects every number that is not a plain integer literal.
 */

export type Json = null | boolean | number | string | Json[] | Map<string, Json>;

export class JsonSyntaxError extends Error {
  constructor(message: string, readonly pos: number, readonly duplicateKey?: string) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

export interface StrictJsonOptions {
  maxDepth?: number;
  /** Reject numbers with a fraction or exponent (safetensors headers hold only integers). */
  integersOnly?: boolean;
  /** Receives the path (jsonPath) of every number written with a fraction or exponent. */
  floatPaths?: Set<string>;
}

/** Key of a value's place in a document: object keys, `*` for any array element. */
export function jsonPath(keys: readonly string[]): string {
  return JSON.stringify(keys);
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

export function parseStrictJson(text: string, opts: StrictJsonOptions = {}): Json {
  const maxDepth = opts.maxDepth ?? 32;
  const integersOnly = opts.integersOnly ?? false;
  let i = 0;
  const n = text.length;

  const fail = (msg: string, dup?: string): never => {
    throw new JsonSyntaxError(`${msg} at position ${i}`, i, dup);
  };
  const skipWs = () => {
    while (i < n && WS.has(text.charCodeAt(i))) i++;
  };

  const parseString = (): string => {
    // text[i] === '"'
    i++;
    let out = '';
    let runStart = i;
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(runStart, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        out += text.slice(runStart, i);
        i++;
        if (i >= n) fail('unterminated escape');
        const e = text[i];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            const hex = text.slice(i + 1, i + 5);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default: fail('bad escape');
        }
        i++;
        runStart = i;
        continue;
      }
      i++;
    }
  };

  const floatPaths = opts.floatPaths;
  const parseNumber = (path: readonly string[]): number => {
    const m = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = i;
    const r = m.exec(text);
    if (!r) return fail('bad number');
    if (integersOnly && (r[1] !== undefined || r[2] !== undefined)) fail('non-integer number');
    if (floatPaths && (r[1] !== undefined || r[2] !== undefined)) floatPaths.add(jsonPath(path));
    i += r[0].length;
    const v = Number(r[0]);
    if (!Number.isFinite(v)) fail('number out of range');
    return v;
  };

  const parseValue = (depth: number, path: readonly string[]): Json => {
    skipWs();
    if (i >= n) fail('unexpected end');
    const c = text[i];
    if (c === '{') {
      if (depth >= maxDepth) fail('nesting too deep');
      i++;
      const obj = new Map<string, Json>();
      skipWs();
      if (text[i] === '}') { i++; return obj; }
      for (;;) {
        skipWs();
        if (text[i] !== '"') fail('expected a key');
        const key = parseString();
        if (obj.has(key)) fail(`duplicate key ${JSON.stringify(key.slice(0, 200))}`, key);
        skipWs();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        obj.set(key, parseValue(depth + 1, floatPaths ? [...path, key] : path));
        skipWs();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return obj; }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      if (depth >= maxDepth) fail('nesting too deep');
      i++;
      const arr: Json[] = [];
      skipWs();
      if (text[i] === ']') { i++; return arr; }
      for (;;) {
        arr.push(parseValue(depth + 1, floatPaths ? [...path, '*'] : path));
        skipWs();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return arr; }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') return parseString();
    if (text.startsWith('true', i)) { i += 4; return true; }
    if (text.startsWith('false', i)) { i += 5; return false; }
    if (text.startsWith('null', i)) { i += 4; return null; }
    if (c === '-' || (c >= '0' && c <= '9')) return parseNumber(path);
    return fail('unexpected character');
  };

  const v = parseValue(0, []);
  skipWs();
  if (i !== n) fail('trailing characters');
  return v;
}

export function isJsonObject(v: Json): v is Map<string, Json> {
  return v instanceof Map;
}

/**
 * JSON.stringify(value, null, 2), except that an integral number at a path in `floatPaths`
 * keeps a fraction (30 -> 30.0): Python reads `30` as int, and transformers' typed configs
 * reject an int where the model's config.json had a float (Gemma's softcapping).
 */
export function stringifyJson(value: unknown, floatPaths: ReadonlySet<string> = new Set()): string {
  const out = (v: unknown, path: string[], indent: string): string | undefined => {
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON(): unknown }).toJSON();
    if (typeof v === 'number') {
      const text = JSON.stringify(v);
      return Number.isInteger(v) && /^-?\d+$/.test(text) && floatPaths.has(jsonPath(path)) ? `${text}.0` : text;
    }
    if (v === null || typeof v !== 'object') return JSON.stringify(v);
    const inner = indent + '  ';
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      return `[\n${v.map((x) => inner + (out(x, [...path, '*'], inner) ?? 'null')).join(',\n')}\n${indent}]`;
    }
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v)) {
      const t = out(x, [...path, k], inner);
      if (t !== undefined) parts.push(`${inner}${JSON.stringify(k)}: ${t}`);
    }
    return parts.length === 0 ? '{}' : `{\n${parts.join(',\n')}\n${indent}}`;
  };
  return out(value, [], '') ?? 'null';
}
