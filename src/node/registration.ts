// Registration of our ProcessNetworkMsg endpoint with the node's network service. network_zenoh
// routes statically and answers 0 without looking; older network services keep the registration
// in memory only, so after they restart nothing reaches us until we register again (the Rust
// service registered once and went deaf). So: register until the network answers 0, then again
// every REREGISTER_MS, and at once (rate-limited) when the network comes back after failing calls.
import type { ConsolaInstance } from "consola";
import type { RegisterInfo } from "../../gen/network_pb.ts";
import { MODULE } from "../peer/envelope.ts";
import { Backoff, type Cancel, type Clock, type Random, sleep } from "./ports.ts";
import { errorMessage } from "../util/errors.ts";

export interface RegistrationTarget {
  registerNetworkMsgHandler(
    info: Pick<RegisterInfo, "moduleName" | "hostname" | "port">,
    options: { signal: AbortSignal; timeoutMs?: number },
  ): Promise<{ code: number }>;
}

/** Re-registration period while everything works (cheap: the call is idempotent). */
export const REREGISTER_MS = 30_000;
/** An early re-registration (network back after failures) happens at most this often. */
export const MIN_RENEW_INTERVAL_MS = 5_000;
const CALL_TIMEOUT_MS = 5_000;

export interface RegistrationDeps {
  readonly network: RegistrationTarget;
  /** Our gRPC port, where the network service delivers (read when registering starts). */
  readonly port: () => number;
  readonly log: ConsolaInstance;
  readonly clock: Clock;
  readonly random: Random;
  /** After each successful registration (the first one especially: time to probe peers). */
  readonly registered?: (first: boolean) => void;
}

export class NetworkRegistration {
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  private endPause: (() => void) | undefined;
  private lastAttemptAt = -Infinity;
  private renewWanted = false;
  private registeredOnce = false;
  private cancelWakeTimer: Cancel | undefined;

  constructor(private readonly deps: RegistrationDeps) {}

  /** Whether the network service has accepted the registration at least once. */
  get registered(): boolean {
    return this.registeredOnce;
  }

  start(): void {
    void this.loop();
  }

  /** The network service may have restarted: register again soon (at most every MIN_RENEW_INTERVAL_MS). */
  renew(reason: string): void {
    if (this.abort.signal.aborted || this.renewWanted) return;
    this.renewWanted = true;
    this.deps.log.debug("network registration will be renewed", { reason });
    const wait = Math.max(0, this.lastAttemptAt + MIN_RENEW_INTERVAL_MS - this.deps.clock.now());
    this.cancelWakeTimer?.();
    this.cancelWakeTimer = this.deps.clock.after(wait, () => this.wake?.());
  }

  stop(): void {
    this.cancelWakeTimer?.();
    this.abort.abort(new Error("service stopping"));
    this.endPause?.();
  }

  private async loop(): Promise<void> {
    const { network, log, clock } = this.deps;
    const port = this.deps.port();
    const signal = this.abort.signal;
    const info = { moduleName: MODULE, hostname: "localhost", port: String(port) };
    const backoff = new Backoff(this.deps.random, 250, 1_000, 2);
    let failures = 0;
    log.info("registering network msg handler", { port });
    while (!signal.aborted) {
      this.lastAttemptAt = clock.now();
      this.renewWanted = false;
      let problem: string | undefined;
      try {
        const { code } = await network.registerNetworkMsgHandler(info, { signal, timeoutMs: CALL_TIMEOUT_MS });
        if (code !== 0) problem = `network service answered status code ${code}`;
      } catch (e) {
        if (signal.aborted) return;
        problem = errorMessage(e);
      }
      if (problem === undefined) {
        const first = !this.registeredOnce;
        if (first || failures > 0) log.info("network msg handler registered", { attempts: failures + 1 });
        else log.debug("network msg handler registered again");
        this.registeredOnce = true;
        failures = 0;
        backoff.reset();
        this.deps.registered?.(first);
        await this.pause(REREGISTER_MS, () => this.renewWanted);
      } else {
        failures++;
        // The first failure is news; the rest would repeat it every second while the network is down.
        log[failures === 1 ? "warn" : "debug"]("network msg handler registration failed, retrying", { attempt: failures, error: problem });
        await this.pause(backoff.next(), () => false);
      }
    }
  }

  /**
   * Waits `ms`, or less when renew() is called and `wakeEarly` allows it, or stop() is. (One
   * controller per pause, ended by whichever comes first: AbortSignal.any would keep every pause's
   * composite signal, and what it reaches, alive for as long as the registration lives.)
   */
  private async pause(ms: number, wakeEarly: () => boolean): Promise<void> {
    const ended = new AbortController();
    this.endPause = () => ended.abort();
    this.wake = () => {
      if (wakeEarly()) ended.abort();
    };
    await sleep(this.deps.clock, ms, ended.signal).catch(() => {});
    this.wake = undefined;
    this.endPause = undefined;
  }
}
