// Simulated processes and the gRPC calls between them, on one SimClock.
//
// A Scope is one incarnation of a process: its timers and deferred work run only while it lives,
// and kill() ends them all at once (kill -9). A SimPort is a port a process serves on; closing it
// cuts the calls in flight, as a dying server does. simCall() is one unary call from a scope to a
// port: request latency, the handler, response latency, the caller's deadline and cancellation,
// with every failure a ConnectError of the code a Connect client would see (Unavailable when
// nothing serves or the server went away, DeadlineExceeded, Canceled). The answer to a caller that
// died meanwhile is never delivered: its promise stays pending, as nothing of a killed process
// resumes.
import { Code, ConnectError } from "@connectrpc/connect";
import type { IncomingCall, Listener } from "../../../src/devchain/edges.ts";
import type { Cancel, Clock } from "../../../src/node/ports.ts";
import type { SimClock } from "../../support/sim-clock.ts";

const NOOP: Cancel = () => {};

/** One incarnation of a simulated process: a Clock whose timers die with it. */
export class Scope implements Clock {
  private readonly timers = new Set<Cancel>();
  private readonly deathHooks = new Set<() => void>();
  private dead = false;

  constructor(
    readonly base: SimClock,
    readonly name: string,
  ) {}

  get alive(): boolean {
    return !this.dead;
  }

  now(): number {
    return this.base.now();
  }

  after(ms: number, fn: () => void): Cancel {
    if (this.dead) return NOOP;
    const cancel: Cancel = this.base.after(ms, () => {
      this.timers.delete(cancel);
      if (!this.dead) fn();
    });
    this.timers.add(cancel);
    return () => {
      cancel();
      this.timers.delete(cancel);
    };
  }

  every(ms: number, fn: () => void): Cancel {
    if (this.dead) return NOOP;
    const cancel = this.base.every(ms, () => {
      if (!this.dead) fn();
    });
    this.timers.add(cancel);
    return () => {
      cancel();
      this.timers.delete(cancel);
    };
  }

  defer(fn: () => void): void {
    this.after(0, fn);
  }

  /** Runs `fn` when this incarnation dies (its connections drop), unless cancelled first. */
  onDeath(fn: () => void): Cancel {
    if (this.dead) {
      fn();
      return NOOP;
    }
    this.deathHooks.add(fn);
    return () => this.deathHooks.delete(fn);
  }

  /** kill -9: no timer, deferred task or call answer of this incarnation runs any more. */
  kill(): void {
    if (this.dead) return;
    this.dead = true;
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    const hooks = [...this.deathHooks];
    this.deathHooks.clear();
    for (const h of hooks) h();
  }
}

/** A port: at most one set of handlers serves on it at a time. */
export class SimPort<H> {
  private handlers: H | undefined;
  private epoch = 0;
  private readonly open = new Set<() => void>();

  constructor(readonly name: string) {}

  get serving(): boolean {
    return this.handlers !== undefined;
  }

  serve(h: H): Listener {
    this.close();
    this.handlers = h;
    const epoch = ++this.epoch;
    return { close: () => (this.epoch === epoch ? this.close() : undefined) };
  }

  /** Stops serving: calls in flight fail at their callers. */
  close(): void {
    if (this.handlers === undefined) return;
    this.handlers = undefined;
    this.epoch++;
    const cut = [...this.open];
    this.open.clear();
    for (const c of cut) c();
  }

  /** @internal */
  enter(): { h: H; epoch: number } | undefined {
    return this.handlers === undefined ? undefined : { h: this.handlers, epoch: this.epoch };
  }

  /** @internal */
  track(cut: () => void): () => void {
    this.open.add(cut);
    return () => this.open.delete(cut);
  }

  /** @internal */
  still(epoch: number): boolean {
    return this.epoch === epoch;
  }
}

/**
 * One direction of a connection. What is sent on it arrives in order (HTTP/2 over one TCP
 * connection): a slow moment delays everything behind it, nothing overtakes.
 */
export class Pipe {
  private last = 0;

  /** When something sent now with `latency` arrives. */
  arrival(now: number, latency: number): number {
    this.last = Math.max(now + latency, this.last);
    return this.last;
  }
}

/** A connection between a caller and a port: its latency and its two directions. */
export class Link {
  readonly request = new Pipe();
  readonly response = new Pipe();

  constructor(readonly latency: () => number) {}
}

/** A loopback connection without latency: requests and answers pass in the same moment. */
export const LOOPBACK = new Link(() => 0);

export interface CallOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly clientName?: string;
}

/** The default deadline of the node's clients when a call sets none. */
export const DEFAULT_DEADLINE_MS = 10_000;

/**
 * One unary call from `caller` to whatever serves on `port` over `link` (each one-way trip takes
 * `link.latency()`, in order on its pipe; 0 is the same moment, without a timer). The handler gets
 * an IncomingCall whose signal aborts when the caller gives up (deadline, cancellation) or dies.
 */
export function simCall<H, T>(
  caller: Scope,
  port: SimPort<H>,
  link: Link,
  invoke: (h: H, call: IncomingCall) => T | Promise<T>,
  opts: CallOptions = {},
): Promise<T> {
  const base = caller.base;
  const trip = (pipe: Pipe, fn: () => void) => {
    const ms = link.latency();
    if (ms <= 0 && link === LOOPBACK) return queueMicrotask(fn);
    const now = base.now();
    base.after(pipe.arrival(now, Math.max(0, ms)) - now, fn);
  };
  const hop = (fn: () => void) => trip(link.request, fn);
  const back = (fn: () => void) => trip(link.response, fn);
  return new Promise<T>((resolve, reject) => {
    if (opts.signal?.aborted) return reject(ConnectError.from(opts.signal.reason, Code.Canceled));
    if (!caller.alive) return;
    let settled = false;
    const server = new AbortController();
    let untrack: () => void = () => {};
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      cancelDeadline();
      forgetCaller();
      untrack();
      opts.signal?.removeEventListener("abort", onAbort);
      server.abort(new Error("call over"));
      // Nothing of a dead process resumes.
      if (caller.alive) f();
    };
    const fail = (code: Code, message: string) => settle(() => reject(new ConnectError(message, code)));
    const onAbort = () => settle(() => reject(ConnectError.from(opts.signal!.reason, Code.Canceled)));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const cancelDeadline = caller.after(opts.timeoutMs ?? DEFAULT_DEADLINE_MS, () => fail(Code.DeadlineExceeded, `${port.name}: deadline exceeded`));
    const forgetCaller = caller.onDeath(() => server.abort(new Error("caller died")));
    hop(() => {
      if (settled) return;
      const served = port.enter();
      if (served === undefined) return back(() => fail(Code.Unavailable, `${port.name}: connection refused`));
      untrack = port.track(() => fail(Code.Unavailable, `${port.name}: connection closed`));
      let result: Promise<T>;
      try {
        result = Promise.resolve(invoke(served.h, { signal: server.signal, clientName: opts.clientName }));
      } catch (e) {
        result = Promise.reject(e);
      }
      const answer = (f: () => void) =>
        back(() => {
          if (!port.still(served.epoch)) fail(Code.Unavailable, `${port.name}: connection closed`);
          else settle(f);
        });
      result.then(
        (v) => answer(() => resolve(v)),
        (e) => answer(() => reject(ConnectError.from(e))),
      );
    });
  });
}
