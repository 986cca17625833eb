import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** What the report shows from a `lesa compare` run (results.json, format "lesa-compare/1"). */
export interface CompareSummary {
  source: string;
  format: string | null;
  model: string | null;
  sourceLayers: number | null;
  targetLayers: number | null;
  originalPpl: number | null;
  /** The original model's loss on the CPT held-out windows (the reference line). */
  originalHeldoutLoss: number | null;
  methods: {
    method: string;
    /** Panel of the loss figure (results.json's `group`, written by lesa_py.plots.group). */
    group: string;
    status: string;
    reason: string | null;
    initialPpl: number | null;
    finalEvalLoss: number | null;
    stepsToBestBaseline: number | null;
    evalCurve: [number, number][];
    trainCurve: [number, number][];
    /** The same method's held-out curves in DIR/seed-N/results.json (other seeds). */
    seedEvalCurves: [number, number][][];
  }[];
  winner: string | null;
  bestBaseline: string | null;
}

export type CompareResult = { ok: true; summary: CompareSummary } | { ok: false; source: string; reason: string };

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const str = (x: unknown): string | null => (typeof x === 'string' ? x : null);

function curve(x: unknown): [number, number][] {
  if (!Array.isArray(x)) return [];
  const out: [number, number][] = [];
  for (const p of x) {
    if (Array.isArray(p) && num(p[0]) !== null && num(p[1]) !== null) out.push([p[0], p[1]]);
    else if (p && typeof p === 'object') {
      const o = p as Record<string, unknown>;
      const step = num(o.step), loss = num(o.loss ?? o.eval_loss);
      if (step !== null && loss !== null) out.push([step, loss]);
    }
  }
  return out;
}

function runsOf(r: Record<string, unknown>): Record<string, unknown>[] {
  const runsRaw = r.runs;
  return Array.isArray(runsRaw)
    ? runsRaw.filter((x) => x && typeof x === 'object') as Record<string, unknown>[]
    : runsRaw && typeof runsRaw === 'object'
      ? Object.entries(runsRaw as Record<string, unknown>).map(([m, v]) => ({ method: m, ...(v as Record<string, unknown>) }))
      : [];
}

/** The runs of DIR/seed-N/results.json (bench/study.sh's other seeds); unreadable ones are skipped. */
async function seedRuns(dir: string): Promise<Record<string, unknown>[][]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /^seed-\d+$/.test(n)).sort();
  } catch {
    return [];
  }
  const out: Record<string, unknown>[][] = [];
  for (const n of names) {
    try {
      const raw = JSON.parse(await readFile(join(dir, n, 'results.json'), 'utf8'));
      if (raw && typeof raw === 'object') out.push(runsOf(raw as Record<string, unknown>));
    } catch {
      // a seed still running or never run: its band is simply narrower
    }
  }
  return out;
}

/**
 * Reads DIR/results.json (and the other seeds' DIR/seed-N/results.json) (or DIR itself if it is a file). Never throws: an absent or unreadable
 * file is a reason shown in the report instead of a section.
 */
export async function readCompare(dirOrFile: string): Promise<CompareResult> {
  let path = dirOrFile;
  try {
    if ((await stat(dirOrFile)).isDirectory()) path = join(dirOrFile, 'results.json');
  } catch {
    return { ok: false, source: dirOrFile, reason: `${dirOrFile} does not exist` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    return { ok: false, source: path, reason: `cannot read ${path}: ${(e as Error).message}` };
  }
  if (!raw || typeof raw !== 'object') return { ok: false, source: path, reason: `${path} is not a JSON object` };
  const r = raw as Record<string, unknown>;
  const runs = runsOf(r);
  const seeds = path === dirOrFile ? [] : await seedRuns(dirOrFile);
  if (runs.length === 0) return { ok: false, source: path, reason: `${path} holds no runs` };
  const original = (r.original && typeof r.original === 'object' ? r.original : {}) as Record<string, unknown>;
  const summary = (r.summary && typeof r.summary === 'object' ? r.summary : {}) as Record<string, unknown>;
  return {
    ok: true,
    summary: {
      source: path,
      format: str(r.format),
      model: str(r.model),
      sourceLayers: num(r.source_layers),
      targetLayers: num(r.target_layers),
      originalPpl: num(original.initial_ppl),
      originalHeldoutLoss: num(original.heldout_loss),
      methods: runs.map((m) => ({
        method: str(m.method) ?? '?',
        group: str(m.group) ?? 'methods',
        status: str(m.status) ?? 'unknown',
        reason: str(m.reason) ?? str(m.error),
        initialPpl: num(m.initial_ppl),
        finalEvalLoss: num(m.final_eval_loss),
        stepsToBestBaseline: num(m.steps_to_best_baseline),
        evalCurve: curve(m.eval_curve),
        trainCurve: curve(m.train_curve),
        seedEvalCurves: seeds.flatMap((runs) => runs.filter((x) => x.method === m.method && x.status === 'ok').map((x) => curve(x.eval_curve))),
      })),
      winner: str(summary.winner),
      bestBaseline: str(summary.best_baseline),
    },
  };
}
