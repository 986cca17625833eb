/**
 * Checkpoints written by hand for CLI-level tests: a tiny valid Llama (sharded in two files
 * with an index) to mutate into hostile inputs, and a larger synthetic one that takes a few
 * seconds to expand (for interrupt tests). Independent of src/checkpoint/writer.ts on purpose:
 * the bytes here are what a third party would write.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { rng as prng } from './safetensors-fixtures.js';

export interface TTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Buffer;
}

export interface TinySpec {
  config: Record<string, unknown>;
  /** Tensors per shard file, in file order. */
  shards: TTensor[][];
}

export const LAYER_SUFFIXES = [
  'input_layernorm.weight',
  'self_attn.q_proj.weight',
  'self_attn.k_proj.weight',
  'self_attn.v_proj.weight',
  'self_attn.o_proj.weight',
  'post_attention_layernorm.weight',
  'mlp.gate_proj.weight',
  'mlp.up_proj.weight',
  'mlp.down_proj.weight',
] as const;

/** Deterministic PRNG (mulberry32), the checkpoint fixtures' own. */
export { prng };

export function f32Tensor(name: string, shape: number[], fill: (i: number) => number): TTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = fill(i);
  return { name, dtype: 'F32', shape, data: Buffer.from(x.buffer, x.byteOffset, x.byteLength) };
}

export interface TinyOptions {
  layers?: number;
  hidden?: number;
  inter?: number;
  vocab?: number;
  seed?: number;
}

/** Shape of every per-layer tensor of a Llama with these sizes. */
export function layerShape(suffix: string, hidden: number, inter: number): number[] {
  if (suffix.endsWith('layernorm.weight')) return [hidden];
  if (suffix.startsWith('mlp.down')) return [hidden, inter];
  if (suffix.startsWith('mlp.')) return [inter, hidden];
  return [hidden, hidden];
}

/** A tiny valid Llama: layers 0..L/2-1 plus the embedding in shard 1, the rest plus the final norm in shard 2. */
export function tinyLlama(o: TinyOptions = {}): TinySpec {
  const L = o.layers ?? 4;
  const H = o.hidden ?? 8;
  const I = o.inter ?? 16;
  const V = o.vocab ?? 32;
  const r = prng(o.seed ?? 1234);
  const small = () => (r() - 0.5) * 0.2;
  const norm = () => 1 + (r() - 0.5) * 0.1;
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: H,
    intermediate_size: I,
    num_hidden_layers: L,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    head_dim: H / 2,
    vocab_size: V,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
  };
  const layer = (i: number) => LAYER_SUFFIXES.map((s) =>
    f32Tensor(`model.layers.${i}.${s}`, layerShape(s, H, I), s.endsWith('layernorm.weight') ? norm : small));
  const half = Math.ceil(L / 2);
  const shard1: TTensor[] = [f32Tensor('model.embed_tokens.weight', [V, H], small)];
  const shard2: TTensor[] = [];
  for (let i = 0; i < L; i++) (i < half ? shard1 : shard2).push(...layer(i));
  shard2.push(f32Tensor('model.norm.weight', [H], norm));
  return { config, shards: [shard1, shard2] };
}

/** Deep copy (tensor bytes copied too), so that a case can mutate freely. */
export function cloneSpec(s: TinySpec): TinySpec {
  return {
    config: JSON.parse(JSON.stringify(s.config)) as Record<string, unknown>,
    shards: s.shards.map((sh) => sh.map((t) => ({ ...t, shape: [...t.shape], data: Buffer.from(t.data) }))),
  };
}

export function shardName(i: number, n: number): string {
  return n === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/** Header JSON text for tensors laid out contiguously (or with the given entries verbatim). */
export function headerJson(tensors: TTensor[], metadata: Record<string, string> | null = { format: 'pt' }): string {
  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let off = 0;
  for (const t of tensors) {
    parts.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data_offsets":[${off},${off + t.data.length}]}`);
    off += t.data.length;
  }
  return `{${parts.join(',')}}`;
}

/** length prefix (u64 LE; `declared` overrides) + header text (padded to 8 with spaces) + data. */
export function rawFile(header: string, data: Buffer, declared?: bigint, pad = true): Buffer {
  let h = header;
  if (pad) while (Buffer.byteLength(h) % 8 !== 0) h += ' ';
  const hb = Buffer.from(h, 'utf8');
  const pre = Buffer.alloc(8);
  pre.writeBigUInt64LE(declared ?? BigInt(hb.length));
  return Buffer.concat([pre, hb, data]);
}

export function encodeSafetensors(tensors: TTensor[]): Buffer {
  return rawFile(headerJson(tensors), Buffer.concat(tensors.map((t) => t.data)));
}

export function indexJsonFor(s: TinySpec): Record<string, unknown> {
  const wm: Record<string, string> = {};
  let total = 0;
  s.shards.forEach((sh, i) => sh.forEach((t) => { wm[t.name] = shardName(i, s.shards.length); total += t.data.length; }));
  return { metadata: { total_size: total }, weight_map: wm };
}

/** Write config.json, the shard files and (for several shards) the index into `dir` (created). */
export async function writeSpec(dir: string, s: TinySpec, opts: { index?: boolean; aux?: boolean } = {}): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(s.config, null, 2));
  for (const [i, sh] of s.shards.entries()) await fsp.writeFile(path.join(dir, shardName(i, s.shards.length)), encodeSafetensors(sh));
  if ((opts.index ?? true) && s.shards.length > 1) {
    await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(indexJsonFor(s), null, 2));
  }
  if (opts.aux ?? true) await fsp.writeFile(path.join(dir, 'tokenizer_config.json'), '{"model_max_length": 128}\n');
}

/** Where a tensor lives in the written files: shard file, absolute byte range of its data. */
export function locate(s: TinySpec, name: string): { file: string; start: number; end: number } {
  for (const [i, sh] of s.shards.entries()) {
    const hdr = Buffer.byteLength(headerJson(sh));
    const base = 8 + hdr + ((8 - (hdr % 8)) % 8);
    let off = 0;
    for (const t of sh) {
      if (t.name === name) return { file: shardName(i, s.shards.length), start: base + off, end: base + off + t.data.length };
      off += t.data.length;
    }
  }
  throw new Error(`no tensor ${name}`);
}

/**
 * A synthetic Llama big enough that expanding it takes seconds: `layers` layers of
 * hidden×hidden (and hidden×inter) f32 linears, streamed to disk one tensor at a time,
 * one shard per layer. Returns the total weight bytes.
 */
export async function writeSyntheticLlama(dir: string, o: { layers: number; hidden: number; inter?: number; vocab?: number }): Promise<number> {
  const H = o.hidden;
  const I = o.inter ?? H;
  const V = o.vocab ?? 256;
  const L = o.layers;
  await fsp.mkdir(dir, { recursive: true });
  const r = prng(99);
  // One pseudo-random block reused with a per-tensor scale: fast to make, never constant.
  const block = new Float32Array(1 << 16);
  for (let i = 0; i < block.length; i++) block[i] = (r() - 0.5) * 0.1;
  const groups: { name: string; shape: number[] }[][] = [[{ name: 'model.embed_tokens.weight', shape: [V, H] }, { name: 'model.norm.weight', shape: [H] }]];
  for (let i = 0; i < L; i++) groups.push(LAYER_SUFFIXES.map((s) => ({ name: `model.layers.${i}.${s}`, shape: layerShape(s, H, I) })));
  const wm: Record<string, string> = {};
  let total = 0;
  for (const [g, ts] of groups.entries()) {
    const file = shardName(g, groups.length);
    const fake: TTensor[] = ts.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, data: { length: t.shape.reduce((a, b) => a * b, 4) } as unknown as Buffer }));
    const header = rawFile(headerJson(fake), Buffer.alloc(0));
    const fd = fs.openSync(path.join(dir, file), 'w');
    try {
      fs.writeSync(fd, header);
      for (const [k, t] of ts.entries()) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        const isNorm = t.shape.length === 1;
        const scale = 1 + ((g * 13 + k * 7) % 17) / 17;
        const x = new Float32Array(n);
        for (let i = 0; i < n; i++) x[i] = isNorm ? 1 + block[i & 0xffff] : block[(i + g * 131 + k * 17) & 0xffff] * scale;
        fs.writeSync(fd, new Uint8Array(x.buffer));
        wm[t.name] = file;
        total += n * 4;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: H, intermediate_size: I,
    num_hidden_layers: L, num_attention_heads: 8, num_key_value_heads: 8, vocab_size: V, tie_word_embeddings: true,
  };
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: wm }, null, 2));
  return total;
}
