/**
 * One weight type to process, the peak bytes it will hold, the scratch bytes it writes
 * (spilled blocks), and an estimate of its compute (FLOPs; only compared between jobs).
 */
export interface Job {
  name: string;
  bytes: number;
  scratch?: number;
  work?: number;
}

/** A job runs alone, with every BLAS thread, when it cannot share the budget even with the smallest other job. */
export function runsAlone(jobs: Job[], i: number, budget: number, slots: number): boolean {
  if (slots < 2) return true;
  let smallest = Infinity;
  for (const [k, j] of jobs.entries()) if (k !== i) smallest = Math.min(smallest, j.bytes);
  return jobs[i].bytes + smallest > budget;
}

/**
 * Runs the jobs that can share first: up to `slots` at once on one BLAS thread each, a free
 * slot taking the first waiting job that fits in `budget` beside the running ones, the most
 * work first (longest-first keeps one slot from finishing alone long after the other); then the
 * jobs that cannot share (runsAlone), one after another on `threads`. Which thread count a
 * job gets depends on the sizes only, never on timing, so output bytes do not either. The
 * first failure stops new starts; running jobs finish before it is rethrown.
 */
export async function runScheduled(jobs: Job[], budget: number, slots: number, threads: number, run: (i: number, threads: number) => Promise<void>): Promise<void> {
  const running = new Map<number, Promise<void>>();
  let used = 0;
  let failure: { error: unknown } | undefined;
  const start = (i: number, t: number): Promise<void> => {
    used += jobs[i].bytes;
    const p = run(i, t)
      .catch((error: unknown) => { failure ??= { error }; })
      .finally(() => { used -= jobs[i].bytes; running.delete(i); });
    running.set(i, p);
    return p;
  };
  const alone = jobs.map((_, i) => runsAlone(jobs, i, budget, slots));
  const waiting = jobs.flatMap((_, i) => (alone[i] ? [] : [i])).sort((a, b) => (jobs[b].work ?? 0) - (jobs[a].work ?? 0));
  while (waiting.length > 0 && !failure) {
    const k = running.size >= slots ? -1 : waiting.findIndex((i) => running.size === 0 || used + jobs[i].bytes <= budget);
    if (k < 0) await Promise.race(running.values());
    else start(waiting.splice(k, 1)[0], 1);
  }
  await Promise.all(running.values());
  for (let i = 0; i < jobs.length && !failure; i++) if (alone[i]) await start(i, threads);
  if (failure) throw failure.error;
}

/**
 * Upper bounds of what runScheduled holds at once, whatever the timing: a lone job's own
 * size, or for jobs that share, the budget or the `slots` largest of them together.
 */
export function schedulePeak(jobs: Job[], budget: number, slots: number): { bytes: number; scratch: number } {
  let bytes = 0, scratch = 0;
  const shared: Job[] = [];
  for (const [i, j] of jobs.entries()) {
    if (runsAlone(jobs, i, budget, slots)) {
      bytes = Math.max(bytes, j.bytes);
      scratch = Math.max(scratch, j.scratch ?? 0);
    } else shared.push(j);
  }
  const top = (xs: number[]) => xs.sort((a, b) => b - a).slice(0, slots).reduce((a, b) => a + b, 0);
  if (shared.length > 0) {
    bytes = Math.max(bytes, Math.min(budget, top(shared.map((j) => j.bytes))));
    scratch = Math.max(scratch, top(shared.map((j) => j.scratch ?? 0)));
  }
  return { bytes, scratch };
}
