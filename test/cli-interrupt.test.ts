/**
 * Interrupting the real CLI mid-expansion (SIGINT, SIGTERM, SIGKILL; heuristic and LESA
 * during training) and filling the disk: no complete-looking output may exist afterwards,
 * the input is unchanged, and (except after SIGKILL) no temporary directory remains.
 *
 * The input is a synthetic Llama of 8 layers with 1024x1024 f32 linears (~230 MB), written
 * once into os.tmpdir(); expanding it takes seconds, so the signal lands while tensors are
 * being written (after the first --json progress event).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { errorLines, exists, runLesa, siblingsOf, treeDigest, type CliResult } from './helpers/cli.js';
import { tinyLlama, writeSpec, writeSyntheticLlama } from './helpers/tiny-checkpoint.js';

const RUN_MS = 240_000;
let root = '';
let input = '';
let inputDigest = '';

before(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lesa-interrupt-'));
  input = path.join(root, 'in');
  const bytes = await writeSyntheticLlama(input, { layers: 8, hidden: 1024, inter: 1024, vocab: 256 });
  await fsp.writeFile(path.join(input, 'tokenizer_config.json'), '{}\n');
  inputDigest = await treeDigest(input);
  console.log(`interrupt: synthetic input ${(bytes / 1e6).toFixed(0)} MB in ${input}`);
});

after(async () => {
  if (root) await fsp.rm(root, { recursive: true, force: true });
});

/** Run an expansion with --json and send `signal` once `when` matches the stderr seen so far. */
async function interrupted(out: string, signal: NodeJS.Signals, when: RegExp, extra: string[], delayMs = 0): Promise<{ r: CliResult; sentAfter: string; exitMs: number }> {
  let sent = false;
  let sentAfter = '';
  let sentAt = 0;
  const r = await runLesa(['expand', input, '-o', out, '--json', ...extra], {
    timeoutMs: RUN_MS,
    onStderr: (text: string, child: ChildProcess) => {
      if (sent || !when.test(text)) return;
      sent = true;
      sentAfter = text;
      setTimeout(() => { sentAt = performance.now(); child.kill(signal); }, delayMs);
    },
  });
  assert.ok(sent, `the run ended before ${when} appeared on stderr:\n${r.stderr}`);
  return { r, sentAfter, exitMs: performance.now() - sentAt };
}

function events(stderr: string): { event: string; name?: string; phase?: string; message?: string }[] {
  return stderr.split('\n').filter((l) => l.startsWith('{"event"')).map((l) => JSON.parse(l) as { event: string });
}

const FIRST_WRITE_PROGRESS = /"event":"progress","done":\d+,"total":\d+,"tensor"/;

async function assertNothingLeft(out: string): Promise<void> {
  assert.ok(!(await exists(out)), `${out} exists`);
  assert.deepEqual(await siblingsOf(path.dirname(out), path.basename(out)), [], 'no temp/scratch sibling');
  assert.equal(await treeDigest(input), inputDigest, 'input unchanged');
}

test('SIGINT while writing: exit 130, no output, temp and scratch removed, input unchanged', { timeout: RUN_MS }, async () => {
  const out = path.join(root, 'out-int');
  const { r, exitMs } = await interrupted(out, 'SIGINT', FIRST_WRITE_PROGRESS, ['--method', 'average', '--target-layers', '12']);
  assert.equal(r.signal, null);
  assert.equal(r.code, 130, r.stderr);
  assert.ok(!events(r.stderr).some((e) => e.name === 'finalize'), 'interrupted before finalize');
  await assertNothingLeft(out);
  console.log(`interrupt: average interrupted while writing: exit 130 ${(exitMs / 1000).toFixed(2)} s after SIGINT`);
});

test('SIGTERM while writing: exit 143, nothing left', { timeout: RUN_MS }, async () => {
  const out = path.join(root, 'out-term');
  const { r } = await interrupted(out, 'SIGTERM', FIRST_WRITE_PROGRESS, ['--method', 'copy', '--target-layers', '12']);
  assert.equal(r.code, 143, r.stderr);
  await assertNothingLeft(out);
});

test('SIGINT during LESA training: ends within seconds by SIGINT (shell status 130), no output, scratch removed', { timeout: RUN_MS }, async () => {
  // Training runs on libuv's thread pool; process.exit() would join it and wait for the whole
  // training (it did: 216 s for 50 epochs). The handler cleans up, then re-raises the signal.
  const out = path.join(root, 'out-lesa');
  const { r, sentAfter, exitMs } = await interrupted(out, 'SIGINT', /"event":"phase","name":"train"/, ['--method', 'lesa', '--epochs', '50', '--target-layers', '10'], 300);
  const phases = events(sentAfter).filter((e) => e.event === 'phase').map((e) => e.name);
  assert.equal(phases.at(-1), 'train', `signal sent during ${phases.at(-1)}`);
  assert.ok(r.code === 130 || r.signal === 'SIGINT', `exit ${r.code} signal ${r.signal}: ${r.stderr}`);
  assert.ok(exitMs < 15_000, `took ${exitMs.toFixed(0)} ms to end after SIGINT`);
  assert.ok(!events(r.stderr).some((e) => e.name === 'write'), 'never reached the write phase');
  await assertNothingLeft(out);
  console.log(`interrupt: lesa interrupted in "train": ended ${(exitMs / 1000).toFixed(2)} s after SIGINT (code ${r.code}, signal ${r.signal})`);
});

test('SIGKILL while writing: no OUT; the temp sibling left is hidden, incomplete, and the next run to OUT removes it', { timeout: 2 * RUN_MS }, async () => {
  const out = path.join(root, 'out-kill');
  const { r } = await interrupted(out, 'SIGKILL', FIRST_WRITE_PROGRESS, ['--method', 'average', '--target-layers', '12']);
  assert.equal(r.signal, 'SIGKILL');
  assert.ok(!(await exists(out)), 'no OUT after SIGKILL');
  assert.equal(await treeDigest(input), inputDigest, 'input unchanged');
  const left = await siblingsOf(root, 'out-kill');
  console.log(`interrupt: after SIGKILL these remain next to OUT: ${left.join(', ') || '(nothing)'}`);
  for (const name of left) {
    assert.match(name, /^\.out-kill\.lesa-(tmp|scratch)-/);
    const inside = await fsp.readdir(path.join(root, name));
    assert.ok(!inside.includes('lesa.json'), `${name} holds a lesa.json`);
    assert.ok(!inside.includes('model.safetensors.index.json'), `${name} holds an index`);
    const r2 = await runLesa(['verify', path.join(root, name)], { timeoutMs: 60_000 });
    assert.equal(r2.code, 2, `lesa verify must refuse the leftover ${name}: ${r2.stderr}`);
  }
  // A later run to the same OUT succeeds and verifies, and removes the dead run's siblings, saying so.
  const r3 = await runLesa(['expand', input, '-o', out, '--json', '--method', 'average', '--target-layers', '12'], { timeoutMs: RUN_MS });
  assert.equal(r3.code, 0, r3.stderr);
  const said = events(r3.stderr).filter((e) => e.event === 'info').map((e) => String(e.message));
  for (const name of left) assert.ok(said.some((m) => m.includes(name) && m.includes('killed run')), `no notice for ${name}: ${said.join(' | ')}`);
  const r4 = await runLesa(['verify', out], { timeoutMs: RUN_MS });
  assert.equal(r4.code, 0, r4.stderr + r4.stdout);
  const still = await siblingsOf(root, 'out-kill');
  assert.deepEqual(still, [], 'a later run to the same OUT removes the killed run\'s siblings');
  assert.equal(await treeDigest(input), inputDigest, 'input unchanged');
  await fsp.rm(out, { recursive: true, force: true });
  for (const n of still) await fsp.rm(path.join(root, n), { recursive: true, force: true });
});

test('disk full: exit 2, one line with the bytes needed, nothing left on the full filesystem', { timeout: RUN_MS }, async (t) => {
  const mnt = path.join(root, 'tmpfs');
  await fsp.mkdir(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    t.skip(`cannot mount a tmpfs here (${(m.stderr || m.error?.message || '').trim()}); disk-full test skipped`);
    return;
  }
  try {
    // ~2.6 MB of input, ~3.9 MB of output: more than the 2 MiB tmpfs holds.
    const small = path.join(root, 'in-small');
    await writeSpec(small, tinyLlama({ layers: 4, hidden: 128, inter: 256, vocab: 64 }));
    const smallDigest = await treeDigest(small);
    for (const [method, extra] of [['average', []], ['copy', ['--max-shard-size', '500KB']], ['lesa', ['--epochs', '1']]] as const) {
      const out = path.join(mnt, `out-${method}`);
      const r = await runLesa(['expand', small, '-o', out, '--quiet', '--method', method, '--target-layers', '6', ...extra], { timeoutMs: RUN_MS });
      assert.equal(r.code, 2, `${method}: ${r.stderr}`);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^lesa: .*disk is full/);
      assert.match(lines[0], /at least \d+ more bytes|\d+ bytes/);
      assert.deepEqual(await fsp.readdir(mnt), [], `${method}: nothing left on the tmpfs`);
      console.log(`interrupt: disk full (${method}): ${lines[0]}`);
    }
    // Full while LESA writes its scratch file (predicted layers), before any output tensor.
    await fsp.writeFile(path.join(mnt, 'filler'), Buffer.alloc(1_900_000));
    const r = await runLesa(['expand', small, '-o', path.join(mnt, 'out-lesa2'), '--quiet', '--method', 'lesa', '--epochs', '1', '--target-layers', '6'], { timeoutMs: RUN_MS });
    assert.equal(r.code, 2, `lesa, scratch: ${r.stderr}`);
    assert.match(errorLines(r.stderr).join('\n'), /^lesa: .*disk is full[^\n]*$/);
    assert.deepEqual(await fsp.readdir(mnt), ['filler'], 'lesa, scratch: nothing left on the tmpfs');
    console.log(`interrupt: disk full (lesa scratch): ${errorLines(r.stderr)[0]}`);
    assert.equal(await treeDigest(small), smallDigest);
  } finally {
    const u = spawnSync('umount', [mnt], { encoding: 'utf8' });
    assert.equal(u.status, 0, `umount: ${u.stderr}`);
  }
});
