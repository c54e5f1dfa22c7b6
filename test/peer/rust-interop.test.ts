// The peer protocol end to end over real gRPC: a fake network service (our own Connect server) on
// one side, our service or server + transport on the other, and messages injected by grpc-js with
// the exact bytes a Rust consensus_raft peer produces.
import { codec } from "../../src/raft/index.ts";
import { afterEach, describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { StatusCodeSchema } from "../../gen/common_pb.ts";
import { MessageSchema as RaftMessageSchema, MessageType } from "../../gen/eraftpb_pb.ts";
import { NetworkMsgSchema } from "../../gen/network_pb.ts";
import type { Config } from "../../src/config/types.ts";
import { parsePrometheusText } from "../../src/metrics/text.ts";
import { startService, type RunningService } from "../../src/service/service.ts";
import { decodePeerId, encodePeerId } from "../../src/peer/peer-id.ts";
import { PeerTransport } from "../../src/peer/transport.ts";
import { createNetworkClient } from "../../src/rpc/clients.ts";
import { createGrpcServer } from "../../src/rpc/server.ts";
import { captureLog } from "../support/capture-log.ts";
import { FakeNetwork } from "../support/fake-network.ts";
import { freePort } from "../support/free-port.ts";
import { GrpcJsClient } from "../support/grpc-js-client.ts";
import { serviceConfig } from "../support/service-config.ts";
import { waitUntil } from "../support/wait-until.ts";

const SELF_ID = 2656592473731891376n; // peer id of the all-zero address in serviceConfig
const RUST_PEER_ID = 5936725455453027748n; // 0x52637c58fd4bfda4
// A probe from the peer f805…c1d9 byte for byte as consensus_raft encodes it (origin 0).
const RUST_PROBE = "0a09636f6e73656e737573120570726f6265220852637c58fd4bfda4";

/** Appends `origin` (field 3, varint) as the network does when it delivers a message. */
function withOrigin(envelopeHex: string, origin: bigint): Buffer {
  const varint: number[] = [];
  for (let v = origin; ; v >>= 7n) {
    if (v < 0x80n) {
      varint.push(Number(v));
      break;
    }
    varint.push(Number(v & 0x7fn) | 0x80);
  }
  return Buffer.concat([Buffer.from(envelopeHex, "hex"), Buffer.from([0x18, ...varint])]);
}

const PROCESS = "/network.NetworkMsgHandlerService/ProcessNetworkMsg";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function runningService(network: FakeNetwork, networkPort: number, over: Partial<Config> = {}) {
  const cap = captureLog();
  const grpcListenPort = await freePort();
  const service: RunningService = await startService(serviceConfig({ grpcListenPort, networkPort, ...over }), cap.log);
  const client = new GrpcJsClient(grpcListenPort);
  cleanups.push(() => network.stop());
  cleanups.push(() => service.stop("test over"));
  cleanups.push(() => client.close());
  return { cap, grpcListenPort, service, client };
}

describe("service: registration and probing", () => {
  test("serves Health while the network is down, registers once it is up, then probes once", async () => {
    const network = new FakeNetwork();
    const networkPort = await freePort();
    const { cap, client, grpcListenPort, service } = await runningService(network, networkPort);

    expect((await client.call<{ status: string }>(client.health, "Check", {})).value?.status).toBe("SERVING");
    await waitUntil(() => cap.has("network msg handler registration failed, retrying"), "a failed registration");
    expect(network.registrations).toHaveLength(0);

    await network.start(networkPort);
    await waitUntil(() => network.broadcasts.length > 0, "the probe after registration");
    expect(network.registrations.map((r) => [r.moduleName, r.hostname, r.port])).toEqual([
      ["consensus", "localhost", String(grpcListenPort)],
    ]);
    expect(cap.has("network msg handler registered")).toBe(true);
    const probe = network.broadcasts[0]!;
    expect([probe.module, probe.type, probe.origin, decodePeerId(probe.msg)]).toEqual(["consensus", "probe", 0n, SELF_ID]);

    await service.stop("test over"); // drains the transport: anything else would be recorded by now
    expect(network.broadcasts).toHaveLength(1);
    expect(network.registrations).toHaveLength(1);
  });

  test("a non-zero registration answer is retried until the network says 0", async () => {
    const network = new FakeNetwork();
    network.registerCode = 400; // NetworkServerNotReady
    await network.start();
    await runningService(network, network.port);
    await waitUntil(() => network.registrations.length >= 2, "a second registration attempt");
    expect(network.broadcasts).toHaveLength(0);
    network.registerCode = 0;
    await waitUntil(() => network.broadcasts.length === 1, "the probe after registration");
  });

  test("stop() is prompt while registration is still retrying, and safe to repeat", async () => {
    const network = new FakeNetwork();
    const { cap, service } = await runningService(network, await freePort());
    await waitUntil(() => cap.has("network msg handler registration failed, retrying"), "a failed registration");
    const t0 = performance.now();
    await Promise.all([service.stop("first"), service.stop("second")]);
    expect(performance.now() - t0).toBeLessThan(4000);
    expect(cap.lines.filter((l) => l.message === "service stopping")).toHaveLength(1);
    expect(cap.has("network registration gave up")).toBe(false); // an abort is not a failure
  });

  test("a busy gRPC port makes startService reject with the clear bind error", async () => {
    const blocker = createGrpcServer({ port: 0, log: captureLog().log, handlers: { reconfigure() {}, networkMsg() {} } });
    await blocker.start();
    cleanups.push(() => blocker.stop(100));
    const cfg = serviceConfig({ grpcListenPort: blocker.port, networkPort: await freePort() });
    await expect(startService(cfg, captureLog().log)).rejects.toThrow(
      `cannot listen for gRPC on [::]:${blocker.port}: address already in use`,
    );
  });
});

describe("service: a network service that restarts", () => {
  test("forgetting its registrations, it is registered with again as soon as it answers after failed calls", async () => {
    const network = new FakeNetwork();
    await network.start();
    const port = network.port;
    const metricsPort = await freePort();
    const { client, cap } = await runningService(network, port, { enableMetrics: true, metricsPort, metricsListenAddr: "127.0.0.1" });
    await waitUntil(() => network.broadcasts.length === 1, "the start-up probe after registration");
    expect(network.registrations).toHaveLength(1);

    network.stop();
    // A peer's probe makes us answer through the network, which now fails.
    const r = await client.callPath(PROCESS, withOrigin(RUST_PROBE, 77n));
    expect(r.error).toBeNull();
    await waitUntil(() => cap.has("network service call failed"), "a failed send");
    const scrape = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    expect(scrape.get('consensus_network_failures_total{call="sendMsg"}')).toBeGreaterThanOrEqual(1);

    const restarted = new FakeNetwork(); // a fresh process: no registration remembered
    cleanups.push(() => restarted.stop());
    await restarted.start(port);
    await client.callPath(PROCESS, withOrigin(RUST_PROBE, 78n)); // another origin: no answer limit in the way
    await waitUntil(() => restarted.sent.some((m) => m.type === "probe-resp"), "an answer through the restarted network");
    await waitUntil(() => restarted.registrations.length === 1, "a new registration", 10_000);
    expect(cap.has("network service reachable again")).toBe(true);
  }, 20_000);
});

describe("service: inbound peer messages", () => {
  test("a probe from a Rust peer (its exact bytes) is answered by SendMsg probe-resp to its origin", async () => {
    const network = new FakeNetwork();
    await network.start();
    const { client } = await runningService(network, network.port);
    await waitUntil(() => network.broadcasts.length === 1, "our start-up probe");

    const origin = 0x1122334455667788n;
    const r = await client.callPath(PROCESS, withOrigin(RUST_PROBE, origin));
    expect(r.error).toBeNull();
    expect(fromBinary(StatusCodeSchema, r.value!).code).toBe(0);

    await waitUntil(() => network.sent.length === 1, "the probe-resp");
    const resp = network.sent[0]!;
    expect([resp.module, resp.type, resp.origin]).toEqual(["consensus", "probe-resp", origin]);
    expect(Buffer.from(resp.msg)).toEqual(Buffer.from(encodePeerId(SELF_ID)));
  });

  test("a raft message for another node gets refresh; one for us is taken (and dropped until Raft runs)", async () => {
    const network = new FakeNetwork();
    await network.start();
    const { client, cap, service } = await runningService(network, network.port);

    const misdirected = create(RaftMessageSchema, { msgType: MessageType.MsgHeartbeat, to: 999n, from: RUST_PEER_ID, term: 2n });
    const env = create(NetworkMsgSchema, { module: "consensus", type: "raft", origin: 31n, msg: toBinary(RaftMessageSchema, misdirected) });
    const r = await client.callPath(PROCESS, Buffer.from(toBinary(NetworkMsgSchema, env)));
    expect(r.error).toBeNull();
    await waitUntil(() => network.sent.length === 1, "the refresh");
    const refresh = network.sent[0]!;
    expect([refresh.type, refresh.origin, decodePeerId(refresh.msg)]).toEqual(["refresh", 31n, 999n]);

    const forUs = create(RaftMessageSchema, { msgType: MessageType.MsgHeartbeat, to: SELF_ID, from: RUST_PEER_ID, term: 2n });
    const env2 = create(NetworkMsgSchema, { module: "consensus", type: "raft", origin: 31n, msg: toBinary(RaftMessageSchema, forUs) });
    expect((await client.callPath(PROCESS, Buffer.from(toBinary(NetworkMsgSchema, env2)))).error).toBeNull();

    await service.stop("test over");
    expect(network.sent).toHaveLength(1); // nothing was sent back for our own message
    expect(cap.lines.find((l) => l.message === "service stopped")?.fields.raft_msgs_dropped).toBe(1);
  });

  test("bad input gets a typed error and the service keeps serving", async () => {
    const network = new FakeNetwork();
    await network.start();
    const { client } = await runningService(network, network.port);
    const shortId = create(NetworkMsgSchema, { module: "consensus", type: "probe", origin: 1n, msg: new Uint8Array(4) });
    const bad = await client.callPath(PROCESS, Buffer.from(toBinary(NetworkMsgSchema, shortId)));
    expect(bad.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(bad.error?.details).toContain("invalid peer id");
    // A NetworkMsg that is not protobuf at all: INVALID_ARGUMENT too (tonic says INTERNAL, which the
    // network service retries).
    const truncated = await client.callPath(PROCESS, Buffer.from("0a09636f6e73656e73757312047261667422", "hex"));
    expect(truncated.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect((await client.call<{ status: string }>(client.health, "Check", {})).value?.status).toBe("SERVING");
    expect(network.sent).toHaveLength(0);
  });
});

describe("transport over real gRPC", () => {
  test("unknown destination: one probe; after a probe-resp arrives, raft goes to the learned origin", async () => {
    const network = new FakeNetwork();
    await network.start();
    const cap = captureLog();
    const networkClient = createNetworkClient({ port: network.port });
    const transport = new PeerTransport({ selfId: SELF_ID, network: networkClient, log: cap.log });
    const server = createGrpcServer({
      port: 0,
      log: cap.log,
      handlers: { reconfigure() {}, networkMsg: (e) => transport.handleInbound(e) },
    });
    await server.start();
    const client = new GrpcJsClient(server.port);
    cleanups.push(() => network.stop());
    cleanups.push(() => server.stop(200));
    cleanups.push(() => networkClient.close());
    cleanups.push(() => client.close());

    const msg = codec.messageFromPb(create(RaftMessageSchema, { msgType: MessageType.MsgAppend, to: RUST_PEER_ID, from: SELF_ID, term: 7n, index: 3n }));
    const outcomes = Array.from({ length: 20 }, () => transport.send(msg));
    expect(new Set(outcomes)).toEqual(new Set(["no-route"]));
    await transport.idle();
    expect(network.broadcasts.map((b) => b.type)).toEqual(["probe"]);
    expect(network.sent).toHaveLength(0);

    // The Rust peer answers our probe: probe-resp with its id, origin stamped by the network.
    const resp = create(NetworkMsgSchema, { module: "consensus", type: "probe-resp", origin: 555n, msg: encodePeerId(RUST_PEER_ID) });
    expect((await client.callPath(PROCESS, Buffer.from(toBinary(NetworkMsgSchema, resp)))).error).toBeNull();

    expect(transport.send(msg)).toBe("queued");
    await transport.idle();
    expect(network.sent).toHaveLength(1);
    const out = network.sent[0]!;
    expect([out.module, out.type, out.origin]).toEqual(["consensus", "raft", 555n]);
    expect(toBinary(RaftMessageSchema, fromBinary(RaftMessageSchema, out.msg))).toEqual(toBinary(RaftMessageSchema, codec.messageToPb(msg)));
  });
});
