/**
 * `lesa analyze DIR --report OUT/`: one decomposition per weight type feeds every figure
 * (spectrum, trajectory, similarity, leave-one-out); then the page, PNGs and report.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Checkpoint } from '../../checkpoint/types.js';
import type { ModelLayout } from '../../arch/index.js';
import type { LesaOptions } from '../../methods/lesa/options.js';
import { block, decompose } from '../../methods/lesa/decompose.js';
import type { Reporter } from '../../progress/reporter.js';
import { summarize, type LooRow } from '../loo.js';
import { informationForType, summarizeInformation, type InformationResult, type InformationRow } from '../information.js';
import { bandMean, similarity, toRows } from '../similarity.js';
import { blockRow, pathRoughness, pca2 } from '../trajectory.js';
import { figures } from './charts.js';
import { readCompare } from './compare.js';
import { renderHtml } from './html.js';
import { looForType } from './loo-run.js';
import { svgToPng, toSvg } from './render.js';
import { spectrum } from './spectrum.js';
import type { ReportData, TypeReport } from './types.js';

export { defaultLooLayers } from './loo-run.js';
export type { ReportData } from './types.js';

export interface ReportOptions {
  types: string[];
  /** null: no leave-one-out (--no-loo). */
  loo: { layers: number[]; lesa: LesaOptions; seed: number } | null;
  /** Also the information table (informationForType) on the leave-one-out layers; needs `loo`. */
  information?: boolean;
  compareDir?: string;
  scratchDir: string;
  maxMemory: number;
  /** Row of V_i whose trajectory is drawn (0 = top singular direction). */
  trajectoryRow?: number;
}

export const LOO_NOTE = 'the SVD basis includes the left-out layer (it is the model\'s own basis)';

export async function buildReport(ckpt: Checkpoint, layout: ModelLayout, o: ReportOptions, reporter: Reporter): Promise<ReportData> {
  const t0 = Date.now();
  const L = layout.layers;
  const types: TypeReport[] = [];
  const looRows: LooRow[] = [];
  const infoRows: InformationRow[] = [];
  const infoSteps: InformationResult['steps'] = {};
  const row = o.trajectoryRow ?? 0;
  for (const [t, type] of o.types.entries()) {
    const detail = { type, typeIndex: t + 1, types: o.types.length };
    reporter.phase('decompose', detail);
    let t1 = Date.now();
    const d = await decompose(ckpt, layout, type, { scratchDir: o.scratchDir, maxMemory: o.maxMemory });
    const decomposeS = (Date.now() - t1) / 1000;
    t1 = Date.now();
    reporter.phase('analyse', detail);
    const blocks: Float32Array[] = [];
    for (let i = 0; i < L; i++) blocks.push(await block(d, i));
    const rows0 = blocks.map((b) => blockRow(b, d.cols, Math.min(row, d.rank - 1)));
    const p = pca2(rows0);
    const sim = similarity(blocks, d.S, d.cols);
    blocks.length = 0;
    const analyseS = (Date.now() - t1) / 1000;
    t1 = Date.now();
    if (o.loo) {
      reporter.phase('leave-one-out', detail);
      looRows.push(...await looForType(ckpt, layout, d, o.loo.layers, o.loo.lesa, o.loo.seed,
        (done, total) => reporter.progress(done, total, { ...detail, phase: 'leave-one-out' })));
      if (o.information) {
        reporter.phase('information', detail);
        const r = await informationForType(ckpt, layout, d, o.loo.layers, o.loo.lesa, o.loo.seed,
          (done, total) => reporter.progress(done, total, { ...detail, phase: 'information' }));
        infoRows.push(...r.rows);
        infoSteps[type] = r.steps;
      }
    }
    types.push({
      type,
      shape: [d.rows, d.cols],
      rank: d.rank,
      spectrum: spectrum(d.S),
      trajectory: { row, method: 'pca', coords: p.coords, explained: p.explained, roughness: pathRoughness(rows0) },
      similarity: {
        coefficient: toRows(sim.coefficient, L), weight: toRows(sim.weight, L),
        adjacentCoefficient: bandMean(sim.coefficient, L), adjacentWeight: bandMean(sim.weight, L),
      },
      seconds: { decompose: decomposeS, analyse: analyseS, loo: (Date.now() - t1) / 1000 },
    });
  }
  return {
    format: 'lesa-report/1',
    generated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    checkpoint: ckpt.dir,
    arch: layout.arch.family,
    layers: L,
    types,
    loo: o.loo ? {
      layers: o.loo.layers, epochs: o.loo.lesa.epochs, lambda: o.loo.lesa.lambda, hidden: o.loo.lesa.hidden, seed: o.loo.seed,
      note: LOO_NOTE, rows: looRows, summary: summarize(looRows),
    } : null,
    looSkipped: o.loo ? undefined : '--no-loo was given',
    information: o.loo && o.information ? { layers: o.loo.layers, steps: infoSteps, rows: infoRows, summary: summarizeInformation(infoRows) } : null,
    compare: o.compareDir ? await readCompare(o.compareDir) : null,
    seconds: (Date.now() - t0) / 1000,
  };
}

export interface WrittenReport {
  html: string;
  json: string;
  png: string[];
}

/** OUT/index.html (self-contained), OUT/<figure>.png, OUT/report.json. */
export async function writeReport(outDir: string, d: ReportData): Promise<WrittenReport> {
  await mkdir(outDir, { recursive: true });
  const figs = figures(d);
  const svgs = new Map<string, string>();
  const png: string[] = [];
  for (const f of figs) {
    const svg = await toSvg(f.spec);
    svgs.set(f.id, svg);
    const file = join(outDir, `${f.id}.png`);
    await writeFile(file, svgToPng(svg));
    png.push(file);
  }
  const html = join(outDir, 'index.html');
  await writeFile(html, renderHtml(d, figs, svgs));
  const json = join(outDir, 'report.json');
  await writeFile(json, `${JSON.stringify({ ...d, figures: figs.map((f) => ({ id: f.id, title: f.title, png: `${f.id}.png`, vegaLite: f.spec })) }, null, 1)}\n`);
  return { html, json, png };
}
