// Opens the page `lesa analyze --report` writes for a tiny model in headless Chromium: no console
// errors, no network requests, every chart drawn (an svg with marks in each chart container), and
// a screenshot (OUT/screenshot.png; also copied to $LESA_REPORT_SCREENSHOT when set).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import { isNativeAvailable } from '../src/native/index.js';

const run = promisify(execFile);
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'bin.js');
const FIXTURES = process.env.LESA_FIXTURES ?? join(homedir(), '.cache', 'lesa', 'fixtures');
const TINY = join(FIXTURES, 'tiny-llama-f32');
const CHROMIUM = [process.env.LESA_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p && existsSync(p));

const skip = !CHROMIUM ? 'skipped: no Chromium at $LESA_CHROMIUM, /usr/bin/chromium or /usr/bin/chromium-browser (apt-get install -y chromium)'
  : !isNativeAvailable() ? 'skipped: the native addon is not built (npm run build:native)'
    : !existsSync(join(TINY, 'config.json')) ? `skipped: fixture ${TINY} is absent (bash scripts/fixtures.sh, or set LESA_FIXTURES)` : false;

/** A `lesa compare` results.json (format lesa-compare/1) so that section 5 is drawn too. */
function fakeCompare(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const curve = (a: number) => [0, 10, 20, 30].map((s) => [s, a + 2 / (1 + s / 10)]);
  writeFileSync(join(dir, 'results.json'), JSON.stringify({
    format: 'lesa-compare/1', model: TINY, source_layers: 8, target_layers: 10, original: { initial_ppl: 48000 },
    runs: {
      lesa: { method: 'lesa', status: 'ok', initial_ppl: 52000, final_eval_loss: 9.1, eval_curve: curve(9), train_curve: [] },
      copy: { method: 'copy', status: 'ok', initial_ppl: 61000, final_eval_loss: 9.3, eval_curve: curve(9.2), train_curve: [] },
      solar: { method: 'solar', status: 'not applicable', reason: 'target must be even' },
    },
    summary: { winner: 'lesa', best_baseline: 'copy' },
  }));
}

test('the report opens in headless Chromium without console errors and draws every chart', { skip, timeout: 120_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const work = mkdtempSync(join(tmpdir(), 'lesa-report-browser-'));
  const out = join(work, 'report');
  try {
    fakeCompare(join(work, 'compare'));
    await run(process.execPath, [BIN, 'analyze', TINY, '--report', out, '--types', 'q_proj,k_proj,gate_proj', '--layers', '2,5', '--loo-epochs', '1', '--compare', join(work, 'compare'), '--quiet']);
    // Playwright passes --user-data-dir itself for a persistent context.
    const browser = await chromium.launchPersistentContext(join(work, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 1600 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`); });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
      page.on('request', (r) => { if (!/^(file|data|about):/.test(r.url())) problems.push(`network request: ${r.url()}`); });
      await page.goto(pathToFileURL(join(out, 'index.html')).href, { waitUntil: 'load' });
      const charts = await page.$$eval('figure.chart', (figs) => figs.map((f) => {
        const svg = f.querySelector('svg');
        const box = svg?.getBoundingClientRect();
        return {
          id: f.getAttribute('data-chart'),
          marks: svg ? svg.querySelectorAll('g[class*="mark-"] path, g[class*="mark-"] rect, g[class*="mark-"] line, g[class*="mark-"] text').length : 0,
          width: box?.width ?? 0, height: box?.height ?? 0,
        };
      }));
      assert.deepEqual(charts.map((c) => c.id), ['spectrum', 'energy', 'trajectory', 'loo-error', 'loo-cosine', 'similarity', 'similarity-weight', 'compare-ppl', 'compare-loss']);
      for (const c of charts) {
        assert.ok(c.marks > 0, `chart ${c.id} has no marks`);
        assert.ok(c.width > 100 && c.height > 50, `chart ${c.id} is ${c.width}×${c.height}`);
      }
      const shot = join(out, 'screenshot.png');
      await page.screenshot({ path: shot });
      assert.ok(statSync(shot).size > 10_000);
      if (process.env.LESA_REPORT_SCREENSHOT) copyFileSync(shot, process.env.LESA_REPORT_SCREENSHOT);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
