// What the node takes from the world: time and randomness. The service passes the system's; the
// chain simulator passes a simulated clock and a seeded generator, so the very same node code runs
// under both (nothing in src/node calls setTimeout, setInterval, setImmediate or Math.random).

/** Cancels a timer; calling it again, or after the timer fired, does nothing. */
export type Cancel = () => void;

export interface Clock {
  /** Monotonic milliseconds (fractional). */
  now(): number;
  /** Runs `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): Cancel;
  /** Runs `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): Cancel;
  /** Runs `fn` as soon as the current task and the I/O already waiting are done. */
  defer(fn: () => void): void;
}

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
  defer: (fn) => void setImmediate(fn),
};

export const systemRandom: Random = { next: Math.random };

/** A uniform integer in [0, n). */
export function randomInt(random: Random, n: number): number {
  return Math.floor(random.next() * n);
}

/** Resolves after `ms`; rejects with the signal's reason if it aborts first. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      cancel();
      reject(signal!.reason);
    };
    const cancel = clock.after(ms, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff with ±20 % jitter: each step grows by `factor` up to `maxMs`. */
export class Backoff {
  private current: number;

  constructor(
    private readonly random: Random,
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly factor = 1.5,
  ) {
    this.current = minMs;
  }

  next(): number {
    const d = this.current * (0.8 + this.random.next() * 0.4);
    this.current = Math.min(this.maxMs, this.current * this.factor);
    return Math.round(d);
  }

  reset(): void {
    this.current = this.minMs;
  }
}
