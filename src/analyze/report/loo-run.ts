import { interiorLayers } from '../../methods/lesa/predictor.js';
export { looForType } from '../loo.js';

/** `n` evenly spaced interior layers (1..L-2), all of them when there are no more than `n`. */
export function defaultLooLayers(L: number, n = 8): number[] {
  const interior = interiorLayers(L);
  if (interior.length <= n) return interior;
  const lo = interior[0], hi = interior[interior.length - 1];
  const out = new Set<number>();
  for (let k = 0; k < n; k++) out.add(Math.round(lo + (k * (hi - lo)) / (n - 1)));
  return [...out].sort((a, b) => a - b);
}
