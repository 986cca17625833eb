import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScheduled, runsAlone, schedulePeak, type Job } from '../src/methods/lesa/schedule.js';
import { trainingFlops } from '../src/methods/lesa/predictor.js';

const tick = () => new Promise((r) => setTimeout(r, 1));

/** Runs the scheduler with jobs that take a few ticks each and records what overlapped. */
async function trace(jobs: Job[], budget: number, slots: number, failAt = -1) {
  const running = new Set<number>();
  const events: { job: number; threads: number; others: number[] }[] = [];
  let peakBytes = 0;
  const error = await runScheduled(jobs, budget, slots, 8, async (i, threads) => {
    events.push({ job: i, threads, others: [...running] });
    running.add(i);
    peakBytes = Math.max(peakBytes, [...running].reduce((s, k) => s + jobs[k].bytes, 0));
    for (let k = 0; k < 3 + (i % 3); k++) await tick();
    running.delete(i);
    if (i === failAt) throw new Error(`job ${i} failed`);
  }).then(() => undefined, (e: Error) => e);
  return { events, peakBytes, error };
}

const jobs = (...bytes: number[]): Job[] => bytes.map((b, i) => ({ name: `t${i}`, bytes: b }));

test('jobs that fit together run two at a time on one thread each, never above the budget', async () => {
  const js = jobs(3, 1, 1, 3, 2, 1, 2);
  const { events, peakBytes } = await trace(js, 4, 2);
  assert.deepEqual(events.map((e) => e.job).sort(), [0, 1, 2, 3, 4, 5, 6], 'each started once');
  assert.equal(events[0].job, 0);
  assert.ok(events.every((e) => e.threads === 1));
  assert.ok(events.some((e) => e.others.length === 1), 'some overlap happened');
  assert.ok(peakBytes <= 4, `peak ${peakBytes}`);
});

test('a job too large to share the budget runs alone on every thread', async () => {
  const js = jobs(1, 5, 1, 1);
  assert.equal(runsAlone(js, 1, 5, 2), true);
  assert.equal(runsAlone(js, 0, 5, 2), false);
  const { events } = await trace(js, 5, 2);
  const big = events.find((e) => e.job === 1)!;
  assert.equal(big.threads, 8);
  assert.deepEqual(big.others, []);
  assert.equal(events.at(-1)!.job, 1, 'the jobs that share run first, the lone one after them');
});

test('a free slot takes the first waiting job that fits, not only the next in order', async () => {
  // 3 and 3 cannot share a budget of 4; 3 and 1 can: job 2 (1 byte) runs beside job 0 before job 1.
  const { events } = await trace(jobs(3, 3, 1), 4, 2);
  assert.deepEqual(events.map((e) => e.job), [0, 2, 1]);
  assert.deepEqual(events[1].others, [0]);
});

test('one slot runs everything alone, in order, on every thread', async () => {
  const { events } = await trace(jobs(1, 1, 1), 100, 1);
  assert.deepEqual(events.map((e) => [e.job, e.threads, e.others.length]), [[0, 8, 0], [1, 8, 0], [2, 8, 0]]);
});

test('a failure stops new starts, lets the running job finish, and is rethrown', async () => {
  const { events, error } = await trace(jobs(1, 1, 1, 1, 1), 10, 2, 1);
  assert.match(String(error), /job 1 failed/);
  assert.ok(events.length < 5, `started ${events.length}`);
});

test('schedulePeak bounds what the scheduler actually holds, for random job sets', async () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let trial = 0; trial < 40; trial++) {
    const js = jobs(...Array.from({ length: 1 + Math.floor(rand() * 7) }, () => 1 + Math.floor(rand() * 6)));
    const budget = 2 + Math.floor(rand() * 8);
    const slots = 1 + Math.floor(rand() * 2);
    const { peakBytes } = await trace(js, budget, slots);
    const bound = schedulePeak(js, budget, slots).bytes;
    assert.ok(peakBytes <= bound, `jobs ${js.map((j) => j.bytes)} budget ${budget} slots ${slots}: held ${peakBytes} > bound ${bound}`);
    assert.ok(bound <= Math.max(budget, ...js.map((j) => j.bytes)), 'the bound never exceeds the budget or one lone job');
  }
});

test('jobs that share start with the most work, so no slot runs on alone for long', async () => {
  const js: Job[] = [1, 1, 1, 1].map((b, i) => ({ name: `t${i}`, bytes: b, work: [5, 1, 9, 3][i] }));
  const { events } = await trace(js, 10, 2);
  assert.deepEqual(events.map((e) => e.job), [2, 0, 3, 1]);
});

test('the LESA job estimate orders SmolLM2-shaped types by their training, the largest first', () => {
  const o = { batch: 64, hidden: 256 };
  // SmolLM2-135M at 10 epochs: gate/up (1536 x 576) train 6 720 steps, q/o/down 2 520 (down's
  // coefficients are 1 536 wide), k/v 840 (rank = out-dim, 28 interior layers, batch 64).
  assert.equal(trainingFlops(o, 6720, 576), 6 * 6720 * 64 * (3 * 256 * 576 + 256 * 256));
  const gate = trainingFlops(o, 6720, 576), down = trainingFlops(o, 2520, 1536), q = trainingFlops(o, 2520, 576), k = trainingFlops(o, 840, 576);
  assert.ok(gate > down && down > q && q > k);
});
