import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { resolveLayout, type ModelLayout } from './arch/index.js';
import { openCheckpoint } from './checkpoint/checkpoint.js';
import { fingerprintCheckpoint, hashCheckpoint } from './checkpoint/verify.js';
import type { ManifestInput } from './checkpoint/manifest.js';
import type { Checkpoint } from './checkpoint/types.js';
import { CheckpointWriter } from './checkpoint/writer.js';
import { registerAbortable, unregisterAbortable, type Abortable } from './checkpoint/cleanup.js';
import { produce } from './execute/produce.js';
import { defaultLesaOptions, type ExpandOptions, type LesaOptions, type MethodContext } from './methods/method.js';
import { methodByName } from './methods/registry.js';
import type { Plan } from './plan/recipe.js';
import type { Reporter } from './report/reporter.js';
import { silentReporter } from './report/reporter.js';
import { PhaseClock } from './report/phase-clock.js';
import { VERSION } from './version.js';

export interface ExpandRequest {
  input: string;
  output: string;
  method: string;
  options: Partial<Omit<ExpandOptions, 'lesa'>> & { targetLayers: number; lesa?: Partial<LesaOptions> };
  force?: boolean;
  dryRun?: boolean;
  maxShardBytes?: number;
  /** Also hash the input's full contents into the manifest (reads the input once more). */
  hashSource?: boolean;
  reporter?: Reporter;
}

export interface ExpandResult {
  plan: Plan;
  output?: string;
  seconds: number;
  /** Wall seconds per phase (plan, decompose: gram/eig/coefficients, train, predict, write, finalize). */
  phases: Record<string, number>;
}

export function resolveOptions(o: ExpandRequest['options']): ExpandOptions {
  return {
    targetLayers: o.targetLayers,
    after: o.after,
    placement: o.placement,
    seed: o.seed ?? 0,
    matchNorm: o.matchNorm ?? false,
    lesa: { ...defaultLesaOptions, ...(o.lesa ?? {}) },
  };
}

/** Opens and validates a checkpoint, then plans it with a method. Reads no tensor data. */
export async function planExpansion(input: string, method: string, options: ExpandOptions): Promise<{ ckpt: Checkpoint; layout: ModelLayout; plan: Plan; ctx: MethodContext }> {
  const ckpt = await openCheckpoint(input);
  try {
    const layout = resolveLayout(ckpt.config, ckpt.tensors);
    const ctx: MethodContext = { layout, config: ckpt.config, options };
    return { ckpt, layout, plan: methodByName(method).plan(ctx), ctx };
  } catch (e) {
    await ckpt.close();
    throw e;
  }
}

/**
 * The whole expansion: plan, let the method learn what it needs (LESA), then write every
 * output tensor in order into a temporary directory that is renamed into place at the end.
 */
export async function expand(req: ExpandRequest): Promise<ExpandResult> {
  const t0 = performance.now();
  const reporter = new PhaseClock(req.reporter ?? silentReporter);
  reporter.phase('plan');
  const method = methodByName(req.method);
  const options = resolveOptions(req.options);
  const { ckpt, plan, ctx } = await planExpansion(req.input, req.method, options);
  if (req.dryRun) {
    await ckpt.close();
    return { plan, seconds: (performance.now() - t0) / 1000, phases: reporter.totals() };
  }
  const output = resolve(req.output);
  let scratch: string | undefined;
  let writer: CheckpointWriter | undefined;
  const removeScratch = async () => { if (scratch) await rm(scratch, { recursive: true, force: true }); };
  const scratchGuard: Abortable = { abort: removeScratch, abortSync: () => { if (scratch) rmSync(scratch, { recursive: true, force: true }); } };
  registerAbortable(scratchGuard);
  try {
    writer = await CheckpointWriter.create(output, {
      inputDir: ckpt.dir, force: req.force ?? false, maxShardBytes: req.maxShardBytes, specs: plan.tensors,
    });
    scratch = await mkdtemp(join(dirname(output), `.${basename(output)}.lesa-scratch-`));
    const prepared = method.prepare
      ? await method.prepare(ckpt, plan, ctx, { scratchDir: scratch, phase: (n, d) => reporter.phase(n, d), progress: (a, b, d) => reporter.progress(a, b, d) })
      : undefined;
    reporter.phase('write', { tensors: plan.tensors.length });
    const total = plan.tensors.reduce((a, t) => a + byteSize(t.shape, t.dtype), 0);
    let done = 0;
    for (const [k, t] of plan.tensors.entries()) {
      const bytes = await produce(ckpt, t, prepared);
      await writer.writeTensor(t.name, bytes);
      done += bytes.byteLength;
      reporter.progress(done, total, { tensor: k + 1, tensors: plan.tensors.length, unit: 'bytes' });
    }
    await prepared?.dispose();
    await writer.writeJson('config.json', plan.config);
    for (const f of ckpt.auxFiles) await writer.copyFile(join(ckpt.dir, f), f);
    const source: ManifestInput['source'] = { dir: ckpt.dir, fingerprint: await fingerprintCheckpoint(ckpt) };
    if (req.hashSource) {
      reporter.phase('hash source');
      source.sha256 = await hashCheckpoint(ckpt);
    }
    reporter.phase('finalize');
    await writer.finalize(manifestOf(plan, ctx, source));
    return { plan, output, seconds: (performance.now() - t0) / 1000, phases: reporter.totals() };
  } catch (e) {
    await writer?.abort();
    throw e;
  } finally {
    await removeScratch();
    unregisterAbortable(scratchGuard);
    await ckpt.close();
  }
}

function byteSize(shape: number[], dtype: string): number {
  const size = dtype === 'F32' ? 4 : dtype === 'F64' || dtype === 'I64' ? 8 : dtype === 'I8' || dtype === 'U8' || dtype === 'BOOL' ? 1 : 2;
  return shape.reduce((a, b) => a * b, size);
}

export function manifestOf(plan: Plan, ctx: MethodContext, source: ManifestInput['source']): ManifestInput {
  return {
    format: 'lesa-manifest/1',
    lesa_version: VERSION,
    created: new Date().toISOString(),
    method: plan.method,
    options: plan.options,
    source,
    source_layers: plan.sourceLayers,
    target_layers: plan.targetLayers,
    layer_prefix: ctx.layout.arch.layerPrefix,
    layers: plan.layers,
    new_layers: plan.layers.filter((l) => l.kind === 'new').map((l) => l.out),
  };
}
