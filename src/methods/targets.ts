/** Largest growth factor accepted for --target-layers (relative to the source depth). */
export const MAX_GROWTH = 64;

/**
 * Which target depths a method can build from an L-layer model, as data (so `lesa compare`
 * and the Python side apply the same rule): min/max as [a, b] meaning a·L + b.
 */
export interface TargetRule {
  min: readonly [number, number];
  max: readonly [number, number];
  multipleOfSource?: boolean;
  even?: boolean;
  /** Why, in a few words, for messages. */
  why: string;
}

/** Per-gap methods: any depth above the source's, up to MAX_GROWTH times it. */
export const anyDeeper: TargetRule = { min: [1, 1], max: [MAX_GROWTH, 0], why: 'one new layer per added depth' };

export function targetBounds(rule: TargetRule, L: number): [number, number] {
  return [rule.min[0] * L + rule.min[1], rule.max[0] * L + rule.max[1]];
}

export function targetFits(rule: TargetRule, L: number, T: number): boolean {
  const [lo, hi] = targetBounds(rule, L);
  return Number.isSafeInteger(T) && T >= lo && T <= hi && (!rule.even || T % 2 === 0) && (!rule.multipleOfSource || T % L === 0);
}
