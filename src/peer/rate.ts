// Rate limits for input that arrives from the wire: token buckets (one per key, in a bounded map)
// and a log limiter, so that a flood of bad input costs a few warnings per interval, not one per
// message. Times are monotonic milliseconds supplied by the caller (tests inject a clock).
import type { ConsolaInstance } from "consola";

export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#last = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    if (now > this.#last) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) * this.perSecond) / 1000);
      this.#last = now;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * One bucket per key, at most `capacity` keys; the least recently used key is forgotten. A forgotten
 * key starts again with a full bucket, so callers that face many keys also need a shared bucket.
 */
export class KeyedBuckets<K> {
  readonly #buckets = new Map<K, TokenBucket>();

  constructor(
    readonly perSecond: number,
    readonly burst: number,
    readonly capacity: number,
  ) {}

  take(key: K, now: number): boolean {
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.capacity) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = new TokenBucket(this.perSecond, this.burst, now);
    } else {
      this.#buckets.delete(key); // re-inserted below: Map order is the LRU order
    }
    this.#buckets.set(key, b);
    return b.take(now);
  }

  get size(): number {
    return this.#buckets.size;
  }
}

/**
 * Lets through at most `perInterval` lines of each message per interval; the next line let through
 * carries `suppressed=<n>` for the ones swallowed meanwhile.
 */
export class LogLimiter {
  readonly #slots = new Map<string, { start: number; count: number; suppressed: number }>();

  constructor(
    private readonly log: ConsolaInstance,
    private readonly now: () => number,
    private readonly intervalMs = 10_000,
    private readonly perInterval = 3,
  ) {}

  debug(message: string, fields: Record<string, unknown> = {}): void {
    this.emit("debug", message, fields);
  }

  warn(message: string, fields: Record<string, unknown> = {}): void {
    this.emit("warn", message, fields);
  }

  error(message: string, fields: Record<string, unknown> = {}): void {
    this.emit("error", message, fields);
  }

  private emit(level: "debug" | "warn" | "error", message: string, fields: Record<string, unknown>): void {
    const t = this.now();
    let slot = this.#slots.get(message);
    // Keys are the fixed messages of the code, so this map stays small.
    if (slot === undefined) this.#slots.set(message, (slot = { start: t, count: 0, suppressed: 0 }));
    if (t - slot.start >= this.intervalMs) {
      slot.start = t;
      slot.count = 0;
    }
    if (slot.count >= this.perInterval) {
      slot.suppressed++;
      return;
    }
    slot.count++;
    if (slot.suppressed > 0) {
      this.log[level](message, { ...fields, suppressed: slot.suppressed });
      slot.suppressed = 0;
    } else {
      this.log[level](message, fields);
    }
  }
}
