/** How long work talks to the user: a bar on a terminal, JSON lines for scripts, or nothing. */
export interface Reporter {
  phase(name: string, detail?: Record<string, unknown>): void;
  progress(done: number, total: number, detail?: Record<string, unknown>): void;
  info(message: string): void;
  close(): void;
}

export const silentReporter: Reporter = { phase() {}, progress() {}, info() {}, close() {} };
