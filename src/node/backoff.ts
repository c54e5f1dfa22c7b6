// Exponential backoff with jitter, and an abortable sleep.

export class Backoff {
  private current: number;
  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly factor = 1.5,
  ) {
    this.current = minMs;
  }

  /** The next delay: the current step with ±20 % jitter; the step then grows up to the cap. */
  next(): number {
    const d = this.current * (0.8 + Math.random() * 0.4);
    this.current = Math.min(this.maxMs, this.current * this.factor);
    return Math.round(d);
  }

  reset(): void {
    this.current = this.minMs;
  }
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
