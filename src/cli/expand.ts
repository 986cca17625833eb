import { availableParallelism } from 'node:os';
import { UserError } from '../errors.js';
import { expand } from '../expand.js';
import type { Resources } from '../plan/resources.js';
import type { Plan } from '../plan/recipe.js';
import { alignable, methodFlags, methods } from '../methods/registry.js';
import { flagOf, type OptionValue } from '../methods/options.js';
import { bytesArg, choiceArg, intArg, listArg, optionArg, optionFlag, scaleArg } from './args.js';
import type { Command, CommandIO } from './command.js';
import { resolveModel } from './hub.js';

/** Chosen by issue 7's study (docs/study.md): best mean regret over SmolLM2 and Gemma 3, with bottom placement. */
export const DEFAULT_METHOD = 'llama-pro';


export const expandCommand: Command = {
  summary: `Grow DIR to --target-layers layers and write the checkpoint to OUT (method default: ${DEFAULT_METHOD}).`,
  positionals: 'DIR -o OUT --target-layers N',
  options: {
    output: { type: 'string', short: 'o', help: 'directory to write the grown model to (required unless --dry-run)' },
    method: { type: 'string', short: 'm', help: `${methods.map((m) => m.name).join(' | ')} (lesa methods describes each)`, shows: DEFAULT_METHOD },
    'target-layers': { type: 'string', short: 'n', help: 'depth of the grown model (required)' },
    after: { type: 'string', help: 'comma-separated original layers to insert after (one per new layer), instead of --placement' },
    placement: { type: 'string', help: 'where per-gap methods put new layers: top | uniform | bottom | llama-pro', shows: 'the method\'s' },
    seed: { type: 'string', help: 'seed of random streams (random init, LESA\'s predictor); integer 0..2^32-1', shows: '0' },
    align: { type: 'boolean', help: `permute each layer's MLP units and attention heads to match the layer before (${alignable()})` },
    'max-shard-size': { type: 'string', help: 'largest safetensors shard of the output, e.g. 5GB', shows: 'the writer\'s' },
    threads: { type: 'string', help: 'BLAS threads for LESA\'s numerics; integer 1..1024', shows: 'the cores' },
    'hash-source': { type: 'boolean', help: 'also record the input\'s sha256 in lesa.json (reads the input once more)' },
    force: { type: 'boolean', help: 'replace OUT if it exists' },
    'dry-run': { type: 'boolean', help: 'print the plan and the estimated output size, memory and scratch disk; write nothing' },
    scale: { type: 'string', multiple: true, help: 'TYPE=FACTOR[,TYPE=FACTOR]: multiply the new layers\' tensors of a type (e.g. o_proj=0.5,down_proj=0.5); repeatable' },
  },
  // Every method's own options (lesa's --epochs, random's --match-norm, ...), from their declarations.
  groups: methods.filter((m) => m.options).map((m) => ({
    title: `${m.name} options`,
    flags: Object.fromEntries(Object.entries(m.options!).map(([k, spec]) => [flagOf(k), optionFlag(spec)])),
  })),
  async run(v: Record<string, string | boolean | undefined>, pos: string[], io: CommandIO) {
    if (pos.length !== 1) throw new UserError('usage: lesa expand DIR -o OUT --target-layers N [--method M]');
    const s = (k: string) => v[k] as string | undefined;
    const targetLayers = intArg('target-layers', s('target-layers'), 2);
    if (targetLayers === undefined) throw new UserError('--target-layers is required: the depth of the grown model');
    if (!v['dry-run'] && !s('output')) throw new UserError('-o/--output is required: the directory to write the grown model to');
    const threads = intArg('threads', s('threads'), 1, 1024);
    const method = s('method') ?? DEFAULT_METHOD;
    const methodOptions: Record<string, OptionValue> = {};
    for (const o of methodFlags()) { // every method's flags are checked; the chosen method's are used
      const value = optionArg(o.flag, o.spec, v[o.flag]);
      if (value !== undefined && o.method.name === method) methodOptions[o.key] = value;
    }
    const source = await resolveModel(pos[0]);
    const result = await expand({
      input: source.dir,
      sourceHub: source.hub,
      output: s('output') ?? '',
      method,
      options: {
        targetLayers,
        after: listArg('after', s('after')),
        placement: choiceArg('placement', s('placement'), ['top', 'uniform', 'bottom', 'llama-pro'] as const),
        seed: intArg('seed', s('seed'), 0, 2 ** 32 - 1),
        align: Boolean(v.align),
        threads,
        methodOptions,
        scale: scaleArg(v.scale as unknown as string[] | undefined),
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
