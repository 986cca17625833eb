import { UserError } from '../errors.js';
import { verifyOutput } from '../checkpoint/verify.js';
import type { Command, CommandIO } from './command.js';

export const verifyCommand: Command = {
  summary: 'Check every file of an expanded checkpoint against the sha256 sums in its lesa.json.',
  positionals: 'OUT',
  options: {},
  async run(_v: Record<string, unknown>, pos: string[], io: CommandIO) {
    if (pos.length !== 1) throw new UserError('usage: lesa verify OUT');
    const r = await verifyOutput(pos[0]);
    io.print(r.ok ? `ok: ${pos[0]} matches its manifest` : `MISMATCH in ${pos[0]}:\n${JSON.stringify(r, null, 2)}`, r);
    if (!r.ok) throw new UserError(`${pos[0]} does not match its manifest`);
  },
};
