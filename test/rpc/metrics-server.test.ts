// The metrics port as a caller sees it: /metrics and /status answer GET, other paths 404 with the
// hint, other methods 405; connections beyond the bound are closed at once and idle ones time out,
// while the endpoint keeps answering.
import { afterEach, describe, expect, test } from "bun:test";
import * as net from "node:net";
import { silentLogger } from "../../src/devchain/log.ts";
import { ConsensusMetrics } from "../../src/metrics/metrics.ts";
import { type MetricsServer, type MetricsServerOptions, startMetricsServer } from "../../src/metrics/server.ts";
import { waitUntil } from "../support/wait-until.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

async function serve(opts: MetricsServerOptions = {}): Promise<{ server: MetricsServer; url: string }> {
  const metrics = new ConsensusMetrics([1], () => undefined);
  metrics.serving(() => true);
  const server = await startMetricsServer(metrics, 0, "127.0.0.1", silentLogger(), { status: () => ({ role: "leader", term: 7 }), ...opts });
  cleanups.push(() => server.stop());
  return { server, url: `http://127.0.0.1:${server.port}` };
}

/** A raw TCP connection that sends nothing; resolves `closed` when the server closes it. */
async function idleSocket(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect(port, "127.0.0.1");
  cleanups.push(() => socket.destroy());
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  socket.on("error", () => {});
  await new Promise<void>((r, j) => {
    socket.once("connect", () => r());
    socket.once("error", j);
  });
  return { socket, closed };
}

describe("routes", () => {
  test("GET /metrics is Prometheus text, GET /status is JSON, query strings are ignored", async () => {
    const { url } = await serve();
    const m = await fetch(`${url}/metrics?x=1`);
    expect(m.status).toBe(200);
    expect(m.headers.get("content-type")).toStartWith("text/plain");
    expect(await m.text()).toContain("consensus_serving 1");
    const s = await fetch(`${url}/status`);
    expect(s.status).toBe(200);
    expect(s.headers.get("content-type")).toBe("application/json");
    expect(await s.json()).toEqual({ role: "leader", term: 7 });
  });

  test("unknown paths are 404 with the list of metrics ports; other methods are 405 naming GET", async () => {
    const { url } = await serve();
    for (const path of ["/", "/statusx", "/metrics/x", "/status/"]) {
      const r = await fetch(url + path);
      expect([path, r.status]).toEqual([path, 404]);
      expect(await r.text()).toContain("use /metrics or /status");
    }
    for (const method of ["POST", "PUT", "DELETE", "HEAD"]) {
      const r = await fetch(`${url}/status`, { method });
      expect([method, r.status, r.headers.get("allow")]).toEqual([method, 405, "GET"]);
    }
  });

  test("a status source that throws is a 500, and the server goes on", async () => {
    const { url } = await serve({
      status: () => {
        throw new Error("boom");
      },
    });
    const r = await fetch(`${url}/status`);
    expect(r.status).toBe(500);
    expect(await r.text()).toContain("boom");
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
  });
});

describe("admission", () => {
  test("connections beyond the bound are closed at once; the ones admitted are served, and room frees up", async () => {
    const { server, url } = await serve({ maxConnections: 3 });
    const held = await Promise.all([0, 1, 2].map(() => idleSocket(server.port)));
    await waitUntil(() => server.connections() === 3, "3 connections admitted");
    const extra = await idleSocket(server.port);
    await extra.closed; // closed by the server, nothing was asked
    expect(server.connections()).toBe(3);
    held[0].socket.destroy();
    await waitUntil(() => server.connections() === 2, "a held connection to go");
    expect((await fetch(`${url}/status`)).status).toBe(200);
  });

  test("a connection that sends nothing is closed after the idle timeout", async () => {
    const { server, url } = await serve({ idleTimeoutMs: 200 });
    const idle = await idleSocket(server.port);
    await idle.closed;
    await waitUntil(() => server.connections() === 0, "no connection left");
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
  });
});
