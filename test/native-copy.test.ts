import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { copySpan, countNonFiniteRaw, Sha256, type CheckedDtype } from '../src/native/index.js';
import { CheckpointWriter } from '../src/checkpoint/writer.js';
import { randomBytes, rng, tmpDir } from './helpers/safetensors-fixtures.js';

const MiB = 1 << 20;

/** Non-finite count decided by JavaScript's own float decoding, element by element. */
function nonFiniteByJs(bytes: Uint8Array, dtype: CheckedDtype): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let bad = 0;
  const f32 = new DataView(new ArrayBuffer(4));
  for (let o = 0; o < bytes.length;) {
    let x: number;
    if (dtype === 'F64') { x = v.getFloat64(o, true); o += 8; }
    else if (dtype === 'F32') { x = v.getFloat32(o, true); o += 4; }
    else if (dtype === 'BF16') { f32.setUint32(0, v.getUint16(o, true) << 16); x = f32.getFloat32(0); o += 2; }
    else { const h = v.getUint16(o, true); x = (h & 0x7c00) === 0x7c00 ? ((h & 0x3ff) ? NaN : Infinity) : 0; o += 2; } // f16: finite values all map to 0 here
    if (!Number.isFinite(x)) bad++;
  }
  return bad;
}

/** Random bytes with a sprinkling of NaN/Inf-shaped elements planted for `dtype`. */
function planted(n: number, dtype: CheckedDtype, seed: number): Uint8Array {
  const r = rng(seed);
  const b = randomBytes(r, n);
  const size = { F64: 8, F32: 4, F16: 2, BF16: 2 }[dtype];
  for (let k = 0; k < 50; k++) {
    const at = Math.floor(r() * (n / size)) * size;
    if (dtype === 'F64') b[at + 7] |= 0x7f, b[at + 6] |= 0xf0;
    else if (dtype === 'F32') b[at + 3] |= 0x7f, b[at + 2] |= 0x80;
    else if (dtype === 'BF16') b[at + 1] |= 0x7f, b[at] |= 0x80;
    else b[at + 1] |= 0x7c;
  }
  return b;
}

test('countNonFiniteRaw equals a per-element JavaScript decode for f64, f32, f16, bf16', async () => {
  for (const [i, d] of (['F64', 'F32', 'F16', 'BF16'] as const).entries()) {
    const b = planted(3 * MiB + 8 * 7, d, 10 + i);
    const want = nonFiniteByJs(b, d);
    assert.ok(want >= 40, `${d}: planted ${want}`); // random bytes alone also hit some
    assert.equal(await countNonFiniteRaw(b, d), want, d);
  }
  await assert.rejects(countNonFiniteRaw(new Uint8Array(3), 'F16'), /divisible by 2/);
});

test('Sha256 equals node:crypto over the same pieces; no update after digest', async () => {
  const r = rng(3);
  const parts = [randomBytes(r, 10), new Uint8Array(0), randomBytes(r, 9 * MiB + 1)];
  const h = new Sha256();
  for (const p of parts) await h.update(p);
  const want = createHash('sha256');
  for (const p of parts) want.update(p);
  assert.equal(h.digest(), want.digest('hex'));
  await assert.rejects(h.update(new Uint8Array(1)), /after digest/);
});

test('copySpan: exact bytes at the offset, zero chunks left as holes, hash and NaN count of the span', async () => {
  const dir = await tmpDir('lesa-copyspan-');
  try {
    // 2.25 chunks of bf16 with an all-zero 8 MiB chunk in the middle, at an odd source offset.
    const span = planted(16 * MiB + 2 * MiB, 'BF16', 7);
    span.fill(0, 8 * MiB, 16 * MiB);
    const srcFile = path.join(dir, 'src');
    const prefix = randomBytes(rng(8), 1234);
    await fsp.writeFile(srcFile, Buffer.concat([prefix, span]));
    const dstFile = path.join(dir, 'dst');
    const head = randomBytes(rng(9), 100);
    await fsp.writeFile(dstFile, head);
    const src = await fsp.open(srcFile, 'r');
    const dst = await fsp.open(dstFile, 'r+');
    const hash = new Sha256();
    await hash.update(head);
    const r = await copySpan({ srcFd: src.fd, srcOffset: prefix.length, dstFd: dst.fd, dstOffset: head.length, length: span.length, check: 'BF16', hash });
    await src.close();
    await dst.close();
    assert.equal(r.nonFinite, nonFiniteByJs(span, 'BF16'));
    assert.equal(r.holes, true);
    // The span ends in data, so the file has its full size without any truncate.
    const out = await fsp.readFile(dstFile);
    assert.ok(out.equals(Buffer.concat([head, span])));
    assert.equal(hash.digest(), createHash('sha256').update(head).update(span).digest('hex'));
    assert.ok((await fsp.stat(dstFile)).blocks * 512 < out.length - 4 * MiB, 'the zero chunk was not written');
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('copySpan: a full disk rejects with code ENOSPC; a span past the end of the source is an error', async () => {
  const dir = await tmpDir('lesa-copyspan-');
  try {
    const srcFile = path.join(dir, 'src');
    await fsp.writeFile(srcFile, randomBytes(rng(1), MiB));
    const src = await fsp.open(srcFile, 'r');
    try {
      if (fs.existsSync('/dev/full')) {
        const full = await fsp.open('/dev/full', 'w');
        await assert.rejects(copySpan({ srcFd: src.fd, srcOffset: 0, dstFd: full.fd, dstOffset: 0, length: MiB, hash: new Sha256() }),
          (e: NodeJS.ErrnoException) => e.code === 'ENOSPC' && typeof e.syscall === 'string');
        await full.close();
      }
      const dst = await fsp.open(path.join(dir, 'dst'), 'w');
      await assert.rejects(copySpan({ srcFd: src.fd, srcOffset: 1, dstFd: dst.fd, dstOffset: 0, length: MiB, hash: new Sha256() }), /ended inside the tensor/);
      await assert.rejects(copySpan({ srcFd: src.fd, srcOffset: 0, dstFd: dst.fd, dstOffset: 0, length: 3, check: 'F16', hash: new Sha256() }), /divisible by 2/);
      await dst.close();
    } finally {
      await src.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('writer: copyTensor(s) write the same files and hashes as writeTensor of the same bytes, across shards, holes included', async () => {
  const dir = await tmpDir('lesa-copyspan-');
  try {
    const a = planted(3 * 1000, 'F32', 4);
    const big = new Uint8Array(17 * MiB); // ends in a hole: the shard must still get its full size
    big[5] = 1;
    const srcFile = path.join(dir, 'src');
    await fsp.writeFile(srcFile, Buffer.concat([a, big]));
    const specs = [{ name: 'a', dtype: 'U8' as const, shape: [a.length] }, { name: 'big', dtype: 'U8' as const, shape: [big.length] }];
    const c = planted(5000, 'F32', 5);
    await fsp.writeFile(path.join(dir, 'src2'), c);
    specs.push({ name: 'c', dtype: 'U8' as const, shape: [c.length] });
    const maxShardBytes = a.length + big.length; // a, big | c: one batch spans two shards
    const viaWrite = await CheckpointWriter.create(path.join(dir, 'w'), { specs, maxShardBytes });
    await viaWrite.writeTensor('a', a);
    await viaWrite.writeTensor('big', big);
    await viaWrite.writeTensor('c', c);
    const fw = await viaWrite.finalize({});
    const src = await fsp.open(srcFile, 'r');
    const src2 = await fsp.open(path.join(dir, 'src2'), 'r');
    const viaCopy = await CheckpointWriter.create(path.join(dir, 'c'), { specs, maxShardBytes });
    assert.equal(await viaCopy.copyTensor('a', { fd: src.fd, start: 0, byteLength: a.length }), 0); // U8: no check
    assert.deepEqual(await viaCopy.copyTensors([
      { name: 'big', src: { fd: src.fd, start: a.length, byteLength: big.length } },
      { name: 'c', src: { fd: src2.fd, start: 0, byteLength: c.length }, check: 'F32' },
    ]), [0, nonFiniteByJs(c, 'F32')]);
    const fc = await viaCopy.finalize({});
    await src.close();
    await src2.close();
    assert.deepEqual(fc.files, fw.files);
    assert.deepEqual(Object.keys(fw.files).filter((f) => f.endsWith('.safetensors')).length, 2);
    for (const f of Object.keys(fw.files)) {
      const w = await fsp.readFile(path.join(dir, 'w', f));
      assert.ok(w.equals(await fsp.readFile(path.join(dir, 'c', f))), f);
      assert.equal(fw.files[f], createHash('sha256').update(w).digest('hex'), f);
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
