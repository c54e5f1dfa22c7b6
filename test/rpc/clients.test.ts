import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Consensus2ControllerService } from "../../gen/controller_pb.ts";
import { baseUrl, createControllerClient, createNetworkClient } from "../../src/rpc/clients.ts";
import { FakeNetwork } from "../support/fake-network.ts";
import { freePort } from "../support/free-port.ts";

/** A fake controller that records the client-name header and can hang a call until it is cancelled. */
class FakeController {
  readonly clientNames: Array<string | null> = [];
  port = 0;
  readonly #server: http2.Http2Server;
  readonly #sessions = new Set<http2.ServerHttp2Session>();

  constructor() {
    const routes = (router: ConnectRouter) =>
      router.service(Consensus2ControllerService, {
        getProposal: (_req, ctx) => {
          this.clientNames.push(ctx.requestHeader.get("client-name"));
          return { status: { code: 0 }, proposal: { height: 18446744073709551615n, data: new Uint8Array([1]) } };
        },
        // A non-zero StatusCode is an answer (e.g. 130 ProposalCheckError), not a failure.
        checkProposal: () => ({ code: 130 }),
        // Hangs until the client gives up, like a controller that is stuck.
        commitBlock: (_req, ctx) =>
          new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))),
      });
    this.#server = http2.createServer(connectNodeAdapter({ routes, grpc: true, grpcWeb: false, connect: false }));
    this.#server.on("session", (s) => {
      this.#sessions.add(s);
      s.on("close", () => this.#sessions.delete(s));
    });
  }

  start(): Promise<void> {
    return new Promise((r) =>
      this.#server.listen(0, "::", () => {
        this.port = (this.#server.address() as AddressInfo).port;
        r();
      }),
    );
  }

  stop(): void {
    this.#server.close();
    for (const s of this.#sessions) s.destroy();
  }
}

describe("controller client", () => {
  const controller = new FakeController();
  beforeAll(() => controller.start());
  afterAll(() => controller.stop());

  test("every call carries client-name: consensus, and uint64 heights survive", async () => {
    const client = createControllerClient({ port: controller.port });
    const res = await client.getProposal({});
    client.close();
    expect(controller.clientNames).toEqual(["consensus"]);
    expect(res.proposal?.height).toBe(18446744073709551615n);
  });

  test("a non-zero StatusCode comes back as a result, not an error", async () => {
    const client = createControllerClient({ port: controller.port });
    const res = await client.checkProposal({ height: 1n });
    client.close();
    expect(res.code).toBe(130);
  });

  test("a hung controller gives DeadlineExceeded (retryable) after timeoutMs", async () => {
    const client = createControllerClient({ port: controller.port, timeoutMs: 300 });
    const t0 = performance.now();
    const err = await client.commitBlock({ proposal: { height: 1n } }).catch((e: unknown) => e);
    const elapsed = performance.now() - t0;
    client.close();
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(4000);
  });

  test("the host is overridable, IPv6 literals included", async () => {
    expect(baseUrl("::1", 50004)).toBe("http://[::1]:50004");
    expect(baseUrl("localhost", 50004)).toBe("http://localhost:50004");
    const client = createControllerClient({ port: controller.port, host: "::1" });
    expect(client.target).toBe(`http://[::1]:${controller.port}`);
    expect((await client.checkProposal({})).code).toBe(130);
    client.close();
  });

  test("after close() the next call reconnects", async () => {
    const client = createControllerClient({ port: controller.port });
    expect((await client.checkProposal({})).code).toBe(130);
    client.close();
    expect((await client.checkProposal({})).code).toBe(130);
    client.close();
  });
});

describe("network client", () => {
  test("nothing listening gives Unavailable, which is retryable", async () => {
    const client = createNetworkClient({ port: await freePort() });
    const err = await client.broadcast({ module: "consensus", type: "probe" }).catch((e: unknown) => e);
    client.close();
    expect((err as ConnectError).code).toBe(Code.Unavailable);
  });

  test("reaches the network service and carries the message intact", async () => {
    const network = new FakeNetwork();
    await network.start();
    const client = createNetworkClient({ port: network.port });
    const res = await client.sendMsg({ module: "consensus", type: "raft", origin: 18446744073709551615n, msg: new Uint8Array([9]) });
    client.close();
    network.stop();
    expect(res.code).toBe(0);
    expect(network.sent).toHaveLength(1);
    expect(network.sent[0]!.origin).toBe(18446744073709551615n);
  });
});
