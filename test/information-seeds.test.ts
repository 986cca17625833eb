import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guessSeeds } from '../src/analyze/information.js';

test('lesa analyze --information: every guess of every seed draws from its own stream', () => {
  // Seed offsets (random at seed+1, rand-svd at seed+2) made seed s's random matrix the stream
  // of seed s+1's rand-svd coefficients; a spread over seeds 0..4 must be over 15 distinct draws.
  for (const type of ['k_proj', 'v_proj', 'gate_proj', 'down_proj']) {
    for (const layer of [1, 8, 15, 22, 28]) {
      const all = new Map<number, string>();
      for (let seed = 0; seed < 10; seed++) {
        for (const [guess, s] of Object.entries(guessSeeds(seed, type, layer))) {
          assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32, `${guess}: ${s}`);
          const prior = all.get(s);
          assert.equal(prior, undefined, `${type} layer ${layer}: ${guess} at seed ${seed} shares stream ${s} with ${prior}`);
          all.set(s, `${guess} at seed ${seed}`);
        }
      }
    }
  }
});
