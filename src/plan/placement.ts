import { UserError } from '../errors.js';

/**
 * Where new layers go, as a sorted list of "after original layer j" positions (0-based).
 * A position may repeat (two new layers in the same gap). Positions are validated
 * against the method's needs by the caller: interpolating methods need j <= L-2.
 */
export type PlacementStrategy = 'top' | 'uniform' | 'bottom';

export interface PlacementOptions {
  /** Explicit positions (--after); overrides the strategy. */
  after?: number[];
  strategy?: PlacementStrategy;
}

/** One new layer per interior gap: the last N gaps (paper), the first N, or spread evenly. */
export function placeGaps(layers: number, added: number, opts: PlacementOptions = {}): number[] {
  if (!Number.isSafeInteger(added) || added < 1) throw new UserError(`need at least one new layer, got ${added}`);
  if (opts.after) return checkAfter(layers, added, opts.after);
  const gaps = layers - 1;
  if (added > gaps) {
    throw new UserError(`cannot place ${added} new layers one per gap: a ${layers}-layer model has ${gaps} gaps; name positions with --after (repeats allowed) or use --method stack / solar`);
  }
  const strategy = opts.strategy ?? 'top';
  if (strategy === 'top') return Array.from({ length: added }, (_, k) => gaps - added + k);
  if (strategy === 'bottom') return Array.from({ length: added }, (_, k) => k);
  // uniform: the centres of `added` equal slices of the gaps 0..gaps-1
  return Array.from({ length: added }, (_, k) => Math.floor(((k + 0.5) * gaps) / added));
}

/** LLaMA Pro: split the stack into N groups and add one block after each group's last layer. */
export function placeLlamaPro(layers: number, added: number): number[] {
  if (!Number.isSafeInteger(added) || added < 1 || added > layers) {
    throw new UserError(`LLaMA Pro placement needs 1..${layers} new layers, got ${added}`);
  }
  return Array.from({ length: added }, (_, k) => Math.round(((k + 1) * layers) / added) - 1);
}

function checkAfter(layers: number, added: number, after: number[]): number[] {
  if (after.length !== added) {
    throw new UserError(`--after names ${after.length} positions but ${added} new layers are needed (--target-layers minus ${layers})`);
  }
  for (const j of after) {
    if (!Number.isSafeInteger(j) || j < 0 || j >= layers) throw new UserError(`--after position ${j} is not an original layer index (0..${layers - 1})`);
  }
  return [...after].sort((a, b) => a - b);
}

/** Output layer sequence for per-gap insertion: original layers in order, new ones after their j. */
export function interleave(layers: number, after: number[]): Array<{ kind: 'original'; source: number } | { kind: 'new'; after: number }> {
  const out: Array<{ kind: 'original'; source: number } | { kind: 'new'; after: number }> = [];
  let p = 0;
  for (let i = 0; i < layers; i++) {
    out.push({ kind: 'original', source: i });
    while (p < after.length && after[p] === i) out.push({ kind: 'new', after: after[p++] });
  }
  return out;
}
