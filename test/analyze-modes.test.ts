import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runLesa } from './helpers/cli.js';

test('analyze: --gaps is its own mode, refused with --report in one line before any work', async () => {
  const r = await runLesa(['analyze', '/nonexistent', '--report', '/tmp/never-written', '--gaps', '2']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim(), 'lesa: --gaps is its own mode; drop --report');
});
