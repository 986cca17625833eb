import { rmSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { resolveLayout, type ModelLayout } from './arch/index.js';
import { openCheckpoint } from './checkpoint/checkpoint.js';
import { fingerprintCheckpoint, hashCheckpoint } from './checkpoint/verify.js';
import { MANIFEST_FORMAT, type ManifestInput } from './checkpoint/manifest.js';
import type { Checkpoint } from './checkpoint/types.js';
import { CheckpointWriter } from './checkpoint/writer.js';
import { tempSibling } from './checkpoint/leftovers.js';
import { CheckpointError, ioError } from './checkpoint/errors.js';
import { duringNativeWork, registerAbortable, unregisterAbortable, type Abortable } from './checkpoint/cleanup.js';
import { OutputTensorWriter } from './execute/write-tensor.js';
import type { ExpandOptions, MethodContext, Prepared } from './methods/method.js';
import type { OptionValue } from './methods/options.js';
import { MAX_GROWTH } from './methods/targets.js';
import { alignable, methodByName } from './methods/registry.js';
import { alignForReading } from './align/index.js';
import { permutedTensors, unitGeometry } from './align/units.js';
import type { Plan } from './plan/recipe.js';
import { applyScales } from './plan/scale.js';
import { estimateResources, tensorByteSize, type Resources } from './plan/resources.js';
import { refuseWholeTensorsOverCap } from './plan/whole-tensors.js';
import type { Reporter } from './progress/reporter.js';
import { silentReporter } from './progress/reporter.js';
import { PhaseClock } from './progress/phase-clock.js';
import { VERSION } from './version.js';
import { UserError } from './errors.js';

export interface ExpandRequest {
  input: string;
  output: string;
  method: string;
  options: Partial<Omit<ExpandOptions, 'methodOptions'>> & { targetLayers: number; methodOptions?: Record<string, OptionValue> };
  force?: boolean;
  dryRun?: boolean;
  maxShardBytes?: number;
  /** Also hash the input's full contents into the manifest (reads the input once more). */
  hashSource?: boolean;
  /** Where `input` came from when it was a hub id (recorded in the manifest). */
  sourceHub?: { repo: string; revision: string; commit: string };
  reporter?: Reporter;
}

export interface ExpandResult {
  plan: Plan;
  output?: string;
  seconds: number;
  /** Wall seconds per phase (plan, align, decompose: gram/eig/coefficients, train, predict, write, finalize). */
  phases: Record<string, number>;
  /** With alignment: mean cosine of adjacent layers' unit features before and after permuting. */
  alignment?: Record<string, number>;
  /** Estimated output size, peak memory and scratch disk, from the plan alone. */
  resources: Resources;
}

export function resolveOptions(o: ExpandRequest['options']): ExpandOptions {
  return {
    targetLayers: o.targetLayers,
    after: o.after,
    placement: o.placement,
    seed: o.seed ?? 0,
    align: o.align ?? false,
    threads: o.threads,
    methodOptions: o.methodOptions ?? {},
    scale: o.scale,
  };
}

export { MAX_GROWTH };

/** Opens and validates a checkpoint, then plans it with a method. Reads no tensor data. */
export async function planExpansion(input: string, method: string, options: ExpandOptions): Promise<{ ckpt: Checkpoint; layout: ModelLayout; plan: Plan; ctx: MethodContext }> {
  const ckpt = await openCheckpoint(input);
  try {
    const layout = resolveLayout(ckpt.config, ckpt.tensors);
    // A plan holds one entry per output tensor: an absurd depth would exhaust memory while
    // planning (stack --target-layers 100000000 did) instead of failing with a message.
    const maxTarget = MAX_GROWTH * layout.layers;
    if (options.targetLayers > maxTarget) {
      throw new UserError(`--target-layers ${options.targetLayers} is more than ${MAX_GROWTH}× the model's ${layout.layers} layers (at most ${maxTarget}); lesa refuses a plan that large`);
    }
    const ctx: MethodContext = { layout, config: ckpt.config, options };
    const m = methodByName(method);
    if (options.align && !m.alignment) {
      throw new UserError(`--align changes only methods that combine layers (${alignable()}); ${method} would write the same model with permuted units`);
    }
    const plan = applyScales(m.plan(ctx), layout, options.scale ?? {});
    let permuted: Iterable<string> = [];
    if (options.align || m.alignment === 'required') {
      // unitGeometry fails now, at plan time, if heads/units do not fit the config.
      permuted = permutedTensors(layout, unitGeometry(layout, ckpt.config)).keys();
      plan.options = { ...plan.options, align: true };
    }
    refuseWholeTensorsOverCap(ckpt, plan, permuted);
    return { ckpt, layout, plan, ctx };
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
  const { ckpt: input, plan, ctx } = await planExpansion(req.input, req.method, options);
  let ckpt = input;
  const resources = estimateResources(input, plan, method.resources?.(plan, ctx));
  if (req.dryRun) {
    await ckpt.close();
    return { plan, seconds: (performance.now() - t0) / 1000, phases: reporter.totals(), resources };
  }
  const output = resolve(req.output);
  let scratch: string | undefined;
  let writer: CheckpointWriter | undefined;
  let prepared: Prepared | undefined;
  const removeScratch = async () => { if (scratch) await rm(scratch, { recursive: true, force: true }); };
  const scratchGuard: Abortable = { abort: removeScratch, abortSync: () => { if (scratch) rmSync(scratch, { recursive: true, force: true }); } };
  registerAbortable(scratchGuard);
  try {
    writer = await CheckpointWriter.create(output, {
      inputDir: ckpt.dir, force: req.force ?? false, maxShardBytes: req.maxShardBytes, specs: plan.tensors,
    });
    for (const name of writer.removedLeftovers) reporter.info(`removed ${name}, left next to the output by a killed run`);
    scratch = tempSibling(output, 'scratch');
    await mkdir(scratch);
    let alignment: Record<string, number> | undefined;
    if (plan.options.align) {
      const aligned = await duringNativeWork(() => alignForReading(input, ctx.layout, reporter, options.threads));
      ckpt = aligned.ckpt;
      alignment = aligned.summary;
    }
    const prepare = method.prepare?.bind(method);
    prepared = prepare
      ? await duringNativeWork(() => prepare(ckpt, plan, ctx, { scratchDir: scratch!, phase: (n, d) => reporter.phase(n, d), progress: (a, b, d) => reporter.progress(a, b, d) }))
      : undefined;
    reporter.phase('write', { tensors: plan.tensors.length });
    const total = resources.outputBytes;
    let done = 0;
    let written = 0;
    const out = new OutputTensorWriter(ckpt, writer, prepared, (t) => {
      done += tensorByteSize(t);
      reporter.progress(done, total, { tensor: ++written, tensors: plan.tensors.length, unit: 'bytes' });
    });
    for (const t of plan.tensors) await out.write(t);
    await out.flush();
    const finished = prepared;
    const ran = prepared?.record;
    prepared = undefined;
    await finished?.dispose();
    await writer.writeJson('config.json', plan.config, input.configFloats);
    for (const f of ckpt.auxFiles) await writer.copyFile(join(ckpt.dir, f), f);
    const source: ManifestInput['source'] = { dir: ckpt.dir, fingerprint: await fingerprintCheckpoint(ckpt), ...(req.sourceHub ? { hub: req.sourceHub } : {}) };
    if (req.hashSource) {
      reporter.phase('hash source');
      source.sha256 = await hashCheckpoint(ckpt);
    }
    reporter.phase('finalize');
    await writer.finalize({ ...manifestOf(plan, ctx, source), ...(alignment ? { alignment } : {}), ...ran });
    return { plan, output, seconds: (performance.now() - t0) / 1000, phases: reporter.totals(), alignment, resources };
  } catch (e) {
    await writer?.abort();
    throw asUserError(e, output, resources);
  } finally {
    // A failure while writing must still close what the method holds open (LESA's scratch file).
    await prepared?.dispose().catch(() => undefined);
    await removeScratch();
    unregisterAbortable(scratchGuard);
    await ckpt.close();
  }
}

/**
 * An operating-system error that escaped the writer (a method's scratch file, mkdtemp) is the
 * disk's or the environment's fault, not a bug: give it the one-line user-error form.
 */
function asUserError(e: unknown, output: string, need: Resources): unknown {
  if (e instanceof CheckpointError || e instanceof UserError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  if (!(err instanceof Error) || typeof err.code !== 'string' || typeof err.syscall !== 'string') return e;
  if (err.code === 'ENOSPC' || err.code === 'EDQUOT') {
    const { outputBytes: weights, scratchBytes: scratch } = need;
    return new CheckpointError('DiskFull', `${dirname(output)}: the disk is full (${err.message}); at least ${weights + scratch} bytes are needed there: ${weights} for the output weights plus ${scratch} for the method's scratch files; free space there or choose another output directory (the partial output was removed)`, { file: err.path, cause: e });
  }
  return ioError(e, `${err.path ?? dirname(output)}: ${err.syscall}`, err.path);
}

export function manifestOf(plan: Plan, ctx: MethodContext, source: ManifestInput['source']): ManifestInput {
  return {
    format: MANIFEST_FORMAT,
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
