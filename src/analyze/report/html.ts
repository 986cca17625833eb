/** The self-contained page: inline SVG figures, inline CSS, no scripts, no external resources. */
import type { Figure } from './charts.js';
import { fmt } from './charts.js';
import type { ReportData } from './types.js';
import { GUESSES } from '../information.js';

export const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const CSS = `
body{font-family:"DejaVu Sans","Liberation Sans",Arial,sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#222;line-height:1.45}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:14px;margin:6px 0}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
figure.chart{margin:14px 0;padding:8px;border:1px solid #eee;border-radius:4px;overflow-x:auto}figure.chart svg{max-width:none;height:auto}
figcaption{font-size:12px;color:#555;max-width:1000px}.note{font-size:13px;color:#555}.meta{font-size:13px}code{font-size:12px;background:#f4f4f4;padding:0 3px}
nav a{margin-right:12px;font-size:13px}`;

function figureHtml(f: Figure, svg: string): string {
  return `<figure class="chart" id="fig-${esc(f.id)}" data-chart="${esc(f.id)}">
<h3>${esc(f.title)}</h3>
${svg}
<figcaption>${esc(f.caption)} <a href="${esc(f.id)}.png">PNG</a></figcaption>
</figure>`;
}

function table(head: string[], rows: (string | number)[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(String(c))}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

export function renderHtml(d: ReportData, figs: Figure[], svgs: Map<string, string>): string {
  const fig = (id: string) => {
    const f = figs.find((x) => x.id === id);
    return f ? figureHtml(f, svgs.get(id) ?? '') : '';
  };
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const s1 = `<h2 id="spectrum">1. Singular value spectrum and energy</h2>
<p class="note">For each weight type T, the matrices W_i^T of all ${d.layers} layers are concatenated along the input axis and decomposed once: W = U diag(S) [V_1 | … | V_L]. Every layer is then W_i = U diag(S) V_i.</p>
${fig('spectrum')}${fig('energy')}
${table(['type', 'shape [out, in]', 'rank', 'k for 50 %', 'k for 90 %', 'k for 99 %'], d.types.map((t) => [t.type, `${t.shape[0]} × ${t.shape[1]}`, t.rank, t.spectrum.kFor['0.5'], t.spectrum.kFor['0.9'], t.spectrum.kFor['0.99']]))}`;
  const s2 = `<h2 id="trajectory">2. Trajectory of each layer's coefficients across depth</h2>
${fig('trajectory')}
${table(['type', 'PC1', 'PC2', 'path roughness'], d.types.map((t) => [t.type, pct(t.trajectory.explained[0]), pct(t.trajectory.explained[1]), fmt(t.trajectory.roughness)]))}
<p class="note">PCA rather than t-SNE: it is deterministic, its axes and distances mean something (t-SNE's do not, and with ${d.layers} points its perplexity setting dominates the picture), and no t-SNE implementation on npm is actively maintained. See docs/report.md.</p>`;
  let s3: string;
  if (d.loo) {
    const rows = Object.entries(d.loo.summary).flatMap(([type, r]) => (['lesa', 'copy', 'average', 'random'] as const).map((m) => [type, m, fmt(r[m].relError), fmt(r[m].cosine), fmt(r[m].normRatio)]));
    s3 = `<h2 id="loo">3. Leave-one-layer-out predictability</h2>
<p class="note">Layers ${esc(d.loo.layers.join(', '))}; predictor trained ${d.loo.epochs} epoch(s) per left-out layer and type (λ = ${d.loo.lambda}, hidden ${d.loo.hidden}, seed ${d.loo.seed}). ${esc(d.loo.note)}. A layer where LESA's error is low and its cosine high is a gap the predictor can fill; compare it with copy and average in the same column.</p>
${fig('loo-error')}${fig('loo-cosine')}
<h3>Mean over the left-out layers</h3>
${table(['type', 'method', 'rel. error', 'cosine', 'norm ratio'], rows)}`;
  } else {
    s3 = `<h2 id="loo">3. Leave-one-layer-out predictability</h2><p class="note">Not computed: ${esc(d.looSkipped ?? 'skipped')}.</p>`;
  }
  if (d.information) {
    const inf = d.information;
    const label = { lesa: 'LESA', 'lesa-step-matched': 'LESA, Llama-3-8B steps', 'rand-svd': 'rand-svd', random: 'random' } as const;
    const rows = Object.entries(inf.summary).flatMap(([type, s]) => [
      [type, 'truth W', '', fmt(1), fmt(1), fmt(s.truth.meanRowShare), fmt(s.truth.sigma1Share)],
      ...GUESSES.map((g) => [type, label[g], g === 'lesa' || g === 'lesa-step-matched' ? inf.steps[type][g] : '', fmt(s.guesses[g].cosine), fmt(s.guesses[g].normRatio), fmt(s.guesses[g].meanRowShare), fmt(s.guesses[g].sigma1Share)]),
    ]);
    s3 += `<h3 id="information">Does LESA carry information?</h3>
<p class="note">Held-out layers ${esc(inf.layers.join(', '))}. LESA trained without the held-out layer at the budget above and at the AdamW steps the same weight type of Llama-3-8B gets from the same epochs; rand-svd: random coefficients in the same U·diag(S) basis; random: normal entries; both at the neighbours' mean norm. A LESA row no closer to the truth than rand-svd carries no information about the layer. meanrow: share of the guess's energy in its mean row; σ₁/‖Ŵ‖_F: 1 for a rank-one guess (collapse).</p>
${table(['type', 'guess', 'steps', 'cosine', 'norm ratio', 'mean-row share', 'σ₁/‖Ŵ‖_F'], rows)}`;
  }
  const s4 = `<h2 id="similarity">4. Layer-to-layer similarity</h2>
${fig('similarity')}${fig('similarity-weight')}
${table(['type', 'adjacent cos(V_i, V_i+1)', 'adjacent cos(W_i, W_i+1)'], d.types.map((t) => [t.type, fmt(t.similarity.adjacentCoefficient), fmt(t.similarity.adjacentWeight)]))}`;
  let s5 = `<h2 id="compare">5. Expanded models (lesa compare)</h2>`;
  if (!d.compare) s5 += '<p class="note">No comparison given: run <code>lesa compare</code> and pass its report directory with <code>--compare DIR</code>.</p>';
  else if (!d.compare.ok) s5 += `<p class="note">No comparison shown: ${esc(d.compare.reason)}.</p>`;
  else {
    const c = d.compare.summary;
    s5 += `<p class="note">From <code>${esc(c.source)}</code>${c.model ? ` (model ${esc(c.model)})` : ''}.</p>${fig('compare-ppl')}${fig('compare-loss')}
${table(['method', 'status', 'initial ppl', 'final held-out loss', 'steps to best baseline'], c.methods.map((m) => [m.method, m.status + (m.reason ? `: ${m.reason}` : ''), fmt(m.initialPpl), fmt(m.finalEvalLoss, 4), m.stepsToBestBaseline ?? '–']))}`;
  }
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>lesa analyze: ${esc(d.checkpoint)}</title><style>${CSS}</style></head>
<body>
<h1>LESA analysis of <code>${esc(d.checkpoint)}</code></h1>
<p class="meta">${esc(d.arch)}, ${d.layers} layers, weight types ${esc(d.types.map((t) => t.type).join(', '))}. Generated ${esc(d.generated)} in ${d.seconds.toFixed(0)} s. Every number behind the figures is in <a href="report.json">report.json</a>; each figure is also a PNG next to this page.</p>
<nav><a href="#spectrum">spectrum</a><a href="#trajectory">trajectory</a><a href="#loo">leave-one-out</a><a href="#similarity">similarity</a><a href="#compare">compare</a></nav>
${s1}
${s2}
${s3}
${s4}
${s5}
</body></html>
`;
}
