/** Singular value spectrum of a stacked weight type and the energy its top-k components hold. */

export interface Spectrum {
  /** Singular values, descending (as the decomposition gives them). */
  S: number[];
  /** energy[k-1] = sum_{j<k} S_j^2 / sum S^2: the fraction of ‖W‖_F^2 in the top k components. */
  energy: number[];
  /** Smallest k with energy >= 50 %, 90 %, 99 %. */
  kFor: { '0.5': number; '0.9': number; '0.99': number };
}

export function spectrum(S: ArrayLike<number>): Spectrum {
  const s = Array.from(S);
  let total = 0;
  for (const x of s) total += x * x;
  const energy: number[] = [];
  let acc = 0;
  for (const x of s) { acc += x * x; energy.push(total > 0 ? acc / total : 0); }
  if (energy.length > 0 && total > 0) energy[energy.length - 1] = 1; // the sum of all is all of it
  const k = (f: number) => {
    const i = energy.findIndex((e) => e >= f - 1e-12);
    return i < 0 ? s.length : i + 1;
  };
  return { S: s, energy, kFor: { '0.5': k(0.5), '0.9': k(0.9), '0.99': k(0.99) } };
}
