import type { Reporter } from './reporter.js';

/**
 * Wraps a reporter and adds up wall time per phase: the top-level phase name, refined by the
 * `phase` field progress events carry (LESA's gram / eig / coefficients / train / predict).
 */
export class PhaseClock implements Reporter {
  readonly seconds: Record<string, number> = {};
  private current = 'start';
  private since = performance.now();

  constructor(private readonly inner: Reporter) {}

  private switchTo(key: string): void {
    const now = performance.now();
    this.seconds[this.current] = (this.seconds[this.current] ?? 0) + (now - this.since) / 1000;
    this.current = key;
    this.since = now;
  }

  phase(name: string, detail?: Record<string, unknown>): void {
    this.switchTo(name);
    this.inner.phase(name, detail);
  }

  progress(done: number, total: number, detail?: Record<string, unknown>): void {
    const sub = typeof detail?.phase === 'string' ? detail.phase : undefined;
    if (sub && sub !== this.current) this.switchTo(sub);
    this.inner.progress(done, total, detail);
  }

  info(message: string): void {
    this.inner.info(message);
  }

  /** Closes the running phase and returns the totals, rounded to milliseconds. */
  totals(): Record<string, number> {
    this.switchTo('done');
    delete this.seconds.done;
    return Object.fromEntries(Object.entries(this.seconds).filter(([, v]) => v > 0).map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
  }

  close(): void {
    this.inner.close();
  }
}
