/**
 * openCheckpoint: validate a Hugging Face checkpoint directory (config, index, every
 * safetensors header) without reading any tensor data, and give lazy access to tensors.
 * Rules: docs/safetensors.md. Nothing is ever written into the input directory.
 */
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import * as path from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { isFloatDType, type Checkpoint, type DType, type ModelConfig, type TensorRef, type TensorSpan } from './types.js';
import { toF32 } from '../native/index.js';
import { CheckpointError, InternalError, ioError, q } from './errors.js';
import { parseStrictJson, JsonSyntaxError, type Json } from './json.js';
import { readExactly, readSafetensorsFile, type SafetensorsHeader } from './safetensors.js';
import { checkRelativeName, resolveInside } from './paths.js';

export const INDEX_NAME = 'model.safetensors.index.json';
export const SINGLE_NAME = 'model.safetensors';
export const CONFIG_NAME = 'config.json';
export const MANIFEST_NAME = 'lesa.json';
/** Largest config.json / index accepted. */
const MAX_JSON_BYTES = 100_000_000;

/** Extensions of weight files in any format: never carried over as auxiliary files. */
const WEIGHT_EXT = /\.(safetensors|bin|pt|pth|ckpt|pkl|pickle|gguf|ggml|h5|msgpack|onnx|ot|npz|npy|tflite|mlmodel|pb|nemo)$/i;
/** Pickle weight files: refused with a conversion hint when they are all there is. */
const PICKLE = /^(pytorch_model.*\.bin|.*\.(pt|pth|ckpt|pkl|pickle|bin))$/i;

/** A checkpoint as opened by lesa: the shared interface plus the weight file list. */
export interface OpenedCheckpoint extends Checkpoint {
  /** Weight files (relative names) in load order. */
  weightFiles: string[];
}

interface WeightFile {
  rel: string;
  abs: string;
  stat: Stats;
  header: SafetensorsHeader;
}

async function readJsonFile(abs: string, kind: 'InvalidConfig' | 'InvalidIndex', label: string, floatPaths?: Set<string>): Promise<Json> {
  let st: Stats;
  try {
    st = await fsp.stat(abs);
  } catch (e) {
    throw ioError(e, abs, abs);
  }
  if (!st.isFile()) throw new CheckpointError('NotAFile', `${abs}: ${label} is not a regular file`, { file: abs });
  if (st.size > MAX_JSON_BYTES) throw new CheckpointError(kind, `${abs}: ${label} is ${st.size} bytes, above the ${MAX_JSON_BYTES}-byte cap`, { file: abs });
  let text: string;
  try {
    const bytes = await fsp.readFile(abs);
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    if (e instanceof TypeError) throw new CheckpointError(kind, `${abs}: ${label} is not valid UTF-8; fix or re-download it`, { file: abs });
    throw ioError(e, abs, abs);
  }
  try {
    return parseStrictJson(text.replace(/^\uFEFF/, ''), { maxDepth: 256, floatPaths });
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new CheckpointError(kind, `${abs}: ${label} is not valid JSON (${e.message}); fix or re-download it`, { file: abs });
    throw e;
  }
}

/** Convert the strict parser's Maps into plain objects (for config.json, which callers edit). */
function toPlain(v: Json): unknown {
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) {
      if (k === '__proto__') Object.defineProperty(o, k, { value: toPlain(x), enumerable: true, writable: true, configurable: true });
      else o[k] = toPlain(x);
    }
    return o;
  }
  if (Array.isArray(v)) return v.map(toPlain);
  return v;
}

async function loadWeightFile(realDir: string, rel: string, where: string): Promise<WeightFile> {
  checkRelativeName(rel, where, path.join(realDir, rel));
  const abs = await resolveInside(realDir, rel, where);
  const { header, stat } = await readSafetensorsFile(abs);
  return { rel, abs, stat, header };
}

/** Open and validate the checkpoint in `dir`. No tensor data is read. */
export async function openCheckpoint(dir: string): Promise<OpenedCheckpoint> {
  let realDir: string;
  try {
    realDir = await fsp.realpath(dir);
    const st = await fsp.stat(realDir);
    if (!st.isDirectory()) throw new CheckpointError('MissingInput', `${dir}: not a directory; give the checkpoint directory (the one holding config.json)`, { file: dir });
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new CheckpointError('MissingInput', `${dir}: no such directory; give the checkpoint directory (the one holding config.json)`, { file: dir });
    throw ioError(e, dir, dir);
  }

  let entries: string[];
  try {
    entries = (await fsp.readdir(realDir)).sort();
  } catch (e) {
    throw ioError(e, realDir, realDir);
  }
  const has = new Set(entries);

  // config.json
  if (!has.has(CONFIG_NAME)) {
    throw new CheckpointError('MissingConfig', `${realDir}: no ${CONFIG_NAME}; lesa needs the model config (copy it from the model's repository)`, { file: path.join(realDir, CONFIG_NAME) });
  }
  const configAbs = await resolveInside(realDir, CONFIG_NAME, realDir);
  const configFloats = new Set<string>();
  const configJson = await readJsonFile(configAbs, 'InvalidConfig', CONFIG_NAME, configFloats);
  if (!(configJson instanceof Map)) {
    throw new CheckpointError('InvalidConfig', `${configAbs}: ${CONFIG_NAME} is not a JSON object; fix or re-download it`, { file: configAbs });
  }
  const config = toPlain(configJson) as ModelConfig;

  // weight files
  const files: WeightFile[] = [];
  let weightMap: Map<string, string> | null = null;
  if (has.has(INDEX_NAME)) {
    const indexAbs = await resolveInside(realDir, INDEX_NAME, realDir);
    const idx = await readJsonFile(indexAbs, 'InvalidIndex', INDEX_NAME);
    const bad = (why: string) => new CheckpointError('InvalidIndex', `${indexAbs}: ${why}; fix or re-download the index`, { file: indexAbs });
    if (!(idx instanceof Map)) throw bad('the index is not a JSON object');
    const wm = idx.get('weight_map');
    if (!(wm instanceof Map)) throw bad('"weight_map" is missing or not an object');
    weightMap = new Map();
    const order: string[] = [];
    for (const [t, f] of wm) {
      if (typeof f !== 'string') throw bad(`weight_map[${q(t)}] is not a string`);
      checkRelativeName(f, `${indexAbs}: weight_map[${q(t)}]`, indexAbs);
      weightMap.set(t, f);
      if (!order.includes(f)) order.push(f);
    }
    if (weightMap.size === 0) throw bad('weight_map is empty');
    for (const rel of order) files.push(await loadWeightFile(realDir, rel, `${indexAbs}: weight_map file ${q(rel)}`));
  } else if (has.has(SINGLE_NAME)) {
    files.push(await loadWeightFile(realDir, SINGLE_NAME, realDir));
  } else {
    const st = entries.filter((e) => e.endsWith('.safetensors'));
    if (st.length === 0) {
      const pickles = entries.filter((e) => PICKLE.test(e));
      if (pickles.length > 0) {
        throw new CheckpointError('PickleRefused', `${realDir}: only pickle weights (${pickles.slice(0, 3).join(', ')}${pickles.length > 3 ? ', …' : ''}); lesa never unpickles: convert them with safetensors (python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('${realDir}').save_pretrained('OUT', safe_serialization=True)")`, { file: realDir });
      }
      throw new CheckpointError('NoWeights', `${realDir}: no weight files (no ${INDEX_NAME}, ${SINGLE_NAME} or *.safetensors); give a Hugging Face safetensors checkpoint directory`, { file: realDir });
    }
    for (const rel of st) files.push(await loadWeightFile(realDir, rel, realDir));
  }

  // Distinct real files (two names for one file would double every tensor).
  const seenReal = new Map<string, string>();
  for (const f of files) {
    const prev = seenReal.get(f.abs);
    if (prev !== undefined) {
      throw new CheckpointError('IndexMismatch', `${realDir}: ${q(prev)} and ${q(f.rel)} are the same file; fix the index`, { file: f.abs });
    }
    seenReal.set(f.abs, f.rel);
  }

  // Tensors, index consistency, duplicates.
  const tensors = new Map<string, TensorRef>();
  const fileOf = new Map<string, WeightFile>();
  let weightBytes = 0;
  for (const f of files) {
    weightBytes += f.stat.size;
    for (const e of f.header.tensors) {
      const prev = fileOf.get(e.name);
      if (prev !== undefined) {
        throw new CheckpointError('DuplicateTensor', `tensor ${q(e.name)} is in both ${prev.abs} and ${f.abs}; remove the stray file or add ${INDEX_NAME}`, { file: f.abs, tensor: e.name });
      }
      if (weightMap !== null) {
        const named = weightMap.get(e.name);
        if (named !== f.rel) {
          throw new CheckpointError('IndexMismatch', `${f.abs}: tensor ${q(e.name)} is in this file but ${named === undefined ? 'not in the index weight_map' : `the index puts it in ${q(named)}`}; fix or re-download the index`, { file: f.abs, tensor: e.name });
        }
      }
      fileOf.set(e.name, f);
      tensors.set(e.name, {
        name: e.name,
        dtype: e.dtype,
        shape: e.shape,
        file: f.abs,
        start: f.header.dataStart + e.begin,
        byteLength: e.end - e.begin,
      });
    }
  }
  if (weightMap !== null) {
    for (const [t, rel] of weightMap) {
      if (!tensors.has(t)) {
        throw new CheckpointError('IndexMismatch', `${path.join(realDir, rel)}: the index puts tensor ${q(t)} in this file but its header does not hold it; fix or re-download the checkpoint`, { file: path.join(realDir, rel), tensor: t });
      }
    }
  }

  // Auxiliary files: top-level regular files that are not weights, config, index or manifest.
  const auxFiles: string[] = [];
  for (const name of entries) {
    if (name.startsWith('.')) continue;
    if (name === CONFIG_NAME || name === INDEX_NAME || name === MANIFEST_NAME) continue;
    if (WEIGHT_EXT.test(name) || name.endsWith('.index.json')) continue;
    let st: Stats;
    try {
      st = await fsp.stat(path.join(realDir, name));
    } catch {
      continue; // dangling symlink: nothing to carry
    }
    if (!st.isFile()) continue;
    await resolveInside(realDir, name, realDir);
    auxFiles.push(name);
  }

  return new CheckpointImpl(realDir, config, tensors, auxFiles, weightBytes, files, configFloats);
}

class CheckpointImpl implements OpenedCheckpoint {
  readonly weightFiles: string[];
  private readonly handles = new Map<string, Promise<FileHandle>>();
  private readonly stats = new Map<string, Stats>();
  private closed = false;

  constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly tensors: Map<string, TensorRef>,
    readonly auxFiles: string[],
    readonly weightBytes: number,
    files: WeightFile[],
    readonly configFloats: ReadonlySet<string>,
  ) {
    this.weightFiles = files.map((f) => f.rel);
    for (const f of files) this.stats.set(f.abs, f.stat);
  }

  private ref(name: string): TensorRef {
    const t = this.tensors.get(name);
    if (t === undefined) {
      throw new CheckpointError('MissingTensor', `${this.dir}: no tensor ${q(name)}; check the model family and the tensor names (lesa inspect lists them)`, { tensor: name });
    }
    return t;
  }

  private handle(file: string): Promise<FileHandle> {
    if (this.closed) throw new InternalError(`checkpoint ${this.dir} read after close()`);
    let h = this.handles.get(file);
    if (h === undefined) {
      h = (async () => {
        let fh: FileHandle;
        try {
          fh = await fsp.open(file, 'r');
        } catch (e) {
          throw ioError(e, file, file);
        }
        const was = this.stats.get(file)!;
        const now = await fh.stat();
        if (now.ino !== was.ino || now.dev !== was.dev || now.size !== was.size || now.mtimeMs !== was.mtimeMs) {
          await fh.close().catch(() => undefined);
          throw new CheckpointError('FileChanged', `${file}: changed since its header was validated; do not modify the input while lesa runs`, { file });
        }
        return fh;
      })();
      // A failed open is not cached: the next read retries (and fails again, with its message).
      h.catch(() => this.handles.delete(file));
      this.handles.set(file, h);
    }
    return h;
  }

  async span(name: string): Promise<TensorSpan> {
    const t = this.ref(name);
    const fh = await this.handle(t.file);
    return { fd: fh.fd, file: t.file, start: t.start, byteLength: t.byteLength };
  }

  async readRaw(name: string): Promise<Buffer> {
    const t = this.ref(name);
    // Plans refuse whole-tensor work on such tensors up front (src/plan/whole-tensors.ts).
    if (t.byteLength > bufferConstants.MAX_LENGTH) throw new InternalError(`tensor ${q(name)} is ${t.byteLength} bytes, above Node's ${bufferConstants.MAX_LENGTH}-byte buffer cap; it can only be copied as a span`);
    const buf = Buffer.allocUnsafeSlow(t.byteLength);
    if (t.byteLength === 0) return buf;
    const fh = await this.handle(t.file);
    await readExactly(fh, buf, t.start, t.file);
    return buf;
  }

  async readF32(name: string): Promise<Float32Array> {
    const t = this.ref(name);
    const dt: DType = t.dtype;
    if (!isFloatDType(dt)) {
      throw new CheckpointError('UnsupportedDtype', `${t.file}: tensor ${q(name)} is ${dt}; only F32, F16 and BF16 tensors can be computed with`, { file: t.file, tensor: name });
    }
    const raw = await this.readRaw(name);
    // The addon loads on first use, so readRaw never needs it.
    return toF32(raw, dt);
  }

  async close(): Promise<void> {
    this.closed = true;
    const hs = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(hs.map(async (h) => {
      try {
        await (await h).close();
      } catch {
        /* failed open or already closed */
      }
    }));
  }
}
