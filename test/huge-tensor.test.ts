/**
 * Tensors above Node's 4 GiB buffer cap: a sparse checkpoint (real headers, data mostly
 * holes) with a 5 GiB embedding expands with the copy-like methods and verifies; plans that
 * would hold a 5 GiB layer tensor whole are refused at plan time with the tensor named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';
import { errorLines, runLesa } from './helpers/cli.js';
import { tmpDir } from './helpers/safetensors-fixtures.js';
import { tinyLlama, type TTensor } from './helpers/tiny-checkpoint.js';

const GiB = 2 ** 30;
const HIDDEN = 8;
/** Rows of an f32 [rows, 8] tensor just above 5 GiB. */
const HUGE_ROWS = (5 * GiB) / (4 * HIDDEN) + 1;
/** Probe offsets inside the huge tensor's data: its start, across the 4 GiB mark, past it, its end. */
const probesOf = (bytes: number) => [0, 4 * GiB - 8, 4 * GiB + 8 * 2 ** 20 + 4, bytes - 16];
const PROBE = Buffer.from(new Float32Array([1.5, -2.25, 3e-3, 7]).buffer);

/** One safetensors file: tensors with data written, `huge` (name → shape) as holes plus the probes. */
async function writeSparseFile(file: string, tensors: TTensor[], huge: Map<string, number[]>): Promise<void> {
  const sizeOf = (t: TTensor) => (huge.has(t.name) ? huge.get(t.name)!.reduce((a, b) => a * b, 4) : t.data.length);
  const parts: string[] = [];
  let off = 0;
  for (const t of tensors) {
    const shape = huge.get(t.name) ?? t.shape;
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":[${off},${off + sizeOf(t)}]}`);
    off += sizeOf(t);
  }
  let h = `{${parts.join(',')}}`;
  while (h.length % 8 !== 0) h += ' ';
  const pre = Buffer.alloc(8);
  pre.writeBigUInt64LE(BigInt(h.length));
  const fh = await fsp.open(file, 'w');
  try {
    await fh.write(Buffer.concat([pre, Buffer.from(h)]), 0, 8 + h.length, 0);
    let at = 8 + h.length;
    for (const t of tensors) {
      if (huge.has(t.name)) for (const p of probesOf(sizeOf(t))) await fh.write(PROBE, 0, PROBE.length, at + p);
      else await fh.write(t.data, 0, t.data.length, at);
      at += sizeOf(t);
    }
    await fh.truncate(at);
  } finally {
    await fh.close();
  }
}

/** A 4-layer tiny Llama in one file whose tensors named by `huge` get those shapes (holes). */
async function sparseLlama(dir: string, huge: Map<string, number[]>, config: Record<string, unknown>): Promise<void> {
  const spec = tinyLlama({ layers: 4, hidden: HIDDEN, inter: 16 });
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...spec.config, ...config }, null, 2));
  await writeSparseFile(path.join(dir, 'model.safetensors'), spec.shards.flat(), huge);
}

async function readAt(file: string, pos: number, n: number): Promise<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const b = Buffer.alloc(n);
    await fh.read(b, 0, n, pos);
    return b;
  } finally {
    await fh.close();
  }
}

test('a 5 GiB embedding (sparse) expands with copy and llama-pro, byte-exact, and verifies', async (t) => {
  const root = await tmpDir('lesa-huge-');
  try {
    const input = path.join(root, 'in');
    const embed = 'model.embed_tokens.weight';
    await sparseLlama(input, new Map([[embed, [HUGE_ROWS, HIDDEN]]]), { vocab_size: HUGE_ROWS });
    const src = await openCheckpoint(input);
    const srcRef = src.tensors.get(embed)!;
    await src.close();
    assert.ok(srcRef.byteLength > 5 * GiB);

    const dry = await runLesa(['expand', input, '--method', 'copy', '--target-layers', '6', '--dry-run'], { timeoutMs: 60_000 });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /1 tensor above Node's 4 GiB buffer cap \(largest 5\.0 GiB\) copied byte-for-byte in chunks/);

    for (const method of ['copy', 'llama-pro']) {
      const out = path.join(root, method);
      const r = await runLesa(['expand', input, '-o', out, '--method', method, '--target-layers', '6', '--quiet'], { timeoutMs: 600_000 });
      assert.equal(r.code, 0, `${method}: ${r.stderr}`);
      const v = await runLesa(['verify', out], { timeoutMs: 600_000 });
      assert.equal(v.code, 0, `${method} verify: ${v.stdout}${v.stderr}`);
      t.diagnostic(`${method}: expand ${(r.ms / 1000).toFixed(1)} s, verify ${(v.ms / 1000).toFixed(1)} s`);
      const o = await openCheckpoint(out);
      const ref = o.tensors.get(embed)!;
      await o.close();
      assert.equal(ref.byteLength, srcRef.byteLength);
      for (const p of probesOf(ref.byteLength)) {
        assert.ok((await readAt(ref.file, ref.start + p, 16)).equals(await readAt(srcRef.file, srcRef.start + p, 16)), `${method}: bytes at ${p}`);
      }
      const st = await fsp.stat(ref.file);
      assert.ok(st.blocks * 512 < GiB, `${method}: the holes stayed holes (${st.blocks * 512} bytes allocated)`);
      await fsp.rm(out, { recursive: true });
    }
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test('5 GiB layer tensors: plans that hold a tensor whole are refused up front, with the tensor named', async () => {
  const root = await tmpDir('lesa-huge-');
  try {
    const input = path.join(root, 'in');
    const huge = new Map<string, number[]>();
    for (let i = 0; i < 4; i++) {
      huge.set(`model.layers.${i}.mlp.gate_proj.weight`, [HUGE_ROWS, HIDDEN]);
      huge.set(`model.layers.${i}.mlp.up_proj.weight`, [HUGE_ROWS, HIDDEN]);
      huge.set(`model.layers.${i}.mlp.down_proj.weight`, [HIDDEN, HUGE_ROWS]);
    }
    await sparseLlama(input, huge, { intermediate_size: HUGE_ROWS });
    const cases: [string, RegExp][] = [
      ['average', /tensor model\.layers\.\d\.mlp\.gate_proj\.weight is 5\.0 GiB, and average makes it by a "mean" recipe/],
      ['lesa', /tensor model\.layers\.\d+\.mlp\.gate_proj\.weight is 5\.0 GiB, and lesa makes it by a "predicted" recipe/],
      ['llama-pro', /tensor model\.layers\.\d+\.mlp\.down_proj\.weight is 5\.0 GiB, and llama-pro makes it by a "zeros" recipe/],
      ['ot-fuse', /tensor model\.layers\.0\.mlp\.gate_proj\.weight is 5\.0 GiB, and alignment \(--align or the method\) permutes it/],
    ];
    for (const [method, re] of cases) {
      const r = await runLesa(['expand', input, '--method', method, '--target-layers', '6', '--dry-run'], { timeoutMs: 60_000 });
      assert.equal(r.code, 2, `${method}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, re, method);
      assert.match(r.stderr, /Node caps one buffer at 4 GiB, so lesa refuses this plan: use copy, llama-pro, solar or stack/);
      assert.equal(errorLines(r.stderr).length, 1, `${method}: one line`);
    }
    const ok = await runLesa(['expand', input, '--method', 'copy', '--target-layers', '6', '--dry-run'], { timeoutMs: 60_000 });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /tensors above Node's 4 GiB buffer cap/);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
