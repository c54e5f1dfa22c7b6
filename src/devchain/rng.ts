// Seeded randomness for the emulators: every fault decision and jitter draws from one of these,
// so a failing run can be replayed from its seed.

/** A source of uniform numbers in [0, 1). */
export type Rng = () => number;

/** A Weyl sequence passed through the murmur3 finaliser: tiny, fast and well mixed for test use. */
export function seededRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 4294967296;
  };
}
