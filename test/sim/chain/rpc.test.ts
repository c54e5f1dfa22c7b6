// Simulated processes and calls: what a kill -9 ends, deadlines, closed ports, in-order connections.
import { describe, expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { SimClock } from "../../support/sim-clock.ts";
import { LOOPBACK, Link, Scope, SimPort, simCall } from "./rpc.ts";

interface Echo {
  echo(x: number): number | Promise<number>;
}

function setup(latency = 5) {
  const clock = new SimClock();
  const caller = new Scope(clock, "caller");
  const port = new SimPort<Echo>("echo");
  const link = new Link(() => latency);
  return { clock, caller, port, link };
}

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

describe("Scope", () => {
  test("kill -9: no timer, periodic task or deferred work of the incarnation runs afterwards", async () => {
    const clock = new SimClock();
    const s = new Scope(clock, "p");
    const ran: string[] = [];
    s.after(10, () => ran.push("after"));
    s.every(5, () => ran.push("every"));
    s.defer(() => ran.push("defer"));
    await clock.advance(6);
    expect(ran).toEqual(["defer", "every"]);
    s.kill();
    s.after(1, () => ran.push("late"));
    await clock.advance(100);
    expect(ran).toEqual(["defer", "every"]);
    expect(clock.nextAt()).toBeUndefined();
  });
});

describe("simCall", () => {
  test("a call takes its latency both ways and gets the handler's answer", async () => {
    const { clock, caller, port, link } = setup(5);
    port.serve({ echo: (x) => x * 2 });
    let answer: number | undefined;
    void simCall(caller, port, link, (h) => h.echo(21)).then((v) => (answer = v));
    await clock.advance(9);
    expect(answer).toBeUndefined();
    await clock.advance(1);
    expect(answer).toBe(42);
  });

  test("nothing serving: Unavailable; a port closed during the call: Unavailable at once", async () => {
    const { clock, caller, port, link } = setup(5);
    const refused = codeOf(simCall(caller, port, link, (h) => h.echo(1)));
    await clock.advance(20);
    expect(await refused).toBe(Code.Unavailable);

    port.serve({ echo: () => new Promise<number>(() => {}) });
    const cut = codeOf(simCall(caller, port, link, (h) => h.echo(1)));
    await clock.advance(6);
    port.close();
    await clock.advance(0);
    expect(await cut).toBe(Code.Unavailable);
  });

  test("the caller's deadline ends a call that hangs, and the handler sees the cancellation", async () => {
    const { clock, caller, port, link } = setup(1);
    let aborted = false;
    port.serve({
      echo: (_x) => new Promise<number>(() => {}),
    });
    const p = codeOf(
      simCall(
        caller,
        port,
        link,
        (h, call) => {
          call.signal.addEventListener("abort", () => (aborted = true));
          return h.echo(1);
        },
        { timeoutMs: 50 },
      ),
    );
    await clock.advance(60);
    expect(await p).toBe(Code.DeadlineExceeded);
    expect(aborted).toBe(true);
  });

  test("a caller killed meanwhile never gets its answer; the request still reached the server", async () => {
    const { clock, caller, port, link } = setup(5);
    const seen: number[] = [];
    port.serve({ echo: (x) => (seen.push(x), x) });
    let settled = false;
    void simCall(caller, port, link, (h) => h.echo(7)).then(
      () => (settled = true),
      () => (settled = true),
    );
    await clock.advance(2);
    caller.kill();
    await clock.advance(100);
    expect(seen).toEqual([7]);
    expect(settled).toBe(false);
  });

  test("calls on one connection arrive in order, however their latencies were drawn", async () => {
    const clock = new SimClock();
    const caller = new Scope(clock, "caller");
    const port = new SimPort<Echo>("echo");
    const latencies = [50, 1, 1];
    const link = new Link(() => latencies.shift() ?? 1);
    const order: number[] = [];
    port.serve({ echo: (x) => (order.push(x), x) });
    for (const x of [1, 2, 3]) void simCall(caller, port, link, (h) => h.echo(x));
    await clock.advance(200);
    expect(order).toEqual([1, 2, 3]);
  });

  test("a loopback call completes in the same simulated moment", async () => {
    const clock = new SimClock();
    const caller = new Scope(clock, "caller");
    const port = new SimPort<Echo>("echo");
    port.serve({ echo: (x) => x + 1 });
    const v = await simCall(caller, port, LOOPBACK, (h) => h.echo(1));
    expect(v).toBe(2);
    expect(clock.now()).toBe(0);
  });
});
