// A simulated clock for the node's Clock port: time moves only when the test (or the chain
// simulator) says so. Timers fire in (time, creation) order, and after each one every promise
// continuation it caused runs before the next timer, so the node's async code (committer,
// proposer, supervisor) runs in one deterministic order for a given seed.
import type { Cancel, Clock } from "../../src/node/ports.ts";
import { EventQueue } from "../sim/queue.ts";

interface Timer {
  time: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Lets every queued promise continuation run (a macrotask boundary drains the microtask queue). */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class SimClock implements Clock {
  private t: number;
  private readonly timers = new EventQueue<Timer>();
  /** Timers fired so far (a cost measure for the simulator). */
  fired = 0;

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Cancel {
    const timer: Timer = { time: this.t + Math.max(0, ms), seq: 0, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  every(ms: number, fn: () => void): Cancel {
    const period = Math.max(1, ms);
    let cancel: Cancel;
    const tick = () => {
      cancel = this.after(period, tick);
      fn();
    };
    cancel = this.after(period, tick);
    return () => cancel();
  }

  defer(fn: () => void): void {
    this.after(0, fn);
  }

  /** When the next live timer is due, or undefined when none is pending. */
  nextAt(): number | undefined {
    for (;;) {
      const next = this.timers.peek();
      if (next === undefined || !next.cancelled) return next?.time;
      this.timers.pop();
    }
  }

  /**
   * Fires the next due timer at or before `limit` (moving time to it) and lets what it started
   * run. Returns false when no timer is due by `limit`; time then moves to `limit`.
   */
  async step(limit = Infinity): Promise<boolean> {
    const at = this.nextAt();
    if (at === undefined || at > limit) {
      if (limit !== Infinity && limit > this.t) this.t = limit;
      return false;
    }
    const timer = this.timers.pop()!;
    this.t = Math.max(this.t, timer.time);
    this.fired++;
    timer.fn();
    await drainMicrotasks();
    return true;
  }

  /** Runs every timer due within `ms` from now; time ends at now + ms. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await drainMicrotasks();
    while (await this.step(end));
  }

  /** Runs timers until `done()` holds; throws if it does not within `ms` of simulated time. */
  async until(done: () => boolean, ms: number, what = "the condition"): Promise<void> {
    const end = this.t + ms;
    await drainMicrotasks();
    while (!done()) {
      if (!(await this.step(end))) {
        if (done()) return;
        throw new Error(`${what} did not happen within ${ms} ms of simulated time`);
      }
    }
  }
}
