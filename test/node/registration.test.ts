import { describe, expect, test } from "bun:test";
import { MIN_RENEW_INTERVAL_MS, NetworkRegistration, REREGISTER_MS, type RegistrationTarget } from "../../src/node/registration.ts";
import { captureLog } from "../support/capture-log.ts";
import { SimClock } from "../support/sim-clock.ts";

/** A network service whose answers are planned: a status code, or "down" for a failed call. */
class PlannedNetwork implements RegistrationTarget {
  readonly calls: number[] = [];
  plan: Array<number | "down"> = [];
  constructor(private readonly clock: SimClock) {}
  async registerNetworkMsgHandler(info: { moduleName: string; hostname: string; port: string }) {
    expect([info.moduleName, info.hostname, info.port]).toEqual(["consensus", "localhost", "50001"]);
    this.calls.push(this.clock.now());
    const answer = this.plan.shift() ?? 0;
    if (answer === "down") throw new Error("connect ECONNREFUSED");
    return { code: answer };
  }
}

function setup() {
  const clock = new SimClock(1_000);
  const network = new PlannedNetwork(clock);
  const cap = captureLog();
  const registered: boolean[] = [];
  const reg = new NetworkRegistration({
    network,
    port: () => 50001,
    log: cap.log,
    clock,
    random: { next: () => 0.5 },
    registered: (first) => registered.push(first),
  });
  return { clock, network, cap, registered, reg };
}

describe("network registration", () => {
  test("retries a network that is down or refuses until it answers 0, warning once", async () => {
    const t = setup();
    t.network.plan = ["down", "down", 7, 0];
    t.reg.start();
    await t.clock.until(() => t.registered.length === 1, 10_000, "registration");
    expect(t.network.calls).toHaveLength(4);
    expect(t.registered).toEqual([true]);
    expect(t.cap.lines.filter((l) => l.message === "network msg handler registration failed, retrying" && l.level === "warn")).toHaveLength(1);
    t.reg.stop();
  });

  test("registers again periodically, so a network service that forgot us after a restart delivers again", async () => {
    const t = setup();
    t.reg.start();
    await t.clock.until(() => t.registered.length === 1, 1_000);
    await t.clock.advance(3 * REREGISTER_MS + 1);
    expect(t.registered).toEqual([true, false, false, false]);
    t.reg.stop();
  });

  test("when the network answers again after failures it registers at once, at most once per interval", async () => {
    const t = setup();
    t.reg.start();
    await t.clock.until(() => t.registered.length === 1, 1_000);
    await t.clock.advance(MIN_RENEW_INTERVAL_MS * 2);
    const before = t.network.calls.length;
    t.reg.renew("network back");
    await t.clock.advance(1);
    expect(t.network.calls.length).toBe(before + 1);
    // A burst of renewals right after costs one more call, not one each.
    for (let i = 0; i < 5; i++) t.reg.renew("network back");
    await t.clock.advance(MIN_RENEW_INTERVAL_MS - 2);
    expect(t.network.calls.length).toBe(before + 1);
    await t.clock.advance(2);
    expect(t.network.calls.length).toBe(before + 2);
    t.reg.stop();
  });

  test("stop ends the attempts, even while the network is down", async () => {
    const t = setup();
    t.network.plan = Array(100).fill("down");
    t.reg.start();
    await t.clock.advance(3_000);
    const n = t.network.calls.length;
    expect(n).toBeGreaterThan(2);
    t.reg.stop();
    await t.clock.advance(60_000);
    expect(t.network.calls.length).toBe(n);
    expect(t.registered).toEqual([]);
  });
});
