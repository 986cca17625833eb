/** mulberry32: a small, well-mixed 32-bit generator; a seed gives the same stream everywhere. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
}

/** n samples of normal(0, std) by Box-Muller. */
export function gaussian(n: number, seed: number, std: number): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const th = 2 * Math.PI * next();
    out[i] = std * r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = std * r * Math.sin(th);
  }
  return out;
}
