import type { Reporter } from './reporter.js';

function fmtBytes(n: number): string {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function describe(detail: Record<string, unknown> = {}): string {
  const parts: string[] = [];
  if (detail.type) parts.push(`${detail.type}${detail.typeIndex ? ` (${detail.typeIndex}/${detail.types})` : ''}`);
  if (detail.phase) parts.push(String(detail.phase));
  if (detail.epoch) parts.push(`epoch ${detail.epoch}`);
  if (typeof detail.loss === 'number') parts.push(`loss ${detail.loss.toExponential(3)}`);
  if (detail.tensor) parts.push(`tensor ${detail.tensor}/${detail.tensors}`);
  return parts.join(' · ');
}

/** A progress bar with counts and ETA on stderr; plain periodic lines when stderr is not a terminal. */
export class TerminalReporter implements Reporter {
  private phaseName = '';
  private phaseStart = performance.now();
  private last = 0;
  private lastPct = -1;
  private readonly tty = Boolean(process.stderr.isTTY);

  phase(name: string, detail?: Record<string, unknown>): void {
    this.clear();
    this.phaseName = name;
    this.phaseStart = performance.now();
    this.lastPct = -1;
    process.stderr.write(`• ${name}${detail ? ` ${describe(detail)}` : ''}\n`);
  }

  progress(done: number, total: number, detail?: Record<string, unknown>): void {
    const now = performance.now();
    const finished = done >= total;
    if (!finished && now - this.last < 100) return;
    this.last = now;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const elapsed = (now - this.phaseStart) / 1000;
    const eta = frac > 0 ? (elapsed * (1 - frac)) / frac : Infinity;
    const counts = detail?.unit === 'bytes' ? `${fmtBytes(done)}/${fmtBytes(total)}` : `${done}/${total}`;
    const width = 24;
    const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '░');
    const line = `  ${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${counts} ETA ${fmtTime(eta)} ${describe(detail)}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      if (finished) process.stderr.write('\n');
    } else {
      const pct = Math.floor(frac * 10);
      if (pct !== this.lastPct || finished) { this.lastPct = pct; process.stderr.write(`${line}\n`); }
    }
  }

  info(message: string): void {
    this.clear();
    process.stderr.write(`${message}\n`);
  }

  close(): void {
    this.clear();
  }

  private clear(): void {
    if (this.tty) process.stderr.write('\r\x1b[2K');
  }
}

/** One JSON object per event on stderr, for scripts; stdout carries the result. `t`: seconds since the start. */
export class JsonReporter implements Reporter {
  private last = 0;
  private readonly t0 = performance.now();
  private emit(event: Record<string, unknown>): void {
    process.stderr.write(`${JSON.stringify({ ...event, t: Math.round(performance.now() - this.t0) / 1000 })}\n`);
  }
  phase(name: string, detail?: Record<string, unknown>): void {
    this.emit({ event: 'phase', name, ...detail });
  }
  progress(done: number, total: number, detail?: Record<string, unknown>): void {
    const now = performance.now();
    if (done < total && now - this.last < 500) return;
    this.last = now;
    this.emit({ event: 'progress', done, total, ...detail });
  }
  info(message: string): void {
    this.emit({ event: 'info', message });
  }
  close(): void {}
}
