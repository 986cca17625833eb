import { UserError } from '../errors.js';
import { describeBound, describeDefault } from '../methods/options.js';
import { catalogue } from '../methods/registry.js';
import type { Command, CommandIO } from './command.js';

const term = ([a, b]: readonly [number, number]) => (a === 0 ? `${b}` : `${a === 1 ? '' : a}L${b > 0 ? `+${b}` : b < 0 ? `${b}` : ''}`);

/** The method catalogue: what `lesa expand --method` accepts, and what `lesa compare` reads (--json). */
export const methodsCommand: Command = {
  summary: 'List the expansion methods: summary, paper, options with defaults and bounds, and which target depths each builds (--json: the catalogue).',
  positionals: '',
  options: {},
  async run(_v, pos, io: CommandIO) {
    if (pos.length) throw new UserError('usage: lesa methods [--json]');
    const all = catalogue();
    const text = all.map((m) => {
      const t = m.targets;
      const rule = `${term(t.min)}..${term(t.max)}${t.even ? ', even' : ''}${t.multipleOfSource ? ', a multiple of L' : ''}`;
      const lines = [`${m.name}: ${m.summary}`, `  ${m.reference}`, `  target layers: ${rule} (${t.why})${m.alignment ? `; --align: ${m.alignment}` : ''}`];
      for (const o of m.options) lines.push(`  ${o.flag}  ${o.help}; ${describeBound(o)}${o.type === 'boolean' ? '' : ` (default ${describeDefault(o)})`}`);
      return lines.join('\n');
    });
    io.print(text.join('\n\n'), { format: 'lesa-methods/1', methods: all });
  },
};
