// The numbers behind `lesa analyze --report`: PCA against an independent computation, the
// energy curve, the similarity matrices, and the report written for a tiny model.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { jacobiEigen, pathRoughness, pca2 } from '../src/analyze/trajectory.js';
import { bandMean, similarity } from '../src/analyze/similarity.js';
import { spectrum } from '../src/analyze/report/spectrum.js';
import { defaultLooLayers } from '../src/analyze/report/loo-run.js';
import { readCompare, type CompareSummary } from '../src/analyze/report/compare.js';
import { compareLossFigure, comparePplFigure } from '../src/analyze/report/charts.js';
import { isNativeAvailable } from '../src/native/index.js';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';

const run = promisify(execFile);
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'bin.js');
const FIXTURES = process.env.LESA_FIXTURES ?? join(homedir(), '.cache', 'lesa', 'fixtures');
const TINY = join(FIXTURES, 'tiny-llama-f32');

function rng(seed: number): () => number {
  let s = seed >>> 0; // mulberry32
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const close = (a: number, b: number, tol: number, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b} (tol ${tol})`);

/** Top-2 eigenpairs of the d × d covariance by power iteration with deflation: independent of pca2's route. */
function powerPca(points: number[][]): { scores: number[][]; ratios: number[] } {
  const m = points.length, d = points[0].length;
  const mean = Array.from({ length: d }, (_, c) => points.reduce((a, p) => a + p[c], 0) / m);
  const X = points.map((p) => p.map((x, c) => x - mean[c]));
  const C = Array.from({ length: d }, (_, a) => Array.from({ length: d }, (_, b) => X.reduce((s, x) => s + x[a] * x[b], 0)));
  const trace = C.reduce((s, row, i) => s + row[i], 0);
  const scores: number[][] = [], ratios: number[] = [];
  for (let comp = 0; comp < 2; comp++) {
    let v = Array.from({ length: d }, (_, i) => 1 / Math.sqrt(d) + 0.01 * i);
    let lambda = 0;
    for (let it = 0; it < 5000; it++) {
      const w = C.map((row) => row.reduce((s, x, j) => s + x * v[j], 0));
      lambda = Math.hypot(...w);
      v = w.map((x) => x / lambda);
    }
    scores.push(X.map((x) => x.reduce((s, xi, j) => s + xi * v[j], 0)));
    ratios.push(lambda / trace);
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) C[a][b] -= lambda * v[a] * v[b];
  }
  return { scores, ratios };
}

test('pca2 matches power iteration on the covariance (up to sign), and its explained ratios', () => {
  const r = rng(7);
  // Anisotropic cloud so that the top two eigenvalues are well separated.
  const scales = [5, 2.5, 1, 0.5, 0.3, 0.2, 0.1];
  const points = Array.from({ length: 12 }, () => scales.map((s) => s * (r() * 2 - 1)));
  const p = pca2(points);
  const ref = powerPca(points);
  for (let comp = 0; comp < 2; comp++) {
    const mine = p.coords.map((c) => c[comp]);
    const sign = Math.sign(mine[0]) === Math.sign(ref.scores[comp][0]) ? 1 : -1;
    mine.forEach((x, i) => close(x, sign * ref.scores[comp][i], 1e-8, `PC${comp + 1} point ${i}`));
    close(p.explained[comp], ref.ratios[comp], 1e-10, `explained ${comp}`);
  }
  // Orientation: PC1 runs from the first point towards the last, the first point has y <= 0.
  assert.ok(p.coords[0][0] <= p.coords[p.coords.length - 1][0]);
  assert.ok(p.coords[0][1] <= 0);
});

test('pca2 closed form: collinear points give PC1 = signed distance along the line, PC2 = 0', () => {
  const ts = [-2, -1, 0.5, 1, 1.5];
  const p = pca2(ts.map((t) => [3 + t, 1 + 2 * t, -t]));
  const mean = ts.reduce((a, b) => a + b) / ts.length;
  ts.forEach((t, i) => {
    close(p.coords[i][0], (t - mean) * Math.sqrt(6), 1e-9, 'PC1');
    close(p.coords[i][1], 0, 1e-6, 'PC2'); // sqrt of a rounding-level eigenvalue
  });
  close(p.explained[0], 1, 1e-12);
  close(p.explained[1], 0, 1e-12);
});

test('jacobiEigen reconstructs the matrix with orthonormal eigenvectors, values descending', () => {
  const n = 9, r = rng(3);
  const B = Array.from({ length: n * n }, () => r() - 0.5);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) A[i * n + j] += B[i * n + k] * B[j * n + k];
  const { values, vectors } = jacobiEigen(A, n);
  for (let k = 1; k < n; k++) assert.ok(values[k - 1] >= values[k]);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let a = 0, q = 0;
      for (let k = 0; k < n; k++) { a += vectors[i * n + k] * values[k] * vectors[j * n + k]; q += vectors[k * n + i] * vectors[k * n + j]; }
      close(a, A[i * n + j], 1e-10, 'V diag V^T');
      close(q, i === j ? 1 : 0, 1e-10, 'V^T V');
    }
  }
});

test('pathRoughness: an evenly spaced straight path scores 3/(m+1); a shuffled one scores higher', () => {
  const m = 10;
  const line = Array.from({ length: m }, (_, i) => [i, 2 * i]);
  close(pathRoughness(line), 3 / (m + 1), 1e-12);
  const shuffled = [0, 9, 1, 8, 2, 7, 3, 6, 4, 5].map((i) => line[i]);
  assert.ok(pathRoughness(shuffled) > 1);
});

test('energy curve is monotone, ends at exactly 1, and k-for-fraction is the first k that reaches it', () => {
  const s = spectrum([4, 2, 1, 1, 0.5, 0]);
  for (let k = 1; k < s.energy.length; k++) assert.ok(s.energy[k] >= s.energy[k - 1]);
  assert.equal(s.energy[s.energy.length - 1], 1);
  const total = 16 + 4 + 1 + 1 + 0.25;
  close(s.energy[0], 16 / total, 1e-15);
  assert.deepEqual(s.kFor, { '0.5': 1, '0.9': 3, '0.99': 5 }); // 16, 20, 21, 22 of 22.25
  const r = rng(11);
  const big = spectrum(Array.from({ length: 300 }, () => r()).sort((a, b) => b - a));
  for (let k = 1; k < big.energy.length; k++) assert.ok(big.energy[k] >= big.energy[k - 1]);
  assert.equal(big.energy[big.energy.length - 1], 1);
});

test('similarity: symmetric, ones on the diagonal; the weight cosine equals cos(W_i, W_j) for W_i = U diag(S) V_i', () => {
  const r = rng(5);
  const rows = 6, rank = 4, cols = 5, L = 5;
  // U: rows × rank with orthonormal columns (Gram-Schmidt).
  const U: number[][] = [];
  for (let k = 0; k < rank; k++) {
    let u = Array.from({ length: rows }, () => r() - 0.5);
    for (const w of U) { const d = u.reduce((a, x, i) => a + x * w[i], 0); u = u.map((x, i) => x - d * w[i]); }
    const n = Math.hypot(...u);
    U.push(u.map((x) => x / n));
  }
  const S = [3, 2, 1, 0.5];
  const blocks = Array.from({ length: L }, () => Float32Array.from({ length: rank * cols }, () => r() - 0.5));
  const sim = similarity(blocks, S, cols);
  const W = blocks.map((V) => Array.from({ length: rows * cols }, (_, e) => {
    const a = Math.floor(e / cols), c = e % cols;
    let s = 0;
    for (let k = 0; k < rank; k++) s += U[k][a] * S[k] * V[k * cols + c];
    return s;
  }));
  const cos = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
    return ab / Math.sqrt(aa * bb);
  };
  for (let i = 0; i < L; i++) {
    assert.equal(sim.coefficient[i * L + i], 1);
    assert.equal(sim.weight[i * L + i], 1);
    for (let j = 0; j < L; j++) {
      assert.equal(sim.coefficient[i * L + j], sim.coefficient[j * L + i]);
      assert.equal(sim.weight[i * L + j], sim.weight[j * L + i]);
      close(sim.coefficient[i * L + j], cos(blocks[i], blocks[j]), 1e-6, 'coefficient cosine');
      close(sim.weight[i * L + j], cos(W[i], W[j]), 1e-6, 'weight cosine');
    }
  }
  close(bandMean(sim.coefficient, L), [0, 1, 2, 3].reduce((a, i) => a + sim.coefficient[i * L + i + 1], 0) / 4, 1e-15);
});

test('default leave-one-out layers: 8 evenly spaced interior layers, or every interior layer of a small model', () => {
  assert.deepEqual(defaultLooLayers(30), [1, 5, 9, 13, 16, 20, 24, 28]);
  assert.deepEqual(defaultLooLayers(8), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(defaultLooLayers(3), [1]);
});

test('readCompare: absent results are a reason, not an error; lesa-compare/1 runs are read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lesa-cmp-'));
  try {
    const missing = await readCompare(join(dir, 'nope'));
    assert.equal(missing.ok, false);
    const empty = await readCompare(dir);
    assert.equal(empty.ok, false);
    writeFileSync(join(dir, 'results.json'), JSON.stringify({
      format: 'lesa-compare/1', source_layers: 8, target_layers: 10, original: { initial_ppl: 50.5 },
      runs: {
        lesa: { status: 'ok', initial_ppl: 60, final_eval_loss: 3.2, eval_curve: [[0, 4], [10, 3.2]], train_curve: [[1, 4.1]] },
        solar: { status: 'not applicable', reason: 'needs 2L-target even' },
      },
      summary: { winner: 'lesa' },
    }));
    const r = await readCompare(dir);
    assert.ok(r.ok);
    if (r.ok) {
      assert.equal(r.summary.originalPpl, 50.5);
      assert.deepEqual(r.summary.methods.map((m) => [m.method, m.status]), [['lesa', 'ok'], ['solar', 'not applicable']]);
      assert.deepEqual(r.summary.methods[0].evalCurve, [[0, 4], [10, 3.2]]);
      assert.equal(r.summary.winner, 'lesa');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compare perplexity chart: ascending order, log scale only when the values span more than 10x', () => {
  const summary = (ppls: number[]): CompareSummary => ({
    source: 'x', format: 'lesa-compare/1', model: null, sourceLayers: 8, targetLayers: 10, originalPpl: 40, originalHeldoutLoss: null, winner: null, bestBaseline: null,
    methods: ppls.map((p, i) => ({ method: `m${i}`, group: 'methods', status: 'ok', reason: null, initialPpl: p, finalEvalLoss: null, stepsToBestBaseline: null, evalCurve: [], trainCurve: [], seedEvalCurves: [] })),
  });
  const xScale = (f: ReturnType<typeof comparePplFigure>) => ((f!.spec.layer as { encoding: { x: { scale: { type?: string } } } }[])[0].encoding.x.scale.type);
  const narrow = comparePplFigure(summary([50, 45, 48]))!;
  assert.equal(xScale(narrow), undefined);
  assert.deepEqual((narrow.spec.data as { values: { method: string }[] }).values.map((v) => v.method), ['m1', 'm2', 'm0']);
  assert.equal(xScale(comparePplFigure(summary([50, 45, 9000]))), 'log');
  assert.equal(comparePplFigure(summary([])), null);
});

test('compare loss chart: a panel per group, colour and marker per method, seed median and band, the original as a rule', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lesa-cmp-'));
  try {
    const run = (group: string, base: number) => ({ status: 'ok', group, eval_curve: [[0, base + 1], [10, base]] });
    writeFileSync(join(dir, 'results.json'), JSON.stringify({
      format: 'lesa-compare/1', source_layers: 8, target_layers: 10, original: { initial_ppl: 50, heldout_loss: 2.5 },
      runs: { lesa: run('LESA variants', 3), solar: run('paper baselines', 4), random: run('controls', 6) },
    }));
    mkdirSync(join(dir, 'seed-1'));
    writeFileSync(join(dir, 'seed-1', 'results.json'), JSON.stringify({ runs: { lesa: run('LESA variants', 5) } }));
    const r = await readCompare(dir);
    assert.ok(r.ok);
    if (!r.ok) return;
    assert.equal(r.summary.originalHeldoutLoss, 2.5);
    const f = compareLossFigure(r.summary)!;
    const spec = f.spec as { facet: { row: { sort: string[] } }; spec: { layer: { mark: { type: string }; encoding: Record<string, { scale?: { range: string[] }; datum?: number }> }[] }; data: { values: { method: string; step: number; loss: number; lo: number; hi: number }[] } };
    assert.deepEqual(spec.facet.row.sort, ['paper baselines', 'LESA variants', 'controls']);
    const marks = spec.spec.layer.map((l) => l.mark.type);
    assert.deepEqual(marks, ['area', 'line', 'point', 'rule']);
    const point = spec.spec.layer[2].encoding;
    assert.equal(new Set(point.color.scale!.range).size, 3);
    assert.equal(new Set(point.shape.scale!.range).size, 3);
    assert.equal(spec.spec.layer[3].encoding.y.datum, 2.5);
    const lesa10 = spec.data.values.find((v) => v.method === 'lesa' && v.step === 10)!;
    assert.deepEqual([lesa10.loss, lesa10.lo, lesa10.hi], [4, 3, 5]); // median of 3 and 5, band 3..5
    const solar10 = spec.data.values.find((v) => v.method === 'solar' && v.step === 10)!;
    assert.deepEqual([solar10.lo, solar10.hi], [4, 4]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const skipCli = !isNativeAvailable() ? 'skipped: the native addon is not built (npm run build:native)'
  : !existsSync(join(TINY, 'config.json')) ? `skipped: fixture ${TINY} is absent (bash scripts/fixtures.sh, or set LESA_FIXTURES)` : false;

test('lesa analyze --report on the tiny model: report.json numbers, PNGs, a self-contained page', { skip: skipCli }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'lesa-report-'));
  try {
    const { stdout } = await run(process.execPath, [BIN, 'analyze', TINY, '--report', out, '--types', 'q_proj,down_proj', '--layers', '3', '--loo-epochs', '1', '--quiet', '--json']);
    const res = JSON.parse(stdout);
    assert.equal(res.report, join(out, 'index.html'));
    const d = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.equal(d.format, 'lesa-report/1');
    assert.equal(d.layers, 8);
    assert.deepEqual(d.types.map((t: { type: string }) => t.type), ['q_proj', 'down_proj']);
    for (const t of d.types) {
      assert.equal(t.spectrum.S.length, t.rank);
      assert.equal(t.spectrum.energy.at(-1), 1);
      for (let k = 1; k < t.rank; k++) assert.ok(t.spectrum.S[k] <= t.spectrum.S[k - 1] && t.spectrum.energy[k] >= t.spectrum.energy[k - 1]);
      assert.equal(t.trajectory.coords.length, 8);
      for (const M of [t.similarity.coefficient, t.similarity.weight]) {
        assert.equal(M.length, 8);
        for (let i = 0; i < 8; i++) {
          assert.equal(M[i][i], 1);
          for (let j = 0; j < 8; j++) close(M[i][j], M[j][i], 0, 'symmetric');
        }
      }
    }
    // The weight cosine from the decomposition equals the cosine of the stored tensors.
    const ckpt = await openCheckpoint(TINY);
    try {
      for (const [t, name] of [[0, 'self_attn.q_proj'], [1, 'mlp.down_proj']] as const) {
        const [a, b] = await Promise.all([0, 5].map((i) => ckpt.readF32(`model.layers.${i}.${name}.weight`)));
        let ab = 0, aa = 0, bb = 0;
        for (let e = 0; e < a.length; e++) { ab += a[e] * b[e]; aa += a[e] * a[e]; bb += b[e] * b[e]; }
        close(d.types[t].similarity.weight[0][5], ab / Math.sqrt(aa * bb), 1e-5, `${name} cos(W_0, W_5)`);
      }
    } finally {
      await ckpt.close();
    }
    assert.deepEqual(d.loo.layers, [3]);
    assert.equal(d.loo.epochs, 1);
    assert.equal(d.loo.rows.length, 2);
    for (const r of d.loo.rows) for (const m of ['lesa', 'copy', 'average', 'random']) assert.ok(Number.isFinite(r[m].relError) && Number.isFinite(r[m].cosine));
    assert.equal(d.compare, null);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    const ids = ['spectrum', 'energy', 'trajectory', 'loo-error', 'loo-cosine', 'similarity', 'similarity-weight'];
    for (const id of ids) {
      assert.ok(html.includes(`id="fig-${id}"`), `figure ${id} in the page`);
      assert.deepEqual([...readFileSync(join(out, `${id}.png`)).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], `${id}.png is a PNG`);
    }
    assert.equal((html.match(/<svg /g) ?? []).length, ids.length);
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'no external resources');
    assert.doesNotMatch(html, /<script/, 'no scripts');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('lesa analyze --report: --no-loo skips leave-one-out; a missing --compare dir is reported in the page', { skip: skipCli }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'lesa-report-'));
  try {
    await run(process.execPath, [BIN, 'analyze', TINY, '--report', out, '--types', 'k_proj', '--no-loo', '--compare', join(out, 'absent'), '--quiet']);
    const d = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.equal(d.loo, null);
    assert.equal(d.compare.ok, false);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.match(html, /Not computed: --no-loo was given/);
    assert.match(html, /No comparison shown: .*does not exist/);
    assert.ok(!existsSync(join(out, 'loo-error.png')));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('lesa analyze --report --information: the table in the page, the same numbers as lesa analyze --information', { skip: skipCli }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'lesa-report-'));
  try {
    await run(process.execPath, [BIN, 'analyze', TINY, '--report', out, '--types', 'k_proj', '--layers', '3', '--loo-epochs', '1', '--information', '--quiet']);
    const d = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.deepEqual(d.information.layers, [3]);
    assert.equal(d.information.steps.k_proj['lesa-step-matched'], 480); // Llama-3-8B's k_proj: 1024 · 30 / 64 steps an epoch
    const { stdout } = await run(process.execPath, [BIN, 'analyze', TINY, '--information', '--types', 'k_proj', '--layers', '3', '--epochs', '1', '--quiet', '--json']);
    const cli = JSON.parse(stdout);
    assert.deepEqual(d.information.rows, cli.rows);
    assert.deepEqual(Object.keys(cli.rows[0].guesses), ['lesa', 'lesa-step-matched', 'rand-svd', 'random']);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.match(html, /id="information"/);
    assert.match(html, /<td>rand-svd<\/td>/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('lesa analyze: report-only options are refused without --report, and --no-loo with --layers', { skip: skipCli }, async () => {
  for (const args of [['--no-loo'], ['--loo-epochs', '2'], ['--compare', '/tmp'], ['--report', join(tmpdir(), 'x'), '--no-loo', '--layers', '2'],
    ['--report', join(tmpdir(), 'x'), '--no-loo', '--information'], ['--information', '--gaps', '2'], ['--predictor-steps', 'paper'], ['--predictor-steps', '9', '--epochs', '2']]) {
    await assert.rejects(run(process.execPath, [BIN, 'analyze', TINY, ...args]), (e: { code?: number; stderr?: string }) => e.code === 2 && /^lesa: /.test(e.stderr ?? ''));
  }
});
