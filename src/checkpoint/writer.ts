/**
 * Streaming output: plan the shards (every header known before any data exists), then
 * write tensors one at a time into a temporary sibling directory, hashing as we go (off the
 * main thread), fsync every file in one pass and rename the directory into place at
 * finalize. Peak memory: the tensor being written; none for tensors copied as file spans.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { DTYPE_SIZES, type TensorSpec } from './types.js';
import { CheckpointError, InternalError, ioError, openRead, q } from './errors.js';
import { checkedByteLength, IO_CHUNK } from './safetensors.js';
import { checkRelativeName, isInsideOrEqual } from './paths.js';
import { INDEX_NAME, MANIFEST_NAME, SINGLE_NAME } from './checkpoint.js';
import { registerAbortable, unregisterAbortable, type Abortable } from './cleanup.js';
import { MANIFEST_FORMAT } from './manifest.js';
import { removeDeadSiblings, tempSibling } from './leftovers.js';
import { stringifyJson } from './json.js';
import { copySpans, Sha256, type CheckedDtype } from '../native/io.js';

export const DEFAULT_MAX_SHARD_BYTES = 5e9;

export interface PlannedTensor {
  name: string;
  dtype: TensorSpec['dtype'];
  shape: number[];
  byteLength: number;
  /** Offsets relative to the data section, as in the header. */
  begin: number;
  end: number;
}

export interface PlannedShard {
  /** File name inside the output directory. */
  file: string;
  /** The 8-byte length prefix plus the padded header JSON. */
  header: Buffer;
  tensors: PlannedTensor[];
  dataBytes: number;
  /** header.length + dataBytes. */
  fileBytes: number;
}

export interface ShardIndex {
  metadata: { total_size: number };
  weight_map: Record<string, string>;
}

export interface ShardPlan {
  shards: PlannedShard[];
  /** Sum of tensor bytes (the index's metadata.total_size). */
  totalSize: number;
  /** Sum of shard file sizes. */
  totalFileBytes: number;
  /** The index to write when there is more than one shard, else null. */
  index: ShardIndex | null;
  /** Every tensor in write order with its shard number. */
  order: { shard: number; tensor: PlannedTensor }[];
}

/** Encode a safetensors header: length prefix + JSON padded with spaces to a multiple of 8. */
export function encodeHeader(tensors: readonly PlannedTensor[], metadata: Record<string, string> | null = { format: 'pt' }): Buffer {
  const parts: string[] = [];
  if (metadata !== null) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  for (const t of tensors) {
    parts.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`);
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  const out = Buffer.alloc(8 + json.length + pad, 0x20);
  out.writeBigUInt64LE(BigInt(json.length + pad), 0);
  json.copy(out, 8);
  return out;
}

export function shardFileName(i: number, n: number): string {
  if (n === 1) return SINGLE_NAME;
  const w = Math.max(5, String(n).length);
  return `model-${String(i + 1).padStart(w, '0')}-of-${String(n).padStart(w, '0')}.safetensors`;
}

/**
 * Assign tensors, in order, to shards of at most `maxShardBytes` tensor bytes (a tensor
 * larger than that gets a shard of its own), and compute every header.
 */
export function planShards(specs: readonly TensorSpec[], maxShardBytes: number = DEFAULT_MAX_SHARD_BYTES): ShardPlan {
  if (!(maxShardBytes > 0) || !Number.isFinite(maxShardBytes)) throw new InternalError(`maxShardBytes must be a positive number, got ${maxShardBytes}`);
  const names = new Set<string>();
  const groups: PlannedTensor[][] = [[]];
  let cur = 0;
  let totalSize = 0;
  for (const s of specs) {
    if (s.name === '__metadata__' || s.name.length === 0) throw new InternalError(`invalid tensor name ${q(s.name)}`);
    if (names.has(s.name)) throw new InternalError(`tensor ${q(s.name)} planned twice`);
    names.add(s.name);
    if (!Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s.dtype)) throw new InternalError(`tensor ${q(s.name)}: unknown dtype ${q(String(s.dtype))}`);
    if (!Array.isArray(s.shape) || s.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new InternalError(`tensor ${q(s.name)}: invalid shape ${JSON.stringify(s.shape)}`);
    const bytes = checkedByteLength(s.dtype, s.shape);
    if (bytes === null) throw new InternalError(`tensor ${q(s.name)}: size overflows 2^53`);
    const g = groups[groups.length - 1];
    if (g.length > 0 && cur + bytes > maxShardBytes) {
      groups.push([]);
      cur = 0;
    }
    const gg = groups[groups.length - 1];
    gg.push({ name: s.name, dtype: s.dtype, shape: [...s.shape], byteLength: bytes, begin: cur, end: cur + bytes });
    cur += bytes;
    totalSize += bytes;
  }
  const n = groups.length;
  const shards: PlannedShard[] = groups.map((tensors, i) => {
    const header = encodeHeader(tensors);
    const dataBytes = tensors.reduce((a, t) => a + t.byteLength, 0);
    return { file: shardFileName(i, n), header, tensors, dataBytes, fileBytes: header.length + dataBytes };
  });
  let index: ShardIndex | null = null;
  if (n > 1) {
    const wm: Record<string, string> = {};
    const entries: [string, string][] = [];
    for (const s of shards) for (const t of s.tensors) entries.push([t.name, s.file]);
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [k, v] of entries) wm[k] = v;
    index = { metadata: { total_size: totalSize }, weight_map: wm };
  }
  const order = shards.flatMap((s, i) => s.tensors.map((tensor) => ({ shard: i, tensor })));
  return { shards, totalSize, totalFileBytes: shards.reduce((a, s) => a + s.fileBytes, 0), index, order };
}

/** Serialize an index (or any object) as Python's json.dumps(indent=2) + newline would. */
export function indexJson(index: ShardIndex): string {
  // weight_map keys are already sorted; build the text by hand so that integer-like
  // tensor names keep that order (JSON.stringify would move them first).
  const wm = Object.keys(index.weight_map).map((k) => `    ${JSON.stringify(k)}: ${JSON.stringify(index.weight_map[k])}`);
  return `{\n  "metadata": {\n    "total_size": ${index.metadata.total_size}\n  },\n  "weight_map": {\n${wm.join(',\n')}\n  }\n}\n`;
}

/** How the writer opens files (a test seam to inject failures such as ENOSPC). */
export type OpenFile = (file: string, flags: string) => Promise<FileHandle>;

export interface WriterOptions {
  /** The input checkpoint directory: the output may not be inside it, nor it inside the output. */
  inputDir?: string;
  /** Replace an existing output (only a lesa output or an empty directory), at finalize. */
  force?: boolean;
  maxShardBytes?: number;
  /** Every output tensor, in write order. */
  specs: readonly TensorSpec[];
  /** Test seam. */
  openFile?: OpenFile;
}

/** One tensor to copy from a span of an open file (Checkpoint.span gives them). */
export interface TensorCopy {
  name: string;
  src: { fd: number; start: number; byteLength: number };
  check?: CheckedDtype;
}

export interface FinalizeResult {
  dir: string;
  files: Record<string, string>;
}

type State = 'open' | 'finalized' | 'aborted';

async function exists(p: string): Promise<fs.Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError(e, p, p);
  }
}

/** realpath of a path that may not exist yet: realpath of its deepest existing ancestor + the rest. */
async function realpathLoose(p: string): Promise<string> {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      const r = await fsp.realpath(cur);
      return path.join(r, ...rest.reverse());
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw ioError(e, cur, cur);
      const parent = path.dirname(cur);
      if (parent === cur) return abs;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

function human(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
  return `${x.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

export class CheckpointWriter implements Abortable {
  readonly plan: ShardPlan;
  /** Final output directory (absolute, parent resolved). */
  readonly outDir: string;
  /** Temporary directory being written. */
  readonly tmpDir: string;
  private readonly force: boolean;
  private readonly openFile: OpenFile;
  private state: State = 'open';
  private next = 0;
  private shard = -1;
  private fh: FileHandle | null = null;
  private hash: Sha256 | null = null;
  /** The open shard has all-zero spans left unwritten: it is sized when closed. */
  private holes = false;
  private shardBytesDone = 0;
  private readonly hashes = new Map<string, string>();
  private readonly reserved = new Set<string>();

  private constructor(outDir: string, tmpDir: string, plan: ShardPlan, force: boolean, openFile: OpenFile) {
    this.outDir = outDir;
    this.tmpDir = tmpDir;
    this.plan = plan;
    this.force = force;
    this.openFile = openFile;
    for (const s of plan.shards) this.reserved.add(s.file);
    this.reserved.add(INDEX_NAME);
    this.reserved.add(MANIFEST_NAME);
  }

  /** Check the output location, create the temporary directory, register for cleanup. */
  static async create(outDir: string, opts: WriterOptions): Promise<CheckpointWriter> {
    const plan = planShards(opts.specs, opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
    const outReal = await realpathLoose(outDir);
    const base = path.basename(outReal);
    if (base === '' || outReal === path.parse(outReal).root) {
      throw new CheckpointError('OutputExists', `${outDir}: cannot write a checkpoint over the filesystem root; choose a new directory`, { file: outDir });
    }
    if (opts.inputDir !== undefined) {
      const inReal = await realpathLoose(opts.inputDir);
      if (isInsideOrEqual(outReal, inReal)) {
        throw new CheckpointError('OutputInsideInput', `${outReal}: the output is ${outReal === inReal ? 'the input directory' : `inside the input directory ${inReal}`}; lesa never writes into its input: choose an output outside it`, { file: outReal });
      }
      if (isInsideOrEqual(inReal, outReal)) {
        throw new CheckpointError('InputInsideOutput', `${outReal}: the input ${inReal} is inside this output directory, which would be replaced; choose another output`, { file: outReal });
      }
    }
    const st = await exists(outReal);
    if (st !== null) {
      if (!opts.force) {
        throw new CheckpointError('OutputExists', `${outReal}: already exists; choose a new directory or pass --force to replace it`, { file: outReal });
      }
      if (!st.isDirectory()) {
        throw new CheckpointError('OutputExists', `${outReal}: exists and is not a directory; lesa only replaces a directory it wrote, even with --force: remove it yourself`, { file: outReal });
      }
      let names: string[];
      try {
        names = await fsp.readdir(outReal);
      } catch (e) {
        throw ioError(e, outReal, outReal);
      }
      if (names.length > 0 && !names.includes(MANIFEST_NAME)) {
        throw new CheckpointError('OutputExists', `${outReal}: exists and is not a lesa output (no ${MANIFEST_NAME}); lesa does not delete it even with --force: remove it yourself or choose another directory`, { file: outReal });
      }
    }
    const parent = path.dirname(outReal);
    const leftovers = await removeDeadSiblings(outReal);
    const tmpDir = tempSibling(outReal, 'tmp');
    try {
      await fsp.mkdir(parent, { recursive: true });
      await fsp.mkdir(tmpDir);
    } catch (e) {
      throw ioError(e, `${tmpDir}: creating the temporary output directory`, tmpDir);
    }
    const w = new CheckpointWriter(outReal, tmpDir, plan, opts.force ?? false, opts.openFile ?? ((f, fl) => fsp.open(f, fl)));
    w.removedLeftovers = leftovers;
    registerAbortable(w);
    return w;
  }

  /** Temporary siblings of killed earlier runs that create() removed. */
  removedLeftovers: string[] = [];

  /** Tensors written so far (for progress). */
  get tensorsWritten(): number {
    return this.next;
  }

  private busy = false;

  private checkOpen(op: string): void {
    if (this.state !== 'open') throw new InternalError(`CheckpointWriter.${op} after ${this.state === 'finalized' ? 'finalize' : 'abort'} (${this.outDir})`);
    if (this.busy) throw new InternalError(`CheckpointWriter.${op} while another call is running: await each call (${this.outDir})`);
  }

  /** Run one public operation; calls must not overlap (the writer streams in plan order). */
  private async exclusive<T>(op: string, fn: () => Promise<T>): Promise<T> {
    this.checkOpen(op);
    this.busy = true;
    try {
      return await fn();
    } finally {
      this.busy = false;
    }
  }

  /** Turn an I/O failure into a user error, after removing the temporary directory. */
  private async fail(e: unknown, what: string, file: string): Promise<never> {
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    await this.abort();
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      const needed = this.plan.totalFileBytes - this.shardBytesDone;
      const dir = path.dirname(this.outDir);
      throw new CheckpointError(
        'DiskFull',
        `${dir}: the disk is full while writing ${what}; at least ${needed} more bytes (${human(needed)}) are needed for the weights, ${this.plan.totalFileBytes} bytes (${human(this.plan.totalFileBytes)}) in all; free space there or choose another output directory (the partial output was removed)`,
        { file, cause: e },
      );
    }
    throw ioError(e, `${file}: writing ${what} (the partial output was removed)`, file);
  }

  private async writeAt(fh: FileHandle, bytes: Uint8Array, pos: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const n = Math.min(IO_CHUNK, bytes.length - done);
      const r = await fh.write(bytes, done, n, pos + done);
      if (r.bytesWritten <= 0) {
        const err = new Error('write returned 0 bytes') as NodeJS.ErrnoException;
        err.code = 'ENOSPC';
        throw err;
      }
      done += r.bytesWritten;
    }
  }

  /** Write `bytes` at `pos` of the open shard while the hash takes them on another thread. */
  private async writeHashed(bytes: Uint8Array, pos: number, what: string, file: string): Promise<void> {
    const hashed = this.hash!.update(bytes);
    try {
      await this.writeAt(this.fh!, bytes, pos);
    } catch (e) {
      await hashed.catch(() => undefined);
      return this.fail(e, what, file);
    }
    await hashed;
  }

  private async openShard(i: number): Promise<void> {
    const s = this.plan.shards[i];
    const file = path.join(this.tmpDir, s.file);
    try {
      this.fh = await this.openFile(file, 'wx');
    } catch (e) {
      return this.fail(e, `the header of ${s.file}`, file);
    }
    this.hash = new Sha256();
    this.holes = false;
    this.shard = i;
    await this.writeHashed(s.header, 0, `the header of ${s.file}`, file);
    this.shardBytesDone += s.header.length;
  }

  /** Close the shard (its fsync comes in finalize's single pass). */
  private async closeShard(): Promise<void> {
    const s = this.plan.shards[this.shard];
    const file = path.join(this.tmpDir, s.file);
    try {
      if (this.holes) await this.fh!.truncate(s.fileBytes);
      await this.fh!.close();
    } catch (e) {
      return this.fail(e, s.file, file);
    }
    this.fh = null;
    this.hashes.set(s.file, this.hash!.digest());
    this.hash = null;
  }

  /** Append the next tensor of the plan; `bytes` must be exactly its little-endian data. */
  async writeTensor(name: string, bytes: Uint8Array): Promise<void> {
    return this.exclusive('writeTensor', () => this.writeTensorNow(name, bytes));
  }

  /** Step `at` of the plan, which must be `name` with `byteLength` bytes. */
  private expectStep(op: string, at: number, name: string, byteLength: number): ShardPlan['order'][number] {
    const step = this.plan.order[at];
    if (step === undefined) throw new InternalError(`${op}(${q(name)}): all ${this.plan.order.length} planned tensors are already written`);
    if (step.tensor.name !== name) throw new InternalError(`${op}(${q(name)}): expected ${q(step.tensor.name)} (tensor ${at} of the plan)`);
    if (byteLength !== step.tensor.byteLength) {
      throw new InternalError(`${op}(${q(name)}): got ${byteLength} bytes, the plan says ${step.tensor.byteLength} (${step.tensor.dtype} ${JSON.stringify(step.tensor.shape)})`);
    }
    return step;
  }

  /** The plan's next step, which must be `name` with `byteLength` bytes; its shard opened. */
  private async nextStep(op: string, name: string, byteLength: number): Promise<{ step: ShardPlan['order'][number]; shard: PlannedShard; file: string }> {
    const step = this.expectStep(op, this.next, name, byteLength);
    if (this.shard !== step.shard) await this.openShard(step.shard);
    const shard = this.plan.shards[step.shard];
    return { step, shard, file: path.join(this.tmpDir, shard.file) };
  }

  private async stepDone(step: ShardPlan['order'][number], shard: PlannedShard): Promise<void> {
    this.shardBytesDone += step.tensor.byteLength;
    this.next++;
    if (shard.tensors[shard.tensors.length - 1] === step.tensor) await this.closeShard();
  }

  private async writeTensorNow(name: string, bytes: Uint8Array): Promise<void> {
    const { step, shard, file } = await this.nextStep('writeTensor', name, bytes.length);
    await this.writeHashed(bytes, shard.header.length + step.tensor.begin, `tensor ${q(name)}`, file);
    await this.stepDone(step, shard);
  }

  /**
   * Append the next tensors of the plan as byte-for-byte copies of spans of open files,
   * through the kernel, never holding them (one native job per shard they fall in); `check`
   * counts each one's NaN/Inf on the way. Returns those counts (the caller decides what a
   * non-finite input means).
   */
  async copyTensors(items: readonly TensorCopy[]): Promise<number[]> {
    return this.exclusive('copyTensors', async () => {
      const bad: number[] = [];
      while (bad.length < items.length) {
        const first = items[bad.length];
        const { step, shard, file } = await this.nextStep('copyTensors', first.name, first.src.byteLength);
        const group = [{ item: first, step }];
        while (bad.length + group.length < items.length && this.plan.order[this.next + group.length]?.shard === step.shard) {
          const item = items[bad.length + group.length];
          group.push({ item, step: this.expectStep('copyTensors', this.next + group.length, item.name, item.src.byteLength) });
        }
        let copied;
        try {
          copied = await copySpans(this.hash!, this.fh!.fd, group.map(({ item, step: s }) => ({
            srcFd: item.src.fd, srcOffset: item.src.start, dstOffset: shard.header.length + s.tensor.begin, length: item.src.byteLength, check: item.check,
          })));
        } catch (e) {
          return this.fail(e, group.length === 1 ? `tensor ${q(first.name)}` : `tensors ${q(first.name)} to ${q(group[group.length - 1].item.name)}`, file);
        }
        if (copied.holes) this.holes = true;
        for (const [k, g] of group.entries()) {
          bad.push(copied.nonFinite[k]);
          await this.stepDone(g.step, shard);
        }
      }
      return bad;
    });
  }

  /** copyTensors for one tensor. */
  async copyTensor(name: string, src: TensorCopy['src'], check?: CheckedDtype): Promise<number> {
    return (await this.copyTensors([{ name, src, check }]))[0];
  }

  private reserve(relName: string): string {
    checkRelativeName(relName, `output file`, relName);
    if (this.reserved.has(relName)) throw new InternalError(`output file ${q(relName)} is written twice or collides with a weight/index/manifest file`);
    this.reserved.add(relName);
    return path.join(this.tmpDir, relName);
  }

  private async writeWhole(relName: string, file: string, data: Uint8Array): Promise<void> {
    try {
      await fsp.mkdir(path.dirname(file), { recursive: true });
      const fh = await this.openFile(file, 'wx');
      try {
        await this.writeAt(fh, data, 0);
      } finally {
        await fh.close().catch(() => undefined);
      }
    } catch (e) {
      return this.fail(e, relName, file);
    }
    this.hashes.set(relName, createHash('sha256').update(data).digest('hex'));
  }

  /** Write `obj` as pretty JSON (2-space indent, final newline) to `relName`; integral numbers at `floatPaths` keep a `.0`. */
  async writeJson(relName: string, obj: unknown, floatPaths?: ReadonlySet<string>): Promise<void> {
    return this.exclusive('writeJson', async () => {
      const file = this.reserve(relName);
      await this.writeWhole(relName, file, Buffer.from(stringifyJson(obj, floatPaths) + '\n', 'utf8'));
    });
  }

  /** Copy the file `srcAbs` to `relName`, streaming and hashing. */
  async copyFile(srcAbs: string, relName: string): Promise<void> {
    return this.exclusive('copyFile', () => this.copyFileNow(srcAbs, relName));
  }

  private async copyFileNow(srcAbs: string, relName: string): Promise<void> {
    const file = this.reserve(relName);
    const src = await openRead(srcAbs);
    try {
      const st = await src.stat();
      if (!st.isFile()) throw new CheckpointError('NotAFile', `${srcAbs}: not a regular file; cannot copy it`, { file: srcAbs });
      await fsp.mkdir(path.dirname(file), { recursive: true }).catch((e) => this.fail(e, relName, file));
      let dst: FileHandle;
      try {
        dst = await this.openFile(file, 'wx');
      } catch (e) {
        return await this.fail(e, relName, file);
      }
      const h = createHash('sha256');
      const buf = Buffer.allocUnsafeSlow(Math.min(16 << 20, Math.max(1, st.size)));
      let pos = 0;
      try {
        for (;;) {
          let r;
          try {
            r = await src.read(buf, 0, buf.length, pos);
          } catch (e) {
            throw ioError(e, srcAbs, srcAbs);
          }
          if (r.bytesRead === 0) break;
          const chunk = buf.subarray(0, r.bytesRead);
          try {
            await this.writeAt(dst, chunk, pos);
          } catch (e) {
            return await this.fail(e, relName, file);
          }
          h.update(chunk);
          pos += r.bytesRead;
        }
      } finally {
        await dst.close().catch(() => undefined);
      }
      this.hashes.set(relName, h.digest('hex'));
    } finally {
      await src.close().catch(() => undefined);
    }
  }

  /**
   * Write the index (when sharded) and lesa.json (`manifest`, typically a ManifestInput,
   * plus `files`: the sha256 of every file), fsync,
   * and rename the temporary directory into place (replacing an old output only now).
   */
  async finalize(manifest: Readonly<Record<string, unknown>>): Promise<FinalizeResult> {
    return this.exclusive('finalize', () => this.finalizeNow(manifest));
  }

  private async finalizeNow(manifest: Readonly<Record<string, unknown>>): Promise<FinalizeResult> {
    if (this.next !== this.plan.order.length) {
      throw new InternalError(`finalize(): ${this.plan.order.length - this.next} planned tensors were not written (next: ${q(this.plan.order[this.next].tensor.name)})`);
    }
    // Shards without tensors (only when there are no tensors at all) still get their file.
    for (let i = 0; i < this.plan.shards.length; i++) {
      if (!this.hashes.has(this.plan.shards[i].file)) {
        if (this.plan.shards[i].tensors.length > 0) throw new InternalError(`shard ${this.plan.shards[i].file} is incomplete`);
        await this.openShard(i);
        await this.closeShard();
      }
    }
    if (this.plan.index !== null) {
      await this.writeWhole(INDEX_NAME, path.join(this.tmpDir, INDEX_NAME), Buffer.from(indexJson(this.plan.index), 'utf8'));
    }
    const files: Record<string, string> = {};
    for (const k of [...this.hashes.keys()].sort()) files[k] = this.hashes.get(k)!;
    const full = { format: MANIFEST_FORMAT, ...manifest, files };
    await this.writeWhole(MANIFEST_NAME, path.join(this.tmpDir, MANIFEST_NAME), Buffer.from(JSON.stringify(full, null, 2) + '\n', 'utf8'));

    await this.syncAll(Object.keys(files));

    const parent = path.dirname(this.outDir);
    let old: string | null = null;
    try {
      await fsyncDir(this.tmpDir);
      const st = await exists(this.outDir);
      if (st !== null) {
        if (!this.force) {
          throw new CheckpointError('OutputExists', `${this.outDir}: appeared while lesa was writing; choose a new directory or pass --force`, { file: this.outDir });
        }
        old = path.join(parent, `.${path.basename(this.outDir)}.lesa-old-${process.pid}-${randomBytes(4).toString('hex')}`);
        await fsp.rename(this.outDir, old);
      }
      await fsp.rename(this.tmpDir, this.outDir);
      await fsyncDir(parent);
    } catch (e) {
      if (old !== null) await fsp.rename(old, this.outDir).catch(() => undefined);
      if (e instanceof CheckpointError) {
        await this.abort();
        throw e;
      }
      return this.fail(e, `the output directory`, this.outDir);
    }
    this.state = 'finalized';
    unregisterAbortable(this);
    if (old !== null) await fsp.rm(old, { recursive: true, force: true }).catch(() => undefined);
    return { dir: this.outDir, files };
  }

  /** The one fsync pass: every written file at once, so their writeback overlaps. */
  private async syncAll(relNames: string[]): Promise<void> {
    await Promise.all([...relNames, MANIFEST_NAME].map(async (rel) => {
      const file = path.join(this.tmpDir, rel);
      try {
        const fh = await fsp.open(file, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close().catch(() => undefined);
        }
      } catch (e) {
        await this.fail(e, rel, file);
      }
    }));
  }

  /** Remove the temporary directory and everything in it. Never throws; idempotent. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    unregisterAbortable(this);
    const fh = this.fh;
    this.fh = null;
    if (fh !== null) await fh.close().catch(() => undefined);
    await fsp.rm(this.tmpDir, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
  }

  /** abort(), synchronously, for signal and exit handlers. */
  abortSync(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    unregisterAbortable(this);
    try {
      fs.rmSync(this.tmpDir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
