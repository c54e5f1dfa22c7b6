// Exposure: the gRPC and metrics servers bind the configured addresses (grpc_listen_addr,
// metrics_listen_addr). The default stays `::` (every interface, both families) for compatibility;
// a loopback address keeps the unauthenticated ports off the network.
import { afterEach, describe, expect, test } from "bun:test";
import * as net from "node:net";
import type { Config } from "../../src/config/types.ts";
import { startService } from "../../src/service/service.ts";
import { captureLog } from "../support/capture-log.ts";
import { FakeNetwork } from "../support/fake-network.ts";
import { freePort } from "../support/free-port.ts";
import { GrpcJsClient } from "../support/grpc-js-client.ts";
import { serviceConfig } from "../support/service-config.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Whether a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function start(over: Partial<Config>) {
  const network = new FakeNetwork();
  await network.start();
  cleanups.push(() => network.stop());
  const grpcListenPort = await freePort();
  const metricsPort = await freePort();
  const cap = captureLog();
  const service = await startService(
    serviceConfig({ grpcListenPort, networkPort: network.port, metricsPort, enableMetrics: true, ...over }),
    cap.log,
  );
  cleanups.push(() => service.stop("test over"));
  return { grpcListenPort, metricsPort, cap };
}

describe("bind addresses", () => {
  test("loopback only: reachable on 127.0.0.1, not on the other family; health answers there", async () => {
    const { grpcListenPort, metricsPort, cap } = await start({ grpcListenAddr: "127.0.0.1", metricsListenAddr: "127.0.0.1" });
    expect(await accepts("127.0.0.1", grpcListenPort)).toBe(true);
    expect(await accepts("::1", grpcListenPort)).toBe(false);
    expect(await accepts("127.0.0.1", metricsPort)).toBe(true);
    expect(await accepts("::1", metricsPort)).toBe(false);
    const client = new GrpcJsClient(grpcListenPort, "127.0.0.1");
    cleanups.push(() => client.close());
    expect((await client.call<{ status: string }>(client.health, "Check", {})).value?.status).toBe("SERVING");
    expect(cap.lines.find((l) => l.message === "grpc server listening")?.fields.host).toBe("127.0.0.1");
    expect(cap.lines.find((l) => l.message === "metrics on")?.fields.host).toBe("127.0.0.1");
  });

  test("each server has its own address: metrics may stay on every interface while gRPC is loopback", async () => {
    const { grpcListenPort, metricsPort } = await start({ grpcListenAddr: "::1", metricsListenAddr: "::" });
    expect(await accepts("::1", grpcListenPort)).toBe(true);
    expect(await accepts("127.0.0.1", grpcListenPort)).toBe(false);
    expect(await accepts("127.0.0.1", metricsPort)).toBe(true);
    expect(await accepts("::1", metricsPort)).toBe(true);
  });

  test("the default (::) answers on both families, as the Rust service does", async () => {
    const { grpcListenPort, metricsPort } = await start({});
    for (const host of ["127.0.0.1", "::1"]) {
      expect(await accepts(host, grpcListenPort)).toBe(true);
      expect(await accepts(host, metricsPort)).toBe(true);
    }
  });
});
