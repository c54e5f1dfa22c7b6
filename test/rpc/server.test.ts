import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as http2 from "node:http2";
import * as net from "node:net";
import { toBinary } from "@bufbuild/protobuf";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { type ConsensusConfiguration, ProposalWithProofSchema } from "../../gen/common_pb.ts";
import { HealthCheckResponse_ServingStatus } from "../../gen/health_check_pb.ts";
import type { InboundEnvelope } from "../../src/peer/envelope.ts";
import { createGrpcServer, type GrpcServer, type GrpcServerHandlers } from "../../src/rpc/server.ts";
import { captureLog } from "../support/capture-log.ts";
import { GrpcJsClient } from "../support/grpc-js-client.ts";
import { waitUntil } from "../support/wait-until.ts";

const U64_MAX = "18446744073709551615";
const PROBE_BYTES = Buffer.from("52637c58fd4bfda4", "hex");

function recordingHandlers() {
  const reconfigs: ConsensusConfiguration[] = [];
  const envelopes: InboundEnvelope[] = [];
  const state = { health: HealthCheckResponse_ServingStatus.SERVING, throwOnReconfigure: false };
  const handlers: GrpcServerHandlers = {
    reconfigure: (c) => {
      reconfigs.push(c);
      if (state.throwOnReconfigure) throw new Error("boom");
    },
    networkMsg: (e) => envelopes.push(e),
    health: () => state.health,
  };
  return { reconfigs, envelopes, state, handlers };
}

describe("gRPC server, called by grpc-js (a client that is not ours)", () => {
  const rec = recordingHandlers();
  const cap = captureLog();
  let server: GrpcServer;
  let client: GrpcJsClient;

  beforeAll(async () => {
    server = createGrpcServer({ port: 0, log: cap.log, handlers: rec.handlers });
    await server.start();
    client = new GrpcJsClient(server.port);
  });
  afterAll(async () => {
    client.close();
    await server.stop(500);
  });

  test("logs that it listens, with the bound port", () => {
    const line = cap.lines.find((l) => l.message === "grpc server listening");
    expect(line?.fields.port).toBe(server.port);
    expect(server.port).toBeGreaterThan(0);
  });

  test("Reconfigure answers 0 at once and hands over uint64-max heights intact", async () => {
    const validator = Buffer.from("f805cf7df8dffc4fd9c98791d72d00c9587dc1d9", "hex");
    const r = await client.call<{ code: number }>(client.consensus, "Reconfigure", {
      height: U64_MAX,
      block_interval: 4294967295,
      validators: [validator],
    });
    expect(r.error).toBeNull();
    expect(r.value?.code).toBe(0);
    const got = rec.reconfigs.at(-1)!;
    expect(got.height).toBe(18446744073709551615n);
    expect(got.blockInterval).toBe(4294967295);
    expect(Buffer.from(got.validators[0]!)).toEqual(validator);
  });

  test("Reconfigure still answers 0 when the consumer throws (the controller aborts sync otherwise)", async () => {
    rec.state.throwOnReconfigure = true;
    const r = await client.call<{ code: number }>(client.consensus, "Reconfigure", { height: "5" });
    rec.state.throwOnReconfigure = false;
    expect(r.error).toBeNull();
    expect(r.value?.code).toBe(0);
    expect(cap.has("reconfigure handler failed")).toBe(true);
  });

  test("CheckBlock answers 0", async () => {
    const r = await client.call<{ code: number }>(client.consensus, "CheckBlock", {
      proposal: { height: U64_MAX, data: Buffer.from("abc") },
      proof: Buffer.alloc(0),
    });
    expect(r.error).toBeNull();
    expect(r.value?.code).toBe(0);
  });

  test("Health/Check answers SERVING, and whatever the health callback says", async () => {
    const ok = await client.call<{ status: string }>(client.health, "Check", { service: "" });
    expect(ok.value?.status).toBe("SERVING");
    rec.state.health = HealthCheckResponse_ServingStatus.NOT_SERVING;
    const down = await client.call<{ status: string }>(client.health, "Check", { service: "" });
    rec.state.health = HealthCheckResponse_ServingStatus.SERVING;
    expect(down.value?.status).toBe("NOT_SERVING");
  });

  test("ProcessNetworkMsg hands a valid envelope to the handler and answers 0", async () => {
    const r = await client.call<{ code: number }>(
      client.handler,
      "ProcessNetworkMsg",
      { module: "consensus", type: "probe", origin: U64_MAX, msg: PROBE_BYTES },
      "network",
    );
    expect(r.error).toBeNull();
    expect(r.value?.code).toBe(0);
    expect(rec.envelopes.at(-1)).toEqual({ type: "probe", origin: 18446744073709551615n, id: 5936725455453027748n });
  });

  const bad: Array<[string, object, string]> = [
    ["a wrong module", { module: "controller", type: "probe", msg: PROBE_BYTES }, "wrong module"],
    ["an unknown type", { module: "consensus", type: "vote", msg: PROBE_BYTES }, "unknown msg type"],
    ["garbage raft bytes", { module: "consensus", type: "raft", msg: Buffer.from([0xff, 0xff, 0xff]) }, "can't decode raft msg"],
    ["a short peer id", { module: "consensus", type: "probe", msg: Buffer.from([1, 2, 3]) }, "invalid peer id"],
  ];
  test.each(bad)("ProcessNetworkMsg with %s gets INVALID_ARGUMENT and the server keeps serving", async (_w, msg, text) => {
    const before = rec.envelopes.length;
    const r = await client.call(client.handler, "ProcessNetworkMsg", msg, "network");
    expect(r.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(r.error?.details).toContain(text);
    expect(rec.envelopes.length).toBe(before);
    const health = await client.call<{ status: string }>(client.health, "Check", {});
    expect(health.value?.status).toBe("SERVING");
  });

  test("an unknown method gets a proper UNIMPLEMENTED status", async () => {
    const r = await client.callPath("/consensus.ConsensusService/Nope");
    expect(r.error?.code).toBe(GrpcStatus.UNIMPLEMENTED);
    const r2 = await client.callPath("/grpc.health.v1.Health/Watch");
    expect(r2.error?.code).toBe(GrpcStatus.UNIMPLEMENTED);
  });

  test("HTTP/1 garbage on the port does not take the server down", async () => {
    await new Promise<void>((resolve) => {
      const sock = net.connect(server.port, "127.0.0.1", () => sock.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n\0\0\0garbage"));
      sock.on("error", () => resolve());
      sock.on("close", () => resolve());
      sock.setTimeout(300, () => sock.destroy());
    });
    const health = await client.call<{ status: string }>(client.health, "Check", {});
    expect(health.value?.status).toBe("SERVING");
  });

  test("answers on IPv6 loopback as well as IPv4 (dual stack on ::)", async () => {
    const v6 = new GrpcJsClient(server.port, "[::1]");
    const r = await v6.call<{ status: string }>(v6.health, "Check", {});
    v6.close();
    expect(r.value?.status).toBe("SERVING");
  });
});

describe("gRPC server lifecycle", () => {
  test("a port in use rejects start() with one line naming the address", async () => {
    const cap = captureLog();
    const first = createGrpcServer({ port: 0, log: cap.log, handlers: recordingHandlers().handlers });
    await first.start();
    const second = createGrpcServer({ port: first.port, log: cap.log, handlers: recordingHandlers().handlers });
    const err = await second.start().then(
      () => undefined,
      (e: Error) => e,
    );
    await first.stop(200);
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toBe(`cannot listen for gRPC on [::]:${first.port}: address already in use`);
  });

  test("an address this host does not have is refused with a clear reason", async () => {
    const srv = createGrpcServer({ port: 0, host: "192.0.2.1", log: captureLog().log, handlers: recordingHandlers().handlers });
    await expect(srv.start()).rejects.toThrow("cannot listen for gRPC on 192.0.2.1:0: address not available on this host");
  });

  test("an invalid port is a clear error, not a crash", async () => {
    const srv = createGrpcServer({ port: 70000, log: captureLog().log, handlers: recordingHandlers().handlers });
    await expect(srv.start()).rejects.toThrow("cannot listen for gRPC on [::]:70000");
  });

  test("stop() returns promptly with an idle client connected, and frees the port", async () => {
    const cap = captureLog();
    const srv = createGrpcServer({ port: 0, log: cap.log, handlers: recordingHandlers().handlers });
    await srv.start();
    const client = new GrpcJsClient(srv.port);
    expect((await client.call<{ status: string }>(client.health, "Check", {})).value?.status).toBe("SERVING");
    const t0 = performance.now();
    await srv.stop(300);
    expect(performance.now() - t0).toBeLessThan(3000);
    client.close();
    const again = createGrpcServer({ port: srv.port, log: cap.log, handlers: recordingHandlers().handlers });
    await again.start();
    await again.stop(100);
  });

  test("a call in flight during stop() still completes", async () => {
    const srv = createGrpcServer({ port: 0, log: captureLog().log, handlers: recordingHandlers().handlers });
    await srv.start();
    // A raw HTTP/2 client sends half of a CheckBlock request, so the call is in flight for sure.
    const body = toBinary(ProposalWithProofSchema, { $typeName: "common.ProposalWithProof", proposal: { $typeName: "common.Proposal", height: 1n, data: new Uint8Array(1000).fill(7) }, proof: new Uint8Array() });
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), Buffer.from(body)]);
    frame.writeUInt32BE(body.length, 1);
    const session = http2.connect(`http://127.0.0.1:${srv.port}`);
    const stream = session.request({
      ":method": "POST",
      ":path": "/consensus.ConsensusService/CheckBlock",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      stream.on("trailers", resolve);
      stream.on("close", () => reject(new Error(`stream closed without trailers (rst ${stream.rstCode})`)));
    });
    stream.on("data", () => {});
    stream.write(frame.subarray(0, 100));
    // A PING is answered after the frames before it: the server has seen the request's start.
    await new Promise<void>((r) => session.ping(() => r()));
    const goaway = new Promise<void>((r) => session.once("goaway", () => r()));
    const stopped = srv.stop(3000);
    await goaway; // the server is stopping; the rest of the request arrives only now
    stream.end(frame.subarray(100));
    expect((await trailers)["grpc-status"]).toBe("0");
    await stopped;
    session.close();
  });
});
