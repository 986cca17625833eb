/**
 * Process-level cleanup: every open CheckpointWriter registers here, so that Ctrl-C,
 * SIGTERM or a crash removes its temporary directory instead of leaving gigabytes behind.
 *
 * Signals: SIGINT → exit 130, SIGTERM → exit 143 (128 + signal number), after a
 * synchronous abort of every registered writer; during `duringNativeWork` the process ends
 * by the re-raised signal instead (same status in a shell), see there. Uncaught exceptions / unhandled
 * rejections: abort, print the error, exit 1. A plain process.exit() also aborts (the
 * 'exit' event), synchronously.
 */

/** Anything holding temporary state on disk. */
export interface Abortable {
  /** Remove everything this object created; must not throw. */
  abort(): Promise<void>;
  /** The same, synchronously (signal and exit handlers cannot wait). */
  abortSync(): void;
}

const open = new Set<Abortable>();

export function registerAbortable(a: Abortable): void {
  open.add(a);
}

export function unregisterAbortable(a: Abortable): void {
  open.delete(a);
}

/** Writers currently registered (for tests and diagnostics). */
export function openAbortables(): number {
  return open.size;
}

/** Abort every registered object (asynchronously); never throws. */
export async function abortAll(): Promise<void> {
  const all = [...open];
  open.clear();
  await Promise.all(all.map((a) => a.abort().catch(() => undefined)));
}

/** Abort every registered object synchronously; never throws. */
export function abortAllSync(): void {
  const all = [...open];
  open.clear();
  for (const a of all) {
    try {
      a.abortSync();
    } catch {
      /* best effort */
    }
  }
}

let installed = 0;
let nativeWork = 0;

/**
 * Mark a stretch of long native work on libuv's thread pool (LESA's decomposition and
 * training). process.exit() joins that pool, so it would wait for the job in flight (minutes
 * of training) before the process ends; a signal arriving meanwhile therefore cleans up and
 * then ends the process by the signal itself (default action: no wait; the shell still
 * reports 128 + n, e.g. 130 for Ctrl-C).
 */
export async function duringNativeWork<T>(fn: () => Promise<T>): Promise<T> {
  nativeWork++;
  try {
    return await fn();
  } finally {
    nativeWork--;
  }
}

function leave(signal: 'SIGINT' | 'SIGTERM', code: number): void {
  abortAllSync();
  if (nativeWork > 0) {
    // With no listener left, libuv restores the default action: the re-raised signal ends the process now.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code);
}
const onSigint = () => leave('SIGINT', 130);
const onSigterm = () => leave('SIGTERM', 143);
const onFatal = (e: unknown) => {
  abortAllSync();
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
};
const onExit = () => abortAllSync();

/** Install the signal/crash handlers (reference-counted); returns the uninstaller. */
export function installCleanupHandlers(): () => void {
  if (installed++ === 0) {
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    process.on('uncaughtException', onFatal);
    process.on('unhandledRejection', onFatal);
    process.on('exit', onExit);
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--installed === 0) {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
      process.off('uncaughtException', onFatal);
      process.off('unhandledRejection', onFatal);
      process.off('exit', onExit);
    }
  };
}

/**
 * Run `fn` with the handlers installed; when it ends (returns or throws) abort every writer
 * still open (one not finalized), so that the caller (the CLI) only has to print the error
 * and pick the exit code.
 */
export async function withCleanup<T>(fn: () => Promise<T>): Promise<T> {
  const uninstall = installCleanupHandlers();
  try {
    return await fn();
  } finally {
    // Whatever is still open now was not finalized: on success or failure it is garbage.
    await abortAll();
    uninstall();
  }
}
