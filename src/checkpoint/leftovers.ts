import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

/**
 * Temporary siblings of an output directory: `.OUT.lesa-KIND-HOST-PID-RANDOM`. The host and
 * pid let a later run recognise the leftovers of one that was killed (SIGKILL, power loss),
 * which no handler could clean up, and remove them without touching a run still alive.
 */
export type TempKind = 'tmp' | 'scratch';

const HOST = hostname().replace(/[^A-Za-z0-9._]/g, '_') || 'host';

/** A fresh name for this process's `kind` directory next to `output` (a path). */
export function tempSibling(output: string, kind: TempKind): string {
  return path.join(path.dirname(output), `.${path.basename(output)}.lesa-${kind}-${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporary siblings of `output` left by runs on this host whose process is gone;
 * returns their names. Siblings of live processes, of other hosts (a shared filesystem) and
 * anything not named exactly like ours are left alone.
 */
export async function removeDeadSiblings(output: string): Promise<string[]> {
  const parent = path.dirname(output);
  let names: string[];
  try {
    names = await fsp.readdir(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const kind of ['tmp', 'scratch'] as const) {
    const prefix = `.${path.basename(output)}.lesa-${kind}-${HOST}-`;
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const m = /^(\d+)-[0-9a-f]{8}$/.exec(name.slice(prefix.length));
      if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
      await fsp.rm(path.join(parent, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}
