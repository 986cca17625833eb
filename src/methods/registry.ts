import { UserError } from '../errors.js';
import { average } from './average.js';
import { copy } from './copy.js';
import { lesa } from './lesa/index.js';
import { llamaPro } from './llama-pro.js';
import { otFuse } from './ot-fuse.js';
import type { Method } from './method.js';
import { random } from './random.js';
import { randSvd } from './rand-svd.js';
import { solar } from './solar.js';
import { stack } from './stack.js';

export const methods: readonly Method[] = [lesa, copy, llamaPro, average, random, randSvd, solar, stack, otFuse];

/** Methods `--align` changes, for messages. */
export function alignable(): string {
  return methods.filter((m) => m.alignment).map((m) => m.name).join(', ');
}

export function methodByName(name: string): Method {
  const m = methods.find((x) => x.name === name);
  if (!m) throw new UserError(`unknown method "${name}"; choose one of: ${methods.map((x) => x.name).join(', ')}`);
  return m;
}
