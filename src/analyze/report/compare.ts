import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** What the report shows from a `lesa compare` run (results.json, format "lesa-compare/1"). */
export interface CompareSummary {
  source: string;
  format: string | null;
  model: string | null;
  sourceLayers: number | null;
  targetLayers: number | null;
  originalPpl: number | null;
  methods: {
    method: string;
    status: string;
    reason: string | null;
    initialPpl: number | null;
    finalEvalLoss: number | null;
    stepsToBestBaseline: number | null;
    evalCurve: [number, number][];
    trainCurve: [number, number][];
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

/**
 * Reads DIR/results.json (or DIR itself if it is a file). Never throws: an absent or unreadable
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
  const runsRaw = r.runs;
  const runs: Record<string, unknown>[] = Array.isArray(runsRaw)
    ? runsRaw.filter((x) => x && typeof x === 'object') as Record<string, unknown>[]
    : runsRaw && typeof runsRaw === 'object'
      ? Object.entries(runsRaw as Record<string, unknown>).map(([m, v]) => ({ method: m, ...(v as Record<string, unknown>) }))
      : [];
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
      methods: runs.map((m) => ({
        method: str(m.method) ?? '?',
        status: str(m.status) ?? 'unknown',
        reason: str(m.reason) ?? str(m.error),
        initialPpl: num(m.initial_ppl),
        finalEvalLoss: num(m.final_eval_loss),
        stepsToBestBaseline: num(m.steps_to_best_baseline),
        evalCurve: curve(m.eval_curve),
        trainCurve: curve(m.train_curve),
      })),
      winner: str(summary.winner),
      bestBaseline: str(summary.best_baseline),
    },
  };
}
