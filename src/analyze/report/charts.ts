/**
 * Vega-Lite specifications of every figure in the report. Pure functions of the report's data;
 * render.ts turns them into SVG (and PNG).
 */
import type { CompareSummary } from './compare.js';
import type { ReportData } from './types.js';

// Vega-Lite's own JSON types are large; the specs here are plain JSON.
export type Spec = Record<string, unknown>;

export interface Figure {
  id: string;
  title: string;
  caption: string;
  spec: Spec;
}

const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';
const CONFIG = {
  font: FONT,
  background: 'white',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 10, titleFontSize: 11 },
  legend: { labelFontSize: 10, titleFontSize: 11 },
  title: { fontSize: 12, anchor: 'start' },
};
const METHOD_ORDER = ['lesa', 'copy', 'average', 'random'];

function base(spec: Spec): Spec {
  return { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CONFIG, ...spec };
}

/** Singular values of each type's concatenation, log scale. */
export function spectrumFigure(d: ReportData): Figure {
  const values = d.types.flatMap((t) => t.spectrum.S.map((s, k) => ({ type: t.type, k: k + 1, s })).filter((p) => p.s > 0));
  return {
    id: 'spectrum',
    title: 'Singular value spectrum of [W_1 | … | W_L] per weight type',
    caption: 'Singular values S_k of each weight type\'s concatenation across all layers, descending, log scale. Values below 1e-6·S_1 are numerically zero and left out.',
    spec: base({
      data: { values },
      width: 560, height: 300,
      mark: { type: 'line', strokeWidth: 1.5 },
      encoding: {
        x: { field: 'k', type: 'quantitative', title: 'component k' },
        y: { field: 's', type: 'quantitative', scale: { type: 'log' }, title: 'singular value S_k' },
        color: { field: 'type', type: 'nominal', title: 'weight type', sort: d.types.map((t) => t.type) },
      },
    }),
  };
}

/** Energy captured by the top-k components. */
export function energyFigure(d: ReportData): Figure {
  const values = d.types.flatMap((t) => t.spectrum.energy.map((e, k) => ({ type: t.type, k: k + 1, fraction: k / t.spectrum.energy.length, e })));
  return {
    id: 'energy',
    title: 'Energy captured by the top-k components',
    caption: 'Fraction of Σ_i ‖W_i‖_F² held by the top k components (Σ_{j≤k} S_j² / Σ S²), per weight type. Every curve rises monotonically to 1 at k = rank.',
    spec: base({
      data: { values },
      width: 560, height: 300,
      mark: { type: 'line', strokeWidth: 1.5 },
      encoding: {
        x: { field: 'k', type: 'quantitative', title: 'top-k components' },
        y: { field: 'e', type: 'quantitative', scale: { domain: [0, 1] }, title: 'energy fraction' },
        color: { field: 'type', type: 'nominal', title: 'weight type', sort: d.types.map((t) => t.type) },
      },
    }),
  };
}

/** The paper's picture: the top singular row of V_i across depth, PCA to 2-D. */
export function trajectoryFigure(d: ReportData): Figure {
  const panels = d.types.map((t) => {
    const values = t.trajectory.coords.map(([x, y], layer) => ({ layer, x, y, label: layer === 0 || layer === t.trajectory.coords.length - 1 || layer % 5 === 0 ? String(layer) : '' }));
    const pc = (k: number) => `PC${k + 1} (${(100 * t.trajectory.explained[k]).toFixed(0)} %)`;
    return {
      title: { text: t.type, subtitle: `path roughness ${fmt(t.trajectory.roughness)}` },
      data: { values },
      width: 200, height: 200,
      encoding: {
        x: { field: 'x', type: 'quantitative', title: pc(0), axis: { labels: false, ticks: false } },
        y: { field: 'y', type: 'quantitative', title: pc(1), axis: { labels: false, ticks: false } },
      },
      layer: [
        { mark: { type: 'line', color: '#999', strokeWidth: 1 }, encoding: { order: { field: 'layer', type: 'quantitative' } } },
        {
          mark: { type: 'circle', size: 55, opacity: 1, stroke: '#333', strokeWidth: 0.4 },
          encoding: { color: { field: 'layer', type: 'quantitative', scale: { scheme: 'viridis', domain: [0, d.layers - 1] }, title: 'layer' } },
        },
        { mark: { type: 'text', dx: 7, dy: -7, fontSize: 9, color: '#333' }, encoding: { text: { field: 'label' } } },
      ],
    };
  });
  return {
    id: 'trajectory',
    title: 'Trajectory of the top singular row of V_i across depth (PCA)',
    caption: 'Each point is one layer: row 0 of its coefficient block V_i (its coefficients on the shared direction with the largest singular value), projected on the first two principal components of the L points; colour = layer index, line = depth order. A smooth path means neighbouring layers sit next to each other in coefficient space. Row 0 has unit norm over all layers together (Σ_i ‖V_i[0,:]‖² = 1): when one layer owns most of the top component it sits far out and the others crowd near the origin. Path roughness = mean distance between consecutive layers ÷ mean distance between all pairs, in the full space (≈1: no order; a straight evenly spaced path scores 3/(L+1)).',
    spec: base({ concat: panels, columns: 4, resolve: { scale: { color: 'shared' } } }),
  };
}

function matrixValues(M: number[][]): { i: number; j: number; v: number }[] {
  return M.flatMap((row, i) => row.map((v, j) => ({ i, j, v })));
}

/** Cosine similarity between layers, one heat map per type. */
export function similarityFigure(d: ReportData, which: 'coefficient' | 'weight'): Figure {
  const panels = d.types.map((t) => ({
    title: { text: t.type, subtitle: `adjacent layers: mean ${fmt(which === 'coefficient' ? t.similarity.adjacentCoefficient : t.similarity.adjacentWeight)}` },
    data: { values: matrixValues(which === 'coefficient' ? t.similarity.coefficient : t.similarity.weight) },
    width: 180, height: 180,
    mark: 'rect',
    encoding: {
      x: { field: 'j', type: 'ordinal', title: 'layer j', axis: { labelFontSize: 7, labelAngle: 0, values: ticks(d.layers) } },
      y: { field: 'i', type: 'ordinal', title: 'layer i', axis: { labelFontSize: 7, values: ticks(d.layers) } },
      color: { field: 'v', type: 'quantitative', title: 'cosine', scale: { scheme: 'redblue', reverse: true, domain: [-1, 1] } },
    },
  }));
  return which === 'coefficient'
    ? {
      id: 'similarity',
      title: 'Layer-to-layer cosine of the coefficient blocks V_i',
      caption: 'cos(vec V_i, vec V_j) for every pair of layers, per weight type (every component weighted equally). The diagonal is 1.',
      spec: base({ concat: panels, columns: 4, resolve: { scale: { color: 'shared' } } }),
    }
    : {
      id: 'similarity-weight',
      title: 'Layer-to-layer cosine of the weights W_i',
      caption: 'cos(vec W_i, vec W_j) = Σ_k S_k² ⟨V_i[k], V_j[k]⟩ / (‖W_i‖‖W_j‖): the same blocks with component k weighted by S_k² (exact, since U has orthonormal columns). method.md §4.1: adjacent layers of a briefly trained model had cosine ≈ 0.',
      spec: base({ concat: panels, columns: 4, resolve: { scale: { color: 'shared' } } }),
    };
}

function ticks(L: number): number[] {
  const step = L <= 12 ? 1 : L <= 40 ? 5 : 10;
  const out: number[] = [];
  for (let i = 0; i < L; i += step) out.push(i);
  return out;
}

/** Leave-one-layer-out heat map: layers × methods per type. */
export function looFigure(d: ReportData, metric: 'relError' | 'cosine'): Figure | null {
  if (!d.loo || d.loo.rows.length === 0) return null;
  const values = d.loo.rows.flatMap((r) => METHOD_ORDER.map((m) => ({ type: r.type, layer: r.layer, method: m, v: r[m as 'lesa'][metric] })));
  const err = metric === 'relError';
  return {
    id: err ? 'loo-error' : 'loo-cosine',
    title: err ? 'Leave-one-layer-out relative error ‖Ŵ_i − W_i‖ / ‖W_i‖ (lower is better)' : 'Leave-one-layer-out cosine(Ŵ_i, W_i) (higher is better)',
    caption: err
      ? 'For each left-out layer i: LESA\'s prediction from layers i−1 and i+1 (predictor trained without layer i as target), next to copy (W_{i−1}), average ((W_{i−1}+W_{i+1})/2) and a random matrix with the neighbours\' mean norm. 1.0 is what predicting zero scores; ≈1.22 what the mean of two unrelated matrices scores. The SVD basis includes layer i.'
      : 'Cosine between the guess and the true layer, same runs. 0 = no information about the layer; the random control sits at ≈0.',
    spec: base({
      data: { values },
      facet: { row: { field: 'type', type: 'nominal', sort: d.types.map((t) => t.type), title: null, header: { labelAngle: 0, labelAlign: 'left', labelFontSize: 11 } } },
      spec: {
        width: Math.max(220, 34 * d.loo.layers.length), height: 4 * 18,
        encoding: {
          x: { field: 'layer', type: 'ordinal', title: 'left-out layer i', axis: { labelAngle: 0 } },
          y: { field: 'method', type: 'nominal', sort: METHOD_ORDER, title: null },
        },
        layer: [
          {
            mark: 'rect',
            encoding: {
              color: {
                field: 'v', type: 'quantitative', title: err ? 'rel. error' : 'cosine',
                scale: err ? { scheme: 'viridis', reverse: true, domain: [0, 1.5], clamp: true, nice: false } : { scheme: 'redblue', reverse: true, domain: [-1, 1], nice: false },
              },
            },
          },
          {
            mark: { type: 'text', fontSize: 8 },
            encoding: {
              text: { field: 'v', type: 'quantitative', format: '.2f' },
              color: { condition: { test: err ? 'datum.v > 0.9' : 'abs(datum.v) > 0.6', value: 'white' }, value: '#111' },
            },
          },
        ],
      },
      resolve: { scale: { x: 'independent' } },
    }),
  };
}

/** Initial perplexity of each expanded model (`lesa compare`). */
export function comparePplFigure(c: CompareSummary): Figure | null {
  const values = c.methods.filter((m) => m.initialPpl !== null).map((m) => ({ method: m.method, ppl: m.initialPpl as number })).sort((a, b) => a.ppl - b.ppl);
  if (values.length === 0) return null;
  const y = { field: 'method', type: 'nominal', sort: null, title: null }; // data order: ascending perplexity
  const all = [...values.map((v) => v.ppl), ...(c.originalPpl !== null ? [c.originalPpl] : [])];
  const log = Math.max(...all) / Math.min(...all) > 10; // a random layer can be orders of magnitude worse
  const x = { field: 'ppl', type: 'quantitative', scale: log ? { type: 'log' } : { zero: false, padding: 12 }, title: `initial perplexity${log ? ' (log scale)' : ''}` };
  const layers: Spec[] = [{
    mark: { type: 'point', filled: true, size: 90 },
    encoding: { y, x, color: { field: 'method', type: 'nominal', legend: null } },
  }, {
    mark: { type: 'text', align: 'left', dx: 8, fontSize: 9 },
    encoding: { y, x: { field: 'ppl', type: 'quantitative' }, text: { field: 'ppl', type: 'quantitative', format: '.5~r' } },
  }];
  if (c.originalPpl !== null) {
    layers.push({ data: { values: [{ ppl: c.originalPpl }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#333' }, encoding: { x: { field: 'ppl', type: 'quantitative' } } });
  }
  return {
    id: 'compare-ppl',
    title: 'Initial perplexity of each expanded model (lesa compare)',
    caption: `Held-out perplexity right after expansion${c.sourceLayers && c.targetLayers ? ` (${c.sourceLayers} → ${c.targetLayers} layers)` : ''}, before any training.${c.originalPpl !== null ? ` Dashed line: the original model (${c.originalPpl.toFixed(3)}).` : ''}`,
    spec: base({ data: { values }, width: 480, height: Math.max(60, 22 * values.length), layer: layers }),
  };
}

// The same colours and markers as lesa_py.plots (PALETTE, MARKERS), assigned in the same order.
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22',
  '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5'];
const SHAPES = ['circle', 'square', 'triangle-up', 'diamond', 'triangle-down', 'cross', 'triangle-left', 'triangle-right'];
const GROUP_ORDER = ['paper baselines', 'identity starts', 'LESA variants', 'controls', 'other heuristics'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
}

/**
 * CPT held-out loss curves (`lesa compare`): one panel per group of methods, a colour and a
 * marker per method, the legend beside the panels, the original model as a dashed line; with
 * other seeds (DIR/seed-*), the median over seeds and a band from their min to their max.
 */
export function compareLossFigure(c: CompareSummary): Figure | null {
  const groupIndex = (g: string) => (GROUP_ORDER.includes(g) ? GROUP_ORDER.indexOf(g) : GROUP_ORDER.length);
  const ms = c.methods.filter((m) => m.evalCurve.length > 0)
    .sort((a, b) => groupIndex(a.group) - groupIndex(b.group) || (a.method < b.method ? -1 : a.method > b.method ? 1 : 0));
  if (ms.length === 0) return null;
  let banded = false;
  const values = ms.flatMap((m) => {
    const curves = [m.evalCurve, ...m.seedEvalCurves].map((cv) => new Map(cv));
    if (curves.length > 1) banded = true;
    return m.evalCurve.map(([step]) => step).filter((s) => curves.every((cv) => cv.has(s))).map((step) => {
      const ys = curves.map((cv) => cv.get(step)!);
      return { method: m.method, group: m.group, seeds: curves.length, step, loss: median(ys), lo: Math.min(...ys), hi: Math.max(...ys) };
    });
  });
  const domain = ms.map((m) => m.method);
  const x = { field: 'step', type: 'quantitative', title: 'CPT step' };
  const y = { field: 'loss', type: 'quantitative', scale: { zero: false }, title: 'held-out loss' };
  const color = { field: 'method', type: 'nominal', scale: { domain, range: domain.map((_, i) => PALETTE[i % PALETTE.length]) }, legend: { orient: 'right', title: 'method', symbolOpacity: 1 } };
  const shape = { field: 'method', type: 'nominal', scale: { domain, range: domain.map((_, i) => SHAPES[i % SHAPES.length]) }, legend: { orient: 'right', title: 'method', symbolOpacity: 1 } };
  const layer: Spec[] = [];
  if (banded) layer.push({ mark: { type: 'area', opacity: 0.18 }, encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color } });
  layer.push({ mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y, color } });
  layer.push({ mark: { type: 'point', filled: true, size: 45 }, encoding: { x, y, color, shape, tooltip: [{ field: 'method' }, { field: 'step' }, { field: 'loss', format: '.4f' }, { field: 'seeds' }] } });
  if (c.originalHeldoutLoss !== null) layer.push({ mark: { type: 'rule', strokeDash: [4, 3], color: '#333' }, encoding: { y: { datum: c.originalHeldoutLoss } } });
  const groups = [...new Set(ms.map((m) => m.group))];
  return {
    id: 'compare-loss',
    title: 'Continued pre-training: held-out loss per method (lesa compare)',
    caption: `Held-out loss during CPT, same token budget for every method, one panel per group (${groups.join(' / ')}).`
      + (c.originalHeldoutLoss !== null ? ` Dashed line: the original model (${c.originalHeldoutLoss.toFixed(3)}).` : '')
      + (banded ? ' Line: median over the seeds a method ran; band: their min–max.' : '')
      + `${c.bestBaseline ? ` Best baseline: ${c.bestBaseline}.` : ''}${c.winner ? ` Lowest final loss: ${c.winner}.` : ''}`,
    spec: base({
      data: { values },
      facet: { row: { field: 'group', type: 'nominal', sort: groups, title: null, header: { labelAngle: 0, labelAlign: 'left', labelAnchor: 'start', labelOrient: 'top', labelFontSize: 11 } } },
      resolve: { scale: { y: 'independent' } },
      spec: { width: 560, height: 180, layer },
    }),
  };
}

export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

/** Every figure the data supports, in page order. */
export function figures(d: ReportData): Figure[] {
  const out: (Figure | null)[] = [
    spectrumFigure(d), energyFigure(d), trajectoryFigure(d),
    looFigure(d, 'relError'), looFigure(d, 'cosine'),
    similarityFigure(d, 'coefficient'), similarityFigure(d, 'weight'),
  ];
  if (d.compare?.ok) out.push(comparePplFigure(d.compare.summary), compareLossFigure(d.compare.summary));
  return out.filter((f): f is Figure => f !== null);
}
