import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import type { FileHandle } from 'node:fs/promises';
import { planShards, CheckpointWriter, indexJson, type OpenFile } from '../src/checkpoint/writer.js';
import { tempSibling } from '../src/checkpoint/leftovers.js';
import { parseSafetensorsBytes } from '../src/checkpoint/safetensors.js';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';
import { verifyOutput } from '../src/checkpoint/verify.js';
import { withCleanup, openAbortables } from '../src/checkpoint/cleanup.js';
import { CheckpointError, InternalError, type CheckpointErrorKind } from '../src/checkpoint/errors.js';
import type { TensorSpec } from '../src/checkpoint/types.js';
import { byteLen, hashTree, leftovers, randInt, randomTensors, rng, tmpDir, writeCheckpointDir, buildSafetensors, type TensorData } from './helpers/safetensors-fixtures.js';

const spec = (name: string, n: number): TensorSpec => ({ name, dtype: 'U8', shape: [n] });
const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);

async function rejectsKind(p: Promise<unknown>, kind: CheckpointErrorKind, re?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

async function writeAll(w: CheckpointWriter, ts: { name: string; data: Uint8Array }[]) {
  for (const t of ts) await w.writeTensor(t.name, t.data);
}

test('planShards: split at the limit, big tensors alone, headers aligned and parseable, index', () => {
  const p = planShards([spec('a', 40), spec('b', 60), spec('c', 1), spec('big', 500), spec('d', 10), spec('e', 0)], 100);
  assert.deepEqual(p.shards.map((s) => s.tensors.map((t) => t.name)), [['a', 'b'], ['c'], ['big'], ['d', 'e']]);
  assert.deepEqual(p.shards.map((s) => s.file), ['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors']);
  assert.equal(p.totalSize, 611);
  assert.deepEqual(Object.keys(p.index!.weight_map), ['a', 'b', 'big', 'c', 'd', 'e']);
  assert.equal(p.index!.weight_map.big, 'model-00003-of-00004.safetensors');
  assert.equal(p.index!.metadata.total_size, 611);
  assert.deepEqual(JSON.parse(indexJson(p.index!)), p.index);
  for (const s of p.shards) {
    assert.equal(s.header.length % 8, 0);
    const h = parseSafetensorsBytes(Buffer.concat([s.header, Buffer.alloc(s.dataBytes)]));
    assert.deepEqual(h.metadata, { format: 'pt' });
    assert.deepEqual(h.tensors.map((t) => [t.name, t.begin, t.end]), s.tensors.map((t) => [t.name, t.begin, t.end]));
    assert.equal(s.fileBytes, s.header.length + s.dataBytes);
  }
  const one = planShards([spec('a', 3)]);
  assert.equal(one.shards[0].file, 'model.safetensors');
  assert.equal(one.index, null);
  assert.equal(planShards([]).shards.length, 1);
  assert.throws(() => planShards([spec('a', 1), spec('a', 1)]), InternalError);
  assert.throws(() => planShards([{ name: 'x', dtype: 'Q4' as never, shape: [1] }]), InternalError);
});

test('property: random tensor sets round-trip through the writer and openCheckpoint', async () => {
  const root = await tmpDir();
  for (let seed = 0; seed < 40; seed++) {
    const r = rng(seed);
    const seen = new Set<string>();
    const ts = randomTensors(r, randInt(r, 0, 12)).filter((t) => !seen.has(t.name) && seen.add(t.name));
    const max = randInt(r, 1, 200);
    const out = path.join(root, `out-${seed}`);
    const w = await CheckpointWriter.create(out, { specs: ts, maxShardBytes: max });
    await writeAll(w, ts);
    await w.writeJson('config.json', { model_type: 'llama', seed });
    const res = await w.finalize({ method: 'test', seed });
    assert.deepEqual(await leftovers(root), []);
    const plan = planShards(ts, max);
    // every shard's data respects the limit unless it holds one tensor
    for (const s of plan.shards) assert.ok(s.dataBytes <= max || s.tensors.length === 1, `seed ${seed}`);
    const ck = await openCheckpoint(out);
    try {
      assert.deepEqual([...ck.tensors.keys()].sort(), ts.map((t) => t.name).sort(), `seed ${seed}`);
      for (const t of ts) {
        const ref = ck.tensors.get(t.name)!;
        assert.equal(ref.dtype, t.dtype);
        assert.deepEqual(ref.shape, t.shape);
        assert.deepEqual(new Uint8Array(await ck.readRaw(t.name)), t.data, `seed ${seed} ${t.name}`);
      }
      assert.equal(ck.config.seed, seed);
      if (plan.shards.length > 1) {
        const idx = JSON.parse(await fsp.readFile(path.join(out, 'model.safetensors.index.json'), 'utf8'));
        assert.equal(idx.metadata.total_size, ts.reduce((a, t) => a + t.data.length, 0));
        assert.deepEqual(idx.weight_map, plan.index!.weight_map);
        for (const s of plan.shards) for (const t of s.tensors) assert.equal(path.basename(ck.tensors.get(t.name)!.file), s.file);
      } else {
        assert.ok(!fs.existsSync(path.join(out, 'model.safetensors.index.json')));
      }
    } finally {
      await ck.close();
    }
    const manifest = JSON.parse(await fsp.readFile(path.join(out, 'lesa.json'), 'utf8'));
    assert.equal(manifest.format, 'lesa-manifest/1');
    assert.deepEqual(manifest.files, res.files);
    assert.deepEqual(Object.keys(manifest.files).sort(), (await fsp.readdir(out)).filter((f) => f !== 'lesa.json').sort());
    assert.equal((await verifyOutput(out)).ok, true);
  }
  assert.equal(openAbortables(), 0);
  await fsp.rm(root, { recursive: true });
});

test('writer: temp dir then rename, misuse is an internal error, aux copy', async () => {
  const root = await tmpDir();
  const out = path.join(root, 'deep', 'out');
  const w = await CheckpointWriter.create(out, { specs: [spec('a', 4), spec('b', 2)] });
  assert.ok(fs.existsSync(w.tmpDir));
  assert.match(path.basename(w.tmpDir), /^\.out\.lesa-tmp-.+-\d+-[0-9a-f]{8}$/);
  assert.ok(!fs.existsSync(out));
  await assert.rejects(w.writeTensor('b', bytes(2)), InternalError);
  await assert.rejects(w.writeTensor('a', bytes(3)), InternalError);
  await assert.rejects(w.finalize({}), InternalError);
  const pending = w.writeTensor('a', bytes(4));
  await assert.rejects(w.writeTensor('b', bytes(2)), /another call is running/);
  await pending;
  await w.writeTensor('b', bytes(2));
  await assert.rejects(w.writeTensor('c', bytes(1)), InternalError);
  const src = path.join(root, 'tok.json');
  await fsp.writeFile(src, 'x'.repeat(100_000));
  await w.copyFile(src, 'tokenizer.json');
  await assert.rejects(w.copyFile(src, 'tokenizer.json'), InternalError);
  await assert.rejects(w.writeJson('../x.json', {}), CheckpointError);
  await assert.rejects(w.writeJson('model.safetensors', {}), InternalError);
  await w.finalize({ method: 'm' });
  assert.equal(await fsp.readFile(path.join(out, 'tokenizer.json'), 'utf8'), 'x'.repeat(100_000));
  assert.deepEqual(await leftovers(path.dirname(out)), []);
  await assert.rejects(w.writeJson('y.json', {}), InternalError);
  await fsp.rm(root, { recursive: true });
});

test('writer: output location rules', async () => {
  const root = await tmpDir();
  const input = await writeCheckpointDir(path.join(root, 'in'), { 'model.safetensors': buildSafetensors([]) });
  const before = await hashTree(input);
  await rejectsKind(CheckpointWriter.create(input, { inputDir: input, specs: [] }), 'OutputInsideInput');
  await rejectsKind(CheckpointWriter.create(path.join(input, 'sub', 'out'), { inputDir: input, specs: [], force: true }), 'OutputInsideInput');
  await fsp.symlink(input, path.join(root, 'alias'));
  await rejectsKind(CheckpointWriter.create(path.join(root, 'alias', 'o'), { inputDir: input, specs: [] }), 'OutputInsideInput');
  await rejectsKind(CheckpointWriter.create(root, { inputDir: input, specs: [], force: true }), 'InputInsideOutput');
  assert.deepEqual(await hashTree(input), before);

  // existing output: refused without force; with force replaced at finalize only
  const out = path.join(root, 'out');
  const w1 = await CheckpointWriter.create(out, { inputDir: input, specs: [spec('a', 1)] });
  await w1.writeTensor('a', bytes(1, 7));
  await w1.finalize({ n: 1 });
  await rejectsKind(CheckpointWriter.create(out, { inputDir: input, specs: [] }), 'OutputExists', /--force/);
  const w2 = await CheckpointWriter.create(out, { inputDir: input, specs: [spec('b', 1)], force: true });
  await w2.writeTensor('b', bytes(1, 9));
  assert.ok(fs.existsSync(path.join(out, 'lesa.json')), 'old output still there until finalize');
  await w2.finalize({ n: 2 });
  assert.equal(JSON.parse(await fsp.readFile(path.join(out, 'lesa.json'), 'utf8')).n, 2);
  assert.deepEqual((await fsp.readdir(out)).sort(), ['lesa.json', 'model.safetensors']);
  assert.deepEqual(await leftovers(root), []);

  // force never deletes something lesa did not write
  const foreign = path.join(root, 'foreign');
  await fsp.mkdir(foreign);
  await fsp.writeFile(path.join(foreign, 'thesis.tex'), 'x');
  await rejectsKind(CheckpointWriter.create(foreign, { specs: [], force: true }), 'OutputExists', /not a lesa output/);
  await fsp.writeFile(path.join(root, 'file'), 'x');
  await rejectsKind(CheckpointWriter.create(path.join(root, 'file'), { specs: [], force: true }), 'OutputExists');
  const empty = path.join(root, 'empty');
  await fsp.mkdir(empty);
  const w3 = await CheckpointWriter.create(empty, { specs: [], force: true });
  await w3.finalize({});
  assert.ok(fs.existsSync(path.join(empty, 'model.safetensors')));
  await fsp.rm(root, { recursive: true });
});

test('writer: abort removes everything; withCleanup aborts on error', async () => {
  const root = await tmpDir();
  const w = await CheckpointWriter.create(path.join(root, 'o'), { specs: [spec('a', 10), spec('b', 10)], maxShardBytes: 10 });
  await w.writeTensor('a', bytes(10));
  await w.abort();
  await w.abort();
  assert.deepEqual(await fsp.readdir(root), []);
  await assert.rejects(w.writeTensor('b', bytes(10)), InternalError);
  let tmp = '';
  await assert.rejects(withCleanup(async () => {
    const w2 = await CheckpointWriter.create(path.join(root, 'o'), { specs: [spec('a', 10)] });
    tmp = w2.tmpDir;
    await w2.writeTensor('a', bytes(10));
    throw new Error('boom');
  }), /boom/);
  assert.ok(tmp !== '' && !fs.existsSync(tmp));
  assert.deepEqual(await fsp.readdir(root), []);
  assert.equal(openAbortables(), 0);
  await fsp.rm(root, { recursive: true });
});

function enospcAfter(limit: number): OpenFile {
  let written = 0;
  return async (file, flags) => {
    const fh = await fsp.open(file, flags);
    return new Proxy(fh, {
      get(target, prop) {
        if (prop === 'write') {
          return async (buf: Uint8Array, off: number, len: number, pos: number) => {
            if (written + len > limit) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
            written += len;
            return target.write(buf, off, len, pos);
          };
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as FileHandle;
  };
}

test('writer: ENOSPC (injected) → DiskFull naming the bytes still needed; no leftovers', async () => {
  const root = await tmpDir();
  const specs = [spec('a', 1000), spec('b', 1000), spec('c', 1000)];
  const w = await CheckpointWriter.create(path.join(root, 'o'), { specs, maxShardBytes: 1500, openFile: enospcAfter(1500) });
  await w.writeTensor('a', bytes(1000));
  await rejectsKind(w.writeTensor('b', bytes(1000)), 'DiskFull', new RegExp(`${root}.*at least \\d+ more bytes`));
  assert.deepEqual(await fsp.readdir(root), []);
  assert.equal(openAbortables(), 0);
  // in a JSON write too
  const w2 = await CheckpointWriter.create(path.join(root, 'o'), { specs: [spec('a', 10)], openFile: enospcAfter(150) });
  await w2.writeTensor('a', bytes(10));
  await rejectsKind(w2.writeJson('config.json', { pad: 'x'.repeat(200) }), 'DiskFull');
  assert.deepEqual(await fsp.readdir(root), []);
  await fsp.rm(root, { recursive: true });
});

test('writer: ENOSPC on a real 1 MiB tmpfs → DiskFull for written and kernel-copied tensors; no leftovers', async (t) => {
  const root = await tmpDir();
  const mnt = path.join(root, 'mnt');
  await fsp.mkdir(mnt);
  if (process.getuid?.() !== 0 || spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]).status !== 0) {
    t.skip('skipped: cannot mount a tmpfs here (needs root); the injected-ENOSPC test covers the logic');
    await fsp.rm(root, { recursive: true });
    return;
  }
  try {
    const specs = [spec('a', 700_000), spec('b', 700_000)];
    const w = await CheckpointWriter.create(path.join(mnt, 'o'), { specs });
    await w.writeTensor('a', bytes(700_000));
    await rejectsKind(w.writeTensor('b', bytes(700_000)), 'DiskFull', /more bytes/);
    assert.deepEqual(await fsp.readdir(mnt), []);
    // The same through the kernel copy path (here across filesystems: its pwrite fallback).
    const srcFile = path.join(root, 'src');
    await fsp.writeFile(srcFile, bytes(1_400_000));
    const src = await fsp.open(srcFile, 'r');
    try {
      const w2 = await CheckpointWriter.create(path.join(mnt, 'o'), { specs });
      await w2.copyTensor('a', { fd: src.fd, start: 0, byteLength: 700_000 });
      await rejectsKind(w2.copyTensor('b', { fd: src.fd, start: 700_000, byteLength: 700_000 }), 'DiskFull', /more bytes/);
    } finally {
      await src.close();
    }
    assert.deepEqual(await fsp.readdir(mnt), []);
  } finally {
    spawnSync('umount', [mnt]);
    await fsp.rm(root, { recursive: true });
  }
});

test('verifyOutput: ok, flipped byte, missing and extra files, no manifest', async () => {
  const root = await tmpDir();
  const out = path.join(root, 'o');
  const ts: TensorData[] = [{ name: 'w', dtype: 'F32', shape: [4], data: bytes(16, 3) }];
  const w = await CheckpointWriter.create(out, { specs: ts });
  await writeAll(w, ts);
  await w.writeJson('config.json', {});
  await w.finalize({});
  assert.deepEqual(await verifyOutput(out), { dir: await fsp.realpath(out), ok: true, checked: 2, mismatched: [], missing: [], extra: [] });
  const f = path.join(out, 'model.safetensors');
  const b = await fsp.readFile(f);
  b[b.length - 3] ^= 0x01;
  await fsp.writeFile(f, b);
  let r = await verifyOutput(out);
  assert.equal(r.ok, false);
  assert.deepEqual(r.mismatched.map((m) => m.file), ['model.safetensors']);
  await fsp.rm(path.join(out, 'config.json'));
  await fsp.writeFile(path.join(out, 'stray.txt'), 'x');
  r = await verifyOutput(out);
  assert.deepEqual(r.missing, ['config.json']);
  assert.deepEqual(r.extra, ['stray.txt']);
  const m = JSON.parse(await fsp.readFile(path.join(out, 'lesa.json'), 'utf8'));
  m.files['../../etc/passwd'] = '0'.repeat(64);
  await fsp.writeFile(path.join(out, 'lesa.json'), JSON.stringify(m));
  await rejectsKind(verifyOutput(out), 'PathEscape');
  await fsp.writeFile(path.join(out, 'lesa.json'), '{"files": 1}');
  await rejectsKind(verifyOutput(out), 'ManifestInvalid');
  await fsp.rm(path.join(out, 'lesa.json'));
  await rejectsKind(verifyOutput(out), 'ManifestMissing');
  await fsp.rm(root, { recursive: true });
});

async function signalChild(sig: 'SIGINT' | 'SIGTERM'): Promise<{ code: number | null; root: string }> {
  const root = await tmpDir();
  const mod = (p: string) => pathToFileURL(path.resolve('dist/src/checkpoint', p)).href;
  const script = `
    import { CheckpointWriter } from ${JSON.stringify(mod('writer.js'))};
    import { installCleanupHandlers } from ${JSON.stringify(mod('cleanup.js'))};
    installCleanupHandlers();
    const w = await CheckpointWriter.create(${JSON.stringify(path.join(root, 'o'))}, { specs: [{ name: 'a', dtype: 'U8', shape: [10] }, { name: 'b', dtype: 'U8', shape: [10] }] });
    await w.writeTensor('a', new Uint8Array(10));
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error('child did not get ready')), 20_000);
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); res(); } });
  });
  assert.equal((await fsp.readdir(root)).length, 1, 'the temp dir exists while writing');
  child.kill(sig);
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  return { code, root };
}

test('cleanup: SIGINT exits 130 and SIGTERM 143, removing the temp dir', async () => {
  for (const [sig, want] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const { code, root } = await signalChild(sig);
    assert.equal(code, want, sig);
    assert.deepEqual(await fsp.readdir(root), [], sig);
    await fsp.rm(root, { recursive: true });
  }
});

void byteLen;

test('writer: removes the temporary siblings of killed runs on this host, nothing else', async () => {
  const root = await tmpDir();
  const out = path.join(root, 'out');
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // exited: its pid names no live process
  const host = path.basename(tempSibling(out, 'tmp')).slice('.out.lesa-tmp-'.length).replace(/-\d+-[0-9a-f]{8}$/, '');
  const names = {
    deadTmp: `.out.lesa-tmp-${host}-${dead}-0badc0de`,
    deadScratch: `.out.lesa-scratch-${host}-${dead}-12345678`,
    liveTmp: `.out.lesa-tmp-${host}-${process.pid}-abcdef01`,
    otherHost: `.out.lesa-tmp-${host}x-${dead}-abcdef01`,
    otherOutput: `.out2.lesa-tmp-${host}-${dead}-abcdef01`,
    oldForm: `.out.lesa-tmp-${dead}-abcdef01`,
  };
  for (const n of Object.values(names)) {
    await fsp.mkdir(path.join(root, n));
    await fsp.writeFile(path.join(root, n, 'x'), 'partial');
  }
  const w = await CheckpointWriter.create(out, { specs: [spec('a', 4)] });
  assert.deepEqual(w.removedLeftovers.sort(), [names.deadScratch, names.deadTmp].sort());
  const left = (await fsp.readdir(root)).sort();
  assert.deepEqual(left, [names.liveTmp, names.otherHost, names.otherOutput, names.oldForm, path.basename(w.tmpDir)].sort());
  await w.abort();
  await fsp.rm(root, { recursive: true });
});
