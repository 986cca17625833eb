import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersWith, linearTypes, resolveLayout } from '../arch/index.js';
import { openCheckpoint } from '../checkpoint/checkpoint.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { UserError } from '../errors.js';
import { resolveModel } from './hub.js';
import { leaveOneOut, summarize, type LooRow } from '../analyze/loo.js';
import { bestGaps, neighbourPredictability, scoreGaps } from '../analyze/gaps.js';
import { alignForReading, type AlignStats } from '../align/index.js';
import { buildReport, defaultLooLayers, writeReport } from '../analyze/report/index.js';
import { lesaOptions } from '../methods/lesa/options.js';
import { flagOf, withDefaults } from '../methods/options.js';
import { interiorLayers } from '../methods/lesa/predictor.js';
import { intArg, listArg, optionArg, optionFlag } from './args.js';
import { formatInformation, informationStudy } from '../analyze/information.js';
import type { Command, CommandIO } from './command.js';

/** Report mode: leave-one-out is one predictor training per layer and type, so sample it. */
export const REPORT_LOO_LAYERS = 8;
export const REPORT_LOO_EPOCHS = 3;

export const analyzeCommand: Command = {
  summary: 'Leave-one-layer-out predictability per weight type and layer: LESA next to copy, average and a size-matched random matrix. '
    + 'With --report OUT/: a self-contained HTML page, PNG figures and report.json (spectrum, energy, coefficient trajectories, '
    + 'leave-one-out heat maps, layer similarity, and `lesa compare` results given with --compare DIR). '
    + 'With --information: does LESA carry information? On the held-out layers, cosine, norm ratio, mean-row energy share and σ₁/‖Ŵ‖_F '
    + `of LESA at --epochs (default ${lesaOptions.epochs.default}) and at Llama-3-8B's step count, beside rand-svd and a size-matched random matrix (also in the report). `
    + `In report mode leave-one-out defaults to ${REPORT_LOO_LAYERS} evenly spaced interior layers and --loo-epochs ${REPORT_LOO_EPOCHS}; --no-loo skips it.`,
  positionals: 'DIR',
  options: {
    types: { type: 'string' },
    layers: { type: 'string' },
    epochs: optionFlag(lesaOptions.epochs),
    lambda: optionFlag(lesaOptions.lambda),
    hidden: optionFlag(lesaOptions.hidden),
    seed: { type: 'string' },
    'max-memory': optionFlag(lesaOptions.maxMemory),
    report: { type: 'string' },
    'loo-epochs': { type: 'string' },
    'no-loo': { type: 'boolean' },
    compare: { type: 'string' },
    gaps: { type: 'string' },
    align: { type: 'boolean' },
    information: { type: 'boolean' },
    'predictor-steps': optionFlag(lesaOptions.predictorSteps),
  },
  async run(v, pos, io: CommandIO) {
    if (pos.length !== 1) throw new UserError('usage: lesa analyze DIR [--types q_proj,...] [--layers 5,15,25] [--epochs N] [--report OUT/ [--loo-epochs N] [--no-loo] [--compare DIR]]');
    const s = (k: string) => v[k] as string | undefined;
    const reportDir = s('report');
    if (reportDir === '') throw new UserError('--report needs a directory');
    if (!reportDir) {
      for (const k of ['loo-epochs', 'no-loo', 'compare']) if (v[k] !== undefined) throw new UserError(`--${k} only applies with --report OUT/`);
    }
    if (v.information && v['no-loo']) throw new UserError('--information runs on the leave-one-out layers; drop --no-loo');
    if (v.information && v.gaps !== undefined) throw new UserError('--gaps is its own mode; drop --information');
    if (reportDir && v.gaps !== undefined) throw new UserError('--gaps is its own mode; drop --report');
    if (v['no-loo'] && (v.layers !== undefined || v['loo-epochs'] !== undefined || v.epochs !== undefined)) {
      throw new UserError('--no-loo skips leave-one-out; drop --layers/--epochs/--loo-epochs or drop --no-loo');
    }
    const input = await openCheckpoint((await resolveModel(pos[0])).dir);
    let ckpt: Checkpoint = input;
    let alignment: { summary: Record<string, number>; layers: AlignStats[] } | undefined;
    const scratch = await mkdtemp(join(tmpdir(), 'lesa-analyze-'));
    try {
      const layout = resolveLayout(ckpt.config, ckpt.tensors);
      if (layout.layers < 3) throw new UserError(`leave-one-out needs at least 3 layers; ${pos[0]} has ${layout.layers}`);
      if (v.align) {
        const aligned = await alignForReading(input, layout, io.reporter);
        ckpt = aligned.ckpt;
        alignment = { summary: aligned.summary, layers: aligned.stats };
      }
      // Per-layer analyses index every layer: an MoE's dense-only or sparse-only types are left out.
      const all = linearTypes(layout.arch).filter((t) => layout.typeInfo.has(t) && layersWith(layout, t).length === layout.layers);
      const types = s('types')?.split(',').map((x) => x.trim()) ?? all;
      for (const t of types) if (!all.includes(t)) throw new UserError(`unknown weight type "${t}"; this model has: ${all.join(', ')}`);
      const interior = interiorLayers(layout.layers);
      const layers = listArg('layers', s('layers')) ?? (reportDir ? defaultLooLayers(layout.layers, REPORT_LOO_LAYERS) : interior);
      for (const l of layers) if (!interior.includes(l)) throw new UserError(`--layers ${l} is not an interior layer (1..${layout.layers - 2})`);
      const arg = (k: keyof typeof lesaOptions, flag = flagOf(k)) => optionArg(flag, lesaOptions[k], v[flag]);
      const lesa = withDefaults(lesaOptions, {
        epochs: (reportDir ? arg('epochs', 'loo-epochs') : undefined) ?? arg('epochs') ?? (reportDir ? REPORT_LOO_EPOCHS : undefined),
        lambda: arg('lambda'), hidden: arg('hidden'), maxMemory: arg('maxMemory'), predictorSteps: arg('predictorSteps'),
      });
      if (typeof lesa.predictorSteps === 'number' && (s('epochs') ?? s('loo-epochs')) !== undefined) {
        throw new UserError('give --epochs or --predictor-steps N, not both (--epochs scales only --predictor-steps llama-3-8b)');
      }
      const seed = intArg('seed', s('seed'), 0, 2 ** 32 - 1) ?? 0;
      if (reportDir) {
        const data = await buildReport(ckpt, layout, {
          types, loo: v['no-loo'] ? null : { layers, lesa, seed }, information: Boolean(v.information), compareDir: s('compare'), scratchDir: scratch, maxMemory: lesa.maxMemory,
        }, io.reporter);
        const written = await writeReport(reportDir, data);
        const lines = [];
        if (data.loo) lines.push(formatTable(data.loo.rows, data.loo.summary), '');
        if (data.information) lines.push(formatInformation(data.information, data.information.layers), '');
        if (data.compare && !data.compare.ok) lines.push(`compare: ${data.compare.reason}`);
        lines.push(`report: ${written.html}`, `data:   ${written.json}`, `figures: ${written.png.length} PNG files in ${reportDir}`);
        io.print(lines.join('\n'), { report: written.html, json: written.json, png: written.png, seconds: data.seconds, loo: data.loo?.summary ?? null, compare: data.compare });
        return;
      }
      const gapCount = intArg('gaps', s('gaps'), 1, 64 * layout.layers);
      if (gapCount !== undefined) {
        io.reporter.phase('neighbour leave-one-out', { types: types.length });
        const perLayer = await neighbourPredictability(ckpt, layout, types, (d, t) => io.reporter.progress(d, t, { unit: 'tensors' }));
        const gaps = scoreGaps(perLayer, layout.layers);
        const after = bestGaps(gaps, gapCount);
        const text = [
          'leave-one-layer-out by the neighbours\' mean, all listed types together (lower: smoother)',
          ...gaps.map((g) => `  gap after ${String(g.after).padStart(3)}: ${g.score.toFixed(4)}${after.includes(g.after) ? '  *' : ''}`),
          `best ${gapCount}: --after ${after.join(',')}`,
          ...(alignment ? [alignmentLine(alignment.summary)] : []),
        ].join('\n');
        io.print(text, { checkpoint: ckpt.dir, aligned: Boolean(v.align), alignment, types, layers: perLayer, gaps, after });
        return;
      }
      if (v.information) {
        const result = await informationStudy(ckpt, layout, { types, layers, lesa, seed, scratchDir: scratch }, io.reporter);
        const options = { types, layers, epochs: lesa.epochs, predictorSteps: lesa.predictorSteps ?? null, lambda: lesa.lambda, hidden: lesa.hidden, lr: lesa.lr, batch: lesa.batch, weightDecay: lesa.weightDecay, seed, align: Boolean(v.align) };
        io.print(formatInformation(result, layers), { checkpoint: ckpt.dir, layers: layout.layers, options, note: 'the SVD basis includes the held-out layer (it is the model\'s own basis)', alignment, ...result });
        return;
      }
      const rows = await leaveOneOut(ckpt, layout, { types, layers, lesa, seed, scratchDir: scratch }, io.reporter);
      const summary = summarize(rows);
      const data = { checkpoint: ckpt.dir, layers: layout.layers, options: { types, layers, epochs: lesa.epochs, predictorSteps: lesa.predictorSteps ?? null, lambda: lesa.lambda, hidden: lesa.hidden, seed, align: Boolean(v.align) }, note: 'the SVD basis includes the left-out layer (it is the model\'s own basis)', alignment, summary, rows };
      io.print([formatTable(rows, summary), ...(alignment ? [alignmentLine(alignment.summary)] : [])].join('\n'), data);
    } finally {
      await rm(scratch, { recursive: true, force: true });
      await input.close();
    }
  },
};

function alignmentLine(s: Record<string, number>): string {
  return `aligned: mean cosine of adjacent layers' unit features, MLP ${s.mlpCosineBefore.toFixed(3)} → ${s.mlpCosineAfter.toFixed(3)}, attention ${s.attnCosineBefore.toFixed(3)} → ${s.attnCosineAfter.toFixed(3)}`;
}

function formatTable(rows: LooRow[], summary: ReturnType<typeof summarize>): string {
  const f = (x: number) => x.toFixed(3).padStart(7);
  const head = `${'type'.padEnd(10)} ${'layer'.padStart(5)} │ ${['lesa', 'copy', 'average', 'random'].map((m) => `${m.padEnd(7)} err    cos  ratio`).join(' │ ')}`;
  const line = (type: string, layer: string, r: Pick<LooRow, 'lesa' | 'copy' | 'average' | 'random'>) =>
    `${type.padEnd(10)} ${layer.padStart(5)} │ ${(['lesa', 'copy', 'average', 'random'] as const).map((m) => `${f(r[m].relError)}${f(r[m].cosine)}${f(r[m].normRatio)}`).join(' │ ')}`;
  return [
    'leave-one-layer-out: relative error ‖Ŵ−W‖/‖W‖, cosine(Ŵ,W), norm ratio ‖Ŵ‖/‖W‖ (basis includes the left-out layer)',
    head,
    ...rows.map((r) => line(r.type, String(r.layer), r)),
    ...Object.entries(summary).map(([type, r]) => line(type, 'mean', r)),
  ].join('\n');
}
