import { availableParallelism } from 'node:os';
import { UserError } from '../errors.js';
import { expand } from '../expand.js';
import type { Resources } from '../plan/resources.js';
import type { Plan } from '../plan/recipe.js';
import { resolveModel } from './hub.js';
import { bytesArg, choiceArg, intArg, listArg, numArg, scaleArg } from './args.js';
import type { Command, CommandIO } from './main.js';

/** Chosen by issue 7's study (docs/study.md): best mean regret over SmolLM2 and Gemma 3, with bottom placement. */
export const DEFAULT_METHOD = 'llama-pro';

export const expandCommand: Command = {
  summary: `Grow DIR to --target-layers layers and write the checkpoint to OUT (method default: ${DEFAULT_METHOD}).`,
  positionals: 'DIR -o OUT --target-layers N',
  options: {
    output: { type: 'string', short: 'o' },
    method: { type: 'string', short: 'm' },
    'target-layers': { type: 'string', short: 'n' },
    after: { type: 'string' },
    placement: { type: 'string' },
    seed: { type: 'string' },
    'match-norm': { type: 'boolean' },
    epochs: { type: 'string' },
    lambda: { type: 'string' },
    hidden: { type: 'string' },
    lr: { type: 'string' },
    batch: { type: 'string' },
    'weight-decay': { type: 'string' },
    fill: { type: 'string' },
    'zero-out': { type: 'boolean' },
    align: { type: 'boolean' },
    'max-memory': { type: 'string' },
    'max-shard-size': { type: 'string' },
    threads: { type: 'string' },
    'hash-source': { type: 'boolean' },
    force: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    scale: { type: 'string', multiple: true },
  },
  async run(v: Record<string, string | boolean | undefined>, pos: string[], io: CommandIO) {
    if (pos.length !== 1) throw new UserError('usage: lesa expand DIR -o OUT --target-layers N [--method M]');
    const s = (k: string) => v[k] as string | undefined;
    const targetLayers = intArg('target-layers', s('target-layers'), 2);
    if (targetLayers === undefined) throw new UserError('--target-layers is required: the depth of the grown model');
    if (!v['dry-run'] && !s('output')) throw new UserError('-o/--output is required: the directory to write the grown model to');
    const threads = intArg('threads', s('threads'), 1, 1024);
    if (threads !== undefined) (await import('../native/index.js')).setThreads(threads);
    const lesa = {
      epochs: intArg('epochs', s('epochs'), 1, 100000),
      lambda: numArg('lambda', s('lambda'), 0, 1),
      hidden: intArg('hidden', s('hidden'), 1, 65536),
      lr: numArg('lr', s('lr'), 0, 10, true),
      batch: intArg('batch', s('batch'), 1, 1 << 20),
      weightDecay: numArg('weight-decay', s('weight-decay'), 0, 10),
      fill: choiceArg('fill', s('fill'), ['mean', 'layer0'] as const),
      zeroOut: v['zero-out'] ? true : undefined,
      maxMemory: bytesArg('max-memory', s('max-memory')),
    };
    const source = await resolveModel(pos[0]);
    const result = await expand({
      input: source.dir,
      sourceHub: source.hub,
      output: s('output') ?? '',
      method: s('method') ?? DEFAULT_METHOD,
      options: {
        targetLayers,
        after: listArg('after', s('after')),
        placement: choiceArg('placement', s('placement'), ['top', 'uniform', 'bottom', 'llama-pro'] as const),
        seed: intArg('seed', s('seed'), 0, 2 ** 32 - 1),
        matchNorm: Boolean(v['match-norm']),
        align: Boolean(v.align),
        scale: scaleArg(v.scale as unknown as string[] | undefined),
        lesa: Object.fromEntries(Object.entries(lesa).filter(([, x]) => x !== undefined)),
      },
      force: Boolean(v.force),
      hashSource: Boolean(v['hash-source']),
      dryRun: Boolean(v['dry-run']),
      maxShardBytes: bytesArg('max-shard-size', s('max-shard-size')),
      reporter: io.reporter,
    });
    const summary = { method: result.plan.method, source_layers: result.plan.sourceLayers, target_layers: result.plan.targetLayers, layers: result.plan.layers, output: result.output, seconds: result.seconds, phases: result.phases, threads: threads ?? availableParallelism(), resources: result.resources, ...(result.alignment ? { alignment: result.alignment } : {}) };
    if (v['dry-run']) io.print(`${describePlan(result.plan)}\n${describeResources(result.resources)}`, { ...summary, options: result.plan.options, tensors: result.plan.tensors });
    else io.print(`wrote ${result.output} (${result.plan.method}, ${result.plan.sourceLayers} → ${result.plan.targetLayers} layers) in ${result.seconds.toFixed(1)} s`, summary);
  },
};

export function describePlan(plan: Plan): string {
  const lines = [`plan: ${plan.method}, ${plan.sourceLayers} → ${plan.targetLayers} layers, ${plan.tensors.length} tensors`];
  for (const l of plan.layers) lines.push(`  layer ${String(l.out).padStart(3)}  ${l.kind === 'new' ? 'NEW     ' : 'original'}  ${l.how}`);
  const counts = new Map<string, number>();
  for (const t of plan.tensors) counts.set(t.recipe.kind, (counts.get(t.recipe.kind) ?? 0) + 1);
  lines.push(`  recipes: ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ')}`);
  return lines.join('\n');
}

export function describeResources(r: Resources): string {
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  const lines = [`  estimated: output ${gb(r.outputBytes)}, peak memory ${gb(r.memoryBytes)} (+ the runtime), scratch disk ${gb(r.scratchBytes)}`];
  for (const n of r.notes) lines.push(`    ${n}`);
  return lines.join('\n');
}
