/**
 * Hostile inputs through the real CLI process: hundreds of malformed checkpoints built from
 * a tiny valid Llama (two shards + index), each run through `lesa expand` (average or copy;
 * a few with lesa --epochs 1) and a subset through `lesa inspect`. Every run must exit 2 with
 * one line on stderr naming the problem, within a time limit, leaving the input unchanged and
 * no output, temp or scratch directory behind. Also: existing output / --force / output
 * inside input. Also hub ids, malformed options and training data whose every row is unusable.
 *
 * Env: LESA_CLI_PARALLEL (default 2) processes at once; LESA_HOSTILE_LIMIT to run the first N cases;
 * LESA_HOSTILE_GROUP to run one group's cases (e.g. "hub id").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { classify, errorLines, exists, pool, runLesa, siblingsOf, treeDigest, type CliResult } from './helpers/cli.js';
import {
  cloneSpec, encodeSafetensors, f32Tensor, indexJsonFor, LAYER_SUFFIXES, prng, rawFile, shardName, tinyLlama, writeSpec,
  type TinySpec,
} from './helpers/tiny-checkpoint.js';

const PARALLEL = Number(process.env.LESA_CLI_PARALLEL ?? 2);
const CASE_TIMEOUT_MS = 60_000;
const L = 4;
const BASE = tinyLlama({ layers: L });
const SH = [shardName(0, 2), shardName(1, 2)];
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const mentions = (...names: string[]) => new RegExp(names.map(esc).join('|'));

type Method = 'average' | 'copy' | 'lesa';

interface Case {
  label: string;
  group: string;
  /** Build the input in `inDir` (absent); `caseDir` also holds `outside/` with a valid file. */
  build(inDir: string, caseDir: string): Promise<void>;
  /** The single stderr line must match. */
  expect: RegExp;
  /** Run `lesa inspect` too (the problem is visible without reading tensor data). */
  inspect?: boolean;
  method?: Method;
  /** Full argument list instead of the default expand command. */
  args?: (inDir: string, outDir: string) => string[];
  /** The error line is followed by the usage text (unknown command): check the first line only. */
  usageFollows?: boolean;
  /** A known defect outside this test's reach: reported in the figures, does not fail the test. */
  known?: string;
  /** Extra environment for the run (`caseDir` substituted for {case}). */
  env?: Record<string, string>;
  /** The command runs in python/lesa_py (train, eval): its line reads "lesa train: error: ..." (its command). */
  python?: boolean;
}

const KNOWN_MULTILINE = 'src/cli/main.ts passes node:util parseArgs messages through as they are: for an option value starting with "-" the message spans 3 lines';

// ---------------------------------------------------------------- building blocks

const valid = () => async (dir: string) => writeSpec(dir, BASE);

function specCase(mut: (s: TinySpec) => void, opts: { index?: boolean } = {}) {
  return async (dir: string) => {
    const s = cloneSpec(BASE);
    mut(s);
    await writeSpec(dir, s, opts);
  };
}

function fileCase(shard: number, f: (b: Buffer) => Buffer) {
  return async (dir: string) => {
    await writeSpec(dir, BASE);
    const p = path.join(dir, SH[shard]);
    await fsp.writeFile(p, f(await fsp.readFile(p)));
  };
}

/** Rewrite one shard with hand-written header entries over the original data. */
function entriesCase(shard: number, entries: (names: string[], sizes: number[]) => [string, string][], data?: (d: Buffer) => Buffer) {
  return async (dir: string) => {
    await writeSpec(dir, BASE);
    const ts = BASE.shards[shard];
    const header = `{"__metadata__":{"format":"pt"},${entries(ts.map((t) => t.name), ts.map((t) => t.data.length)).map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
    const d = Buffer.concat(ts.map((t) => t.data));
    await fsp.writeFile(path.join(dir, SH[shard]), rawFile(header, data ? data(d) : d));
  };
}

/** Header entries with contiguous offsets, optionally overriding one entry's raw JSON. */
function contiguous(names: string[], sizes: number[], override: Record<number, (begin: number, end: number) => string> = {}): [string, string][] {
  let off = 0;
  return names.map((n, i) => {
    const [b, e] = [off, off + sizes[i]];
    off = e;
    const t = BASE.shards.flat().find((x) => x.name === n)!;
    return [n, override[i] ? override[i](b, e) : `{"dtype":"F32","shape":${JSON.stringify(t.shape)},"data_offsets":[${b},${e}]}`];
  });
}

function configCase(mut: (c: Record<string, unknown>) => void) {
  return specCase((s) => mut(s.config));
}

function rawConfigCase(text: string | Buffer) {
  return async (dir: string) => {
    await writeSpec(dir, BASE);
    await fsp.writeFile(path.join(dir, 'config.json'), text);
  };
}

function indexCase(idx: unknown) {
  return async (dir: string) => {
    await writeSpec(dir, BASE);
    await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), typeof idx === 'string' ? idx : JSON.stringify(idx));
  };
}

function setF32(s: TinySpec, name: string, at: number | 'all', v: number) {
  const t = s.shards.flat().find((x) => x.name === name)!;
  const x = new Float32Array(t.data.buffer, t.data.byteOffset, t.data.length / 4);
  if (at === 'all') x.fill(v);
  else x[at < 0 ? x.length + at : at] = v;
}

/** The tiny Llama as a Mistral 3 image-text checkpoint: decoder under language_model.model., config nested, a vision tensor. */
function asWrapper(s: TinySpec) {
  for (const t of s.shards.flat()) t.name = `language_model.${t.name}`;
  s.shards[0].push(f32Tensor('vision_tower.ln_pre.weight', [8], () => 1));
  s.config = { architectures: ['Mistral3ForConditionalGeneration'], model_type: 'mistral3', text_config: { ...s.config, model_type: 'mistral' }, vision_config: { model_type: 'pixtral' } };
}

/** The tiny Llama as a Mixtral with `experts` experts per layer (each a copy of the layer's MLP) and a router. */
function asMixtral(s: TinySpec, experts: number) {
  const names: Record<string, string> = { gate_proj: 'w1', up_proj: 'w3', down_proj: 'w2' };
  s.shards = s.shards.map((sh) => sh.flatMap((t) => {
    const m = /^(model\.layers\.\d+\.)mlp\.(\w+)\.weight$/.exec(t.name);
    if (!m) return [t];
    const moe = Array.from({ length: experts }, (_, e) => ({ ...t, name: `${m[1]}block_sparse_moe.experts.${e}.${names[m[2]]}.weight` }));
    return m[2] === 'gate_proj' ? [f32Tensor(`${m[1]}block_sparse_moe.gate.weight`, [experts, t.shape[1]], (i) => (i % 5) * 0.01), ...moe] : moe;
  }));
  Object.assign(s.config, { architectures: ['MixtralForCausalLM'], model_type: 'mixtral', num_local_experts: experts, num_experts_per_tok: 1 });
}

/**
 * The tiny Llama as a Qwen3-MoE: q/k norms added, a router and `experts` experts (copies of
 * the layer's MLP) in every layer but those in `dense`, which keep the dense MLP.
 */
function asQwen3Moe(s: TinySpec, experts: number, dense: number[]) {
  const hd = s.config.head_dim as number;
  s.shards = s.shards.map((sh) => sh.flatMap((t) => {
    const n = /^(model\.layers\.(\d+)\.)input_layernorm\.weight$/.exec(t.name);
    if (n) return [t, ...['q_norm', 'k_norm'].map((k) => f32Tensor(`${n[1]}self_attn.${k}.weight`, [hd], () => 1))];
    const m = /^(model\.layers\.(\d+)\.)mlp\.(\w+)\.weight$/.exec(t.name);
    if (!m || dense.includes(Number(m[2]))) return [t];
    const moe = Array.from({ length: experts }, (_, e) => ({ ...t, name: `${m[1]}mlp.experts.${e}.${m[3]}.weight` }));
    return m[3] === 'gate_proj' ? [f32Tensor(`${m[1]}mlp.gate.weight`, [experts, t.shape[1]], (i) => (i % 5) * 0.01), ...moe] : moe;
  }));
  Object.assign(s.config, { architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', num_experts: experts, num_experts_per_tok: 1, moe_intermediate_size: s.config.intermediate_size, mlp_only_layers: dense });
}

function removeTensor(s: TinySpec, name: string) {
  for (const sh of s.shards) {
    const i = sh.findIndex((t) => t.name === name);
    if (i >= 0) sh.splice(i, 1);
  }
}

// ---------------------------------------------------------------- the cases

function generateCases(): Case[] {
  const cases: Case[] = [];
  const seen = new Map<string, number>();
  const add = (c: Case) => {
    const n = seen.get(c.label) ?? 0;
    seen.set(c.label, n + 1);
    cases.push(n === 0 ? c : { ...c, label: `${c.label} #${n + 1}` });
  };
  const r = prng(20260427);
  const ri = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const files = [SH[0], SH[1]];
  const hdrLen = files.map((_, k) => Number(encodeSafetensors(BASE.shards[k]).readBigUInt64LE(0)));
  const fileLen = files.map((_, k) => encodeSafetensors(BASE.shards[k]).length);

  // 1. header bytes replaced by bytes invalid anywhere in a header (70)
  for (let i = 0; i < 70; i++) {
    const k = i % 2;
    const pos = 8 + ri(0, hdrLen[k] - 1);
    const bad = [0x00, 0xff, 0x80, 0xc0, 0x01, 0x1f, 0xfe, 0x0b][ri(0, 7)];
    add({ group: 'header-bytes', label: `${files[k]} header byte ${pos} := 0x${bad.toString(16)}`, build: fileCase(k, (b) => { b[pos] = bad; return b; }), expect: mentions(files[k]), inspect: i % 3 === 0, method: i % 2 ? 'copy' : 'average' });
  }
  // 2. one digit of the header changed: names, shapes, offsets, dtypes lie but the JSON is valid (56)
  for (let i = 0; i < 56; i++) {
    const k = i % 2;
    const text = encodeSafetensors(BASE.shards[k]).subarray(8, 8 + hdrLen[k]).toString('latin1');
    const digits = [...text].map((c, j) => (/[0-9]/.test(c) ? j : -1)).filter((j) => j >= 0);
    const pos = digits[ri(0, digits.length - 1)];
    const old = text.charCodeAt(pos) - 48;
    const nd = (old + ri(1, 9)) % 10;
    add({ group: 'header-lies', label: `${files[k]} header digit at ${pos}: ${old} -> ${nd} (${JSON.stringify(text.slice(Math.max(0, pos - 12), pos + 4))})`, build: fileCase(k, (b) => { b[8 + pos] = 48 + nd; return b; }), expect: mentions(files[k], 'tensor'), inspect: i % 3 === 0, method: i % 2 ? 'copy' : 'average' });
  }
  // 3. the length prefix (26)
  const prefixes = (n: number, size: number): bigint[] => [0n, 1n, 2n, 7n, BigInt(n - 8), BigInt(n - 1), BigInt(n + 1), BigInt(n + 8), BigInt(size - 8), BigInt(size), 100_000_001n, 2n ** 63n, 2n ** 64n - 1n];
  for (const k of [0, 1]) {
    for (const v of prefixes(hdrLen[k], fileLen[k])) {
      add({ group: 'length-prefix', label: `${files[k]} header length ${hdrLen[k]} -> ${v}`, build: fileCase(k, (b) => { b.writeBigUInt64LE(v, 0); return b; }), expect: mentions(files[k]), inspect: true });
    }
  }
  // 4. truncated files (30)
  for (const k of [0, 1]) {
    const cuts = [0, 1, 7, 8, 9, 8 + (hdrLen[k] >> 1), 8 + hdrLen[k] - 1, 8 + hdrLen[k], 8 + hdrLen[k] + 1, 8 + hdrLen[k] + 4, fileLen[k] - 4, fileLen[k] - 1];
    for (let i = 0; i < 3; i++) cuts.push(ri(8 + hdrLen[k], fileLen[k] - 1));
    for (const c of cuts) add({ group: 'truncated', label: `${files[k]} truncated to ${c} of ${fileLen[k]} bytes`, build: fileCase(k, (b) => b.subarray(0, c)), expect: mentions(files[k]), inspect: c % 2 === 0, method: c % 3 === 0 ? 'copy' : 'average' });
  }
  // 5. trailing bytes (6)
  for (const [k, n] of [[0, 1], [0, 4], [1, 8], [1, 1000], [0, 4096], [1, 3]] as const) {
    add({ group: 'trailing', label: `${files[k]} extended by ${n} bytes`, build: fileCase(k, (b) => Buffer.concat([b, Buffer.alloc(n, 0x41)])), expect: mentions(files[k]), inspect: n > 100 });
  }
  // 6. lying offsets, overlaps, gaps (48)
  for (const k of [0, 1]) {
    const n = BASE.shards[k].length;
    const picks = [0, Math.floor(n / 2), n - 1];
    for (const j of picks) {
      const shape = JSON.stringify(BASE.shards[k][j].shape);
      const e = (offs: (b: number, x: number) => string) => entriesCase(k, (names, sizes) => contiguous(names, sizes, { [j]: (b, x) => `{"dtype":"F32","shape":${shape},"data_offsets":${offs(b, x)}}` }));
      add({ group: 'offsets', label: `${files[k]} tensor ${j}: begin+4`, build: e((b, x) => `[${b + 4},${x}]`), expect: mentions(files[k]), inspect: true });
      add({ group: 'offsets', label: `${files[k]} tensor ${j}: both +4`, build: e((b, x) => `[${b + 4},${x + 4}]`), expect: mentions(files[k]) });
      add({ group: 'offsets', label: `${files[k]} tensor ${j}: begin > end`, build: e((b, x) => `[${x},${b}]`), expect: mentions(files[k]) });
      if (j > 0) add({ group: 'offsets', label: `${files[k]} tensor ${j}: overlaps tensor 0`, build: e((b, x) => `[0,${x - b}]`), expect: mentions(files[k]), inspect: j === 1 });
      add({ group: 'offsets', label: `${files[k]} tensor ${j}: end past EOF`, build: e((b) => `[${b},${fileLen[k] * 4}]`), expect: mentions(files[k]) });
      add({ group: 'offsets', label: `${files[k]} tensor ${j}: offsets 2^53+`, build: e(() => `[9007199254740993,9007199254741249]`), expect: mentions(files[k]) });
    }
    // every tensor on the same range (all overlap), file shortened to one tensor
    add({ group: 'offsets', label: `${files[k]} all tensors overlap at 0`, build: entriesCase(k, (names, sizes) => names.map((nm, i) => [nm, `{"dtype":"F32","shape":${JSON.stringify(BASE.shards[k][i].shape)},"data_offsets":[0,${sizes[i]}]}`])), expect: mentions(files[k]), inspect: true });
    add({ group: 'offsets', label: `${files[k]} offsets as floats`, build: entriesCase(k, (names, sizes) => contiguous(names, sizes, { 0: (b, x) => `{"dtype":"F32","shape":${JSON.stringify(BASE.shards[k][0].shape)},"data_offsets":[${b}.0,${x}.5]}` })), expect: mentions(files[k]) });
    add({ group: 'offsets', label: `${files[k]} offsets negative`, build: entriesCase(k, (names, sizes) => contiguous(names, sizes, { 1: (b, x) => `{"dtype":"F32","shape":${JSON.stringify(BASE.shards[k][1].shape)},"data_offsets":[-4,${x - b - 4}]}` })), expect: mentions(files[k]) });
    add({ group: 'offsets', label: `${files[k]} offsets three numbers`, build: entriesCase(k, (names, sizes) => contiguous(names, sizes, { 1: (b, x) => `{"dtype":"F32","shape":${JSON.stringify(BASE.shards[k][1].shape)},"data_offsets":[${b},${x},${x}]}` })), expect: mentions(files[k]) });
    add({ group: 'offsets', label: `${files[k]} offsets as strings`, build: entriesCase(k, (names, sizes) => contiguous(names, sizes, { 1: (b, x) => `{"dtype":"F32","shape":${JSON.stringify(BASE.shards[k][1].shape)},"data_offsets":["${b}","${x}"]}` })), expect: mentions(files[k]) });
    add({ group: 'offsets', label: `${files[k]} gap before last tensor (data padded)`, build: entriesCase(k, (names, sizes) => contiguous(names, sizes, { [n - 1]: (b, x) => `{"dtype":"F32","shape":${JSON.stringify(BASE.shards[k][n - 1].shape)},"data_offsets":[${b + 8},${x + 8}]}` }), (d) => Buffer.concat([d, Buffer.alloc(8)])), expect: mentions(files[k]) });
  }
  // 7. huge and malformed shapes (26)
  const shapes = ['[9007199254740992]', '[9007199254740993]', '[67108864,134217728]', '[1e15,1e15]', '[4294967296,4294967296,4294967296]', '[-1,8]', '[8.5,8]', '["8","8"]', '[null]', '{}', '"8x8"', '[0,8]', '[64,1]'];
  for (const [i, sh] of shapes.entries()) {
    const k = i % 2;
    const j = k === 0 ? 2 : 3; // a q_proj / k_proj of some layer
    add({ group: 'shape', label: `${files[k]} ${BASE.shards[k][j].name} shape ${sh}`, build: entriesCase(k, (names, sizes) => contiguous(names, sizes, { [j]: (b, x) => `{"dtype":"F32","shape":${sh},"data_offsets":[${b},${x}]}` })), expect: new RegExp(`${esc(files[k])}|${esc(BASE.shards[k][j].name)}|every layer must match|must be 2-D`), inspect: i % 2 === 0 });
    // the same on the embedding (shard 0, entry 0)
    add({ group: 'shape', label: `embedding shape ${sh}`, build: entriesCase(0, (names, sizes) => contiguous(names, sizes, { 0: (b, x) => `{"dtype":"F32","shape":${sh},"data_offsets":[${b},${x}]}` })), expect: mentions(files[0], 'model.embed_tokens.weight', 'hidden_size') });
  }
  // 8. dtypes: unknown, wrong JSON type, integer dtypes of the same width on a layer tensor (30)
  const dtypes = ['"F31"', '"f32"', '"float32"', '""', '"FP8"', '"F32 "', '"INT4"', '32', 'null', '["F32"]', '"I32"', '"U32"', '"F16"', '"BF16"', '"F64"'];
  for (const [i, dt] of dtypes.entries()) {
    for (const k of [0, 1]) {
      const j = k === 0 ? 1 + (i % 9) : i % 9;
      const t = BASE.shards[k][j];
      add({ group: 'dtype', label: `${files[k]} ${t.name} dtype ${dt}`, build: entriesCase(k, (names, sizes) => contiguous(names, sizes, { [j]: (b, x) => `{"dtype":${dt},"shape":${JSON.stringify(t.shape)},"data_offsets":[${b},${x}]}` })), expect: mentions(files[k], t.name), inspect: k === 0 });
    }
  }
  // 9. the index: traversal, missing files, malformed (40)
  const traversal = ['../outside/model.safetensors', '../../../../../../etc/passwd', '/etc/passwd', 'sub/../../outside/model.safetensors', '..', '.', '', 'a\u0000b.safetensors', `${SH[0]}/..`, `./${SH[0]}`, `..\\${SH[0]}`, `C:\\${SH[0]}`, 'C:model.safetensors', '~/.ssh/id_rsa', `${SH[0]}\n`, `sub//${SH[0]}`, '/dev/zero', 'outside-link.safetensors', 'zero-link.safetensors', 'missing-00003-of-00002.safetensors'];
  for (const [i, p] of traversal.entries()) {
    const victim = i % 2 ? 'model.norm.weight' : 'model.layers.0.self_attn.q_proj.weight';
    add({
      group: 'index', label: `index puts ${victim} in ${JSON.stringify(p)}`,
      build: async (dir, caseDir) => {
        const idx = indexJsonFor(BASE) as { weight_map: Record<string, string> };
        idx.weight_map[victim] = p;
        await writeSpec(dir, BASE);
        await fsp.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(idx));
        await fsp.symlink(path.join(caseDir, 'outside', 'model.safetensors'), path.join(dir, 'outside-link.safetensors'));
        await fsp.symlink('/dev/zero', path.join(dir, 'zero-link.safetensors'));
      },
      expect: /index|weight_map|outside|does not exist|not a regular file|\.\./, inspect: i % 2 === 0,
    });
  }
  const indexes: [string, unknown][] = [
    ['not JSON', '{"weight_map": {'],
    ['JSON array', '[]'],
    ['no weight_map', { metadata: {} }],
    ['weight_map is a list', { weight_map: [SH[0]] }],
    ['weight_map value is a number', { weight_map: { 'model.norm.weight': 2 } }],
    ['empty weight_map', { weight_map: {} }],
    ['duplicate key', `{"weight_map": {"model.norm.weight": "${SH[1]}", "model.norm.weight": "${SH[1]}"}}`],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1')],
    ['deeply nested', '['.repeat(5000) + ']'.repeat(5000)],
  ];
  for (const [what, idx] of indexes) add({ group: 'index', label: `index ${what}`, build: indexCase(idx), expect: /index/, inspect: true });
  const moved = () => { const idx = indexJsonFor(BASE) as { weight_map: Record<string, string> }; idx.weight_map['model.norm.weight'] = SH[0]; return idx; };
  const extra = () => { const idx = indexJsonFor(BASE) as { weight_map: Record<string, string> }; idx.weight_map['model.layers.9.mlp.up_proj.weight'] = SH[1]; return idx; };
  const dropped = () => { const idx = indexJsonFor(BASE) as { weight_map: Record<string, string> }; delete idx.weight_map['model.layers.3.mlp.up_proj.weight']; return idx; };
  add({ group: 'index', label: 'index puts a tensor in the other shard', build: indexCase(moved()), expect: mentions('model.norm.weight'), inspect: true });
  add({ group: 'index', label: 'index names a tensor no header holds', build: indexCase(extra()), expect: mentions('model.layers.9.mlp.up_proj.weight') });
  add({ group: 'index', label: 'index omits a tensor', build: indexCase(dropped()), expect: mentions('model.layers.3.mlp.up_proj.weight'), inspect: true });
  add({ group: 'index', label: 'index names a missing shard file', build: async (dir) => { await writeSpec(dir, BASE); await fsp.rm(path.join(dir, SH[1])); }, expect: mentions(SH[1]), inspect: true });
  add({ group: 'index', label: 'index is a directory', build: async (dir) => { await writeSpec(dir, BASE, { index: false }); await fsp.mkdir(path.join(dir, 'model.safetensors.index.json')); }, expect: /index/ });
  add({ group: 'index', label: 'shard is a symlink leading out', build: async (dir, caseDir) => { await writeSpec(dir, BASE); await fsp.rm(path.join(dir, SH[1])); await fsp.symlink(path.join(caseDir, 'outside', 'model.safetensors'), path.join(dir, SH[1])); }, expect: /outside/ });
  add({ group: 'index', label: 'shard is a FIFO', build: async (dir) => { await writeSpec(dir, BASE); await fsp.rm(path.join(dir, SH[1])); spawnSync('mkfifo', [path.join(dir, SH[1])]); }, expect: mentions(SH[1]) });
  add({ group: 'index', label: 'shard is a directory', build: async (dir) => { await writeSpec(dir, BASE); await fsp.rm(path.join(dir, SH[0])); await fsp.mkdir(path.join(dir, SH[0])); }, expect: mentions(SH[0]) });
  add({ group: 'index', label: 'no index, both shards hold the norm', build: async (dir) => { const s = cloneSpec(BASE); s.shards[0].push({ ...s.shards[1].at(-1)! }); await writeSpec(dir, s, { index: false }); }, expect: /model\.norm\.weight/ });

  // 10. NaN / Inf weights, found while reading (not by inspect) (64)
  const special: [string, number][] = [['NaN', NaN], ['+Inf', Infinity], ['-Inf', -Infinity]];
  for (let layer = 0; layer < L; layer++) {
    for (const [si, suffix] of LAYER_SUFFIXES.entries()) {
      if ((layer + si) % 2 === 1 && suffix !== 'mlp.down_proj.weight') continue;
      const name = `model.layers.${layer}.${suffix}`;
      const [what, v] = special[(layer + si) % 3];
      add({ group: 'nonfinite', label: `${what} in ${name}`, build: specCase((s) => setF32(s, name, (layer * 7 + si) % 3 === 0 ? -1 : si, v)), expect: new RegExp(`${esc(name)}.*NaN/Inf`), method: si % 2 ? 'copy' : 'average' });
    }
  }
  for (const [what, v] of special) {
    for (const at of [0, -1, 'all'] as const) {
      add({ group: 'nonfinite', label: `${what} in the embedding at ${at}`, build: specCase((s) => setF32(s, 'model.embed_tokens.weight', at, v)), expect: /model\.embed_tokens\.weight.*NaN\/Inf/, method: at === -1 ? 'copy' : 'average' });
      add({ group: 'nonfinite', label: `${what} in the final norm at ${at}`, build: specCase((s) => setF32(s, 'model.norm.weight', at, v)), expect: /model\.norm\.weight.*NaN\/Inf/ });
    }
  }
  add({ group: 'nonfinite', label: 'NaN in a layer, lesa', build: specCase((s) => setF32(s, 'model.layers.2.self_attn.v_proj.weight', 5, NaN)), expect: /model\.layers\.2\.self_attn\.v_proj\.weight.*NaN|NaN.*model\.layers\.2/, method: 'lesa' });
  add({ group: 'nonfinite', label: 'Inf in the embedding, lesa', build: specCase((s) => setF32(s, 'model.embed_tokens.weight', 3, Infinity)), expect: /model\.embed_tokens\.weight.*NaN\/Inf/, method: 'lesa' });
  add({ group: 'nonfinite', label: 'NaN in a norm, lesa', build: specCase((s) => setF32(s, 'model.layers.1.input_layernorm.weight', 0, NaN)), expect: /model\.layers\.1\.input_layernorm\.weight.*NaN/, method: 'lesa' });

  // 11. inconsistent configs (60)
  const depths: unknown[] = [3, 5, 2, 1, 100, 0, -4, -1, '4', 4.5, 1e30, true, null, [4], {}, 9007199254740993, 'four', 4e0 + 0.0000001];
  for (const d of depths) {
    add({ group: 'config', label: `num_hidden_layers ${JSON.stringify(d)}`, build: configCase((c) => { c.num_hidden_layers = d; }), expect: /num_hidden_layers|layer|missing tensor/, inspect: true, method: typeof d === 'number' && d > 4 ? 'copy' : 'average' });
  }
  add({ group: 'config', label: 'num_hidden_layers missing', build: configCase((c) => { delete c.num_hidden_layers; }), expect: /num_hidden_layers/, inspect: true });
  for (const h of [16, 4, 0, -8, 8.5]) add({ group: 'config', label: `hidden_size ${h}`, build: configCase((c) => { c.hidden_size = h; }), expect: /hidden_size/, inspect: true });
  for (const h of [8, 32]) add({ group: 'config', label: `intermediate_size ${h}`, build: configCase((c) => { c.intermediate_size = h; }), expect: /intermediate_size/, inspect: true });
  for (const mt of [undefined, 'gpt2', '', 'LLAMA', 'llama ', 42, null, ['llama'], 'bert', '__proto__', 'constructor', 'toString']) {
    add({ group: 'config', label: `model_type ${mt === undefined ? 'missing' : JSON.stringify(mt)}`, build: configCase((c) => { if (mt === undefined) delete c.model_type; else c.model_type = mt; }), expect: /model_type/, inspect: true });
  }
  for (const lt of [['full_attention'], Array(5).fill('full_attention'), [], 'full_attention', 3, { 0: 'full_attention' }]) {
    add({ group: 'config', label: `mistral with layer_types ${JSON.stringify(lt)}`, build: configCase((c) => { c.model_type = 'mistral'; c.layer_types = lt; }), expect: /layer_types/, inspect: true });
  }
  const rawConfigs: [string, string | Buffer][] = [
    ['not JSON', '{"model_type": "llama",'],
    ['trailing comma', '{"model_type": "llama", "num_hidden_layers": 4,}'],
    ['NaN literal', '{"model_type": "llama", "num_hidden_layers": NaN}'],
    ['comment', '// c\n{"model_type": "llama"}'],
    ['array', '[]'],
    ['number', '42'],
    ['null', 'null'],
    ['string', '"llama"'],
    ['empty', ''],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])],
    ['duplicate key', '{"model_type": "llama", "model_type": "gpt2", "num_hidden_layers": 4, "hidden_size": 8}'],
    ['deeply nested', '{"a":' + '['.repeat(3000) + ']'.repeat(3000) + '}'],
    ['NUL bytes', Buffer.alloc(64)],
  ];
  for (const [what, text] of rawConfigs) add({ group: 'config', label: `config.json ${what}`, build: rawConfigCase(text), expect: /config\.json|model_type/, inspect: true });
  add({ group: 'config', label: 'config.json is a directory', build: async (dir) => { await writeSpec(dir, BASE); await fsp.rm(path.join(dir, 'config.json')); await fsp.mkdir(path.join(dir, 'config.json')); }, expect: /config\.json/, inspect: true });
  add({ group: 'config', label: 'config.json symlink leading out', build: async (dir, caseDir) => { await writeSpec(dir, BASE); await fsp.rm(path.join(dir, 'config.json')); await fsp.writeFile(path.join(caseDir, 'outside', 'config.json'), JSON.stringify(BASE.config)); await fsp.symlink(path.join(caseDir, 'outside', 'config.json'), path.join(dir, 'config.json')); }, expect: /config\.json/ });

  // 11b. image-text wrappers (nested text_config), MoE experts and dense layers, unsupported architectures (47)
  const wrapperCase = (mut: (c: Record<string, unknown>, text: Record<string, unknown>) => void) => specCase((s) => { asWrapper(s); mut(s.config, s.config.text_config as Record<string, unknown>); });
  for (const [what, v] of [['missing', undefined], ['null', null], ['an array', []], ['a string', 'mistral'], ['a number', 4]] as const) {
    add({ group: 'nested-config', label: `wrapper: text_config ${what}`, build: wrapperCase((c) => { if (v === undefined) delete c.text_config; else c.text_config = v; }), expect: /text_config/, inspect: true });
  }
  for (const d of [undefined, 0, '4', 4.5, 3]) {
    add({ group: 'nested-config', label: `wrapper: text_config.num_hidden_layers ${JSON.stringify(d)}`, build: wrapperCase((_c, t) => { if (d === undefined) delete t.num_hidden_layers; else t.num_hidden_layers = d; }), expect: /text_config\.num_hidden_layers|belongs to layer 3/, inspect: true });
  }
  add({ group: 'nested-config', label: 'wrapper: depth only at the top level', build: wrapperCase((c, t) => { c.num_hidden_layers = t.num_hidden_layers; delete t.num_hidden_layers; }), expect: /text_config\.num_hidden_layers/, inspect: true });
  add({ group: 'nested-config', label: 'qwen2_5_vl: text_config is a list', build: configCase((c) => { c.model_type = 'qwen2_5_vl'; c.text_config = [{ num_hidden_layers: L }]; }), expect: /"text_config" must be an object/, inspect: true });
  add({ group: 'nested-config', label: 'qwen2_5_vl: flat config without q/k/v biases', build: configCase((c) => { c.model_type = 'qwen2_5_vl'; }), expect: /missing tensor model\.layers\.0\.self_attn\.q_proj\.bias/, inspect: true });
  add({ group: 'nested-config', label: 'wrapper: text_config.layer_types one short', build: wrapperCase((_c, t) => { t.layer_types = Array(L - 1).fill('full_attention'); }), expect: /text_config\.layer_types/, inspect: true });
  add({ group: 'nested-config', label: 'wrapper: layer names of a text model', build: specCase((s) => { asWrapper(s); for (const t of s.shards.flat()) t.name = t.name.replace(/^language_model\./, ''); }), expect: /missing tensor language_model\.model\./, inspect: true });
  add({ group: 'nested-config', label: 'wrapper: gemma3 model_type over a Mistral decoder', build: wrapperCase((c) => { c.model_type = 'gemma3'; }), expect: /missing tensor .*(q_norm|pre_feedforward_layernorm)/, inspect: true });
  const moeCase = (mut: (c: Record<string, unknown>) => void, experts = 2) => specCase((s) => { asMixtral(s, experts); mut(s.config); });
  for (const n of [undefined, 0, '2', 2.5, null]) {
    add({ group: 'moe', label: `mixtral: num_local_experts ${JSON.stringify(n)}`, build: moeCase((c) => { if (n === undefined) delete c.num_local_experts; else c.num_local_experts = n; }), expect: /num_local_experts/, inspect: true });
  }
  add({ group: 'moe', label: 'mixtral: config names 3 experts, files hold 2', build: moeCase((c) => { c.num_local_experts = 3; }), expect: /missing tensor model\.layers\.0\.block_sparse_moe\.experts\.2\.w1\.weight/, inspect: true });
  add({ group: 'moe', label: 'mixtral: config names 1 expert, files hold 2', build: moeCase((c) => { c.num_local_experts = 1; }), expect: /experts\.1\..*unknown per-layer tensor/, inspect: true });
  add({ group: 'moe', label: 'mixtral: one expert missing in layer 2', build: specCase((s) => { asMixtral(s, 2); removeTensor(s, 'model.layers.2.block_sparse_moe.experts.1.w2.weight'); }), expect: /model\.layers\.2\.block_sparse_moe\.experts\.1\.w2\.weight/, inspect: true });
  add({ group: 'moe', label: 'mixtral: ot-fuse refused', build: moeCase(() => undefined), expect: /alignment is not available for mixtral: each expert/, args: (i, o) => ['expand', i, '-o', o, '--method', 'ot-fuse', '--target-layers', String(L + 1)] });
  // Qwen MoE with dense layers (layer 1 dense unless the case says otherwise).
  const mixedCase = (mut: (c: Record<string, unknown>, s: TinySpec) => void, dense = [1]) => specCase((s) => { asQwen3Moe(s, 2, dense); mut(s.config, s); });
  add({ group: 'moe', label: 'qwen3_moe: mlp_only_layers names a layer whose files hold experts', build: mixedCase((c) => { c.mlp_only_layers = [1, 2]; }), expect: /model\.layers\.2\.mlp\.gate\.weight belongs to a sparse MLP, but config\.json makes layer 2 dense \(mlp_only_layers, decoder_sparse_step\)/, inspect: true });
  add({ group: 'moe', label: 'qwen3_moe: a dense MLP in a layer the config makes sparse', build: mixedCase((c) => { c.mlp_only_layers = []; }), expect: /model\.layers\.1\.mlp\.\w+_proj\.weight belongs to a dense MLP, but config\.json makes layer 1 sparse/, inspect: true });
  add({ group: 'moe', label: 'qwen2_moe: decoder_sparse_step 2 over sparse files', build: moeCase((c) => { c.model_type = 'qwen2_moe'; c.num_experts = 2; c.decoder_sparse_step = 2; }), expect: /unknown per-layer tensor|belongs to a sparse MLP/, inspect: true });
  for (const bad of ['1', [4], [-1], [1, 1], [0.5], {}, [[1]]]) {
    add({ group: 'moe', label: `qwen3_moe: mlp_only_layers ${JSON.stringify(bad)}`, build: mixedCase((c) => { c.mlp_only_layers = bad; }), expect: /"mlp_only_layers" must list distinct layer indices 0\.\.3/, inspect: true });
  }
  for (const bad of [0, -1, 1.5, '2', null, [2]]) {
    add({ group: 'moe', label: `qwen3_moe: decoder_sparse_step ${JSON.stringify(bad)}`, build: mixedCase((c) => { c.decoder_sparse_step = bad; }), expect: /"decoder_sparse_step" must be a positive integer/, inspect: true });
  }
  add({ group: 'moe', label: 'qwen3_moe: a dense layer without its down_proj', build: mixedCase((_c, s) => { removeTensor(s, 'model.layers.1.mlp.down_proj.weight'); }), expect: /missing tensor model\.layers\.1\.mlp\.down_proj\.weight \(required by the qwen3_moe table in every dense layer\)/, inspect: true });
  add({ group: 'moe', label: 'qwen3_moe: average between a sparse and a dense layer', build: mixedCase(() => undefined), expect: /layer 0 has a sparse MLP and layer 1 a dense one .*--after .*\(2\)/, args: (i, o) => ['expand', i, '-o', o, '--method', 'average', '--target-layers', String(L + 1), '--after', '0'] });
  add({ group: 'moe', label: 'qwen3_moe: LESA on a kind only two layers hold', build: mixedCase(() => undefined, [1, 2]), expect: /LESA learns (gate|up|down)_proj from layers with a neighbour on each side, but only 2 layer\(s\) \(1,2\) hold it/, args: (i, o) => ['expand', i, '-o', o, '--method', 'lesa', '--target-layers', String(L + 1), '--after', '1', '--epochs', '1'] });
  add({ group: 'unsupported', label: 'unknown model_type over Llama tensors names llama', build: configCase((c) => { c.model_type = 'llama_next'; }), expect: /unsupported architecture model_type "llama_next".*nearest supported family: llama \(/, inspect: true });
  add({ group: 'unsupported', label: 'unknown MoE model_type names mixtral and the unknown tensors', build: moeCase((c) => { c.model_type = 'deepseek_v2'; }, 2), expect: /nearest supported family: mixtral.*/, inspect: true });
  add({ group: 'unsupported', label: 'unknown model_type with a router it lacks', build: specCase((s) => { s.config.model_type = 'llama_moe'; s.shards[1].push(f32Tensor('model.layers.0.mlp.router.weight', [2, 8], () => 0.1)); }), expect: /nearest supported family: llama .*tensors it does not know: model\.layers\.N\.mlp\.router\.weight/, inspect: true });

  // 12. missing tensors (42)
  for (let layer = 0; layer < L; layer++) {
    for (const suffix of LAYER_SUFFIXES) {
      const name = `model.layers.${layer}.${suffix}`;
      add({ group: 'missing-tensor', label: `missing ${name}`, build: specCase((s) => removeTensor(s, name)), expect: mentions(name), inspect: layer % 2 === 0, method: layer % 2 ? 'copy' : 'average' });
    }
  }
  add({ group: 'missing-tensor', label: 'missing the embedding', build: specCase((s) => removeTensor(s, 'model.embed_tokens.weight')), expect: /model\.embed_tokens\.weight/, inspect: true });
  add({ group: 'missing-tensor', label: 'missing the final norm', build: specCase((s) => removeTensor(s, 'model.norm.weight')), expect: /model\.norm\.weight/, inspect: true });
  add({ group: 'missing-tensor', label: 'missing all of layer 1', build: specCase((s) => { for (const x of LAYER_SUFFIXES) removeTensor(s, `model.layers.1.${x}`); }), expect: /model\.layers\.1\./, inspect: true });
  add({ group: 'missing-tensor', label: 'missing every layer', build: specCase((s) => { for (let i = 0; i < L; i++) for (const x of LAYER_SUFFIXES) removeTensor(s, `model.layers.${i}.${x}`); }), expect: /missing tensor/ });
  add({ group: 'missing-tensor', label: 'missing layer 0 q_proj, lesa', build: specCase((s) => removeTensor(s, 'model.layers.0.self_attn.q_proj.weight')), expect: /model\.layers\.0\.self_attn\.q_proj\.weight/, method: 'lesa' });

  // 13. extra unknown per-layer tensors (16)
  const extras: [string, number[]][] = [
    ['model.layers.0.self_attn.rotary_emb.inv_freq', [4]],
    ['model.layers.2.mlp.extra_proj.weight', [8, 8]],
    ['model.layers.4.input_layernorm.weight', [8]],
    ['model.layers.17.self_attn.q_proj.weight', [8, 8]],
    ['model.layers.01.input_layernorm.weight', [8]],
    ['model.layers.-1.input_layernorm.weight', [8]],
    ['model.layers..input_layernorm.weight', [8]],
    ['model.layers.x.input_layernorm.weight', [8]],
    ['model.layers.1', [8]],
    ['model.layers.3.mlp.gate_proj.bias', [16]],
    ['model.layers.0.self_attn.q_proj.weight.extra', [8]],
    ['model.layers.1e1.input_layernorm.weight', [8]],
    ['model.layers. 1.input_layernorm.weight', [8]],
    ['model.layers.1.input_layernorm.weight ', [8]],
    ['model.layers.99999999999999999999.input_layernorm.weight', [8]],
    ['model.layers.2.self_attn.q_norm.weight', [4]],
  ];
  for (const [i, [name, shape]] of extras.entries()) {
    add({ group: 'extra-tensor', label: `extra tensor ${JSON.stringify(name)}`, build: specCase((s) => { s.shards[i % 2].push({ name, dtype: 'F32', shape, data: Buffer.alloc(shape.reduce((a, b) => a * b, 4)) }); }), expect: new RegExp(`${esc(name.trim())}|${esc(name.replace(/^(model\.layers\.)\d+/, (_m, p: string) => `${p}0`))}: present in some layers`), inspect: i % 2 === 0, method: i % 3 === 0 ? 'copy' : 'average' });
  }
  add({ group: 'extra-tensor', label: 'extra per-layer tensor, lesa', build: specCase((s) => { s.shards[1].push({ name: 'model.layers.3.mlp.extra.weight', dtype: 'F32', shape: [8], data: Buffer.alloc(32) }); }), expect: /model\.layers\.3\.mlp\.extra\.weight/, method: 'lesa' });

  // 14. per-layer shapes that disagree with layer 0 or with the config (14)
  const reshapes: [string, number[]][] = [
    ['model.layers.2.self_attn.q_proj.weight', [4, 16]],
    ['model.layers.3.self_attn.o_proj.weight', [64]],
    ['model.layers.1.input_layernorm.weight', [2, 4]],
    ['model.layers.0.input_layernorm.weight', [2, 4]],
    ['model.layers.0.self_attn.k_proj.weight', [64]],
    ['model.layers.0.self_attn.k_proj.weight', [1, 8, 8]],
    ['model.layers.2.mlp.gate_proj.weight', [8, 16]],
    ['model.layers.0.mlp.gate_proj.weight', [8, 16]],
    ['model.layers.3.mlp.down_proj.weight', [16, 8]],
    ['model.embed_tokens.weight', [16, 16]],
    ['model.embed_tokens.weight', [256]],
    ['model.layers.1.post_attention_layernorm.weight', [1, 8]],
  ];
  for (const [name, shape] of reshapes) {
    add({ group: 'shape', label: `${name} reshaped to [${shape}]`, build: specCase((s) => { s.shards.flat().find((t) => t.name === name)!.shape = shape; }), expect: new RegExp(`${esc(name)}|hidden_size|intermediate_size|every layer must match`), inspect: true });
  }
  add({ group: 'shape', label: 'one layer in F16 (half the bytes)', build: specCase((s) => { const t = s.shards.flat().find((x) => x.name === 'model.layers.1.mlp.up_proj.weight')!; t.dtype = 'F16'; t.data = t.data.subarray(0, t.data.length / 2); }), expect: /model\.layers\.1\.mlp\.up_proj\.weight/, inspect: true });
  add({ group: 'shape', label: 'layer 0 in I32', build: specCase((s) => { for (let i = 0; i < L; i++) s.shards.flat().find((x) => x.name === `model.layers.${i}.self_attn.v_proj.weight`)!.dtype = 'I32'; }), expect: /v_proj.*I32|I32.*v_proj/, inspect: true });

  // 15. directory layout (14)
  add({ group: 'layout', label: '.bin-only checkpoint', build: async (dir) => { await fsp.mkdir(dir); await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(BASE.config)); await fsp.writeFile(path.join(dir, 'pytorch_model.bin'), Buffer.from('PK\x03\x04 pickle would run code')); }, expect: /pickle/, inspect: true });
  add({ group: 'layout', label: 'sharded .bin-only checkpoint', build: async (dir) => { await fsp.mkdir(dir); await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(BASE.config)); for (const n of ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']) await fsp.writeFile(path.join(dir, n), 'x'); await fsp.writeFile(path.join(dir, 'pytorch_model.bin.index.json'), '{}'); }, expect: /pickle/ });
  add({ group: 'layout', label: '.pt only', build: async (dir) => { await fsp.mkdir(dir); await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(BASE.config)); await fsp.writeFile(path.join(dir, 'model.pt'), 'x'); }, expect: /pickle/ });
  add({ group: 'layout', label: 'missing config.json', build: async (dir) => { await writeSpec(dir, BASE); await fsp.rm(path.join(dir, 'config.json')); }, expect: /config\.json/, inspect: true });
  add({ group: 'layout', label: 'empty directory', build: async (dir) => { await fsp.mkdir(dir); }, expect: /config\.json/, inspect: true });
  add({ group: 'layout', label: 'config but no weights', build: async (dir) => { await fsp.mkdir(dir); await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(BASE.config)); await fsp.writeFile(path.join(dir, 'model.gguf'), 'GGUF'); }, expect: /no weight files/ });
  add({ group: 'layout', label: 'input does not exist', build: async () => undefined, expect: /no such directory/, inspect: true });
  add({ group: 'layout', label: 'input is a file', build: async (dir) => { await fsp.writeFile(dir, 'x'); }, expect: /not a directory/, inspect: true });
  add({ group: 'layout', label: 'single model.safetensors plus a stray shard (no index)', build: async (dir) => { await writeSpec(dir, BASE, { index: false }); await fsp.writeFile(path.join(dir, 'model.safetensors'), encodeSafetensors(BASE.shards[0])); await fsp.rm(path.join(dir, SH[0])); }, expect: /model\.norm\.weight|missing tensor|model\.layers\.2/ });
  add({ group: 'layout', label: 'shards without index, one missing', build: async (dir) => { await writeSpec(dir, BASE, { index: false }); await fsp.rm(path.join(dir, SH[1])); }, expect: /missing tensor|model\.layers\.2|model\.norm/ });
  add({ group: 'layout', label: 'zero-byte shard', build: fileCase(1, () => Buffer.alloc(0)), expect: mentions(SH[1]), inspect: true });
  add({ group: 'layout', label: 'shard of random bytes', build: fileCase(0, (b) => Buffer.from(b.map(() => ri(0, 255)))), expect: mentions(SH[0]), inspect: true });
  add({ group: 'layout', label: 'header only, no data', build: fileCase(0, (b) => b.subarray(0, 8 + hdrLen[0])), expect: mentions(SH[0]), method: 'lesa' });
  add({ group: 'layout', label: 'aux file symlink leading out', build: async (dir, caseDir) => { await writeSpec(dir, BASE); await fsp.writeFile(path.join(caseDir, 'outside', 'secret.txt'), 'secret'); await fsp.symlink(path.join(caseDir, 'outside', 'secret.txt'), path.join(dir, 'tokenizer.json')); }, expect: /tokenizer\.json|outside/, inspect: true });

  // 16. option values, on a valid input (40)
  const opt = (extra: string[], expect: RegExp, label = extra.join(' ')) =>
    add({
      group: 'options', label: `option ${label}`, build: valid(), expect, args: (i, o) => ['expand', i, '-o', o, '--quiet', ...extra],
      known: extra.some((x, k) => k > 0 && extra[k - 1].startsWith('--') && /^-[^-]/.test(x)) ? KNOWN_MULTILINE : undefined,
    });
  for (const n of ['4', '3', '1', '0', '-1', '-4']) opt(['--method', 'average', '--target-layers', n], /--target-layers/);
  for (const n of ['abc', '', '1e3', '6.5', ' 6x', '0x10', '99999999999999999999', '6,7', 'NaN', 'Infinity']) opt(['--method', 'copy', '--target-layers', n], /--target-layers/, `--target-layers ${JSON.stringify(n)}`);
  opt(['--method', 'stack', '--target-layers', '100000000'], /--target-layers/);
  opt(['--method', 'lesa', '--epochs', '1', '--target-layers', '4'], /--target-layers/);
  opt(['--method', 'bogus', '--target-layers', '6'], /bogus|method/);
  opt(['--method', '', '--target-layers', '6'], /method/);
  opt(['--method', 'LESA', '--target-layers', '6'], /LESA|method/);
  for (const e of ['0', '-1', 'x', '1.5', '']) opt(['--method', 'lesa', '--epochs', e, '--target-layers', '6'], /--epochs/, `--epochs ${JSON.stringify(e)}`);
  opt(['--method', 'lesa', '--lambda', '2', '--target-layers', '6'], /--lambda/);
  opt(['--method', 'lesa', '--lr', '0', '--target-layers', '6'], /--lr/);
  opt(['--method', 'lesa', '--fill', 'zero', '--target-layers', '6'], /--fill/);
  opt(['--method', 'lesa', '--max-memory', '-5GB', '--target-layers', '6'], /--max-memory/);
  opt(['--method', 'average', '--seed', '-1', '--target-layers', '6'], /--seed/);
  opt(['--method', 'average', '--placement', 'sideways', '--target-layers', '6'], /--placement/);
  opt(['--method', 'average', '--after', 'a', '--target-layers', '6'], /--after/);
  opt(['--method', 'average', '--after', '9,9', '--target-layers', '6'], /after|layer/);
  opt(['--method', 'average', '--max-shard-size', '0', '--target-layers', '6'], /--max-shard-size/);
  opt(['--method', 'average', '--max-shard-size', '10XB', '--target-layers', '6'], /--max-shard-size/);
  opt(['--method', 'average', '--threads', '0', '--target-layers', '6'], /--threads/);
  opt(['--method', 'average', '--frobnicate', '--target-layers', '6'], /frobnicate/);
  opt(['--method', 'solar', '--target-layers', '7'], /solar|target/);
  opt(['--method', 'copy', '--scale', 'q_proj', '--target-layers', '6'], /--scale/);
  opt(['--method', 'copy', '--scale', 'q_proj=half', '--target-layers', '6'], /--scale/);
  opt(['--method', 'copy', '--scale', 'q_proj=1e999', '--target-layers', '6'], /--scale/);
  opt(['--method', 'copy', '--scale', 'q_proj=1,q_proj=2', '--target-layers', '6'], /--scale.*twice/);
  opt(['--method', 'copy', '--scale', 'embed_tokens=2', '--target-layers', '6'], /--scale.*no embed_tokens/);
  add({ group: 'options', label: 'option: no -o', build: valid(), expect: /--output/, args: (i) => ['expand', i, '--method', 'average', '--target-layers', '6'] });
  add({ group: 'options', label: 'option: no --target-layers', build: valid(), expect: /--target-layers/, args: (i, o) => ['expand', i, '-o', o, '--method', 'average'] });
  add({ group: 'options', label: 'option: two positionals', build: valid(), expect: /usage/, args: (i, o) => ['expand', i, i, '-o', o, '--target-layers', '6'] });
  add({ group: 'options', label: 'option: unknown command', build: valid(), expect: /unknown command/, args: (i) => ['expnad', i], usageFollows: true });
  add({ group: 'options', label: 'option: inspect with no DIR', build: valid(), expect: /usage/, args: () => ['inspect'] });
  // Hub ids (python/lesa_py/hub.py): an empty cache, offline unless the case says otherwise.
  const hub = (label: string, id: string, expect: RegExp, env: Record<string, string> = { HF_HUB_OFFLINE: '1' }) => {
    add({ group: 'hub id', label: `hub id: ${label}`, build: valid(), expect, env: { HF_HOME: '{case}/hf', ...env }, args: (_i, o) => ['expand', id, '-o', o, '--target-layers', '6', '--quiet'] });
  };
  hub('three parts', 'a/b/c', /neither a directory nor a Hugging Face hub id/);
  hub('empty revision', 'org/name@', /bad revision/);
  hub('revision climbing out', 'org/name@../../x', /bad revision/);
  hub('double dash', 'org/na--me', /not a valid hub id/);
  hub('missing repo offline', 'org/missing', /not in the local cache.*HF_HUB_OFFLINE/);
  hub('missing revision offline', 'org/missing@v2', /not in the local cache.*HF_HUB_OFFLINE/);
  hub('unreachable hub', 'org/missing', /not in the local cache.*cannot be reached/, { HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_OFFLINE: '0' });
  hub('relative path, not an id', '../x', /no such directory/);
  hub('empty argument', '', /no such directory/);
  add({ group: 'hub id', label: 'hub id: inspect malformed', build: valid(), expect: /neither a directory nor/, env: { HF_HUB_OFFLINE: '1' }, args: () => ['inspect', 'org/'] });
  // Training data with bad rows (python/lesa_py/corpus.py): every row unusable is one line naming
  // the file and the count per reason. The model is a real tiny fixture (it needs a tokenizer);
  // the data lives in outside/, which must stay unchanged too.
  const fixture = process.env.LESA_FIXTURES && path.join(process.env.LESA_FIXTURES, 'tiny-llama-f32');
  const jsonl = (label: string, body: Buffer, expect: RegExp) => {
    if (!fixture) return;
    add({
      group: 'data', label: `train data: ${label}`, python: true, expect,
      build: async (dir, caseDir) => {
        await fsp.cp(fixture, dir, { recursive: true });
        await fsp.writeFile(path.join(caseDir, 'outside', 'data.jsonl'), body);
      },
      args: (i, o) => ['train', '--model', i, '--freeze', 'none', '--train', path.join(path.dirname(o), 'outside', 'data.jsonl'),
        '--text-field', 'text', '--out', o, '--steps', '2', '--seq-len', '16', '--batch', '1', '--quiet'],
    });
  };
  jsonl('field missing in every row', Buffer.from('{"body":"a"}\n{"body":"b"}\n'), /data\.jsonl: no usable documents.*2 missing field "text"/);
  jsonl('not UTF-8', Buffer.from([...Buffer.from('{"text":"a '), 0xff, 0xfe, ...Buffer.from('"}\n')]), /data\.jsonl: no usable documents.*not UTF-8/);
  jsonl('not JSON', Buffer.from('not json\n{"text":\n'), /data\.jsonl: no usable documents.*2 not JSON/);
  jsonl('field not a string', Buffer.from('{"text": 5}\n{"text": null}\n'), /data\.jsonl: no usable documents.*not a string.*is null/);
  // Arguments of the commands run in Python: one line naming the command, not argparse's usage block.
  add({ group: 'options', label: 'train: unknown option', python: true, build: valid(), expect: /^lesa train: error: unrecognized arguments: --bogus .*lesa train --help/,
    args: (i, o) => ['train', '--model', i, '--train', i, '--out', o, '--bogus'] });
  add({ group: 'options', label: 'eval: option value of the wrong type', python: true, build: valid(), expect: /^lesa eval: error: argument --batch: invalid int value: 'many'/,
    args: (i) => ['eval', i, '--batch', 'many'] });
  return cases;
}

// ---------------------------------------------------------------- running

interface Finding {
  label: string;
  run: string;
  problem: string;
  known?: string;
}

interface Tally {
  inputs: number;
  runs: number;
  crashes: number;
  hangs: number;
  internal: number;
  partial: number;
  modified: number;
  accepted: number;
  badMessage: number;
  findings: Finding[];
}

async function digestInputs(caseDir: string): Promise<string> {
  const parts: string[] = [];
  for (const d of ['in', 'outside']) {
    const p = path.join(caseDir, d);
    const st = await fsp.lstat(p).catch(() => null);
    if (st === null) parts.push(`${d}:absent`);
    else if (st.isDirectory()) parts.push(`${d}:${await treeDigest(p)}`);
    else parts.push(`${d}:file:${(await fsp.readFile(p)).toString('hex')}`);
  }
  return parts.join('|');
}

function check(tally: Tally, c: Case, run: string, r: CliResult): void {
  const problem = (p: string) => tally.findings.push({ label: c.label, run, known: c.known, problem: `${p}\n      exit=${r.code} signal=${r.signal} stderr=${JSON.stringify(r.stderr.slice(0, 600))}` });
  tally.runs++;
  const k = classify(r);
  if (k === 'hang') { tally.hangs++; problem(`no exit within ${CASE_TIMEOUT_MS} ms`); return; }
  if (k === 'crash') { tally.crashes++; problem('crashed (signal or exit > 128)'); return; }
  if (k === 'internal-error' || /internal error/.test(r.stderr)) { tally.internal++; problem('internal error'); return; }
  if (k === 'ok') { tally.accepted++; problem('accepted (exit 0)'); return; }
  if (k !== 'user-error') { tally.badMessage++; problem(`exit ${r.code}, expected 2`); return; }
  const lines = errorLines(r.stderr).slice(0, c.usageFollows ? 1 : undefined);
  const prefix = c.python ? /^lesa (train|eval|compare): error: / : /^lesa: /;
  if (lines.length !== 1 || !prefix.test(lines[0])) { tally.badMessage++; problem(`expected one ${prefix} line on stderr, got ${lines.length}`); return; }
  if (!c.expect.test(lines[0])) { tally.badMessage++; problem(`message does not match ${c.expect}`); }
}

async function runCase(c: Case, i: number, root: string, tally: Tally): Promise<void> {
  const caseDir = path.join(root, `c${String(i).padStart(3, '0')}`);
  const inDir = path.join(caseDir, 'in');
  const outDir = path.join(caseDir, 'out');
  await fsp.mkdir(path.join(caseDir, 'outside'), { recursive: true });
  await fsp.writeFile(path.join(caseDir, 'outside', 'model.safetensors'), encodeSafetensors(BASE.shards[1]));
  await c.build(inDir, caseDir);
  const before = await digestInputs(caseDir);
  tally.inputs++;
  const method = c.method ?? (i % 2 ? 'copy' : 'average');
  const runs: [string, string[]][] = [];
  if (c.args) runs.push(['args', c.args(inDir, outDir)]);
  else {
    const extra = method === 'lesa' ? ['--epochs', '1'] : [];
    // Mostly --quiet; some with --json or the plain reporter (progress lines are filtered).
    const mode = i % 5 === 0 ? ['--json'] : i % 5 === 1 ? [] : ['--quiet'];
    runs.push([`expand ${method}`, ['expand', inDir, '-o', outDir, '--method', method, '--target-layers', '6', ...extra, ...mode]]);
    if (c.inspect && i % 2 === 0) runs.push(['inspect', ['inspect', inDir]]);
  }
  for (const [name, args] of runs) {
    const env = Object.fromEntries(Object.entries(c.env ?? {}).map(([k, v]) => [k, v.replace('{case}', caseDir)]));
    const r = await runLesa(args, { timeoutMs: CASE_TIMEOUT_MS, cwd: caseDir, env });
    check(tally, c, name, r);
    const left = [...(await exists(outDir) ? ['out'] : []), ...(await siblingsOf(caseDir))];
    if (left.length > 0) {
      tally.partial++;
      tally.findings.push({ label: c.label, run: name, known: c.known, problem: `left behind: ${left.join(', ')}` });
      await fsp.rm(outDir, { recursive: true, force: true });
    }
    if ((await digestInputs(caseDir)) !== before) {
      tally.modified++;
      tally.findings.push({ label: c.label, run: name, known: c.known, problem: 'input changed' });
    }
  }
  await fsp.rm(caseDir, { recursive: true, force: true });
}

test('hostile checkpoints and options through the CLI: exit 2, one line, input unchanged, nothing left', { timeout: 20 * 60_000 }, async () => {
  const group = process.env.LESA_HOSTILE_GROUP;
  const all = generateCases().filter((c) => group === undefined || c.group === group);
  const limit = Number(process.env.LESA_HOSTILE_LIMIT ?? all.length);
  const cases = all.slice(0, limit);
  assert.ok(limit < all.length || group !== undefined || cases.length >= 500, `only ${cases.length} cases`);
  const labels = new Set<string>();
  for (const c of cases) { assert.ok(!labels.has(c.label), `duplicate label ${c.label}`); labels.add(c.label); }
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lesa-hostile-'));
  const tally: Tally = { inputs: 0, runs: 0, crashes: 0, hangs: 0, internal: 0, partial: 0, modified: 0, accepted: 0, badMessage: 0, findings: [] };
  const t0 = performance.now();
  try {
    await pool(cases, PARALLEL, (c, i) => runCase(c, i, root, tally));
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
  const groups = new Map<string, number>();
  for (const c of cases) groups.set(c.group, (groups.get(c.group) ?? 0) + 1);
  console.log(`hostile-cli groups: ${[...groups].map(([g, n]) => `${g}=${n}`).join(' ')}`);
  console.log(`hostile-cli summary: inputs=${tally.inputs} runs=${tally.runs} crashes=${tally.crashes} hangs=${tally.hangs} internal_errors=${tally.internal} partial_outputs=${tally.partial} inputs_modified=${tally.modified} accepted=${tally.accepted} bad_messages=${tally.badMessage} known=${tally.findings.filter((f) => f.known).length} seconds=${((performance.now() - t0) / 1000).toFixed(0)}`);
  const known = tally.findings.filter((f) => f.known);
  const fresh = tally.findings.filter((f) => !f.known);
  for (const f of fresh) console.log(`  FINDING ${f.label} [${f.run}]: ${f.problem}`);
  for (const f of known) console.log(`  KNOWN ${f.label} [${f.run}]: ${f.problem.split('\n')[0]} (${f.known})`);
  const knownCases = new Set(cases.filter((c) => c.known).map((c) => c.label));
  for (const l of knownCases) if (!known.some((f) => f.label === l)) console.log(`  KNOWN issue no longer reproduces (drop the marker): ${l}`);
  console.log(`hostile-cli known: ${known.length} findings from ${new Set(known.map((f) => f.known)).size} known defect(s), not failing the test`);
  assert.equal(fresh.length, 0, `${fresh.length} findings (listed above)`);
});

// ---------------------------------------------------------------- existing output

test('existing output: refused without --force, a lesa output replaced with --force, output inside input refused', { timeout: 5 * 60_000 }, async () => {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lesa-existing-'));
  try {
    const inDir = path.join(root, 'in');
    await writeSpec(inDir, BASE);
    const before = await treeDigest(inDir);
    const out = path.join(root, 'out');
    const expand = (o: string, ...extra: string[]) => runLesa(['expand', inDir, '-o', o, '--method', 'average', '--target-layers', '6', '--quiet', ...extra], { timeoutMs: CASE_TIMEOUT_MS });
    const oneLine = (r: CliResult, re: RegExp) => {
      assert.equal(r.code, 2, r.stderr);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], re);
    };

    // a first lesa output
    let r = await expand(out);
    assert.equal(r.code, 0, r.stderr);
    const first = await treeDigest(out);
    assert.ok(await exists(path.join(out, 'lesa.json')));

    // again without --force: refused, untouched
    r = await expand(out);
    oneLine(r, /already exists.*--force/);
    assert.equal(await treeDigest(out), first);

    // --force with another method replaces it (and leaves no sibling behind)
    await fsp.writeFile(path.join(out, 'stale-extra-file.txt'), 'from before');
    r = await expand(out, '--force', '--method', 'copy');
    assert.equal(r.code, 0, r.stderr);
    const manifest = JSON.parse(await fsp.readFile(path.join(out, 'lesa.json'), 'utf8')) as { method: string };
    assert.equal(manifest.method, 'copy');
    assert.ok(!(await exists(path.join(out, 'stale-extra-file.txt'))), '--force replaces the whole directory');
    assert.deepEqual(await siblingsOf(root), []);
    r = await runLesa(['verify', out], { timeoutMs: CASE_TIMEOUT_MS });
    assert.equal(r.code, 0, r.stderr + r.stdout);

    // a directory that is not a lesa output: refused even with --force, untouched
    const foreign = path.join(root, 'foreign');
    await fsp.mkdir(foreign);
    await fsp.writeFile(path.join(foreign, 'precious.txt'), 'keep me');
    const fBefore = await treeDigest(foreign);
    r = await expand(foreign, '--force');
    oneLine(r, /not a lesa output/);
    assert.equal(await treeDigest(foreign), fBefore);

    // a regular file as output: refused even with --force
    const file = path.join(root, 'file-out');
    await fsp.writeFile(file, 'x');
    r = await expand(file, '--force');
    oneLine(r, /not a directory/);
    assert.equal(await fsp.readFile(file, 'utf8'), 'x');

    // an empty directory is fine with --force, refused without
    const empty = path.join(root, 'empty');
    await fsp.mkdir(empty);
    r = await expand(empty);
    oneLine(r, /already exists/);
    r = await expand(empty, '--force');
    assert.equal(r.code, 0, r.stderr);

    // output inside the input, or the input itself, or an ancestor of the input: refused
    r = await expand(path.join(inDir, 'grown'));
    oneLine(r, /inside the input/);
    r = await expand(path.join(inDir, 'a', 'b'), '--force');
    oneLine(r, /inside the input/);
    r = await expand(inDir, '--force');
    oneLine(r, /the input directory/);
    const link = path.join(root, 'link-to-in');
    await fsp.symlink(inDir, link);
    r = await expand(path.join(link, 'grown'));
    oneLine(r, /inside the input/);
    r = await expand(root, '--force');
    oneLine(r, /input .* is inside this output|not a lesa output/);

    assert.equal(await treeDigest(inDir), before, 'input unchanged');
    assert.deepEqual(await siblingsOf(root), []);
    assert.deepEqual(await siblingsOf(inDir), []);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

