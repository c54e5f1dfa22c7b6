// Deterministic randomness for the core: election timeouts come from an injected source so that
// tests and the simulator replay bit for bit.

/** Returns an integer in [0, n). */
export type RandomSource = (n: number) => number;

/** mulberry32: a tiny, fast, seedable 32-bit PRNG (not cryptographic). */
export function seededRandom(seed: number): RandomSource {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.floor(r * n);
  };
}
