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

  const parseNumber = (): number => {
    const m = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = i;
    const r = m.exec(text);
    if (!r) return fail('bad number');
    if (integersOnly && (r[1] !== undefined || r[2] !== undefined)) fail('non-integer number');
    i += r[0].length;
    const v = Number(r[0]);
    if (!Number.isFinite(v)) fail('number out of range');
    return v;
  };

  const parseValue = (depth: number): Json => {
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
        obj.set(key, parseValue(depth + 1));
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
        arr.push(parseValue(depth + 1));
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
    if (c === '-' || (c >= '0' && c <= '9')) return parseNumber();
    return fail('unexpected character');
  };

  const v = parseValue(0);
  skipWs();
  if (i !== n) fail('trailing characters');
  return v;
}

export function isJsonObject(v: Json): v is Map<string, Json> {
  return v instanceof Map;
}
